//! meshd, the control plane. So far: its certificate authority, the admission webhooks that
//! inject sidecars and validate Istio API objects, and the upkeep of their configurations.

pub mod ca;
pub mod debug;
pub mod inject_config;
pub mod metrics;
pub mod serve;
pub mod serving_cert;
pub mod webhook;
pub mod webhook_configs;
