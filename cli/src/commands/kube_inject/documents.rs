//! Multi-document YAML in, the same documents out in the same order. Documents that do not
//! change are copied as they were written (comments and formatting kept); injected ones are
//! re-serialized with their fields in their original order.

use mesh_analyze::input::{split, Input};
use mesh_inject::workload::resource_name;
use mesh_inject::{inject_object, InjectConfig, Outcome};
use serde_json::Value;

/// What happened, for the summary and the exit code.
#[derive(Default, Debug)]
pub struct Report {
    pub injected: usize,
    pub errors: Vec<String>,
}

/// Appends every document of `input` to `out`, injected where it is a workload.
pub fn process(input: &Input, config: &InjectConfig, out: &mut String, report: &mut Report) {
    for doc in split(&input.text) {
        let value: Value = match serde_yaml_ng::from_str(doc.text) {
            Ok(v) => v,
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line() + doc.first_line - 1, l.column()))
                    .unwrap_or((doc.first_line, 0));
                let message = e.to_string();
                // serde_yaml_ng appends "at line L column C" relative to the document.
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                report.errors.push(format!(
                    "{}:{line}:{column}: invalid YAML: {message}",
                    input.origin
                ));
                continue;
            }
        };
        if value.is_null() {
            // Comments only: kept; nothing at all: dropped.
            if doc.text.trim().is_empty() {
                continue;
            }
            emit_text(out, doc.text);
            continue;
        }
        match inject_document(value, config, &input.origin, doc.first_line) {
            Ok(Some(injected)) => {
                report.injected += injected.count;
                match serde_yaml_ng::to_string(&injected.value) {
                    Ok(text) => emit_text(out, &text),
                    Err(e) => report.errors.push(format!(
                        "{}:{}: cannot write the injected document: {e}",
                        input.origin, doc.first_line
                    )),
                }
            }
            Ok(None) => emit_text(out, doc.text),
            Err(message) => report.errors.push(message),
        }
    }
}

fn emit_text(out: &mut String, text: &str) {
    out.push_str(text.trim_end_matches(['\n', '\r', ' ']));
    out.push_str("\n---\n");
}

struct Injected {
    value: Value,
    count: usize,
}

/// The injected document, or None when it stays as written.
fn inject_document(
    mut value: Value,
    config: &InjectConfig,
    origin: &str,
    line: usize,
) -> Result<Option<Injected>, String> {
    let is_list = value["kind"]
        .as_str()
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && value["items"].is_array();
    let mut count = 0;
    if is_list {
        if let Some(items) = value["items"].as_array_mut() {
            for item in items {
                count += inject_one(item, config, origin, line)?;
            }
        }
    } else {
        count += inject_one(&mut value, config, origin, line)?;
    }
    Ok((count > 0).then_some(Injected { value, count }))
}

fn inject_one(
    object: &mut Value,
    config: &InjectConfig,
    origin: &str,
    line: usize,
) -> Result<usize, String> {
    match inject_object(object, config, None) {
        Ok(Outcome::Injected) => Ok(1),
        Ok(Outcome::NotWorkload) => Ok(0),
        Ok(Outcome::Skipped(why)) => {
            eprintln!("{}: not injected: {why}", resource_name(object, None));
            Ok(0)
        }
        Ok(Outcome::UnknownWorkload) => {
            eprintln!(
                "warning: {origin}:{line}: {}: kind {} is not a workload kind meshctl injects (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob); passed through unchanged",
                resource_name(object, None),
                object["kind"].as_str().unwrap_or_default()
            );
            Ok(0)
        }
        Err(e) => Err(format!("{origin}:{line}: {e}")),
    }
}
