//! meshd's admission webhooks through the real kube-apiserver: a Deployment created in a
//! namespace labelled for injection gets its sidecar because the API server called meshd, and
//! invalid Istio objects are refused by meshd's validation.
//!
//! The mesh is `manifest generate --profile minimal -r wh` applied with kubectl, its own
//! revision so that its webhooks select only this test's namespace (`istio.io/rev=wh`), whatever
//! other tests installed. meshd runs as a local process at its pod's IP (see `mesh_e2e::meshd`).

use std::time::Duration;

use mesh_e2e::dashboard::{ensure_namespace, get};
use mesh_e2e::meshd::{install_revision, Meshd};
use mesh_e2e::{stderr, wait_for, Cluster};
use serde_json::Value;

const NS: &str = "e2e-webhook";
const APP_NS: &str = "e2e-webhook-app";
const PLAIN_NS: &str = "e2e-webhook-plain";
const REVISION: &str = "wh";
const MESHD: &str = "meshd-wh";
const INJECTOR: &str = "meshd-sidecar-injector-wh-e2e-webhook";
const VALIDATOR: &str = "meshd-validator-wh-e2e-webhook";

/// The cluster-scoped webhook configurations outlive namespaces: removed on the way in and out,
/// so that a failed run cannot leave a Fail-policy webhook pointing at a meshd that is gone.
struct WebhookConfigs<'a>(&'a Cluster);

impl WebhookConfigs<'_> {
    fn remove(cluster: &Cluster) {
        for (kind, name) in [
            ("mutatingwebhookconfiguration", INJECTOR),
            ("validatingwebhookconfiguration", VALIDATOR),
        ] {
            let _ = cluster.kubectl(&["delete", kind, name, "--ignore-not-found"]);
        }
    }
}

impl Drop for WebhookConfigs<'_> {
    fn drop(&mut self) {
        WebhookConfigs::remove(self.0);
    }
}

fn pod_of(cluster: &Cluster, ns: &str, selector: &str) -> Value {
    wait_for(
        &format!("a pod {selector} in {ns}"),
        Duration::from_secs(60),
        || {
            let list = cluster.get_json(&["pods", "-n", ns, "-l", selector]);
            list["items"]
                .as_array()
                .and_then(|items| items.first().cloned())
        },
    )
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

fn deployment(name: &str, ns: &str, labels: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata:\n      labels: {{app: {name}{labels}}}\n    spec:\n      containers:\n      - name: {name}\n        image: nginx:1.27\n        ports: [{{containerPort: 8080}}]\n        readinessProbe: {{httpGet: {{path: /ready, port: 8080}}}}\n"
    )
}

#[test]
fn pods_get_their_sidecar_through_the_api_server_and_invalid_istio_objects_are_refused() {
    let cluster = Cluster::from_env();
    WebhookConfigs::remove(&cluster);
    let _configs = WebhookConfigs(&cluster);
    for ns in [APP_NS, PLAIN_NS] {
        cluster.delete_namespace_and_wait(ns, 60);
    }
    let ip = install_revision(&cluster, NS, REVISION);
    let meshd = Meshd::start(&cluster, NS, MESHD, &ip);

    // meshd put its CA into both configurations.
    for (kind, name) in [
        ("mutatingwebhookconfiguration", INJECTOR),
        ("validatingwebhookconfiguration", VALIDATOR),
    ] {
        let config = cluster.get_json(&[kind, name]);
        for hook in config["webhooks"].as_array().expect("webhooks") {
            assert!(
                hook["clientConfig"]["caBundle"]
                    .as_str()
                    .is_some_and(|b| !b.is_empty()),
                "{kind} {name} has no caBundle: {hook}"
            );
        }
    }

    // A namespace on the revision: its Deployment's pods are injected; the Deployment is not.
    cluster.kubectl_ok(&["create", "namespace", APP_NS]);
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        APP_NS,
        &format!("istio.io/rev={REVISION}"),
    ]);
    ensure_namespace(&cluster, PLAIN_NS);
    for ns in [APP_NS, PLAIN_NS] {
        wait_for(
            &format!("the default ServiceAccount of {ns}"),
            Duration::from_secs(30),
            || {
                cluster
                    .kubectl(&["get", "serviceaccount", "default", "-n", ns])
                    .status
                    .success()
                    .then_some(())
            },
        );
    }
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &deployment("web", APP_NS, ""));
    assert!(out.status.success(), "{}", stderr(&out));
    let pod = pod_of(&cluster, APP_NS, "app=web");
    let spec = &pod["spec"];
    assert_eq!(names(&spec["containers"]), ["web", "istio-proxy"], "{pod}");
    assert_eq!(names(&spec["initContainers"]), ["istio-init"], "{pod}");
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["security.istio.io/tlsMode"], "istio");
    assert_eq!(labels["service.istio.io/canonical-name"], "web");
    let status = pod["metadata"]["annotations"]["sidecar.istio.io/status"]
        .as_str()
        .expect("sidecar.istio.io/status");
    let status: Value = serde_json::from_str(status).expect("status is JSON");
    assert_eq!(status["containers"], serde_json::json!(["istio-proxy"]));
    assert_eq!(status["revision"], REVISION, "{status}");
    // The app's readiness probe now goes through the proxy's health port.
    let probe = &spec["containers"][0]["readinessProbe"]["httpGet"];
    assert_eq!(probe["port"], 15021, "{probe}");
    let template = cluster.get_json(&["deployment", "web", "-n", APP_NS]);
    assert_eq!(
        names(&template["spec"]["template"]["spec"]["containers"]),
        ["web"],
        "the Deployment itself was changed"
    );

    // Opting out keeps a pod plain, and so does a namespace not on the revision.
    let out = cluster.kubectl_with_stdin(
        &["apply", "-f", "-"],
        &deployment("batch", APP_NS, ", sidecar.istio.io/inject: \"false\""),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &deployment("plain", PLAIN_NS, ""));
    assert!(out.status.success(), "{}", stderr(&out));
    for (ns, app) in [(APP_NS, "batch"), (PLAIN_NS, "plain")] {
        let pod = pod_of(&cluster, ns, &format!("app={app}"));
        assert_eq!(
            names(&pod["spec"]["containers"]),
            [app],
            "{ns}/{app} was injected"
        );
    }

    // meshd counted what it did.
    let metrics = get(&format!("{}/metrics", meshd.debug_url)).expect("meshd /metrics");
    assert!(
        metrics.contains("sidecar_injection_success_total 1"),
        "{metrics}"
    );

    // Validation: the API server sends Istio objects of the revision (label istio.io/rev) to
    // meshd, which refuses an invalid one naming the field, and accepts a valid one.
    let invalid = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: {APP_NS}, labels: {{istio.io/rev: {REVISION}}}}}\nspec:\n  hosts: [web]\n  http:\n  - match:\n    - uri: {{regex: \"(unclosed\"}}\n    route:\n    - destination: {{host: web}}\n"
    );
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &invalid);
    assert!(
        !out.status.success(),
        "an invalid VirtualService was accepted"
    );
    let err = stderr(&out);
    assert!(err.contains("denied the request"), "{err}");
    assert!(err.contains("spec.http[0].match[0].uri"), "{err}");
    let valid = invalid.replace("{regex: \"(unclosed\"}", "{prefix: /}");
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &valid);
    assert!(
        out.status.success(),
        "a valid VirtualService was refused: {}",
        stderr(&out)
    );
    let metrics = get(&format!("{}/metrics", meshd.debug_url)).expect("meshd /metrics");
    assert!(
        metrics.contains("galley_validation_failed_total 1"),
        "{metrics}"
    );

    drop(meshd);
    for ns in [APP_NS, PLAIN_NS] {
        let _ = cluster.kubectl(&["delete", "namespace", ns, "--wait=false"]);
    }
}
