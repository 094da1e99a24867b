//! Whether a namespace and a pod are meant to have the sidecar, by the switches the injection
//! webhook reads (see operator/src/render/controlplane.rs and inject/src/decide.rs).

use serde_json::{Map, Value};

use mesh_inject::decide::explicit;
use mesh_inject::names::SYSTEM_NAMESPACES;

pub const LABEL_INJECTION: &str = "istio-injection";
pub const LABEL_REVISION: &str = "istio.io/rev";

/// A namespace's injection labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceInjection {
    /// `istio-injection=enabled`, or `istio.io/rev=<rev>`.
    Enabled,
    /// `istio-injection` set to anything else (usually `disabled`).
    Disabled,
    /// Neither label.
    Unlabelled,
}

pub fn namespace_injection(labels: &Map<String, Value>) -> NamespaceInjection {
    let legacy = labels.get(LABEL_INJECTION).and_then(Value::as_str);
    let revision = labels.get(LABEL_REVISION).and_then(Value::as_str);
    match (legacy, revision) {
        (Some("enabled"), _) => NamespaceInjection::Enabled,
        (Some(_), _) => NamespaceInjection::Disabled,
        (None, Some(_)) => NamespaceInjection::Enabled,
        (None, None) => NamespaceInjection::Unlabelled,
    }
}

pub fn is_system_namespace(namespace: &str) -> bool {
    SYSTEM_NAMESPACES.contains(&namespace)
}

/// Whether the webhook injects a pod with this metadata and spec into a namespace in `state`:
/// the pod's own switch wins (label over annotation), then the namespace's labels.
pub fn pod_is_injected(
    meta: &Value,
    spec: &Value,
    namespace: &str,
    state: &NamespaceInjection,
) -> bool {
    if spec["hostNetwork"].as_bool() == Some(true) || is_system_namespace(namespace) {
        return false;
    }
    match explicit(meta) {
        Some((choice, _)) => choice && *state != NamespaceInjection::Disabled,
        None => *state == NamespaceInjection::Enabled,
    }
}

/// Whether a pod spec has the proxy container (a regular container, or a native sidecar).
pub fn has_proxy(spec: &Value) -> bool {
    ["containers", "initContainers"].iter().any(|list| {
        spec[*list].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["name"] == mesh_inject::names::PROXY_CONTAINER)
        })
    })
}
