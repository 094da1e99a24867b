//! HTTP/1.1 upgrades (WebSocket and the like): the request goes on a dedicated upstream
//! connection; on `101 Switching Protocols` both connections are joined and bytes copied.

use std::sync::Arc;

use http::{header, Request, Response};
use hyper_util::rt::TokioIo;

use crate::cluster::outlier::Outcome;
use crate::cluster::pool::PoolError;
use crate::cluster::Cluster;
use crate::http::body::{ReqBody, RespBody};
use crate::http::forward::Forwarded;
use crate::http::local;
use crate::metrics::{Metrics, ResponseFlags};

/// Whether the client asks to switch protocols.
pub fn is_upgrade(req: &http::request::Parts) -> bool {
    req.version == http::Version::HTTP_11
        && req.headers.contains_key(header::UPGRADE)
        && req
            .headers
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

pub async fn forward(
    cluster: &Arc<Cluster>,
    mut req: Request<ReqBody>,
    client: hyper::upgrade::OnUpgrade,
    hash: Option<u64>,
    metrics: &Metrics,
) -> Forwarded {
    let Some(i) = cluster.pick(hash) else {
        let f = ResponseFlags::NO_HEALTHY_UPSTREAM;
        return Forwarded {
            response: local::reply(503, local::error_text(f), false),
            labels: cluster.labels(),
            flags: f,
        };
    };
    let labels = cluster.endpoint_labels(i);
    let fail = |f: ResponseFlags| Forwarded {
        response: local::reply(503, local::error_text(f), false),
        labels: labels.clone(),
        flags: f,
    };
    let mut sender = match cluster.connect_upgradable(i, metrics).await {
        Ok(s) => s,
        Err(PoolError::Overflow) => return fail(ResponseFlags::UPSTREAM_OVERFLOW),
        Err(_) => {
            cluster.report(i, Outcome::ConnectFailure, metrics);
            return fail(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
        }
    };
    // Keep the client's Upgrade and Connection headers; drop the other hop-by-hop ones.
    let h = req.headers_mut();
    h.remove("keep-alive");
    h.remove("proxy-connection");
    if let Ok(u) = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
    {
        *req.uri_mut() = u;
    }
    let mut resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(_) => {
            cluster.report(i, Outcome::ConnectFailure, metrics);
            return fail(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
        }
    };
    cluster.report(i, Outcome::Status(resp.status().as_u16()), metrics);
    if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
                return;
            };
            let mut c = TokioIo::new(client);
            let mut u = TokioIo::new(upstream);
            let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
        });
        let (parts, _) = resp.into_parts();
        return Forwarded {
            response: Response::from_parts(parts, RespBody::empty()),
            labels,
            flags: ResponseFlags::NONE,
        };
    }
    let (mut parts, body) = resp.into_parts();
    crate::http::forward::strip_hop_by_hop(&mut parts.headers, false);
    Forwarded {
        response: Response::from_parts(parts, RespBody::streaming(body)),
        labels,
        flags: ResponseFlags::NONE,
    }
}
