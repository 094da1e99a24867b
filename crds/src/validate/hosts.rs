//! Host names as Istio uses them: FQDNs, short names, wildcard prefixes (`*.example.com`), the
//! `namespace/host` form of Gateway and Sidecar hosts, references to gateways, `exportTo`, and
//! how two host patterns relate to each other.

use std::collections::BTreeSet;

use super::names::is_dns_label;
use super::net::is_ip;
use super::report::{FieldPath, Issues};

const DOMAIN_MAX: usize = 255;

/// The reserved gateway name meaning "every sidecar of the mesh".
pub(crate) const MESH_GATEWAY: &str = "mesh";

fn check_length(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    if domain.len() > DOMAIN_MAX {
        return Err(format!("domain name {domain:?} too long (max 255)"));
    }
    Ok(())
}

/// Checks the labels of a DNS name; a trailing `.` (fully qualified form) is allowed, an
/// all-numeric last label (which would make it look like an IP address) is not.
fn check_dns_labels(domain: &str, whole: &str) -> Result<(), String> {
    let labels: Vec<&str> = domain.split('.').collect();
    let last = labels.len() - 1;
    let top = if labels[last].is_empty() && last > 0 {
        labels[last - 1]
    } else {
        labels[last]
    };
    if !top.is_empty() && top.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "domain name {whole:?} invalid (top level domain {top:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in labels.iter().enumerate() {
        if i == last && label.is_empty() {
            break;
        }
        if !is_dns_label(label) {
            return Err(format!(
                "domain name {whole:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A fully qualified (or short) DNS name without wildcards.
pub(crate) fn check_fqdn(domain: &str) -> Result<(), String> {
    check_length(domain)?;
    check_dns_labels(domain, domain)
}

/// A label that may carry Istio's wildcard prefix: `*`, or a DNS label optionally preceded by
/// `*` or `*-`.
fn is_wildcard_label(label: &str) -> bool {
    if label == "*" {
        return true;
    }
    let rest = label
        .strip_prefix("*-")
        .or_else(|| label.strip_prefix('*'))
        .unwrap_or(label);
    is_dns_label(rest)
}

/// A DNS name whose first label may be a wildcard: `*`, `*.example.com`, `reviews`.
pub(crate) fn check_wildcard_domain(domain: &str) -> Result<(), String> {
    check_length(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(rest) => check_dns_labels(rest, domain),
        None => Ok(()),
    }
}

/// A wildcard only as the whole first label: `*.example.com` yes, `*example.com` or
/// `a.*.example.com` no.
pub(crate) fn check_no_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host != "*" && !host.starts_with("*.") {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    if host.chars().skip(1).any(|c| c == '*') {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    Ok(())
}

/// The host part of a Gateway or Sidecar host entry: `*`, or a name with a dot (short names are
/// ambiguous there), wildcard prefix only as a whole label. Gateways also take an IP address.
fn check_listener_host(host: &str, is_gateway: bool) -> Vec<String> {
    let mut errors = Vec::new();
    if host != "*" && !host.contains('.') && !(is_gateway && is_ip(host)) {
        errors.push(format!(
            "short names (non FQDN) are not allowed: write {host:?} as a fully qualified name"
        ));
    }
    if let Err(e) = check_wildcard_domain(host) {
        if !(is_gateway && is_ip(host)) {
            errors.push(e);
        }
    }
    if let Err(e) = check_no_partial_wildcard(host) {
        errors.push(e);
    }
    errors
}

/// A host entry of a Gateway server (`host` or `namespace/host`, namespace `*` or `.` or a
/// name) or of a Sidecar egress listener (`namespace/host` only, namespace also `~`).
pub(crate) fn check_namespaced_host(entry: &str, is_gateway: bool) -> Vec<String> {
    let Some((namespace, host)) = entry.split_once('/') else {
        if is_gateway {
            return check_listener_host(entry, true);
        }
        return vec![format!(
            "host {entry:?} must be of form namespace/dnsName, e.g. \"./{entry}\" or \"*/{entry}\""
        )];
    };
    let mut errors = Vec::new();
    if namespace.is_empty() || host.is_empty() {
        errors.push("config namespace and dnsName in host entry cannot be empty".to_string());
    }
    let special = if is_gateway {
        matches!(namespace, "*" | ".")
    } else {
        matches!(namespace, "*" | "." | "~")
    };
    if !special && !namespace.is_empty() && !is_dns_label(namespace) {
        let kind = if is_gateway { "gateway" } else { "sidecar" };
        errors.push(format!("invalid namespace value {namespace:?} in {kind}"));
    }
    if !host.is_empty() {
        errors.extend(check_listener_host(host, is_gateway));
    }
    errors
}

/// A reference to a Gateway from a VirtualService: `mesh`, `namespace/name`, or a bare name
/// (resolved in the VirtualService's namespace). The legacy `name.namespace.svc...` form still
/// works but earns a warning.
pub(crate) fn check_gateway_reference(reference: &str, at: &FieldPath, issues: &mut Issues) {
    match reference.split_once('/') {
        None => {
            if let Some((name, namespace)) = reference.split_once('.') {
                let namespace = namespace.split('.').next().unwrap_or(namespace);
                issues.warn(
                    at,
                    format!(
                        "using legacy gatewayName format {reference:?}; prefer the <namespace>/<name> format: \"{namespace}/{name}\""
                    ),
                );
            }
            issues.check(at, check_fqdn(reference));
        }
        Some((namespace, name)) => {
            if namespace.is_empty() || name.is_empty() {
                issues.error(at, "config namespace and gateway name cannot be empty");
            }
            if !is_dns_label(namespace) {
                issues.error(at, format!("invalid value for namespace: {namespace:?}"));
            }
            if !is_dns_label(name) {
                issues.error(at, format!("invalid value for gateway name: {name:?}"));
            }
        }
    }
}

/// Which resource an `exportTo` list belongs to: only a ServiceEntry may be exported to no one
/// (`~`), and a DestinationRule with a workload selector only to its own namespace.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportToOwner {
    ServiceEntry,
    DestinationRuleWithSelector,
    Other,
}

/// Checks an `exportTo` list: `.` (own namespace), `*` (all), `~` (none, ServiceEntry only) or
/// namespace names, no duplicates, and no `*` or `~` mixed with other entries.
pub(crate) fn check_export_to(
    export_to: Option<&Vec<String>>,
    namespace: Option<&str>,
    owner: ExportToOwner,
    at: &FieldPath,
    issues: &mut Issues,
) {
    let Some(entries) = export_to.filter(|e| !e.is_empty()) else {
        return;
    };
    let mut seen = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry_at = at.index(i);
        // `.` is the own namespace: `.` and the namespace's name are the same entry.
        let key = match (entry.as_str(), namespace) {
            (".", Some(ns)) => ns,
            (other, _) => other,
        };
        if seen.contains(key) {
            if key == entry {
                issues.error(
                    &entry_at,
                    format!("duplicate entries in exportTo for entry {entry}"),
                );
            } else {
                issues.error(
                    &entry_at,
                    format!("duplicate entries in exportTo: . and current namespace {key}"),
                );
            }
            continue;
        }
        let valid = match entry.as_str() {
            "." | "*" => true,
            "~" => owner == ExportToOwner::ServiceEntry,
            name => is_dns_label(name),
        };
        if valid {
            seen.insert(key);
        } else {
            issues.error(
                &entry_at,
                format!("{entry:?} is not allowed in exportTo: use ., * or a namespace name"),
            );
        }
    }
    if owner == ExportToOwner::DestinationRuleWithSelector && !seen.is_empty() {
        let own = seen.contains(".") || namespace.is_some_and(|ns| seen.contains(ns));
        if !own {
            issues.error(at, "destination rule with workload selector cannot have exportTo beyond current namespace");
        } else if seen.len() > 1 {
            issues.error(
                at,
                "destination rule with workload selector cannot have multiple entries in exportTo",
            );
        }
    }
    if seen.contains("*") && entries.len() > 1 {
        issues.error(
            at,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if seen.contains("~") && entries.len() > 1 {
        issues.error(at, "cannot export service entry to no one (~) and someone");
    }
}

/// The part after the wildcard of a wildcard host (`*.example.com` → `.example.com`, `*` → ``).
fn wildcard_suffix(host: &str) -> Option<&str> {
    host.strip_prefix('*')
}

/// Whether every name `a` matches is also matched by `b` (Istio's `host.Name.SubsetOf`).
pub(crate) fn host_is_subset_of(a: &str, b: &str) -> bool {
    match (wildcard_suffix(a), wildcard_suffix(b)) {
        (None, None) => a == b,
        (None, Some(b_suffix)) => a.ends_with(b_suffix),
        (Some(_), None) => false,
        (Some(a_suffix), Some(b_suffix)) => a_suffix.ends_with(b_suffix),
    }
}

/// Whether some name is matched by both `a` and `b` (Istio's `host.Name.Matches`).
pub(crate) fn hosts_overlap(a: &str, b: &str) -> bool {
    host_is_subset_of(a, b) || host_is_subset_of(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdns_and_wildcards() {
        for ok in [
            "reviews",
            "reviews.default.svc.cluster.local",
            "istio.io.",
            "a-b.c1",
        ] {
            assert!(check_fqdn(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "*.example.com",
            "a..b",
            "example.123",
            "-a.com",
            "a_b.com",
        ] {
            assert!(check_fqdn(bad).is_err(), "{bad}");
        }
        for ok in [
            "*",
            "*.example.com",
            "*-foo.example.com",
            "*foo.example.com",
            "reviews",
        ] {
            assert!(check_wildcard_domain(ok).is_ok(), "{ok}");
        }
        for bad in ["a.*.com", "**.com", "", "foo.*"] {
            assert!(check_wildcard_domain(bad).is_err(), "{bad}");
        }
        assert!(check_no_partial_wildcard("*.example.com").is_ok());
        assert!(check_no_partial_wildcard("*foo.example.com").is_err());
    }

    #[test]
    fn namespaced_hosts() {
        assert!(check_namespaced_host("./reviews.default.svc.cluster.local", false).is_empty());
        assert!(check_namespaced_host("*/*", false).is_empty());
        assert!(check_namespaced_host("~/*", false).is_empty());
        assert!(check_namespaced_host("istio-system/*", false).is_empty());
        assert!(!check_namespaced_host("reviews.default.svc", false).is_empty());
        assert!(!check_namespaced_host("./reviews", false).is_empty());
        assert!(!check_namespaced_host("ns/*foo.com", false).is_empty());
        assert!(check_namespaced_host("*", true).is_empty());
        assert!(check_namespaced_host("10.0.0.1", true).is_empty());
        assert!(check_namespaced_host("shop/shop.example.com", true).is_empty());
        assert!(!check_namespaced_host("~/shop.example.com", true).is_empty());
        assert!(!check_namespaced_host("/shop.example.com", true).is_empty());
    }

    #[test]
    fn gateway_references() {
        let at = FieldPath::root("gw");
        let mut issues = Issues::default();
        for ok in ["mesh", "bookinfo-gateway", "istio-system/public"] {
            check_gateway_reference(ok, &at, &mut issues);
        }
        assert!(issues.into_report().is_valid());
        let mut issues = Issues::default();
        check_gateway_reference("public.istio-system.svc.cluster.local", &at, &mut issues);
        let report = issues.into_report();
        assert!(report.is_valid());
        assert!(report.warnings[0].reason.contains("istio-system/public"));
        let mut issues = Issues::default();
        check_gateway_reference("istio-system/", &at, &mut issues);
        assert!(!issues.into_report().is_valid());
    }

    #[test]
    fn export_to() {
        let check = |list: &[&str], owner| {
            let mut issues = Issues::default();
            let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            check_export_to(
                Some(&list),
                Some("shop"),
                owner,
                &FieldPath::root("e"),
                &mut issues,
            );
            issues.into_report()
        };
        assert!(check(&[".", "istio-system"], ExportToOwner::Other).is_valid());
        assert!(check(&["~"], ExportToOwner::ServiceEntry).is_valid());
        assert!(!check(&["~"], ExportToOwner::Other).is_valid());
        assert!(!check(&[".", "shop"], ExportToOwner::Other).is_valid());
        assert!(!check(&["*", "shop"], ExportToOwner::Other).is_valid());
        assert!(check(&["."], ExportToOwner::DestinationRuleWithSelector).is_valid());
        assert!(!check(&["other"], ExportToOwner::DestinationRuleWithSelector).is_valid());
        assert_eq!(
            check(&["Bad_ns"], ExportToOwner::Other).errors[0].field,
            "e[0]"
        );
    }

    #[test]
    fn host_relations() {
        assert!(host_is_subset_of("a.example.com", "*.example.com"));
        assert!(host_is_subset_of("*.a.example.com", "*.example.com"));
        assert!(host_is_subset_of("a.example.com", "*"));
        assert!(!host_is_subset_of("*.example.com", "a.example.com"));
        assert!(!host_is_subset_of(
            "payments.example.com",
            "shop.example.com"
        ));
        assert!(hosts_overlap("*.example.com", "a.example.com"));
        assert!(!hosts_overlap("a.example.com", "b.example.com"));
    }
}
