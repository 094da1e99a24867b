//! Sending a request to a cluster: pick an endpoint, get a pooled connection, send, and retry
//! what the retry policy says may be retried, with exponential backoff and jitter. Outcomes feed
//! outlier detection; limits answer 503 with the response flag Envoy would set.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, Uri, Version};

use crate::cluster::outlier::Outcome;
use crate::cluster::pool::PoolError;
use crate::cluster::{Cluster, UpstreamProtocol};
use crate::http::body::{grpc_status, ReqBody, RespBody};
use crate::http::local;
use crate::metrics::{LabelSet, Metrics, ResponseFlags};
use crate::route::{retry_on, RetryPolicy};

/// A finished forward: the response (upstream's or a local error), the labels of the endpoint
/// that answered (or the cluster's), and the flags.
pub struct Forwarded {
    pub response: Response<RespBody>,
    pub labels: Arc<LabelSet>,
    pub flags: ResponseFlags,
}

/// The request to send, once, or again for each retry (then kept whole, body included).
pub enum Template {
    Once(Option<Request<ReqBody>>),
    Replay {
        method: Method,
        uri: Uri,
        version: Version,
        headers: HeaderMap,
        body: Bytes,
    },
}

impl Template {
    pub fn replayable(&self) -> bool {
        matches!(self, Template::Replay { .. })
    }

    fn take(&mut self) -> Option<Request<ReqBody>> {
        match self {
            Template::Once(r) => r.take(),
            Template::Replay {
                method,
                uri,
                version,
                headers,
                body,
            } => {
                let mut r = Request::new(ReqBody::full(body.clone()));
                *r.method_mut() = method.clone();
                *r.uri_mut() = uri.clone();
                *r.version_mut() = *version;
                *r.headers_mut() = headers.clone();
                Some(r)
            }
        }
    }
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
pub fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    static KEEP_ALIVE: header::HeaderName = header::HeaderName::from_static("keep-alive");
    static PROXY_CONNECTION: header::HeaderName =
        header::HeaderName::from_static("proxy-connection");
    // One pass over the (few) headers finds what there is to remove; usually nothing, or only
    // `Connection: keep-alive`, and a lookup per candidate name would cost more.
    const CONN: u8 = 1;
    const TE: u8 = 2;
    const OTHER: u8 = 4;
    let mut found = 0u8;
    for name in h.keys() {
        if name == header::CONNECTION {
            found |= CONN;
        } else if name == header::TE {
            found |= TE;
        } else if name == header::TRANSFER_ENCODING
            || (name == header::UPGRADE && !keep_upgrade)
            || name == KEEP_ALIVE
            || name == PROXY_CONNECTION
        {
            found |= OTHER;
        }
    }
    if found == 0 {
        return;
    }
    if found & CONN != 0 {
        // Usually just `keep-alive` or `close`; only other tokens name headers to drop.
        let mut named: Vec<header::HeaderName> = Vec::new();
        if let Some(list) = h.get(header::CONNECTION).and_then(|v| v.to_str().ok()) {
            for name in list.split(',').map(str::trim) {
                let plain = name.eq_ignore_ascii_case("keep-alive")
                    || name.eq_ignore_ascii_case("close")
                    || (keep_upgrade && name.eq_ignore_ascii_case("upgrade"));
                if !plain {
                    if let Ok(n) =
                        header::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                    {
                        named.push(n);
                    }
                }
            }
        }
        for n in named {
            h.remove(n);
        }
        if !keep_upgrade {
            h.remove(header::CONNECTION);
        }
    }
    if found & OTHER != 0 {
        h.remove(&KEEP_ALIVE);
        h.remove(&PROXY_CONNECTION);
        h.remove(header::TRANSFER_ENCODING);
        if !keep_upgrade {
            h.remove(header::UPGRADE);
        }
    }
    if found & TE != 0 && h.get(header::TE).is_some_and(|v| v != "trailers") {
        h.remove(header::TE);
    }
}

/// Fits a client request for the upstream's HTTP version: origin-form URI and `Host` for
/// HTTP/1.1, absolute URI for HTTP/2.
pub fn prepare(req: &mut Request<ReqBody>, authority: &str, http2: bool) {
    strip_hop_by_hop(req.headers_mut(), false);
    if http2 {
        *req.version_mut() = Version::HTTP_2;
        if req.uri().scheme().is_none() || req.uri().authority().is_none() {
            let pq = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let uri = Uri::builder()
                .scheme("http")
                .authority(authority)
                .path_and_query(pq.as_str())
                .build()
                .or_else(|_| {
                    Uri::builder()
                        .scheme("http")
                        .authority("localhost")
                        .path_and_query(pq.as_str())
                        .build()
                });
            if let Ok(u) = uri {
                *req.uri_mut() = u;
            }
        }
        req.headers_mut().remove(header::HOST);
    } else {
        *req.version_mut() = Version::HTTP_11;
        // An HTTP/1.1 client's request is in origin form already; only HTTP/2's absolute
        // URIs need cutting down.
        if req.uri().scheme().is_some() || req.uri().authority().is_some() {
            let pq = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            if let Ok(u) = pq.parse::<Uri>() {
                *req.uri_mut() = u;
            }
        }
        if !req.headers().contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(authority) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
    }
}

/// Whether to talk HTTP/2 to this cluster for a client that spoke `client_h2`.
pub fn upstream_h2(cluster: &Cluster, client_h2: bool) -> bool {
    match cluster.policy.protocol {
        UpstreamProtocol::Http1 => false,
        UpstreamProtocol::Http2 => true,
        UpstreamProtocol::ClientProtocol => client_h2,
    }
}

/// Counts a retry in flight against `maxRetries`.
struct RetrySlot<'a>(&'a Cluster);

impl Drop for RetrySlot<'_> {
    fn drop(&mut self) {
        self.0.state.active_retries.fetch_sub(1, Ordering::AcqRel);
    }
}

fn failed(
    cluster: &Cluster,
    labels: Arc<LabelSet>,
    status: u16,
    flags: ResponseFlags,
    grpc: bool,
) -> Forwarded {
    let _ = cluster;
    Forwarded {
        response: local::reply(status, local::error_text(flags), grpc),
        labels,
        flags,
    }
}

/// Sends `template` to `cluster`, retrying per `retry`.
pub async fn forward(
    cluster: &Arc<Cluster>,
    mut template: Template,
    retry: &RetryPolicy,
    hash: Option<u64>,
    http2: bool,
    grpc: bool,
    metrics: &Metrics,
) -> Forwarded {
    let Some(mut guard) = cluster.begin_request() else {
        return failed(
            cluster,
            cluster.labels(),
            503,
            ResponseFlags::UPSTREAM_OVERFLOW,
            grpc,
        );
    };
    let tries = 1 + retry.retries;
    let mut labels = cluster.labels();
    let mut last = (503u16, ResponseFlags::NO_HEALTHY_UPSTREAM);
    let mut retried = false;
    let mut _retry_slot: Option<RetrySlot<'_>> = None;
    for attempt in 0..tries {
        if attempt > 0 {
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
        let Some(i) = cluster.pick(hash) else {
            last = (503, ResponseFlags::NO_HEALTHY_UPSTREAM);
            break;
        };
        let ep = &cluster.endpoints[i];
        labels = cluster.endpoint_labels(i);
        guard.set_endpoint(&ep.state);
        let mut conn = match cluster.acquire(i, http2, metrics).await {
            Ok(c) => c,
            Err(PoolError::Overflow) => {
                return failed(cluster, labels, 503, ResponseFlags::UPSTREAM_OVERFLOW, grpc);
            }
            Err(e) => {
                tracing::debug!(cluster = %cluster.name, "{e}");
                cluster.report(i, Outcome::ConnectFailure, metrics);
                last = (503, ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
                let on = retry_on::CONNECT_FAILURE
                    | retry_on::FIVE_XX
                    | retry_on::GATEWAY_ERROR
                    | retry_on::RESET;
                if retry.on & on != 0 {
                    continue;
                }
                break;
            }
        };
        let Some(req) = template.take() else {
            break;
        };
        let sent = conn.send(req);
        let result = match retry.per_try_timeout {
            Some(t) => Box::pin(tokio::time::timeout(t, sent)).await.ok(),
            None => Some(sent.await),
        };
        let replay = template.replayable() && attempt + 1 < tries;
        match result {
            None => {
                conn.discard();
                cluster.report(i, Outcome::Status(504), metrics);
                last = (504, ResponseFlags::UPSTREAM_REQUEST_TIMEOUT);
                if replay
                    && retry.on & (retry_on::FIVE_XX | retry_on::GATEWAY_ERROR | retry_on::RESET)
                        != 0
                {
                    continue;
                }
                break;
            }
            Some(Err(e)) => {
                conn.discard();
                tracing::debug!(cluster = %cluster.name, "upstream request failed: {e}");
                cluster.report(i, Outcome::ConnectFailure, metrics);
                last = (503, ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
                let on = retry_on::FIVE_XX
                    | retry_on::GATEWAY_ERROR
                    | retry_on::RESET
                    | retry_on::REFUSED_STREAM;
                if replay && retry.on & on != 0 {
                    continue;
                }
                break;
            }
            Some(Ok(resp)) => {
                let status = resp.status().as_u16();
                cluster.report(i, Outcome::Status(status), metrics);
                if replay && retry.retry_status(status, grpc_status(resp.headers())) {
                    drop(resp);
                    conn.discard();
                    continue;
                }
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers, false);
                if cluster.report_upstream {
                    parts.extensions.insert(crate::http::chain::UpstreamHost {
                        addr: ep.addr,
                        cluster: cluster.name.clone(),
                        identity: cluster.mtls_identity(i),
                    });
                }
                let body = RespBody::streaming(body)
                    .with_pooled(conn)
                    .with_guard(guard);
                return Forwarded {
                    response: Response::from_parts(parts, body),
                    labels,
                    flags: ResponseFlags::NONE,
                };
            }
        }
    }
    let mut flags = last.1;
    if retried {
        flags.insert(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
    }
    failed(cluster, labels, last.0, flags, grpc)
}
