//! What can go wrong before analysis starts: reading and parsing the input.

use std::path::PathBuf;

use thiserror::Error;

/// An input that could not be read or understood. Each says what and where (file:line) and
/// what to do; the other inputs are still analysed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InputError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{file}:{line}:{column}: invalid YAML: {message}")]
    Yaml {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}:{line}: {message}")]
    NotAnObject {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}:{line}: {kind} {name}: kind {kind} ({api_version}) is not one meshctl analyze reads; remove it, or leave out --ignore-unknown=false to skip such documents")]
    UnknownKind {
        file: String,
        line: usize,
        kind: String,
        api_version: String,
        name: String,
    },
}

impl InputError {
    /// The file the error is in, for grouping messages.
    pub fn file(&self) -> String {
        match self {
            InputError::Read { path, .. } => path.display().to_string(),
            InputError::Yaml { file, .. }
            | InputError::NotAnObject { file, .. }
            | InputError::UnknownKind { file, .. } => file.clone(),
        }
    }
}

/// A `--suppress` argument that is not `CODE` or `CODE=Kind namespace/name`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("invalid --suppress {arg:?}: {why}; write CODE=Kind namespace/name, e.g. \"IST0102=Namespace *\" or \"IST0101=VirtualService default/*\"")]
pub struct SuppressError {
    pub arg: String,
    pub why: String,
}
