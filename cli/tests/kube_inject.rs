//! `meshctl kube-inject` as a user runs it: golden files of sample applications, idempotence,
//! upgrades, the input forms, and bad input. `UPDATE_GOLDEN=1 cargo test -p meshctl --test
//! kube_inject` rewrites the golden files after an intended change; review their diff.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{stderr, stdout};

/// Offline: the embedded default profile, never a developer's cluster.
fn meshctl(args: &[&str], stdin: &str) -> Output {
    common::offline(args, stdin)
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube_inject")
}

fn input(name: &str) -> String {
    dir()
        .join("input")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn sample_applications_match_their_golden_files_and_reinject_unchanged() {
    for name in [
        "bookinfo.yaml",
        "httpbin-sleep.yaml",
        "mixed-kinds.json",
        "batch-and-system.yaml",
    ] {
        let out = meshctl(&["kube-inject", "-f", &input(name)], "");
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let golden = dir().join("golden").join(format!("{name}.injected.yaml"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &out.stdout).expect("write golden");
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", golden.display()));
        assert_eq!(
            stdout(&out),
            expected,
            "{name} differs from {}",
            golden.display()
        );

        // Injecting the output again changes nothing.
        let again = meshctl(&["kube-inject", "-f", "-"], &stdout(&out));
        assert!(again.status.success(), "{name}: {}", stderr(&again));
        assert_eq!(
            stdout(&again),
            stdout(&out),
            "{name}: re-injection changed the output"
        );
    }
}

#[test]
fn untouched_documents_keep_their_text_and_every_document_keeps_its_place() {
    let out = meshctl(&["kube-inject", "-f", &input("batch-and-system.yaml")], "");
    let text = stdout(&out);
    assert!(text
        .contains("spec: {color: blue, zeta: 1, alpha: 2}   # field order and this comment stay"));
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "CronJob",
            "Job",
            "DaemonSet",
            "Deployment",
            "CustomResourceDefinition",
            "Widget",
            "Rollout"
        ]
    );
    assert_eq!(
        text.matches("\n---\n").count(),
        7,
        "each document followed by ---"
    );
    let said = stderr(&out);
    for line in [
        "DaemonSet monitoring/node-exporter: not injected: hostNetwork pods share the node's network and are never injected",
        "Deployment kube-system/coredns-extra: not injected: namespace kube-system is a Kubernetes system namespace",
        "warning: ",
        "Rollout canary: kind Rollout is not a workload kind meshctl injects",
    ] {
        assert!(said.contains(line), "{line:?} in {said}");
    }
}

#[test]
fn directories_stdin_and_output_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_file = tmp.path().join("out.yaml");
    let out = meshctl(
        &[
            "kube-inject",
            "-f",
            &dir().join("input").to_string_lossy(),
            "-o",
            &out_file.to_string_lossy(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let written = std::fs::read_to_string(&out_file).expect("output file");
    // Every input file, in path order.
    let first_kinds: Vec<usize> = [
        "kind: CronJob",
        "kind: Service",
        "name: httpbin",
        "kind: List",
    ]
    .iter()
    .map(|k| written.find(k).unwrap_or(usize::MAX))
    .collect();
    assert!(
        first_kinds.windows(2).all(|w| w[0] < w[1]),
        "{first_kinds:?}"
    );

    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n";
    let out = meshctl(&["kube-inject", "-f", "-"], pod);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("- name: istio-proxy"));
}

#[test]
fn revisions_and_config_files_change_the_sidecar() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n";
    let out = meshctl(&["kube-inject", "-f", "-", "--revision", "canary"], pod);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("meshd-canary.mesh-system.svc:15012"),
        "{text}"
    );
    assert!(
        text.contains("\\\"revision\\\":\\\"canary\\\"")
            || text.contains("\"revision\":\"canary\""),
        "{text}"
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let inject = tmp.path().join("inject.yaml");
    std::fs::write(
        &inject,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mesh-sidecar-injector}\ndata:\n  values: '{\"proxyImage\": \"registry.local/proxy:dev\", \"meshdAddress\": \"meshd.other.svc:15012\"}'\n  config: 'policy: enabled'\n",
    )
    .expect("write");
    let mesh = tmp.path().join("mesh.yaml");
    std::fs::write(
        &mesh,
        "trustDomain: example.org\ndefaultConfig:\n  holdApplicationUntilProxyStarts: true\n",
    )
    .expect("write");
    let out = meshctl(
        &[
            "kube-inject",
            "-f",
            "-",
            "--injectConfigFile",
            &inject.to_string_lossy(),
            "--meshConfigFile",
            &mesh.to_string_lossy(),
        ],
        pod,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("image: registry.local/proxy:dev"), "{text}");
    assert!(text.contains("value: example.org"), "{text}");
    // Hold: the proxy is the first container.
    let containers = text.find("  containers:").expect("containers");
    assert!(
        text[containers..]
            .trim_start_matches("  containers:\n")
            .starts_with("  - name: istio-proxy"),
        "{text}"
    );
}

#[test]
fn invalid_yaml_names_file_line_and_column_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n").expect("write");
    let out_file = tmp.path().join("out.yaml");
    let out = meshctl(
        &[
            "kube-inject",
            "-f",
            &bad.to_string_lossy(),
            "-o",
            &out_file.to_string_lossy(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(!out_file.exists(), "nothing written to -o");
    let said = stderr(&out);
    assert!(said.contains(&format!("{}:8:", bad.display())), "{said}");
    assert!(said.contains("invalid YAML"), "{said}");
}

#[test]
fn a_bad_annotation_names_the_place_and_the_workload() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {traffic.sidecar.istio.io/excludeOutboundPorts: \"ssh\"}\nspec: {containers: [{name: c, image: i}]}\n";
    let out = meshctl(
        &["kube-inject", "-f", "-"],
        &format!("kind: ConfigMap\n---\n{pod}"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("<stdin>:3: Pod p: annotation traffic.sidecar.istio.io/excludeOutboundPorts: \"ssh\" is not a port"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["kube-inject"][..],
        &[
            "kube-inject",
            "-f",
            "x",
            "--profile",
            "demo",
            "--from-cluster",
        ],
    ] {
        let out = meshctl(args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = meshctl(&["kube-inject", "-f", "/nonexistent.yaml"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read /nonexistent.yaml"),
        "{}",
        stderr(&out)
    );
}
