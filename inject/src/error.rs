use thiserror::Error;

/// Why a workload cannot be injected. `resource` is `Kind namespace/name`.
#[derive(Debug, Error, PartialEq)]
pub enum InjectError {
    #[error("{resource}: annotation {annotation}: {message}")]
    Annotation {
        resource: String,
        annotation: String,
        message: String,
    },
    #[error("{resource}: {field}: {message}")]
    Field {
        resource: String,
        field: String,
        message: String,
    },
    #[error("injection config ({origin}): {message}")]
    Config { origin: String, message: String },
}
