//! DestinationRule: the host, its traffic policy, its subsets and who sees it.

use std::collections::BTreeSet;

use crate::istio::DestinationRuleSpec;

use super::hosts::{check_export_to, check_wildcard_domain, ExportToOwner};
use super::names::{check_labels, is_dns_label};
use super::policy::check_workload_selector;
use super::report::{FieldPath, Issues};
use super::traffic_policy::check_traffic_policy;
use super::Context;

pub(super) fn validate(rule: &DestinationRuleSpec, context: &Context, issues: &mut Issues) {
    let spec = FieldPath::root("spec");
    if rule.host.is_empty() {
        issues.error(
            &spec.field("host"),
            "host is required: name a service of the registry",
        );
    } else {
        issues.check(&spec.field("host"), check_wildcard_domain(&rule.host));
    }
    if let Some(policy) = &rule.traffic_policy {
        check_traffic_policy(policy, &spec.field("trafficPolicy"), issues);
    }
    let mut names = BTreeSet::new();
    for (i, subset) in rule.subsets.iter().flatten().enumerate() {
        let at = spec.field("subsets").index(i);
        issues.check(&at.field("name"), check_subset_name(&subset.name));
        if !names.insert(subset.name.as_str()) {
            issues.error(
                &at.field("name"),
                format!("duplicate subset names: {}", subset.name),
            );
        }
        check_labels(subset.labels.as_ref(), &at.field("labels"), issues);
        if let Some(policy) = &subset.traffic_policy {
            check_traffic_policy(policy, &at.field("trafficPolicy"), issues);
        }
    }
    let owner = if rule.workload_selector.is_some() {
        ExportToOwner::DestinationRuleWithSelector
    } else {
        ExportToOwner::Other
    };
    check_export_to(
        rule.export_to.as_ref(),
        context.namespace,
        owner,
        &spec.field("exportTo"),
        issues,
    );
    check_workload_selector(
        rule.workload_selector.as_ref(),
        &spec.field("workloadSelector"),
        issues,
    );
}

/// A subset name: a DNS-1123 label, since it becomes part of Envoy cluster names and routes
/// refer to it.
pub(super) fn check_subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("subset name cannot be empty".into());
    }
    if !is_dns_label(name) {
        return Err(format!(
            "subset name is invalid: {name}; it must be a DNS-1123 label"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::*;
    use crate::validate::Report;
    use serde_json::json;

    fn check(spec: serde_json::Value) -> Report {
        run(spec, validate)
    }

    fn check_in(spec: serde_json::Value, namespace: Option<&str>) -> Report {
        run_in(spec, namespace, &[], validate)
    }

    #[test]
    fn a_typical_rule_is_valid() {
        let report = check(json!({
            "host": "reviews.bookinfo.svc.cluster.local",
            "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
            "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]
        }));
        assert_clean(&report);
    }

    #[test]
    fn host_is_required_and_valid() {
        assert_eq!(error_fields(&check(json!({"host": ""}))), ["spec.host"]);
        assert_eq!(
            error_fields(&check(json!({"host": "bad_host"}))),
            ["spec.host"]
        );
        assert!(check(json!({"host": "*.example.com"})).is_valid());
    }

    #[test]
    fn subsets_are_unique_labels_with_valid_labels() {
        let report = check(json!({"host": "reviews", "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v1", "labels": {"version": "v1b"}},
            {"name": "v_2"},
            {"name": "v3", "labels": {"version": "bad value"}},
            {"name": "v4", "trafficPolicy": {}}
        ]}));
        assert_eq!(
            error_fields(&report),
            [
                "spec.subsets[1].name",
                "spec.subsets[2].name",
                "spec.subsets[3].labels[version]",
                "spec.subsets[4].trafficPolicy",
            ]
        );
    }

    #[test]
    fn workload_selector_only_with_own_namespace_export() {
        let selector = json!({"matchLabels": {"app": "frontend"}});
        assert!(
            check(json!({"host": "api", "workloadSelector": selector, "exportTo": ["."]}))
                .is_valid()
        );
        assert!(check(json!({"host": "api", "workloadSelector": selector})).is_valid());
        assert_eq!(
            error_fields(&check(
                json!({"host": "api", "workloadSelector": selector, "exportTo": ["*"]})
            )),
            ["spec.exportTo"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"host": "api", "workloadSelector": selector, "exportTo": [".", "other"]})
            )),
            ["spec.exportTo"]
        );
        let bad_selector = json!({"matchLabels": {"app": "*"}});
        assert_eq!(
            error_fields(&check(
                json!({"host": "api", "workloadSelector": bad_selector})
            )),
            ["spec.workloadSelector.matchLabels[app]"]
        );
        // Offline, without a namespace, `.` is still the own namespace.
        assert!(check_in(
            json!({"host": "api", "workloadSelector": selector, "exportTo": ["."]}),
            None
        )
        .is_valid());
    }
}
