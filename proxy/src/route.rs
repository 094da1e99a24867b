//! VirtualService routes compiled for matching: host lookup, then the first route whose match
//! conditions hold. Everything that can be decided from the config alone (regexes, header names,
//! source labels) is decided here, once per snapshot.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use mesh_proxy_config as cfg;
use regex::Regex;

/// A compiled `StringMatch`.
#[derive(Debug)]
pub enum StrMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    Present,
}

impl StrMatch {
    pub fn compile(m: &cfg::StringMatch, ignore_case: bool) -> StrMatch {
        let fold = |s: &str| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        };
        match m {
            cfg::StringMatch::Exact(s) => StrMatch::Exact(fold(s)),
            cfg::StringMatch::Prefix(s) => StrMatch::Prefix(fold(s)),
            cfg::StringMatch::Regex(r) => {
                let p = if ignore_case {
                    format!("(?i){}", r.anchored())
                } else {
                    r.anchored()
                };
                // The config crate compiled the same pattern already.
                StrMatch::Regex(Regex::new(&p).unwrap_or_else(|_| never_matches()))
            }
            cfg::StringMatch::Present => StrMatch::Present,
        }
    }

    /// Whether `v` (None: absent) matches; `ignore_case` folds `v` as it folded the pattern.
    pub fn matches(&self, v: Option<&str>, ignore_case: bool) -> bool {
        let Some(v) = v else {
            return false;
        };
        let eq = |a: &str, b: &str| {
            if ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match self {
            StrMatch::Exact(s) => eq(v, s),
            StrMatch::Prefix(p) => {
                v.len() >= p.len() && v.is_char_boundary(p.len()) && eq(&v[..p.len()], p)
            }
            StrMatch::Regex(r) => r.is_match(v),
            StrMatch::Present => true,
        }
    }
}

fn never_matches() -> Regex {
    // `[^\s\S]` matches no character at all.
    Regex::new(r"[^\s\S]").expect("constant regex")
}

/// What a route match looks at, borrowed from the request.
pub struct RequestView<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
    pub headers: &'a http::HeaderMap,
    pub port: u16,
    pub gateway: Option<&'a str>,
}

#[derive(Debug)]
pub struct Match {
    uri: Option<StrMatch>,
    scheme: Option<StrMatch>,
    method: Option<StrMatch>,
    authority: Option<StrMatch>,
    headers: Vec<(HeaderName, StrMatch)>,
    without_headers: Vec<(HeaderName, StrMatch)>,
    query: Vec<(String, StrMatch)>,
    port: Option<u16>,
    gateways: Vec<String>,
    ignore_uri_case: bool,
}

impl Match {
    fn compile(m: &cfg::HttpMatchRequest) -> Match {
        let hdrs = |map: &std::collections::BTreeMap<String, cfg::StringMatch>| {
            map.iter()
                .filter_map(|(k, v)| {
                    let name = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).ok()?;
                    Some((name, StrMatch::compile(v, false)))
                })
                .collect()
        };
        Match {
            uri: m
                .uri
                .as_ref()
                .map(|u| StrMatch::compile(u, m.ignore_uri_case)),
            scheme: m.scheme.as_ref().map(|s| StrMatch::compile(s, false)),
            method: m.method.as_ref().map(|s| StrMatch::compile(s, false)),
            authority: m.authority.as_ref().map(|s| StrMatch::compile(s, false)),
            headers: hdrs(&m.headers),
            without_headers: hdrs(&m.without_headers),
            query: m
                .query_params
                .iter()
                .map(|(k, v)| (k.clone(), StrMatch::compile(v, false)))
                .collect(),
            port: m.port,
            gateways: m.gateways.clone(),
            ignore_uri_case: m.ignore_uri_case,
        }
    }

    pub fn matches(&self, r: &RequestView<'_>) -> bool {
        if let Some(p) = self.port {
            if p != r.port {
                return false;
            }
        }
        if !self.gateways.is_empty() {
            let g = r.gateway.unwrap_or("mesh");
            if !self.gateways.iter().any(|x| x == g) {
                return false;
            }
        }
        if let Some(m) = &self.uri {
            if !m.matches(Some(r.path), self.ignore_uri_case) {
                return false;
            }
        }
        if let Some(m) = &self.method {
            if !m.matches(Some(r.method), false) {
                return false;
            }
        }
        if let Some(m) = &self.authority {
            if !m.matches(Some(r.authority), false) {
                return false;
            }
        }
        if let Some(m) = &self.scheme {
            if !m.matches(Some(r.scheme), false) {
                return false;
            }
        }
        for (name, m) in &self.headers {
            let v = r.headers.get(name).and_then(|v| v.to_str().ok());
            if !m.matches(v, false) {
                return false;
            }
        }
        for (name, m) in &self.without_headers {
            let v = r.headers.get(name).and_then(|v| v.to_str().ok());
            if m.matches(v, false) {
                return false;
            }
        }
        for (name, m) in &self.query {
            if !m.matches(query_param(r.query, name), false) {
                return false;
            }
        }
        true
    }

    /// The part of the path a `prefix` / `exact` uri match covered (for `rewrite.uri`).
    pub fn matched_prefix_len(&self, path: &str) -> usize {
        match &self.uri {
            Some(StrMatch::Prefix(p)) => p.len(),
            Some(StrMatch::Exact(_)) => path.len(),
            _ => 0,
        }
    }

    /// Whether the match looks at request headers.
    pub fn uses_headers(&self) -> bool {
        !self.headers.is_empty() || !self.without_headers.is_empty()
    }

    pub fn has_uri_match(&self) -> bool {
        matches!(
            self.uri,
            Some(StrMatch::Prefix(_)) | Some(StrMatch::Exact(_))
        )
    }
}

/// The first value of query parameter `name` (not percent-decoded).
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// Where a route sends traffic, before the port is known.
#[derive(Debug, Clone)]
pub struct DestRef {
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<u16>,
}

impl DestRef {
    pub fn from(d: &cfg::Destination) -> DestRef {
        DestRef {
            host: d.host.clone(),
            subset: d.subset.clone(),
            port: d.port.map(|p| p.number),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct HeaderOps {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderOps {
    pub fn compile(ops: Option<&cfg::HeaderOperations>) -> HeaderOps {
        let Some(ops) = ops else {
            return HeaderOps::default();
        };
        let pairs = |m: &std::collections::BTreeMap<String, String>| {
            m.iter()
                .filter_map(|(k, v)| {
                    let name = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes());
                    let value = HeaderValue::from_str(v);
                    match (name, value) {
                        (Ok(n), Ok(v)) => Some((n, v)),
                        _ => {
                            tracing::warn!(header = %k, "skipping an invalid header operation");
                            None
                        }
                    }
                })
                .collect()
        };
        HeaderOps {
            set: pairs(&ops.set),
            add: pairs(&ops.add),
            remove: ops
                .remove
                .iter()
                .filter_map(|k| HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).ok())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    pub fn apply(&self, h: &mut http::HeaderMap) {
        for n in &self.remove {
            h.remove(n);
        }
        for (n, v) in &self.set {
            h.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            h.append(n.clone(), v.clone());
        }
    }
}

#[derive(Debug)]
pub struct WeightedDest {
    pub dest: DestRef,
    pub weight: u32,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
}

#[derive(Debug)]
pub struct Redirect {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub port: Option<u16>,
    pub derive_port: Option<cfg::DerivePort>,
    pub scheme: Option<String>,
    pub code: u16,
}

#[derive(Debug)]
pub enum Action {
    Route {
        dests: Vec<WeightedDest>,
        total_weight: u32,
    },
    Redirect(Redirect),
    Direct {
        status: u16,
        body: Bytes,
    },
}

/// `retryOn` kinds as bits.
pub mod retry_on {
    pub const FIVE_XX: u32 = 1;
    pub const GATEWAY_ERROR: u32 = 1 << 1;
    pub const RESET: u32 = 1 << 2;
    pub const CONNECT_FAILURE: u32 = 1 << 3;
    pub const REFUSED_STREAM: u32 = 1 << 4;
    pub const RETRIABLE_4XX: u32 = 1 << 5;
    pub const RETRIABLE_STATUS_CODES: u32 = 1 << 6;
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub on: u32,
    pub status_codes: Vec<u16>,
    /// gRPC status codes retried (from the response headers).
    pub grpc_codes: Vec<u8>,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// Without `retries`: connection failures are retried twice (they are retried before the
    /// request is sent, so this needs no copy of it).
    pub fn default_policy() -> RetryPolicy {
        RetryPolicy {
            retries: 2,
            per_try_timeout: None,
            on: retry_on::CONNECT_FAILURE | retry_on::REFUSED_STREAM,
            status_codes: Vec::new(),
            grpc_codes: Vec::new(),
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
        }
    }

    fn compile(r: &cfg::HttpRetry) -> RetryPolicy {
        let mut p = RetryPolicy {
            retries: r.attempts,
            per_try_timeout: r.per_try_timeout.map(|d| d.get()),
            on: 0,
            status_codes: Vec::new(),
            grpc_codes: Vec::new(),
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
        };
        let on = r
            .retry_on
            .as_deref()
            .unwrap_or("connect-failure,refused-stream,unavailable,cancelled,503");
        for kind in on.split(',').map(str::trim) {
            use retry_on::*;
            match kind {
                "5xx" => p.on |= FIVE_XX,
                "gateway-error" => p.on |= GATEWAY_ERROR,
                "reset" => p.on |= RESET,
                "connect-failure" => p.on |= CONNECT_FAILURE,
                "refused-stream" => p.on |= REFUSED_STREAM,
                "retriable-4xx" => p.on |= RETRIABLE_4XX,
                "retriable-status-codes" => p.on |= RETRIABLE_STATUS_CODES,
                "cancelled" => p.grpc_codes.push(1),
                "deadline-exceeded" => p.grpc_codes.push(4),
                "resource-exhausted" => p.grpc_codes.push(8),
                "internal" => p.grpc_codes.push(13),
                "unavailable" => p.grpc_codes.push(14),
                other => {
                    if let Ok(code) = other.parse::<u16>() {
                        p.status_codes.push(code);
                        p.on |= RETRIABLE_STATUS_CODES;
                    }
                }
            }
        }
        if let Some(b) = &r.backoff {
            if let Some(base) = b.base_interval {
                p.base = base.get();
                p.max = base.get() * 10;
            }
            if let Some(max) = b.max_interval {
                p.max = max.get();
            }
        }
        p
    }

    /// Whether responses (not just connection failures) may be retried, which means the
    /// request must be kept for another try.
    pub fn retries_responses(&self) -> bool {
        use retry_on::*;
        self.retries > 0
            && (self.on
                & (FIVE_XX | GATEWAY_ERROR | RESET | RETRIABLE_4XX | RETRIABLE_STATUS_CODES)
                != 0
                || !self.grpc_codes.is_empty())
    }

    /// Whether a response with this status (and gRPC status) should be retried.
    pub fn retry_status(&self, status: u16, grpc: Option<u8>) -> bool {
        use retry_on::*;
        (self.on & FIVE_XX != 0 && status >= 500)
            || (self.on & GATEWAY_ERROR != 0 && matches!(status, 502..=504))
            || (self.on & RETRIABLE_4XX != 0 && status == 409)
            || (self.on & RETRIABLE_STATUS_CODES != 0 && self.status_codes.contains(&status))
            || grpc.is_some_and(|g| self.grpc_codes.contains(&g))
    }

    /// The wait before retry number `n` (0-based): random in [0, min(base·2ⁿ, max)).
    pub fn backoff(&self, n: u32) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
            .min(self.max);
        let nanos = cap.as_nanos() as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(fastrand::u64(..nanos))
    }
}

#[derive(Debug)]
pub struct Fault {
    pub delay: Option<(Duration, f64)>,
    /// HTTP status or gRPC status, and the share of requests.
    pub abort: Option<(FaultAbort, f64)>,
}

#[derive(Debug, Clone, Copy)]
pub enum FaultAbort {
    Http(u16),
    Grpc(u32),
}

#[derive(Debug)]
pub struct Cors {
    pub origins: Vec<StrMatch>,
    pub methods: Option<HeaderValue>,
    pub headers: Option<HeaderValue>,
    pub expose: Option<HeaderValue>,
    pub max_age: Option<HeaderValue>,
    pub credentials: bool,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub matches: Vec<Match>,
    pub action: Action,
    pub rewrite_uri: Option<String>,
    pub rewrite_regex: Option<(Regex, String)>,
    pub rewrite_authority: Option<HeaderValue>,
    pub timeout: Option<Duration>,
    pub retry: RetryPolicy,
    pub fault: Option<Fault>,
    pub mirrors: Vec<(DestRef, f64)>,
    pub cors: Option<Cors>,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    /// The route's local rate limit (`localRateLimit`).
    pub rate_limit: Option<std::sync::Arc<crate::filters::rate_limit::TokenBucket>>,
}

/// The routes of one set of host names.
#[derive(Debug)]
pub struct VirtualHost {
    pub name: String,
    pub routes: Vec<Route>,
    /// For a service's default host: where its shared catch-all route goes.
    pub default: Option<WeightedDest>,
}

/// The catch-all route of services without a VirtualService: Istio's defaults, no match.
pub fn default_route() -> &'static Route {
    static ROUTE: std::sync::OnceLock<Route> = std::sync::OnceLock::new();
    ROUTE.get_or_init(|| Route {
        name: "default".into(),
        matches: Vec::new(),
        action: Action::Route {
            dests: Vec::new(),
            total_weight: 0,
        },
        rewrite_uri: None,
        rewrite_regex: None,
        rewrite_authority: None,
        timeout: None,
        retry: RetryPolicy::default_policy(),
        fault: None,
        mirrors: Vec::new(),
        cors: None,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
        rate_limit: None,
    })
}

impl VirtualHost {
    /// The first matching route and the index of the match that selected it.
    pub fn find(&self, r: &RequestView<'_>) -> Option<(&Route, Option<&Match>)> {
        if self.default.is_some() {
            return Some((default_route(), None));
        }
        for route in &self.routes {
            if route.matches.is_empty() {
                return Some((route, None));
            }
            if let Some(m) = route.matches.iter().find(|m| m.matches(r)) {
                return Some((route, Some(m)));
            }
        }
        None
    }

    /// A virtual host with one catch-all route to `dest` (a service no VirtualService claims).
    /// The route is shared by all such hosts; only the destination is theirs.
    pub fn default_for(name: String, dest: DestRef) -> VirtualHost {
        VirtualHost {
            name,
            routes: Vec::new(),
            default: Some(WeightedDest {
                dest,
                weight: 1,
                request_headers: HeaderOps::default(),
                response_headers: HeaderOps::default(),
            }),
        }
    }

    /// Compiles a VirtualService's HTTP routes; routes whose every match names source labels
    /// or a source namespace this node does not have are left out.
    pub fn compile(vs: &cfg::VirtualService, node: &cfg::Node) -> VirtualHost {
        let name = if vs.name.is_empty() {
            vs.hosts.join(",")
        } else {
            format!("{}/{}", vs.namespace, vs.name)
        };
        let mut routes = Vec::new();
        for (i, r) in vs.http.iter().enumerate() {
            let applicable: Vec<&cfg::HttpMatchRequest> = r
                .matches
                .iter()
                .filter(|m| source_matches(&m.source_labels, m.source_namespace.as_deref(), node))
                .collect();
            if !r.matches.is_empty() && applicable.is_empty() {
                continue;
            }
            routes.push(compile_route(r, i, applicable, &name));
        }
        // Kept for the snapshot's life; a pushed-to Vec has room for four routes.
        routes.shrink_to_fit();
        VirtualHost {
            name,
            routes,
            default: None,
        }
    }
}

/// Whether this node has the `sourceLabels` and `sourceNamespace` a match asks for.
pub fn source_matches(
    labels: &std::collections::BTreeMap<String, String>,
    namespace: Option<&str>,
    node: &cfg::Node,
) -> bool {
    labels.iter().all(|(k, v)| node.labels.get(k) == Some(v))
        && namespace.is_none_or(|ns| node.namespace.as_deref() == Some(ns))
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

fn pct(p: Option<cfg::Percent>) -> f64 {
    p.map_or(100.0, |p| p.value)
}

fn compile_route(
    r: &cfg::HttpRoute,
    i: usize,
    matches: Vec<&cfg::HttpMatchRequest>,
    virtual_host: &str,
) -> Route {
    let action = if let Some(d) = &r.direct_response {
        Action::Direct {
            status: d.status,
            body: d
                .body
                .as_ref()
                .map(|b| Bytes::from(b.string.clone()))
                .unwrap_or_default(),
        }
    } else if let Some(rd) = &r.redirect {
        Action::Redirect(Redirect {
            uri: rd.uri.clone(),
            authority: rd.authority.clone(),
            port: rd.port,
            derive_port: rd.derive_port,
            scheme: rd.scheme.clone(),
            code: rd.redirect_code.unwrap_or(301),
        })
    } else {
        let single = r.route.len() == 1;
        let dests: Vec<WeightedDest> = r
            .route
            .iter()
            .map(|d| WeightedDest {
                dest: DestRef::from(&d.destination),
                weight: if single {
                    d.weight.unwrap_or(100).max(1)
                } else {
                    d.weight.unwrap_or(0)
                },
                request_headers: HeaderOps::compile(
                    d.headers.as_ref().and_then(|h| h.request.as_ref()),
                ),
                response_headers: HeaderOps::compile(
                    d.headers.as_ref().and_then(|h| h.response.as_ref()),
                ),
            })
            .collect();
        let total_weight = dests.iter().map(|d| d.weight).sum();
        Action::Route {
            dests,
            total_weight,
        }
    };
    let mut mirrors: Vec<(DestRef, f64)> = Vec::new();
    if let Some(m) = &r.mirror {
        mirrors.push((DestRef::from(m), pct(r.mirror_percentage)));
    }
    for m in &r.mirrors {
        mirrors.push((DestRef::from(&m.destination), pct(m.percentage)));
    }
    let fault = r.fault.as_ref().map(|f| Fault {
        delay: f
            .delay
            .as_ref()
            .map(|d| (d.fixed_delay.get(), pct(d.percentage))),
        abort: f.abort.as_ref().and_then(|a| {
            let kind = match (a.http_status, &a.grpc_status) {
                (Some(s), _) => FaultAbort::Http(s),
                (None, Some(g)) => FaultAbort::Grpc(cfg::grpc_code(g)?),
                (None, None) => return None,
            };
            Some((kind, pct(a.percentage)))
        }),
    });
    let cors = r.cors_policy.as_ref().map(|c| Cors {
        origins: c
            .allow_origins
            .iter()
            .map(|o| StrMatch::compile(o, false))
            .collect(),
        methods: (!c.allow_methods.is_empty())
            .then(|| c.allow_methods.join(","))
            .and_then(|s| header_value(&s)),
        headers: (!c.allow_headers.is_empty())
            .then(|| c.allow_headers.join(","))
            .and_then(|s| header_value(&s)),
        expose: (!c.expose_headers.is_empty())
            .then(|| c.expose_headers.join(","))
            .and_then(|s| header_value(&s)),
        max_age: c
            .max_age
            .and_then(|d| header_value(&d.get().as_secs().to_string())),
        credentials: c.allow_credentials == Some(true),
    });
    let rate_limit = r.local_rate_limit.as_ref().map(|b| {
        crate::filters::rate_limit::TokenBucket::shared(&format!("route {virtual_host} {i}"), b)
    });
    Route {
        name: if r.name.is_empty() {
            format!("http[{i}]")
        } else {
            r.name.clone()
        },
        matches: matches.into_iter().map(Match::compile).collect(),
        action,
        rewrite_uri: r.rewrite.as_ref().and_then(|w| w.uri.clone()),
        rewrite_regex: r
            .rewrite
            .as_ref()
            .and_then(|w| w.uri_regex_rewrite.as_ref())
            .and_then(|rr| {
                let re = Regex::new(rr.pattern.as_str()).ok()?;
                Some((re, istio_rewrite_to_regex_replacement(&rr.rewrite)))
            }),
        rewrite_authority: r
            .rewrite
            .as_ref()
            .and_then(|w| w.authority.as_deref())
            .and_then(header_value),
        timeout: r.timeout.map(|d| d.get()).filter(|d| !d.is_zero()),
        retry: r
            .retries
            .as_ref()
            .map_or_else(RetryPolicy::default_policy, RetryPolicy::compile),
        fault,
        mirrors,
        cors,
        request_headers: HeaderOps::compile(r.headers.as_ref().and_then(|h| h.request.as_ref())),
        response_headers: HeaderOps::compile(r.headers.as_ref().and_then(|h| h.response.as_ref())),
        rate_limit,
    }
}

/// Istio writes capture groups as `\1`; the regex crate as `${1}` (and a literal `$` as `$$`).
fn istio_rewrite_to_regex_replacement(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                out.push_str("${");
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    out.push(*d);
                    chars.next();
                }
                out.push('}');
            }
            c => out.push(c),
        }
    }
    out
}

/// Host name → virtual host, for one port (or one gateway).
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: rustc_hash::FxHashMap<String, Arc<VirtualHost>>,
    /// `*.example.com` as `.example.com`, longest first.
    suffixes: Vec<(String, Arc<VirtualHost>)>,
    any: Option<Arc<VirtualHost>>,
}

impl RouteTable {
    /// Adds a host name; the first to claim a name keeps it.
    pub fn insert(&mut self, host: &str, vh: &Arc<VirtualHost>) {
        let host = host.to_ascii_lowercase();
        if host == "*" {
            self.any.get_or_insert_with(|| vh.clone());
        } else if let Some(suffix) = host.strip_prefix('*') {
            if !self.suffixes.iter().any(|(s, _)| s == suffix) {
                self.suffixes.push((suffix.to_owned(), vh.clone()));
                self.suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
            }
        } else {
            self.exact.entry(host).or_insert_with(|| vh.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty() && self.any.is_none()
    }

    /// The virtual host for a `Host` / `:authority` value (its port is ignored).
    pub fn lookup(&self, authority: &str) -> Option<&Arc<VirtualHost>> {
        let host = lower_host(authority);
        self.exact(&host).or_else(|| self.wildcard(&host))
    }

    /// The virtual host claiming exactly this name (lower case, no port).
    pub fn exact(&self, host: &str) -> Option<&Arc<VirtualHost>> {
        self.exact.get(host)
    }

    /// The virtual host of the longest `*.suffix` matching this name (lower case, no port),
    /// or of `*`.
    pub fn wildcard(&self, host: &str) -> Option<&Arc<VirtualHost>> {
        self.suffixes
            .iter()
            .find(|(s, _)| host.ends_with(s.as_str()))
            .map(|(_, v)| v)
            .or(self.any.as_ref())
    }

    /// Done inserting: drop the spare room of growth.
    pub fn finish(&mut self) {
        self.exact.shrink_to_fit();
        self.suffixes.shrink_to_fit();
    }
}

/// The host of a `Host` / `:authority` value, lower case, without its port; borrowed when it
/// already is lower case, as it almost always is.
pub fn lower_host(authority: &str) -> std::borrow::Cow<'_, str> {
    lowercase(strip_port(authority))
}

/// `s` in ASCII lower case, copied only when it has an upper-case letter.
pub fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// `host:port` → `host`, leaving IPv6 literals (`[::1]:80` → `[::1]`) intact.
pub fn strip_port(authority: &str) -> &str {
    if let Some(end) = authority
        .strip_prefix('[')
        .and_then(|_| authority.find(']'))
    {
        return &authority[..=end];
    }
    // By bytes: this runs for every request, and a char-wise reverse search costs more.
    let b = authority.as_bytes();
    match b.iter().rposition(|&c| c == b':') {
        Some(i) if b[i + 1..].iter().all(u8::is_ascii_digit) => &authority[..i],
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_strips_port_and_folds_case() {
        let vh = Arc::new(VirtualHost {
            name: "a".into(),
            routes: vec![],
            default: None,
        });
        let mut t = RouteTable::default();
        t.insert("Reviews.default", &vh);
        t.insert("*.example.com", &vh);
        assert!(t.lookup("reviews.default:9080").is_some());
        assert!(t.lookup("REVIEWS.default").is_some());
        assert!(t.lookup("a.b.example.com").is_some());
        assert!(t.lookup("example.com").is_none());
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RetryPolicy::default_policy();
        for n in 0..10 {
            let b = p.backoff(n);
            assert!(b < p.max.min(p.base * 2u32.pow(n.min(20))) + Duration::from_nanos(1));
        }
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("a=1&b=2", "b"), Some("2"));
        assert_eq!(query_param("a=1&flag", "flag"), Some(""));
        assert_eq!(query_param("a=1", "c"), None);
    }
}
