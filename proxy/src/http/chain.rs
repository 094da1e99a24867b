//! The request filter chains of the two sides. Security (authorization, rate limits) and
//! telemetry (access logs, tracing) plug in here as filters: each sees the request before it
//! is routed and may answer it locally, and sees the response on its way back.
//!
//! Kept as a list of trait objects rather than a tower stack: the set is decided per snapshot
//! at run time (a pushed config can turn authorization on), and an empty chain costs nothing.

use std::sync::Arc;

use crate::http::body::RespBody;
use crate::listener::ConnInfo;

pub trait Filter: Send + Sync {
    /// A short name for logs and the config dump.
    fn name(&self) -> &'static str;
    /// Runs before routing; `Some` answers the request without going upstream.
    fn on_request(
        &self,
        req: &http::request::Parts,
        conn: &ConnInfo,
    ) -> Option<http::Response<RespBody>>;
    /// Runs on every response of the side, local answers included.
    fn on_response(&self, _resp: &mut http::response::Parts, _conn: &ConnInfo) {}
}

#[derive(Clone, Default)]
pub struct Chain {
    filters: Vec<Arc<dyn Filter>>,
}

impl Chain {
    pub fn new(filters: Vec<Arc<dyn Filter>>) -> Chain {
        Chain { filters }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    pub fn on_request(
        &self,
        req: &http::request::Parts,
        conn: &ConnInfo,
    ) -> Option<http::Response<RespBody>> {
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
