//! Which protocol a port speaks, from Istio's port naming and `appProtocol` conventions.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Protocol {
    /// HTTP/1.1 (an HTTP/2 client with prior knowledge is served too).
    Http,
    Http2,
    Grpc,
    /// Opaque bytes.
    Tcp,
}

impl Protocol {
    /// Istio's rule: `appProtocol` if set, else the port name's prefix before `-`; an unknown
    /// or missing name means "detect it".
    pub fn declared(app_protocol: Option<&str>, name: &str) -> Option<Protocol> {
        if let Some(p) = app_protocol.and_then(Self::from_name) {
            return Some(p);
        }
        Self::from_name(name.split('-').next().unwrap_or(""))
    }

    fn from_name(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "http" | "http1" | "http/1.1" | "kubernetes.io/http" => Some(Protocol::Http),
            "http2" | "h2c" | "kubernetes.io/h2c" => Some(Protocol::Http2),
            "grpc" | "grpc-web" => Some(Protocol::Grpc),
            // Istio's opaque-TCP names; TLS and the databases are bytes to the proxy too.
            "tcp" | "tls" | "https" | "mongo" | "mysql" | "redis" => Some(Protocol::Tcp),
            _ => None,
        }
    }

    pub fn is_http(self) -> bool {
        !matches!(self, Protocol::Tcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_prefix_and_app_protocol() {
        assert_eq!(Protocol::declared(None, "http-web"), Some(Protocol::Http));
        assert_eq!(Protocol::declared(None, "grpc"), Some(Protocol::Grpc));
        assert_eq!(Protocol::declared(None, "tcp-db"), Some(Protocol::Tcp));
        assert_eq!(Protocol::declared(None, "web"), None);
        assert_eq!(
            Protocol::declared(Some("http2"), "tcp"),
            Some(Protocol::Http2)
        );
        assert_eq!(
            Protocol::declared(Some("custom"), "tcp"),
            Some(Protocol::Tcp)
        );
    }
}
