//! TLS to upstreams with DestinationRule `tls` meaning: DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL,
//! and Istio's auto mTLS when the rule says nothing (mTLS to endpoints with a sidecar, label
//! `security.istio.io/tlsMode: istio`, when this proxy has a workload certificate).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use mesh_proxy_config::{ClientTlsSettings, TlsMode};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

use super::credentials::{parse_certificates, parse_key, parse_roots, CredentialError};
use super::stream::Upstream;
use super::{AppProtocol, Credentials};
use crate::metrics::Metrics;

/// The label by which Istio marks endpoints that have a sidecar.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// How one cluster talks to its endpoints.
pub enum UpstreamTls {
    Plain,
    /// The mesh's mTLS. `auto`: only to endpoints with a sidecar (no `tls` in the rule).
    /// `sans`: the rule's `subjectAltNames`, which replace the endpoints' identities.
    Mesh {
        auto: bool,
        sans: Vec<Arc<str>>,
    },
    /// SIMPLE or MUTUAL, one config per ALPN.
    Tls {
        http1: Arc<ClientConfig>,
        http2: Arc<ClientConfig>,
        tcp: Arc<ClientConfig>,
        server_name: ServerName<'static>,
        sans: Vec<Arc<str>>,
    },
    /// The rule's files could not be used: every connection fails, saying why.
    Broken(String),
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpstreamTls::Plain => "DISABLE",
            UpstreamTls::Mesh { auto: true, .. } => "AUTO_ISTIO_MUTUAL",
            UpstreamTls::Mesh { .. } => "ISTIO_MUTUAL",
            UpstreamTls::Tls { .. } => "SIMPLE/MUTUAL",
            UpstreamTls::Broken(_) => "BROKEN",
        })
    }
}

/// What an endpoint says about its TLS: its identity, and whether it has a sidecar.
#[derive(Debug, Clone, Default)]
pub struct EndpointTls {
    pub identity: Option<Arc<str>>,
    pub sidecar: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsConnectError {
    #[error("TLS to {addr}: {reason}")]
    Handshake { addr: SocketAddr, reason: String },
    #[error("TLS to {addr}: the server is {got}, not the expected {expected}")]
    WrongIdentity {
        addr: SocketAddr,
        got: String,
        expected: String,
    },
    #[error("TLS to {addr}: no workload certificate loaded")]
    NoCredentials { addr: SocketAddr },
    #[error("TLS to {addr}: {reason}")]
    Config { addr: SocketAddr, reason: String },
}

const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

impl UpstreamTls {
    /// The resolved `tls` setting of a cluster for `host`.
    pub fn resolve(settings: Option<&ClientTlsSettings>, host: &str) -> UpstreamTls {
        let Some(s) = settings else {
            return UpstreamTls::Mesh {
                auto: true,
                sans: Vec::new(),
            };
        };
        let sans: Vec<Arc<str>> = s
            .subject_alt_names
            .iter()
            .map(|s| Arc::from(s.as_str()))
            .collect();
        match s.mode {
            TlsMode::Disable => UpstreamTls::Plain,
            TlsMode::IstioMutual => UpstreamTls::Mesh { auto: false, sans },
            TlsMode::Simple | TlsMode::Mutual => match build_tls(s, host, sans) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(host, "DestinationRule tls cannot be used: {e}");
                    UpstreamTls::Broken(e.to_string())
                }
            },
        }
    }
}

fn build_tls(
    s: &ClientTlsSettings,
    host: &str,
    sans: Vec<Arc<str>>,
) -> Result<UpstreamTls, CredentialError> {
    let provider = super::provider();
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| CredentialError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CredentialError::Config(e.to_string()))?;
    let builder = if s.insecure_skip_verify == Some(true) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(super::verify::SkipVerify(provider.clone())))
    } else {
        let path = s
            .ca_certificates
            .clone()
            .unwrap_or_else(|| SYSTEM_ROOTS.into());
        let pem = read(&path)?;
        let roots: RootCertStore = parse_roots(&path, &pem)?;
        if sans.is_empty() {
            builder.with_root_certificates(roots)
        } else {
            // The SAN list replaces the name check: verify the chain here, the SANs after.
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(super::verify::MeshServerVerifier::new(
                    Arc::new(roots),
                    provider.clone(),
                )))
        }
    };
    let base = if s.mode == TlsMode::Mutual {
        let (cp, kp) = match (&s.client_certificate, &s.private_key) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                return Err(CredentialError::Config(format!(
                    "credentialName {:?}: secrets by name are not supported yet; give clientCertificate and privateKey files",
                    s.credential_name.as_deref().unwrap_or("")
                )))
            }
        };
        let chain = parse_certificates(cp, &read(cp)?)?;
        let key = parse_key(kp, &read(kp)?)?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| CredentialError::Config(e.to_string()))?
    } else {
        builder.with_no_client_auth()
    };
    let sni = s.sni.clone().unwrap_or_else(|| host.to_owned());
    let server_name = ServerName::try_from(sni.clone())
        .map_err(|_| CredentialError::Config(format!("{sni:?} is not a server name")))?;
    let with_alpn = |alpn: Option<&[u8]>| {
        let mut c = base.clone();
        c.alpn_protocols = alpn.map(|a| vec![a.to_vec()]).unwrap_or_default();
        Arc::new(c)
    };
    Ok(UpstreamTls::Tls {
        http1: with_alpn(AppProtocol::Http1.plain_alpn()),
        http2: with_alpn(AppProtocol::Http2.plain_alpn()),
        tcp: with_alpn(AppProtocol::Tcp.plain_alpn()),
        server_name,
        sans,
    })
}

/// Whether connections to this endpoint are mTLS'd, for metric labels.
pub fn is_mesh_mtls(tls: &UpstreamTls, ep: &EndpointTls, creds: &Credentials) -> bool {
    match tls {
        UpstreamTls::Mesh { auto, .. } => creds.is_configured() && (!auto || ep.sidecar),
        _ => false,
    }
}

/// Wraps a connected upstream socket in the TLS the cluster asks for.
pub async fn secure(
    stream: TcpStream,
    addr: SocketAddr,
    tls: &UpstreamTls,
    ep: &EndpointTls,
    creds: &Credentials,
    proto: AppProtocol,
    metrics: &Metrics,
) -> Result<Upstream, TlsConnectError> {
    let (config, name, expected): (Arc<ClientConfig>, ServerName<'static>, Vec<Arc<str>>) =
        match tls {
            UpstreamTls::Plain => return Ok(Upstream::Plain(stream)),
            UpstreamTls::Broken(reason) => {
                return Err(TlsConnectError::Config {
                    addr,
                    reason: reason.clone(),
                })
            }
            UpstreamTls::Mesh { auto, sans } => {
                if *auto && (!ep.sidecar || !creds.is_configured()) {
                    return Ok(Upstream::Plain(stream));
                }
                let Some(loaded) = creds.current() else {
                    return Err(TlsConnectError::NoCredentials { addr });
                };
                let expected = if sans.is_empty() {
                    ep.identity.iter().cloned().collect()
                } else {
                    sans.clone()
                };
                (
                    loaded.client(proto).clone(),
                    ServerName::IpAddress(addr.ip().into()),
                    expected,
                )
            }
            UpstreamTls::Tls {
                http1,
                http2,
                tcp,
                server_name,
                sans,
            } => (
                match proto {
                    AppProtocol::Http1 => http1.clone(),
                    AppProtocol::Http2 => http2.clone(),
                    AppProtocol::Tcp => tcp.clone(),
                },
                server_name.clone(),
                sans.clone(),
            ),
        };
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls_stream = match connector.connect(name, stream).await {
        Ok(s) => s,
        Err(e) => {
            let reason = super::failure_reason(&e);
            metrics.security.handshake_failed("outbound", reason);
            tracing::warn!(upstream = %addr, reason, "TLS handshake with the upstream failed: {e}");
            return Err(TlsConnectError::Handshake {
                addr,
                reason: format!("{reason}: {e}"),
            });
        }
    };
    if !expected.is_empty() {
        let leaf = tls_stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        if let Err(got) = super::verify::check_identity(&leaf, &expected) {
            metrics
                .security
                .handshake_failed("outbound", "wrong_identity");
            let expected = expected
                .iter()
                .map(|e| &**e)
                .collect::<Vec<_>>()
                .join(" or ");
            tracing::warn!(upstream = %addr, %got, %expected, "upstream refused: it is not who the config expects");
            return Err(TlsConnectError::WrongIdentity {
                addr,
                got,
                expected,
            });
        }
    }
    Ok(Upstream::Tls(Box::new(tls_stream)))
}
