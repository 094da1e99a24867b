//! Merging a profile, overlay files and `--set` values, and every way that input can be wrong.

use mesh_operator::{InputError, InstallInput, Overlay};

fn overlay(origin: &str, text: &str) -> Overlay {
    Overlay {
        origin: origin.to_owned(),
        text: text.to_owned(),
    }
}

fn resolve(
    profile: Option<&str>,
    overlays: Vec<Overlay>,
    sets: &[&str],
) -> Result<mesh_crds::MeshInstall, InputError> {
    InstallInput {
        profile: profile.map(str::to_owned),
        overlays,
        sets: sets.iter().map(|s| (*s).to_owned()).collect(),
    }
    .resolve()
}

const HEADER: &str = "apiVersion: install.meshctl.dev/v1alpha1\nkind: MeshInstall\n";

#[test]
fn overlays_apply_in_order_over_the_profile_and_set_goes_last() {
    let first = overlay(
        "a.yaml",
        &format!("{HEADER}spec:\n  hub: first.example\n  tag: \"1\"\n"),
    );
    let second = overlay("b.yaml", &format!("{HEADER}spec:\n  hub: second.example\n"));
    let install = resolve(Some("demo"), vec![first, second], &["tag=2"]).expect("resolves");
    assert_eq!(install.spec.hub.as_deref(), Some("second.example"));
    assert_eq!(install.spec.tag.as_deref(), Some("2"));
    // The profile still shows through where nothing overrode it.
    let mesh = install.spec.mesh_config.expect("mesh config");
    assert_eq!(mesh.access_log_file.as_deref(), Some("/dev/stdout"));
    assert_eq!(install.metadata.name.as_deref(), Some("default"));
    assert_eq!(install.metadata.namespace.as_deref(), Some("mesh-system"));
}

#[test]
fn an_overlay_changes_one_gateway_without_restating_the_list() {
    let text = format!("{HEADER}spec:\n  components:\n    ingressGateways:\n      - name: mesh-ingressgateway\n        k8s:\n          replicaCount: 4\n");
    let install = resolve(Some("default"), vec![overlay("gw.yaml", &text)], &[]).expect("resolves");
    let gateways = install
        .spec
        .components
        .expect("components")
        .ingress_gateways
        .expect("gateways");
    assert_eq!(gateways.len(), 1);
    assert_eq!(gateways[0].enabled, Some(true));
    assert_eq!(
        gateways[0].k8s.as_ref().and_then(|k| k.replica_count),
        Some(4)
    );
}

#[test]
fn the_profile_can_come_from_an_overlay_or_set() {
    let text = format!("{HEADER}spec:\n  profile: minimal\n");
    let install = resolve(None, vec![overlay("p.yaml", &text)], &[]).expect("from overlay");
    assert_eq!(install.spec.profile.as_deref(), Some("minimal"));
    let install = resolve(None, vec![], &["profile=demo"]).expect("from set");
    assert_eq!(install.spec.profile.as_deref(), Some("demo"));
    let err = resolve(Some("demo"), vec![overlay("p.yaml", &text)], &[])
        .expect_err("conflict")
        .to_string();
    assert!(
        err.contains("--profile selects profile \"demo\" but p.yaml selects \"minimal\""),
        "{err}"
    );
}

#[test]
fn unknown_profile_lists_the_known_ones() {
    let err = resolve(Some("production"), vec![], &[])
        .expect_err("unknown")
        .to_string();
    assert_eq!(
        err,
        "unknown profile \"production\"; known profiles: default, demo, minimal, empty"
    );
}

#[test]
fn broken_yaml_is_reported_with_file_line_and_column() {
    let text = format!("{HEADER}spec:\n  hub: [unclosed\n");
    let err = resolve(None, vec![overlay("bad.yaml", &text)], &[]).expect_err("syntax");
    match &err {
        InputError::Parse {
            origin,
            line,
            column,
            ..
        } => {
            assert_eq!(origin, "bad.yaml");
            assert!(*line >= 4, "{err}");
            assert!(*column > 0, "{err}");
        }
        other => panic!("expected a parse error, got {other}"),
    }
}

#[test]
fn a_field_of_the_wrong_type_is_reported_with_its_line_and_path() {
    let text = format!(
        "{HEADER}spec:\n  components:\n    controlPlane:\n      k8s:\n        replicaCount: two\n"
    );
    let err = resolve(None, vec![overlay("type.yaml", &text)], &[])
        .expect_err("type")
        .to_string();
    assert!(
        err.starts_with(
            "type.yaml:7:23: field spec.components.controlPlane.k8s.replicaCount: invalid type"
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_field_is_reported_with_its_line_and_the_valid_names() {
    let text = format!("{HEADER}spec:\n  meshConfig:\n    accesLogFile: /dev/stdout\n");
    let err = resolve(None, vec![overlay("typo.yaml", &text)], &[])
        .expect_err("typo")
        .to_string();
    assert!(
        err.starts_with(
            "typo.yaml:5:5: field spec.meshConfig.accesLogFile: unknown field `accesLogFile`"
        ),
        "{err}"
    );
    assert!(err.contains("accessLogFile"), "{err}");
}

#[test]
fn a_document_of_another_kind_is_refused() {
    let text = "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec: {}\n";
    let err = resolve(None, vec![overlay("iop.yaml", text)], &[])
        .expect_err("kind")
        .to_string();
    assert!(
        err.contains("iop.yaml: expected a document of kind MeshInstall"),
        "{err}"
    );
    assert!(err.contains("kind \"IstioOperator\""), "{err}");
}

#[test]
fn two_documents_in_one_overlay_are_refused() {
    let text = format!("{HEADER}spec: {{}}\n---\n{HEADER}spec: {{}}\n");
    let err = resolve(None, vec![overlay("two.yaml", &text)], &[])
        .expect_err("count")
        .to_string();
    assert!(err.contains("two.yaml: holds 2 YAML documents"), "{err}");
}

#[test]
fn set_on_a_missing_path_names_the_nearest_keys() {
    let err = resolve(
        None,
        vec![],
        &["components.ingresGateways[0].enabled=false"],
    )
    .expect_err("path")
    .to_string();
    assert!(
        err.contains(
            "components.ingresGateways does not exist; did you mean components.ingressGateways"
        ),
        "{err}"
    );
}

#[test]
fn cross_field_rules_are_checked() {
    let err = resolve(Some("demo"), vec![], &["addons.zipkin.enabled=true"])
        .expect_err("two tracers")
        .to_string();
    assert!(err.contains("jaeger and zipkin"), "{err}");
    let err = resolve(None, vec![], &["namespace=Mesh_System"])
        .expect_err("namespace")
        .to_string();
    assert!(
        err.contains("spec.namespace: \"Mesh_System\" is not a valid name"),
        "{err}"
    );
    let err = resolve(
        None,
        vec![],
        &["components.ingressGateways[name=Bad.Name].enabled=true"],
    )
    .expect_err("gw")
    .to_string();
    assert!(
        err.contains("spec.components.ingressGateways[1].name"),
        "{err}"
    );
}
