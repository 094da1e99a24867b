//! The output formats: `log` (one line per message, as istioctl prints them), `json` and
//! `yaml` (an array of messages with a fixed set of fields), and SARIF 2.1.0 for code scanning.

use std::collections::BTreeMap;

use mesh_analyze::{Level, Message};
use serde_json::{json, Value};

pub fn log(messages: &[&Message]) -> String {
    let mut out = String::new();
    for m in messages {
        let at = m
            .origin
            .as_ref()
            .map(|o| format!(" {}:{}", o.file, o.line))
            .unwrap_or_default();
        out.push_str(&format!(
            "{} [{}] ({}{at}) {}\n",
            m.level(),
            m.kind.code,
            m.resource,
            m.text
        ));
    }
    out
}

/// One message with exactly the fields of the JSON contract.
fn object(m: &Message) -> Value {
    json!({
        "code": m.kind.code,
        "name": m.kind.name,
        "level": m.level().as_str(),
        "message": m.text,
        "resource": {
            "kind": m.resource.kind,
            "namespace": m.resource.namespace,
            "name": m.resource.name,
        },
        "origin": m.origin.as_ref().map(|o| json!({"file": o.file, "line": o.line})),
        "documentationUrl": m.kind.documentation_url(),
    })
}

pub fn json(messages: &[&Message]) -> String {
    let array: Vec<Value> = messages.iter().map(|m| object(m)).collect();
    let mut text = serde_json::to_string_pretty(&array).unwrap_or_else(|_| "[]".to_owned());
    text.push('\n');
    text
}

pub fn yaml(messages: &[&Message]) -> anyhow::Result<String> {
    let array: Vec<Value> = messages.iter().map(|m| object(m)).collect();
    Ok(serde_yaml_ng::to_string(&array)?)
}

fn sarif_level(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "note",
    }
}

/// SARIF 2.1.0: one run, a rule per message type that occurs, a result per message, located
/// by file and line (or, for cluster objects, by the resource's name).
pub fn sarif(messages: &[&Message]) -> String {
    let mut rules: BTreeMap<&str, Value> = BTreeMap::new();
    for m in messages {
        rules.entry(m.kind.code).or_insert_with(|| {
            json!({
                "id": m.kind.code,
                "name": m.kind.name,
                "shortDescription": {"text": m.kind.description},
                "helpUri": m.kind.documentation_url(),
                "defaultConfiguration": {"level": sarif_level(m.kind.level)},
            })
        });
    }
    let index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let results: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut result = json!({
                "ruleId": m.kind.code,
                "ruleIndex": index[m.kind.code],
                "level": sarif_level(m.level()),
                "message": {"text": format!("{}: {}", m.resource, m.text)},
                "logicalLocations": [{
                    "name": m.resource.name,
                    "fullyQualifiedName": m.resource.to_string(),
                    "kind": "resource",
                }],
            });
            if let Some(o) = &m.origin {
                result["locations"] = json!([{
                    "physicalLocation": {
                        "artifactLocation": {"uri": o.file},
                        "region": {"startLine": o.line},
                    }
                }]);
            }
            result
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "meshctl analyze",
                "informationUri": mesh_analyze::message::DOCUMENTATION_BASE,
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
