//! The workload's credentials, read from files (mesh-agent writes them) and reloaded when they
//! change. A reload builds new rustls configs and swaps them in: connections already up keep
//! the state they handshook with, new ones get the new certificate. A file that is missing,
//! unreadable or does not match its key keeps the previous credentials in force; while none
//! was ever loaded the proxy is not ready.
//!
//! The session caches and the ticket key live here rather than in each config, so that TLS
//! sessions resume across reloads too.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use mesh_proxy_config::CertificateFiles;
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::AppProtocol;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no PEM certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: not PEM: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("{}: no usable root certificate: {message}", path.display())]
    Roots { path: PathBuf, message: String },
    #[error("the certificate and key do not go together: {0}")]
    KeyMismatch(rustls::Error),
    #[error("building the TLS configuration: {0}")]
    Config(String),
}

/// One loaded set of credentials and the TLS configs made from it.
pub struct Loaded {
    /// The SPIFFE ID in the workload certificate.
    pub identity: Option<Arc<str>>,
    /// When the workload certificate expires (Unix seconds).
    pub not_after: i64,
    /// Inbound mTLS: a client certificate from the mesh's roots is required.
    pub server: Arc<ServerConfig>,
    /// Upstream mTLS, one per ALPN.
    client_http1: Arc<ClientConfig>,
    client_http2: Arc<ClientConfig>,
    client_tcp: Arc<ClientConfig>,
}

impl Loaded {
    pub fn client(&self, p: AppProtocol) -> &Arc<ClientConfig> {
        match p {
            AppProtocol::Http1 => &self.client_http1,
            AppProtocol::Http2 => &self.client_http2,
            AppProtocol::Tcp => &self.client_tcp,
        }
    }
}

/// What the files held at the last look, to see whether they changed.
#[derive(PartialEq, Eq)]
struct Contents {
    chain: Vec<u8>,
    key: Vec<u8>,
    roots: Vec<u8>,
}

pub struct Credentials {
    files: Mutex<Option<CertificateFiles>>,
    last_seen: Mutex<Option<Contents>>,
    /// The last failure, so that a file missing for a while is reported once, not every poll.
    last_error: Mutex<Option<String>>,
    current: ArcSwapOption<Loaded>,
    configured: AtomicBool,
    provider: Arc<CryptoProvider>,
    tickets: Option<Arc<dyn ProducesTickets>>,
    server_sessions: Arc<dyn StoresServerSessions>,
    client_sessions: Arc<dyn ClientSessionStore>,
    metrics: Arc<Metrics>,
}

fn read(path: &Path) -> Result<Vec<u8>, CredentialError> {
    std::fs::read(path).map_err(|source| CredentialError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The certificates of a PEM file (at least one).
pub fn parse_certificates(
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CredentialError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(CredentialError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

pub fn parse_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, CredentialError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| CredentialError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

pub fn parse_roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, CredentialError> {
    let mut roots = RootCertStore::empty();
    for c in parse_certificates(path, pem)? {
        roots.add(c).map_err(|e| CredentialError::Roots {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The server ALPN list: the mesh's protocols first, so a sidecar offering several gets the
/// application protocol rather than `istio-peer-exchange`.
fn server_alpn() -> Vec<Vec<u8>> {
    [
        super::ALPN_H2,
        super::ALPN_HTTP1,
        super::ALPN_HTTP10,
        super::ALPN_TCP,
        super::ALPN_PEER_EXCHANGE,
        b"h2",
        b"http/1.1",
    ]
    .iter()
    .map(|p| p.to_vec())
    .collect()
}

/// TLS sessions kept for resumption, per direction.
const SESSION_CACHE_ENTRIES: usize = 256;

impl Credentials {
    pub fn new(metrics: Arc<Metrics>) -> Credentials {
        Credentials {
            files: Mutex::new(None),
            last_seen: Mutex::new(None),
            last_error: Mutex::new(None),
            current: ArcSwapOption::empty(),
            configured: AtomicBool::new(false),
            provider: super::provider(),
            tickets: rustls::crypto::ring::Ticketer::new().ok(),
            // Sized for a sidecar's peers: TLS 1.3 resumes by ticket (stateless), so the
            // server cache only serves TLS 1.2 clients, and its table is allocated whole at
            // start (4,096 entries were 0.5 MB of a 10 MB proxy).
            server_sessions: ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
            client_sessions: Arc::new(ClientSessionMemoryCache::new(SESSION_CACHE_ENTRIES)),
            metrics,
        }
    }

    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// The credentials in force, if any were loaded.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    /// Ready when no certificates are configured, or some were loaded.
    pub fn is_ready(&self) -> bool {
        !self.configured.load(Ordering::Acquire) || self.current.load().is_some()
    }

    pub fn is_configured(&self) -> bool {
        self.configured.load(Ordering::Acquire)
    }

    /// Puts a snapshot's `certificates` in force: new paths are read at once.
    pub fn configure(&self, files: Option<&CertificateFiles>) {
        let changed = {
            let mut f = lock(&self.files);
            let changed = f.as_ref() != files;
            *f = files.cloned();
            changed
        };
        self.configured.store(files.is_some(), Ordering::Release);
        if files.is_none() {
            self.current.store(None);
            *lock(&self.last_seen) = None;
            return;
        }
        if changed {
            *lock(&self.last_seen) = None;
            self.poll();
        }
    }

    /// How often the files are looked at.
    pub fn check_interval(&self) -> std::time::Duration {
        lock(&self.files)
            .as_ref()
            .and_then(|f| f.check_interval)
            .map_or(std::time::Duration::from_secs(1), |d| d.get())
    }

    /// Reads the files and reloads if they changed. Errors are logged and counted; the
    /// credentials in force stay.
    pub fn poll(&self) {
        let Some(files) = lock(&self.files).clone() else {
            return;
        };
        let paths = (files.chain_path(), files.key_path(), files.roots_path());
        let contents = match (|| {
            Ok::<_, CredentialError>(Contents {
                chain: read(&paths.0)?,
                key: read(&paths.1)?,
                roots: read(&paths.2)?,
            })
        })() {
            Ok(c) => c,
            Err(e) => {
                self.failed(&e);
                return;
            }
        };
        if lock(&self.last_seen).as_ref() == Some(&contents) {
            return;
        }
        match self.build(&paths, &contents) {
            Ok(loaded) => {
                tracing::info!(
                    identity = loaded.identity.as_deref().unwrap_or("none"),
                    expires = loaded.not_after,
                    "workload certificate loaded"
                );
                self.metrics.security.cert_loaded(loaded.not_after);
                self.current.store(Some(Arc::new(loaded)));
                *lock(&self.last_seen) = Some(contents);
                *lock(&self.last_error) = None;
            }
            Err(e) => self.failed(&e),
        }
    }

    fn failed(&self, e: &CredentialError) {
        let text = e.to_string();
        {
            let mut last = lock(&self.last_error);
            if last.as_deref() == Some(text.as_str()) {
                return;
            }
            *last = Some(text);
        }
        Metrics::inc(&self.metrics.security.cert_reload_errors);
        if self.current.load().is_some() {
            tracing::warn!(
                "workload certificate not reloaded, the previous one stays in force: {e}"
            );
        } else {
            tracing::error!("no workload certificate loaded (not ready): {e}");
        }
    }

    fn build(
        &self,
        (chain_path, key_path, roots_path): &(PathBuf, PathBuf, PathBuf),
        c: &Contents,
    ) -> Result<Loaded, CredentialError> {
        let chain = parse_certificates(chain_path, &c.chain)?;
        let key = parse_key(key_path, &c.key)?;
        let roots = Arc::new(parse_roots(roots_path, &c.roots)?);
        // The three files are replaced one by one: a chain and key from different rotations
        // must not be put in force.
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &self.provider)
            .map_err(CredentialError::KeyMismatch)?;
        let identity = super::identity::spiffe_id(&chain[0]).map(Arc::from);
        let not_after = super::identity::not_after(&chain[0]).unwrap_or(0);
        let cfg_err = |e: rustls::Error| CredentialError::Config(e.to_string());

        let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| CredentialError::Config(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(cfg_err)?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(cfg_err)?;
        server.alpn_protocols = server_alpn();
        server.session_storage = self.server_sessions.clone();
        if let Some(t) = &self.tickets {
            server.ticketer = t.clone();
        }

        let verifier = Arc::new(super::verify::MeshServerVerifier::new(
            roots.clone(),
            self.provider.clone(),
        ));
        let client = |alpn: &[u8]| -> Result<Arc<ClientConfig>, CredentialError> {
            let mut c = ClientConfig::builder_with_provider(self.provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(cfg_err)?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(cfg_err)?;
            c.alpn_protocols = vec![alpn.to_vec()];
            c.resumption = Resumption::store(self.client_sessions.clone());
            Ok(Arc::new(c))
        };
        Ok(Loaded {
            identity,
            not_after,
            server: Arc::new(server),
            client_http1: client(super::ALPN_HTTP1)?,
            client_http2: client(super::ALPN_H2)?,
            client_tcp: client(super::ALPN_TCP)?,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How close to its expiry a certificate that was not rotated is reported.
const EXPIRY_WARNING_SECS: i64 = 3600;

/// Polls the files until the process ends, and says so once when the certificate in force
/// is about to expire or has expired without being rotated (peers refuse an expired one).
pub async fn watch(creds: Arc<Credentials>) {
    let mut warned: (i64, bool) = (0, false);
    loop {
        tokio::time::sleep(creds.check_interval()).await;
        if !creds.is_configured() {
            continue;
        }
        creds.poll();
        let Some(loaded) = creds.current() else {
            continue;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let left = loaded.not_after - now;
        let expired = left <= 0;
        if left < EXPIRY_WARNING_SECS && warned != (loaded.not_after, expired) {
            warned = (loaded.not_after, expired);
            if expired {
                tracing::error!(
                    identity = loaded.identity.as_deref().unwrap_or("none"),
                    "the workload certificate has expired and was not rotated: peers will refuse mTLS connections"
                );
            } else {
                tracing::warn!(
                    identity = loaded.identity.as_deref().unwrap_or("none"),
                    seconds_left = left,
                    "the workload certificate expires soon and has not been rotated"
                );
            }
        }
    }
}
