//! The gRPC channel to meshd: TLS verified against the mesh's roots as meshd's Service name, or
//! plain text for `http://` addresses; the service-account token on every call.

use std::path::Path;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::settings::Connection;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("meshd address {address:?}: {message}")]
    Address { address: String, message: String },
    #[error("cannot connect to meshd at {address}: {message}")]
    Connect { address: String, message: String },
}

fn read(path: &Path) -> Result<String, ChannelError> {
    std::fs::read_to_string(path).map_err(|source| ChannelError::Read {
        path: path.display().to_string(),
        source,
    })
}

pub async fn connect(connection: &Connection) -> Result<Channel, ChannelError> {
    let address = &connection.address;
    let bad = |message: String| ChannelError::Address {
        address: address.clone(),
        message,
    };
    let endpoint = if address.starts_with("http://") {
        Endpoint::from_shared(address.clone()).map_err(|e| bad(e.to_string()))?
    } else {
        let host = connection.tls_name.clone().unwrap_or_else(|| {
            address
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(address)
                .to_owned()
        });
        let roots = read(&connection.root_cert)?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(roots))
            .domain_name(host);
        Endpoint::from_shared(format!("https://{address}"))
            .map_err(|e| bad(e.to_string()))?
            .tls_config(tls)
            .map_err(|e| bad(e.to_string()))?
    };
    endpoint
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| ChannelError::Connect {
            address: address.clone(),
            message: format!("{e:?}"),
        })
}

/// `authorization: Bearer <token>` when the token file is there; none when it is not (meshd's
/// plain-text port accepts that, its CA does not).
pub fn bearer(connection: &Connection) -> Option<MetadataValue<tonic::metadata::Ascii>> {
    let token = std::fs::read_to_string(&connection.token_file).ok()?;
    format!("Bearer {}", token.trim()).parse().ok()
}
