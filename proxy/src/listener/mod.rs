//! Listeners: bound per worker with `SO_REUSEPORT` (the kernel spreads connections over the
//! workers), started and stopped as snapshots add and remove them, and closed on drain.
//! Each accepted connection is classified ([`sniff`]) and handed to HTTP or TCP serving.

pub mod sniff;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use mesh_proxy_config::{self as cfg, Capture, Protocol};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::drain::Drain;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::store::Store;
use sniff::Detected;

/// Which side of the workload a connection is on, which decides how it is routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// Captured outbound: routed by original destination and Host.
    Outbound,
    /// Captured inbound: forwarded to the local workload.
    Inbound,
    /// A plain listener serving a gateway's VirtualServices.
    Gateway(String),
    /// A plain listener serving the mesh routes (any port).
    Plain,
}

/// What the HTTP and TCP layers know about a client connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub side: Side,
    pub listener: String,
    pub peer: SocketAddr,
    /// Where the client meant to go: the original destination of a captured connection, or the
    /// listener's own address.
    pub destination: SocketAddr,
    /// For plain TCP listeners: their configured destination.
    pub tcp_destination: Option<cfg::Destination>,
    /// What the peer proved over mTLS; `None` for plaintext.
    pub security: Option<crate::tls::inbound::PeerSecurity>,
}

impl ConnInfo {
    /// A request's metric labels as this connection reports them: on the inbound side of an
    /// mTLS connection they name the peer (`source_principal`, `connection_security_policy`).
    pub fn request_labels(
        &self,
        labels: &Arc<crate::metrics::LabelSet>,
        metrics: &crate::metrics::Metrics,
    ) -> Arc<crate::metrics::LabelSet> {
        match &self.security {
            Some(s) if self.side == Side::Inbound => s.labels(labels, metrics),
            _ => labels.clone(),
        }
    }
}

/// Binds a listening socket that several workers can share.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

struct Running {
    stop: oneshot::Sender<()>,
}

/// One worker's listeners, kept equal to the snapshot's.
pub struct Listeners {
    running: HashMap<String, Running>,
    store: Arc<Store>,
    drain: Drain,
    active: Arc<AtomicU32>,
}

fn key(l: &cfg::Listener) -> String {
    format!("{l:?}")
}

impl Listeners {
    pub fn new(store: Arc<Store>, drain: Drain) -> Listeners {
        Listeners {
            running: HashMap::new(),
            store,
            drain,
            active: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Starts the snapshot's new listeners and stops the ones it no longer has. A listener
    /// that fails to bind is logged and left out (the others still serve).
    pub fn sync(&mut self, snap: &Snapshot) {
        let wanted: HashMap<String, cfg::Listener> = snap
            .config
            .effective_listeners()
            .into_iter()
            .map(|l| (key(&l), l))
            .collect();
        self.running.retain(|k, _| wanted.contains_key(k));
        for (k, l) in wanted {
            if self.running.contains_key(&k) {
                continue;
            }
            match bind(l.address) {
                Ok(listener) => {
                    let (stop, stopped) = oneshot::channel();
                    tracing::info!(name = %l.name, address = %l.address, "listening");
                    tokio::spawn(accept_loop(
                        listener,
                        Arc::new(l),
                        self.store.clone(),
                        self.drain.clone(),
                        self.active.clone(),
                        stopped,
                    ));
                    self.running.insert(k, Running { stop });
                }
                Err(e) => {
                    tracing::error!(name = %l.name, address = %l.address, "cannot listen: {e}")
                }
            }
        }
    }

    /// Stops accepting everywhere.
    pub fn close_all(&mut self) {
        for (_, r) in self.running.drain() {
            let _ = r.stop.send(());
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    spec: Arc<cfg::Listener>,
    store: Arc<Store>,
    drain: Drain,
    active: Arc<AtomicU32>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!("accept on {}: {e}", spec.address);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(snap) = store.load() else {
            continue;
        };
        let metrics = &store.metrics;
        Metrics::inc(&metrics.server.downstream_connections_total);
        if active.load(Ordering::Relaxed) >= snap.limits.max_connections {
            Metrics::inc(&metrics.server.downstream_connections_refused);
            continue;
        }
        let conn = ActiveConn::new(&active, metrics.clone());
        let guard = drain.track();
        let spec = spec.clone();
        let store = store.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, &spec, snap, store, drain).await;
            drop(guard);
            drop(conn);
        });
    }
}

/// Counts a client connection against the worker's limit and the active gauge.
struct ActiveConn(Arc<AtomicU32>, Arc<Metrics>);

impl ActiveConn {
    fn new(active: &Arc<AtomicU32>, m: Arc<Metrics>) -> Self {
        active.fetch_add(1, Ordering::Relaxed);
        m.server
            .downstream_connections_active
            .fetch_add(1, Ordering::Relaxed);
        ActiveConn(active.clone(), m)
    }
}

impl Drop for ActiveConn {
    fn drop(&mut self) {
        if self.0.fetch_sub(1, Ordering::Relaxed) == 1 {
            release_when_idle();
        }
        self.1
            .server
            .downstream_connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The worker has no client left (a burst ended): the memory its connections used goes back
/// to the OS rather than staying resident as free heap. At most once a second, so that clients
/// connecting one at a time do not pay for a heap walk each.
fn release_when_idle() {
    use std::sync::atomic::AtomicU64;
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = crate::cluster::outlier::now_ms();
    let last = LAST_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 1000
        && LAST_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        crate::store::release_freed_memory();
    }
}

/// The protocol a connection declares by its port, if it does.
fn declared(snap: &Snapshot, spec: &cfg::Listener, destination: SocketAddr) -> Option<Protocol> {
    match spec.capture {
        Capture::None if spec.default_endpoint.is_some() => spec.protocol.or_else(|| {
            snap.inbound_ports
                .get(&destination.port())
                .copied()
                .flatten()
        }),
        Capture::None => spec.protocol,
        Capture::Inbound => snap
            .inbound_ports
            .get(&destination.port())
            .copied()
            .flatten(),
        Capture::Outbound => snap.service_by_vip(destination).and_then(|s| {
            s.ports
                .iter()
                .find(|p| p.number == destination.port())
                .and_then(|p| p.protocol)
        }),
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    spec: &cfg::Listener,
    snap: Arc<Snapshot>,
    store: Arc<Store>,
    drain: Drain,
) {
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let destination = match spec.capture {
        Capture::None => spec.default_endpoint.unwrap_or(local),
        Capture::Inbound | Capture::Outbound => match crate::original_dst::original_dst(&stream) {
            // A connection made to the capture port itself was not redirected: serving it would
            // loop back into the proxy.
            Ok(d) if d != local => d,
            Ok(_) => {
                tracing::debug!(%peer, listener = %spec.name, "not a redirected connection; closed");
                return;
            }
            Err(e) => {
                tracing::debug!(%peer, "no original destination: {e}");
                return;
            }
        },
    };
    let side = match (spec.capture, &spec.gateway) {
        (Capture::Outbound, _) => Side::Outbound,
        (Capture::Inbound, _) => Side::Inbound,
        (Capture::None, _) if spec.default_endpoint.is_some() => Side::Inbound,
        (Capture::None, Some(g)) => Side::Gateway(g.clone()),
        (Capture::None, None) => Side::Plain,
    };
    let info = ConnInfo {
        side,
        listener: spec.name.clone(),
        peer,
        destination,
        tcp_destination: spec.destination.clone(),
        security: None,
    };
    // PeerAuthentication: the mesh's mTLS is terminated (and served) there.
    if info.side == Side::Inbound {
        use crate::tls::inbound::{self, Admission};
        match inbound::admit(&stream, &snap, peer, destination.port()).await {
            Admission::Plain => {}
            Admission::Mtls => return inbound::serve(stream, &info, snap, store, drain).await,
            Admission::Refused => return,
        }
    }
    let info = Arc::new(info);
    let detected = match declared(&snap, spec, destination) {
        Some(Protocol::Tcp) => Detected::Tcp,
        // HTTP ports still look at the first bytes to tell HTTP/1.1 from HTTP/2 prior knowledge;
        // a client silent for the header read timeout is dropped.
        Some(_) => match sniff::detect(&stream, snap.limits.header_read_timeout.get()).await {
            Ok(Detected::Http2) => Detected::Http2,
            Ok(Detected::Tcp) if !has_data(&stream).await => return,
            Ok(_) => Detected::Http1,
            Err(_) => return,
        },
        None => match sniff::detect(&stream, snap.detection_timeout).await {
            Ok(d) => d,
            Err(_) => return,
        },
    };
    match detected {
        Detected::Tcp => {
            if info.side == Side::Inbound && !crate::filters::admit_tcp(&snap, &info) {
                return;
            }
            crate::tcp::proxy(stream, info, snap).await
        }
        // HTTP/1.1 starts on the fast path, which hands the connection to hyper's (below)
        // when a request needs it.
        Detected::Http1 => crate::http::fast::serve(stream, info, snap, store, drain).await,
        Detected::Http2 => crate::http::server::serve(stream, true, info, snap, store, drain).await,
    }
}

/// Whether the client sent anything at all (without waiting).
async fn has_data(stream: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(std::time::Duration::ZERO, stream.peek(&mut b)).await,
        Ok(Ok(n)) if n > 0
    )
}
