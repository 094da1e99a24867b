//! `meshctl manifest generate` output applied to a real cluster with kubectl, as a user would.

use std::time::Duration;

use mesh_e2e::{stderr, stdout, wait_for, Cluster};

/// Every Deployment in `ns` reports all replicas available (kwok runs the pods).
fn wait_for_deployments(cluster: &Cluster, ns: &str, expected: usize) {
    wait_for(
        &format!("{expected} Deployments available in {ns}"),
        Duration::from_secs(120),
        || {
            let list = cluster.get_json(&["deployments", "-n", ns]);
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let available = items
                .iter()
                .filter(|d| {
                    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
                    d["status"]["availableReplicas"].as_i64().unwrap_or(0) >= want
                })
                .count();
            (items.len() == expected && available == expected).then_some(())
        },
    );
}

#[test]
fn demo_manifest_applies_server_side_and_its_workloads_come_up() {
    let cluster = Cluster::from_env();
    let generated = cluster.meshctl(
        &[
            "manifest",
            "generate",
            "--profile",
            "demo",
            "--set",
            "namespace=e2e-demo",
        ],
        "",
    );
    assert!(generated.status.success(), "{}", stderr(&generated));
    let yaml = stdout(&generated);
    // The CRDs are shared by every installation in the cluster and other tests applied them
    // with other owner labels; taking them over is what a second install with --force does.
    let apply = [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=e2e",
        "-f",
        "-",
    ];
    let out = cluster.kubectl_with_stdin(&apply, &yaml);
    assert!(
        out.status.success(),
        "kubectl apply --server-side refused the demo manifest: {}",
        stderr(&out)
    );
    // meshd, two gateways, prometheus, grafana, kiali, jaeger.
    wait_for_deployments(&cluster, "e2e-demo", 7);

    // Applying the same bytes again changes nothing.
    let again = cluster.kubectl_with_stdin(&apply, &yaml);
    assert!(again.status.success(), "{}", stderr(&again));
    let changed: Vec<&str> = std::str::from_utf8(&again.stdout)
        .expect("utf-8")
        .lines()
        .filter(|l| !l.ends_with("serverside-applied") && !l.ends_with("unchanged"))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
}

#[test]
fn a_manifest_directory_applies_client_side_in_file_order() {
    let cluster = Cluster::from_env();
    let dir = std::env::temp_dir().join(format!("meshctl-e2e-manifest-{}", std::process::id()));
    let dir_str = dir.to_str().expect("utf-8");
    let generated = cluster.meshctl(
        &[
            "manifest",
            "generate",
            "--profile",
            "default",
            "--set",
            "namespace=e2e-dir",
            "-r",
            "dir",
            "-o",
            dir_str,
        ],
        "",
    );
    assert!(generated.status.success(), "{}", stderr(&generated));
    let out = cluster.kubectl(&["apply", "-f", dir_str]);
    assert!(
        out.status.success(),
        "kubectl apply -f DIR failed: {}",
        stderr(&out)
    );
    // meshd-dir and the ingress gateway.
    wait_for_deployments(&cluster, "e2e-dir", 2);
    let hook = cluster.get_json(&[
        "mutatingwebhookconfiguration",
        "meshd-sidecar-injector-dir-e2e-dir",
    ]);
    assert_eq!(
        hook["webhooks"][0]["clientConfig"]["service"]["name"],
        "meshd-dir"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
