//! Discovery and configuration push (Pilot's job): Kubernetes and the Istio API in, each
//! proxy's configuration out.
//!
//! watch → [`model::Snapshot`] → [`model::Model`] (resources serialised once) → per proxy, the
//! resources its [`scope`] allows → the delta stream.

pub mod convert;
pub mod model;
pub mod registry;
pub mod scope;
