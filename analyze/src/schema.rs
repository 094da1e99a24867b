//! Validation of an object against the OpenAPI schema of its CRD (crds/generated/, built from
//! the Rust types): what the API server checks, so that a mistake is found before `apply`, with
//! the field path and line, plus unknown fields, which the API server would silently drop.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

/// One violation: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

/// The `spec` schema of each Istio kind, by kind.
fn schemas() -> &'static HashMap<String, Value> {
    static SCHEMAS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        mesh_crds::istio::crds()
            .into_iter()
            .filter_map(|crd| {
                let kind = crd.spec.names.kind.clone();
                let value = serde_json::to_value(&crd).ok()?;
                let spec = value
                    .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")?
                    .clone();
                Some((kind, spec))
            })
            .collect()
    })
}

/// The violations of `spec` of an object of `kind`; empty for kinds without a schema here.
pub fn validate(kind: &str, spec: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(schema) = schemas().get(kind) {
        check(spec, schema, "spec", &mut out);
    }
    out
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn check(value: &Value, schema: &Value, path: &str, out: &mut Vec<Violation>) {
    // The API server drops nulls of fields that are not nullable; they are no error.
    if value.is_null() {
        return;
    }
    let mut add = |message: String| {
        out.push(Violation {
            field: path.to_owned(),
            message,
        })
    };
    let int_or_string = schema["x-kubernetes-int-or-string"].as_bool() == Some(true);
    match schema["type"].as_str() {
        Some("object") if !value.is_object() => {
            return add(format!("expected a mapping, found {}", type_name(value)));
        }
        Some("array") if !value.is_array() => {
            return add(format!("expected a list, found {}", type_name(value)));
        }
        Some("string") if !value.is_string() && !int_or_string => {
            return add(format!("expected a string, found {}", type_name(value)));
        }
        Some("integer") if !(value.is_i64() || value.is_u64() || int_or_string) => {
            return add(format!("expected an integer, found {}", type_name(value)));
        }
        Some("number") if !value.is_number() => {
            return add(format!("expected a number, found {}", type_name(value)));
        }
        Some("boolean") if !value.is_boolean() => {
            return add(format!(
                "expected true or false, found {}",
                type_name(value)
            ));
        }
        _ => {}
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            let names: Vec<String> = allowed
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            return add(format!("{value} is not one of {}", names.join(", ")));
        }
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64()) {
        if n < min {
            add(format!("{n} is less than the minimum {min}"));
        }
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), value.as_f64()) {
        if n > max {
            add(format!("{n} is more than the maximum {max}"));
        }
    }
    if schema["format"] == "int32" && value.as_i64().is_some_and(|n| i32::try_from(n).is_err()) {
        add(format!("{value} does not fit a 32-bit integer"));
    }
    if let Some(required) = schema["required"].as_array() {
        if let Some(map) = value.as_object() {
            for r in required.iter().filter_map(Value::as_str) {
                if map.get(r).is_none_or(Value::is_null) {
                    add(format!("required field {r} is missing"));
                }
            }
        }
    }
    if let Some(branches) = schema["oneOf"].as_array() {
        one_of(value, branches, path, out);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        if let Some(branches) = part["oneOf"].as_array() {
            one_of(value, branches, path, out);
        }
    }
    if let Some(map) = value.as_object() {
        let properties = schema["properties"].as_object();
        let additional = &schema["additionalProperties"];
        let preserve = schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true);
        for (key, child) in map {
            let child_path = if key.contains(['.', '/', '[']) {
                format!("{path}[{key:?}]")
            } else {
                format!("{path}.{key}")
            };
            if let Some(sub) = properties.and_then(|p| p.get(key)) {
                check(child, sub, &child_path, out);
            } else if additional.is_object() {
                check(child, additional, &child_path, out);
            } else if !preserve && (properties.is_some() || additional == &Value::Bool(false)) {
                let known: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                out.push(Violation {
                    field: child_path,
                    message: unknown_field(key, &known),
                });
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            check(item, items, &format!("{path}[{i}]"), out);
        }
    }
}

/// Istio's oneof constraint: at most one of a set of fields. The branches are
/// `{not: {anyOf: [{required: [a]}, ...]}}` (none set) and `{required: [a]}` (only a).
fn one_of(value: &Value, branches: &[Value], path: &str, out: &mut Vec<Violation>) {
    let Some(map) = value.as_object() else { return };
    let members: Vec<&str> = branches
        .iter()
        .filter_map(|b| b["required"].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if members.is_empty() {
        return;
    }
    let set: Vec<&str> = members
        .iter()
        .copied()
        .filter(|m| map.get(*m).is_some_and(|v| !v.is_null()))
        .collect();
    if set.len() > 1 {
        out.push(Violation {
            field: path.to_owned(),
            message: format!(
                "{} are alternatives: set only one of them",
                set.join(" and ")
            ),
        });
    }
}

fn unknown_field(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!("unknown field {key:?}; did you mean {k:?}?"),
        None if known.is_empty() => format!("unknown field {key:?}"),
        None => format!("unknown field {key:?} (known: {})", known.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_spec_has_no_violations() {
        let spec = json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}]}]});
        assert_eq!(validate("VirtualService", &spec), vec![]);
    }

    #[test]
    fn types_enums_required_oneofs_and_unknown_fields() {
        let spec = json!({
            "host": "reviews",
            "trafficPolicy": {"tls": {"mode": "MUTUALTLS"}, "loadBalancer": {"simple": "RANDOM", "consistentHash": {"useSourceIp": true}}},
            "subsets": [{"labels": {"version": "v1"}}, {"name": "v2", "lables": {}}],
        });
        let found: Vec<String> = validate("DestinationRule", &spec)
            .into_iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect();
        assert!(
            found.iter().any(|f| f
                .starts_with("spec.trafficPolicy.tls.mode: \"MUTUALTLS\" is not one of DISABLE")),
            "{found:?}"
        );
        assert!(found.contains(&"spec.trafficPolicy.loadBalancer: simple and consistentHash are alternatives: set only one of them".to_owned()), "{found:?}");
        assert!(
            found.contains(&"spec.subsets[0]: required field name is missing".to_owned()),
            "{found:?}"
        );
        assert!(
            found.contains(
                &"spec.subsets[1].lables: unknown field \"lables\"; did you mean \"labels\"?"
                    .to_owned()
            ),
            "{found:?}"
        );
        let found = validate(
            "Gateway",
            &json!({"servers": [{"port": {"number": "80", "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}),
        );
        assert_eq!(found[0].field, "spec.servers[0].port.number");
        assert_eq!(found[0].message, "expected an integer, found a string");
    }
}
