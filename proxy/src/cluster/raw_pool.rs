//! The fast path's upstream connections: HTTP/1.1 over TCP, or over the TLS the cluster asks
//! for (the mesh's mTLS, a DestinationRule's SIMPLE or MUTUAL), kept idle per endpoint
//! (last in, first out) and lent whole to one request, whose own task reads and writes them;
//! no connection task, no channel. Counted against the cluster's connections like hyper's
//! (see [`super::pool`]), closed past `idleTimeout`, reused at most
//! `maxRequestsPerConnection` times.

use std::time::Instant;

use super::pool::{connect_tcp, try_reserve_connection, ConnSlot, PoolError};
use super::Cluster;
use crate::metrics::Metrics;
use crate::tls::stream::Upstream;

/// An upstream connection the fast path owns.
pub struct RawConn {
    pub stream: Upstream,
    /// Requests sent on it, this one included.
    uses: u32,
    since: Instant,
    _slot: ConnSlot,
}

impl RawConn {
    /// Whether it carried a request before this one (then a failure before any answer may be
    /// the upstream having closed it while idle).
    pub fn reused(&self) -> bool {
        self.uses > 1
    }
}

/// One endpoint's idle fast-path connections.
#[derive(Default)]
pub struct RawIdle(std::sync::Mutex<Vec<RawConn>>);

impl RawIdle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RawConn>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops idle connections past `idle_timeout`.
    pub fn sweep(&self, idle_timeout: std::time::Duration) {
        let now = Instant::now();
        self.lock()
            .retain(|c| now.duration_since(c.since) <= idle_timeout);
    }

    /// Closes one idle connection; true if there was one.
    pub fn evict_one(&self) -> bool {
        self.lock().pop().is_some()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Cluster {
    /// A connection to endpoint `i`: an idle one unless `fresh`, else a new one. `now`: about
    /// now (the request's start), for the idle timeout.
    pub async fn acquire_raw(
        &self,
        i: usize,
        fresh: bool,
        now: Instant,
        metrics: &Metrics,
    ) -> Result<RawConn, PoolError> {
        let ep = &self.endpoints[i];
        if !fresh {
            let mut idle = ep.state.raw.lock();
            while let Some(mut c) = idle.pop() {
                if now.duration_since(c.since) > self.policy.idle_timeout {
                    continue;
                }
                c.uses += 1;
                return Ok(c);
            }
        }
        // The fast path serves clusters without a connection limit only (a limit means waiting
        // as pending, which the full path does), so this reserves nothing but the count.
        let slot = try_reserve_connection(&self.state, self.policy.max_connections)
            .ok_or(PoolError::Overflow)?;
        Metrics::inc(&metrics.server.upstream_connections_total);
        let connected = Box::pin(async {
            let tcp = connect_tcp(ep.addr, &self.policy).await?;
            Ok::<_, PoolError>(
                self.secure(i, tcp, crate::tls::AppProtocol::Http1, metrics)
                    .await?,
            )
        })
        .await;
        match connected {
            Ok(stream) => Ok(RawConn {
                stream,
                uses: 1,
                since: Instant::now(),
                _slot: slot,
            }),
            Err(e) => {
                Metrics::inc(&metrics.server.upstream_connect_failures_total);
                Err(e)
            }
        }
    }

    /// The exchange on `conn` ended cleanly (at `now`): keep it for the next request, unless
    /// it has served `maxRequestsPerConnection`.
    pub fn release_raw(&self, i: usize, mut conn: RawConn, now: Instant) {
        let max = self.policy.max_requests_per_connection;
        if max > 0 && conn.uses >= max {
            return;
        }
        conn.since = now;
        self.endpoints[i].state.raw.lock().push(conn);
    }
}
