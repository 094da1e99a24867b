//! AuthorizationPolicies: selectors matching no workload (IST0127), and sources naming
//! namespaces or service accounts that do not exist (IST0101) — a typo there silently denies
//! (ALLOW) or fails to deny (DENY) what was meant.

use crate::codes::*;
use crate::context::Context;
use crate::labels;
use crate::report::Report;

/// `(namespace, service account)` of a principal `<trust domain>/ns/NS/sa/SA` of this mesh;
/// None for other trust domains and for patterns.
fn principal<'p>(cx: &Context, p: &'p str) -> Option<(&'p str, &'p str)> {
    if p.contains('*') {
        return None;
    }
    let parts: Vec<&str> = p.split('/').collect();
    match parts.as_slice() {
        [td, "ns", ns, "sa", sa] if *td == cx.mesh.trust_domain => Some((ns, sa)),
        _ => None,
    }
}

fn check_namespace(cx: &Context, r: &mut Report, obj: usize, field: &str, ns: &str) -> bool {
    if cx.knows("Namespace") && !ns.contains('*') && !cx.namespace_exists(ns) {
        r.add(
            &REFERENCED_RESOURCE_NOT_FOUND,
            obj,
            field,
            format!("Referenced namespace not found: {ns:?}: no such namespace, so this source never matches; fix the name"),
        );
        return false;
    }
    true
}

fn check_account(cx: &Context, r: &mut Report, obj: usize, field: &str, ns: &str, sa: &str) {
    if check_namespace(cx, r, obj, field, ns)
        && cx.knows("ServiceAccount")
        && cx.namespace_exists(ns)
        && !cx.service_accounts.contains(&(ns, sa))
    {
        r.add(
            &REFERENCED_RESOURCE_NOT_FOUND,
            obj,
            field,
            format!("Referenced service account not found: \"{ns}/{sa}\": no ServiceAccount {sa} exists in namespace {ns} and no workload there runs as it, so this source never matches; fix the name"),
        );
    }
}

pub fn run(cx: &Context, r: &mut Report) {
    for ap in &cx.authorization_policies {
        let ns = cx.object(ap.obj).namespace.as_str();
        if let Some(sel) = ap
            .spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .filter(|l| !l.is_empty())
        {
            let selector = labels::selector_of(sel);
            if cx.knows_workloads() && cx.select_for_policy(&selector, ns).is_empty() {
                r.add(
                    &NO_MATCHING_WORKLOADS_FOUND,
                    ap.obj,
                    "spec.selector.matchLabels",
                    format!("No matching workloads for this resource with the following labels: {}; the policy applies to nothing. Fix the labels", labels::display(&selector)),
                );
            }
        }
        for (i, rule) in ap.spec.rules.iter().flatten().enumerate() {
            for (j, from) in rule.from.iter().flatten().enumerate() {
                let Some(source) = &from.source else { continue };
                let at = |f: &str, k: usize| format!("spec.rules[{i}].from[{j}].source.{f}[{k}]");
                for (f, list) in [
                    ("namespaces", &source.namespaces),
                    ("notNamespaces", &source.not_namespaces),
                ] {
                    for (k, n) in list.iter().flatten().enumerate() {
                        check_namespace(cx, r, ap.obj, &at(f, k), n);
                    }
                }
                for (f, list) in [
                    ("principals", &source.principals),
                    ("notPrincipals", &source.not_principals),
                ] {
                    for (k, p) in list.iter().flatten().enumerate() {
                        if let Some((pns, sa)) = principal(cx, p) {
                            check_account(cx, r, ap.obj, &at(f, k), pns, sa);
                        }
                    }
                }
                for (f, list) in [
                    ("serviceAccounts", &source.service_accounts),
                    ("notServiceAccounts", &source.not_service_accounts),
                ] {
                    for (k, s) in list.iter().flatten().enumerate() {
                        if let Some((sns, sa)) = s.split_once('/').filter(|_| !s.contains('*')) {
                            check_account(cx, r, ap.obj, &at(f, k), sns, sa);
                        }
                    }
                }
            }
        }
    }
}
