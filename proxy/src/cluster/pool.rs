//! Upstream connections: kept per endpoint and reused (HTTP/1.1: one request at a time, idle
//! ones kept last-in-first-out; HTTP/2: one shared connection), within the cluster's limits —
//! `maxConnections` (then requests wait as pending), `http1MaxPendingRequests` (then they fail
//! fast with 503 `UO`), `maxRequestsPerConnection`, `idleTimeout`, `connectTimeout`.
//!
//! hyper's own pooled client (hyper-util's legacy `Client`) has no pending-request limit, no
//! per-cluster connection cap and no way to fail fast, which Istio's circuit breaking needs; so
//! the pool is here, on top of hyper's connection-level client.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::{Cluster, ClusterPolicy, ClusterState, EndpointState};
use crate::http::body::ReqBody;
use crate::metrics::Metrics;

#[derive(Default)]
pub(crate) struct EndpointPool {
    idle: Vec<Idle>,
    h2: Option<H2Slot>,
}

struct Idle {
    sender: http1::SendRequest<ReqBody>,
    uses: u32,
    since: Instant,
}

struct H2Slot {
    sender: http2::SendRequest<ReqBody>,
    uses: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("too many connections and pending requests (circuit breaker)")]
    Overflow,
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connect to {0}: timed out")]
    ConnectTimeout(SocketAddr),
    #[error("handshake with {addr}: {source}")]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::upstream::TlsConnectError),
}

pub enum Sender {
    H1(http1::SendRequest<ReqBody>),
    H2(http2::SendRequest<ReqBody>),
}

/// A connection lent to one request.
pub struct PooledConn {
    sender: Option<Sender>,
    endpoint: Arc<EndpointState>,
    uses: u32,
    max_uses: u32,
    cluster: Arc<ClusterState>,
}

impl PooledConn {
    pub fn is_http2(&self) -> bool {
        matches!(self.sender, Some(Sender::H2(_)))
    }

    /// Sends the request; the future does not borrow the connection.
    pub async fn send(
        &mut self,
        req: http::Request<ReqBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
        match self.sender.as_mut() {
            Some(Sender::H1(s)) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Some(Sender::H2(s)) => s.send_request(req).await,
            None => unreachable!("a lent connection always has its sender"),
        }
    }

    /// The response was read to its end: the connection can serve another request.
    pub fn release(mut self) {
        if let Some(Sender::H1(sender)) = self.sender.take() {
            let exhausted = self.max_uses > 0 && self.uses >= self.max_uses;
            if !exhausted && !sender.is_closed() {
                lock(&self.endpoint.pool).idle.push(Idle {
                    sender,
                    uses: self.uses,
                    since: Instant::now(),
                });
                self.cluster.released.notify_waiters();
            }
        }
    }

    /// The exchange broke off: an HTTP/1.1 connection in that state cannot be reused.
    pub fn discard(mut self) {
        self.sender.take();
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts an open connection against the cluster's limit; released when the connection ends.
pub(crate) struct ConnSlot(Arc<ClusterState>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.released.notify_waiters();
    }
}

/// Counts a request waiting for a connection.
struct PendingSlot<'a>(&'a ClusterState);

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) fn try_reserve_connection(state: &Arc<ClusterState>, max: u32) -> Option<ConnSlot> {
    let mut n = state.connections.load(Ordering::Acquire);
    loop {
        if n >= max {
            return None;
        }
        match state
            .connections
            .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some(ConnSlot(state.clone())),
            Err(now) => n = now,
        }
    }
}

/// Opens a TCP connection with the cluster's connect timeout and keepalive.
pub async fn connect_tcp(addr: SocketAddr, policy: &ClusterPolicy) -> Result<TcpStream, PoolError> {
    let stream = match tokio::time::timeout(policy.connect_timeout, TcpStream::connect(addr)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(PoolError::Connect { addr, source }),
        Err(_) => return Err(PoolError::ConnectTimeout(addr)),
    };
    let _ = stream.set_nodelay(true);
    if let Some(ka) = &policy.keepalive {
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(ka);
    }
    Ok(stream)
}

impl Cluster {
    /// A connection to endpoint `i` speaking HTTP/2 or HTTP/1.1, reused when one is free.
    pub async fn acquire(
        &self,
        i: usize,
        http2: bool,
        metrics: &Metrics,
    ) -> Result<PooledConn, PoolError> {
        let ep = &self.endpoints[i];
        let policy = &self.policy;
        let mut pending: Option<PendingSlot<'_>> = None;
        loop {
            let released = self.state.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();

            if let Some(c) = self.reuse(i, http2) {
                return Ok(c);
            }
            if let Some(slot) = try_reserve_connection(&self.state, policy.max_connections) {
                drop(pending.take());
                // Boxed: new connections are rare with pooling, and their handshake state is big.
                return Box::pin(self.open(i, &ep.state, http2, slot, metrics)).await;
            }
            // At the limit: an idle connection to another endpoint can make room.
            if self.evict_idle() {
                continue;
            }
            if pending.is_none() {
                let n = self.state.pending.fetch_add(1, Ordering::AcqRel);
                pending = Some(PendingSlot(&self.state));
                if n >= policy.max_pending {
                    return Err(PoolError::Overflow);
                }
            }
            released.await;
        }
    }

    fn reuse(&self, i: usize, http2: bool) -> Option<PooledConn> {
        let ep = &self.endpoints[i];
        let policy = &self.policy;
        let mut pool = lock(&ep.state.pool);
        let lend = |sender, uses| PooledConn {
            sender: Some(sender),
            endpoint: ep.state.clone(),
            uses,
            max_uses: policy.max_requests_per_connection,
            cluster: self.state.clone(),
        };
        if http2 {
            let max = policy.max_requests_per_connection;
            if let Some(slot) = pool.h2.as_mut() {
                if !slot.sender.is_closed() && (max == 0 || slot.uses < max) {
                    slot.uses += 1;
                    let uses = slot.uses;
                    let sender = slot.sender.clone();
                    return Some(lend(Sender::H2(sender), uses));
                }
                pool.h2 = None;
            }
            return None;
        }
        let now = Instant::now();
        while let Some(idle) = pool.idle.pop() {
            if idle.sender.is_closed() || now.duration_since(idle.since) > policy.idle_timeout {
                continue;
            }
            return Some(lend(Sender::H1(idle.sender), idle.uses + 1));
        }
        None
    }

    /// Closes one idle HTTP/1.1 connection of this cluster; true if there was one.
    fn evict_idle(&self) -> bool {
        for e in &self.endpoints {
            if lock(&e.state.pool).idle.pop().is_some() || e.state.raw.evict_one() {
                return true;
            }
        }
        false
    }

    async fn open(
        &self,
        i: usize,
        ep: &Arc<EndpointState>,
        http2: bool,
        slot: ConnSlot,
        metrics: &Metrics,
    ) -> Result<PooledConn, PoolError> {
        let addr = self.endpoints[i].addr;
        Metrics::inc(&metrics.server.upstream_connections_total);
        let stream = match connect_tcp(addr, &self.policy).await {
            Ok(s) => s,
            Err(e) => {
                Metrics::inc(&metrics.server.upstream_connect_failures_total);
                return Err(e);
            }
        };
        let protocol = if http2 {
            crate::tls::AppProtocol::Http2
        } else {
            crate::tls::AppProtocol::Http1
        };
        let io = TokioIo::new(self.secure(i, stream, protocol, metrics).await?);
        let sender = if http2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|source| PoolError::Handshake { addr, source })?;
            tokio::spawn(async move {
                let _ = conn.await;
                drop(slot);
            });
            lock(&ep.pool).h2 = Some(H2Slot {
                sender: sender.clone(),
                uses: 1,
            });
            Sender::H2(sender)
        } else {
            let (sender, conn) = http1::Builder::new()
                .writev(false)
                .handshake(io)
                .await
                .map_err(|source| PoolError::Handshake { addr, source })?;
            tokio::spawn(async move {
                let _ = conn.await;
                drop(slot);
            });
            Sender::H1(sender)
        };
        Ok(PooledConn {
            sender: Some(sender),
            endpoint: ep.clone(),
            uses: 1,
            max_uses: self.policy.max_requests_per_connection,
            cluster: self.state.clone(),
        })
    }

    /// Closes idle connections past the idle timeout (run periodically).
    pub fn sweep_idle(&self) {
        let now = Instant::now();
        for e in &self.endpoints {
            let mut pool = lock(&e.state.pool);
            pool.idle.retain(|i| {
                !i.sender.is_closed() && now.duration_since(i.since) <= self.policy.idle_timeout
            });
            drop(pool);
            e.state.raw.sweep(self.policy.idle_timeout);
        }
    }

    /// A dedicated HTTP/1.1 connection that may be upgraded (WebSocket), outside the pool but
    /// counted against `maxConnections`.
    pub async fn connect_upgradable(
        &self,
        i: usize,
        metrics: &Metrics,
    ) -> Result<http1::SendRequest<ReqBody>, PoolError> {
        let addr = self.endpoints[i].addr;
        let slot = try_reserve_connection(&self.state, self.policy.max_connections)
            .ok_or(PoolError::Overflow)?;
        Metrics::inc(&metrics.server.upstream_connections_total);
        let stream = connect_tcp(addr, &self.policy).await?;
        let stream = self
            .secure(i, stream, crate::tls::AppProtocol::Http1, metrics)
            .await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| PoolError::Handshake { addr, source })?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
            drop(slot);
        });
        Ok(sender)
    }
}
