//! PeerAuthentication and AuthorizationPolicy for the proxies, and which of them apply to a
//! workload, with Istio's precedence.
//!
//! PeerAuthentication: the one selecting the workload, else its namespace's (no selector),
//! else the root namespace's, else the mesh config's `defaultMtlsMode`; a level whose mode is
//! UNSET inherits the next one's; `portLevelMtls` only from a policy with a selector (Istio
//! refuses it elsewhere). AuthorizationPolicy: every policy of the root namespace without a
//! selector, of the workload's namespace without a selector, and of its namespace selecting it.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use mesh_proxy_config::{AuthorizationPolicy, MtlsMode, MutualTls, PeerAuthentication};
use serde_json::{json, Value};

use super::convert::{into_proxy_type, Unusable};

/// A policy and the workloads it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Scoped<T> {
    pub namespace: String,
    pub name: String,
    /// `selector.matchLabels`; None: the whole namespace.
    pub selector: Option<BTreeMap<String, String>>,
    pub policy: T,
}

fn selector(spec: &Value) -> Option<BTreeMap<String, String>> {
    let labels = spec["selector"]["matchLabels"].as_object()?;
    Some(
        labels
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect(),
    )
}

fn meta(o: &DynamicObject) -> (String, String) {
    (
        o.metadata.namespace.clone().unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    )
}

pub fn peer_authentication(o: &DynamicObject) -> Result<Scoped<PeerAuthentication>, Unusable> {
    let (namespace, name) = meta(o);
    let spec = &o.data["spec"];
    let mut value = json!({"mtls": spec["mtls"]});
    if spec["mtls"].is_null() {
        value = json!({});
    }
    if spec["portLevelMtls"].is_object() {
        value["portLevelMtls"] = spec["portLevelMtls"].clone();
    }
    let mut ignored = Vec::new();
    let policy = into_proxy_type(value, &mut ignored)?;
    Ok(Scoped {
        namespace,
        name,
        selector: selector(spec),
        policy,
    })
}

pub fn authorization_policy(o: &DynamicObject) -> Result<Scoped<AuthorizationPolicy>, Unusable> {
    let (namespace, name) = meta(o);
    let spec = &o.data["spec"];
    if spec["action"] == "CUSTOM" {
        return Err(Unusable {
            field: "spec.action".to_owned(),
            reason: "CUSTOM (external authorization) is not implemented by mesh-proxy; the policy is not applied".to_owned(),
        });
    }
    let mut value = json!({"name": name, "namespace": namespace});
    for key in ["action", "rules"] {
        if !spec[key].is_null() {
            value[key] = spec[key].clone();
        }
    }
    let mut ignored = Vec::new();
    let policy = into_proxy_type(value, &mut ignored)?;
    Ok(Scoped {
        namespace,
        name,
        selector: selector(spec),
        policy,
    })
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The workload's PeerAuthentication, layers resolved.
pub fn peer_authentication_for(
    policies: &[Scoped<PeerAuthentication>],
    namespace: &str,
    labels: &BTreeMap<String, String>,
    root_namespace: &str,
    mesh_default: MtlsMode,
) -> PeerAuthentication {
    let oldest_first =
        |a: &&Scoped<PeerAuthentication>, b: &&Scoped<PeerAuthentication>| a.name.cmp(&b.name);
    let mut workload: Vec<&Scoped<_>> = policies
        .iter()
        .filter(|p| {
            p.namespace == namespace && p.selector.as_ref().is_some_and(|s| selects(s, labels))
        })
        .collect();
    workload.sort_by(oldest_first);
    let namespace_wide = policies
        .iter()
        .find(|p| p.namespace == namespace && p.selector.is_none());
    let mesh_wide = policies
        .iter()
        .find(|p| p.namespace == root_namespace && p.selector.is_none());
    let mut mode = mesh_default;
    for layer in [mesh_wide, namespace_wide, workload.first().copied()]
        .into_iter()
        .flatten()
    {
        if layer.policy.mtls.mode != MtlsMode::Unset {
            mode = layer.policy.mtls.mode;
        }
    }
    PeerAuthentication {
        mtls: MutualTls { mode },
        port_level_mtls: workload
            .first()
            .map(|p| p.policy.port_level_mtls.clone())
            .unwrap_or_default(),
    }
}

/// The AuthorizationPolicies that apply to the workload.
pub fn authorization_policies_for(
    policies: &[Scoped<AuthorizationPolicy>],
    namespace: &str,
    labels: &BTreeMap<String, String>,
    root_namespace: &str,
) -> Vec<AuthorizationPolicy> {
    policies
        .iter()
        .filter(|p| match &p.selector {
            None => p.namespace == namespace || p.namespace == root_namespace,
            Some(s) => p.namespace == namespace && selects(s, labels),
        })
        .map(|p| p.policy.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, ns: &str, name: &str, spec: Value) -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "security.istio.io/v1", "kind": kind,
            "metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .expect("object")
    }

    fn labels(app: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_owned(), app.to_owned())])
    }

    #[test]
    fn peer_authentication_layers_inherit_as_istio_does() {
        let pas = vec![
            peer_authentication(&object(
                "PeerAuthentication",
                "mesh-system",
                "default",
                json!({"mtls": {"mode": "STRICT"}}),
            ))
            .expect("mesh"),
            peer_authentication(&object(
                "PeerAuthentication",
                "shop",
                "default",
                json!({"mtls": {"mode": "UNSET"}}),
            ))
            .expect("ns"),
            peer_authentication(&object(
                "PeerAuthentication",
                "shop",
                "legacy",
                json!({
                "selector": {"matchLabels": {"app": "legacy"}}, "mtls": {"mode": "PERMISSIVE"},
                "portLevelMtls": {"8080": {"mode": "DISABLE"}}}),
            ))
            .expect("workload"),
        ];
        let web = peer_authentication_for(
            &pas,
            "shop",
            &labels("web"),
            "mesh-system",
            MtlsMode::Permissive,
        );
        assert_eq!(
            web.mtls.mode,
            MtlsMode::Strict,
            "UNSET in the namespace inherits the mesh's STRICT"
        );
        assert!(web.port_level_mtls.is_empty());
        let legacy = peer_authentication_for(
            &pas,
            "shop",
            &labels("legacy"),
            "mesh-system",
            MtlsMode::Permissive,
        );
        assert_eq!(legacy.mtls.mode, MtlsMode::Permissive);
        assert_eq!(legacy.port_level_mtls[&8080].mode, MtlsMode::Disable);
        let elsewhere = peer_authentication_for(
            &pas[1..],
            "bank",
            &labels("x"),
            "mesh-system",
            MtlsMode::Permissive,
        );
        assert_eq!(
            elsewhere.mtls.mode,
            MtlsMode::Permissive,
            "the mesh default"
        );
    }

    #[test]
    fn authorization_policies_apply_by_namespace_selector_and_root() {
        let aps = vec![
            authorization_policy(&object("AuthorizationPolicy", "mesh-system", "deny-bad", json!({"action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["bad"]}}]}]}))).expect("root"),
            authorization_policy(&object("AuthorizationPolicy", "shop", "ratings", json!({"selector": {"matchLabels": {"app": "ratings"}}, "action": "ALLOW",
                "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/reviews"]}}], "to": [{"operation": {"methods": ["GET"]}}]}]}))).expect("workload"),
        ];
        let names = |v: Vec<AuthorizationPolicy>| v.into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(
            names(authorization_policies_for(
                &aps,
                "shop",
                &labels("ratings"),
                "mesh-system"
            )),
            ["deny-bad", "ratings"]
        );
        assert_eq!(
            names(authorization_policies_for(
                &aps,
                "shop",
                &labels("web"),
                "mesh-system"
            )),
            ["deny-bad"]
        );
        let custom = authorization_policy(&object(
            "AuthorizationPolicy",
            "shop",
            "ext",
            json!({"action": "CUSTOM", "provider": {"name": "opa"}}),
        ));
        assert!(custom
            .expect_err("CUSTOM")
            .reason
            .contains("not implemented"));
    }
}
