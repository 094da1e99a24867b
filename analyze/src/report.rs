//! Collects the analyzers' findings and turns them into [`Message`]s: the resource, the line
//! of the field at fault, and the resource's own `galley.istio.io/analyze-suppress` list.

use std::collections::HashSet;

use crate::fieldpath::FieldPath;
use crate::message::{Message, MessageType};
use crate::object::Object;

/// Istio's per-resource suppression annotation: a comma-separated list of codes, or `*`.
pub const ANNOTATION_SUPPRESS: &str = "galley.istio.io/analyze-suppress";

struct Finding {
    kind: &'static MessageType,
    obj: usize,
    field: String,
    text: String,
}

/// Where analyzers put what they find.
pub struct Report<'a> {
    objects: &'a [Object],
    findings: Vec<Finding>,
}

impl<'a> Report<'a> {
    pub fn new(objects: &'a [Object]) -> Report<'a> {
        Report {
            objects,
            findings: Vec::new(),
        }
    }

    /// A finding about object `obj`; `field` is the path of the field at fault, or empty.
    pub fn add(&mut self, kind: &'static MessageType, obj: usize, field: &str, text: String) {
        self.findings.push(Finding {
            kind,
            obj,
            field: field.to_owned(),
            text,
        });
    }

    /// The messages, each once, in the order of their resources in the input.
    pub fn finish(self) -> Vec<Message> {
        let mut seen = HashSet::new();
        let mut out: Vec<(usize, Message)> = Vec::with_capacity(self.findings.len());
        for f in self.findings {
            let object = &self.objects[f.obj];
            if suppressed_by_annotation(object, f.kind.code) {
                continue;
            }
            if !seen.insert((f.kind.code, f.obj, f.text.clone())) {
                continue;
            }
            let field = (!f.field.is_empty()).then(|| FieldPath::parse(&f.field));
            out.push((
                f.obj,
                Message {
                    kind: f.kind,
                    text: f.text,
                    resource: object.resource(),
                    origin: object.file_line(field.as_ref()),
                    field: field.map(|p| p.to_string()),
                },
            ));
        }
        out.sort_by(|(a_obj, a), (b_obj, b)| {
            a_obj
                .cmp(b_obj)
                .then_with(|| a.origin.cmp(&b.origin))
                .then_with(|| a.kind.code.cmp(b.kind.code))
        });
        out.into_iter().map(|(_, m)| m).collect()
    }
}

fn suppressed_by_annotation(object: &Object, code: &str) -> bool {
    object
        .annotations()
        .get(ANNOTATION_SUPPRESS)
        .and_then(|v| v.as_str())
        .is_some_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|c| c == "*" || c.eq_ignore_ascii_case(code))
        })
}
