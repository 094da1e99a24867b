//! WorkloadEntry, and the same checks for the endpoints of a ServiceEntry.

use std::collections::BTreeSet;

use crate::istio::WorkloadEntrySpec;

use super::hosts::check_fqdn;
use super::names::{check_labels, is_dns_label};
use super::net::{check_port, check_unix_address, is_ip, UNIX_PREFIX};
use super::report::{FieldPath, Issues};
use super::Context;

pub(super) fn validate(entry: &WorkloadEntrySpec, _context: &Context, issues: &mut Issues) {
    check_endpoint(
        entry,
        &Endpoint::standalone(),
        &FieldPath::root("spec"),
        issues,
    );
}

/// Where a workload entry appears, which decides what its address may be.
pub(super) struct Endpoint<'a> {
    /// The port names of the ServiceEntry around it; endpoint ports must use them.
    pub(super) service_ports: Option<&'a BTreeSet<&'a str>>,
    /// Whether a DNS name is a valid address (not for STATIC resolution, which never resolves).
    pub(super) allow_dns_name: bool,
}

impl Endpoint<'_> {
    fn standalone() -> Self {
        Endpoint {
            service_ports: None,
            allow_dns_name: true,
        }
    }
}

/// Checks one workload: an address (IP, DNS name or `unix://` socket) or a network to reach it
/// through, valid port names and numbers, and valid labels.
pub(super) fn check_endpoint(
    entry: &WorkloadEntrySpec,
    endpoint: &Endpoint,
    at: &FieldPath,
    issues: &mut Issues,
) {
    let address = entry.address.as_deref().unwrap_or_default();
    let ports = entry.ports.as_ref();
    if address.is_empty() {
        match entry.network.as_deref().filter(|n| !n.is_empty()) {
            None => {
                issues.error(&at.field("address"), "address is required (or a network to reach it through)");
                return;
            }
            Some(network) => issues.warn(
                &at.field("address"),
                format!("address is unset with network {network:?}: it is reached through the network's gateway"),
            ),
        }
    }
    if let Some(path) = address.strip_prefix(UNIX_PREFIX) {
        issues.check(&at.field("address"), check_unix_address(path));
        if ports.is_some_and(|p| !p.is_empty()) {
            issues.error(
                &at.field("ports"),
                format!("unix endpoint {address} must not include ports"),
            );
        }
        if endpoint.service_ports.is_some_and(|p| p.len() != 1) {
            issues.error(
                &at.field("address"),
                "exactly 1 service port required for unix endpoints",
            );
        }
    } else if !address.is_empty() && !is_ip(address) {
        if !endpoint.allow_dns_name {
            issues.error(
                &at.field("address"),
                format!("endpoint address {address:?} is not a valid IP address (STATIC resolution does not resolve names)"),
            );
        } else if check_fqdn(address).is_err() {
            issues.error(
                &at.field("address"),
                format!("endpoint address {address:?} is not a valid FQDN or an IP address"),
            );
        }
    }
    for (name, port) in ports.into_iter().flatten() {
        let at = at.field("ports").key(name);
        if endpoint
            .service_ports
            .is_some_and(|known| !known.contains(name.as_str()))
        {
            issues.error(
                &at,
                format!("endpoint port {name:?} is not defined by the service entry"),
            );
        }
        if !is_dns_label(name) {
            issues.error(&at, format!("invalid port name: {name}"));
        }
        issues.check(&at, check_port(*port));
    }
    check_labels(entry.labels.as_ref(), &at.field("labels"), issues);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::*;
    use crate::validate::Report;
    use serde_json::json;

    fn check(spec: serde_json::Value) -> Report {
        run_in(spec, None, &[], validate)
    }

    #[test]
    fn addresses() {
        assert!(check(
            json!({"address": "10.0.0.1", "ports": {"http": 8080}, "labels": {"app": "vm"}})
        )
        .is_valid());
        assert!(check(json!({"address": "vm-1.example.com"})).is_valid());
        assert!(check(json!({"address": "unix:///var/run/app.sock"})).is_valid());
        assert_eq!(error_fields(&check(json!({}))), ["spec.address"]);
        assert_eq!(
            error_fields(&check(json!({"address": "not an address"}))),
            ["spec.address"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"address": "unix:///var/run/app.sock", "ports": {"http": 80}})
            )),
            ["spec.ports"]
        );
        let network_only = check(json!({"network": "vm-network"}));
        assert!(network_only.is_valid());
        assert_eq!(network_only.warnings[0].field, "spec.address");
    }

    #[test]
    fn ports_and_labels() {
        let report = check(
            json!({"address": "10.0.0.1", "ports": {"http_1": 80, "grpc": 0}, "labels": {"bad key!": "v"}}),
        );
        assert_eq!(
            error_fields(&report),
            [
                "spec.ports[grpc]",
                "spec.ports[http_1]",
                "spec.labels[bad key!]"
            ]
        );
    }
}
