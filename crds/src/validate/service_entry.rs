//! ServiceEntry: hosts, addresses, ports, and whether the endpoints fit the resolution.

use std::collections::BTreeSet;

use crate::istio::networking::ServiceEntryResolution;
use crate::istio::ServiceEntrySpec;

use super::gateway::{check_protocol, Protocol};
use super::hosts::{
    check_export_to, check_fqdn, check_no_partial_wildcard, check_wildcard_domain, ExportToOwner,
};
use super::names::{check_selector_labels, is_dns_label};
use super::net::{check_ip_or_cidr, check_port};
use super::report::{FieldPath, Issues};
use super::workload_entry::{check_endpoint, Endpoint};
use super::Context;

pub(super) fn validate(entry: &ServiceEntrySpec, context: &Context, issues: &mut Issues) {
    let spec = FieldPath::root("spec");
    let resolution = entry.resolution.unwrap_or(ServiceEntryResolution::None);
    if let Some(selector) = &entry.workload_selector {
        check_selector_labels(
            selector.labels.as_ref(),
            &spec.field("workloadSelector").field("labels"),
            issues,
        );
        if entry.endpoints.is_some() {
            issues.error(
                &spec.field("workloadSelector"),
                "only one of workloadSelector or endpoints is allowed in a service entry",
            );
        }
    }
    check_hosts(&entry.hosts, &spec.field("hosts"), issues);
    let addresses = entry.addresses.as_deref().unwrap_or_default();
    for (i, address) in addresses.iter().enumerate() {
        let at = spec.field("addresses").index(i);
        issues.check(&at, check_ip_or_cidr(address));
        if address.contains('/')
            && !matches!(
                resolution,
                ServiceEntryResolution::None | ServiceEntryResolution::Static
            )
        {
            issues.error(
                &at,
                "CIDR addresses are allowed only for NONE/STATIC resolution types",
            );
        }
    }
    let port_names = check_ports(entry, resolution, &spec.field("ports"), issues);
    check_resolution(entry, resolution, &port_names, &spec, issues);
    // Plain TCP carries no host name, so with several hosts the proxy could not tell them apart
    // (unless it just forwards to the original destination, as NONE does).
    if resolution != ServiceEntryResolution::None && entry.hosts.len() > 1 {
        let opaque = entry.ports.iter().flatten().position(|p| {
            let protocol = p.protocol.as_deref().and_then(Protocol::parse);
            !protocol.is_some_and(|p| p.is_http() || p.is_tls())
        });
        if let Some(i) = opaque {
            issues.error(
                &spec.field("ports").index(i),
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }
    check_export_to(
        entry.export_to.as_ref(),
        context.namespace,
        ExportToOwner::ServiceEntry,
        &spec.field("exportTo"),
        issues,
    );
}

fn check_hosts(hosts: &[String], at: &FieldPath, issues: &mut Issues) {
    if hosts.is_empty() {
        issues.error(at, "service entry must have at least one host");
    }
    for (i, host) in hosts.iter().enumerate() {
        let at = at.index(i);
        if host == "*" {
            issues.error(
                &at,
                "invalid host *: a service entry cannot capture every host",
            );
            continue;
        }
        issues.check(&at, check_wildcard_domain(host));
        if let Err(e) = check_no_partial_wildcard(host) {
            issues.warn(&at, e);
        }
    }
}

/// Checks the ports and returns their names (for the endpoint checks).
fn check_ports<'a>(
    entry: &'a ServiceEntrySpec,
    resolution: ServiceEntryResolution,
    at: &FieldPath,
    issues: &mut Issues,
) -> BTreeSet<&'a str> {
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, port) in entry.ports.iter().flatten().enumerate() {
        let at = at.index(i);
        if !names.insert(port.name.as_str()) {
            issues.error(
                &at.field("name"),
                format!("service entry port name {:?} already defined", port.name),
            );
        }
        if !numbers.insert(port.number) {
            issues.error(
                &at.field("number"),
                format!("service entry port {} already defined", port.number),
            );
        }
        if !is_dns_label(&port.name) {
            issues.error(
                &at.field("name"),
                format!("invalid port name: {:?}", port.name),
            );
        }
        issues.check(
            &at.field("protocol"),
            check_protocol(port.protocol.as_deref()),
        );
        issues.check(&at.field("number"), check_port(port.number));
        if let Some(target) = port.target_port.filter(|p| *p != 0) {
            issues.check(&at.field("targetPort"), check_port(target));
            if resolution == ServiceEntryResolution::None {
                issues.warn(
                    &at.field("targetPort"),
                    "targetPort has no effect when resolution mode is NONE",
                );
            }
        }
    }
    names
}

fn check_resolution(
    entry: &ServiceEntrySpec,
    resolution: ServiceEntryResolution,
    port_names: &BTreeSet<&str>,
    spec: &FieldPath,
    issues: &mut Issues,
) {
    let endpoints = entry.endpoints.as_deref().unwrap_or_default();
    let endpoints_at = spec.field("endpoints");
    let selector_at = spec.field("workloadSelector");
    let check_all = |allow_dns_name, issues: &mut Issues| {
        let endpoint = Endpoint {
            service_ports: Some(port_names),
            allow_dns_name,
        };
        for (i, e) in endpoints.iter().enumerate() {
            check_endpoint(e, &endpoint, &endpoints_at.index(i), issues);
        }
    };
    match resolution {
        ServiceEntryResolution::None => {
            if !endpoints.is_empty() {
                issues.error(
                    &endpoints_at,
                    "no endpoints should be provided for resolution type none",
                );
            }
            if entry.workload_selector.is_some() {
                issues.warn(
                    &selector_at,
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        ServiceEntryResolution::Static => {
            // Stricter than Istio, which accepts it: a STATIC service with neither endpoints nor
            // a selector has no endpoints at all, so every request to it fails.
            if endpoints.is_empty() && entry.workload_selector.is_none() {
                issues.error(
                    spec,
                    "resolution STATIC needs endpoints or a workloadSelector: without either the service has no endpoints",
                );
            }
            check_all(false, issues);
        }
        ServiceEntryResolution::Dns | ServiceEntryResolution::DnsRoundRobin => {
            let name = if resolution == ServiceEntryResolution::Dns {
                "DNS"
            } else {
                "DNS_ROUND_ROBIN"
            };
            if endpoints.is_empty() {
                for (i, host) in entry.hosts.iter().enumerate() {
                    if check_fqdn(host).is_err() && host != "*" {
                        issues.error(
                            &spec.field("hosts").index(i),
                            format!("hosts must be FQDN if no endpoints are provided for resolution mode {name}: a wildcard cannot be resolved (use NONE or DYNAMIC_DNS)"),
                        );
                    }
                }
            }
            if resolution == ServiceEntryResolution::DnsRoundRobin && endpoints.len() > 1 {
                issues.error(
                    &endpoints_at,
                    format!("there must only be 0 or 1 endpoint for resolution mode {name}"),
                );
            }
            check_all(true, issues);
            if entry.workload_selector.is_some() {
                issues.warn(
                    &selector_at,
                    format!("workloadSelector should not be set when resolution mode is {name}"),
                );
            }
            let tcp = entry.ports.iter().flatten().any(|p| {
                p.protocol
                    .as_deref()
                    .and_then(Protocol::parse)
                    .is_some_and(Protocol::is_tcp)
            });
            if entry.addresses.as_ref().is_some_and(|a| !a.is_empty())
                && tcp
                && entry.hosts.len() > 1
            {
                issues.warn(
                    &spec.field("hosts"),
                    "service entry can not have more than one host specified simultaneously with address and tcp port",
                );
            }
        }
        ServiceEntryResolution::DynamicDns => {
            // DYNAMIC_DNS resolves the host each request names: there is nothing to list.
            if !endpoints.is_empty() {
                issues.error(
                    &endpoints_at,
                    "no endpoints should be provided for resolution type DYNAMIC_DNS",
                );
            }
            if entry.workload_selector.is_some() {
                issues.error(
                    &selector_at,
                    "workloadSelector cannot be set when resolution mode is DYNAMIC_DNS",
                );
            }
            for (i, host) in entry.hosts.iter().enumerate() {
                if !host.starts_with('*') {
                    issues.warn(
                        &spec.field("hosts").index(i),
                        format!("resolution DYNAMIC_DNS is meant for wildcard hosts; {host:?} can use DNS"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::*;
    use crate::validate::Report;
    use serde_json::{json, Value};

    fn check(spec: Value) -> Report {
        run(spec, validate)
    }

    fn https() -> Value {
        json!([{"number": 443, "name": "https", "protocol": "TLS"}])
    }

    #[test]
    fn a_typical_external_service_is_valid() {
        let report = check(
            json!({"hosts": ["api.example.com"], "ports": https(), "location": "MESH_EXTERNAL", "resolution": "DNS"}),
        );
        assert_clean(&report);
    }

    #[test]
    fn hosts() {
        assert_eq!(
            error_fields(&check(json!({"hosts": [], "ports": https()}))),
            ["spec.hosts"]
        );
        assert_eq!(
            error_fields(&check(json!({"hosts": ["*"], "ports": https()}))),
            ["spec.hosts[0]"]
        );
        assert_eq!(
            error_fields(&check(json!({"hosts": ["bad_host"], "ports": https()}))),
            ["spec.hosts[0]"]
        );
        let partial = check(json!({"hosts": ["*foo.example.com"], "ports": https()}));
        assert!(partial.is_valid());
        assert_eq!(partial.warnings[0].field, "spec.hosts[0]");
    }

    #[test]
    fn addresses_and_ports() {
        let report = check(
            json!({"hosts": ["db.internal"], "addresses": ["10.0.0.0/24", "not-an-ip"], "resolution": "DNS",
            "ports": [{"number": 5432, "name": "tcp"}, {"number": 5432, "name": "tcp", "protocol": "SCTP"}]}),
        );
        assert_eq!(
            error_fields(&report),
            [
                "spec.addresses[0]",
                "spec.addresses[1]",
                "spec.ports[1].name",
                "spec.ports[1].number",
                "spec.ports[1].protocol",
            ]
        );
    }

    #[test]
    fn resolution_none_takes_no_endpoints() {
        let report = check(
            json!({"hosts": ["*.example.com"], "ports": https(), "resolution": "NONE",
            "endpoints": [{"address": "10.0.0.1"}]}),
        );
        assert_eq!(error_fields(&report), ["spec.endpoints"]);
        assert!(check(json!({"hosts": ["*.example.com"], "ports": https()})).is_valid());
    }

    #[test]
    fn resolution_static_takes_ip_endpoints_or_a_selector() {
        let report = check(
            json!({"hosts": ["vm.internal"], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}], "resolution": "STATIC",
            "endpoints": [{"address": "10.0.0.1", "ports": {"http": 8080}}, {"address": "vm.example.com"}, {"address": "10.0.0.2", "ports": {"grpc": 9090}}]}),
        );
        assert_eq!(
            error_fields(&report),
            ["spec.endpoints[1].address", "spec.endpoints[2].ports[grpc]"]
        );
        let report =
            check(json!({"hosts": ["vm.internal"], "ports": https(), "resolution": "STATIC"}));
        assert_eq!(error_fields(&report), ["spec"]);
        assert!(check(json!({"hosts": ["vm.internal"], "ports": https(), "resolution": "STATIC", "location": "MESH_INTERNAL",
            "workloadSelector": {"labels": {"app": "vm"}}})).is_valid());
        let both = check(
            json!({"hosts": ["vm.internal"], "ports": https(), "resolution": "STATIC",
            "workloadSelector": {"labels": {"app": "vm"}}, "endpoints": [{"address": "10.0.0.1"}]}),
        );
        assert_eq!(error_fields(&both), ["spec.workloadSelector"]);
    }

    #[test]
    fn resolution_dns_needs_resolvable_names() {
        let report =
            check(json!({"hosts": ["*.example.com"], "ports": https(), "resolution": "DNS"}));
        assert_eq!(error_fields(&report), ["spec.hosts[0]"]);
        assert!(check(
            json!({"hosts": ["*.example.com"], "ports": https(), "resolution": "DNS",
            "endpoints": [{"address": "proxy.example.com"}]})
        )
        .is_valid());
        let report = check(
            json!({"hosts": ["a.example.com"], "ports": https(), "resolution": "DNS_ROUND_ROBIN",
            "endpoints": [{"address": "a1.example.com"}, {"address": "a2.example.com"}]}),
        );
        assert_eq!(error_fields(&report), ["spec.endpoints"]);
        let report = check(
            json!({"hosts": ["a.example.com"], "ports": https(), "resolution": "DNS", "addresses": ["10.0.0.0/8"]}),
        );
        assert_eq!(error_fields(&report), ["spec.addresses[0]"]);
    }

    #[test]
    fn resolution_dynamic_dns() {
        assert!(check(
            json!({"hosts": ["*.googleapis.com"], "ports": https(), "resolution": "DYNAMIC_DNS"})
        )
        .is_valid());
        let report = check(
            json!({"hosts": ["*.googleapis.com"], "ports": https(), "resolution": "DYNAMIC_DNS",
            "endpoints": [{"address": "10.0.0.1"}]}),
        );
        assert_eq!(error_fields(&report), ["spec.endpoints"]);
    }

    #[test]
    fn several_hosts_need_http_or_tls_ports() {
        let report = check(
            json!({"hosts": ["a.example.com", "b.example.com"], "resolution": "DNS",
            "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}, {"number": 5432, "name": "pg", "protocol": "TCP"}]}),
        );
        assert_eq!(error_fields(&report), ["spec.ports[1]"]);
    }

    #[test]
    fn export_to_may_be_no_one() {
        assert!(
            check(json!({"hosts": ["a.example.com"], "ports": https(), "exportTo": ["~"]}))
                .is_valid()
        );
        assert_eq!(
            error_fields(&check(
                json!({"hosts": ["a.example.com"], "ports": https(), "exportTo": ["~", "."]})
            )),
            ["spec.exportTo"]
        );
    }
}
