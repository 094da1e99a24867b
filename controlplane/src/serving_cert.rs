//! The webhooks' TLS certificate: issued by the mesh CA for meshd's Service names, handed to
//! rustls through a resolver so that it can be renewed while connections stay up.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use thiserror::Error;
use tracing::{error, info};

use crate::ca::{Ca, CaError, CaHandle};

/// How long a serving certificate is valid; it is renewed at half its life.
pub const VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Error)]
pub enum CertError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("the issued certificate or key does not load: {0}")]
    Load(String),
}

/// The names the API server may use for `service` in `namespace`: it verifies
/// `<service>.<namespace>.svc`.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
    ]
}

/// The certificate in force.
#[derive(Debug)]
pub struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

impl Resolver {
    fn set(&self, key: CertifiedKey) {
        let key = Arc::new(key);
        match self.0.write() {
            Ok(mut guard) => *guard = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }
}

fn issue(ca: &Ca, names: &[String]) -> Result<CertifiedKey, CertError> {
    let issued = ca.issue_server(names, VALIDITY)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| CertError::Load(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())
        .map_err(|e| CertError::Load(e.to_string()))?;
    let signing = any_supported_type(&key).map_err(|e| CertError::Load(e.to_string()))?;
    Ok(CertifiedKey::new(chain, signing))
}

/// A resolver holding a fresh certificate for `names`.
pub fn start(ca: &Ca, names: &[String]) -> Result<Arc<Resolver>, CertError> {
    Ok(Arc::new(Resolver(RwLock::new(Arc::new(issue(ca, names)?)))))
}

/// A TLS config serving the resolver's certificate with these ALPN protocols: `http/1.1` for
/// the webhooks (an admission review is one request and one answer), `h2` for gRPC.
pub fn server_config(
    resolver: Arc<Resolver>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, CertError> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| CertError::Load(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Renews the certificate at half its life, and at once when the CA changes (a rotated root,
/// a new plug-in CA), for as long as meshd runs.
pub async fn renew(ca: CaHandle, names: Vec<String>, resolver: Arc<Resolver>) {
    let mut changes = ca.subscribe();
    let mut wait = VALIDITY / 2;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        match issue(&ca.get(), &names) {
            Ok(key) => {
                resolver.set(key);
                info!("webhook serving certificate renewed");
                wait = VALIDITY / 2;
            }
            Err(e) => {
                error!(error = %e, "cannot renew the webhook serving certificate; retrying in a minute");
                wait = Duration::from_secs(60);
            }
        }
    }
}
