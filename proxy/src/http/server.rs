//! One client connection served with hyper: HTTP/1.1 (keep-alive, chunked, upgrades) or HTTP/2,
//! with the limits that keep slow or hostile clients from exhausting the proxy.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::drain::Drain;
use crate::listener::ConnInfo;
use crate::snapshot::Snapshot;
use crate::store::Store;

/// The smallest buffer hyper accepts for a request head.
const MIN_HEAD_BUFFER: usize = 8192;

/// The largest request head a connection accepts (hyper's buffer limit; beyond it: 431).
pub fn head_limit(limits: &mesh_proxy_config::Limits) -> usize {
    (limits.max_request_headers_kb as usize * 1024).max(MIN_HEAD_BUFFER)
}

pub async fn serve<S>(
    io: S,
    http2: bool,
    info: Arc<ConnInfo>,
    snap: Arc<Snapshot>,
    store: Arc<Store>,
    drain: Drain,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &snap.limits;
    let head_bytes = head_limit(limits);
    let service = service_fn(move |req| {
        let info = info.clone();
        let store = store.clone();
        async move { Ok::<_, Infallible>(crate::http::handler::handle(req, info, store).await) }
    });
    let io = TokioIo::new(io);
    if http2 {
        let mut b = http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .max_header_list_size(head_bytes as u32)
            // Rapid-reset and error-flood protection (CVE-2023-44487 and kin).
            .max_pending_accept_reset_streams(Some(50))
            .max_local_error_reset_streams(Some(256));
        let conn = b.serve_connection(io, service);
        drive(conn, drain, |c| c.graceful_shutdown()).await;
    } else {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout.get())
            .max_buf_size(head_bytes)
            .keep_alive(true)
            // One flattened write per response: cheaper than building iovecs for the small
            // messages a mesh mostly carries (measured with callgrind), at the cost of a copy
            // of larger bodies.
            .writev(false);
        let conn = b.serve_connection(io, service).with_upgrades();
        drive(conn, drain, |c| c.graceful_shutdown()).await;
    }
}

/// Runs a connection; when a drain starts, asks it to finish gracefully and keeps running it.
async fn drive<C, E>(conn: C, drain: Drain, shutdown: impl FnOnce(Pin<&mut C>))
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = drain.signaled() => {
            shutdown(conn.as_mut());
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("client connection ended: {e}");
    }
}
