//! The request filter chains of the two sides. Authorization and rate limits are filters: each
//! sees the request before it is routed and may answer it locally, and sees the response on its
//! way back. Telemetry (request id, trace context, access log, span) is the chain's observer: it
//! may change the request's headers, and gets the finished request's record.
//!
//! Kept as a list of trait objects rather than a tower stack: the set is decided per snapshot
//! at run time (a pushed config can turn authorization on), and an empty chain costs nothing.

use std::sync::Arc;

use crate::filters::telemetry::{Observation, Telemetry};
use crate::http::body::RespBody;
use crate::listener::ConnInfo;
use crate::metrics::ResponseFlags;

/// A filter's own answer, and the response flags it sets.
pub struct LocalReply {
    pub response: http::Response<RespBody>,
    pub flags: ResponseFlags,
}

/// Why the proxy answered by itself, as Envoy's `%RESPONSE_CODE_DETAILS%` says it; carried in
/// the response's extensions for the access log.
#[derive(Debug, Clone, Copy)]
pub struct ResponseDetails(pub &'static str);

/// The endpoint that answered, its cluster and (over mTLS) its identity; carried in the
/// response's extensions for the access log and the span.
#[derive(Debug, Clone)]
pub struct UpstreamHost {
    pub addr: std::net::SocketAddr,
    pub cluster: Arc<str>,
    pub identity: Option<Arc<str>>,
}

static XFCC: http::HeaderName = http::HeaderName::from_static("x-forwarded-client-cert");

/// Istio's sidecar default (SANITIZE_SET): the header says who the mTLS peer is, or is absent.
fn forwarded_client_cert(req: &mut http::request::Parts, conn: &ConnInfo) {
    match conn
        .security
        .as_ref()
        .and_then(|s| s.forwarded_client_cert.clone())
    {
        Some(v) => {
            req.headers.insert(XFCC.clone(), v);
        }
        None => {
            req.headers.remove(&XFCC);
        }
    }
}

pub trait Filter: Send + Sync {
    /// A short name for logs and the config dump.
    fn name(&self) -> &'static str;
    /// Runs before routing; `Some` answers the request without going upstream.
    fn on_request(&self, req: &http::request::Parts, conn: &ConnInfo) -> Option<LocalReply>;
    /// Runs on every response of the side, local answers included.
    fn on_response(&self, _resp: &mut http::response::Parts, _conn: &ConnInfo) {}
}

#[derive(Clone, Default)]
pub struct Chain {
    filters: Vec<Arc<dyn Filter>>,
    telemetry: Option<Arc<Telemetry>>,
    /// The inbound side: `x-forwarded-client-cert` is set from the mTLS peer, and removed
    /// from plaintext requests (a client must not claim an identity it did not prove).
    inbound: bool,
}

impl Chain {
    pub fn new(
        filters: Vec<Arc<dyn Filter>>,
        telemetry: Option<Arc<Telemetry>>,
        inbound: bool,
    ) -> Chain {
        Chain {
            filters,
            telemetry,
            inbound,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty() && self.telemetry.is_none()
    }

    /// The inbound side's chain (which sets `x-forwarded-client-cert`).
    pub fn is_inbound(&self) -> bool {
        self.inbound
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.filters.iter().map(|f| f.name()).collect();
        if self.telemetry.is_some() {
            names.push("telemetry");
        }
        names
    }

    /// Telemetry's look at the request before anything else: request id and trace headers
    /// are set here, so that they go upstream. `None` when telemetry is off.
    pub fn observe(&self, req: &mut http::request::Parts, conn: &ConnInfo) -> Option<Observation> {
        if self.inbound {
            forwarded_client_cert(req, conn);
        }
        self.telemetry.as_ref().map(|t| t.observe(req, conn))
    }

    /// The side's telemetry, when on (TCP connections log through it).
    pub fn telemetry(&self) -> Option<&Arc<Telemetry>> {
        self.telemetry.as_ref()
    }

    pub fn on_request(&self, req: &http::request::Parts, conn: &ConnInfo) -> Option<LocalReply> {
        self.filters.iter().find_map(|f| f.on_request(req, conn))
    }

    pub fn on_response(
        &self,
        resp: http::Response<RespBody>,
        conn: &ConnInfo,
    ) -> http::Response<RespBody> {
        if self.filters.is_empty() {
            return resp;
        }
        let (mut parts, body) = resp.into_parts();
        for f in &self.filters {
            f.on_response(&mut parts, conn);
        }
        http::Response::from_parts(parts, body)
    }
}
