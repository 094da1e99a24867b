//! Discovery and configuration push (Pilot's job): Kubernetes and the Istio API in, each
//! proxy's configuration out.
//!
//! [`watch`] → [`model::Snapshot`] → [`model::Model`] (resources serialised once) → a
//! [`generation::Generation`] on the [`hub::Hub`] → per proxy, the resources its [`scope`]
//! allows, as a delta [`stream`] ([`server`], [`wire`]).

mod backoff;
pub mod convert;
pub mod generation;
pub mod hub;
pub mod ingress;
pub mod model;
pub mod problems;
pub mod registry;
pub mod scope;
pub mod security;
pub mod server;
pub mod service_entry;
pub mod stream;
pub mod watch;
pub mod wire;
