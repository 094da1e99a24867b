//! meshd, the control plane. So far: the certificate authority (meshd's own serving
//! certificates, workload certificates over Istio's certificate service, the trust bundle in
//! every namespace, root rotation), the admission webhooks that inject sidecars and validate
//! Istio API objects, and the upkeep of their configurations.

pub mod allocator;
pub mod ca;
pub mod debug;
pub mod discovery;
pub mod duration_arg;
pub mod grpc;
pub mod inject_config;
pub mod metrics;
pub mod serve;
pub mod serving_cert;
pub mod token_review;
pub mod trust_bundle;
pub mod webhook;
pub mod webhook_configs;
pub mod workload_ca;
