//! meshctl as a user runs it: the real binary, its stdout, stderr and exit code.

mod common;

use std::process::Output;

use common::{stderr, stdout};

fn meshctl(args: &[&str]) -> Output {
    meshctl_with_stdin(args, "")
}

fn meshctl_with_stdin(args: &[&str], stdin: &str) -> Output {
    common::run(args, stdin, &[])
}

#[test]
fn profile_list_shows_each_profile_with_what_it_installs() {
    let out = meshctl(&["profile", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("default ")
            && lines[0]
                .contains("installs: base, controlPlane, ingressGateway/mesh-ingressgateway")
    );
    assert!(lines[1].starts_with("demo ") && lines[1].contains("addon/kiali"));
    assert!(lines[2].starts_with("minimal ") && lines[2].ends_with("installs: base, controlPlane"));
    assert!(lines[3].starts_with("empty ") && lines[3].ends_with("installs: nothing"));
}

#[test]
fn profile_dump_prints_the_merged_meshinstall_as_yaml_or_json() {
    let out = meshctl(&["profile", "dump", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml: serde_json::Value = serde_yaml_ng::from_str(&stdout(&out)).expect("yaml");
    assert_eq!(yaml["kind"], "MeshInstall");
    assert_eq!(yaml["spec"]["profile"], "demo");
    assert_eq!(yaml["spec"]["addons"]["kiali"]["enabled"], true);

    let out = meshctl(&[
        "profile",
        "dump",
        "minimal",
        "-o",
        "json",
        "--set",
        "hub=example.com/mesh",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["spec"]["hub"], "example.com/mesh");
    assert_eq!(
        json["spec"]["components"]["ingressGateways"][0]["enabled"],
        false
    );
}

#[test]
fn a_dumped_profile_feeds_back_in_as_an_overlay() {
    let dumped = stdout(&meshctl(&["profile", "dump", "demo"]));
    let from_overlay = meshctl_with_stdin(&["manifest", "generate", "-f", "-"], &dumped);
    let from_profile = meshctl(&["manifest", "generate", "--profile", "demo"]);
    assert!(from_overlay.status.success(), "{}", stderr(&from_overlay));
    assert_eq!(stdout(&from_overlay), stdout(&from_profile));
}

#[test]
fn profile_diff_lists_changed_paths() {
    let out = meshctl(&["profile", "diff", "default", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("~ addons.kiali.enabled: false -> true"),
        "{text}"
    );
    assert!(
        text.contains(
            "~ components.egressGateways[name=mesh-egressgateway].enabled: false -> true"
        ),
        "{text}"
    );
    assert!(
        text.contains("~ meshConfig.accessLogFile: \"\" -> \"/dev/stdout\""),
        "{text}"
    );
    let same = meshctl(&["profile", "diff", "demo", "demo"]);
    assert_eq!(stdout(&same), "profiles demo and demo are the same\n");
}

#[test]
fn manifest_generate_is_byte_identical_across_runs() {
    let a = meshctl(&["manifest", "generate", "--profile", "demo"]);
    let b = meshctl(&["manifest", "generate", "--profile", "demo"]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(!a.stdout.is_empty());
    assert_eq!(a.stdout, b.stdout);
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&stdout(&a))
        .map(|d| serde::Deserialize::deserialize(d).expect("each document parses"))
        .collect();
    assert_eq!(docs.len(), stdout(&a).matches("---\n").count());
    assert!(docs
        .iter()
        .all(|d| d["kind"].is_string() && d["metadata"]["name"].is_string()));
}

fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

#[test]
fn manifest_generate_writes_one_file_per_component_and_removes_stale_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf-8");
    let out = meshctl(&["manifest", "generate", "--profile", "demo", "-o", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = file_names(dir.path());
    assert_eq!(
        files,
        [
            "00-base.yaml",
            "10-control-plane.yaml",
            "20-ingress-gateway-mesh-ingressgateway.yaml",
            "30-egress-gateway-mesh-egressgateway.yaml",
            "40-addon-grafana.yaml",
            "40-addon-jaeger.yaml",
            "40-addon-kiali.yaml",
            "40-addon-prometheus.yaml",
        ]
    );
    std::fs::write(dir.path().join("notes.txt"), "mine").expect("user file");
    let out = meshctl(&["manifest", "generate", "--profile", "minimal", "-o", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = file_names(dir.path());
    assert_eq!(
        files,
        ["00-base.yaml", "10-control-plane.yaml", "notes.txt"]
    );
}

#[test]
fn bad_input_exits_1_with_nothing_on_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: install.meshctl.dev/v1alpha1\nkind: MeshInstall\nspec:\n  meshConfig:\n    enableTracing: maybe\n",
    )
    .expect("write");
    let bad = bad.to_str().expect("utf-8");
    for (args, message) in [
        (
            vec!["manifest", "generate", "--profile", "prod"],
            "unknown profile \"prod\"; known profiles: default, demo, minimal, empty",
        ),
        (
            vec!["manifest", "generate", "-f", bad],
            "bad.yaml:5:20: field spec.meshConfig.enableTracing: invalid type",
        ),
        (
            vec!["manifest", "generate", "--set", "meshConfig.accesLogFile=x"],
            "did you mean meshConfig.accessLogFile",
        ),
        (
            vec!["manifest", "generate", "-f", "/nonexistent.yaml"],
            "cannot read /nonexistent.yaml",
        ),
        (vec!["profile", "dump", "nope"], "unknown profile \"nope\""),
    ] {
        let out = meshctl(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = meshctl(&["manifest", "generate", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = meshctl(&["profile", "diff", "default"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn version_prints_the_version() {
    let out = meshctl(&["version", "--short"]);
    assert_eq!(stdout(&out).trim(), env!("CARGO_PKG_VERSION"));
    let out = meshctl(&["version", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["clientVersion"]["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn dashboard_usage_errors_exit_2() {
    for args in [
        &["dashboard"][..],
        &["dashboard", "nosuchui"],
        &["dashboard", "proxy"],
        &["dashboard", "proxy", "web", "-l", "app=web"],
        &["dashboard", "kiali", "--browser=maybe"],
        &["dashboard", "kiali", "-p", "70000"],
    ] {
        let out = meshctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
}

#[test]
fn dashboard_without_a_cluster_says_where_it_looked() {
    let out = meshctl(&[
        "dashboard",
        "kiali",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("cannot read kubeconfig /nonexistent/kubeconfig"),
        "{}",
        stderr(&out)
    );
}
