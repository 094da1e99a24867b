//! Errors in what a user gave the install pipeline. Each says what is wrong, where, and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("unknown profile {name:?}; known profiles: {}", known.join(", "))]
    UnknownProfile { name: String, known: Vec<String> },

    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// YAML that does not parse, or a field of the wrong type or name.
    #[error("{origin}:{line}:{column}: {}{message}", field_prefix(field))]
    Parse {
        origin: String,
        line: usize,
        column: usize,
        /// Dotted path of the offending field, empty when the YAML itself is broken.
        field: String,
        message: String,
    },

    #[error("{origin}: expected a document of kind MeshInstall (apiVersion install.meshctl.dev/v1alpha1), found {found}")]
    WrongKind { origin: String, found: String },

    #[error(
        "{origin}: holds {count} YAML documents; an overlay file holds exactly one MeshInstall"
    )]
    DocumentCount { origin: String, count: usize },

    #[error("--set {arg:?}: {reason}")]
    SetSyntax { arg: String, reason: String },

    #[error("--set {arg:?}: {path} does not exist{}", nearest_hint(nearest))]
    SetUnknownPath {
        arg: String,
        path: String,
        nearest: Vec<String>,
    },

    #[error("--set {arg:?}: {path} {reason}")]
    SetValue {
        arg: String,
        path: String,
        reason: String,
    },

    /// The merged spec breaks a rule that spans several fields.
    #[error("invalid MeshInstall: {field}: {message}")]
    Invalid { field: String, message: String },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() || field == "." {
        String::new()
    } else {
        format!("field {field}: ")
    }
}

fn nearest_hint(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", nearest.join(", "))
    }
}
