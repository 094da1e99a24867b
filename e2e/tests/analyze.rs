//! `meshctl analyze` against the real cluster: what it reads from the API server (origin null,
//! real pods made by the controllers and kwok), files laid over the cluster's objects, the
//! namespace scope, and opt-outs. Namespaces are `analyze-e2e-<pid>-*`, deleted afterwards.

use std::time::Duration;

use mesh_e2e::{stderr, stdout, wait_for, Cluster};
use serde_json::Value;

struct Namespaces<'c> {
    cluster: &'c Cluster,
    names: Vec<String>,
}

impl Drop for Namespaces<'_> {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = self
                .cluster
                .kubectl(&["delete", "namespace", ns, "--wait=false"]);
        }
    }
}

fn apply(cluster: &Cluster, yaml: &str) {
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], yaml);
    assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
}

fn analyze(cluster: &Cluster, args: &[&str]) -> (i32, Vec<Value>) {
    let mut full = vec!["analyze", "-o", "json"];
    full.extend_from_slice(args);
    let out = cluster.meshctl(&full, "");
    let messages: Vec<Value> = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap_or(-1), messages)
}

fn has(messages: &[Value], code: &str, kind: &str, name: &str) -> bool {
    messages.iter().any(|m| {
        m["code"] == code
            && m["resource"]["kind"] == kind
            && m["resource"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(name))
    })
}

fn shop(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels: {{istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{name: web, port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web, version: v1}}}}
    spec: {{containers: [{{name: web, image: shop/web:1}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: batch, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: batch}}}}
  template:
    metadata: {{labels: {{app: batch, sidecar.istio.io/inject: "false"}}}}
    spec: {{containers: [{{name: batch, image: shop/batch:1}}]}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web, namespace: {ns}}}
spec:
  host: web
  subsets: [{{name: v1, labels: {{version: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: {ns}}}
spec:
  hosts: [web]
  http: [{{route: [{{destination: {{host: web, subset: v2}}}}]}}]
"#
    )
}

#[test]
fn analyze_reads_the_cluster_and_lays_files_over_it() {
    let cluster = Cluster::from_env();
    mesh_e2e::ensure_crds(&cluster);
    let prefix = format!("analyze-e2e-{}", std::process::id());
    let ns = format!("{prefix}-shop");
    let other = format!("{prefix}-other");
    let _cleanup = Namespaces {
        cluster: &cluster,
        names: vec![ns.clone(), other.clone()],
    };
    wait_for(
        "the VirtualService CRD to serve",
        Duration::from_secs(60),
        || {
            cluster
                .kubectl(&["get", "virtualservices.networking.istio.io", "-A"])
                .status
                .success()
                .then_some(())
        },
    );
    apply(&cluster, &shop(&ns));
    apply(&cluster, &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {other}}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: lost, namespace: {other}}}\nspec:\n  hosts: [lost]\n  http: [{{route: [{{destination: {{host: nowhere}}}}]}}]\n"));
    // The controllers make the pods and kwok runs them; neither has a proxy (no webhook runs).
    wait_for("both pods", Duration::from_secs(90), || {
        let pods = cluster.get_json(&["pods", "-n", &ns]);
        (pods["items"].as_array().map_or(0, Vec::len) == 2).then_some(())
    });

    let (code, messages) = analyze(&cluster, &["-n", &ns]);
    assert_eq!(code, 79, "{messages:#?}");
    assert!(
        has(&messages, "IST0101", "VirtualService", "web"),
        "{messages:#?}"
    );
    assert!(has(&messages, "IST0118", "Service", "web"), "{messages:#?}");
    // The pod of web is missing its proxy; batch's opted out, so it is not reported.
    assert!(has(&messages, "IST0103", "Pod", "web-"), "{messages:#?}");
    assert!(!has(&messages, "IST0103", "Pod", "batch-"), "{messages:#?}");
    // Objects read from the cluster have no file origin; nothing of the other namespace shows.
    assert!(
        messages.iter().all(|m| m["origin"].is_null()),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .all(|m| m["resource"]["namespace"] == ns.as_str()
                || m["resource"]["name"] == ns.as_str()),
        "{messages:#?}"
    );

    // -A reports the other namespace too.
    let (_, all) = analyze(&cluster, &["-A"]);
    assert!(has(&all, "IST0101", "VirtualService", "lost"), "{all:#?}");

    // A fixed VirtualService in a file replaces the cluster's before it is applied ...
    let dir = tempfile_dir();
    let fixed = dir.join("fixed.yaml");
    std::fs::write(&fixed, format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  hosts: [web]\n  http:\n  - route:\n    - destination:\n        host: web\n        subset: v1\n")).expect("write");
    let (_, over) = analyze(&cluster, &["-n", &ns, fixed.to_str().expect("utf-8")]);
    assert!(!has(&over, "IST0101", "VirtualService", "web"), "{over:#?}");
    assert!(
        has(&over, "IST0103", "Pod", "web-"),
        "the cluster's objects are still analysed: {over:#?}"
    );
    // ... and a new mistake in a file is reported with its file and line.
    let broken = dir.join("broken.yaml");
    std::fs::write(&broken, format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  hosts: [web]\n  http:\n  - route:\n    - destination:\n        host: web\n        subset: v3\n")).expect("write");
    let (code, over) = analyze(&cluster, &["-n", &ns, broken.to_str().expect("utf-8")]);
    assert_eq!(code, 79);
    let m = over
        .iter()
        .find(|m| m["code"] == "IST0101" && m["resource"]["name"] == "web")
        .unwrap_or_else(|| panic!("{over:#?}"));
    assert_eq!(m["origin"]["file"], broken.to_str().expect("utf-8"));
    assert_eq!(m["origin"]["line"], 10);
    assert!(
        m["message"].as_str().unwrap_or("").contains("web+v3"),
        "{m}"
    );

    // Suppression and thresholds apply to cluster findings as to files'.
    let (code, quiet) = analyze(
        &cluster,
        &["-n", &ns, "-S", "IST0101=VirtualService *", "-S", "IST0103"],
    );
    assert_eq!(code, 0, "{quiet:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreachable_cluster_is_an_error_that_says_what_to_do() {
    let dir = tempfile_dir();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n").expect("write");
    let out = std::process::Command::new(mesh_e2e::meshctl_bin())
        .args([
            "analyze",
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8"),
            "--timeout",
            "20s",
        ])
        .output()
        .expect("meshctl runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach the cluster of context \"x\""),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "meshctl-analyze-e2e-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn a_user_who_may_read_one_namespace_gets_it_analysed_without_false_alarms() {
    let cluster = Cluster::from_env();
    mesh_e2e::ensure_crds(&cluster);
    let ns = format!("analyze-e2e-{}-rbac", std::process::id());
    let _cleanup = Namespaces {
        cluster: &cluster,
        names: vec![ns.clone()],
    };
    apply(&cluster, &shop(&ns));
    // A policy naming a namespace that exists but that this user cannot see.
    apply(
        &cluster,
        &format!(
            r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: from-system, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  rules: [{{from: [{{source: {{namespaces: [kube-system]}}}}]}}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: reader, namespace: {ns}}}
rules:
- apiGroups: ["", apps, batch, networking.istio.io, security.istio.io]
  resources: ["*"]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {ns}}}]
"#
        ),
    );
    let token = wait_for("a token for the reader", Duration::from_secs(30), || {
        let out = cluster.kubectl(&["create", "token", "reader", "-n", &ns]);
        out.status.success().then(|| stdout(&out).trim().to_owned())
    });
    let view: Value = serde_json::from_str(
        &cluster.kubectl_ok(&["config", "view", "--raw", "--minify", "-o", "json"]),
    )
    .expect("kubeconfig");
    let server = view["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("server");
    let ca = view["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("CA");
    let dir = tempfile_dir();
    let kubeconfig = dir.join("reader");
    std::fs::write(&kubeconfig, format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\", certificate-authority-data: {ca}}}}}]\nusers: [{{name: reader, user: {{token: \"{token}\"}}}}]\ncontexts: [{{name: reader, context: {{cluster: c, user: reader, namespace: {ns}}}}}]\ncurrent-context: reader\n")).expect("write");

    let out = std::process::Command::new(mesh_e2e::meshctl_bin())
        .args([
            "analyze",
            "-o",
            "json",
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8"),
        ])
        .output()
        .expect("meshctl runs");
    let err = stderr(&out);
    let messages: Vec<Value> = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {} {err}", stdout(&out)));
    assert_eq!(out.status.code(), Some(79), "{err} {messages:#?}");
    // The context's namespace was read and analysed ...
    assert!(
        has(&messages, "IST0101", "VirtualService", "web"),
        "{messages:#?}"
    );
    assert!(err.contains("cannot list namespaces"), "{err}");
    assert!(
        err.contains(&format!("read those of namespace {ns} only")),
        "{err}"
    );
    // ... and what could not be seen is not reported missing.
    assert!(
        !has(&messages, "IST0101", "AuthorizationPolicy", "from-system"),
        "{messages:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
