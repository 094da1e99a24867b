//! The admission webhooks the API server calls: `/inject` (mutating: adds the sidecar to pods)
//! and `/validate` (rejects invalid Istio API objects), over HTTPS.

pub mod admission;
pub mod inject;
pub mod server;
pub mod validate;
