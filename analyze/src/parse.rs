//! Text to objects: every document of an input, `List`s unrolled, each object with the line it
//! starts on. A document that does not parse is an error naming its file and line; the other
//! documents are still read.

use std::sync::Arc;

use serde_json::Value;

use crate::error::InputError;
use crate::fieldpath::{FieldPath, Seg};
use crate::input::{split, Input};
use crate::lines;
use crate::object::{FileSpan, Object, Origin};

/// How documents become objects.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Namespace of namespaced objects that name none.
    pub default_namespace: String,
    /// Skip kinds the analyzers do not read (true), or report them as errors.
    pub ignore_unknown: bool,
}

/// What the inputs held.
#[derive(Debug, Default)]
pub struct Parsed {
    pub objects: Vec<Object>,
    pub errors: Vec<InputError>,
}

/// Parses every input. Large inputs are parsed on every core, in order.
pub fn parse_inputs(inputs: Vec<Input>, options: &ParseOptions) -> Parsed {
    let mut parsed = Parsed::default();
    for input in inputs {
        let file: Arc<str> = Arc::from(input.origin.as_str());
        let text: Arc<str> = Arc::from(input.text);
        let documents: Vec<(usize, std::ops::Range<usize>)> = split(&text)
            .iter()
            .map(|d| {
                let start = d.text.as_ptr() as usize - text.as_ptr() as usize;
                (d.first_line, start..start + d.text.len())
            })
            .collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = documents.len().div_ceil(threads).max(1);
        let results: Vec<Parsed> = if documents.len() < 1000 || threads == 1 {
            vec![parse_documents(&file, &text, &documents, options)]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = documents
                    .chunks(chunk)
                    .map(|part| scope.spawn(|| parse_documents(&file, &text, part, options)))
                    .collect();
                // A panic in a parser thread is a bug: let it surface, never lose documents.
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        };
        for part in results {
            parsed.objects.extend(part.objects);
            parsed.errors.extend(part.errors);
        }
    }
    parsed
}

fn parse_documents(
    file: &Arc<str>,
    text: &Arc<str>,
    documents: &[(usize, std::ops::Range<usize>)],
    options: &ParseOptions,
) -> Parsed {
    let mut parsed = Parsed::default();
    for (doc_line, range) in documents {
        let doc = &text[range.clone()];
        let value: Value = match serde_yaml_ng::from_str(doc) {
            Ok(v) => v,
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line() + doc_line - 1, l.column()))
                    .unwrap_or((*doc_line, 0));
                let message = e.to_string();
                // serde_yaml_ng appends "at line L column C", relative to the document.
                let message = message.split(" at line ").next().unwrap_or(&message);
                parsed.errors.push(InputError::Yaml {
                    file: file.to_string(),
                    line,
                    column,
                    message: message.to_owned(),
                });
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        let first_line = *doc_line + leading_blank_lines(doc);
        let span = |base: FieldPath, line: usize| {
            Origin::File(FileSpan {
                file: file.clone(),
                text: text.clone(),
                range: range.clone(),
                doc_line: *doc_line,
                base,
                line,
            })
        };
        let is_list = value["kind"].as_str().is_some_and(|k| k.ends_with("List"))
            && value["items"].is_array();
        if is_list {
            let Value::Object(mut map) = value else {
                continue;
            };
            let items = match map.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            for (i, item) in items.into_iter().enumerate() {
                let base = FieldPath(vec![Seg::Key("items".into()), Seg::Index(i)]);
                let line = lines::locate(doc, &base)
                    .map(|l| doc_line + l - 1)
                    .unwrap_or(first_line);
                accept(item, span(base, line), line, file, options, &mut parsed);
            }
        } else {
            accept(
                value,
                span(FieldPath::default(), first_line),
                first_line,
                file,
                options,
                &mut parsed,
            );
        }
    }
    parsed
}

/// Lines before the document's first key (comments, blank lines), so the object's line is the
/// line of its content.
fn leading_blank_lines(doc: &str) -> usize {
    doc.lines()
        .take_while(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#')
        })
        .count()
}

fn accept(
    value: Value,
    origin: Origin,
    line: usize,
    file: &Arc<str>,
    options: &ParseOptions,
    parsed: &mut Parsed,
) {
    let not_an_object = |message: String| InputError::NotAnObject {
        file: file.to_string(),
        line,
        message,
    };
    if !value.is_object() {
        parsed.errors.push(not_an_object(
            "not a Kubernetes object: each document must be a mapping with apiVersion, kind and metadata".to_owned(),
        ));
        return;
    }
    let missing: Vec<&str> = ["apiVersion", "kind"]
        .into_iter()
        .filter(|k| !value[*k].is_string())
        .collect();
    if !missing.is_empty() {
        parsed.errors.push(not_an_object(format!(
            "the document has no {}: every Kubernetes object needs apiVersion and kind",
            missing.join(" or ")
        )));
        return;
    }
    let object = Object::new(value, origin, &options.default_namespace);
    if object.name.is_empty() {
        parsed.errors.push(not_an_object(format!(
            "{} without metadata.name: give it a name",
            object.kind
        )));
        return;
    }
    if !object.is_known() {
        if !options.ignore_unknown {
            parsed.errors.push(InputError::UnknownKind {
                file: file.to_string(),
                line,
                kind: object.kind.clone(),
                api_version: object.value["apiVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                name: object.name.clone(),
            });
        }
        return;
    }
    parsed.objects.push(object);
}

/// Parses one text, for tests and for callers holding YAML in memory.
pub fn parse_text(origin: &str, text: &str, options: &ParseOptions) -> Parsed {
    parse_inputs(
        vec![Input {
            origin: origin.to_owned(),
            text: text.to_owned(),
        }],
        options,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ParseOptions {
        ParseOptions {
            default_namespace: "default".into(),
            ignore_unknown: true,
        }
    }

    #[test]
    fn objects_keep_their_lines_and_lists_are_unrolled() {
        let text = "# comment\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: shop}\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: web, namespace: shop}\n";
        let parsed = parse_text("app.yaml", text, &options());
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let found: Vec<(String, String, usize)> = parsed
            .objects
            .iter()
            .map(|o| {
                (
                    o.resource().to_string(),
                    o.group.clone(),
                    o.file_line(None).unwrap().line,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("Service default/a".to_owned(), String::new(), 2),
                ("Namespace shop".to_owned(), String::new(), 9),
                ("Deployment shop/web".to_owned(), "apps".to_owned(), 12),
            ]
        );
    }

    #[test]
    fn a_bad_document_is_an_error_with_its_line_and_the_rest_is_read() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: [unclosed\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n---\nfoo: bar\n";
        let parsed = parse_text("bad.yaml", text, &options());
        assert_eq!(parsed.objects.len(), 2);
        let errors: Vec<String> = parsed.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        // libyaml notices the unclosed list where the document ends, on the separator line.
        assert!(
            errors[0].starts_with("bad.yaml:6:1: invalid YAML"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("bad.yaml:11: the document has no apiVersion or kind"),
            "{}",
            errors[1]
        );
    }

    #[test]
    fn unknown_kinds_are_skipped_or_refused() {
        let text =
            "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: f}\n";
        let parsed = parse_text("f.yaml", text, &options());
        assert!(parsed.objects.is_empty() && parsed.errors.is_empty());
        let strict = ParseOptions {
            ignore_unknown: false,
            ..options()
        };
        let parsed = parse_text("f.yaml", text, &strict);
        assert_eq!(
            parsed.errors[0].to_string(),
            "f.yaml:1: EnvoyFilter f: kind EnvoyFilter (networking.istio.io/v1alpha3) is not one meshctl analyze reads; remove it, or leave out --ignore-unknown=false to skip such documents"
        );
    }
}
