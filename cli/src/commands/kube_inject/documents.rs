//! Multi-document YAML in, the same documents out in the same order. Documents that do not
//! change are copied as they were written (comments and formatting kept); injected ones are
//! re-serialized with their fields in their original order.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use mesh_inject::workload::resource_name;
use mesh_inject::{inject_object, InjectConfig, Outcome};
use serde_json::Value;

/// One input: its name for messages and its text.
pub struct Input {
    pub origin: String,
    pub text: String,
}

/// Reads `-` (stdin), a file, or every `.yaml`/`.yml`/`.json` file under a directory, in path
/// order.
pub fn read_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| anyhow!("cannot read standard input: {e}"))?;
            inputs.push(Input {
                origin: "<stdin>".to_owned(),
                text,
            });
        } else if path.is_dir() {
            let mut files = Vec::new();
            collect(path, &mut files)?;
            files.sort();
            for file in files {
                inputs.push(read_file(&file)?);
            }
        } else {
            inputs.push(read_file(path)?);
        }
    }
    Ok(inputs)
}

fn read_file(path: &Path) -> anyhow::Result<Input> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(Input {
        origin: path.display().to_string(),
        text,
    })
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("cannot read directory {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| anyhow!("cannot read directory {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(path);
        }
    }
    Ok(())
}

/// A document's text and the line it starts on (1-based) in its input.
pub struct Document<'a> {
    pub text: &'a str,
    pub first_line: usize,
}

/// Splits at `---` lines. A line starting with `---` at column 0 always ends a document: block
/// scalars are indented, so none can contain one.
pub fn split(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (line_no, line) in (1..).zip(text.split_inclusive('\n')) {
        let content = line.trim_end_matches(['\n', '\r']);
        if content == "---" || content.starts_with("--- ") || content.starts_with("---\t") {
            docs.push(Document {
                text: &text[start..offset],
                first_line,
            });
            // `--- {inline: doc}` keeps its content on the separator line.
            let rest = content[3..].trim_start();
            if rest.is_empty() || rest.starts_with('#') {
                start = offset + line.len();
                first_line = line_no + 1;
            } else {
                start = offset + 3;
                first_line = line_no;
            }
        }
        offset += line.len();
    }
    docs.push(Document {
        text: &text[start..],
        first_line,
    });
    docs
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_text_and_line_numbers() {
        let text = "# head\na: 1\n---\nb: 2\n--- # comment\n\nc: |\n  --- not a separator\n---\n";
        let docs = split(text);
        let texts: Vec<&str> = docs.iter().map(|d| d.text).collect();
        assert_eq!(
            texts,
            [
                "# head\na: 1\n",
                "b: 2\n",
                "\nc: |\n  --- not a separator\n",
                ""
            ]
        );
        let lines: Vec<usize> = docs.iter().map(|d| d.first_line).collect();
        assert_eq!(lines, [1, 4, 6, 10]);
    }
}
