//! `meshctl install`, `verify-install` and `uninstall` against the real local cluster, with the
//! real operator running as a local process (kwok only fakes the in-cluster replica's pod).
//!
//! Everything lives in the namespace `e2e-install`, so this file does not meet the namespaces of
//! `manifest.rs` when both run against the same cluster.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mesh_e2e::{free_port, meshctl_bin, stderr, stdout, wait_for, Cluster, Operator};

const NS: &str = "e2e-install";
const NS_SET: &str = "namespace=e2e-install";

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn deployments(cluster: &Cluster) -> Vec<String> {
    let list = cluster.get_json(&["deployments", "-n", NS]);
    let mut names: Vec<String> = list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|d| d["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn resource_version(cluster: &Cluster, args: &[&str]) -> String {
    cluster.get_json(args)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Objects carrying this file's owner labels, as `kind/name` lines.
fn owned_objects(cluster: &Cluster) -> Vec<String> {
    let out = cluster.kubectl(&[
        "get",
        "deployments,services,configmaps,serviceaccounts,roles,rolebindings,clusterroles,clusterrolebindings,horizontalpodautoscalers,poddisruptionbudgets,mutatingwebhookconfigurations,validatingwebhookconfigurations",
        "-A",
        "-l",
        &format!("install.meshctl.dev/owner-namespace={NS}"),
        "-o",
        "name",
    ]);
    stdout(&out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn namespace_exists(cluster: &Cluster) -> bool {
    cluster.kubectl(&["get", "namespace", NS]).status.success()
}

#[test]
fn install_verify_reinstall_diff_prune_and_uninstall() {
    let cluster = Cluster::from_env();
    let _operator = Operator::start_in(&cluster, NS);

    // Leftovers of an earlier, interrupted run.
    let _ = cluster.meshctl(&["uninstall", "-y"], "");
    if namespace_exists(&cluster) {
        let _ = cluster.kubectl(&["delete", "namespace", NS, "--wait=false"]);
        wait_for(
            "the old test namespace to go",
            Duration::from_secs(120),
            || (!namespace_exists(&cluster)).then_some(()),
        );
    }

    // CRDs that belong to another installation are not taken over without --force (other test
    // files apply the same CRDs with their own owner labels, so they are labelled here).
    let crd = "virtualservices.networking.istio.io";
    if !cluster.kubectl(&["get", "crd", crd]).status.success() {
        let path = mesh_e2e::repo_root().join(format!("crds/generated/{crd}.yaml"));
        let path = path.to_string_lossy().into_owned();
        cluster.kubectl_ok(&["apply", "--server-side", "--field-manager=e2e", "-f", &path]);
    }
    let names = cluster.kubectl_ok(&["get", "crd", "-o", "name"]);
    for name in names.lines().filter(|n| n.ends_with(".istio.io")) {
        cluster.kubectl_ok(&[
            "label",
            name,
            "--overwrite",
            "install.meshctl.dev/owner-name=other",
            "install.meshctl.dev/owner-namespace=elsewhere",
        ]);
    }
    let out = cluster.meshctl(&["install", "--profile", "demo", "--set", NS_SET, "-y"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("belongs to another installation, MeshInstall elsewhere/other"),
        "{}",
        stderr(&out)
    );
    assert!(!namespace_exists(&cluster));

    // Without a terminal and without -y, install refuses before touching anything.
    let out = cluster.meshctl(
        &["install", "--profile", "demo", "--set", NS_SET, "--force"],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass -y"), "{}", stderr(&out));
    assert!(!namespace_exists(&cluster));

    // --dry-run says what it would create and applies nothing.
    let out = cluster.meshctl(
        &[
            "install",
            "--profile",
            "demo",
            "--set",
            NS_SET,
            "--dry-run",
            "--force",
        ],
        "",
    );
    let text = ok(&out, "install --dry-run");
    assert!(
        text.contains(&format!("Deployment {NS}/mesh-operator created (dry run)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("MeshInstall {NS}/default created (dry run)")),
        "{text}"
    );
    assert!(
        !namespace_exists(&cluster),
        "--dry-run created the namespace"
    );

    // The demo install reaches Healthy (--force takes the CRDs over).
    let started = Instant::now();
    let out = cluster.meshctl(
        &[
            "install",
            "--profile",
            "demo",
            "--set",
            NS_SET,
            "-y",
            "--force",
            "--readiness-timeout",
            "3m",
        ],
        "",
    );
    let took = started.elapsed();
    let text = ok(&out, "install --profile demo");
    eprintln!("install --profile demo → Healthy took {took:.1?}");
    assert!(text.contains("✔ installed in"), "{text}");
    assert!(text.contains("✔ controlPlane"), "{text}");
    let mi = cluster.get_json(&["meshinstall", "default", "-n", NS]);
    assert_eq!(mi["status"]["phase"], "Healthy");
    assert_eq!(
        mi["status"]["observedGeneration"],
        mi["metadata"]["generation"]
    );
    for name in [
        "grafana",
        "jaeger",
        "kiali",
        "mesh-egressgateway",
        "mesh-ingressgateway",
        "mesh-operator",
        "meshd",
        "prometheus",
    ] {
        assert!(
            deployments(&cluster).contains(&name.to_owned()),
            "no Deployment {name}"
        );
    }

    // Installing the same input again changes nothing.
    let generation = mi["metadata"]["generation"].clone();
    let mesh_cm = resource_version(&cluster, &["configmap", "mesh", "-n", NS]);
    let operator_rv = resource_version(&cluster, &["deployment", "mesh-operator", "-n", NS]);
    let out = cluster.meshctl(&["install", "--profile", "demo", "--set", NS_SET, "-y"], "");
    ok(&out, "second install");
    let mi = cluster.get_json(&["meshinstall", "default", "-n", NS]);
    assert_eq!(mi["metadata"]["generation"], generation);
    assert_eq!(
        resource_version(&cluster, &["configmap", "mesh", "-n", NS]),
        mesh_cm
    );
    assert_eq!(
        resource_version(&cluster, &["deployment", "mesh-operator", "-n", NS]),
        operator_rv
    );
    let out = cluster.meshctl(
        &["install", "--profile", "demo", "--set", NS_SET, "--dry-run"],
        "",
    );
    let text = ok(&out, "install --dry-run after install");
    assert!(
        text.lines().all(|l| l.ends_with("unchanged (dry run)")),
        "{text}"
    );

    // verify-install passes.
    let out = cluster.meshctl(
        &["verify-install", "--profile", "demo", "--set", NS_SET],
        "",
    );
    let text = ok(&out, "verify-install");
    assert!(text.contains(&format!("✔ Deployment {NS}/meshd")), "{text}");
    assert!(!text.contains('✘'), "{text}");

    // --diff shows a changed --set and applies nothing.
    let out = cluster.meshctl(
        &[
            "install",
            "--profile",
            "demo",
            "--set",
            NS_SET,
            "--set",
            "meshConfig.accessLogEncoding=JSON",
            "--diff",
        ],
        "",
    );
    let text = ok(&out, "install --diff");
    assert!(
        text.contains(&format!("--- ConfigMap {NS}/mesh (live)")),
        "{text}"
    );
    assert!(text.contains("-    accessLogEncoding: TEXT"), "{text}");
    assert!(text.contains("+    accessLogEncoding: JSON"), "{text}");
    let cm = cluster.get_json(&["configmap", "mesh", "-n", NS]);
    assert!(cm["data"]["mesh"]
        .as_str()
        .unwrap_or_default()
        .contains("accessLogEncoding: TEXT"));

    // The minimal profile prunes the gateways and add-ons.
    let out = cluster.meshctl(
        &["install", "--profile", "minimal", "--set", NS_SET, "-y"],
        "",
    );
    ok(&out, "install --profile minimal");
    wait_for(
        "the gateways and add-ons to be pruned",
        Duration::from_secs(60),
        || {
            let names = deployments(&cluster);
            (names == ["mesh-operator", "meshd"]).then_some(())
        },
    );
    let out = cluster.meshctl(
        &["verify-install", "--profile", "demo", "--set", NS_SET],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("✘ Deployment {NS}/grafana: missing")),
        "{}",
        stdout(&out)
    );

    // uninstall removes everything the install owns, the webhooks and the ClusterRoles.
    let out = cluster.meshctl(&["uninstall", "-y"], "");
    ok(&out, "uninstall");
    assert!(
        !stderr(&out).contains("left"),
        "the operator left objects behind: {}",
        stderr(&out)
    );
    wait_for(
        "no object with the owner labels",
        Duration::from_secs(60),
        || owned_objects(&cluster).is_empty().then_some(()),
    );
    for (kind, name) in [
        ("clusterrole", "mesh-operator-e2e-install"),
        ("clusterrolebinding", "mesh-operator-e2e-install"),
        ("clusterrole", "meshd-e2e-install"),
        (
            "mutatingwebhookconfiguration",
            "meshd-sidecar-injector-e2e-install",
        ),
        (
            "validatingwebhookconfiguration",
            "meshd-validator-e2e-install",
        ),
    ] {
        let out = cluster.kubectl(&["get", kind, name]);
        assert!(!out.status.success(), "{kind} {name} is still there");
    }
    let out = cluster.kubectl(&["get", "meshinstalls", "-n", NS, "-o", "name"]);
    assert!(stdout(&out).trim().is_empty(), "{}", stdout(&out));
}

#[test]
fn an_unreachable_cluster_is_one_line() {
    let port = free_port();
    let kubeconfig = std::env::temp_dir().join(format!(
        "meshctl-e2e-closed-{}.kubeconfig",
        std::process::id()
    ));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: closed\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: closed-ctx\n  context:\n    cluster: closed\n    user: u\ncurrent-context: closed-ctx\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .expect("write kubeconfig");
    for args in [
        vec!["install", "--profile", "demo", "-y"],
        vec!["uninstall", "-y"],
        vec!["verify-install"],
    ] {
        let out = Command::new(meshctl_bin())
            .args(&args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .stdin(Stdio::null())
            .output()
            .expect("run meshctl");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with(&format!(
                "error: cannot reach the cluster of context \"closed-ctx\" at https://127.0.0.1:{port}/: "
            )),
            "{err}"
        );
        assert!(
            err.contains(
                "start the local cluster with e2e/cluster.sh up, or pass --kubeconfig/--context"
            ),
            "{err}"
        );
        assert!(stdout(&out).is_empty());
    }
    let _ = std::fs::remove_file(&kubeconfig);
}

#[test]
fn a_missing_permission_is_named_and_nothing_is_applied() {
    let cluster = Cluster::from_env();
    let sa = "e2e-install-limited";
    let _ = cluster.kubectl(&["create", "serviceaccount", sa, "-n", "default"]);
    let token = cluster.kubectl_ok(&["create", "token", sa, "-n", "default"]);
    let server = cluster.kubectl_ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let kubeconfig = std::env::temp_dir().join(format!(
        "meshctl-e2e-limited-{}.kubeconfig",
        std::process::id()
    ));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: limited\n  context:\n    cluster: c\n    user: u\ncurrent-context: limited\nusers:\n- name: u\n  user:\n    token: {}\n",
            server.trim(),
            token.trim()
        ),
    )
    .expect("write kubeconfig");
    let out = Command::new(meshctl_bin())
        .args([
            "install",
            "--profile",
            "minimal",
            "--set",
            "namespace=e2e-install-denied",
            "-y",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .stdin(Stdio::null())
        .output()
        .expect("run meshctl");
    let _ = std::fs::remove_file(&kubeconfig);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: missing permission: create "),
        "{}",
        stderr(&out)
    );
    assert!(
        !cluster
            .kubectl(&["get", "namespace", "e2e-install-denied"])
            .status
            .success(),
        "something was applied"
    );
}

/// A component that cannot become ready makes install give up at the readiness timeout, naming
/// the component and why (from its pods), with a non-zero exit.
#[test]
fn a_readiness_timeout_names_the_component_and_why() {
    let cluster = Cluster::from_env();
    let ns = "e2e-timeout";
    let _operator = Operator::start_in(&cluster, ns);
    let started = Instant::now();
    let out = cluster.meshctl(
        &[
            "install",
            "--profile",
            "minimal",
            "-y",
            "--readiness-timeout",
            // Long enough for a busy controller-manager to have created the pods, so that the
            // reason is the scheduler's, not "rollout not started".
            "45s",
            // A revision of its own, so its uninstall cannot touch the other test's `default`.
            "-r",
            "timeout",
            "--set",
            "namespace=e2e-timeout",
            // The CRDs belong to the other test's installation; this one leaves them alone.
            "--set",
            "components.base.enabled=false",
            "--set",
            "components.controlPlane.k8s.nodeSelector.no-such-node=true",
        ],
        "",
    );
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        stdout(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    let text = format!("{}{err}", stdout(&out));
    assert!(text.contains("controlPlane"), "{text}");
    assert!(text.to_lowercase().contains("unschedulable"), "{text}");

    let out = cluster.meshctl(&["uninstall", "-r", "timeout", "-y"], "");
    assert!(out.status.success(), "{}", stderr(&out));
}
