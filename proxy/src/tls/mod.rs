//! Transport security between sidecars: the workload's credentials from files
//! ([`credentials`]), SPIFFE identities ([`identity`]), certificate verification
//! ([`verify`]), the inbound side's PeerAuthentication modes ([`inbound`]) and TLS to
//! upstreams with DestinationRule `tls` meaning ([`upstream`]).
//!
//! ALPN carries the application protocol between sidecars, as Istio's do: `istio-http/1.1`,
//! `istio-h2`, or `istio` for opaque TCP. The `istio` prefix is also how the inbound side tells
//! the mesh's mTLS from an application's own TLS on a PERMISSIVE port.

pub mod client_hello;
pub mod credentials;
pub mod identity;
pub mod inbound;
pub mod stream;
pub mod upstream;
pub mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use credentials::Credentials;

pub const ALPN_HTTP1: &[u8] = b"istio-http/1.1";
pub const ALPN_HTTP10: &[u8] = b"istio-http/1.0";
pub const ALPN_H2: &[u8] = b"istio-h2";
pub const ALPN_TCP: &[u8] = b"istio";
pub const ALPN_PEER_EXCHANGE: &[u8] = b"istio-peer-exchange";

/// The crypto the proxy uses everywhere (ring, as meshd's CA does).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The application protocol an upstream connection carries, which picks its ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppProtocol {
    Http1,
    Http2,
    Tcp,
}

impl AppProtocol {
    pub fn mesh_alpn(self) -> &'static [u8] {
        match self {
            AppProtocol::Http1 => ALPN_HTTP1,
            AppProtocol::Http2 => ALPN_H2,
            AppProtocol::Tcp => ALPN_TCP,
        }
    }
    /// ALPN for a non-mesh TLS server (SIMPLE / MUTUAL).
    pub fn plain_alpn(self) -> Option<&'static [u8]> {
        match self {
            AppProtocol::Http1 => Some(b"http/1.1"),
            AppProtocol::Http2 => Some(b"h2"),
            AppProtocol::Tcp => None,
        }
    }
}

/// Why a handshake failed, for the log line and the `reason` label of
/// `mesh_proxy_tls_handshake_errors_total`.
pub fn failure_reason(e: &std::io::Error) -> &'static str {
    use rustls::CertificateError as C;
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "closed",
            std::io::ErrorKind::TimedOut => "timeout",
            _ => "io",
        };
    };
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "not_yet_valid",
            C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension => "untrusted",
            C::NotValidForName | C::NotValidForNameContext { .. } => "wrong_identity",
            C::ApplicationVerificationFailure => "wrong_identity",
            _ => "bad_certificate",
        },
        rustls::Error::NoCertificatesPresented => "no_client_certificate",
        rustls::Error::AlertReceived(a) => match a {
            rustls::AlertDescription::CertificateExpired => "peer_says_expired",
            rustls::AlertDescription::UnknownCA => "peer_says_untrusted",
            rustls::AlertDescription::BadCertificate => "peer_says_bad_certificate",
            rustls::AlertDescription::CertificateRequired => "peer_wants_client_certificate",
            _ => "alert",
        },
        rustls::Error::NoApplicationProtocol => "no_alpn",
        _ => "protocol",
    }
}
