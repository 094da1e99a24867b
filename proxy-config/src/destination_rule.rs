//! Cluster policy, with the meaning and field names of Istio's `DestinationRule`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// Policy for the traffic to one service (`host`) and the subsets it names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DestinationRule {
    pub name: String,
    pub namespace: String,
    /// The service's fully qualified `host`.
    pub host: String,
    pub traffic_policy: Option<TrafficPolicy>,
    pub subsets: Vec<Subset>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Subset {
    pub name: String,
    /// Endpoints carrying all these labels belong to the subset.
    pub labels: BTreeMap<String, String>,
    /// Overrides the rule's policy field by field (as Istio's subset policy does).
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TrafficPolicy {
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS to the upstream; absent: mTLS to endpoints that have a sidecar (label
    /// `security.istio.io/tlsMode: istio`) when this proxy has certificates, else plaintext
    /// (Istio's auto mTLS).
    #[serde(deserialize_with = "crate::security::checked_tls")]
    pub tls: Option<crate::security::ClientTlsSettings>,
    /// Per-port overrides of the settings above.
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PortTrafficPolicy {
    pub port: Option<crate::virtual_service::PortSelector>,
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(deserialize_with = "crate::security::checked_tls")]
    pub tls: Option<crate::security::ClientTlsSettings>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LoadBalancerSettings {
    pub simple: Option<SimpleLb>,
    pub consistent_hash: Option<ConsistentHashLb>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Istio's default: least request.
    #[default]
    Unspecified,
    RoundRobin,
    /// Power of two choices by requests in flight.
    LeastRequest,
    /// Deprecated Istio name of LEAST_REQUEST.
    LeastConn,
    Random,
    /// Send to the address the caller asked for.
    Passthrough,
}

/// One of the hash keys; requests with the same key go to the same endpoint while the endpoint
/// set is unchanged, and few keys move when it changes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConsistentHashLb {
    pub http_header_name: Option<String>,
    pub http_cookie: Option<HttpCookie>,
    pub use_source_ip: Option<bool>,
    pub http_query_parameter_name: Option<String>,
    /// Accepted for compatibility; mesh-proxy always uses rendezvous hashing.
    pub minimum_ring_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpCookie {
    pub name: String,
    pub path: Option<String>,
    /// When set and the request has no such cookie, the proxy makes one and sets it on the
    /// response, so the client sticks from then on.
    pub ttl: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConnectionPoolSettings {
    pub tcp: Option<TcpSettings>,
    pub http: Option<HttpSettings>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpSettings {
    /// Connections to the whole cluster; beyond it requests wait as pending.
    pub max_connections: Option<u32>,
    /// Default 10s.
    pub connect_timeout: Option<Duration>,
    pub tcp_keepalive: Option<TcpKeepalive>,
    pub max_connection_duration: Option<Duration>,
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpKeepalive {
    pub probes: Option<u32>,
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Requests waiting for a connection; beyond it: 503 with response flag `UO`.
    pub http1_max_pending_requests: Option<u32>,
    /// Requests in flight to the cluster; beyond it: 503 `UO`.
    pub http2_max_requests: Option<u32>,
    /// Requests on one upstream connection before it is closed (0: unlimited).
    pub max_requests_per_connection: Option<u32>,
    /// Retries in flight to the cluster; beyond it a retry is not made.
    pub max_retries: Option<u32>,
    /// An idle upstream connection is closed after this (default 1h).
    pub idle_timeout: Option<Duration>,
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    /// Talk to the upstream in the protocol the client used.
    pub use_client_protocol: Option<bool>,
    pub max_concurrent_streams: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    Default,
    DoNotUpgrade,
    Upgrade,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OutlierDetection {
    /// Deprecated Istio name of consecutiveGatewayErrors' neighbour; taken as consecutive5xxErrors.
    pub consecutive_errors: Option<u32>,
    /// 5xx answers (and connect failures) in a row that eject an endpoint (default 5; 0 off).
    pub consecutive_5xx_errors: Option<u32>,
    /// 502/503/504 answers (and connect failures) in a row that eject (default off).
    pub consecutive_gateway_errors: Option<u32>,
    /// How often ejected endpoints are looked at to be returned (default 10s).
    pub interval: Option<Duration>,
    /// Ejection lasts this times the number of times the endpoint was ejected (default 30s).
    pub base_ejection_time: Option<Duration>,
    /// At most this share of the endpoints is ejected at once (default 10%; one always may be).
    pub max_ejection_percent: Option<u32>,
    /// Below this share of healthy endpoints, ejection is ignored (default 0).
    pub min_health_percent: Option<u32>,
    pub split_external_local_origin_errors: Option<bool>,
    pub consecutive_local_origin_failures: Option<u32>,
}
