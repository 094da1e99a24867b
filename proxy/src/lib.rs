//! mesh-proxy, the data plane: the traffic capture its init container sets up (`iptables`),
//! and the proxy itself (`run`): listeners, protocol detection, HTTP routing with
//! VirtualService meaning, clusters with DestinationRule meaning, Istio metrics, admin.
//!
//! How a connection flows: [`listener`] accepts it (and reads the original destination of a
//! captured one), [`listener::sniff`] decides HTTP or opaque TCP, [`http::server`] or [`tcp`]
//! serves it; HTTP requests go through the [`http::chain`] of their side (outbound or
//! inbound), are routed by the [`snapshot`]'s route tables and sent through a
//! [`cluster::Cluster`]'s load balancer and connection pool. The snapshot in force is swapped
//! atomically ([`store`]); a request keeps the snapshot it started with.

pub mod admin;
pub mod cluster;
pub mod config_source;
pub mod default_routes;
pub mod drain;
pub mod dump;
pub mod filters;
pub mod http;
pub mod iptables;
pub mod listener;
pub mod meshd_source;
pub mod metrics;
pub mod original_dst;
pub mod route;
pub mod run;
pub mod snapshot;
pub mod store;
pub mod tcp;
pub mod tls;
