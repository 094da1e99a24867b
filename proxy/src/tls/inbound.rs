//! The inbound side's transport security, with PeerAuthentication's meaning per workload port:
//! DISABLE (plaintext; TLS passed to the application as it is), PERMISSIVE (the mesh's mTLS,
//! told by its ClientHello's `istio` ALPN, is terminated; plaintext and other TLS pass), STRICT
//! (TLS only, with a client certificate from the mesh's roots; plaintext is refused with a log
//! line and `mesh_proxy_inbound_plaintext_refused_total`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_proxy_config::{MtlsMode, Protocol};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::client_hello::{self, Hello};
use super::stream::Prefixed;
use crate::drain::Drain;
use crate::listener::sniff::{self, Detected};
use crate::listener::ConnInfo;
use crate::metrics::{LabelSet, Metrics};
use crate::snapshot::Snapshot;
use crate::store::Store;

/// How much of a ClientHello is looked at.
pub const PEEK_LIMIT: usize = 2048;

/// What an mTLS connection proved about its peer.
#[derive(Debug)]
pub struct PeerSecurity {
    /// The SPIFFE ID of the client certificate.
    pub identity: Option<Arc<str>>,
    pub sni: Option<String>,
    /// `x-forwarded-client-cert` for requests of this connection, as Istio's sidecars set it
    /// (`By=<this workload>;Hash=<SHA-256 of the client certificate>;Subject="";URI=<peer>`).
    pub forwarded_client_cert: Option<http::HeaderValue>,
    /// The last label set made secure for this connection, by the base set's address.
    labels: Mutex<Option<(usize, Arc<LabelSet>)>>,
}

impl PeerSecurity {
    pub fn new(identity: Option<Arc<str>>, sni: Option<String>) -> PeerSecurity {
        PeerSecurity {
            identity,
            sni,
            forwarded_client_cert: None,
            labels: Mutex::new(None),
        }
    }

    fn with_forwarded_client_cert(mut self, local: Option<&str>, leaf: Option<&[u8]>) -> Self {
        let hash = leaf.map(|der| {
            let d = ring::digest::digest(&ring::digest::SHA256, der);
            d.as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
        let text = format!(
            "By={};Hash={};Subject=\"\";URI={}",
            local.unwrap_or(""),
            hash.unwrap_or_default(),
            self.identity.as_deref().unwrap_or("")
        );
        self.forwarded_client_cert = http::HeaderValue::from_str(&text).ok();
        self
    }

    /// `base` with this peer's principal and `mutual_tls`; one interning per connection.
    pub fn labels(&self, base: &Arc<LabelSet>, metrics: &Metrics) -> Arc<LabelSet> {
        let key = Arc::as_ptr(base) as usize;
        let mut cache = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, l)) = cache.as_ref() {
            if *k == key {
                return l.clone();
            }
        }
        let l = metrics.secured_labels(base, self.identity.as_deref().unwrap_or(""));
        *cache = Some((key, l.clone()));
        l
    }
}

/// What to do with an inbound connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Serve it as it is (plaintext, or TLS that is not the mesh's).
    Plain,
    /// Terminate the mesh's mTLS.
    Mtls,
    Refused,
}

async fn peek_hello(stream: &TcpStream, timeout: Duration) -> Option<Hello> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; PEEK_LIMIT];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Err(_) | Ok(Ok(0)) => return None,
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return None,
        };
        match client_hello::parse(&buf[..n]) {
            Hello::Incomplete if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Hello::Incomplete => return Some(Hello::Tls { alpn: Vec::new() }),
            h => return Some(h),
        }
    }
}

/// Decides by the port's mode and the connection's first bytes.
pub async fn admit(stream: &TcpStream, snap: &Snapshot, peer: SocketAddr, port: u16) -> Admission {
    let mode = snap.config.inbound.peer_authentication.mode_for(port);
    let has_credentials = snap.credentials.is_configured();
    match mode {
        MtlsMode::Disable => return Admission::Plain,
        MtlsMode::Permissive | MtlsMode::Unset if !has_credentials => return Admission::Plain,
        _ => {}
    }
    let timeout = if mode == MtlsMode::Strict {
        snap.limits.header_read_timeout.get()
    } else {
        snap.detection_timeout
    };
    let hello = peek_hello(stream, timeout).await;
    match (mode, hello) {
        (MtlsMode::Strict, Some(Hello::Tls { .. })) => Admission::Mtls,
        (MtlsMode::Strict, got) => {
            Metrics::inc(&snap.metrics.security.plaintext_refused);
            tracing::warn!(
                %peer,
                port,
                sent = if got.is_none() { "nothing" } else { "plaintext" },
                "connection refused: the port requires mTLS (PeerAuthentication STRICT)"
            );
            Admission::Refused
        }
        (_, Some(h)) if h.is_mesh() => Admission::Mtls,
        _ => Admission::Plain,
    }
}

/// The protocol inside the TLS connection: by ALPN, else the port's declared protocol, else
/// detected from the first decrypted bytes.
async fn inner_protocol<S: tokio::io::AsyncRead + Unpin>(
    alpn: Option<&[u8]>,
    declared: Option<Protocol>,
    tls: &mut S,
    timeout: Duration,
) -> Option<(Detected, Vec<u8>)> {
    match alpn {
        Some(a) if a == super::ALPN_H2 || a == b"h2" => return Some((Detected::Http2, Vec::new())),
        Some(a) if a == super::ALPN_HTTP1 || a == super::ALPN_HTTP10 || a == b"http/1.1" => {
            return Some((Detected::Http1, Vec::new()))
        }
        _ => {}
    }
    if declared == Some(Protocol::Tcp) {
        return Some((Detected::Tcp, Vec::new()));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = Vec::with_capacity(64);
    loop {
        let mut chunk = [0u8; 64];
        let n = match tokio::time::timeout_at(deadline, tls.read(&mut chunk)).await {
            Err(_) => return Some((Detected::Tcp, buf)),
            Ok(Ok(0)) => {
                return if buf.is_empty() {
                    None
                } else {
                    Some((Detected::Tcp, buf))
                }
            }
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return None,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(d) = sniff::classify(&buf) {
            let d = match (declared, d) {
                // A declared HTTP port is HTTP; only the version is detected.
                (Some(_), Detected::Tcp) => Detected::Http1,
                (_, d) => d,
            };
            return Some((d, buf));
        }
    }
}

/// Terminates the mesh's mTLS and serves what is inside it.
pub async fn serve(
    stream: TcpStream,
    base: &ConnInfo,
    snap: Arc<Snapshot>,
    store: Arc<Store>,
    drain: Drain,
) {
    let peer = base.peer;
    let Some(loaded) = snap.credentials.current() else {
        snap.metrics
            .security
            .handshake_failed("inbound", "no_local_certificate");
        tracing::warn!(%peer, "mTLS connection refused: no workload certificate loaded");
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(loaded.server.clone());
    let handshake = tokio::time::timeout(
        snap.limits.header_read_timeout.get(),
        acceptor.accept(stream),
    )
    .await;
    let mut tls = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let reason = super::failure_reason(&e);
            snap.metrics.security.handshake_failed("inbound", reason);
            tracing::warn!(%peer, reason, "mTLS connection refused: {e}");
            return;
        }
        Err(_) => {
            snap.metrics.security.handshake_failed("inbound", "timeout");
            tracing::warn!(%peer, "mTLS connection refused: handshake not finished in time");
            return;
        }
    };
    let (identity, alpn, sni, leaf) = {
        let conn = tls.get_ref().1;
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec());
        (
            leaf.as_deref()
                .and_then(super::identity::spiffe_id)
                .map(Arc::from),
            conn.alpn_protocol().map(<[u8]>::to_vec),
            conn.server_name().map(str::to_owned),
            leaf,
        )
    };
    let info = Arc::new(ConnInfo {
        side: base.side.clone(),
        listener: base.listener.clone(),
        peer,
        destination: base.destination,
        tcp_destination: base.tcp_destination.clone(),
        security: Some(
            PeerSecurity::new(identity, sni)
                .with_forwarded_client_cert(loaded.identity.as_deref(), leaf.as_deref()),
        ),
    });
    let declared = snap
        .inbound_ports
        .get(&base.destination.port())
        .copied()
        .flatten();
    let timeout = if declared.is_some() {
        snap.limits.header_read_timeout.get()
    } else {
        snap.detection_timeout
    };
    let Some((detected, prefix)) =
        inner_protocol(alpn.as_deref(), declared, &mut tls, timeout).await
    else {
        return;
    };
    let stream = Prefixed::new(prefix, tls);
    match detected {
        Detected::Tcp => {
            if !crate::filters::admit_tcp(&snap, &info) {
                return;
            }
            crate::tcp::proxy(stream, info, snap).await
        }
        // As on plaintext: HTTP/1.1 starts on the fast path.
        Detected::Http1 => crate::http::fast::serve(stream, info, snap, store, drain).await,
        Detected::Http2 => crate::http::server::serve(stream, true, info, snap, store, drain).await,
    }
}
