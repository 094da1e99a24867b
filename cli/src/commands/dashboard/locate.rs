//! Finding the pod to forward to: which namespaces to look in, which pod is ready, and what to
//! tell the user when none is.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::Client;
use mesh_crds::MeshInstall;
use mesh_operator::controller::status::pod_problem;
use mesh_operator::profile;

use super::ui::Ui;
use crate::kube_client::root;

/// Where the mesh lives when no MeshInstall says otherwise: our default profile's namespace,
/// then Istio's, so an Istio install's add-ons are found too.
const FALLBACK_NAMESPACES: &[&str] = &["mesh-system", "istio-system"];

/// The Istio-compatible name of the injected sidecar container.
pub const SIDECAR_CONTAINER: &str = "istio-proxy";

/// Which pods to consider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Pods matching the UI's label selector.
    Selector,
    /// Exactly this pod.
    Named(String),
}

/// The namespaces of the installed meshes (from their MeshInstalls), then the fallbacks.
pub async fn mesh_namespaces(client: &Client) -> Vec<String> {
    let mut namespaces = Vec::new();
    // No MeshInstall CRD, or no right to list it cluster-wide: the fallbacks still apply.
    if let Ok(list) = Api::<MeshInstall>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        for install in &list.items {
            let namespace = mesh_operator::controller::spec::resolve(install)
                .ok()
                .and_then(|resolved| resolved.spec.namespace);
            if let Some(ns) = namespace {
                if !namespaces.contains(&ns) {
                    namespaces.push(ns);
                }
            }
        }
    }
    for ns in FALLBACK_NAMESPACES {
        if !namespaces.iter().any(|n| n == ns) {
            namespaces.push((*ns).to_owned());
        }
    }
    namespaces
}

/// A pod the API server can forward to now: running, Ready, not being deleted.
pub fn is_ready(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The ready pod to use: the newest, so a rollout's replacement wins over the pod it replaces.
pub fn best_ready(pods: &[Pod]) -> Option<&Pod> {
    pods.iter().filter(|p| is_ready(p)).max_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.clone().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| b.metadata.name.cmp(&a.metadata.name))
    })
}

/// Why a pod is not ready, in words a person can act on.
pub fn not_ready_reason(pod: &Pod) -> String {
    if pod.metadata.deletion_timestamp.is_some() {
        return "it is being deleted".to_owned();
    }
    if let Some(problem) = pod_problem(pod) {
        return problem;
    }
    let Some(status) = &pod.status else {
        return "it has no status yet".to_owned();
    };
    let phase = status.phase.as_deref().unwrap_or("Unknown");
    let not_ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status != "True");
    match not_ready {
        Some(c) => {
            let why = c
                .message
                .as_deref()
                .or(c.reason.as_deref())
                .unwrap_or("its readiness probe has not passed");
            format!("phase {phase}, not Ready: {why}")
        }
        None => format!("phase {phase}"),
    }
}

/// `Kind namespace/name` style name of a pod.
pub fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The pods of `ui` in `namespace`.
pub async fn list(
    client: &Client,
    namespace: &str,
    ui: &Ui,
    selection: &Selection,
) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let result = match selection {
        Selection::Selector => api
            .list(&ListParams::default().labels(&ui.selector))
            .await
            .map(|l| l.items),
        Selection::Named(name) => api.get_opt(name).await.map(|p| p.into_iter().collect()),
    };
    result.map_err(|e| {
        anyhow::anyhow!(
            "cannot list the {} pods in namespace {namespace}: {}",
            ui.name,
            root(&e)
        )
    })
}

/// The namespace and ready pod to start forwarding to, searching `namespaces` in order.
pub async fn find(
    client: &Client,
    namespaces: &[String],
    ui: &Ui,
    selection: &Selection,
) -> anyhow::Result<(String, Pod)> {
    for namespace in namespaces {
        let pods = list(client, namespace, ui, selection).await?;
        if pods.is_empty() {
            continue;
        }
        return match best_ready(&pods) {
            Some(pod) => Ok((namespace.clone(), pod.clone())),
            None => Err(anyhow::anyhow!(not_ready_message(ui, namespace, &pods))),
        };
    }
    Err(anyhow::anyhow!(not_found_message(
        ui, namespaces, selection
    )))
}

/// Every pod that is there, and why each is not ready.
pub fn not_ready_message(ui: &Ui, namespace: &str, pods: &[Pod]) -> String {
    let mut message = format!("no {} pod in namespace {namespace} is ready:", ui.name);
    for pod in pods {
        message.push_str(&format!(
            "\n  pod {namespace}/{}: {}",
            pod_name(pod),
            not_ready_reason(pod)
        ));
    }
    message.push_str(&format!(
        "\nwait for it to become ready (kubectl -n {namespace} get pods -l {}) or fix the cause above",
        ui.selector
    ));
    message
}

/// Nothing matched anywhere: for an add-on, how to install it.
pub fn not_found_message(ui: &Ui, namespaces: &[String], selection: &Selection) -> String {
    let wheres = namespaces.join(", ");
    let plural = if namespaces.len() > 1 { "s" } else { "" };
    let Some(addon) = ui.addon else {
        return match selection {
            Selection::Named(name) => format!("no pod {name} in namespace{plural} {wheres}"),
            Selection::Selector => format!(
                "no pod labelled {} in namespace{plural} {wheres}; pass the pod name or -l SELECTOR, and -n NAMESPACE",
                ui.selector
            ),
        };
    };
    let mut message = format!(
        "{addon} is not installed: no pod labelled {} in namespace{plural} {wheres}.\nInstall it with",
        ui.selector
    );
    let profiles = profiles_installing(addon);
    if !profiles.is_empty() {
        let list = profiles
            .iter()
            .map(|p| format!("`meshctl install --profile {p}`"))
            .collect::<Vec<_>>()
            .join(" or ");
        message.push_str(&format!(" {list}, or"));
    }
    message.push_str(&format!(
        " `meshctl install --set addons.{addon}.enabled=true` added to your install's options"
    ));
    if addon == "zipkin" {
        message.push_str(
            "; the jaeger add-on also takes Zipkin spans: if it is installed, open `meshctl dashboard jaeger`",
        );
    }
    message.push_str("; if it runs in another namespace, pass -n NAMESPACE");
    message
}

/// The embedded profiles that enable `addon`.
fn profiles_installing(addon: &str) -> Vec<String> {
    profile::names()
        .into_iter()
        .filter(|name| {
            profile::document(name)
                .ok()
                .and_then(|doc| {
                    doc.pointer(&format!("/spec/addons/{addon}/enabled"))
                        .and_then(serde_json::Value::as_bool)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The sidecar's admin page only exists on pods that have one.
pub fn check_has_sidecar(pod: &Pod, namespace: &str) -> anyhow::Result<()> {
    let has = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .any(|c| c.name == SIDECAR_CONTAINER);
    if has {
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "pod {namespace}/{} has no mesh-proxy sidecar (no {SIDECAR_CONTAINER} container): inject it with `meshctl kube-inject`, or label namespace {namespace} istio-injection=enabled and restart the pod",
        pod_name(pod)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, created: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"containers": [{"name": "app"}]},
            "status": status,
        }))
        .expect("valid pod")
    }

    fn ready(name: &str, created: &str) -> Pod {
        pod(
            name,
            created,
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        )
    }

    #[test]
    fn the_newest_ready_pod_wins() {
        let pods = vec![
            ready("old", "2026-01-01T00:00:00Z"),
            ready("new", "2026-01-02T00:00:00Z"),
            pod(
                "newest-pending",
                "2026-01-03T00:00:00Z",
                json!({"phase": "Pending"}),
            ),
        ];
        assert_eq!(best_ready(&pods).map(pod_name).as_deref(), Some("new"));
    }

    #[test]
    fn pods_being_deleted_or_unready_are_not_chosen() {
        let mut deleting = ready("deleting", "2026-01-01T00:00:00Z");
        deleting.metadata.deletion_timestamp = deleting.metadata.creation_timestamp.clone();
        let unready = pod(
            "unready",
            "2026-01-01T00:00:00Z",
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "message": "containers with unready status: [kiali]"}]}),
        );
        assert!(best_ready(&[deleting.clone(), unready.clone()]).is_none());
        assert_eq!(not_ready_reason(&deleting), "it is being deleted");
        assert_eq!(
            not_ready_reason(&unready),
            "phase Running, not Ready: containers with unready status: [kiali]"
        );
    }

    #[test]
    fn not_ready_reasons_come_from_the_pod_status() {
        let unschedulable = pod(
            "p",
            "2026-01-01T00:00:00Z",
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/1 nodes are available"}]}),
        );
        assert_eq!(
            not_ready_reason(&unschedulable),
            "unschedulable: 0/1 nodes are available"
        );
        let crashing = pod(
            "p",
            "2026-01-01T00:00:00Z",
            json!({"phase": "Running", "containerStatuses": [{"name": "grafana", "image": "grafana/grafana", "imageID": "", "ready": false, "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        );
        let message = not_ready_message(&Ui::grafana(), "mesh-system", &[crashing]);
        assert!(
            message.contains("pod mesh-system/p: crash loop: container grafana restarted 7 times"),
            "{message}"
        );
        assert!(
            message.contains("kubectl -n mesh-system get pods -l app=grafana"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_addon_says_how_to_install_it() {
        let message = not_found_message(
            &Ui::kiali(),
            &["mesh-system".to_owned()],
            &Selection::Selector,
        );
        assert!(
            message.starts_with(
                "kiali is not installed: no pod labelled app=kiali in namespace mesh-system"
            ),
            "{message}"
        );
        assert!(
            message.contains("`meshctl install --profile demo`"),
            "{message}"
        );
        assert!(
            message.contains("--set addons.kiali.enabled=true"),
            "{message}"
        );

        // No profile installs zipkin: only the --set way, and the jaeger alternative.
        let message = not_found_message(
            &Ui::zipkin(),
            &["a".into(), "b".into()],
            &Selection::Selector,
        );
        assert!(message.contains("in namespaces a, b"), "{message}");
        assert!(!message.contains("--profile"), "{message}");
        assert!(
            message.contains("--set addons.zipkin.enabled=true"),
            "{message}"
        );
        assert!(message.contains("meshctl dashboard jaeger"), "{message}");
    }

    #[test]
    fn proxy_pages_need_a_sidecar() {
        let plain = ready("web", "2026-01-01T00:00:00Z");
        let err = check_has_sidecar(&plain, "shop").expect_err("no sidecar");
        assert!(
            err.to_string()
                .contains("pod shop/web has no mesh-proxy sidecar"),
            "{err}"
        );
        let mut injected = plain.clone();
        if let Some(spec) = injected.spec.as_mut() {
            spec.containers
                .push(serde_json::from_value(json!({"name": "istio-proxy"})).expect("container"));
        }
        assert!(check_has_sidecar(&injected, "shop").is_ok());
    }
}
