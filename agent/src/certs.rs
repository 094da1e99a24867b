//! The workload certificate: a fresh key and CSR for the proxy's SPIFFE identity, signed by
//! meshd's CA for the service-account token, written where the proxy reads it, and renewed at
//! half its life. Files are replaced atomically (write, then rename), so a reader never sees a
//! key without its certificate.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use mesh_xds::ca::istio_certificate_service_client::IstioCertificateServiceClient;
use mesh_xds::ca::IstioCertificateRequest;
use rcgen::{CertificateParams, KeyPair, SanType};
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::channel;
use crate::settings::{Connection, Identity};

/// Istio's file names in `workload-spiffe-credentials`.
pub const CHAIN_FILE: &str = "cert-chain.pem";
pub const KEY_FILE: &str = "key.pem";
pub const ROOT_FILE: &str = "root-cert.pem";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Channel(#[from] channel::ChannelError),
    #[error("meshd's CA refused the certificate request: {0}")]
    Refused(String),
    #[error("building the certificate request: {0}")]
    Csr(String),
    #[error("meshd's CA answered with no usable certificate: {0}")]
    Answer(String),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// A certificate in force.
#[derive(Debug, Clone)]
pub struct Issued {
    pub chain: Vec<String>,
    pub key_pem: String,
    pub not_after: SystemTime,
}

impl Issued {
    /// When to renew: half way through its life.
    pub fn renew_at(&self, issued_at: SystemTime) -> SystemTime {
        let life = self
            .not_after
            .duration_since(issued_at)
            .unwrap_or(Duration::ZERO);
        issued_at + life / 2
    }
}

fn not_after(pem: &str) -> Result<SystemTime, CertError> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| CertError::Answer(format!("not PEM: {e}")))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| CertError::Answer(e.to_string()))?;
    let secs = cert.validity().not_after.timestamp();
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// Asks meshd's CA for a certificate for `identity`, valid `validity`.
pub async fn issue(
    identity: &Identity,
    connection: &Connection,
    validity: Duration,
) -> Result<Issued, CertError> {
    let key = KeyPair::generate().map_err(|e| CertError::Csr(e.to_string()))?;
    let mut params = CertificateParams::default();
    let uri = identity
        .spiffe_id()
        .try_into()
        .map_err(|e: rcgen::Error| CertError::Csr(e.to_string()))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| CertError::Csr(e.to_string()))?;
    let channel = channel::connect(connection).await?;
    let mut client = IstioCertificateServiceClient::new(channel);
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr,
        validity_duration: validity.as_secs() as i64,
    });
    if let Some(token) = channel::bearer(connection) {
        request.metadata_mut().insert("authorization", token);
    }
    let chain = client
        .create_certificate(request)
        .await
        .map_err(|e| CertError::Refused(format!("{}: {}", e.code(), e.message())))?
        .into_inner()
        .cert_chain;
    let leaf = chain
        .first()
        .ok_or_else(|| CertError::Answer("an empty chain".to_owned()))?;
    Ok(Issued {
        not_after: not_after(leaf)?,
        chain,
        key_pem: key.serialize_pem(),
    })
}

fn write_atomically(dir: &Path, name: &str, text: &str) -> Result<(), CertError> {
    let path = dir.join(name);
    let temp = dir.join(format!(".{name}.new"));
    let failed = |source| CertError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::write(&temp, text).map_err(failed)?;
    std::fs::rename(&temp, &path).map_err(failed)
}

/// Writes the leaf and its intermediates, the key, and the roots (the chain's last entries
/// after the leaf and intermediates are the roots meshd trusts).
pub fn write(dir: &Path, issued: &Issued, roots: &str) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    write_atomically(dir, KEY_FILE, &issued.key_pem)?;
    write_atomically(dir, CHAIN_FILE, &issued.chain.concat())?;
    write_atomically(dir, ROOT_FILE, roots)
}

/// Keeps a valid certificate in `dir` for as long as the process runs, calling `on_issued`
/// after each one is written (the proxy reloads it from there).
pub async fn maintain(
    identity: Identity,
    connection: Connection,
    dir: PathBuf,
    validity: Duration,
    mut on_issued: impl FnMut(&Issued),
) {
    let mut backoff = Backoff::default();
    loop {
        let issued_at = SystemTime::now();
        let result = match issue(&identity, &connection, validity).await {
            Ok(issued) => {
                let roots = std::fs::read_to_string(&connection.root_cert).unwrap_or_default();
                write(&dir, &issued, &roots).map(|()| issued)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(issued) => {
                backoff.reset();
                info!(identity = %identity.spiffe_id(), dir = %dir.display(), "workload certificate written");
                on_issued(&issued);
                let wait = issued
                    .renew_at(issued_at)
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                warn!(error = %e, "no new workload certificate; the one in force stays");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_at_half_life() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let issued = Issued {
            chain: vec![],
            key_pem: String::new(),
            not_after: now + Duration::from_secs(3600),
        };
        assert_eq!(issued.renew_at(now), now + Duration::from_secs(1800));
    }
}
