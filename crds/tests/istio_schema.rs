//! The Istio CRDs must be accepted by a real kube-apiserver, which only takes structural schemas,
//! and must serve the same names and versions as Istio's own CRDs so that existing clients work.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use mesh_crds::istio;
use serde_json::{Map, Value};

const JUNCTORS: [&str; 4] = ["allOf", "anyOf", "oneOf", "not"];

/// Keywords a structural schema forbids anywhere inside `allOf`/`anyOf`/`oneOf`/`not`.
const FORBIDDEN_IN_JUNCTORS: [&str; 6] = [
    "type",
    "description",
    "default",
    "additionalProperties",
    "nullable",
    "properties",
];

fn schema_of(crd: &CustomResourceDefinition, version: usize) -> Value {
    let schema = crd.spec.versions[version]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("every version has a schema");
    serde_json::to_value(schema).expect("schema is JSON")
}

/// Checks the rules of a structural schema
/// (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema>)
/// and the extra restrictions the apiserver puts on CRD schemas, collecting every violation.
fn check_node(node: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errors.push(format!("{path}: a schema must be an object, found {node}"));
        return;
    };
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if obj.contains_key("$ref") {
        errors.push(format!("{path}: $ref is not allowed"));
    }
    if obj.contains_key("definitions") || obj.contains_key("$schema") {
        errors.push(format!("{path}: definitions/$schema are not allowed"));
    }
    match obj.get("type").and_then(Value::as_str) {
        Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {
            if int_or_string {
                errors.push(format!(
                    "{path}: x-kubernetes-int-or-string must not have a type"
                ));
            }
        }
        Some(other) => errors.push(format!("{path}: unknown type {other}")),
        None if obj.contains_key("type") => errors.push(format!("{path}: type must be a string")),
        None if int_or_string || preserve => {}
        None => errors.push(format!("{path}: no type")),
    }
    if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errors.push(format!(
            "{path}: x-kubernetes-preserve-unknown-fields: false is not allowed"
        ));
    }
    if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
        errors.push(format!("{path}: uniqueItems: true is not allowed"));
    }
    match obj.get("additionalProperties") {
        Some(Value::Bool(false)) => errors.push(format!(
            "{path}: additionalProperties: false is not allowed"
        )),
        Some(Value::Bool(true)) => errors.push(format!(
            "{path}: additionalProperties: true (use preserve-unknown-fields)"
        )),
        Some(values) => {
            if obj.contains_key("properties") {
                errors.push(format!(
                    "{path}: properties and additionalProperties together"
                ));
            }
            check_node(values, &format!("{path}.*"), errors);
        }
        None => {}
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        // Not a structural rule, but Istio compatibility: a nullable enum makes the apiserver
        // reject an explicit null that Istio's (non-nullable) enum fields drop.
        if obj.get("nullable") == Some(&Value::Bool(true)) {
            errors.push(format!("{path}: enum must not be nullable"));
        }
        if obj.get("type").and_then(Value::as_str) != Some("string") {
            errors.push(format!("{path}: enum on a non-string"));
        }
        if !values.iter().all(Value::is_string) {
            errors.push(format!("{path}: enum values must be strings"));
        }
    }
    let properties = obj.get("properties").and_then(Value::as_object);
    if let Some(props) = properties {
        if obj.get("type").and_then(Value::as_str) != Some("object") {
            errors.push(format!("{path}: properties on a non-object"));
        }
        for (name, prop) in props {
            check_node(prop, &format!("{path}.{name}"), errors);
        }
    }
    if let Some(required) = obj.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !properties.is_some_and(|p| p.contains_key(name)) {
                errors.push(format!("{path}: required {name} is not a property"));
            }
        }
    }
    match obj.get("items") {
        Some(items @ Value::Object(_)) => check_node(items, &format!("{path}[]"), errors),
        Some(_) => errors.push(format!("{path}: items must be a single schema")),
        None if obj.get("type").and_then(Value::as_str) == Some("array") => {
            errors.push(format!("{path}: array without items"))
        }
        None => {}
    }
    for junctor in JUNCTORS {
        if let Some(sub) = obj.get(junctor) {
            let branches = match sub {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for (i, branch) in branches.iter().enumerate() {
                check_junctor_branch(
                    branch,
                    properties,
                    int_or_string,
                    &format!("{path}.{junctor}[{i}]"),
                    errors,
                );
            }
        }
    }
}

/// A branch of a logical junctor may only restrict what the enclosing schema already declares.
fn check_junctor_branch(
    branch: &Value,
    outer_properties: Option<&Map<String, Value>>,
    int_or_string: bool,
    path: &str,
    errors: &mut Vec<String>,
) {
    let Some(obj) = branch.as_object() else {
        errors.push(format!("{path}: a schema must be an object"));
        return;
    };
    // The one exception: `anyOf: [{type: integer}, {type: string}]` under int-or-string.
    let int_or_string_branch = int_or_string
        && obj.len() == 1
        && matches!(
            obj.get("type").and_then(Value::as_str),
            Some("integer" | "string")
        );
    if !int_or_string_branch {
        for key in FORBIDDEN_IN_JUNCTORS {
            if obj.contains_key(key) {
                errors.push(format!("{path}: `{key}` is not allowed inside a junctor"));
            }
        }
    }
    if let Some(required) = obj.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !outer_properties.is_some_and(|p| p.contains_key(name)) {
                errors.push(format!(
                    "{path}: {name} is not declared outside the junctor"
                ));
            }
        }
    }
    for junctor in JUNCTORS {
        if let Some(sub) = obj.get(junctor) {
            let branches = match sub {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for (i, b) in branches.iter().enumerate() {
                check_junctor_branch(
                    b,
                    outer_properties,
                    int_or_string,
                    &format!("{path}.{junctor}[{i}]"),
                    errors,
                );
            }
        }
    }
}

#[test]
fn every_schema_is_structural() {
    let crds = istio::crds();
    assert_eq!(crds.len(), 9);
    let mut errors = Vec::new();
    for crd in &crds {
        for (i, version) in crd.spec.versions.iter().enumerate() {
            let schema = schema_of(crd, i);
            let root = format!("{}/{}", crd.spec.names.kind, version.name);
            check_node(&schema, &root, &mut errors);
            // Only metadata.name/generateName may be restricted; we restrict nothing there.
            if schema["properties"].get("metadata").is_some() {
                errors.push(format!("{root}: metadata must not be described"));
            }
            assert_eq!(schema["type"], "object", "{root}");
            assert_eq!(schema["properties"]["spec"]["type"], "object", "{root}");
            assert_eq!(
                schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"], true,
                "{root}: status must keep unknown fields"
            );
        }
    }
    assert!(
        errors.is_empty(),
        "non-structural schemas:\n{}",
        errors.join("\n")
    );
}

/// The checker itself must catch what the apiserver rejects.
#[test]
fn the_structural_check_rejects_non_structural_schemas() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "untyped": {"description": "no type"},
            "ref": {"$ref": "#/definitions/X"},
            "closed": {"type": "object", "additionalProperties": false},
            "union": {"type": "object", "properties": {"a": {"type": "string"}},
                      "oneOf": [{"type": "object", "properties": {"a": {"type": "string"}}}]},
        }
    });
    let mut errors = Vec::new();
    check_node(&bad, "bad", &mut errors);
    for expected in [
        "bad.untyped: no type",
        "bad.ref: $ref is not allowed",
        "bad.closed: additionalProperties: false is not allowed",
        "bad.union.oneOf[0]: `type` is not allowed inside a junctor",
        "bad.union.oneOf[0]: `properties` is not allowed inside a junctor",
    ] {
        assert!(
            errors.iter().any(|e| e == expected),
            "missed {expected:?} in {errors:#?}"
        );
    }
}

#[test]
fn crds_have_istio_names_and_versions_in_a_stable_order() {
    let crds = istio::crds();
    let names: Vec<&str> = crds
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    assert_eq!(
        names,
        [
            "destinationrules.networking.istio.io",
            "gateways.networking.istio.io",
            "serviceentries.networking.istio.io",
            "sidecars.networking.istio.io",
            "virtualservices.networking.istio.io",
            "workloadentries.networking.istio.io",
            "authorizationpolicies.security.istio.io",
            "peerauthentications.security.istio.io",
            "requestauthentications.security.istio.io",
        ]
    );
    for crd in &crds {
        let names = &crd.spec.names;
        let (versions, category) = if crd.spec.group == "networking.istio.io" {
            (vec!["v1", "v1alpha3", "v1beta1"], "networking-istio-io")
        } else {
            (vec!["v1", "v1beta1"], "security-istio-io")
        };
        let served: Vec<&str> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(served, versions, "{}", names.kind);
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            names.categories.as_deref(),
            Some(&["istio-io".to_string(), category.to_string()][..]),
            "{}",
            names.kind
        );
        let v1 = &crd.spec.versions[0];
        assert!(
            v1.served && v1.storage,
            "{}: v1 is served and stored",
            names.kind
        );
        for older in &crd.spec.versions[1..] {
            assert!(older.served, "{} {} is served", names.kind, older.name);
            assert!(
                !older.storage,
                "{} {} is not stored",
                names.kind, older.name
            );
            assert_eq!(
                without_descriptions(serde_json::to_value(&older.schema).expect("json")),
                without_descriptions(serde_json::to_value(&v1.schema).expect("json")),
                "{} {} has the v1 schema",
                names.kind,
                older.name
            );
            assert_eq!(older.subresources, v1.subresources);
            assert_eq!(
                older.additional_printer_columns,
                v1.additional_printer_columns
            );
        }
        let expected_short = match names.kind.as_str() {
            "VirtualService" => Some("vs"),
            "DestinationRule" => Some("dr"),
            "Gateway" => Some("gw"),
            "ServiceEntry" => Some("se"),
            "WorkloadEntry" => Some("we"),
            "AuthorizationPolicy" => Some("ap"),
            "PeerAuthentication" => Some("pa"),
            "RequestAuthentication" => Some("ra"),
            _ => None,
        };
        assert_eq!(
            names
                .short_names
                .as_ref()
                .and_then(|s| s.first())
                .map(String::as_str),
            expected_short,
            "{}",
            names.kind
        );
        assert!(
            v1.subresources.as_ref().is_some_and(|s| s.status.is_some()),
            "{}: status subresource",
            names.kind
        );
        let columns: Vec<&str> = v1
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        let expected_columns: &[&str] = match names.kind.as_str() {
            "VirtualService" => &["Gateways", "Hosts", "Age"],
            "DestinationRule" => &["Host", "Age"],
            "ServiceEntry" => &["Hosts", "Location", "Resolution", "Age"],
            "WorkloadEntry" => &["Age", "Address"],
            "PeerAuthentication" => &["Mode", "Age"],
            "AuthorizationPolicy" => &["Action", "Age"],
            _ => &["Age"],
        };
        assert_eq!(columns, expected_columns, "{}", names.kind);
    }
}

#[test]
fn enums_are_spelt_as_istio_spells_them() {
    let crds = istio::crds();
    let schema = |kind: &str| {
        let crd = crds
            .iter()
            .find(|c| c.spec.names.kind == kind)
            .expect("kind exists");
        schema_of(crd, 0)["properties"]["spec"].clone()
    };
    let values = |v: &Value| -> Vec<String> {
        v["enum"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let dr = schema("DestinationRule");
    let tp = &dr["properties"]["trafficPolicy"]["properties"];
    assert_eq!(
        values(&tp["loadBalancer"]["properties"]["simple"]),
        [
            "UNSPECIFIED",
            "LEAST_CONN",
            "RANDOM",
            "PASSTHROUGH",
            "ROUND_ROBIN",
            "LEAST_REQUEST"
        ]
    );
    assert_eq!(
        values(&tp["tls"]["properties"]["mode"]),
        ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]
    );
    assert_eq!(
        values(&tp["connectionPool"]["properties"]["http"]["properties"]["h2UpgradePolicy"]),
        ["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]
    );
    let gw = schema("Gateway");
    let tls = &gw["properties"]["servers"]["items"]["properties"]["tls"]["properties"];
    assert_eq!(
        values(&tls["mode"]),
        [
            "PASSTHROUGH",
            "SIMPLE",
            "MUTUAL",
            "AUTO_PASSTHROUGH",
            "ISTIO_MUTUAL",
            "OPTIONAL_MUTUAL"
        ]
    );
    assert_eq!(
        values(&tls["minProtocolVersion"]),
        ["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]
    );
    let se = schema("ServiceEntry");
    assert_eq!(
        values(&se["properties"]["resolution"]),
        ["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"]
    );
    assert_eq!(
        values(&se["properties"]["location"]),
        ["MESH_EXTERNAL", "MESH_INTERNAL"]
    );
    let pa = schema("PeerAuthentication");
    assert_eq!(
        values(&pa["properties"]["mtls"]["properties"]["mode"]),
        ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]
    );
    let ap = schema("AuthorizationPolicy");
    assert_eq!(
        values(&ap["properties"]["action"]),
        ["ALLOW", "DENY", "AUDIT", "CUSTOM"]
    );
    assert_eq!(
        values(&tp["proxyProtocol"]["properties"]["version"]),
        ["V1", "V2"]
    );
    let vs = schema("VirtualService");
    let http = &vs["properties"]["http"]["items"]["properties"];
    assert_eq!(
        values(&http["redirect"]["properties"]["derivePort"]),
        ["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"]
    );
    assert_eq!(
        values(&http["corsPolicy"]["properties"]["unmatchedPreflights"]),
        ["UNSPECIFIED", "FORWARD", "IGNORE"]
    );
    let sidecar = schema("Sidecar");
    assert_eq!(
        values(&sidecar["properties"]["egress"]["items"]["properties"]["captureMode"]),
        ["DEFAULT", "IPTABLES", "NONE"]
    );
    assert_eq!(
        values(&sidecar["properties"]["outboundTrafficPolicy"]["properties"]["mode"]),
        ["REGISTRY_ONLY", "ALLOW_ANY"]
    );
}

/// Older versions carry the v1 schema without its descriptions (kept on v1 only, for size).
fn without_descriptions(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter(|(k, v)| !(k == "description" && v.is_string()))
            .map(|(k, v)| (k, without_descriptions(v)))
            .collect(),
        serde_json::Value::Array(items) => items.into_iter().map(without_descriptions).collect(),
        other => other,
    }
}
