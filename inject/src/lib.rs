//! The sidecar injector. `meshctl kube-inject` and meshd's admission webhook both call it, so a
//! pod gets the same sidecar whichever way it is injected.
//!
//! It works on plain JSON trees (`serde_json` with `preserve_order`), so the fields of a
//! workload keep their order and unknown fields pass through untouched.

pub mod config;
pub mod decide;
pub mod error;
pub mod names;
pub mod pod;
pub mod probes;
pub mod prometheus;
pub mod quantity;
pub mod sidecar;
pub mod traffic;
pub mod uninject;
pub mod workload;

pub use config::InjectConfig;
pub use error::InjectError;
pub use workload::{inject_object, Outcome};
