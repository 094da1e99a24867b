//! `meshctl analyze` as a user runs it, without a cluster: formats, thresholds, suppressions,
//! exit codes and bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{stderr, stdout};

use serde_json::Value;

/// `meshctl analyze ARGS`, never against a developer's cluster.
fn meshctl(args: &[&str], stdin: &str) -> Output {
    let mut full = vec!["analyze"];
    full.extend_from_slice(args);
    common::offline(&full, stdin)
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/analyze")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn bookinfo() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../analyze/tests/fixtures/bookinfo")
        .to_string_lossy()
        .into_owned()
}

fn json(o: &Output) -> Vec<Value> {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn a_clean_sample_application_exits_0() {
    let out = meshctl(&["--use-kube=false", &bookinfo()], "");
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("No validation issues found"),
        "{}",
        stderr(&out)
    );
    let out = meshctl(&["--use-kube=false", "-o", "json", &bookinfo()], "");
    assert_eq!(code(&out), 0);
    assert_eq!(json(&out), Vec::<Value>::new());
}

#[test]
fn log_lines_name_level_code_resource_file_and_line() {
    let out = meshctl(&["--use-kube=false", &fixture("shop.yaml")], "");
    assert_eq!(code(&out), 79, "{}", stderr(&out));
    let text = stdout(&out);
    let file = fixture("shop.yaml");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with(&format!(
            "Info [IST0118] (Service shop/web {file}:20) Port web (port: 80, targetPort: 8080)"
        )),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with(&format!("Warning [IST0107] (Deployment shop/web {file}:30) Misplaced annotation: sidecar.istio.io/inject")), "{}", lines[1]);
    assert!(lines[2].starts_with(&format!("Error [IST0101] (VirtualService shop/web {file}:69) Referenced host+subset in destinationrule not found: \"web+v2\"")), "{}", lines[2]);
}

#[test]
fn json_has_exactly_the_documented_fields() {
    let out = meshctl(
        &["--use-kube=false", "-o", "json", &fixture("shop.yaml")],
        "",
    );
    assert_eq!(code(&out), 79);
    let messages = json(&out);
    assert_eq!(messages.len(), 3);
    let error = &messages[2];
    let mut keys: Vec<&str> = error
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "code",
            "documentationUrl",
            "level",
            "message",
            "name",
            "origin",
            "resource"
        ]
    );
    assert_eq!(error["code"], "IST0101");
    assert_eq!(error["name"], "ReferencedResourceNotFound");
    assert_eq!(error["level"], "Error");
    assert_eq!(
        error["resource"],
        serde_json::json!({"kind": "VirtualService", "namespace": "shop", "name": "web"})
    );
    assert_eq!(
        error["origin"],
        serde_json::json!({"file": fixture("shop.yaml"), "line": 69})
    );
    assert_eq!(
        error["documentationUrl"],
        "https://meshctl.dev/docs/analyze/#ist0101"
    );
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("defines [\"v1\"]"));

    // YAML is the same array.
    let out = meshctl(
        &["--use-kube=false", "-o", "yaml", &fixture("shop.yaml")],
        "",
    );
    let yaml: Vec<Value> = serde_yaml_ng::from_str(&stdout(&out)).expect("yaml");
    assert_eq!(yaml, messages);
}

#[test]
fn sarif_has_a_rule_per_code_and_a_located_result_per_message() {
    let out = meshctl(
        &["--use-kube=false", "-o", "sarif", &fixture("shop.yaml")],
        "",
    );
    assert_eq!(code(&out), 79);
    let sarif: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["IST0101", "IST0107", "IST0118"]);
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let error = results.iter().find(|r| r["ruleId"] == "IST0101").unwrap();
    assert_eq!(error["level"], "error");
    assert_eq!(
        rules[error["ruleIndex"].as_u64().unwrap() as usize],
        "IST0101"
    );
    assert_eq!(
        error["locations"][0]["physicalLocation"]["region"]["startLine"],
        69
    );
    assert_eq!(
        results.iter().find(|r| r["ruleId"] == "IST0118").unwrap()["level"],
        "note"
    );
}

#[test]
fn thresholds_decide_what_fails_and_what_is_shown() {
    let file = fixture("shop.yaml");
    // Without the Error, the default threshold (Error) passes; Warning fails.
    let no_error = ["--use-kube=false", "-S", "IST0101", file.as_str()];
    assert_eq!(code(&meshctl(&no_error, "")), 0);
    let mut warn = no_error.to_vec();
    warn.extend(["--failure-threshold", "Warning"]);
    assert_eq!(code(&meshctl(&warn, "")), 79);
    let mut info = no_error.to_vec();
    info.extend(["--failure-threshold", "info"]);
    assert_eq!(code(&meshctl(&info, "")), 79);
    // The output threshold only hides.
    let out = meshctl(
        &[
            "--use-kube=false",
            "--output-threshold",
            "Error",
            "-o",
            "json",
            &file,
        ],
        "",
    );
    assert_eq!(code(&out), 79);
    let codes: Vec<String> = json(&out)
        .iter()
        .map(|m| m["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["IST0101"]);
    // When everything is hidden, stderr says so rather than "no issues".
    let out = meshctl(
        &[
            "--use-kube=false",
            "--output-threshold",
            "Error",
            "-S",
            "IST0101",
            &file,
        ],
        "",
    );
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("2 message(s) below --output-threshold Error not shown"),
        "{}",
        stderr(&out)
    );
    let out = meshctl(
        &["--use-kube=false", "--failure-threshold", "Fatal", &file],
        "",
    );
    assert_eq!(code(&out), 64);
    assert!(
        stderr(&out).contains("use Info, Warning or Error"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn suppressions_with_wildcards_and_istio_forms() {
    let file = fixture("shop.yaml");
    let count = |extra: &[&str]| {
        let mut args = vec!["--use-kube=false", "-o", "json"];
        args.extend_from_slice(extra);
        args.push(&file);
        json(&meshctl(&args, "")).len()
    };
    assert_eq!(count(&[]), 3);
    assert_eq!(count(&["-S", "IST0101=VirtualService shop/web"]), 2);
    assert_eq!(count(&["-S", "IST0101=VirtualService shop/*"]), 2);
    assert_eq!(count(&["-S", "IST0101=VirtualService web.shop"]), 2);
    assert_eq!(count(&["-S", "IST01*=* *"]), 0);
    assert_eq!(count(&["-S", "IST0101=VirtualService other/*"]), 3);
    assert_eq!(
        count(&[
            "--suppress",
            "IST0118",
            "--suppress",
            "IST0107=Deployment shop/web"
        ]),
        1
    );
    let out = meshctl(
        &["--use-kube=false", "-S", "IST0101=VirtualService", &file],
        "",
    );
    assert_eq!(code(&out), 64);
    assert!(
        stderr(&out).contains("write CODE=Kind namespace/name"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_file_that_does_not_parse_is_reported_and_the_others_are_still_analysed() {
    let out = meshctl(
        &[
            "--use-kube=false",
            "-o",
            "json",
            &fixture("not-yaml.yaml"),
            &fixture("shop.yaml"),
        ],
        "",
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("error: {}:18:", fixture("not-yaml.yaml"))),
        "{err}"
    );
    assert!(err.contains("invalid YAML"), "{err}");
    // The valid document of the broken file and the other file were analysed.
    let messages = json(&out);
    assert!(
        messages.iter().any(|m| m["resource"]["name"] == "fine"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m["code"] == "IST0101"),
        "{messages:?}"
    );
}

#[test]
fn directories_stdin_and_namespaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::copy(fixture("shop.yaml"), nested.join("shop.yml")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not read").unwrap();
    let out = meshctl(
        &[
            "--use-kube=false",
            "-o",
            "json",
            dir.path().to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code(&out), 79);
    assert_eq!(json(&out).len(), 3);

    let text = std::fs::read_to_string(fixture("shop.yaml")).unwrap();
    let out = meshctl(&["--use-kube=false", "-o", "json", "-"], &text);
    assert_eq!(code(&out), 79);
    let messages = json(&out);
    assert_eq!(messages[2]["origin"]["file"], "<stdin>");

    // -n narrows the report; objects without a namespace get it.
    let out = meshctl(
        &["--use-kube=false", "-n", "other", &fixture("shop.yaml")],
        "",
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let lonely = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{name: foo, port: 1}]\n";
    let out = meshctl(
        &["--use-kube=false", "-n", "team", "-o", "json", "-"],
        lonely,
    );
    assert_eq!(json(&out)[0]["resource"]["namespace"], "team");
}

#[test]
fn usage_errors_exit_64() {
    for args in [
        vec!["--no-such-flag"],
        vec!["--use-kube=false"],
        vec!["--use-kube=false", "/nonexistent/file.yaml"],
        vec!["--use-kube=false", "--analyzer", "no.SuchAnalyzer", "x"],
        vec!["-A", "-n", "shop", "--use-kube=false", "x"],
        vec!["--timeout", "soon"],
    ] {
        let out = meshctl(&args, "");
        assert_eq!(code(&out), 64, "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}

#[test]
fn analyzers_can_be_listed_and_chosen() {
    let out = meshctl(&["-L"], "");
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    for name in [
        "virtualservice.DestinationRuleAnalyzer",
        "schema.ValidationAnalyzer",
        "injection.Analyzer",
    ] {
        assert!(text.contains(name), "{text}");
    }
    assert!(text.contains("IST0101 ReferencedResourceNotFound"));
    let out = meshctl(
        &[
            "--use-kube=false",
            "-o",
            "json",
            "--analyzer",
            "service.PortNameAnalyzer",
            &fixture("shop.yaml"),
        ],
        "",
    );
    assert_eq!(code(&out), 0, "only Info findings remain");
    let codes: Vec<Value> = json(&out).iter().map(|m| m["code"].clone()).collect();
    assert_eq!(codes, ["IST0118"]);
}

#[test]
fn unknown_kinds_are_skipped_unless_asked() {
    let filter = "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: f, namespace: shop}\nspec: {}\n";
    let out = meshctl(&["--use-kube=false", "-"], filter);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = meshctl(&["--use-kube=false", "--ignore-unknown=false", "-"], filter);
    assert_eq!(code(&out), 65);
    assert!(stderr(&out).contains("<stdin>:1: EnvoyFilter f: kind EnvoyFilter (networking.istio.io/v1alpha3) is not one meshctl analyze reads"), "{}", stderr(&out));
}

#[test]
fn the_mesh_config_file_sets_the_root_namespace() {
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n";
    let out = meshctl(&["--use-kube=false", "-o", "json", "-"], ns);
    assert_eq!(json(&out)[0]["code"], "IST0102");
    let dir = tempfile::tempdir().expect("tempdir");
    let mesh: PathBuf = dir.path().join("mesh.yaml");
    std::fs::write(&mesh, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mesh}\ndata:\n  mesh: |\n    rootNamespace: istio-system\n").unwrap();
    let out = meshctl(
        &[
            "--use-kube=false",
            "-o",
            "json",
            "--meshConfigFile",
            mesh.to_str().unwrap(),
            "-",
        ],
        ns,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out), Vec::<Value>::new());
}

#[test]
fn without_a_reachable_cluster_the_error_says_what_to_do() {
    let out = meshctl(&[&fixture("shop.yaml")], "");
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("kubeconfig"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pass --use-kube=false"),
        "{}",
        stderr(&out)
    );
}
