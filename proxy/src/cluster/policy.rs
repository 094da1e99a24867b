//! A DestinationRule's traffic policy resolved for one cluster: rule, then port-level settings,
//! then the subset's policy, each overriding the one before field by field (Istio's merge).

use std::time::Duration;

use mesh_proxy_config as cfg;

#[derive(Debug, Clone, PartialEq)]
pub enum HashKey {
    Header(http::HeaderName),
    Cookie {
        name: String,
        path: Option<String>,
        ttl: Option<Duration>,
    },
    SourceIp,
    QueryParameter(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
    /// To the address the client connected to.
    Passthrough,
    ConsistentHash(HashKey),
}

/// Which HTTP version to speak to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    Http2,
    /// Whatever the client spoke.
    ClientProtocol,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutlierPolicy {
    pub consecutive_5xx: u32,
    pub consecutive_gateway: u32,
    pub interval: Duration,
    pub base_ejection: Duration,
    pub max_ejection_percent: u32,
    pub min_health_percent: u32,
}

#[derive(Debug, Clone)]
pub struct ClusterPolicy {
    pub lb: LbPolicy,
    pub max_connections: u32,
    pub max_pending: u32,
    pub max_requests: u32,
    /// 0: unlimited.
    pub max_requests_per_connection: u32,
    pub max_retries: u32,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive: Option<socket2::TcpKeepalive>,
    pub protocol: UpstreamProtocol,
    pub outlier: Option<OutlierPolicy>,
}

impl Default for ClusterPolicy {
    fn default() -> Self {
        ClusterPolicy {
            lb: LbPolicy::LeastRequest,
            max_connections: u32::MAX,
            max_pending: u32::MAX,
            max_requests: u32::MAX,
            max_requests_per_connection: 0,
            max_retries: u32::MAX,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(3600),
            keepalive: None,
            protocol: UpstreamProtocol::Http1,
            outlier: None,
        }
    }
}

fn pick<T: Clone>(layers: &[Option<&T>]) -> Option<T> {
    layers.iter().rev().flatten().next().map(|t| (*t).clone())
}

impl ClusterPolicy {
    /// Resolves the policy of `port`'s cluster; `subset` is the subset's policy, if any.
    /// `port_protocol` is what the service port declares (None: detected).
    pub fn resolve(
        rule: Option<&cfg::TrafficPolicy>,
        subset: Option<&cfg::TrafficPolicy>,
        port: u16,
        port_protocol: Option<cfg::Protocol>,
    ) -> ClusterPolicy {
        // The order in which settings override: rule, rule's port level, subset, subset's port level.
        let mut layers: Vec<LayerRef<'_>> = Vec::new();
        for tp in [rule, subset].into_iter().flatten() {
            layers.push(LayerRef {
                lb: tp.load_balancer.as_ref(),
                pool: tp.connection_pool.as_ref(),
                outlier: tp.outlier_detection.as_ref(),
            });
            if let Some(pl) = tp
                .port_level_settings
                .iter()
                .find(|p| p.port.map(|p| p.number) == Some(port))
            {
                layers.push(LayerRef {
                    lb: pl.load_balancer.as_ref(),
                    pool: pl.connection_pool.as_ref(),
                    outlier: pl.outlier_detection.as_ref(),
                });
            }
        }
        let lbs: Vec<_> = layers.iter().map(|l| l.lb).collect();
        let tcps: Vec<_> = layers
            .iter()
            .map(|l| l.pool.and_then(|p| p.tcp.as_ref()))
            .collect();
        let https: Vec<_> = layers
            .iter()
            .map(|l| l.pool.and_then(|p| p.http.as_ref()))
            .collect();
        let outliers: Vec<_> = layers.iter().map(|l| l.outlier).collect();

        let mut p = ClusterPolicy::default();
        if let Some(lb) = pick(&lbs) {
            p.lb = lb_policy(&lb);
        }
        macro_rules! field {
            ($list:expr, $f:ident) => {
                $list.iter().rev().flatten().find_map(|s| s.$f.clone())
            };
        }
        if let Some(v) = field!(tcps, max_connections) {
            p.max_connections = v.max(1);
        }
        if let Some(v) = field!(tcps, connect_timeout) {
            p.connect_timeout = v.get();
        }
        if let Some(k) = field!(tcps, tcp_keepalive) {
            let mut ka = socket2::TcpKeepalive::new();
            if let Some(t) = k.time {
                ka = ka.with_time(t.get());
            }
            if let Some(i) = k.interval {
                ka = ka.with_interval(i.get());
            }
            if let Some(n) = k.probes {
                ka = ka.with_retries(n);
            }
            p.keepalive = Some(ka);
        }
        if let Some(v) = field!(tcps, idle_timeout) {
            p.idle_timeout = v.get();
        }
        if let Some(v) = field!(https, http1_max_pending_requests) {
            p.max_pending = v;
        }
        if let Some(v) = field!(https, http2_max_requests) {
            p.max_requests = v.max(1);
        }
        if let Some(v) = field!(https, max_requests_per_connection) {
            p.max_requests_per_connection = v;
        }
        if let Some(v) = field!(https, max_retries) {
            p.max_retries = v;
        }
        if let Some(v) = field!(https, idle_timeout) {
            p.idle_timeout = v.get();
        }
        let upgrade = field!(https, h2_upgrade_policy);
        let client_protocol = field!(https, use_client_protocol).unwrap_or(false);
        p.protocol = match port_protocol {
            Some(cfg::Protocol::Http2 | cfg::Protocol::Grpc) => UpstreamProtocol::Http2,
            _ if upgrade == Some(cfg::H2UpgradePolicy::Upgrade) => UpstreamProtocol::Http2,
            _ if client_protocol => UpstreamProtocol::ClientProtocol,
            // Detected ports keep the client's protocol, as Istio's sniffed clusters do.
            None => UpstreamProtocol::ClientProtocol,
            _ => UpstreamProtocol::Http1,
        };
        if let Some(o) = pick(&outliers) {
            let c5 = o
                .consecutive_5xx_errors
                .or(o.consecutive_errors)
                .unwrap_or(5);
            p.outlier = Some(OutlierPolicy {
                consecutive_5xx: c5,
                consecutive_gateway: o.consecutive_gateway_errors.unwrap_or(0),
                interval: o.interval.map_or(Duration::from_secs(10), |d| d.get()),
                base_ejection: o
                    .base_ejection_time
                    .map_or(Duration::from_secs(30), |d| d.get()),
                max_ejection_percent: o.max_ejection_percent.unwrap_or(10).min(100),
                min_health_percent: o.min_health_percent.unwrap_or(0).min(100),
            });
        }
        p
    }
}

/// The `tls` setting in force for a cluster: the most specific layer's, whole (Istio does not
/// merge `tls` field by field).
pub fn resolve_tls<'a>(
    rule: Option<&'a cfg::TrafficPolicy>,
    subset: Option<&'a cfg::TrafficPolicy>,
    port: u16,
) -> Option<&'a cfg::ClientTlsSettings> {
    let mut found = None;
    for tp in [rule, subset].into_iter().flatten() {
        if let Some(t) = &tp.tls {
            found = Some(t);
        }
        if let Some(t) = tp
            .port_level_settings
            .iter()
            .find(|p| p.port.map(|p| p.number) == Some(port))
            .and_then(|p| p.tls.as_ref())
        {
            found = Some(t);
        }
    }
    found
}

struct LayerRef<'a> {
    lb: Option<&'a cfg::LoadBalancerSettings>,
    pool: Option<&'a cfg::ConnectionPoolSettings>,
    outlier: Option<&'a cfg::OutlierDetection>,
}

fn lb_policy(lb: &cfg::LoadBalancerSettings) -> LbPolicy {
    if let Some(h) = &lb.consistent_hash {
        if let Some(name) = h
            .http_header_name
            .as_deref()
            .and_then(|n| http::HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).ok())
        {
            return LbPolicy::ConsistentHash(HashKey::Header(name));
        }
        if let Some(c) = &h.http_cookie {
            return LbPolicy::ConsistentHash(HashKey::Cookie {
                name: c.name.clone(),
                path: c.path.clone(),
                ttl: c.ttl.map(|d| d.get()),
            });
        }
        if h.use_source_ip == Some(true) {
            return LbPolicy::ConsistentHash(HashKey::SourceIp);
        }
        if let Some(q) = &h.http_query_parameter_name {
            return LbPolicy::ConsistentHash(HashKey::QueryParameter(q.clone()));
        }
    }
    match lb.simple.unwrap_or_default() {
        cfg::SimpleLb::RoundRobin => LbPolicy::RoundRobin,
        cfg::SimpleLb::Random => LbPolicy::Random,
        cfg::SimpleLb::Passthrough => LbPolicy::Passthrough,
        cfg::SimpleLb::Unspecified | cfg::SimpleLb::LeastRequest | cfg::SimpleLb::LeastConn => {
            LbPolicy::LeastRequest
        }
    }
}
