//! Istio YAML read into the typed kinds and written back must be unchanged: no field lost, none
//! added, every enum spelt as Istio spells it. The fixtures together use every field of every
//! Istio type (checked by `fixtures_cover_every_field`), and a misspelt field is an error that
//! names it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use mesh_crds::istio::{
    self, AuthorizationPolicy, DestinationRule, Gateway, PeerAuthentication, RequestAuthentication,
    ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

mod common;

use common::fixture_documents;

/// Parses the document as `T` and writes it back as JSON.
fn typed_roundtrip<T: DeserializeOwned + Serialize>(doc: &str) -> Result<Value, String> {
    let typed: T = serde_yaml_ng::from_str(doc).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Parses the document as the typed kind its `kind` names.
fn roundtrip(doc: &str) -> Result<Value, String> {
    let untyped: Value = serde_yaml_ng::from_str(doc).map_err(|e| e.to_string())?;
    match untyped["kind"].as_str() {
        Some("VirtualService") => typed_roundtrip::<VirtualService>(doc),
        Some("DestinationRule") => typed_roundtrip::<DestinationRule>(doc),
        Some("Gateway") => typed_roundtrip::<Gateway>(doc),
        Some("ServiceEntry") => typed_roundtrip::<ServiceEntry>(doc),
        Some("Sidecar") => typed_roundtrip::<Sidecar>(doc),
        Some("WorkloadEntry") => typed_roundtrip::<WorkloadEntry>(doc),
        Some("PeerAuthentication") => typed_roundtrip::<PeerAuthentication>(doc),
        Some("AuthorizationPolicy") => typed_roundtrip::<AuthorizationPolicy>(doc),
        Some("RequestAuthentication") => typed_roundtrip::<RequestAuthentication>(doc),
        other => Err(format!("fixture has an unexpected kind {other:?}")),
    }
}

/// The typed kinds always write `group/v1`; a fixture written against an older served version
/// (Bookinfo's `v1alpha3`) is compared as if it said v1, after checking the version is served.
fn normalize_api_version(crds: &[CustomResourceDefinition], original: &mut Value) {
    let kind = original["kind"].as_str().unwrap_or_default().to_string();
    let Some(api_version) = original["apiVersion"].as_str().map(str::to_string) else {
        return;
    };
    let crd = crds
        .iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or_else(|| panic!("apiVersion {api_version} has no group"));
    assert_eq!(group, crd.spec.group, "{kind} is in {}", crd.spec.group);
    assert!(
        crd.spec
            .versions
            .iter()
            .any(|v| v.name == version && v.served),
        "{kind} does not serve {version}"
    );
    original["apiVersion"] = Value::String(format!("{group}/v1"));
}

/// The first difference between two JSON values, as a path and the two sides.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(va), Some(vb)) => first_difference(&format!("{path}.{k}"), va, vb),
                (Some(va), None) => Some(format!("{path}.{k}: lost on the way back ({va})")),
                (None, Some(vb)) => Some(format!("{path}.{k}: added on the way back ({vb})")),
                (None, None) => None,
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(&format!("{path}[{i}]"), va, vb)),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} became {b}")),
    }
}

#[test]
fn every_fixture_roundtrips_unchanged() {
    let crds = istio::crds();
    let mut kinds = BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    let docs = fixture_documents("istio");
    assert!(docs.len() >= 30, "only {} fixture documents", docs.len());
    for (name, doc) in docs {
        let mut original: Value = serde_yaml_ng::from_str(&doc).expect("fixture is YAML");
        *kinds
            .entry(original["kind"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        let back = match roundtrip(&doc) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: does not parse: {e}"));
                continue;
            }
        };
        normalize_api_version(&crds, &mut original);
        if original != back {
            let diff = first_difference("", &original, &back).unwrap_or_default();
            failures.push(format!("{name}: changed: {diff}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for kind in [
        "VirtualService",
        "DestinationRule",
        "Gateway",
        "ServiceEntry",
        "Sidecar",
        "WorkloadEntry",
        "PeerAuthentication",
        "AuthorizationPolicy",
        "RequestAuthentication",
    ] {
        assert!(kinds.contains_key(kind), "no fixture of kind {kind}");
    }
}

/// A subschema with descriptions removed, as text: two places that use the same Rust type (say
/// `TrafficPolicy` of a DestinationRule and of one of its subsets) get the same fingerprint, so a
/// field of that type is covered when a fixture sets it in either place.
fn fingerprint(schema: &Value) -> String {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| *k != "description" && *k != "nullable")
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    strip(schema).to_string()
}

/// Every (object type, property) pair of a schema. The root's `status` is left out: the status
/// type is the same for every kind, and its fields are covered once for all.
fn schema_fields(schema: &Value, at: &str, out: &mut BTreeMap<(String, String), String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let fp = fingerprint(schema);
        let is_root = !at.contains('.');
        for (name, prop) in props {
            let path = format!("{at}.{name}");
            if !(is_root && name == "status") {
                out.entry((fp.clone(), name.clone()))
                    .or_insert(path.clone());
            }
            schema_fields(prop, &path, out);
        }
    }
    if let Some(items) = schema.get("items") {
        schema_fields(items, &format!("{at}[]"), out);
    }
    if let Some(values) = schema.get("additionalProperties") {
        schema_fields(values, &format!("{at}.*"), out);
    }
}

/// Every (object type, property) pair a document sets, found by walking it with its schema.
fn document_fields(schema: &Value, doc: &Value, out: &mut BTreeSet<(String, String)>) {
    match doc {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let fp = fingerprint(schema);
                for (k, v) in map {
                    if let Some(prop) = props.get(k) {
                        out.insert((fp.clone(), k.clone()));
                        document_fields(prop, v, out);
                    }
                }
            } else if let Some(values) = schema.get("additionalProperties") {
                for v in map.values() {
                    document_fields(values, v, out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    document_fields(item_schema, item, out);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn fixtures_cover_every_field() {
    let schemas: BTreeMap<String, Value> = istio::crds()
        .into_iter()
        .map(|crd| {
            let schema = crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .map(|s| serde_json::to_value(s).expect("schema is JSON"))
                .expect("CRD has a schema");
            (crd.spec.names.kind.clone(), schema)
        })
        .collect();
    let mut declared = BTreeMap::new();
    for (kind, schema) in &schemas {
        schema_fields(schema, kind, &mut declared);
    }
    let mut used = BTreeSet::new();
    for (_, doc) in fixture_documents("istio") {
        let doc: Value = serde_yaml_ng::from_str(&doc).expect("fixture is YAML");
        let kind = doc["kind"].as_str().unwrap_or_default();
        if let Some(schema) = schemas.get(kind) {
            document_fields(schema, &doc, &mut used);
        }
    }
    let missing: BTreeSet<&String> = declared
        .iter()
        .filter(|(key, _)| !used.contains(*key))
        .map(|(_, path)| path)
        .collect();
    assert!(
        missing.is_empty(),
        "fields no fixture sets:\n{}",
        missing.into_iter().cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn a_misspelt_field_is_an_error_that_names_it() {
    let cases = [
        (
            "VirtualService",
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - rout:
    - destination: {host: reviews}
"#,
            "rout",
        ),
        (
            "DestinationRule",
            r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    outlierDetecton:
      interval: 10s
"#,
            "outlierDetecton",
        ),
        (
            "AuthorizationPolicy",
            r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin}
spec:
  action: DENY
  rules:
  - from:
    - source:
        notPrincipal: ["cluster.local/ns/admin/sa/admin"]
"#,
            "notPrincipal",
        ),
        (
            "RequestAuthentication",
            r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
spec:
  jwtRules:
  - issuer: https://issuer.example.com
    jwksURI: https://issuer.example.com/jwks.json
"#,
            "jwksURI",
        ),
    ];
    for (kind, doc, field) in cases {
        let err = roundtrip(doc).expect_err(&format!("{kind} with `{field}` must not parse"));
        assert!(
            err.contains(&format!("unknown field `{field}`")),
            "{kind}: the error does not name `{field}`: {err}"
        );
    }
}

#[test]
fn a_misspelt_enum_value_is_an_error_that_names_it() {
    let doc = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBBIN
"#;
    let err = roundtrip(doc).expect_err("an unknown enum value must not parse");
    assert!(err.contains("ROUND_ROBBIN"), "{err}");
}

#[test]
fn port_level_mtls_accepts_integer_and_string_keys() {
    let yaml = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: legacy, namespace: shop}
spec:
  selector:
    matchLabels: {app: legacy}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
    "9090": {mode: PERMISSIVE}
"#;
    // From text, as kubectl reads a file.
    let from_text: PeerAuthentication = serde_yaml_ng::from_str(yaml).expect("parses from text");
    // From an already parsed YAML value, whose key 8080 is an integer.
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).expect("is YAML");
    let from_value: PeerAuthentication =
        serde_yaml_ng::from_value(value).expect("parses from a YAML value with integer keys");
    // From JSON, as the apiserver sends it, where keys are always strings.
    let json = serde_json::to_string(&from_text).expect("serializes");
    let from_json: PeerAuthentication = serde_json::from_str(&json).expect("parses from JSON");
    for pa in [&from_text, &from_value, &from_json] {
        let ports = pa
            .spec
            .port_level_mtls
            .as_ref()
            .expect("portLevelMtls is set");
        let keys: Vec<&str> = ports.keys().map(String::as_str).collect();
        assert_eq!(keys, ["8080", "9090"]);
    }
    assert_eq!(from_text, from_value);
    assert_eq!(from_text, from_json);
    // The CRD declares the map with a structural schema: an object of objects.
    let crd = PeerAuthentication::crd();
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("JSON");
    let plm = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["portLevelMtls"];
    assert_eq!(plm["type"], "object");
    assert_eq!(plm["additionalProperties"]["type"], "object");
    assert!(plm.get("properties").is_none());
}

#[test]
fn doubles_are_written_as_protojson_writes_them() {
    let doc = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - fault:
      abort:
        httpStatus: 503
        percentage: {value: 0.1}
      delay:
        fixedDelay: 7s
        percentage: {value: 100}
    route:
    - destination: {host: ratings}
"#;
    let back = roundtrip(doc).expect("parses");
    let fault = &back["spec"]["http"][0]["fault"];
    assert_eq!(
        fault["abort"]["percentage"]["value"],
        serde_json::json!(0.1)
    );
    // 100.0 is written as the integer 100, not as 100.0.
    assert!(fault["delay"]["percentage"]["value"].is_u64(), "{fault}");
}

#[test]
fn status_keeps_fields_it_does_not_know() {
    let doc = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
status:
  observedGeneration: "12"
  conditions:
  - type: Reconciled
    status: "True"
    lastTransitionTime: "2024-05-01T10:00:00Z"
    futureConditionField: {nested: [1, 2]}
  futureStatusField: anything
"#;
    let gw: Gateway = serde_yaml_ng::from_str(doc).expect("parses");
    let status = gw.status.as_ref().expect("status is kept");
    assert_eq!(
        status.other.get("futureStatusField"),
        Some(&serde_json::json!("anything"))
    );
    let back = roundtrip(doc).expect("parses");
    let original: Value = serde_yaml_ng::from_str(doc).expect("YAML");
    assert_eq!(back["status"], original["status"]);
}
