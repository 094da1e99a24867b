//! mesh-proxy's configuration: one snapshot of everything the proxy needs, the same whether it
//! is read from a YAML file (`mesh-proxy run --config FILE`) or pushed by the control plane.
//! The proxy swaps whole snapshots atomically; nothing here knows about sockets or runtimes, so
//! meshd can build snapshots without the data plane.
//!
//! Routing and cluster policy keep Istio's field names and meaning ([`VirtualService`],
//! [`DestinationRule`]); the rest ([`Service`], [`Listener`], [`Node`]) is what the control
//! plane resolves from Kubernetes. `docs/proxy.md` documents every field.

pub mod authorization;
mod checked;
pub mod destination_rule;
pub mod duration;
mod error;
pub mod matching;
pub mod protocol;
pub mod security;
pub mod service;
pub mod telemetry;
pub mod virtual_service;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use authorization::*;
pub use destination_rule::*;
pub use duration::Duration;
pub use error::ConfigError;
pub use matching::{Percent, RegexPattern, StringMatch};
pub use protocol::Protocol;
pub use security::*;
pub use service::{Endpoint, Service, ServicePort};
pub use telemetry::*;
pub use virtual_service::*;

/// A whole configuration snapshot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// The snapshot's version as its source names it (shown in the config dump).
    pub version: Option<String>,
    /// Who this proxy is: the source of its outbound and the destination of its inbound traffic.
    pub node: Node,
    /// What to do with outbound traffic to destinations no service covers.
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// Sockets to listen on. Default: outbound capture on 0.0.0.0:15001, inbound on 0.0.0.0:15006.
    #[serde(
        deserialize_with = "listeners",
        skip_serializing_if = "Option::is_none"
    )]
    pub listeners: Option<Vec<Listener>>,
    pub inbound: Inbound,
    pub services: Vec<Service>,
    pub virtual_services: Vec<VirtualService>,
    pub destination_rules: Vec<DestinationRule>,
    /// Protection against slow and hostile clients.
    pub limits: Limits,
    /// How long to wait for the first bytes before a port without a declared protocol is taken
    /// as opaque TCP (Istio's `protocolDetectionTimeout`; default 100ms).
    pub protocol_detection_timeout: Option<Duration>,
    /// On SIGTERM or drain: how long in-flight requests may finish (default 5s).
    pub drain_timeout: Option<Duration>,
    /// The mesh's trust domain: SPIFFE identities are `spiffe://<trustDomain>/ns/<ns>/sa/<sa>`
    /// (default `cluster.local`).
    pub trust_domain: Option<String>,
    /// The workload's certificate, key and trust roots. Absent: no mTLS (inbound plaintext
    /// only, upstreams without `tls` in plaintext).
    pub certificates: Option<CertificateFiles>,
    /// Trace propagation, generation, sampling and export.
    #[serde(deserialize_with = "telemetry::checked_tracing")]
    pub tracing: Option<Tracing>,
    /// Access logs on stdout.
    pub access_log: Option<AccessLog>,
}

impl ProxyConfig {
    /// The trust domain in force.
    pub fn trust_domain(&self) -> &str {
        self.trust_domain.as_deref().unwrap_or("cluster.local")
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Node {
    /// Workload name (`source_workload` / `destination_workload`), e.g. the Deployment.
    pub workload: Option<String>,
    pub namespace: Option<String>,
    /// Pod labels; `app` and `version` become `*_app` / `*_version`, and routes'
    /// `sourceLabels` match against them.
    pub labels: BTreeMap<String, String>,
    /// `source_cluster` / `destination_cluster` (default `Kubernetes`).
    pub cluster: Option<String>,
    /// The workload's service account: its identity is
    /// `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>` (the certificate carries it).
    pub service_account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OutboundTrafficPolicy {
    pub mode: OutboundMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    /// Unknown destinations are passed through to where they were sent.
    #[default]
    AllowAny,
    /// Unknown destinations are refused (HTTP: 502; TCP: the connection is closed).
    RegistryOnly,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    /// `outbound` / `inbound`: connections iptables redirected, routed by their original
    /// destination; `none`: a plain listener.
    #[serde(default)]
    pub capture: Capture,
    /// For plain listeners: `HTTP`, `HTTP2`, `GRPC`, `TCP`; absent: detect.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// For plain HTTP listeners: serve the VirtualServices whose `gateways` list this name.
    #[serde(default)]
    pub gateway: Option<String>,
    /// More Gateways served on this listener, when several Gateways select one workload on one
    /// port (Istio merges their servers): their VirtualServices are served here too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_gateways: Vec<String>,
    /// For plain TCP listeners: where to send every connection.
    #[serde(default)]
    pub destination: Option<Destination>,
    /// Plain listeners: serve as the workload's inbound side (mTLS, authorization, inbound
    /// metrics) and forward to this address, like a Sidecar resource's `ingress` listener
    /// with `defaultEndpoint`, for workloads without traffic capture.
    #[serde(default)]
    pub default_endpoint: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Capture {
    #[default]
    None,
    Outbound,
    Inbound,
}

impl ProxyConfig {
    /// The listeners in force: the configured ones, or the sidecar's two capture ports.
    pub fn effective_listeners(&self) -> Vec<Listener> {
        match &self.listeners {
            Some(l) => l.clone(),
            None => vec![
                Listener {
                    name: "virtualOutbound".into(),
                    address: SocketAddr::from(([0, 0, 0, 0], 15001)),
                    capture: Capture::Outbound,
                    protocol: None,
                    gateway: None,
                    also_gateways: Vec::new(),
                    destination: None,
                    default_endpoint: None,
                },
                Listener {
                    name: "virtualInbound".into(),
                    address: SocketAddr::from(([0, 0, 0, 0], 15006)),
                    capture: Capture::Inbound,
                    protocol: None,
                    gateway: None,
                    also_gateways: Vec::new(),
                    destination: None,
                    default_endpoint: None,
                },
            ],
        }
    }
}

/// The workload's own side: traffic arriving on the inbound capture port.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Inbound {
    /// Where inbound connections go: the address they were sent to (Istio's default) or
    /// `127.0.0.1` with the same port.
    pub forward_to: InboundForward,
    /// The workload's ports with their protocols; other ports are detected.
    pub ports: Vec<ServicePort>,
    /// The service this workload serves, for `destination_service*` labels.
    pub service: Option<String>,
    /// Which connections must be mTLS (PeerAuthentication's meaning).
    pub peer_authentication: PeerAuthentication,
    /// The AuthorizationPolicies selecting this workload.
    #[serde(deserialize_with = "checked::vec")]
    pub authorization_policies: Vec<AuthorizationPolicy>,
    /// Local rate limits per workload port.
    #[serde(deserialize_with = "checked::vec")]
    pub rate_limits: Vec<PortRateLimit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InboundForward {
    #[default]
    OriginalDestination,
    Loopback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request head (request line and headers) accepted; larger: 431.
    pub max_request_headers_kb: u32,
    /// Time a client has to send a whole request head; slower: cut off. On HTTP/1.1 the clock
    /// runs from when the connection goes idle, so this also closes idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// HTTP/2 streams open at once on one client connection.
    pub http2_max_concurrent_streams: u32,
    /// Client connections at once per worker; beyond it new ones are closed at accept.
    pub max_connections: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_headers_kb: 60,
            header_read_timeout: Duration::from_secs(10),
            http2_max_concurrent_streams: 100,
            max_connections: 100_000,
        }
    }
}

impl ProxyConfig {
    /// Reads a snapshot from YAML text; errors name `file`, the line and the field.
    pub fn from_yaml(text: &str, file: &str) -> Result<ProxyConfig, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let config: ProxyConfig =
            serde_path_to_error::deserialize(de).map_err(|e| ConfigError::from_yaml(file, e))?;
        Ok(config)
    }

    /// Reads a snapshot from a YAML file.
    pub fn from_file(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }
}

fn listeners<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Listener>>, D::Error> {
    let list: Vec<Listener> = checked::vec(d)?;
    let mut seen = std::collections::HashSet::new();
    for l in &list {
        if !seen.insert(l.address) {
            return Err(serde::de::Error::custom(format!(
                "{} is used by two listeners",
                l.address
            )));
        }
    }
    Ok(Some(list))
}

impl checked::Check for Listener {
    fn check(&self) -> Result<(), String> {
        if self.capture == Capture::None
            && self.protocol == Some(Protocol::Tcp)
            && self.destination.is_none()
        {
            return Err(format!(
                "listener {:?}: a plain TCP listener needs a `destination`",
                self.name
            ));
        }
        Ok(())
    }
}

/// The `retryOn` conditions mesh-proxy knows (Envoy's names, as Istio passes them on).
pub const RETRY_ON_KINDS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "refused-stream",
    "retriable-4xx",
    "retriable-status-codes",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// A gRPC status code by name (`UNAVAILABLE`, any case) or number.
pub fn grpc_code(name: &str) -> Option<u32> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    if let Ok(n) = name.parse::<u32>() {
        return (n < 17).then_some(n);
    }
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .map(|i| i as u32)
}
