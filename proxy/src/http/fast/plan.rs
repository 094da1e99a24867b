//! What to do with a request the fast path has parsed, decided before anything is sent or
//! consumed: forward it here, answer it here (no route, no cluster), or hand the connection to
//! the full path because the route or cluster needs something only the full path does. The
//! routing itself is the full path's (the snapshot's route tables and [`VirtualHost::find`]),
//! so both paths route alike.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use mesh_proxy_config::OutboundMode;

use crate::cluster::{Cluster, LbPolicy};
use crate::http::forward::upstream_h2;
use crate::http::handler::{inbound_target, pick_weighted};
use crate::listener::{ConnInfo, Side};
use crate::metrics::{LabelSet, ResponseFlags};
use crate::route::{Action, RequestView, RetryPolicy, Route, VirtualHost};
use crate::snapshot::Snapshot;

pub enum Plan<'s> {
    Forward {
        cluster: Arc<Cluster>,
        retry: &'s RetryPolicy,
        timeout: Option<Duration>,
    },
    /// A local answer with these metric labels.
    Local {
        status: u16,
        flags: ResponseFlags,
        labels: Arc<LabelSet>,
    },
    /// The full path serves this request (and the rest of the connection), because of this.
    Full(&'static str),
}

/// The request as routing sees it.
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query.
    pub target: &'a str,
    pub authority: &'a str,
}

fn default_retry() -> &'static RetryPolicy {
    static P: std::sync::OnceLock<RetryPolicy> = std::sync::OnceLock::new();
    P.get_or_init(RetryPolicy::default_policy)
}

fn unknown(snap: &Snapshot, info: &ConnInfo) -> Arc<LabelSet> {
    if info.side == Side::Inbound {
        snap.unknown_labels_inbound.clone()
    } else {
        snap.unknown_labels_outbound.clone()
    }
}

/// Why the full path must serve requests to this cluster, if it must.
pub fn cluster_needs_full(c: &Cluster) -> Option<&'static str> {
    if upstream_h2(c, false) {
        return Some("HTTP/2 upstream");
    }
    if matches!(c.policy.lb, LbPolicy::ConsistentHash(_)) {
        return Some("consistent hash");
    }
    if c.policy.max_connections != u32::MAX {
        // Beyond the limit requests wait as pending, for hyper's pooled connections.
        return Some("connection limit");
    }
    None
}

/// Why the full path must serve this route, if it must.
pub fn route_needs_full(r: &Route) -> Option<&'static str> {
    match r.action {
        Action::Route { .. } => {}
        Action::Direct { .. } => return Some("direct response"),
        Action::Redirect(_) => return Some("redirect"),
    }
    if r.rate_limit.is_some() {
        return Some("route rate limit");
    }
    if r.cors.is_some() {
        return Some("CORS");
    }
    if r.fault.is_some() {
        return Some("fault injection");
    }
    if !r.mirrors.is_empty() {
        return Some("mirroring");
    }
    if r.rewrite_uri.is_some() || r.rewrite_regex.is_some() || r.rewrite_authority.is_some() {
        return Some("rewrite");
    }
    if !r.request_headers.is_empty() || !r.response_headers.is_empty() {
        return Some("header changes");
    }
    if r.retry.retries_responses() {
        return Some("retries of answers");
    }
    if r.retry.per_try_timeout.is_some() {
        return Some("per-try timeout");
    }
    None
}

/// Whether any route of the virtual host matches on headers (then matching needs them as a
/// `HeaderMap`, which the fast path otherwise never builds).
fn matches_headers(vh: &VirtualHost) -> bool {
    vh.routes
        .iter()
        .any(|r| r.matches.iter().any(|m| m.uses_headers()))
}

fn forward_to<'s>(
    cluster: Arc<Cluster>,
    retry: &'s RetryPolicy,
    timeout: Option<Duration>,
) -> Plan<'s> {
    match cluster_needs_full(&cluster) {
        Some(why) => Plan::Full(why),
        None => Plan::Forward {
            cluster,
            retry,
            timeout,
        },
    }
}

/// Decides, as the full path's handler would route, without side effects (so that the full
/// path can route the same request again after a hand-off). `headers` builds the request's
/// headers, only if a header match needs them; `port` is the destination port.
pub fn plan<'s>(
    snap: &'s Snapshot,
    info: &ConnInfo,
    req: &Request<'_>,
    headers: &mut dyn FnMut() -> HeaderMap,
) -> Plan<'s> {
    if info.side == Side::Inbound {
        let cluster = snap.dynamic_cluster(true, inbound_target(snap, info.destination));
        return forward_to(cluster, default_retry(), None);
    }
    let port = info.destination.port();
    let Some(vh) = snap.virtual_host(&info.side, port, req.authority) else {
        if info.side == Side::Outbound {
            if snap.outbound_mode == OutboundMode::AllowAny {
                let cluster = snap.dynamic_cluster(false, info.destination);
                return forward_to(cluster, default_retry(), None);
            }
            return Plan::Local {
                status: 502,
                flags: ResponseFlags::NO_ROUTE,
                labels: unknown(snap, info),
            };
        }
        return Plan::Local {
            status: 404,
            flags: ResponseFlags::NO_ROUTE,
            labels: unknown(snap, info),
        };
    };
    let map = if matches_headers(vh) {
        headers()
    } else {
        HeaderMap::new()
    };
    let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
    let view = RequestView {
        method: req.method,
        path,
        query,
        authority: req.authority,
        scheme: "http",
        headers: &map,
        port,
        gateway: match &info.side {
            Side::Gateway(g) => Some(g.as_str()),
            _ => None,
        },
    };
    let Some((route, _)) = vh.find(&view) else {
        return Plan::Local {
            status: 404,
            flags: ResponseFlags::NO_ROUTE,
            labels: unknown(snap, info),
        };
    };
    if let Some(why) = route_needs_full(route) {
        return Plan::Full(why);
    }
    let Action::Route {
        dests,
        total_weight,
    } = &route.action
    else {
        return Plan::Full("not a route");
    };
    let wd = match &vh.default {
        Some(d) if dests.is_empty() => d,
        _ if dests.is_empty() => return Plan::Full("no destination"),
        _ => pick_weighted(dests, *total_weight),
    };
    if !wd.request_headers.is_empty() || !wd.response_headers.is_empty() {
        return Plan::Full("header changes");
    }
    let Some(cluster) = snap.cluster_for(&wd.dest, port).cloned() else {
        return Plan::Local {
            status: 503,
            flags: ResponseFlags::NO_CLUSTER_FOUND,
            labels: unknown(snap, info),
        };
    };
    forward_to(cluster, &route.retry, route.timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use mesh_proxy_config as cfg;

    fn snap(yaml: &str) -> Snapshot {
        let c = cfg::ProxyConfig::from_yaml(yaml, "t.yaml").expect("valid");
        Snapshot::build(c, 1, Metrics::new(), None, None)
    }

    fn info(side: Side) -> ConnInfo {
        ConnInfo {
            side,
            listener: "t".into(),
            peer: "127.0.0.1:5000".parse().unwrap(),
            destination: "127.0.0.1:80".parse().unwrap(),
            tcp_destination: None,
            security: None,
        }
    }

    const BASE: &str = "listeners: [{name: t, address: '127.0.0.1:1'}]
services:
  - host: a.t.svc.cluster.local
    aliases: [a]
    ports: [{number: 80, name: http}]
    endpoints: [{address: 127.0.0.1, port: 9}]
  - host: h2.t.svc.cluster.local
    ports: [{number: 80, name: http2}]
    endpoints: [{address: 127.0.0.1, port: 9}]
";

    fn decide(yaml: &str, authority: &str, target: &str) -> String {
        let s = snap(yaml);
        let mut built = false;
        let p = plan(
            &s,
            &info(Side::Plain),
            &Request {
                method: "GET",
                target,
                authority,
            },
            &mut || {
                built = true;
                let mut h = HeaderMap::new();
                h.insert("x-user", http::HeaderValue::from_static("jason"));
                h
            },
        );
        let what = match p {
            Plan::Forward { cluster, .. } => format!("forward {}", cluster.name),
            Plan::Local { status, flags, .. } => format!("local {status} {flags:?}"),
            Plan::Full(why) => format!("full: {why}"),
        };
        format!("{what}{}", if built { " (headers built)" } else { "" })
    }

    #[test]
    fn plain_routes_are_forwarded_here() {
        assert_eq!(
            decide(BASE, "a", "/"),
            "forward outbound|80||a.t.svc.cluster.local"
        );
        assert!(decide(BASE, "nowhere", "/").starts_with("local 404"));
    }

    #[test]
    fn what_a_route_or_cluster_needs_decides_the_full_path() {
        let vs = |http: &str| {
            format!("{BASE}virtualServices:\n  - hosts: [a.t.svc.cluster.local]\n    http:\n{http}")
        };
        let route = "        route: [{destination: {host: a.t.svc.cluster.local}}]\n";
        for (extra, why) in [
            (
                "        retries: {attempts: 2, retryOn: 5xx}\n",
                "retries of answers",
            ),
            (
                "        fault: {abort: {httpStatus: 500, percentage: {value: 100}}}\n",
                "fault",
            ),
            (
                "        mirror: {host: a.t.svc.cluster.local}\n",
                "mirroring",
            ),
            ("        rewrite: {uri: /x}\n", "rewrite"),
            (
                "        headers: {request: {set: {x-a: b}}}\n",
                "header changes",
            ),
            (
                "        corsPolicy: {allowOrigins: [{exact: 'http://o'}]}\n",
                "CORS",
            ),
        ] {
            let y = vs(&format!("      - {}{extra}", route.trim_start()));
            let got = decide(&y, "a", "/");
            assert!(
                got.starts_with(&format!("full: {why}")),
                "{got} for {extra}"
            );
        }
        let y = vs("      - directResponse: {status: 200}\n");
        assert_eq!(decide(&y, "a", "/"), "full: direct response");
        // A timeout and connect-failure retries are the fast path's own.
        let y = vs(&format!(
            "      - {}        timeout: 1s\n        retries: {{attempts: 1, retryOn: connect-failure}}\n",
            route.trim_start()
        ));
        assert!(decide(&y, "a", "/").starts_with("forward"));
        // The cluster's needs.
        let h2 = format!("{BASE}virtualServices:\n  - hosts: [a.t.svc.cluster.local]\n    http:\n      - route: [{{destination: {{host: h2.t.svc.cluster.local}}}}]\n");
        assert_eq!(decide(&h2, "a", "/"), "full: HTTP/2 upstream");
        for (policy, why) in [
            (
                "{connectionPool: {tcp: {maxConnections: 10}}}",
                "connection limit",
            ),
            (
                "{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}",
                "consistent hash",
            ),
        ] {
            let y = format!("{BASE}destinationRules:\n  - host: a.t.svc.cluster.local\n    trafficPolicy: {policy}\n");
            assert_eq!(decide(&y, "a", "/"), format!("full: {why}"));
        }
    }

    #[test]
    fn headers_are_built_only_for_header_matches() {
        let y = format!(
            "{BASE}virtualServices:\n  - hosts: [a.t.svc.cluster.local]\n    http:\n      - match: [{{headers: {{x-user: {{exact: jason}}}}}}]\n        route: [{{destination: {{host: a.t.svc.cluster.local}}}}]\n      - match: [{{uri: {{prefix: /only}}}}]\n        route: [{{destination: {{host: a.t.svc.cluster.local}}}}]\n"
        );
        assert_eq!(
            decide(&y, "a", "/"),
            "forward outbound|80||a.t.svc.cluster.local (headers built)"
        );
        let y = format!(
            "{BASE}virtualServices:\n  - hosts: [a.t.svc.cluster.local]\n    http:\n      - match: [{{uri: {{prefix: /only}}}}]\n        route: [{{destination: {{host: a.t.svc.cluster.local}}}}]\n"
        );
        assert!(decide(&y, "a", "/elsewhere").starts_with("local 404"));
        assert_eq!(
            decide(&y, "a", "/only?q=1"),
            "forward outbound|80||a.t.svc.cluster.local"
        );
    }
}
