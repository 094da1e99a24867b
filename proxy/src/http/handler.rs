//! One HTTP request, start to end: the side's filter chain, host and route lookup
//! (VirtualService meaning), CORS, fault injection, redirect / direct response, destination by
//! weight, rewrite, header changes, mirroring, forwarding with timeout and retries, and the
//! Istio metrics of it all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh_proxy_config::{InboundForward, OutboundMode};

use crate::cluster::policy::HashKey;
use crate::cluster::{Cluster, LbPolicy};
use crate::http::body::{grpc_status, Meter, ReqBody, RespBody};
use crate::http::forward::{self, Forwarded, Template};
use crate::http::{local, upgrade};
use crate::listener::{ConnInfo, Side};
use crate::metrics::{LabelSet, RequestProtocol, RequestRecord, ResponseFlags};
use crate::route::{self, Action, RequestView, RetryPolicy, Route};
use crate::snapshot::Snapshot;
use crate::store::Store;

/// Bodies up to this size are kept so that the request can be retried or mirrored; larger or
/// unsized ones stream through (and are tried once).
const REPLAY_LIMIT: u64 = 64 * 1024;

fn is_grpc(h: &http::HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

fn head_bytes(h: &http::HeaderMap) -> u64 {
    h.iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum()
}

/// Where inbound traffic for `dst` goes: the address it was sent to, or loopback.
pub fn inbound_target(snap: &Snapshot, dst: SocketAddr) -> SocketAddr {
    match snap.config.inbound.forward_to {
        InboundForward::OriginalDestination => dst,
        InboundForward::Loopback => SocketAddr::from(([127, 0, 0, 1], dst.port())),
    }
}

/// The request's authority (`:authority` or `Host`), holding the request's own bytes rather
/// than a copy.
#[derive(Clone)]
enum Authority {
    Uri(http::uri::Authority),
    Header(HeaderValue),
    None,
}

impl Authority {
    fn as_str(&self) -> &str {
        match self {
            Authority::Uri(a) => a.as_str(),
            Authority::Header(h) => h.to_str().unwrap_or(""),
            Authority::None => "",
        }
    }
}

impl std::ops::Deref for Authority {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

fn authority_of(parts: &http::request::Parts) -> Authority {
    if let Some(a) = parts.uri.authority() {
        return Authority::Uri(a.clone());
    }
    match parts.headers.get(header::HOST) {
        Some(h) => Authority::Header(h.clone()),
        None => Authority::None,
    }
}

struct Ctx<'a> {
    snap: &'a Arc<Snapshot>,
    info: &'a ConnInfo,
    grpc: bool,
    client_h2: bool,
}

pub async fn handle(
    req: Request<Incoming>,
    info: Arc<ConnInfo>,
    store: Arc<Store>,
) -> Response<RespBody> {
    let start = Instant::now();
    let Some(snap) = store.load() else {
        return local::reply(503, "no configuration loaded", false);
    };
    let grpc = is_grpc(req.headers());
    let client_h2 = req.version() == http::Version::HTTP_2;
    let request_bytes = head_bytes(req.headers())
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len()) as u64
        + req.body().size_hint().exact().unwrap_or(0);
    let ctx = Ctx {
        snap: &snap,
        info: &info,
        grpc,
        client_h2,
    };
    let inbound = info.side == Side::Inbound;
    let chain = snap.chain_for(&info.side);
    let (mut parts, body) = req.into_parts();
    let observation = chain.observe(&mut parts, &info);
    let f = match chain.on_request(&parts, &info) {
        Some(r) => Forwarded {
            response: r.response,
            labels: unknown_labels(&ctx),
            flags: r.flags,
        },
        None if inbound => inbound_request(&ctx, parts, body).await,
        None => outbound_request(&ctx, parts, body).await,
    };
    let Forwarded {
        mut response,
        labels,
        flags,
    } = f;
    let labels = info.request_labels(&labels, &snap.metrics);
    meter(&ctx, &mut response, labels, flags, start, request_bytes);
    if let Some(o) = observation {
        o.attach(&mut response);
    }
    chain.on_response(response, &info)
}

fn unknown_labels(ctx: &Ctx<'_>) -> Arc<LabelSet> {
    if ctx.info.side == Side::Inbound {
        ctx.snap.unknown_labels_inbound.clone()
    } else {
        ctx.snap.unknown_labels_outbound.clone()
    }
}

fn meter(
    ctx: &Ctx<'_>,
    resp: &mut Response<RespBody>,
    labels: Arc<LabelSet>,
    flags: ResponseFlags,
    start: Instant,
    request_bytes: u64,
) {
    let response_bytes = head_bytes(resp.headers());
    let grpc_status = if ctx.grpc {
        grpc_status(resp.headers())
    } else {
        None
    };
    let m = Meter {
        metrics: ctx.snap.metrics.clone(),
        labels,
        start,
        record: RequestRecord {
            protocol: if ctx.grpc {
                RequestProtocol::Grpc
            } else {
                RequestProtocol::Http
            },
            response_code: resp.status().as_u16(),
            grpc_status,
            flags,
            duration_ms: 0.0,
            request_bytes,
            response_bytes,
        },
        done: None,
    };
    resp.body_mut().set_meter(m);
}

fn local_error(
    ctx: &Ctx<'_>,
    status: u16,
    flags: ResponseFlags,
    labels: Arc<LabelSet>,
) -> Forwarded {
    Forwarded {
        response: local::reply(status, local::error_text(flags), ctx.grpc),
        labels,
        flags,
    }
}

async fn inbound_request(ctx: &Ctx<'_>, parts: http::request::Parts, body: Incoming) -> Forwarded {
    let target = inbound_target(ctx.snap, ctx.info.destination);
    let cluster = ctx.snap.dynamic_cluster(true, target);
    let authority = authority_of(&parts);
    send(
        ctx,
        &cluster,
        parts,
        body,
        &RetryPolicy::default_policy(),
        None,
        &authority,
        false,
    )
    .await
}

async fn outbound_request(
    ctx: &Ctx<'_>,
    mut parts: http::request::Parts,
    body: Incoming,
) -> Forwarded {
    let snap = ctx.snap;
    let port = ctx.info.destination.port();
    let authority = authority_of(&parts);
    let Some(vh) = snap.virtual_host(&ctx.info.side, port, &authority) else {
        if ctx.info.side == Side::Outbound {
            if snap.outbound_mode == OutboundMode::AllowAny {
                let cluster = snap.dynamic_cluster(false, ctx.info.destination);
                return send(
                    ctx,
                    &cluster,
                    parts,
                    body,
                    &RetryPolicy::default_policy(),
                    None,
                    &authority,
                    false,
                )
                .await;
            }
            // REGISTRY_ONLY: Istio's BlackHoleCluster answers 502.
            return local_error(ctx, 502, ResponseFlags::NO_ROUTE, unknown_labels(ctx));
        }
        return local_error(ctx, 404, ResponseFlags::NO_ROUTE, unknown_labels(ctx));
    };
    let (route, prefix_len, has_uri_match) = {
        let path = parts.uri.path();
        let view = RequestView {
            method: parts.method.as_str(),
            path,
            query: parts.uri.query().unwrap_or(""),
            authority: &authority,
            scheme: parts.uri.scheme_str().unwrap_or("http"),
            headers: &parts.headers,
            port,
            gateway: match &ctx.info.side {
                Side::Gateway(g) => Some(g.as_str()),
                _ => None,
            },
        };
        match vh.find(&view) {
            Some((r, m)) => (
                r,
                m.map_or(0, |m| m.matched_prefix_len(path)),
                m.is_some_and(|m| m.has_uri_match()),
            ),
            None => return local_error(ctx, 404, ResponseFlags::NO_ROUTE, unknown_labels(ctx)),
        }
    };

    if let Some(bucket) = &route.rate_limit {
        if let Some(r) = crate::filters::rate_limit::check_route(bucket, &snap.metrics, ctx.grpc) {
            return Forwarded {
                response: r.response,
                labels: unknown_labels(ctx),
                flags: r.flags,
            };
        }
    }

    // CORS: preflights of allowed origins are answered here.
    let origin = route
        .cors
        .as_ref()
        .and_then(|c| cors_origin(c, &parts.headers));
    if let (Some(cors), Some(origin)) = (&route.cors, &origin) {
        if parts.method == http::Method::OPTIONS
            && parts
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let mut r = local::direct(200, Bytes::new());
            cors_preflight_headers(cors, origin, r.headers_mut());
            return Forwarded {
                response: r,
                labels: unknown_labels(ctx),
                flags: ResponseFlags::NONE,
            };
        }
    }

    let mut flags = ResponseFlags::NONE;
    let (dests, total) = match &route.action {
        Action::Direct { status, body } => {
            let mut r = local::direct(*status, body.clone());
            route.response_headers.apply(r.headers_mut());
            return Forwarded {
                response: r,
                labels: unknown_labels(ctx),
                flags,
            };
        }
        Action::Redirect(rd) => {
            let location = redirect_location(rd, &parts, &authority, port);
            let mut r = local::redirect(rd.code, &location);
            route.response_headers.apply(r.headers_mut());
            return Forwarded {
                response: r,
                labels: unknown_labels(ctx),
                flags,
            };
        }
        Action::Route {
            dests,
            total_weight,
        } => (dests, *total_weight),
    };
    let wd = match &vh.default {
        Some(d) if dests.is_empty() => d,
        _ => pick_weighted(dests, total),
    };
    let Some(cluster) = snap.cluster_for(&wd.dest, port).cloned() else {
        return local_error(
            ctx,
            503,
            ResponseFlags::NO_CLUSTER_FOUND,
            unknown_labels(ctx),
        );
    };

    if let Some(fault) = &route.fault {
        if let Some((delay, pct)) = fault.delay {
            if roll(pct) {
                tokio::time::sleep(delay).await;
                flags.insert(ResponseFlags::DELAY_INJECTED);
            }
        }
        if let Some((abort, pct)) = fault.abort {
            if roll(pct) {
                flags.insert(ResponseFlags::FAULT_INJECTED);
                let response = match abort {
                    route::FaultAbort::Http(s) => {
                        local::reply(s, local::error_text(flags), ctx.grpc)
                    }
                    route::FaultAbort::Grpc(code) => local::grpc_reply(code, "fault filter abort"),
                };
                return Forwarded {
                    response,
                    labels: cluster.labels(),
                    flags,
                };
            }
        }
    }

    rewrite(route, &mut parts, prefix_len, has_uri_match);
    route.request_headers.apply(&mut parts.headers);
    wd.request_headers.apply(&mut parts.headers);
    let authority = if route.rewrite_authority.is_some() {
        authority_of(&parts)
    } else {
        authority
    };

    let (hash, set_cookie) = hash_for(&cluster, &parts, ctx.info);
    let replay = route.retry.retries_responses() || !route.mirrors.is_empty();
    let mut f = if upgrade::is_upgrade(&parts) {
        Box::pin(forward_upgrade(ctx, &cluster, parts, body, hash)).await
    } else {
        let template = match template(
            parts,
            body,
            replay,
            &authority,
            forward::upstream_h2(&cluster, ctx.client_h2),
        )
        .await
        {
            Ok(t) => t,
            Err(()) => {
                return local_error(
                    ctx,
                    400,
                    ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION,
                    cluster.labels(),
                );
            }
        };
        if let Template::Replay {
            method,
            uri,
            headers,
            body,
            ..
        } = &template
        {
            mirror(ctx, route, port, method, uri, headers, body);
        }
        let sent = forward::forward(
            &cluster,
            template,
            &route.retry,
            hash,
            forward::upstream_h2(&cluster, ctx.client_h2),
            ctx.grpc,
            &snap.metrics,
        );
        match route.timeout {
            // Boxed: only routes with a timeout pay for the timer and the bigger future.
            Some(t) => match Box::pin(tokio::time::timeout(t, sent)).await {
                Ok(f) => f,
                Err(_) => local_error(
                    ctx,
                    504,
                    ResponseFlags::UPSTREAM_REQUEST_TIMEOUT,
                    cluster.labels(),
                ),
            },
            None => sent.await,
        }
    };
    f.flags.insert(flags);
    let h = f.response.headers_mut();
    wd.response_headers.apply(h);
    route.response_headers.apply(h);
    if let (Some(cors), Some(origin)) = (&route.cors, &origin) {
        cors_response_headers(cors, origin, h);
    }
    if let Some(c) = set_cookie {
        h.append(header::SET_COOKIE, c);
    }
    f
}

/// Sends to a cluster with no route in between (inbound, passthrough).
#[allow(clippy::too_many_arguments)]
async fn send(
    ctx: &Ctx<'_>,
    cluster: &Arc<Cluster>,
    parts: http::request::Parts,
    body: Incoming,
    retry: &RetryPolicy,
    hash: Option<u64>,
    authority: &str,
    replay: bool,
) -> Forwarded {
    if upgrade::is_upgrade(&parts) {
        return Box::pin(forward_upgrade(ctx, cluster, parts, body, hash)).await;
    }
    let h2 = forward::upstream_h2(cluster, ctx.client_h2);
    let Ok(t) = template(parts, body, replay, authority, h2).await else {
        return local_error(
            ctx,
            400,
            ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION,
            cluster.labels(),
        );
    };
    forward::forward(cluster, t, retry, hash, h2, ctx.grpc, &ctx.snap.metrics).await
}

async fn forward_upgrade(
    ctx: &Ctx<'_>,
    cluster: &Arc<Cluster>,
    parts: http::request::Parts,
    body: Incoming,
    hash: Option<u64>,
) -> Forwarded {
    let mut req = Request::from_parts(parts, ReqBody::streaming(body));
    let on_upgrade = hyper::upgrade::on(&mut req);
    upgrade::forward(cluster, req, on_upgrade, hash, &ctx.snap.metrics).await
}

/// Makes the upstream request; with `replay`, reads a small body whole so it can be sent again.
async fn template(
    parts: http::request::Parts,
    body: Incoming,
    replay: bool,
    authority: &str,
    http2: bool,
) -> Result<Template, ()> {
    let small = body.is_end_stream() || body.size_hint().upper().is_some_and(|u| u <= REPLAY_LIMIT);
    if replay && small {
        let bytes = if body.is_end_stream() {
            Bytes::new()
        } else {
            body.collect().await.map_err(|_| ())?.to_bytes()
        };
        let mut req = Request::from_parts(parts, ReqBody::empty());
        forward::prepare(&mut req, authority, http2);
        let (p, _) = req.into_parts();
        return Ok(Template::Replay {
            method: p.method,
            uri: p.uri,
            version: p.version,
            headers: p.headers,
            body: bytes,
        });
    }
    let body = if body.is_end_stream() {
        ReqBody::empty()
    } else {
        ReqBody::streaming(body)
    };
    let mut req = Request::from_parts(parts, body);
    forward::prepare(&mut req, authority, http2);
    Ok(Template::Once(Some(req)))
}

fn roll(pct: f64) -> bool {
    pct >= 100.0 || (pct > 0.0 && fastrand::f64() * 100.0 < pct)
}

pub(crate) fn pick_weighted(dests: &[route::WeightedDest], total: u32) -> &route::WeightedDest {
    if dests.len() == 1 || total == 0 {
        return &dests[0];
    }
    let mut r = fastrand::u32(..total);
    for d in dests {
        if r < d.weight {
            return d;
        }
        r -= d.weight;
    }
    &dests[dests.len() - 1]
}

fn rewrite(
    route: &Route,
    parts: &mut http::request::Parts,
    prefix_len: usize,
    has_uri_match: bool,
) {
    let new_path = if let Some(uri) = &route.rewrite_uri {
        let path = parts.uri.path();
        let rest = if has_uri_match {
            path.get(prefix_len..).unwrap_or("")
        } else {
            ""
        };
        let mut p = String::with_capacity(uri.len() + rest.len());
        p.push_str(uri);
        // "/v1" + "/x" rewrites cleanly; "/" + "/x" must not become "//x".
        if p.ends_with('/') && rest.starts_with('/') {
            p.pop();
        }
        p.push_str(rest);
        Some(p)
    } else {
        route
            .rewrite_regex
            .as_ref()
            .map(|(re, with)| re.replace_all(parts.uri.path(), with.as_str()).into_owned())
    };
    if let Some(path) = new_path {
        let pq = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut b = http::Uri::builder();
        if let Some(s) = parts.uri.scheme() {
            b = b.scheme(s.clone());
        }
        if let Some(a) = parts.uri.authority() {
            b = b.authority(a.clone());
        }
        if let Ok(u) = b.path_and_query(pq).build() {
            parts.uri = u;
        }
    }
    if let Some(a) = &route.rewrite_authority {
        parts.headers.insert(header::HOST, a.clone());
        if parts.uri.authority().is_some() {
            let pq = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            if let Ok(u) = http::Uri::builder()
                .scheme(parts.uri.scheme_str().unwrap_or("http"))
                .authority(a.as_bytes())
                .path_and_query(pq)
                .build()
            {
                parts.uri = u;
            }
        }
    }
}

fn redirect_location(
    rd: &route::Redirect,
    parts: &http::request::Parts,
    authority: &str,
    port: u16,
) -> String {
    let scheme = rd
        .scheme
        .as_deref()
        .unwrap_or_else(|| parts.uri.scheme_str().unwrap_or("http"));
    let mut host = rd.authority.clone().unwrap_or_else(|| authority.to_owned());
    let explicit_port = match (rd.port, rd.derive_port) {
        (Some(p), _) => Some(p),
        (None, Some(mesh_proxy_config::DerivePort::FromRequestPort)) => Some(port),
        (None, Some(mesh_proxy_config::DerivePort::FromProtocolDefault)) => None,
        (None, None) => None,
    };
    if explicit_port.is_some() || rd.derive_port.is_some() || rd.authority.is_some() {
        host = route::strip_port(&host).to_owned();
    }
    if let Some(p) = explicit_port {
        let default = (scheme == "http" && p == 80) || (scheme == "https" && p == 443);
        if !default {
            host = format!("{host}:{p}");
        }
    }
    let path = match &rd.uri {
        Some(u) if u.contains('?') => u.clone(),
        Some(u) => match parts.uri.query() {
            Some(q) => format!("{u}?{q}"),
            None => u.clone(),
        },
        None => parts
            .uri
            .path_and_query()
            .map_or("/".into(), |p| p.as_str().to_owned()),
    };
    format!("{scheme}://{host}{path}")
}

fn cors_origin(cors: &route::Cors, h: &http::HeaderMap) -> Option<HeaderValue> {
    let origin = h.get(header::ORIGIN)?;
    let s = origin.to_str().ok()?;
    cors.origins
        .iter()
        .any(|m| m.matches(Some(s), false))
        .then(|| origin.clone())
}

fn cors_preflight_headers(cors: &route::Cors, origin: &HeaderValue, h: &mut http::HeaderMap) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if let Some(v) = &cors.methods {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
    }
    if let Some(v) = &cors.headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    if let Some(v) = &cors.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
    }
    if cors.credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

fn cors_response_headers(cors: &route::Cors, origin: &HeaderValue, h: &mut http::HeaderMap) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if let Some(v) = &cors.expose {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
    if cors.credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

fn cookie<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            line.split(';').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == name).then_some(v)
            })
        })
}

/// The consistent-hash key's hash, and a cookie to set when the policy makes one.
fn hash_for(
    cluster: &Cluster,
    parts: &http::request::Parts,
    info: &ConnInfo,
) -> (Option<u64>, Option<HeaderValue>) {
    use crate::cluster::lb::hash_key;
    let LbPolicy::ConsistentHash(key) = &cluster.policy.lb else {
        return (None, None);
    };
    match key {
        HashKey::Header(name) => (
            parts.headers.get(name).map(|v| hash_key(v.as_bytes())),
            None,
        ),
        HashKey::SourceIp => (Some(hash_key(info.peer.ip().to_string().as_bytes())), None),
        HashKey::QueryParameter(q) => (
            parts
                .uri
                .query()
                .and_then(|s| route::query_param(s, q))
                .map(|v| hash_key(v.as_bytes())),
            None,
        ),
        HashKey::Cookie { name, path, ttl } => match cookie(&parts.headers, name) {
            Some(v) => (Some(hash_key(v.as_bytes())), None),
            None => match ttl {
                Some(ttl) => {
                    let value = format!("{:016x}", fastrand::u64(..));
                    let mut c = format!("{name}={value}; Max-Age={}", ttl.as_secs());
                    if let Some(p) = path {
                        c.push_str("; Path=");
                        c.push_str(p);
                    }
                    c.push_str("; HttpOnly");
                    (
                        Some(hash_key(value.as_bytes())),
                        HeaderValue::from_str(&c).ok(),
                    )
                }
                None => (None, None),
            },
        },
    }
}

/// Sends copies to the route's mirrors (by their percentage); answers are dropped.
fn mirror(
    ctx: &Ctx<'_>,
    route: &Route,
    port: u16,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: &Bytes,
) {
    for (dest, pct) in &route.mirrors {
        if !roll(*pct) {
            continue;
        }
        let Some(cluster) = ctx.snap.cluster_for(dest, port).cloned() else {
            continue;
        };
        let mut req = Request::new(ReqBody::full(body.clone()));
        *req.method_mut() = method.clone();
        *req.headers_mut() = headers.clone();
        // Istio marks mirrored traffic by a `-shadow` suffix on the host.
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let shadow = match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => format!("{h}-shadow:{p}"),
            _ => format!("{host}-shadow"),
        };
        *req.uri_mut() = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .unwrap_or_default();
        req.headers_mut().remove(header::HOST);
        let h2 = forward::upstream_h2(&cluster, ctx.client_h2);
        forward::prepare(&mut req, &shadow, h2);
        let metrics = ctx.snap.metrics.clone();
        crate::metrics::Metrics::inc(&metrics.server.mirrored_requests_total);
        tokio::spawn(async move {
            let f = forward::forward(
                &cluster,
                Template::Once(Some(req)),
                &RetryPolicy {
                    retries: 0,
                    ..RetryPolicy::default_policy()
                },
                None,
                h2,
                false,
                &metrics,
            )
            .await;
            // Read the answer to its end so the connection goes back to the pool.
            let _ = f.response.into_body().collect().await;
        });
    }
}
