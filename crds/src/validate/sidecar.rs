//! Sidecar: the workloads it selects, its ingress and egress listeners, inbound connection
//! pools and the outbound traffic policy.

use std::collections::{BTreeMap, BTreeSet};

use crate::istio::networking::{
    CaptureMode, IstioEgressListener, IstioIngressListener, OutboundTrafficMode,
    OutboundTrafficPolicy, ServerTlsMode, SidecarPort,
};
use crate::istio::SidecarSpec;

use super::gateway::{check_protocol, check_server_tls, Protocol};
use super::hosts::{check_fqdn, check_namespaced_host};
use super::names::{check_selector_labels, is_dns_label};
use super::net::{check_bind, check_ip, check_port, check_unix_address, UNIX_PREFIX};
use super::report::{FieldPath, Issues};
use super::traffic_policy::check_connection_pool;
use super::virtual_service::check_destination;
use super::Context;

pub(super) fn validate(sidecar: &SidecarSpec, context: &Context, issues: &mut Issues) {
    let spec = FieldPath::root("spec");
    if let Some(selector) = &sidecar.workload_selector {
        check_selector_labels(
            selector.labels.as_ref(),
            &spec.field("workloadSelector").field("labels"),
            issues,
        );
    }
    let ingress = sidecar.ingress.as_deref().unwrap_or_default();
    let egress = sidecar.egress.as_deref().unwrap_or_default();
    if ingress.is_empty()
        && egress.is_empty()
        && sidecar.outbound_traffic_policy.is_none()
        && sidecar.inbound_connection_pool.is_none()
    {
        issues.error(&spec, "sidecar: empty configuration provided");
        return;
    }
    let mut ports = BTreeSet::new();
    for (i, listener) in ingress.iter().enumerate() {
        let at = spec.field("ingress").index(i);
        check_ingress(listener, &at, issues);
        let number = listener.port.number.unwrap_or(0);
        if !ports.insert(number) {
            issues.error(
                &at.field("port").field("number"),
                format!(
                    "sidecar: ports on IP bound listeners must be unique: {number} is used twice"
                ),
            );
        }
    }
    if let Some(pool) = &sidecar.inbound_connection_pool {
        check_connection_pool(pool, &spec.field("inboundConnectionPool"), issues);
    }
    check_egress_listeners(egress, context, &spec.field("egress"), issues);
    if let Some(policy) = &sidecar.outbound_traffic_policy {
        check_outbound_policy(policy, &spec.field("outboundTrafficPolicy"), issues);
    }
}

fn check_port_name_and_target(port: &SidecarPort, at: &FieldPath, issues: &mut Issues) {
    if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
        if !is_dns_label(name) {
            issues.error(&at.field("name"), format!("invalid port name: {name}"));
        }
    }
    issues.check(
        &at.field("protocol"),
        check_protocol(port.protocol.as_deref()),
    );
    if port.target_port.is_some_and(|p| p > 0) {
        issues.error(
            &at.field("targetPort"),
            "targetPort has no impact on Sidecars; remove it",
        );
    }
}

fn check_ingress(listener: &IstioIngressListener, at: &FieldPath, issues: &mut Issues) {
    let port_at = at.field("port");
    check_port_name_and_target(&listener.port, &port_at, issues);
    issues.check(
        &port_at.field("number"),
        check_port(listener.port.number.unwrap_or(0)),
    );
    if let Some(bind) = listener.bind.as_deref().filter(|b| !b.is_empty()) {
        issues.check(&at.field("bind"), check_ip(bind));
    }
    if let Some(endpoint) = listener
        .default_endpoint
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        check_default_endpoint(endpoint, &at.field("defaultEndpoint"), issues);
    }
    let protocol = listener.port.protocol.as_deref().and_then(Protocol::parse);
    if let Some(tls) = &listener.tls {
        let tls_at = at.field("tls");
        let unsupported = [
            (tls.subject_alt_names.is_some(), "subjectAltNames"),
            (tls.https_redirect == Some(true), "httpsRedirect"),
            (
                tls.credential_name
                    .as_deref()
                    .is_some_and(|c| !c.is_empty()),
                "credentialName",
            ),
            (
                tls.credential_names.as_ref().is_some_and(|c| !c.is_empty()),
                "credentialNames",
            ),
            (
                tls.tls_certificates.as_ref().is_some_and(|c| !c.is_empty()),
                "tlsCertificates",
            ),
        ];
        for (present, field) in unsupported {
            if present {
                issues.error(
                    &tls_at.field(field),
                    format!("sidecar: {field} is not supported in ingress tls"),
                );
            }
        }
        if let Some(mode @ (ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough)) = tls.mode
        {
            let name = if mode == ServerTlsMode::IstioMutual {
                "ISTIO_MUTUAL"
            } else {
                "AUTO_PASSTHROUGH"
            };
            issues.error(
                &tls_at.field("mode"),
                format!(
                    "configuration is invalid: cannot set mode to {name} in sidecar ingress tls"
                ),
            );
        }
        if !protocol.is_some_and(Protocol::is_tls) {
            issues.error(
                &port_at.field("protocol"),
                "server cannot have TLS settings for non HTTPS/TLS ports",
            );
        }
        check_server_tls(tls, &tls_at, issues);
    }
    if let Some(pool) = &listener.connection_pool {
        check_connection_pool(pool, &at.field("connectionPool"), issues);
        if pool.http.is_some() && !protocol.is_some_and(Protocol::is_http) {
            issues.warn(
                &at.field("connectionPool").field("http"),
                "HTTP connection pool settings are configured for a port whose protocol is not HTTP; only TCP settings will apply",
            );
        }
    }
}

/// Where an ingress listener forwards: `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`,
/// `[::]:PORT`, `:PORT`, or a `unix://` socket.
fn check_default_endpoint(endpoint: &str, at: &FieldPath, issues: &mut Issues) {
    if let Some(path) = endpoint.strip_prefix(UNIX_PREFIX) {
        issues.check(at, check_unix_address(path));
        return;
    }
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        issues.error(
            at,
            format!("sidecar: defaultEndpoint {endpoint:?} has no port"),
        );
        return;
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        issues.error(
            at,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset",
        );
    }
    match port.parse::<u32>() {
        Ok(port) => issues.check(at, check_port(port)),
        Err(_) => issues.error(
            at,
            format!("sidecar: defaultEndpoint port ({port}) is not a number"),
        ),
    }
}

fn check_egress_listeners(
    listeners: &[IstioEgressListener],
    context: &Context,
    at: &FieldPath,
    issues: &mut Issues,
) {
    let mut ports = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let mut catch_all_seen = false;
    for (i, listener) in listeners.iter().enumerate() {
        let at = at.index(i);
        match &listener.port {
            // A listener without a port catches what the others do not: there can be only one,
            // and it must come last, since listeners are matched in order.
            None if catch_all_seen => {
                issues.error(
                    &at,
                    "sidecar: egress can have only one listener with empty port",
                );
                continue;
            }
            None => {
                catch_all_seen = true;
                if i + 1 != listeners.len() {
                    issues.error(
                        &at,
                        "sidecar: the egress listener with empty port should be the last listener in the list",
                    );
                }
            }
            Some(port) => {
                check_egress_port(listener, port, &at, issues);
                let number = port.number.unwrap_or(0);
                let bind = listener.bind.clone().unwrap_or_default();
                let fresh = if number == 0 {
                    sockets.insert(bind)
                } else {
                    ports.insert(number)
                };
                if !fresh {
                    let what = if number == 0 {
                        "unix domain socket values for listeners must be unique"
                    } else {
                        "ports on IP bound listeners must be unique"
                    };
                    issues.error(&at.field("port"), format!("sidecar: {what}"));
                }
            }
        }
        check_egress_hosts(&listener.hosts, context, &at.field("hosts"), issues);
    }
}

fn check_egress_port(
    listener: &IstioEgressListener,
    port: &SidecarPort,
    at: &FieldPath,
    issues: &mut Issues,
) {
    let port_at = at.field("port");
    check_port_name_and_target(port, &port_at, issues);
    let bind = listener.bind.as_deref().unwrap_or_default();
    match port.number.unwrap_or(0) {
        // Port 0 means "listen on a Unix socket", named by the bind address.
        0 => {
            if !bind.starts_with(UNIX_PREFIX) {
                issues.error(
                    &at.field("bind"),
                    "sidecar: ports with 0 value must have a unix domain socket bind address",
                );
            } else {
                issues.check(&at.field("bind"), check_bind(bind));
            }
            if !matches!(
                listener.capture_mode,
                None | Some(CaptureMode::Default | CaptureMode::None)
            ) {
                issues.error(
                    &at.field("captureMode"),
                    "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
                );
            }
        }
        number => {
            issues.check(&port_at.field("number"), check_port(number));
            if !bind.is_empty() {
                issues.check(&at.field("bind"), check_ip(bind));
            }
        }
    }
}

/// Egress hosts are `namespace/dnsName`. Repeats, and hosts that `ns/*` already covers, are
/// warnings: they change nothing.
fn check_egress_hosts(hosts: &[String], context: &Context, at: &FieldPath, issues: &mut Issues) {
    if hosts.is_empty() {
        issues.error(
            at,
            "sidecar: egress listener must contain at least one host",
        );
        return;
    }
    let mut by_namespace: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (i, entry) in hosts.iter().enumerate() {
        let entry_at = at.index(i);
        if let Some((namespace, host)) = entry.split_once('/') {
            let namespace = match (namespace, context.namespace) {
                (".", Some(own)) => own,
                _ => namespace,
            };
            let seen = by_namespace.entry(namespace).or_default();
            let duplicate = if host == "*" {
                !seen.is_empty()
            } else {
                seen.contains(host) || seen.contains("*")
            };
            if duplicate {
                issues.warn(&entry_at, format!("duplicated egress host: {entry}"));
            }
            seen.insert(host);
        }
        for error in check_namespaced_host(entry, false) {
            issues.error(&entry_at, error);
        }
    }
    let everything = by_namespace.get("*").is_some_and(|h| h.contains("*"));
    if everything && by_namespace.len() != 1 {
        issues.warn(
            at,
            "`*/*` host select all resources, no other hosts can be added",
        );
    }
}

fn check_outbound_policy(policy: &OutboundTrafficPolicy, at: &FieldPath, issues: &mut Issues) {
    let Some(proxy) = &policy.egress_proxy else {
        return;
    };
    let proxy_at = at.field("egressProxy");
    // An unset mode is REGISTRY_ONLY's zero value in Istio's API.
    if policy.mode != Some(OutboundTrafficMode::AllowAny) {
        issues.error(
            &proxy_at,
            "sidecar: egressProxy must be set only with ALLOW_ANY outboundTrafficPolicy mode",
        );
        return;
    }
    issues.check(&proxy_at.field("host"), check_fqdn(&proxy.host));
    if proxy.port.is_none() {
        issues.error(
            &proxy_at.field("port"),
            "sidecar: egressProxy port must be set",
        );
        return;
    }
    check_destination(proxy, &proxy_at, issues);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::*;
    use crate::validate::Report;
    use serde_json::json;

    fn check(spec: serde_json::Value) -> Report {
        run_in(spec, Some("bookinfo"), &[], validate)
    }

    #[test]
    fn a_typical_sidecar_is_valid() {
        let report = check(json!({
            "workloadSelector": {"labels": {"app": "ratings"}},
            "ingress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "http"}, "defaultEndpoint": "127.0.0.1:8080"}],
            "egress": [{"port": {"number": 3306, "protocol": "MYSQL", "name": "mysql"}, "bind": "127.0.0.1", "hosts": ["*/mysql.foo.com"]},
                       {"hosts": ["./*", "istio-system/*"]}],
            "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}
        }));
        assert_clean(&report);
    }

    #[test]
    fn empty_sidecar() {
        assert_eq!(error_fields(&check(json!({}))), ["spec"]);
    }

    #[test]
    fn ingress_listeners() {
        let report = check(json!({"ingress": [
            {"port": {"number": 9080, "protocol": "HTTP", "targetPort": 8080}, "defaultEndpoint": "10.0.0.1:8080"},
            {"port": {"number": 9080, "protocol": "HTTP"}, "defaultEndpoint": "127.0.0.1:http"},
            {"port": {"number": 8443, "protocol": "HTTP"}, "tls": {"mode": "ISTIO_MUTUAL"}},
        ]}));
        assert_eq!(
            error_fields(&report),
            [
                "spec.ingress[0].port.targetPort",
                "spec.ingress[0].defaultEndpoint",
                "spec.ingress[1].defaultEndpoint",
                "spec.ingress[1].port.number",
                "spec.ingress[2].tls.mode",
                "spec.ingress[2].port.protocol",
            ]
        );
        assert!(check(json!({"ingress": [{"port": {"number": 9080, "protocol": "HTTP"}, "defaultEndpoint": "unix:///var/run/app.sock"}]})).is_valid());
        assert!(check(json!({"ingress": [{"port": {"number": 9080, "protocol": "HTTP"}, "defaultEndpoint": "[::1]:8080"}]})).is_valid());
    }

    #[test]
    fn one_catch_all_egress_listener_last() {
        let report = check(
            json!({"egress": [{"hosts": ["./*"]}, {"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["./*"]}, {"hosts": ["*/*"]}]}),
        );
        assert_eq!(error_fields(&report), ["spec.egress[0]", "spec.egress[2]"]);
    }

    #[test]
    fn egress_hosts_and_ports() {
        let report = check(json!({"egress": [
            {"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["reviews.bookinfo.svc.cluster.local"]},
            {"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["./*", "bookinfo/reviews.bookinfo.svc.cluster.local"]},
            {"port": {"number": 0, "protocol": "HTTP"}, "bind": "127.0.0.1", "hosts": ["./*"]},
            {"hosts": []}
        ]}));
        assert_eq!(
            error_fields(&report),
            [
                "spec.egress[0].hosts[0]",
                "spec.egress[1].port",
                "spec.egress[2].bind",
                "spec.egress[3].hosts",
            ]
        );
        assert_eq!(report.warnings[0].field, "spec.egress[1].hosts[1]");
        assert!(check(json!({"egress": [{"port": {"number": 0, "protocol": "HTTP"}, "bind": "unix:///var/run/egress.sock", "captureMode": "NONE", "hosts": ["./*"]}]})).is_valid());
    }

    #[test]
    fn egress_proxy_needs_allow_any_and_a_port() {
        let proxy = json!({"host": "proxy.example.com", "port": {"number": 3128}});
        assert!(check(
            json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": proxy}})
        )
        .is_valid());
        assert_eq!(
            error_fields(&check(
                json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY", "egressProxy": proxy}})
            )),
            ["spec.outboundTrafficPolicy.egressProxy"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": {"host": "proxy.example.com"}}})
            )),
            ["spec.outboundTrafficPolicy.egressProxy.port"]
        );
    }
}
