//! The operator rides out a kube-apiserver restart: after the API server comes back it still
//! repairs drift and applies spec changes, with nothing lost or duplicated.
//!
//! A test binary of its own, so no other test runs while the API server is down.

use std::process::Command;
use std::time::Duration;

use mesh_e2e::{repo_root, stderr, wait_for, Cluster, Operator};

const NS: &str = "e2e-restart";

fn install(cluster: &Cluster, extra: &[&str]) {
    let mut args = vec![
        "install",
        "--profile",
        "minimal",
        "-y",
        "-r",
        "restart",
        "--readiness-timeout",
        "90s",
        "--set",
        "namespace=e2e-restart",
        // The shared CRDs are other tests' to own.
        "--set",
        "components.base.enabled=false",
    ];
    args.extend_from_slice(extra);
    let out = cluster.meshctl(&args, "");
    assert!(out.status.success(), "install {extra:?}: {}", stderr(&out));
}

fn deployment_names(cluster: &Cluster) -> Vec<String> {
    let list = cluster.get_json(&["deployments", "-n", NS]);
    let mut names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[test]
fn the_operator_converges_after_the_api_server_restarts() {
    let cluster = Cluster::from_env();
    let _operator = Operator::start_in(&cluster, NS);
    install(&cluster, &[]);
    let before = deployment_names(&cluster);
    assert_eq!(before, ["mesh-operator", "meshd-restart"]);

    let out = Command::new(repo_root().join("e2e/cluster.sh"))
        .arg("restart-apiserver")
        .output()
        .expect("cluster.sh runs");
    assert!(
        out.status.success(),
        "restart-apiserver: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Drift made after the restart is repaired: the operator's watches came back.
    cluster.kubectl_ok(&[
        "delete",
        "deployment",
        "meshd-restart",
        "-n",
        NS,
        "--wait=true",
    ]);
    wait_for(
        "meshd-restart to be restored after the restart",
        Duration::from_secs(90),
        || {
            cluster
                .kubectl(&["get", "deployment", "meshd-restart", "-n", NS])
                .status
                .success()
                .then_some(())
        },
    );

    // A spec change after the restart is applied and reaches Healthy again.
    install(
        &cluster,
        &[
            "--set",
            "components.controlPlane.k8s.podAnnotations.e2e/restarted=yes",
        ],
    );
    let meshd = cluster.get_json(&["deployment", "meshd-restart", "-n", NS]);
    assert_eq!(
        meshd["spec"]["template"]["metadata"]["annotations"]["e2e/restarted"],
        "yes"
    );
    assert_eq!(deployment_names(&cluster), before, "nothing duplicated");
    // One live ReplicaSet of the current Deployment: the operator did not roll it twice.
    // (ReplicaSets of the Deployment deleted above are the garbage collector's, which can lag
    // behind an API server restart; they are not the operator's to count.)
    let uid = meshd["metadata"]["uid"].clone();
    wait_for("one live meshd ReplicaSet", Duration::from_secs(60), || {
        let rs = cluster.get_json(&["replicasets", "-n", NS, "-l", "app=meshd"]);
        let live = rs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["metadata"]["ownerReferences"][0]["uid"] == uid)
            .filter(|r| r["spec"]["replicas"].as_i64().unwrap_or(0) > 0)
            .count();
        (live == 1).then_some(())
    });

    let out = cluster.meshctl(&["uninstall", "-r", "restart", "-y"], "");
    assert!(out.status.success(), "uninstall: {}", stderr(&out));
}
