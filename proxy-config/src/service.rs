//! The service registry: what the outbound side knows (Istio's services and ServiceEntries,
//! with their endpoints from EndpointSlices / WorkloadEntries).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::protocol::Protocol;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Service {
    /// Fully qualified name, e.g. `reviews.default.svc.cluster.local`; routes' destinations name it.
    pub host: String,
    /// Other names clients use in the `Host` header (`reviews`, `reviews.default`).
    pub aliases: Vec<String>,
    /// Its short name for metrics (`destination_service_name`); default: `host` up to the first dot.
    pub name: Option<String>,
    /// Its namespace for metrics (`destination_service_namespace`); default: `host`'s second label.
    pub namespace: Option<String>,
    /// Virtual IPs (ClusterIPs): outbound connections to these are this service's.
    pub addresses: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServicePort {
    pub number: u16,
    /// Istio's port naming: `http`, `http-web`, `grpc`, `http2`, `tcp-db`, …
    pub name: String,
    /// Wins over the name when set (`http`, `http2`, `grpc`, `tcp`, …).
    pub app_protocol: Option<String>,
    /// Endpoints' port when an endpoint does not say (default: `number`).
    pub target_port: Option<u16>,
}

impl ServicePort {
    /// The protocol this port declares, by `appProtocol` then by name; `None`: sniff.
    pub fn protocol(&self) -> Option<Protocol> {
        Protocol::declared(self.app_protocol.as_deref(), &self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Endpoint {
    pub address: Option<IpAddr>,
    /// The endpoint's port for every service port (when they are the same).
    pub port: Option<u16>,
    /// The endpoint's port by service port name (EndpointSlice style).
    pub ports: BTreeMap<String, u16>,
    /// Used by subsets and for `destination_app` / `destination_version`.
    pub labels: BTreeMap<String, String>,
    /// `destination_workload` in metrics.
    pub workload: Option<String>,
    /// `destination_workload_namespace` in metrics.
    pub namespace: Option<String>,
    /// Relative weight in load balancing (default 1).
    pub weight: Option<u32>,
    /// The endpoint's service account: with mTLS the server must prove the identity
    /// `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`.
    pub service_account: Option<String>,
    /// The full identity the server must prove (wins over `serviceAccount`), e.g. for
    /// another trust domain.
    pub identity: Option<String>,
}

impl Endpoint {
    /// Where this endpoint serves `port` of its service.
    pub fn port_for(&self, port: &ServicePort) -> u16 {
        self.ports
            .get(&port.name)
            .copied()
            .or(self.port)
            .or(port.target_port)
            .unwrap_or(port.number)
    }
}
