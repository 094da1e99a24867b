//! One request on the fast path's upstream side: pick an endpoint, take an idle connection or
//! open one, write the request, read the response head (retrying connect failures as the full
//! path's `forward` does), then relay the response to the client with its framing untouched.
//! All of it runs in the client connection's own task.

use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::chunked::Chunked;
use super::head::{write_parts, Framing, RespHead};
use crate::cluster::outlier::Outcome;
use crate::cluster::pool::PoolError;
use crate::cluster::raw_pool::RawConn;
use crate::cluster::{Cluster, RequestGuard};
use crate::http::body::RespBody;
use crate::http::chain::Chain;
use crate::listener::ConnInfo;
use crate::metrics::{LabelSet, Metrics, ResponseFlags};
use crate::route::{retry_on, RetryPolicy};

/// Response heads beyond this are refused (503 `UC`) rather than buffered.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A response head came back on `conn`, from endpoint `endpoint`.
pub struct Got {
    pub conn: RawConn,
    pub endpoint: usize,
    pub labels: Arc<LabelSet>,
}

/// No response: what to answer instead.
pub struct Failed {
    pub status: u16,
    pub flags: ResponseFlags,
    pub labels: Arc<LabelSet>,
}

enum SendError {
    /// Nothing came back: the write failed, or the connection ended before any response byte.
    Nothing,
    /// A response started but was cut off or invalid.
    Broken,
}

/// Counts a retry in flight against `maxRetries`.
struct RetrySlot<'a>(&'a Cluster);

impl Drop for RetrySlot<'_> {
    fn drop(&mut self) {
        self.0.state.active_retries.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Writes `request` on `conn` and reads the response head into `up` (interim 1xx answers
/// are skipped, as hyper's client does).
async fn send(
    conn: &mut RawConn,
    request: &[u8],
    head_request: bool,
    up: &mut Vec<u8>,
    resp: &mut RespHead,
) -> Result<(), SendError> {
    up.clear();
    // The flush matters over TLS: records the socket would not take at once wait in the
    // session until then (on TCP it does nothing).
    let written = async {
        conn.stream.write_all(request).await?;
        conn.stream.flush().await
    };
    written.await.map_err(|_| SendError::Nothing)?;
    loop {
        if up.len() == up.capacity() {
            if up.capacity() >= MAX_RESPONSE_HEAD {
                return Err(SendError::Broken);
            }
            up.reserve(up.capacity());
        }
        let n = match conn.stream.read_buf(up).await {
            Ok(n) => n,
            Err(_) if up.is_empty() => return Err(SendError::Nothing),
            Err(_) => return Err(SendError::Broken),
        };
        if n == 0 {
            return Err(if up.is_empty() {
                SendError::Nothing
            } else {
                SendError::Broken
            });
        }
        loop {
            match resp.parse(up, head_request) {
                Ok(false) => break,
                Err(_) => return Err(SendError::Broken),
                Ok(true) if resp.status == 101 => return Err(SendError::Broken),
                Ok(true) if resp.status < 200 => {
                    let len = resp.len;
                    up.drain(..len);
                    if up.is_empty() {
                        break;
                    }
                }
                Ok(true) => return Ok(()),
            }
        }
    }
}

/// Sends the request until a response head comes back, retrying per `retry` what may be
/// retried before anything was answered. `guard` follows the endpoint tried.
#[allow(clippy::too_many_arguments)]
pub async fn until_head(
    cluster: &Cluster,
    now: std::time::Instant,
    retry: &RetryPolicy,
    guard: &mut RequestGuard,
    metrics: &Metrics,
    request: &[u8],
    head_request: bool,
    up: &mut Vec<u8>,
    resp: &mut RespHead,
) -> Result<Got, Failed> {
    let tries = 1 + retry.retries;
    let mut labels = cluster.labels();
    let mut last = (503u16, ResponseFlags::NO_HEALTHY_UPSTREAM);
    let mut retried = false;
    let mut _retry_slot: Option<RetrySlot<'_>> = None;
    // A reused connection that fails before any answer was most likely closed by the upstream
    // while idle: the same attempt goes again once, on a new connection.
    let mut fresh = false;
    let mut attempt = 0;
    while attempt < tries {
        if attempt > 0 && !fresh {
            let n = cluster.state.active_retries.fetch_add(1, Ordering::AcqRel);
            if n >= cluster.policy.max_retries {
                cluster.state.active_retries.fetch_sub(1, Ordering::AcqRel);
                break;
            }
            _retry_slot = Some(RetrySlot(cluster));
            retried = true;
            Metrics::inc(&metrics.server.retries_total);
            tokio::time::sleep(retry.backoff(attempt - 1)).await;
        }
        let Some(i) = cluster.pick(None) else {
            last = (503, ResponseFlags::NO_HEALTHY_UPSTREAM);
            break;
        };
        labels = cluster.endpoint_labels(i);
        guard.set_endpoint(&cluster.endpoints[i].state);
        let mut conn = match cluster.acquire_raw(i, fresh, now, metrics).await {
            Ok(c) => c,
            Err(PoolError::Overflow) => {
                return Err(Failed {
                    status: 503,
                    flags: ResponseFlags::UPSTREAM_OVERFLOW,
                    labels,
                });
            }
            Err(e) => {
                tracing::debug!(cluster = %cluster.name, "{e}");
                cluster.report(i, Outcome::ConnectFailure, metrics);
                last = (503, ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
                let on = retry_on::CONNECT_FAILURE
                    | retry_on::FIVE_XX
                    | retry_on::GATEWAY_ERROR
                    | retry_on::RESET;
                fresh = false;
                if retry.on & on != 0 {
                    attempt += 1;
                    continue;
                }
                break;
            }
        };
        match send(&mut conn, request, head_request, up, resp).await {
            Ok(()) => {
                cluster.report(i, Outcome::Status(resp.status), metrics);
                return Ok(Got {
                    conn,
                    endpoint: i,
                    labels,
                });
            }
            Err(SendError::Nothing) if conn.reused() && !fresh => {
                fresh = true;
                continue;
            }
            Err(_) => {
                tracing::debug!(cluster = %cluster.name, "upstream request failed");
                cluster.report(i, Outcome::ConnectFailure, metrics);
                last = (503, ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
                // As on the full path: an answer that broke off is not retried without a
                // route policy asking for it (such routes take the full path).
                break;
            }
        }
    }
    let mut flags = last.1;
    if retried {
        flags.insert(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
    }
    Err(Failed {
        status: last.0,
        flags,
        labels,
    })
}

/// Writes all of `slices` (in as few writes as the stream takes).
async fn write_all_vectored<C: AsyncWrite + Unpin>(
    client: &mut C,
    mut slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    while !slices.is_empty() {
        let n = client.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// How a relay ended.
pub struct Relayed {
    /// Body data bytes sent to the client.
    pub body_bytes: u64,
    pub flags: ResponseFlags,
    /// The response was read to its end, and the upstream connection may be reused.
    pub upstream_reusable: bool,
    /// The whole response reached the client, and its connection may serve another request.
    pub client_ok: bool,
}

/// Where the body ends.
enum Progress {
    Length(u64),
    Chunked(Chunked),
    Close,
}

impl Progress {
    /// Of `bytes`, how many belong to the body; then whether the body is complete.
    fn feed(&mut self, bytes: &[u8]) -> Result<(usize, bool), ()> {
        match self {
            Progress::Length(n) => {
                let take = (*n).min(bytes.len() as u64);
                *n -= take;
                Ok((take as usize, *n == 0))
            }
            Progress::Chunked(c) => {
                let take = c.feed(bytes).map_err(|_| ())?;
                Ok((take, c.is_done()))
            }
            Progress::Close => Ok((bytes.len(), false)),
        }
    }
    fn data(&self, taken: usize) -> u64 {
        match self {
            Progress::Chunked(_) => 0,
            _ => taken as u64,
        }
    }
}

/// Relays the response whose head is in `up` to the client: the head (as the client should
/// see it), then the body as the upstream framed it, through `up`.
#[allow(clippy::too_many_arguments)]
pub async fn relay<C: AsyncWrite + Unpin>(
    client: &mut C,
    conn: &mut RawConn,
    up: &mut Vec<u8>,
    resp: &RespHead,
    close: bool,
    chain: &Chain,
    info: &ConnInfo,
) -> Relayed {
    let mut progress = match resp.framing {
        Framing::None => Progress::Length(0),
        Framing::Length(n) => Progress::Length(n),
        Framing::Chunked => Progress::Chunked(Chunked::default()),
        Framing::Close => Progress::Close,
    };
    let mut r = Relayed {
        body_bytes: 0,
        flags: ResponseFlags::NONE,
        upstream_reusable: false,
        client_ok: false,
    };
    let broken = |mut r: Relayed, flag| {
        r.flags.insert(flag);
        r
    };
    let first = &up[resp.len..];
    let Ok((take, mut done)) = progress.feed(first) else {
        return broken(r, ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
    };
    let mut extra = take < first.len();
    r.body_bytes += progress.data(take);
    // The head as the client gets it and the body read with it, in one write: as slices of
    // the buffer they came in when no filter saw them, else the head written anew.
    let written;
    let mut slices = [IoSlice::new(&[]); 8];
    let direct = if chain.is_empty() {
        resp.client_slices(up, close, take, &mut slices)
    } else {
        None
    };
    let n = match direct {
        Some(n) => n,
        None => {
            let mut out = Vec::with_capacity(resp.len + 32);
            if chain.is_empty() {
                resp.write_client(up, close, &mut out);
            } else {
                let parts = resp.parts(up);
                let r =
                    chain.on_response(http::Response::from_parts(parts, RespBody::empty()), info);
                let (parts, _) = r.into_parts();
                write_parts(&mut out, &parts, close);
                out.extend_from_slice(b"\r\n");
            }
            written = out;
            slices[0] = IoSlice::new(&written);
            slices[1] = IoSlice::new(&first[..take]);
            2
        }
    };
    if write_all_vectored(client, &mut slices[..n]).await.is_err() {
        return broken(r, ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
    }
    while !done {
        up.clear();
        let n = match conn.stream.read_buf(up).await {
            Ok(n) => n,
            Err(_) => return broken(r, ResponseFlags::UPSTREAM_CONNECTION_TERMINATION),
        };
        if n == 0 {
            if matches!(progress, Progress::Close) {
                break;
            }
            return broken(r, ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
        }
        let Ok((take, end)) = progress.feed(&up[..n]) else {
            return broken(r, ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
        };
        done = end;
        extra |= take < n;
        r.body_bytes += progress.data(take);
        if client.write_all(&up[..take]).await.is_err() {
            return broken(r, ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
        }
    }
    if client.flush().await.is_err() {
        return broken(r, ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
    }
    if let Progress::Chunked(c) = &progress {
        r.body_bytes = c.data;
    }
    r.upstream_reusable = done && !extra && resp.reusable;
    r.client_ok = !matches!(progress, Progress::Close);
    r
}
