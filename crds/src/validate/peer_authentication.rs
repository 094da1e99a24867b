//! PeerAuthentication: the workload selector and the port-level mTLS modes.

use crate::istio::PeerAuthenticationSpec;

use super::net::check_port;
use super::policy::check_workload_selector;
use super::report::{FieldPath, Issues};
use super::Context;

pub(super) fn validate(policy: &PeerAuthenticationSpec, _context: &Context, issues: &mut Issues) {
    let spec = FieldPath::root("spec");
    check_workload_selector(policy.selector.as_ref(), &spec.field("selector"), issues);
    let Some(ports) = &policy.port_level_mtls else {
        return;
    };
    let at = spec.field("portLevelMtls");
    if ports.is_empty() {
        issues.error(
            &at,
            "port level mTLS, if defined, must have at least one element",
        );
        return;
    }
    // Ports are ports of the workload, so only a policy that names its workloads can have them.
    let selects = policy
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .is_some_and(|labels| !labels.is_empty());
    if !selects {
        issues.error(
            &at,
            "mesh/namespace peer authentication cannot have port level mTLS: add a selector",
        );
    }
    for port in ports.keys() {
        let checked = port
            .parse::<u32>()
            .map_err(|_| format!("port {port:?} is not a number"))
            .and_then(check_port);
        issues.check(&at.key(port), checked);
    }
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

    #[test]
    fn port_level_mtls_needs_a_selector() {
        assert!(check(json!({"mtls": {"mode": "STRICT"}})).is_valid());
        let selector = json!({"matchLabels": {"app": "legacy"}});
        assert!(check(
            json!({"selector": selector, "portLevelMtls": {"8080": {"mode": "DISABLE"}}})
        )
        .is_valid());
        assert_eq!(
            error_fields(&check(
                json!({"portLevelMtls": {"8080": {"mode": "DISABLE"}}})
            )),
            ["spec.portLevelMtls"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"selector": {}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}})
            )),
            ["spec.portLevelMtls"]
        );
    }

    #[test]
    fn ports_are_valid() {
        let selector = json!({"matchLabels": {"app": "legacy"}});
        let report = check(
            json!({"selector": selector, "portLevelMtls": {"0": {"mode": "DISABLE"}, "70000": {"mode": "STRICT"}}}),
        );
        assert_eq!(
            error_fields(&report),
            ["spec.portLevelMtls[0]", "spec.portLevelMtls[70000]"]
        );
        assert_eq!(
            error_fields(&check(json!({"selector": selector, "portLevelMtls": {}}))),
            ["spec.portLevelMtls"]
        );
    }

    #[test]
    fn selector_labels_are_exact() {
        let report = check(json!({"selector": {"matchLabels": {"app": "leg*"}}}));
        assert_eq!(error_fields(&report), ["spec.selector.matchLabels[app]"]);
    }
}
