//! Errors of the operator library.

use crate::InputError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The MeshInstall's spec cannot be merged with its profile.
    #[error("invalid MeshInstall: {0}")]
    InvalidSpec(#[source] InputError),

    /// A rendered object has a kind the operator has no API resource for.
    #[error("{object}: kind {kind} is not one the operator manages")]
    UnknownKind { object: String, kind: String },

    /// A rendered object could not be turned into an API object.
    #[error("{object}: {message}")]
    BadObject { object: String, message: String },

    /// An API call about one object failed.
    #[error("{action} {object}: {source}")]
    Kube {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },

    /// Objects of one or more components could not be applied; status says which.
    #[error("{count} component(s) failed to apply: {first}")]
    ApplyFailed { count: usize, first: String },

    /// A CRD did not report `Established` in time.
    #[error("CustomResourceDefinition {name} not Established after {seconds} s")]
    CrdNotEstablished { name: String, seconds: u64 },

    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    #[error("MeshInstall has no {0}")]
    MissingMetadata(&'static str),

    #[error("serializing: {0}")]
    Serialize(#[from] serde_json::Error),

    #[error("serializing overlay: {0}")]
    SerializeYaml(#[from] serde_yaml_ng::Error),

    #[error("metrics server on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn kube(
        action: &'static str,
        object: impl Into<String>,
        source: kube::Error,
    ) -> Self {
        Error::Kube {
            action,
            object: object.into(),
            source,
        }
    }
}

/// The HTTP status code of an API error, if the server answered.
pub(crate) fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    api_code(err) == Some(404)
}

pub(crate) fn is_conflict(err: &kube::Error) -> bool {
    api_code(err) == Some(409)
}
