//! Request telemetry beyond metrics: `x-request-id`, trace context propagation and generation
//! with sampling ([`trace`]), span export ([`zipkin`]) and access logs ([`access_log`]).
//!
//! On each side that has it, [`Telemetry::observe`] looks at a request before it is routed
//! (sets `x-request-id` when missing, makes this hop's span and writes it into the trace
//! headers for the next hop) and [`Observation::attach`] hands the response's metering a
//! closure that, when the response has ended, writes the access log line and queues the span.
//! Both outputs are queues drained by threads of their own: the request path never waits.

pub mod access_log;
pub mod trace;
pub mod zipkin;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderName, HeaderValue};
use mesh_proxy_config::{self as cfg, AccessLogEncoding, AccessLogMode};

use crate::http::body::RespBody;
use crate::http::chain::{ResponseDetails, UpstreamHost};
use crate::listener::ConnInfo;
use crate::metrics::{Metrics, RequestRecord};
use trace::SpanContext;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The process's telemetry outputs, kept across snapshots.
pub struct Sinks {
    pub log: access_log::Writer,
    pub spans: Arc<zipkin::Exporter>,
}

impl Sinks {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Sinks> {
        Arc::new(Sinks {
            log: access_log::Writer::new(metrics.clone()),
            spans: zipkin::Exporter::new(metrics),
        })
    }

    /// Puts a snapshot's collector settings in force.
    pub fn configure(&self, config: &cfg::ProxyConfig) {
        self.spans.configure(config.tracing.as_ref());
    }
}

/// One side's telemetry settings.
pub struct Telemetry {
    inbound: bool,
    /// Percentage of new traces sampled; `None`: tracing off.
    sampling: Option<f64>,
    log: Option<(AccessLogMode, AccessLogEncoding)>,
    sinks: Arc<Sinks>,
    /// Zipkin's `localEndpoint.serviceName`: Istio's `<canonical service>.<namespace>`.
    service_name: String,
}

/// A UUID version 4, as Envoy makes `x-request-id`.
pub fn uuid_v4() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let digits = trace::hex::<32>(u128::from_be_bytes(b));
    let mut s = String::with_capacity(36);
    for (i, &d) in digits.iter().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            s.push('-');
        }
        s.push(char::from(d));
    }
    s
}

fn roll(pct: f64) -> bool {
    pct >= 100.0 || (pct > 0.0 && fastrand::f64() * 100.0 < pct)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn header_text(h: &http::HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

impl Telemetry {
    /// `None` when this config has neither tracing nor access logs.
    pub fn new(
        config: &cfg::ProxyConfig,
        inbound: bool,
        sinks: Arc<Sinks>,
        local_service: &str,
    ) -> Option<Telemetry> {
        let sampling = config.tracing.as_ref().map(|t| t.sampling.unwrap_or(1.0));
        let log = config
            .access_log
            .as_ref()
            .filter(|a| a.mode != AccessLogMode::Off)
            .map(|a| (a.mode, a.encoding));
        if sampling.is_none() && log.is_none() {
            return None;
        }
        Some(Telemetry {
            inbound,
            sampling,
            log,
            sinks,
            service_name: local_service.to_owned(),
        })
    }

    pub fn observe(
        self: &Arc<Self>,
        req: &mut http::request::Parts,
        conn: &ConnInfo,
    ) -> Observation {
        let request_id = match req.headers.get(&X_REQUEST_ID) {
            Some(v) => v.to_str().ok().map(str::to_owned),
            None => {
                let id = uuid_v4();
                if let Ok(v) = HeaderValue::from_str(&id) {
                    req.headers.insert(X_REQUEST_ID.clone(), v);
                }
                Some(id)
            }
        };
        let span = self.sampling.map(|pct| {
            let incoming = trace::extract(&req.headers);
            let s = SpanContext {
                trace_id: incoming.map_or_else(trace::new_trace_id, |i| i.trace_id),
                span_id: trace::new_span_id(),
                parent_id: incoming.map(|i| i.span_id),
                sampled: incoming
                    .and_then(|i| i.sampled)
                    .unwrap_or_else(|| roll(pct)),
            };
            trace::inject(&mut req.headers, &s);
            s
        });
        let authority = req
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| header_text(&req.headers, header::HOST));
        Observation {
            telemetry: self.clone(),
            start_ms: now_ms(),
            span,
            method: req.method.as_str().to_owned(),
            path: req
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            protocol: match req.version {
                http::Version::HTTP_2 => "HTTP/2",
                http::Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            authority,
            user_agent: header_text(&req.headers, header::USER_AGENT),
            forwarded_for: header_text(&req.headers, &X_FORWARDED_FOR),
            request_id,
            local: conn.destination,
            remote: conn.peer,
            sni: conn.security.as_ref().and_then(|s| s.sni.clone()),
            peer_identity: conn.security.as_ref().and_then(|s| s.identity.clone()),
        }
    }
}

/// One opaque TCP connection that ended, for the access log.
pub struct TcpRecord<'a> {
    pub conn: &'a ConnInfo,
    pub upstream: Option<std::net::SocketAddr>,
    pub cluster: &'a str,
    pub upstream_identity: Option<&'a str>,
    pub flags: crate::metrics::ResponseFlags,
    /// Bytes from the client, and to it.
    pub received: u64,
    pub sent: u64,
    pub started: std::time::Instant,
    pub started_ms: u64,
}

impl Telemetry {
    /// Logs a finished TCP connection (Istio logs them with `"- - -"` for the request).
    pub fn log_tcp(&self, r: &TcpRecord<'_>) {
        let Some((mode, encoding)) = self.log else {
            return;
        };
        if mode == AccessLogMode::Errors && r.flags.is_empty() {
            return;
        }
        let mut flags = String::new();
        r.flags.write_to(&mut flags);
        let e = access_log::Entry {
            start_ms: r.started_ms,
            method: "-".into(),
            path: "-".into(),
            protocol: "-",
            response_code: 0,
            response_flags: flags,
            response_code_details: Some("-"),
            bytes_received: r.received,
            bytes_sent: r.sent,
            duration_ms: r.started.elapsed().as_millis() as u64,
            upstream_host: r.upstream.map(|a| a.to_string()),
            upstream_cluster: Some(r.cluster.to_owned()),
            downstream_local_address: access_log::Addr(r.conn.destination),
            downstream_remote_address: access_log::Addr(r.conn.peer),
            requested_server_name: r.conn.security.as_ref().and_then(|s| s.sni.clone()),
            downstream_peer_uri_san: r
                .conn
                .security
                .as_ref()
                .and_then(|s| s.identity.as_deref().map(str::to_owned)),
            upstream_peer_uri_san: r.upstream_identity.map(str::to_owned),
            ..access_log::Entry::default()
        };
        self.sinks.log.write(match encoding {
            AccessLogEncoding::Text => e.text(),
            AccessLogEncoding::Json => e.json(),
        });
    }
}

/// Unix milliseconds now, for a TCP connection's start.
pub fn unix_ms() -> u64 {
    now_ms()
}

/// What telemetry kept of a request until its response ends.
pub struct Observation {
    telemetry: Arc<Telemetry>,
    start_ms: u64,
    span: Option<SpanContext>,
    method: String,
    path: String,
    protocol: &'static str,
    authority: Option<String>,
    user_agent: Option<String>,
    forwarded_for: Option<String>,
    request_id: Option<String>,
    local: std::net::SocketAddr,
    remote: std::net::SocketAddr,
    sni: Option<String>,
    peer_identity: Option<Arc<str>>,
}

impl Observation {
    /// Hooks the rest into the response's end.
    pub fn attach(self, resp: &mut http::Response<RespBody>) {
        let upstream = resp.extensions().get::<UpstreamHost>().cloned();
        let details = resp.extensions().get::<ResponseDetails>().map(|d| d.0);
        match resp.body_mut().meter_mut() {
            Some(m) => {
                m.done = Some(Box::new(move |r: &RequestRecord| {
                    self.finish(r, upstream, details)
                }))
            }
            None => tracing::debug!("a response without metering: no access log or span"),
        }
    }

    /// Ends the request with its finished record, for a path that writes its answers itself
    /// (the HTTP/1.1 fast path) rather than through a metered body.
    pub fn complete(
        self,
        r: &RequestRecord,
        upstream: Option<UpstreamHost>,
        details: Option<&'static str>,
    ) {
        self.finish(r, upstream, details)
    }

    fn finish(
        self,
        r: &RequestRecord,
        upstream: Option<UpstreamHost>,
        details: Option<&'static str>,
    ) {
        let t = &self.telemetry;
        let mut flags = String::new();
        r.flags.write_to(&mut flags);
        if let (Some(s), true) = (&self.span, t.sinks.spans.is_exporting()) {
            if s.sampled {
                t.sinks
                    .spans
                    .submit(self.span(s, r, &flags, upstream.as_ref()));
            }
        }
        let Some((mode, encoding)) = t.log else {
            return;
        };
        if mode == AccessLogMode::Errors && r.response_code < 400 && r.flags.is_empty() {
            return;
        }
        let (upstream_host, upstream_cluster, upstream_identity) = match upstream {
            Some(u) => (
                Some(u.addr.to_string()),
                Some(u.cluster.to_string()),
                u.identity.map(|i| i.to_string()),
            ),
            None => (None, None, None),
        };
        let e = access_log::Entry {
            start_ms: self.start_ms,
            method: self.method,
            path: self.path,
            protocol: self.protocol,
            response_code: r.response_code,
            response_flags: flags,
            response_code_details: details,
            upstream_transport_failure_reason: None,
            bytes_received: r.request_bytes,
            bytes_sent: r.response_bytes,
            duration_ms: r.duration_ms as u64,
            x_forwarded_for: self.forwarded_for,
            user_agent: self.user_agent,
            request_id: self.request_id,
            authority: self.authority,
            upstream_host,
            upstream_cluster,
            downstream_local_address: access_log::Addr(self.local),
            downstream_remote_address: access_log::Addr(self.remote),
            requested_server_name: self.sni,
            route_name: None,
            downstream_peer_uri_san: self.peer_identity.map(|i| i.to_string()),
            upstream_peer_uri_san: upstream_identity,
            trace_id: self.span.map(|s| trace::hex_string::<32>(s.trace_id)),
        };
        t.sinks.log.write(match encoding {
            AccessLogEncoding::Text => e.text(),
            AccessLogEncoding::Json => e.json(),
        });
    }

    fn span(
        &self,
        s: &SpanContext,
        r: &RequestRecord,
        flags: &str,
        upstream: Option<&UpstreamHost>,
    ) -> zipkin::Span {
        let t = &self.telemetry;
        let mut tags = BTreeMap::new();
        tags.insert("component", "proxy".to_owned());
        tags.insert("http.method", self.method.clone());
        tags.insert(
            "http.url",
            format!(
                "http://{}{}",
                self.authority.as_deref().unwrap_or(""),
                self.path
            ),
        );
        tags.insert("http.protocol", self.protocol.to_owned());
        tags.insert("http.status_code", r.response_code.to_string());
        tags.insert("response_flags", flags.to_owned());
        tags.insert("request_size", r.request_bytes.to_string());
        tags.insert("response_size", r.response_bytes.to_string());
        tags.insert("peer.address", self.remote.ip().to_string());
        if let Some(id) = &self.request_id {
            tags.insert("guid:x-request-id", id.clone());
        }
        if let Some(ua) = &self.user_agent {
            tags.insert("user_agent", ua.clone());
        }
        if let Some(u) = upstream {
            tags.insert("upstream_cluster", u.cluster.to_string());
        }
        if r.response_code >= 500 {
            tags.insert("error", "true".to_owned());
        }
        let path = self.path.split('?').next().unwrap_or("/");
        let duration = (r.duration_ms * 1000.0) as u64;
        zipkin::Span {
            trace_id: format!("{:032x}", s.trace_id),
            id: format!("{:016x}", s.span_id),
            parent_id: s.parent_id.map(|p| format!("{p:016x}")),
            name: format!("{}{path}", self.authority.as_deref().unwrap_or("")),
            kind: if t.inbound { "SERVER" } else { "CLIENT" },
            timestamp: self.start_ms * 1000,
            duration: duration.max(1),
            local_endpoint: zipkin::Endpoint::of(Some(t.service_name.clone()), Some(self.local)),
            remote_endpoint: Some(zipkin::Endpoint::of(
                None,
                if t.inbound {
                    Some(self.remote)
                } else {
                    upstream.map(|u| u.addr)
                },
            )),
            tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }
}
