//! Transport security: the workload's certificate files, PeerAuthentication's meaning for the
//! inbound side, and DestinationRule `tls` for upstreams.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// Where the workload's credentials are. mesh-agent writes `cert-chain.pem`, `key.pem` and
/// `root-cert.pem` atomically into one directory; the proxy polls them and reloads on change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CertificateFiles {
    /// The directory holding the three files under their default names.
    pub directory: PathBuf,
    /// Overrides `directory/cert-chain.pem`: the workload certificate then intermediates.
    pub certificate_chain: Option<PathBuf>,
    /// Overrides `directory/key.pem` (PKCS#8, PKCS#1 or SEC1 PEM).
    pub private_key: Option<PathBuf>,
    /// Overrides `directory/root-cert.pem`: the mesh's trust roots (peers must chain to one).
    pub root_certificates: Option<PathBuf>,
    /// How often the files are looked at for changes (default 1s).
    pub check_interval: Option<Duration>,
}

impl Default for CertificateFiles {
    fn default() -> Self {
        CertificateFiles {
            directory: PathBuf::from("/var/run/secrets/workload-spiffe-credentials"),
            certificate_chain: None,
            private_key: None,
            root_certificates: None,
            check_interval: None,
        }
    }
}

impl CertificateFiles {
    pub fn chain_path(&self) -> PathBuf {
        self.certificate_chain
            .clone()
            .unwrap_or_else(|| self.directory.join("cert-chain.pem"))
    }
    pub fn key_path(&self) -> PathBuf {
        self.private_key
            .clone()
            .unwrap_or_else(|| self.directory.join("key.pem"))
    }
    pub fn roots_path(&self) -> PathBuf {
        self.root_certificates
            .clone()
            .unwrap_or_else(|| self.directory.join("root-cert.pem"))
    }
}

/// PeerAuthentication's `mtls.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit: the workload's mode for a port, PERMISSIVE for the workload.
    #[default]
    Unset,
    /// Plaintext only: TLS bytes are passed to the application as they are.
    Disable,
    /// mTLS from sidecars and plaintext from anyone, told apart per connection.
    Permissive,
    /// mTLS only: plaintext connections are refused.
    Strict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MutualTls {
    pub mode: MtlsMode,
}

/// The PeerAuthentication in force for this workload, as the control plane resolved it (mesh,
/// namespace and workload policies merged: the most specific one's `mtls` wins).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PeerAuthentication {
    pub mtls: MutualTls,
    /// Per workload port (the container port, not the service port): overrides `mtls`.
    pub port_level_mtls: BTreeMap<u16, MutualTls>,
}

impl PeerAuthentication {
    /// The mode in force for `port`: the port's, else the workload's, else PERMISSIVE.
    pub fn mode_for(&self, port: u16) -> MtlsMode {
        let port_mode = self
            .port_level_mtls
            .get(&port)
            .map(|m| m.mode)
            .unwrap_or_default();
        match (port_mode, self.mtls.mode) {
            (MtlsMode::Unset, MtlsMode::Unset) => MtlsMode::Permissive,
            (MtlsMode::Unset, m) => m,
            (m, _) => m,
        }
    }
}

/// DestinationRule `tls` (ClientTLSSettings): how to talk TLS to the upstream.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClientTlsSettings {
    pub mode: TlsMode,
    /// MUTUAL: the client certificate file (PEM).
    pub client_certificate: Option<PathBuf>,
    /// MUTUAL: the client key file (PEM).
    pub private_key: Option<PathBuf>,
    /// SIMPLE / MUTUAL: the CA bundle to verify the server with (default: the system's).
    pub ca_certificates: Option<PathBuf>,
    /// A secret by name: needs the control plane to ship it, not supported yet; without the
    /// files as well, connections of the cluster fail (closed), saying why.
    pub credential_name: Option<String>,
    /// The server certificate must carry one of these SANs (DNS or URI); for ISTIO_MUTUAL they
    /// replace the endpoints' identities.
    pub subject_alt_names: Vec<String>,
    /// SNI to send (default for SIMPLE / MUTUAL: the service's host).
    pub sni: Option<String>,
    /// SIMPLE / MUTUAL: do not verify the server's certificate at all.
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// Plaintext.
    #[default]
    Disable,
    /// TLS, server verified, no client certificate.
    Simple,
    /// TLS with the client certificate in `clientCertificate`.
    Mutual,
    /// The mesh's mTLS: the workload certificate, the mesh's roots, the endpoint's SPIFFE
    /// identity verified.
    IstioMutual,
}

impl crate::checked::Check for ClientTlsSettings {
    fn check(&self) -> Result<(), String> {
        // With `credentialName` the rule is valid (Istio's validation accepts it); the proxy
        // cannot fetch the secret yet, so such a cluster fails its connections, saying why.
        if self.mode == TlsMode::Mutual
            && self.credential_name.is_none()
            && (self.client_certificate.is_none() || self.private_key.is_none())
        {
            return Err(
                "tls mode MUTUAL needs `clientCertificate` and `privateKey` (files) or `credentialName`".into(),
            );
        }
        Ok(())
    }
}

/// `deserialize_with` for an optional checked value.
pub(crate) fn checked_tls<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ClientTlsSettings>, D::Error> {
    let v = Option::<ClientTlsSettings>::deserialize(d)?;
    if let Some(t) = &v {
        crate::checked::Check::check(t).map_err(serde::de::Error::custom)?;
    }
    Ok(v)
}

/// The SPIFFE identity of a service account: `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
pub fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}
