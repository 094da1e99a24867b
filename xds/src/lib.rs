//! The wire protocols between meshd and mesh-proxy, generated from `proto/`:
//!
//! - [`discovery`]: the configuration push, one aggregated delta stream per proxy;
//! - [`ca`]: Istio's `IstioCertificateService`, workload certificates for a CSR.

pub mod discovery {
    tonic::include_proto!("mesh.discovery.v1");
}

pub mod ca {
    tonic::include_proto!("istio.v1.auth");
}

/// Type URLs of the resources the discovery stream carries.
pub mod types {
    /// One per service host: ports, endpoints with labels and identities.
    pub const SERVICE: &str = "mesh.v1/Service";
    pub const VIRTUAL_SERVICE: &str = "mesh.v1/VirtualService";
    pub const DESTINATION_RULE: &str = "mesh.v1/DestinationRule";
    /// The proxy's own settings (node, inbound, outbound policy, listeners, limits): one
    /// resource named `self`.
    pub const PROXY: &str = "mesh.v1/Proxy";
    /// Every type, in the order a proxy applies them.
    pub const ALL: &[&str] = &[PROXY, SERVICE, DESTINATION_RULE, VIRTUAL_SERVICE];
}
