//! The generated CRDs against a real kube-apiserver: accepted (structural schemas, within the
//! size client-side apply can record), established, and keeping every field of real Istio YAML.

use std::time::Duration;

use mesh_e2e::{repo_root, stderr, wait_for, Cluster};
use serde_json::Value;

fn documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("fixture");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .filter(|d: &Value| !d.is_null())
        .collect()
}

fn ensure_namespace(cluster: &Cluster, ns: &str) {
    let manifest = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n");
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &manifest);
    assert!(out.status.success(), "namespace {ns}: {}", stderr(&out));
}

#[test]
fn generated_crds_are_accepted_established_and_keep_every_istio_field() {
    let cluster = Cluster::from_env();
    let generated = repo_root().join("crds/generated");

    // Client-side apply records the whole object in an annotation: this also proves each CRD is
    // small enough for a plain `kubectl apply -f`.
    let out = cluster.kubectl(&["apply", "-f", generated.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "kubectl apply of crds/generated failed: {}",
        stderr(&out)
    );

    let mut names = Vec::new();
    for entry in std::fs::read_dir(&generated).expect("crds/generated") {
        let path = entry.expect("entry").path();
        let crd = &documents(&path)[0];
        names.push(crd["metadata"]["name"].as_str().expect("name").to_owned());
    }
    assert_eq!(names.len(), 10, "{names:?}");
    for name in &names {
        wait_for(
            &format!("CRD {name} to be Established"),
            Duration::from_secs(60),
            || {
                let crd = cluster.get_json(&["crd", name]);
                let established = crd["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Established" && c["status"] == "True");
                established.then_some(())
            },
        );
    }

    let fixtures = repo_root().join("crds/tests/fixtures/istio");
    let mut checked = 0;
    for entry in std::fs::read_dir(&fixtures).expect("fixtures") {
        let path = entry.expect("entry").path();
        for doc in documents(&path) {
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
            ensure_namespace(&cluster, ns);
            let text = serde_json::to_string(&doc).expect("json");
            let out = cluster.kubectl_with_stdin(
                &["apply", "--server-side", "--field-manager=e2e", "-f", "-"],
                &text,
            );
            assert!(
                out.status.success(),
                "{}: the API server refused {}: {}",
                path.display(),
                doc["metadata"]["name"],
                stderr(&out)
            );

            let kind = doc["kind"].as_str().expect("kind").to_lowercase();
            let group = doc["apiVersion"]
                .as_str()
                .expect("apiVersion")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let name = doc["metadata"]["name"].as_str().expect("name");
            let live = cluster.get_json(&[&format!("{kind}.{group}"), name, "-n", ns]);
            assert_eq!(
                live["spec"],
                doc["spec"],
                "{}: {kind} {ns}/{name} lost or changed fields in the API server (schema pruning)",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} fixture documents checked");
}

#[test]
fn invalid_istio_objects_are_refused_by_the_schema() {
    let cluster = Cluster::from_env();
    ensure_namespace(&cluster, "e2e-invalid");
    let out = cluster.kubectl(&[
        "apply",
        "-f",
        repo_root().join("crds/generated").to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("VirtualService CRD", Duration::from_secs(60), || {
        cluster
            .kubectl(&[
                "get",
                "virtualservices.networking.istio.io",
                "-n",
                "e2e-invalid",
            ])
            .status
            .success()
            .then_some(())
    });
    let bad = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: bad-lb
  namespace: e2e-invalid
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBBIN
"#;
    let out = cluster.kubectl_with_stdin(&["apply", "--server-side", "-f", "-"], bad);
    assert!(!out.status.success(), "a misspelt enum value was accepted");
    assert!(stderr(&out).contains("ROUND_ROBBIN"), "{}", stderr(&out));
}
