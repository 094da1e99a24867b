//! What the analyzers report: a message of a stable type (code, name, level) about one resource,
//! with where it is.

use std::fmt;

use serde::Serialize;

use crate::object::{FileLine, ResourceRef};

/// How bad a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Error => "Error",
        }
    }

    /// `error`, `Warning`, `INFO`…; None for anything else.
    pub fn parse(text: &str) -> Option<Level> {
        match text.to_ascii_lowercase().as_str() {
            "info" => Some(Level::Info),
            "warning" | "warn" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of finding. Codes `IST0xxx` are Istio's own, for the same condition, so that
/// suppression lists written for `istioctl analyze` keep working; `MSH0xxx` are meshctl's.
#[derive(Debug, PartialEq, Eq)]
pub struct MessageType {
    pub code: &'static str,
    pub name: &'static str,
    pub level: Level,
    /// One line: what the condition is.
    pub description: &'static str,
}

/// Where the documentation of every code lives (docs/analyze.md of the repository, published).
pub const DOCUMENTATION_BASE: &str = "https://meshctl.dev/docs/analyze/";

impl MessageType {
    pub fn documentation_url(&self) -> String {
        format!("{DOCUMENTATION_BASE}#{}", self.code.to_ascii_lowercase())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: &'static MessageType,
    /// What is wrong and what to do about it.
    pub text: String,
    pub resource: ResourceRef,
    /// The file and line of the field at fault (or of the resource); None for cluster objects.
    pub origin: Option<FileLine>,
    /// The field at fault, e.g. `spec.http[0].route[0].destination.host`, when there is one.
    pub field: Option<String>,
}

impl Message {
    pub fn level(&self) -> Level {
        self.kind.level
    }
}
