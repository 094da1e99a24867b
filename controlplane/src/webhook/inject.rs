//! `/inject`: the sidecar for pods the API server sends, by the injector `meshctl kube-inject`
//! uses, answered as a JSON patch against the pod as it was sent.

use mesh_inject::names::ANNOTATION_STATUS;
use mesh_inject::{inject_object, InjectConfig, Outcome};
use serde_json::Value;
use tracing::{debug, info, warn};

use super::admission::{Request, Response};

pub fn review(request: &Request, config: &InjectConfig) -> Response {
    if request.kind != "Pod" || !request.group.is_empty() {
        // The webhook configuration only sends pods; anything else is not ours to change.
        return Response::allow(&request.uid);
    }
    if injected_by(&request.object, &config.values.revision) {
        // The API server calls again (reinvocationPolicy IfNeeded) when a later admission step,
        // such as the service-account token mount, changed the pod after we injected it; the
        // sidecar is already there.
        debug!(pod = %request.resource(), "already injected by this revision");
        return Response::allow(&request.uid);
    }
    let mut pod = request.object.clone();
    if pod["kind"].is_null() {
        pod["kind"] = Value::from("Pod");
    }
    let resource = request.resource();
    match inject_object(&mut pod, config, request.namespace.as_deref()) {
        Ok(Outcome::Injected) => {
            // The API server may send the object without apiVersion/kind; the patch must not
            // touch what it did not send.
            if request.object["kind"].is_null() {
                if let Some(map) = pod.as_object_mut() {
                    map.remove("kind");
                }
            }
            let patch = json_patch::diff(&request.object, &pod);
            info!(pod = %resource, operations = patch.0.len(), "injected");
            let mut response = Response::allow(&request.uid);
            if !patch.0.is_empty() {
                response.patch = serde_json::to_value(&patch).ok();
            }
            response
        }
        Ok(Outcome::Skipped(why)) => {
            debug!(pod = %resource, %why, "not injected");
            Response::allow(&request.uid)
        }
        Ok(Outcome::NotWorkload | Outcome::UnknownWorkload) => Response::allow(&request.uid),
        Err(e) => {
            warn!(pod = %resource, error = %e, "injection refused");
            Response::deny(&request.uid, format!("sidecar injection failed: {e}"))
        }
    }
}

/// Whether the pod carries this revision's injection status. A status of another revision
/// (say, a manifest passed through `kube-inject` for an older control plane) is replaced.
fn injected_by(pod: &Value, revision: &str) -> bool {
    pod["metadata"]["annotations"][ANNOTATION_STATUS]
        .as_str()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .is_some_and(|status| status["revision"] == revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_inject::config::Source;
    use serde_json::json;

    fn config() -> InjectConfig {
        InjectConfig::from_sources(
            &Source {
                origin: "values",
                text: r#"{"proxyImage": "ghcr.io/meshctl/mesh-proxy:0.1.0", "meshdAddress": "meshd.mesh-system.svc:15012"}"#,
            },
            None,
            None,
        )
        .expect("config")
    }

    fn pod_request(object: Value) -> Request {
        Request {
            uid: "u1".to_owned(),
            group: String::new(),
            version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            namespace: Some("shop".to_owned()),
            name: String::new(),
            operation: "CREATE".to_owned(),
            object,
        }
    }

    fn pod() -> Value {
        json!({
            "metadata": {"generateName": "web-5d7b4547c6-", "labels": {"app": "web", "pod-template-hash": "5d7b4547c6"}},
            "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]},
        })
    }

    fn patched(request: &Request, response: &Response) -> Value {
        let patch: json_patch::Patch =
            serde_json::from_value(response.patch.clone().expect("a patch")).expect("patch");
        let mut object = request.object.clone();
        json_patch::patch(&mut object, &patch).expect("applies");
        object
    }

    #[test]
    fn a_pod_gets_the_sidecar_as_a_patch_that_applies_to_what_was_sent() {
        let request = pod_request(pod());
        let response = review(&request, &config());
        assert!(response.allowed);
        let pod = patched(&request, &response);
        let containers: Vec<&str> = pod["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(containers, ["web", "istio-proxy"]);
        assert_eq!(
            pod["metadata"]["labels"]["security.istio.io/tlsMode"],
            "istio"
        );
        assert!(pod["metadata"]["annotations"]["sidecar.istio.io/status"].is_string());
        assert!(
            pod.get("kind").is_none(),
            "the patch added a kind the request did not have"
        );
    }

    #[test]
    fn reinvocation_is_a_no_op() {
        let first = pod_request(pod());
        let injected = patched(&first, &review(&first, &config()));
        let again = pod_request(injected);
        let response = review(&again, &config());
        assert!(response.allowed);
        assert_eq!(response.patch, None, "a second pass changed the pod");
    }

    #[test]
    fn a_reinvocation_after_another_plugin_changed_the_pod_leaves_it_alone() {
        let first = pod_request(pod());
        let mut injected = patched(&first, &review(&first, &config()));
        // What the ServiceAccount admission plugin does to every container after us.
        for container in injected["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
        {
            container["volumeMounts"] = json!([{"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
        }
        let response = review(&pod_request(injected), &config());
        assert!(response.allowed);
        assert_eq!(response.patch, None);
    }

    #[test]
    fn an_injection_of_another_revision_is_replaced() {
        let first = pod_request(pod());
        let mut injected = patched(&first, &review(&first, &config()));
        let status = injected["metadata"]["annotations"][ANNOTATION_STATUS]
            .as_str()
            .expect("status")
            .replace("\"revision\":\"default\"", "\"revision\":\"canary\"");
        injected["metadata"]["annotations"][ANNOTATION_STATUS] = json!(status);
        let again = pod_request(injected);
        let pod = patched(&again, &review(&again, &config()));
        let status = pod["metadata"]["annotations"][ANNOTATION_STATUS]
            .as_str()
            .expect("status");
        assert!(status.contains("\"revision\":\"default\""), "{status}");
        assert_eq!(pod["spec"]["containers"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn opted_out_and_host_network_pods_are_allowed_unchanged() {
        let mut opted_out = pod();
        opted_out["metadata"]["labels"]["sidecar.istio.io/inject"] = json!("false");
        let response = review(&pod_request(opted_out), &config());
        assert!(response.allowed && response.patch.is_none());
        let mut host = pod();
        host["spec"]["hostNetwork"] = json!(true);
        let response = review(&pod_request(host), &config());
        assert!(response.allowed && response.patch.is_none());
    }

    #[test]
    fn an_invalid_annotation_refuses_the_pod_saying_why() {
        let mut bad = pod();
        bad["metadata"]["annotations"] = json!({"sidecar.istio.io/proxyCPU": "lots"});
        let response = review(&pod_request(bad), &config());
        assert!(!response.allowed);
        let message = response.message.expect("message");
        assert!(
            message.starts_with("sidecar injection failed: Pod shop/web-5d7b4547c6-"),
            "{message}"
        );
        assert!(message.contains("sidecar.istio.io/proxyCPU"), "{message}");
    }
}
