//! Whether a pod gets a sidecar: Istio's rules, in Istio's order.

use serde_json::Value;

use crate::config::{Policy, PolicyMode};
use crate::names::{ANNOTATION_INJECT, LABEL_INJECT, SYSTEM_NAMESPACES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Inject,
    /// Left alone, and why, in a line a person understands.
    Skip(String),
}

/// `sidecar.istio.io/inject` as Istio reads it: `true`/`y`/`yes`/`on` and their opposites.
pub fn switch(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "y" | "yes" | "on" => Some(true),
        "false" | "n" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The pod's own say, the label winning over the annotation (`meta` = the pod's metadata), and
/// which of the two said it. The analyzers read it too, to respect a pod's opt-out.
pub fn explicit(meta: &Value) -> Option<(bool, &'static str)> {
    let label = meta["labels"][LABEL_INJECT].as_str().and_then(switch);
    if let Some(v) = label {
        return Some((v, "label"));
    }
    meta["annotations"][ANNOTATION_INJECT]
        .as_str()
        .and_then(switch)
        .map(|v| (v, "annotation"))
}

/// Decides for a pod template (`meta` = its metadata, `spec` = its pod spec) in `namespace`.
pub fn decide(meta: &Value, spec: &Value, namespace: Option<&str>, policy: &Policy) -> Decision {
    if spec["hostNetwork"].as_bool() == Some(true) {
        return Decision::Skip(
            "hostNetwork pods share the node's network and are never injected".to_owned(),
        );
    }
    if let Some(ns) = namespace.filter(|ns| SYSTEM_NAMESPACES.contains(ns)) {
        return Decision::Skip(format!(
            "namespace {ns} is a Kubernetes system namespace and is never injected"
        ));
    }
    match explicit(meta) {
        Some((false, how)) => {
            return Decision::Skip(format!("{LABEL_INJECT} is \"false\" ({how})"));
        }
        Some((true, _)) => return Decision::Inject,
        None => {}
    }
    let labels = &meta["labels"];
    if policy
        .never_inject_selector
        .iter()
        .any(|s| selector_matches(s, labels))
    {
        return Decision::Skip("matched by neverInjectSelector of the injector config".to_owned());
    }
    if policy
        .always_inject_selector
        .iter()
        .any(|s| selector_matches(s, labels))
    {
        return Decision::Inject;
    }
    if policy.policy == PolicyMode::Disabled {
        return Decision::Skip(format!(
            "the injection policy is disabled and the pod does not ask for it with {LABEL_INJECT}=true"
        ));
    }
    Decision::Inject
}

/// A Kubernetes LabelSelector (`matchLabels`, `matchExpressions`) against a label map.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let labels_match = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let expressions_match = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str().unwrap_or_default() {
                "In" => label(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => !label(key).is_some_and(|v| values.contains(&v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        });
    labels_match && expressions_match
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enabled() -> Policy {
        Policy::default()
    }

    #[test]
    fn host_network_and_system_namespaces_are_skipped() {
        let d = decide(
            &json!({}),
            &json!({"hostNetwork": true}),
            Some("shop"),
            &enabled(),
        );
        assert!(matches!(d, Decision::Skip(why) if why.contains("hostNetwork")));
        let d = decide(&json!({}), &json!({}), Some("kube-system"), &enabled());
        assert!(matches!(d, Decision::Skip(why) if why.contains("namespace kube-system")));
        // Even when asked for: the node's network is not the pod's to capture.
        let meta = json!({"labels": {"sidecar.istio.io/inject": "true"}});
        assert!(matches!(
            decide(&meta, &json!({"hostNetwork": true}), None, &enabled()),
            Decision::Skip(_)
        ));
    }

    #[test]
    fn the_label_wins_over_the_annotation() {
        let meta = json!({"labels": {"sidecar.istio.io/inject": "true"}, "annotations": {"sidecar.istio.io/inject": "false"}});
        assert_eq!(
            decide(&meta, &json!({}), None, &enabled()),
            Decision::Inject
        );
        let meta = json!({"labels": {"sidecar.istio.io/inject": "false"}, "annotations": {"sidecar.istio.io/inject": "true"}});
        assert_eq!(
            decide(&meta, &json!({}), None, &enabled()),
            Decision::Skip("sidecar.istio.io/inject is \"false\" (label)".to_owned())
        );
        let meta = json!({"annotations": {"sidecar.istio.io/inject": "no"}});
        assert_eq!(
            decide(&meta, &json!({}), None, &enabled()),
            Decision::Skip("sidecar.istio.io/inject is \"false\" (annotation)".to_owned())
        );
    }

    #[test]
    fn policy_and_selectors() {
        let disabled = Policy {
            policy: PolicyMode::Disabled,
            always_inject_selector: vec![json!({"matchLabels": {"mesh": "always"}})],
            never_inject_selector: vec![
                json!({"matchExpressions": [{"key": "legacy", "operator": "Exists"}]}),
            ],
            ..Policy::default()
        };
        assert!(
            matches!(decide(&json!({}), &json!({}), None, &disabled), Decision::Skip(why) if why.contains("policy is disabled"))
        );
        let always = json!({"labels": {"mesh": "always"}});
        assert_eq!(
            decide(&always, &json!({}), None, &disabled),
            Decision::Inject
        );
        let legacy = json!({"labels": {"mesh": "always", "legacy": "1"}});
        assert!(
            matches!(decide(&legacy, &json!({}), None, &disabled), Decision::Skip(why) if why.contains("neverInjectSelector"))
        );
        let asked = json!({"labels": {"sidecar.istio.io/inject": "true", "legacy": "1"}});
        assert_eq!(
            decide(&asked, &json!({}), None, &disabled),
            Decision::Inject
        );
    }

    #[test]
    fn selector_operators() {
        let labels = json!({"app": "web", "tier": "front"});
        let sel = |e: Value| json!({"matchExpressions": [e]});
        assert!(selector_matches(
            &sel(json!({"key": "app", "operator": "In", "values": ["web", "api"]})),
            &labels
        ));
        assert!(!selector_matches(
            &sel(json!({"key": "app", "operator": "NotIn", "values": ["web"]})),
            &labels
        ));
        assert!(selector_matches(
            &sel(json!({"key": "x", "operator": "DoesNotExist"})),
            &labels
        ));
        assert!(!selector_matches(
            &sel(json!({"key": "x", "operator": "Exists"})),
            &labels
        ));
        assert!(selector_matches(
            &json!({"matchLabels": {"tier": "front"}}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"tier": "back"}}),
            &labels
        ));
    }
}
