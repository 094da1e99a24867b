//! Calls to the other services, carrying the request's tracing headers so the proxies' spans
//! of one page view join up into one trace.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::HeaderMap;
use hyper::{Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The headers an application must copy from its request to its upstream calls for tracing
/// (Istio's list for Bookinfo, less the vendor-specific ones), plus `end-user`, which the
/// routing demos match on.
pub const PROPAGATED: &[&str] = &[
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
    "end-user",
];

/// Past this the page answers 502 instead of hanging on a stuck upstream.
const TIMEOUT: Duration = Duration::from_secs(5);

pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One upstream service: its name (for errors and logs) and the URL of its resource.
pub struct Upstream {
    pub name: &'static str,
    pub url: Uri,
}

impl Upstream {
    /// `base` is http://host:port (checked on the command line); the resource is `/{name}`.
    pub fn new(name: &'static str, base: &Uri) -> anyhow::Result<Self> {
        let mut parts = base.clone().into_parts();
        parts.path_and_query = Some(format!("/{name}").parse()?);
        let url =
            Uri::from_parts(parts).map_err(|e| anyhow::anyhow!("the {name} URL {base}: {e}"))?;
        Ok(Upstream { name, url })
    }

    /// GETs the resource as JSON; the error says what went wrong, for the 502 body.
    pub async fn get(&self, client: &HttpClient, incoming: &HeaderMap) -> Result<Value, String> {
        let mut req = Request::get(self.url.clone());
        for name in PROPAGATED {
            for value in incoming.get_all(*name) {
                req = req.header(*name, value);
            }
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| format!("building the request: {e}"))?;
        let call = async {
            let resp = client.request(req).await.map_err(|e| {
                // The legacy client's Display hides the cause (refused, DNS...).
                let cause = std::error::Error::source(&e)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                format!("{e}{cause}")
            })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            if !status.is_success() {
                return Err(format!(
                    "answered {status}: {}",
                    String::from_utf8_lossy(&body).trim()
                ));
            }
            serde_json::from_slice(&body).map_err(|e| format!("answered with bad JSON: {e}"))
        };
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {}s", TIMEOUT.as_secs())),
        }
    }
}
