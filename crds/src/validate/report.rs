//! What validation finds, and where: [`FieldIssue`], [`Report`], the [`FieldPath`] issues are
//! located by, and the [`Issues`] collector the per-kind checks write into.

use std::fmt;

use serde::Serialize;

/// One problem, located by a JSON-path-like field path from the object root, e.g.
/// `spec.http[0].route[1].destination.host`, and a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldIssue {
    pub field: String,
    pub reason: String,
}

/// Everything found in one object. Errors make the object invalid (the webhook rejects it);
/// warnings are returned to the client and change nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub errors: Vec<FieldIssue>,
    pub warnings: Vec<FieldIssue>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A location inside an object, written the way Kubernetes writes field paths:
/// `.name` for a field, `[3]` for a list item, `[key]` for a map entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    /// A top-level field of the object, such as `spec` or `metadata`.
    pub(crate) fn root(field: &str) -> Self {
        FieldPath(field.to_string())
    }

    /// A field of the object at this path.
    pub(crate) fn field(&self, name: &str) -> Self {
        FieldPath(format!("{}.{name}", self.0))
    }

    /// An item of the list at this path.
    pub(crate) fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// An entry of the map at this path.
    pub(crate) fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{key}]", self.0))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The collector every check writes into; turned into a [`Report`] at the end.
#[derive(Debug, Default)]
pub(crate) struct Issues {
    report: Report,
}

impl Issues {
    pub(crate) fn error(&mut self, at: &FieldPath, reason: impl Into<String>) {
        self.report.errors.push(FieldIssue {
            field: at.to_string(),
            reason: reason.into(),
        });
    }

    pub(crate) fn warn(&mut self, at: &FieldPath, reason: impl Into<String>) {
        self.report.warnings.push(FieldIssue {
            field: at.to_string(),
            reason: reason.into(),
        });
    }

    /// Records the error of a check that returns one, if it did.
    pub(crate) fn check(&mut self, at: &FieldPath, result: Result<(), String>) {
        if let Err(reason) = result {
            self.error(at, reason);
        }
    }

    pub(crate) fn into_report(self) -> Report {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_kubernetes_field_paths() {
        let p = FieldPath::root("spec")
            .field("http")
            .index(0)
            .field("match")
            .index(2)
            .field("headers")
            .key("x-user");
        assert_eq!(p.to_string(), "spec.http[0].match[2].headers[x-user]");
    }

    #[test]
    fn a_report_is_valid_with_warnings_only() {
        let mut issues = Issues::default();
        issues.warn(&FieldPath::root("spec"), "deprecated");
        assert!(issues.into_report().is_valid());
        let mut issues = Issues::default();
        issues.check(&FieldPath::root("spec"), Err("bad".into()));
        let report = issues.into_report();
        assert!(!report.is_valid());
        assert_eq!(report.errors[0].field, "spec");
    }
}
