//! What the security policies share: how they choose the workloads they apply to, by a workload
//! selector or by references to Services, ServiceEntries and Gateways.

use crate::istio::{PolicyTargetReference, WorkloadSelector};

use super::names::check_selector_labels;
use super::report::{FieldPath, Issues};

/// The (group, kind) pairs a policy may target; the group of a core kind is empty.
const TARGET_KINDS: [(&str, &str); 4] = [
    ("", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

/// Checks the labels of a policy's `selector` (when it has one).
pub(crate) fn check_workload_selector(
    selector: Option<&WorkloadSelector>,
    at: &FieldPath,
    issues: &mut Issues,
) {
    if let Some(selector) = selector {
        check_selector_labels(
            selector.match_labels.as_ref(),
            &at.field("matchLabels"),
            issues,
        );
    }
}

/// The ways a policy chooses its workloads.
pub(crate) struct Attachment<'a> {
    pub(crate) selector: Option<&'a WorkloadSelector>,
    pub(crate) target_ref: Option<&'a PolicyTargetReference>,
    pub(crate) target_refs: Option<&'a Vec<PolicyTargetReference>>,
}

/// Checks how a policy attaches: at most one of `selector`, `targetRef` and `targetRefs`, each
/// well-formed. `targetRef` is deprecated in favour of `targetRefs`.
pub(crate) fn check_attachment(attachment: &Attachment, spec: &FieldPath, issues: &mut Issues) {
    let target_refs = attachment.target_refs.filter(|r| !r.is_empty());
    let ways = [
        attachment.selector.is_some(),
        attachment.target_ref.is_some(),
        target_refs.is_some(),
    ];
    if ways.iter().filter(|set| **set).count() > 1 {
        issues.error(
            spec,
            "only one of selector, targetRef or targetRefs can be set",
        );
    }
    check_workload_selector(attachment.selector, &spec.field("selector"), issues);
    if let Some(target) = attachment.target_ref {
        let at = spec.field("targetRef");
        issues.warn(&at, "targetRef is deprecated; use targetRefs");
        check_target(target, &at, issues);
    }
    for (i, target) in target_refs.into_iter().flatten().enumerate() {
        check_target(target, &spec.field("targetRefs").index(i), issues);
    }
}

fn check_target(target: &PolicyTargetReference, at: &FieldPath, issues: &mut Issues) {
    if target.name.is_empty() {
        issues.error(&at.field("name"), "targetRef name must be set");
    }
    if target.namespace.as_deref().is_some_and(|ns| !ns.is_empty()) {
        issues.error(
            &at.field("namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
    let group = target.group.as_deref().unwrap_or_default();
    let group = if group == "core" { "" } else { group };
    if !TARGET_KINDS.contains(&(group, target.kind.as_str())) {
        issues.error(
            &at.field("kind"),
            format!(
                "targetRef must be to a Service, ServiceEntry (networking.istio.io), Gateway or GatewayClass (gateway.networking.k8s.io), but was {:?}/{:?}",
                group, target.kind
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn target(group: Option<&str>, kind: &str, name: &str) -> PolicyTargetReference {
        PolicyTargetReference {
            group: group.map(str::to_string),
            kind: kind.to_string(),
            name: name.to_string(),
            namespace: None,
        }
    }

    fn check(attachment: &Attachment) -> super::super::Report {
        let mut issues = Issues::default();
        check_attachment(attachment, &FieldPath::root("spec"), &mut issues);
        issues.into_report()
    }

    #[test]
    fn one_way_to_attach() {
        let selector = WorkloadSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "api".into())])),
        };
        let refs = vec![target(
            Some("gateway.networking.k8s.io"),
            "Gateway",
            "public",
        )];
        let both = Attachment {
            selector: Some(&selector),
            target_ref: None,
            target_refs: Some(&refs),
        };
        assert_eq!(check(&both).errors[0].field, "spec");
        let refs_only = Attachment {
            selector: None,
            target_ref: None,
            target_refs: Some(&refs),
        };
        assert!(check(&refs_only).is_valid());
    }

    #[test]
    fn targets_must_be_known_kinds_in_the_own_namespace() {
        let mut other_ns = target(None, "Service", "api");
        other_ns.namespace = Some("other".into());
        let refs = vec![
            target(None, "Service", "api"),
            target(Some("apps"), "Deployment", "api"),
            other_ns,
            target(Some("networking.istio.io"), "ServiceEntry", ""),
        ];
        let report = check(&Attachment {
            selector: None,
            target_ref: None,
            target_refs: Some(&refs),
        });
        let fields: Vec<&str> = report.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.targetRefs[1].kind",
                "spec.targetRefs[2].namespace",
                "spec.targetRefs[3].name"
            ]
        );
    }
}
