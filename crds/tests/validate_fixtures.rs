//! Validation against real-world configuration: every Istio document the crate's tests use, and
//! a realistic Bookinfo-style mesh, must validate without errors (no false positives). The
//! kitchen-sink fixtures, written to use every field of every type, also use a few field
//! combinations Istio's own webhook rejects; those, and only those, are listed with the errors
//! Istio would give.

use mesh_crds::validate::{validate_object, Report};
use serde_json::Value;

mod common;

use common::fixture_documents;

/// Every document of the fixtures in `tests/fixtures/<dir>`, named `file#index`, as JSON the
/// way the apiserver sends it.
fn documents(dir: &str) -> Vec<(String, Value)> {
    fixture_documents(dir)
        .into_iter()
        .map(|(name, text)| {
            let value = serde_yaml_ng::from_str(&text).expect("fixture is YAML");
            (name, value)
        })
        .collect()
}

fn validate(doc: &Value) -> Report {
    let api_version = doc["apiVersion"].as_str().expect("apiVersion");
    let group = api_version
        .split_once('/')
        .map(|(g, _)| g)
        .expect("a group");
    let kind = doc["kind"].as_str().expect("kind");
    validate_object(group, kind, doc).unwrap_or_else(|| panic!("{kind} is not validated"))
}

fn show(report: &Report) -> String {
    report
        .errors
        .iter()
        .map(|e| format!("  {}: {}", e.field, e.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The fixture documents Istio's own webhook rejects, with the fields it would name. They exist
/// to exercise every field of the types (the roundtrip tests), not as examples of valid config.
const ISTIO_REJECTS: &[(&str, &[&str])] = &[
    // A policy's targetRef must not name a namespace, even its own.
    ("authorizationpolicy.yaml#2", &["spec.targetRef.namespace"]),
    (
        "destinationrule-kitchen-sink.yaml#0",
        &[
            // useClientProtocol contradicts h2UpgradePolicy: UPGRADE.
            "spec.trafficPolicy.connectionPool.http.useClientProtocol",
            // failover already ranks by region; failoverPriority may not name it too.
            "spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting.failoverPriority[1]",
        ],
    ),
    // Gateways listen on port.number; targetPort is refused.
    (
        "gateway-kitchen-sink.yaml#0",
        &["spec.servers[0].port.targetPort"],
    ),
    // Sidecar ports have no target port either.
    ("sidecar.yaml#0", &["spec.ingress[0].port.targetPort"]),
    (
        "virtualservice-kitchen-sink.yaml#0",
        &[
            // Istio implements neither exponential delays nor HTTP/2 error aborts.
            "spec.http[8].fault.delay.exponentialDelay",
            "spec.http[9].fault.abort.http2Error",
            // The SNI host is not among the VirtualService's hosts.
            "spec.tls[0].match[0].sniHosts[0]",
        ],
    ),
];

#[test]
fn real_world_configuration_has_no_false_positives() {
    let docs: Vec<(String, Value)> = documents("istio")
        .into_iter()
        .chain(documents("valid"))
        .collect();
    assert!(docs.len() >= 60, "only {} documents", docs.len());
    let mut failures = Vec::new();
    for (name, doc) in &docs {
        let report = validate(doc);
        let expected: &[&str] = ISTIO_REJECTS
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, fields)| fields);
        let got: Vec<&str> = report.errors.iter().map(|e| e.field.as_str()).collect();
        if got != expected {
            failures.push(format!(
                "{name}: expected errors at {expected:?}, got:\n{}",
                show(&report)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_realistic_mesh_has_no_warnings_either() {
    for (name, doc) in documents("valid") {
        let report = validate(&doc);
        assert!(report.warnings.is_empty(), "{name}: {:?}", report.warnings);
    }
}

#[test]
fn reports_serialize_for_the_webhook_and_analyze() {
    let (_, doc) = documents("istio")
        .into_iter()
        .find(|(name, _)| name == "sidecar.yaml#0")
        .expect("the Sidecar fixture");
    let json = serde_json::to_value(validate(&doc)).expect("a report is JSON");
    assert_eq!(
        json["errors"][0]["field"],
        "spec.ingress[0].port.targetPort"
    );
    assert!(json["errors"][0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("targetPort")));
    assert!(json["warnings"].is_array());
}
