//! The HTTP/1.1 fast path: plain proxying of HTTP/1.1 requests without hyper. One task per
//! client connection parses each request head ([`head`], `httparse`), routes it exactly as the
//! full path does ([`plan`]), passes it through the side's filter [`Chain`], forwards it on a
//! pooled upstream connection it drives itself ([`exchange`]), and streams the response back
//! with its framing untouched: no per-request task, channel, `HeaderMap` or body object, and
//! no copy of a head that needs no change.
//!
//! Everything else is the full path's (hyper and [`crate::http::handler`]): when a request
//! needs what only the full path does (see [`plan::route_needs_full`],
//! [`plan::cluster_needs_full`] and [`head::ReqHead::full`]), or is malformed, or too large,
//! the connection is handed to hyper with the bytes read so far put back ([`rewind`]), and
//! hyper serves it from that request on: the same answers (400, 431, upgrades, chunked
//! uploads, retries with bodies…) as before the fast path existed.

mod buf;
mod chunked;
mod exchange;
pub mod head;
pub mod idle;
pub mod plan;
mod rewind;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::drain::Drain;
use crate::filters::telemetry::Observation;
use crate::http::body::RespBody;
use crate::http::chain::{Chain, ResponseDetails, UpstreamHost};
use crate::http::local;
use crate::listener::{ConnInfo, Side};
use crate::metrics::{LabelSet, Metrics, RequestProtocol, RequestRecord, ResponseFlags};
use crate::snapshot::Snapshot;
use crate::store::Store;
use buf::Buf;
use head::{Parsed, ReqHead, RespHead};
use plan::Plan;

/// The client buffer's size between requests (it grows for a large head or body, up to the
/// head limit plus [`head::MAX_BODY`], and shrinks back after).
const CLIENT_BUF: usize = 4 * 1024;

/// Serves an HTTP/1.x client connection: on the fast path while its requests allow, then on
/// the full path.
pub async fn serve<S>(
    mut io: S,
    info: Arc<ConnInfo>,
    snap: Arc<Snapshot>,
    store: Arc<Store>,
    drain: Drain,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Limits are the connection's, as on the full path (fixed when it was accepted).
    let max_head = crate::http::server::head_limit(&snap.limits);
    let header_timeout = snap.limits.header_read_timeout.get();
    let mut buf: Vec<u8> = Vec::with_capacity(CLIENT_BUF);
    let mut head = ReqHead::default();
    let mut resp = RespHead::default();
    let drained = drain.signaled();
    tokio::pin!(drained);
    let mut draining = false;
    // The header read timeout runs from when the connection goes idle (so idle keep-alive
    // connections are closed after it too) until a whole head is in; it is checked on the
    // ticks of [`idle`].
    let mut idle_since = Instant::now();
    let ticked = idle::next_tick();
    tokio::pin!(ticked);
    loop {
        loop {
            if !buf.is_empty() {
                match head.parse(&buf) {
                    Parsed::Complete if head.len <= max_head => break,
                    Parsed::Partial if buf.len() < max_head => {}
                    // Malformed or too large: hyper gives the answer (400, 431) and closes.
                    _ => return hand_off(io, buf, info, snap, store, drain.clone()).await,
                }
            }
            if buf.len() == buf.capacity() {
                buf.reserve(buf.capacity());
            }
            tokio::select! {
                biased;
                r = io.read_buf(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = &mut ticked => {
                    if idle_since.elapsed() >= header_timeout {
                        return;
                    }
                    ticked.set(idle::next_tick());
                }
                _ = &mut drained, if !draining => {
                    draining = true;
                    if buf.is_empty() {
                        return;
                    }
                }
            }
        }
        let start = Instant::now();
        if head.full.is_some() {
            return hand_off(io, buf, info, snap, store, drain.clone()).await;
        }
        let Some(current) = store.load() else {
            return hand_off(io, buf, info, snap, store, drain.clone()).await;
        };
        let chain = current.chain_for(&info.side);
        let plan = {
            let b = &buf[..];
            plan::plan(
                &current,
                &info,
                &plan::Request {
                    method: head.method_str(b),
                    target: head.path_str(b),
                    // As the full path reads it: not text, no authority.
                    authority: std::str::from_utf8(head.host.get(b)).unwrap_or(""),
                },
                &mut || head.header_map(b),
            )
        };
        if let Plan::Full(why) = plan {
            tracing::trace!(why, "to the full path");
            return hand_off(io, buf, info, snap, store, drain.clone()).await;
        }
        // The body, whole (it is small: larger ones took the full path).
        let total = head.len + head.content_length as usize;
        while buf.len() < total {
            buf.reserve(total - buf.len());
            match io.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let mut served = Served {
            io: &mut io,
            info: &info,
            chain,
            metrics: &current.metrics,
            start,
            request_bytes: head.metric_bytes,
            head_request: head.is_head,
            close: head.close || draining,
            drain: &drain,
            done_at: start,
            observation: None,
            upstream: None,
        };
        let filtered = match run_chain(chain, &buf, &head, &info) {
            Err(()) => return hand_off(io, buf, info, snap, store, drain.clone()).await,
            Ok((filtered, observation)) => {
                served.observation = observation;
                filtered
            }
        };
        let keep = match filtered {
            Filtered::Answered(r) => {
                let labels = unknown_labels(&current, &info);
                served.local(r.response, labels, r.flags).await
            }
            filtered => match plan {
                Plan::Local {
                    status,
                    flags,
                    labels,
                } => {
                    let r = local::reply(status, local::error_text(flags), false);
                    served.local(r, labels, flags).await
                }
                Plan::Forward {
                    cluster,
                    retry,
                    timeout,
                } => {
                    // The client's head goes upstream as it came, unless hop-by-hop headers
                    // must go, or filters saw it.
                    let rewritten;
                    let request = match filtered {
                        Filtered::Seen(parts) => {
                            rewritten = head_from_parts(parts, &buf[head.len..total]);
                            &rewritten[..]
                        }
                        _ if head.strip => {
                            let mut out = Vec::with_capacity(total);
                            head.write_upstream(&buf, &mut out);
                            out.extend_from_slice(&buf[head.len..total]);
                            rewritten = out;
                            &rewritten[..]
                        }
                        _ => &buf[..total],
                    };
                    served
                        .forward(&cluster, retry, timeout, request, &mut resp)
                        .await
                }
                Plan::Full(_) => unreachable!("handed off above"),
            },
        };
        idle_since = served.done_at;
        if !keep {
            let _ = io.shutdown().await;
            return;
        }
        if buf.len() == total {
            buf.clear();
        } else {
            // Pipelined: the next request is already here.
            buf.drain(..total);
        }
        if buf.capacity() > 4 * CLIENT_BUF && buf.len() <= CLIENT_BUF {
            buf.shrink_to(CLIENT_BUF);
        }
    }
}

/// The full path serves the connection from here on, starting with the bytes read so far.
async fn hand_off<S>(
    io: S,
    buf: Vec<u8>,
    info: Arc<ConnInfo>,
    snap: Arc<Snapshot>,
    store: Arc<Store>,
    drain: Drain,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Metrics::inc(&store.metrics.server.full_path_handoffs_total);
    let io = rewind::Rewind::new(buf, io);
    // Boxed: the full path's connection state is large, and most connections never need it.
    Box::pin(crate::http::server::serve(
        io, false, info, snap, store, drain,
    ))
    .await
}

fn unknown_labels(snap: &Snapshot, info: &ConnInfo) -> Arc<LabelSet> {
    if info.side == Side::Inbound {
        snap.unknown_labels_inbound.clone()
    } else {
        snap.unknown_labels_outbound.clone()
    }
}

/// What the side's request filters decided.
enum Filtered {
    /// The chain is empty: the request goes on as it came, and no `Parts` were built.
    Untouched,
    /// The filters saw the request as `Parts`: the head sent upstream is written from them, so
    /// that what filters see (and, should they come to change requests, what they change) is
    /// what is forwarded.
    Seen(http::request::Parts),
    /// A filter answered.
    Answered(crate::http::chain::LocalReply),
}

/// Runs the side's chain on the request: telemetry's look (request id, trace context), the
/// inbound side's `x-forwarded-client-cert`, and the request filters. A chain with nothing to
/// do costs nothing. `Err`: the request cannot be shown to the chain as `http` types, so the
/// full path (which would refuse it the same way) takes it.
fn run_chain(
    chain: &Chain,
    buf: &[u8],
    head: &ReqHead,
    info: &ConnInfo,
) -> Result<(Filtered, Option<Observation>), ()> {
    let client_cert = chain.is_inbound() && (info.security.is_some() || head.client_cert_header);
    if chain.is_empty() && !client_cert {
        return Ok((Filtered::Untouched, None));
    }
    let mut req = http::Request::new(());
    *req.method_mut() = http::Method::from_bytes(head.method.get(buf)).map_err(|_| ())?;
    *req.uri_mut() = http::Uri::try_from(head.path.get(buf)).map_err(|_| ())?;
    *req.headers_mut() = head.header_map(buf);
    let (mut parts, ()) = req.into_parts();
    let observation = chain.observe(&mut parts, info);
    let filtered = match chain.on_request(&parts, info) {
        Some(r) => Filtered::Answered(r),
        None => Filtered::Seen(parts),
    };
    Ok((filtered, observation))
}

/// The upstream head from filtered `Parts` (hop-by-hop headers dropped as the full path does).
fn head_from_parts(mut parts: http::request::Parts, body: &[u8]) -> Vec<u8> {
    crate::http::forward::strip_hop_by_hop(&mut parts.headers, false);
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (n, v) in &parts.headers {
        head::write_header(&mut out, n.as_str().as_bytes(), v.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn head_bytes(h: &HeaderMap) -> u64 {
    h.iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum()
}

/// One request being answered on a client connection.
struct Served<'a, S> {
    io: &'a mut S,
    info: &'a ConnInfo,
    chain: &'a Chain,
    metrics: &'a Metrics,
    start: Instant,
    request_bytes: u64,
    head_request: bool,
    /// The client connection closes after this response.
    close: bool,
    drain: &'a Drain,
    /// When the response ended (set by `record`).
    done_at: Instant,
    /// Telemetry's record of the request, when telemetry is on.
    observation: Option<Observation>,
    /// The endpoint that answered, for telemetry.
    upstream: Option<UpstreamHost>,
}

impl<S: AsyncWrite + Unpin> Served<'_, S> {
    fn record(
        &mut self,
        labels: &Arc<LabelSet>,
        code: u16,
        flags: ResponseFlags,
        response_bytes: u64,
        details: Option<&'static str>,
    ) {
        self.done_at = Instant::now();
        Metrics::inc(&self.metrics.server.fast_path_requests_total);
        let record = RequestRecord {
            protocol: RequestProtocol::Http,
            response_code: code,
            grpc_status: None,
            flags,
            duration_ms: self.done_at.duration_since(self.start).as_secs_f64() * 1000.0,
            request_bytes: self.request_bytes,
            response_bytes,
        };
        self.metrics
            .record_request(&self.info.request_labels(labels, self.metrics), &record);
        if let Some(o) = self.observation.take() {
            o.complete(&record, self.upstream.take(), details);
        }
    }

    /// A drain that started while the request was in flight closes the connection after it.
    fn closing(&mut self) -> bool {
        self.close |= self.drain.is_draining();
        self.close
    }

    /// Answers locally (errors, filters' answers); true if the connection stays open.
    async fn local(
        &mut self,
        r: http::Response<RespBody>,
        labels: Arc<LabelSet>,
        flags: ResponseFlags,
    ) -> bool {
        use http_body_util::BodyExt;
        let metric_head = head_bytes(r.headers());
        let r = self.chain.on_response(r, self.info);
        let close = self.closing();
        let (parts, body) = r.into_parts();
        // Local bodies are whole already.
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(256 + body.len());
        head::write_parts(&mut out, &parts, close);
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        if !self.head_request {
            out.extend_from_slice(&body);
        }
        let ok = self.io.write_all(&out).await.is_ok() && self.io.flush().await.is_ok();
        let mut flags = flags;
        if !ok {
            flags.insert(ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
        }
        let details = parts.extensions.get::<ResponseDetails>().map(|d| d.0);
        self.record(
            &labels,
            parts.status.as_u16(),
            flags,
            metric_head + body.len() as u64,
            details,
        );
        ok && !close
    }

    /// Forwards `request` (head and body, as they go upstream) to `cluster`; true if the
    /// connection stays open.
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &mut self,
        cluster: &Arc<Cluster>,
        retry: &crate::route::RetryPolicy,
        timeout: Option<std::time::Duration>,
        request: &[u8],
        resp: &mut RespHead,
    ) -> bool {
        let Some(mut guard) = cluster.begin_request() else {
            let f = ResponseFlags::UPSTREAM_OVERFLOW;
            let r = local::reply(503, local::error_text(f), false);
            return self.local(r, cluster.labels(), f).await;
        };
        let mut up = Buf::take();
        let sent = exchange::until_head(
            cluster,
            self.start,
            retry,
            &mut guard,
            self.metrics,
            request,
            self.head_request,
            &mut up,
            resp,
        );
        let got = match timeout {
            // Boxed: only routes with a timeout pay for the timer and the bigger future.
            Some(t) => match Box::pin(tokio::time::timeout(t, sent)).await {
                Ok(r) => r,
                Err(_) => Err(exchange::Failed {
                    status: 504,
                    flags: ResponseFlags::UPSTREAM_REQUEST_TIMEOUT,
                    labels: cluster.labels(),
                }),
            },
            None => sent.await,
        };
        let mut got = match got {
            Ok(g) => g,
            Err(f) => {
                let r = local::reply(f.status, local::error_text(f.flags), false);
                return self.local(r, f.labels, f.flags).await;
            }
        };
        // A body that runs to the upstream's close ends the client connection too.
        self.close |= resp.framing == head::Framing::Close;
        let close = self.closing();
        let relayed = exchange::relay(
            self.io,
            &mut got.conn,
            &mut up,
            resp,
            close,
            self.chain,
            self.info,
        )
        .await;
        if cluster.report_upstream {
            self.upstream = Some(UpstreamHost {
                addr: cluster.endpoints[got.endpoint].addr,
                cluster: cluster.name.clone(),
                identity: cluster.mtls_identity(got.endpoint),
            });
        }
        self.record(
            &got.labels,
            resp.status,
            relayed.flags,
            resp.metric_bytes + relayed.body_bytes,
            None,
        );
        if relayed.upstream_reusable {
            cluster.release_raw(got.endpoint, got.conn, self.done_at);
        }
        drop(guard);
        relayed.client_ok && relayed.flags.is_empty() && !close
    }
}

use crate::cluster::Cluster;
