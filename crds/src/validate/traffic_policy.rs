//! A DestinationRule's traffic policy (of the host, a subset or a port): load balancing,
//! connection pools, outlier detection, TLS origination, tunnelling and retry budgets. The
//! connection pool checks also serve Sidecar's inbound connection pools.

use std::collections::BTreeSet;

use crate::istio::networking::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, H2UpgradePolicy,
    LoadBalancerSettings, LocalityLoadBalancerSetting, OutlierDetection, PortTrafficPolicy,
    RetryBudget, SimpleLb, TrafficPolicy, TunnelSettings,
};

use super::duration::{check_duration, check_duration_or_zero};
use super::hosts::{check_fqdn, check_wildcard_domain};
use super::http::{check_header_name, check_percent};
use super::net::{check_ip, check_port, is_ip};
use super::report::{FieldPath, Issues};

/// Maglev needs a prime table size below this (Envoy's limit).
const MAGLEV_TABLE_MAX: u64 = 5_000_011;
/// Envoy refuses ring hash rings larger than this.
const RING_SIZE_MAX: u64 = 8_388_608;

/// The topology labels that `failover` already ranks by; naming them in `failoverPriority` as
/// well is contradictory.
const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

pub(crate) fn check_traffic_policy(policy: &TrafficPolicy, at: &FieldPath, issues: &mut Issues) {
    let empty = policy.load_balancer.is_none()
        && policy.connection_pool.is_none()
        && policy.outlier_detection.is_none()
        && policy.tls.is_none()
        && policy.port_level_settings.is_none()
        && policy.tunnel.is_none()
        && policy.proxy_protocol.is_none()
        && policy.retry_budget.is_none();
    if empty {
        issues.error(at, "traffic policy must have at least one field");
        return;
    }
    if policy.tunnel.is_some() && policy.proxy_protocol.is_some() {
        issues.error(at, "tunnel and proxyProtocol must not be set together");
    }
    check_common(
        policy.load_balancer.as_ref(),
        policy.connection_pool.as_ref(),
        policy.outlier_detection.as_ref(),
        policy.tls.as_ref(),
        at,
        issues,
    );
    if let Some(ports) = &policy.port_level_settings {
        check_port_level_settings(ports, &at.field("portLevelSettings"), issues);
    }
    if let Some(tunnel) = &policy.tunnel {
        check_tunnel(tunnel, &at.field("tunnel"), issues);
    }
    if let Some(budget) = &policy.retry_budget {
        check_retry_budget(budget, &at.field("retryBudget"), issues);
    }
}

/// The settings a traffic policy and a port-level policy share.
fn check_common(
    load_balancer: Option<&LoadBalancerSettings>,
    connection_pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&OutlierDetection>,
    tls: Option<&ClientTlsSettings>,
    at: &FieldPath,
    issues: &mut Issues,
) {
    if let Some(lb) = load_balancer {
        check_load_balancer(lb, outlier.is_some(), &at.field("loadBalancer"), issues);
    }
    if let Some(pool) = connection_pool {
        check_connection_pool(pool, &at.field("connectionPool"), issues);
    }
    if let Some(outlier) = outlier {
        check_outlier_detection(outlier, &at.field("outlierDetection"), issues);
    }
    if let Some(tls) = tls {
        check_client_tls(tls, &at.field("tls"), issues);
    }
}

fn check_port_level_settings(ports: &[PortTrafficPolicy], at: &FieldPath, issues: &mut Issues) {
    let mut seen = BTreeSet::new();
    for (i, port_policy) in ports.iter().enumerate() {
        let at = at.index(i);
        match port_policy.port.as_ref().and_then(|p| p.number) {
            None => issues.error(
                &at.field("port"),
                "portLevelSettings entry must have a port number",
            ),
            Some(number) => {
                issues.check(&at.field("port").field("number"), check_port(number));
                if !seen.insert(number) {
                    issues.error(
                        &at.field("port").field("number"),
                        format!(
                            "duplicate portLevelSettings for port {number}: only the first applies"
                        ),
                    );
                }
            }
        }
        let empty = port_policy.load_balancer.is_none()
            && port_policy.connection_pool.is_none()
            && port_policy.outlier_detection.is_none()
            && port_policy.tls.is_none();
        if empty {
            issues.error(&at, "port traffic policy must have at least one field");
            continue;
        }
        check_common(
            port_policy.load_balancer.as_ref(),
            port_policy.connection_pool.as_ref(),
            port_policy.outlier_detection.as_ref(),
            port_policy.tls.as_ref(),
            &at,
            issues,
        );
    }
}

fn check_non_negative(value: Option<i32>, at: &FieldPath, what: &str, issues: &mut Issues) {
    if value.is_some_and(|v| v < 0) {
        issues.error(at, format!("{what} must be non-negative"));
    }
}

type DurationCheck = fn(&str) -> Result<(), String>;

fn check_optional_duration(
    value: Option<&String>,
    at: &FieldPath,
    check: DurationCheck,
    issues: &mut Issues,
) {
    if let Some(text) = value {
        issues.check(at, check(text));
    }
}

pub(crate) fn check_connection_pool(
    pool: &ConnectionPoolSettings,
    at: &FieldPath,
    issues: &mut Issues,
) {
    if pool.tcp.is_none() && pool.http.is_none() {
        issues.error(at, "connection pool must have at least one field");
        return;
    }
    if let Some(http) = &pool.http {
        let at = at.field("http");
        let counts = [
            (http.http1_max_pending_requests, "http1MaxPendingRequests"),
            (http.http2_max_requests, "http2MaxRequests"),
            (http.max_requests_per_connection, "maxRequestsPerConnection"),
            (http.max_retries, "maxRetries"),
            (http.max_concurrent_streams, "maxConcurrentStreams"),
        ];
        for (value, name) in counts {
            check_non_negative(value, &at.field(name), name, issues);
        }
        check_optional_duration(
            http.idle_timeout.as_ref(),
            &at.field("idleTimeout"),
            check_duration,
            issues,
        );
        if http.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
            && http.use_client_protocol == Some(true)
        {
            issues.error(
                &at.field("useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
    }
    if let Some(tcp) = &pool.tcp {
        let at = at.field("tcp");
        check_non_negative(
            tcp.max_connections,
            &at.field("maxConnections"),
            "maxConnections",
            issues,
        );
        let keepalive = tcp.tcp_keepalive.as_ref();
        let durations: [(Option<&String>, FieldPath, DurationCheck); 5] = [
            (
                tcp.connect_timeout.as_ref(),
                at.field("connectTimeout"),
                check_duration,
            ),
            (
                tcp.max_connection_duration.as_ref(),
                at.field("maxConnectionDuration"),
                check_duration,
            ),
            // `0s` turns the idle timeout off.
            (
                tcp.idle_timeout.as_ref(),
                at.field("idleTimeout"),
                check_duration_or_zero,
            ),
            (
                keepalive.and_then(|k| k.time.as_ref()),
                at.field("tcpKeepalive").field("time"),
                check_duration,
            ),
            (
                keepalive.and_then(|k| k.interval.as_ref()),
                at.field("tcpKeepalive").field("interval"),
                check_duration,
            ),
        ];
        for (value, at, check) in durations {
            check_optional_duration(value, &at, check, issues);
        }
    }
}

fn check_outlier_detection(outlier: &OutlierDetection, at: &FieldPath, issues: &mut Issues) {
    check_optional_duration(
        outlier.base_ejection_time.as_ref(),
        &at.field("baseEjectionTime"),
        check_duration,
        issues,
    );
    check_optional_duration(
        outlier.interval.as_ref(),
        &at.field("interval"),
        check_duration,
        issues,
    );
    if outlier.consecutive_errors.is_some_and(|n| n != 0) {
        issues.warn(
            &at.field("consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    if outlier.split_external_local_origin_errors != Some(true)
        && outlier
            .consecutive_local_origin_failures
            .is_some_and(|n| n > 0)
    {
        issues.error(
            &at.field("consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    for (value, name) in [
        (outlier.max_ejection_percent, "maxEjectionPercent"),
        (outlier.min_health_percent, "minHealthPercent"),
    ] {
        if let Some(value) = value {
            issues.check(&at.field(name), check_percent(value.into()));
        }
    }
}

fn check_load_balancer(
    lb: &LoadBalancerSettings,
    has_outlier_detection: bool,
    at: &FieldPath,
    issues: &mut Issues,
) {
    if lb.simple == Some(SimpleLb::LeastConn) {
        issues.warn(
            &at.field("simple"),
            "LEAST_CONN is deprecated; use LEAST_REQUEST",
        );
    }
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        issues.error(at, "only one of simple or consistentHash may be set");
    }
    if let Some(hash) = &lb.consistent_hash {
        check_consistent_hash(hash, &at.field("consistentHash"), issues);
    }
    if let Some(locality) = &lb.locality_lb_setting {
        check_locality_lb(
            locality,
            has_outlier_detection,
            &at.field("localityLbSetting"),
            issues,
        );
    }
    if let Some(warmup) = &lb.warmup_duration_secs {
        let at = at.field("warmupDurationSecs");
        issues.check(&at, check_duration(warmup));
        issues.warn(&at, "warmupDurationSecs is deprecated; use warmup.duration");
    }
    if let Some(warmup) = &lb.warmup {
        let at = at.field("warmup");
        issues.check(&at.field("duration"), check_duration(&warmup.duration));
        if warmup
            .minimum_percent
            .is_some_and(|p| !(0.0..=100.0).contains(&p))
        {
            issues.error(
                &at.field("minimumPercent"),
                "minimumPercent must be between 0 and 100",
            );
        }
        if warmup.aggression.is_some_and(|a| a < 1.0) {
            issues.error(
                &at.field("aggression"),
                "aggression should be greater than or equal to 1",
            );
        }
    }
}

fn check_consistent_hash(hash: &ConsistentHashLb, at: &FieldPath, issues: &mut Issues) {
    let keys = [
        hash.http_header_name.is_some(),
        hash.http_cookie.is_some(),
        hash.use_source_ip.is_some(),
        hash.http_query_parameter_name.is_some(),
    ];
    match keys.iter().filter(|set| **set).count() {
        0 => issues.error(
            at,
            "consistent hash needs a key: set one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName",
        ),
        1 => {}
        _ => issues.error(
            at,
            "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set",
        ),
    }
    if let Some(header) = &hash.http_header_name {
        issues.check(&at.field("httpHeaderName"), check_header_name(header));
    }
    if let Some(param) = &hash.http_query_parameter_name {
        if param.is_empty() {
            issues.error(
                &at.field("httpQueryParameterName"),
                "query parameter name cannot be empty",
            );
        }
    }
    if let Some(cookie) = &hash.http_cookie {
        if cookie.name.is_empty() {
            issues.error(
                &at.field("httpCookie").field("name"),
                "name required for HttpCookie",
            );
        }
        if let Some(ttl) = &cookie.ttl {
            // `0s` makes a session cookie.
            issues.check(
                &at.field("httpCookie").field("ttl"),
                check_duration_or_zero(ttl),
            );
        }
    }
    if hash.ring_hash.is_some() && hash.maglev.is_some() {
        issues.error(at, "only one of ringHash or maglev may be set");
    }
    if let Some(size) = hash.minimum_ring_size.filter(|s| *s != 0) {
        let field = at.field("minimumRingSize");
        issues.warn(
            &field,
            "consistent hash minimumRingSize is deprecated, use ringHash.minimumRingSize instead",
        );
        if hash.ring_hash.is_some() || hash.maglev.is_some() {
            issues.error(
                &field,
                "only one of minimumRingSize or maglev/ringHash can be specified",
            );
        }
        check_ring_size(size, &field, issues);
    }
    if let Some(size) = hash.ring_hash.as_ref().and_then(|r| r.minimum_ring_size) {
        check_ring_size(size, &at.field("ringHash").field("minimumRingSize"), issues);
    }
    if let Some(maglev) = &hash.maglev {
        let at = at.field("maglev").field("tableSize");
        match maglev.table_size.unwrap_or(0) {
            0 => issues.error(&at, "tableSize must be set for maglev"),
            size if size >= MAGLEV_TABLE_MAX => issues.error(
                &at,
                format!("tableSize must be less than {MAGLEV_TABLE_MAX} for maglev"),
            ),
            size if !is_prime(size) => {
                issues.error(&at, "tableSize must be a prime number for maglev")
            }
            _ => {}
        }
    }
}

fn check_ring_size(size: u64, at: &FieldPath, issues: &mut Issues) {
    if size > RING_SIZE_MAX {
        issues.error(
            at,
            format!("minimumRingSize must be at most {RING_SIZE_MAX}"),
        );
    }
}

/// Primality by trial division, as Envoy checks Maglev table sizes.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut factor = 3;
    while factor * factor <= n {
        if n.is_multiple_of(factor) {
            return false;
        }
        factor += 2;
    }
    true
}

fn check_locality_lb(
    lb: &LocalityLoadBalancerSetting,
    has_outlier_detection: bool,
    at: &FieldPath,
    issues: &mut Issues,
) {
    let distribute = lb.distribute.as_deref().unwrap_or_default();
    let failover = lb.failover.as_deref().unwrap_or_default();
    let priority = lb.failover_priority.as_deref().unwrap_or_default();
    if !distribute.is_empty() && !failover.is_empty() {
        issues.error(
            at,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    if !failover.is_empty() {
        for (i, label) in priority.iter().enumerate() {
            if TOPOLOGY_LABELS.contains(&label.as_str()) {
                issues.error(
                    &at.field("failoverPriority").index(i),
                    format!("can not simultaneously set 'failover' and topology label '{label}' in 'failoverPriority'"),
                );
            }
        }
    }
    let mut sources = Vec::new();
    for (i, entry) in distribute.iter().enumerate() {
        let at = at.field("distribute").index(i);
        sources.push(entry.from.clone().unwrap_or_default());
        let to = entry.to.clone().unwrap_or_default();
        if to.values().any(|w| !(1..=100).contains(w)) {
            issues.error(&at.field("to"), "locality weight must be in range [1, 100]");
            continue;
        }
        let total: u32 = to.values().sum();
        if total != 100 {
            issues.error(
                &at.field("to"),
                format!("total locality weight {total} != 100"),
            );
            continue;
        }
        let destinations: Vec<String> = to.keys().cloned().collect();
        issues.check(&at.field("to"), check_localities(&destinations));
    }
    issues.check(&at.field("distribute"), check_localities(&sources));
    if (!failover.is_empty() || !priority.is_empty()) && !has_outlier_detection {
        issues.warn(at, "outlier detection policy must be provided for failover");
    }
    for (i, entry) in failover.iter().enumerate() {
        let at = at.field("failover").index(i);
        let (from, to) = (
            entry.from.as_deref().unwrap_or_default(),
            entry.to.as_deref().unwrap_or_default(),
        );
        if from == to {
            issues.error(
                &at,
                "locality lb failover settings must specify different regions",
            );
        }
        if from.contains('/') || to.contains('/') {
            issues.error(&at, "locality lb failover only specify region");
        }
        if from.contains('*') || to.contains('*') {
            issues.error(
                &at,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// Localities (`region`, `region/zone`, `region/zone/subzone`, `*` only last) that do not overlap
/// each other.
fn check_localities(localities: &[String]) -> Result<(), String> {
    let mut seen: Vec<Vec<&str>> = Vec::new();
    for locality in localities {
        let stars = locality.matches('*').count();
        if stars > 1 || (stars == 1 && !locality.ends_with('*')) {
            return Err(format!(
                "locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        let parts: Vec<&str> = locality.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "locality {locality} must not contain empty region/zone/subzone info"
            ));
        }
        // Two localities overlap when one is a prefix of the other, a `*` matching anything.
        let overlaps = seen.iter().any(|other| {
            parts
                .iter()
                .zip(other.iter())
                .all(|(a, b)| a == b || *a == "*" || *b == "*")
        });
        if overlaps {
            return Err(format!(
                "locality {locality} overlap with previous specified ones"
            ));
        }
        seen.push(parts);
    }
    Ok(())
}

fn check_client_tls(tls: &ClientTlsSettings, at: &FieldPath, issues: &mut Issues) {
    let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let credential = has(&tls.credential_name);
    let files = has(&tls.client_certificate)
        || has(&tls.private_key)
        || has(&tls.ca_certificates)
        || has(&tls.ca_crl);
    let mode = tls.mode.unwrap_or(ClientTlsMode::Disable);
    if tls.insecure_skip_verify == Some(true) {
        let sans = tls.subject_alt_names.is_some();
        let conflict = match mode {
            ClientTlsMode::Simple => has(&tls.ca_certificates) || credential || sans,
            ClientTlsMode::Mutual => has(&tls.ca_certificates) || sans,
            _ => false,
        };
        if conflict {
            issues.error(
                &at.field("insecureSkipVerify"),
                "cannot specify caCertificates, credentialName or subjectAltNames when insecureSkipVerify is set true",
            );
        }
    }
    // With a credential, SIMPLE and MUTUAL take everything from the Secret.
    let from_credential =
        credential && matches!(mode, ClientTlsMode::Simple | ClientTlsMode::Mutual);
    if from_credential && files {
        issues.error(
            &at.field("credentialName"),
            "cannot specify client certificates or CA certificate or CA CRL if credentialName is set",
        );
    }
    match mode {
        _ if from_credential => {}
        ClientTlsMode::Mutual => {
            if !has(&tls.client_certificate) {
                issues.error(
                    &at.field("clientCertificate"),
                    "client certificate required for mutual tls (or set credentialName)",
                );
            }
            if !has(&tls.private_key) {
                issues.error(
                    &at.field("privateKey"),
                    "private key required for mutual tls (or set credentialName)",
                );
            }
        }
        ClientTlsMode::Disable | ClientTlsMode::IstioMutual if files || credential => {
            issues.warn(
                at,
                format!(
                    "certificates are ignored in {} mode",
                    client_mode_name(mode)
                ),
            );
        }
        _ => {}
    }
    if let Some(sni) = tls.sni.as_deref().filter(|s| !s.is_empty()) {
        let at = at.field("sni");
        if is_ip(sni) {
            issues.warn(
                &at,
                format!("using an IP address ({sni:?}) as SNI goes against the SNI spec"),
            );
        } else {
            issues.check(&at, check_wildcard_domain(sni));
        }
    }
}

fn client_mode_name(mode: ClientTlsMode) -> &'static str {
    match mode {
        ClientTlsMode::Disable => "DISABLE",
        ClientTlsMode::Simple => "SIMPLE",
        ClientTlsMode::Mutual => "MUTUAL",
        ClientTlsMode::IstioMutual => "ISTIO_MUTUAL",
    }
}

fn check_tunnel(tunnel: &TunnelSettings, at: &FieldPath, issues: &mut Issues) {
    if let Some(protocol) = tunnel.protocol.as_deref() {
        if !matches!(protocol, "" | "CONNECT" | "POST") {
            issues.error(
                &at.field("protocol"),
                "tunnel protocol must be \"CONNECT\" or \"POST\"",
            );
        }
    }
    if let (Err(fqdn), Err(_)) = (
        check_fqdn(&tunnel.target_host),
        check_ip(&tunnel.target_host),
    ) {
        issues.error(
            &at.field("targetHost"),
            format!("tunnel target host must be valid FQDN or IP address: {fqdn}"),
        );
    }
    issues.check(&at.field("targetPort"), check_port(tunnel.target_port));
}

fn check_retry_budget(budget: &RetryBudget, at: &FieldPath, issues: &mut Issues) {
    if budget.percent.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
        issues.error(
            &at.field("percent"),
            "retry budget percent must be between 0 and 100",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Report;

    fn check(policy: serde_json::Value) -> Report {
        let policy: TrafficPolicy = serde_json::from_value(policy).expect("a traffic policy");
        let mut issues = Issues::default();
        check_traffic_policy(&policy, &FieldPath::root("tp"), &mut issues);
        issues.into_report()
    }

    fn error_fields(report: &Report) -> Vec<&str> {
        report.errors.iter().map(|e| e.field.as_str()).collect()
    }

    use serde_json::json;

    #[test]
    fn empty_policies() {
        assert_eq!(error_fields(&check(json!({}))), ["tp"]);
        assert_eq!(
            error_fields(&check(json!({"connectionPool": {}}))),
            ["tp.connectionPool"]
        );
    }

    #[test]
    fn connection_pools() {
        assert!(check(json!({"connectionPool": {"tcp": {"maxConnections": 100, "connectTimeout": "30ms", "idleTimeout": "0s"}, "http": {"http2MaxRequests": 1000}}})).is_valid());
        let report = check(json!({"connectionPool": {
            "tcp": {"maxConnections": -1, "connectTimeout": "0s", "tcpKeepalive": {"time": "10"}},
            "http": {"maxRetries": -3, "h2UpgradePolicy": "UPGRADE", "useClientProtocol": true}}}));
        assert_eq!(
            error_fields(&report),
            [
                "tp.connectionPool.http.maxRetries",
                "tp.connectionPool.http.useClientProtocol",
                "tp.connectionPool.tcp.maxConnections",
                "tp.connectionPool.tcp.connectTimeout",
                "tp.connectionPool.tcp.tcpKeepalive.time",
            ]
        );
    }

    #[test]
    fn outlier_detection() {
        assert!(check(json!({"outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s", "maxEjectionPercent": 50}})).is_valid());
        let report = check(
            json!({"outlierDetection": {"maxEjectionPercent": 101, "minHealthPercent": -1,
            "consecutiveLocalOriginFailures": 3, "interval": "1us", "consecutiveErrors": 5}}),
        );
        assert_eq!(
            error_fields(&report),
            [
                "tp.outlierDetection.interval",
                "tp.outlierDetection.consecutiveLocalOriginFailures",
                "tp.outlierDetection.maxEjectionPercent",
                "tp.outlierDetection.minHealthPercent",
            ]
        );
        assert_eq!(
            report.warnings[0].field,
            "tp.outlierDetection.consecutiveErrors"
        );
    }

    #[test]
    fn consistent_hash_keys_and_sizes() {
        assert!(check(json!({"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user", "maglev": {"tableSize": 65537}}}})).is_valid());
        assert_eq!(
            error_fields(&check(
                json!({"loadBalancer": {"consistentHash": {"ringHash": {"minimumRingSize": 1024}}}})
            )),
            ["tp.loadBalancer.consistentHash"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"loadBalancer": {"consistentHash": {"httpHeaderName": "x", "useSourceIp": true}}})
            )),
            ["tp.loadBalancer.consistentHash"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"loadBalancer": {"consistentHash": {"useSourceIp": true, "maglev": {"tableSize": 65536}}}})
            )),
            ["tp.loadBalancer.consistentHash.maglev.tableSize"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"loadBalancer": {"consistentHash": {"useSourceIp": true, "ringHash": {"minimumRingSize": 10000000}}}})
            )),
            ["tp.loadBalancer.consistentHash.ringHash.minimumRingSize"]
        );
        let deprecated = check(
            json!({"loadBalancer": {"consistentHash": {"useSourceIp": true, "minimumRingSize": 1024}}}),
        );
        assert!(deprecated.is_valid());
        assert_eq!(
            deprecated.warnings[0].field,
            "tp.loadBalancer.consistentHash.minimumRingSize"
        );
        let least_conn = check(json!({"loadBalancer": {"simple": "LEAST_CONN"}}));
        assert!(least_conn.is_valid());
        assert_eq!(least_conn.warnings[0].field, "tp.loadBalancer.simple");
        assert!(is_prime(65537) && is_prime(2) && !is_prime(1) && !is_prime(65535));
    }

    #[test]
    fn locality_load_balancing() {
        assert!(check(json!({"outlierDetection": {"consecutive5xxErrors": 1}, "loadBalancer": {"localityLbSetting": {
            "distribute": [{"from": "us-west/zone1/*", "to": {"us-west/zone1/*": 80, "us-west/zone2/*": 20}}]}}})).is_valid());
        let report = check(json!({"loadBalancer": {"localityLbSetting": {
            "distribute": [{"from": "us-west/*", "to": {"us-west/zone1/*": 80, "us-west/zone2/*": 30}}]}}}));
        assert_eq!(
            error_fields(&report),
            ["tp.loadBalancer.localityLbSetting.distribute[0].to"]
        );
        let report = check(json!({"loadBalancer": {"localityLbSetting": {
            "failover": [{"from": "us-east", "to": "us-east"}], "failoverPriority": ["topology.kubernetes.io/zone"]}}}));
        assert_eq!(
            error_fields(&report),
            [
                "tp.loadBalancer.localityLbSetting.failoverPriority[0]",
                "tp.loadBalancer.localityLbSetting.failover[0]",
            ]
        );
        assert_eq!(
            report.warnings[0].field,
            "tp.loadBalancer.localityLbSetting"
        );
        assert!(check_localities(&["a/b".into(), "a/*".into()]).is_err());
        assert!(check_localities(&["a/b".into(), "a/c".into()]).is_ok());
        assert!(check_localities(&["a/*/c".into()]).is_err());
    }

    #[test]
    fn client_tls() {
        assert!(check(json!({"tls": {"mode": "MUTUAL", "clientCertificate": "/c.pem", "privateKey": "/k.pem", "sni": "api.example.com"}})).is_valid());
        assert!(
            check(json!({"tls": {"mode": "MUTUAL", "credentialName": "client-cert"}})).is_valid()
        );
        assert_eq!(
            error_fields(&check(
                json!({"tls": {"mode": "MUTUAL", "caCertificates": "/ca.pem"}})
            )),
            ["tp.tls.clientCertificate", "tp.tls.privateKey"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"tls": {"mode": "SIMPLE", "credentialName": "c", "caCertificates": "/ca.pem"}})
            )),
            ["tp.tls.credentialName"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"tls": {"mode": "SIMPLE", "insecureSkipVerify": true, "subjectAltNames": ["a"]}})
            )),
            ["tp.tls.insecureSkipVerify"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"tls": {"mode": "SIMPLE", "sni": "bad_name.example.com"}})
            )),
            ["tp.tls.sni"]
        );
        let ignored =
            check(json!({"tls": {"mode": "ISTIO_MUTUAL", "clientCertificate": "/c.pem"}}));
        assert!(ignored.is_valid());
        assert_eq!(ignored.warnings[0].field, "tp.tls");
    }

    #[test]
    fn port_level_settings_tunnels_and_budgets() {
        let report = check(json!({"portLevelSettings": [
            {"port": {"number": 8080}, "tls": {"mode": "ISTIO_MUTUAL"}},
            {"port": {"number": 8080}, "tls": {"mode": "ISTIO_MUTUAL"}},
            {"tls": {"mode": "ISTIO_MUTUAL"}},
            {"port": {"number": 9090}}]}));
        assert_eq!(
            error_fields(&report),
            [
                "tp.portLevelSettings[1].port.number",
                "tp.portLevelSettings[2].port",
                "tp.portLevelSettings[3]",
            ]
        );
        let report = check(
            json!({"tunnel": {"protocol": "GET", "targetHost": "bad host", "targetPort": 0}, "proxyProtocol": {"version": "V1"}}),
        );
        assert_eq!(
            error_fields(&report),
            [
                "tp",
                "tp.tunnel.protocol",
                "tp.tunnel.targetHost",
                "tp.tunnel.targetPort"
            ]
        );
        assert_eq!(
            error_fields(&check(json!({"retryBudget": {"percent": 120}}))),
            ["tp.retryBudget.percent"]
        );
    }
}
