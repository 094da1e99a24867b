//! The operator's own objects: Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding and
//! Deployment, as `meshctl install` applies them before the first MeshInstall.
//!
//! The ClusterRole names every resource and verb; there is no wildcard. It has three parts:
//!
//! 1. managing what the renderer renders: get, list, watch, create, patch, update, delete on
//!    exactly the kinds in [`kinds::RENDERED`](super::kinds::RENDERED);
//! 2. its own API: MeshInstalls (and their status and finalizers), its leader Lease, Events,
//!    and reading pods to explain why a Deployment is not ready;
//! 3. the union of every rule of every Role and ClusterRole the renderer can produce.
//!
//! Part 3 is what RBAC escalation prevention asks for: the API server lets a subject create or
//! bind a role only if the subject already holds every permission in it, or holds `escalate`
//! and `bind`. `escalate`/`bind` restricted by resourceNames cannot work here: the rendered
//! role names depend on the install namespace and revision, which are only known per
//! MeshInstall, and `escalate` on a role the operator may write amounts to any permission at
//! all. Holding the union instead keeps the operator's power exactly as large as what it hands
//! to meshd and the add-ons. `resourceNames` are dropped from the union (the rendered names vary
//! per install), which widens those few rules to the whole resource.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::kinds::RENDERED;
use super::{LABEL_MANAGED_BY, MANAGED_BY};
use crate::{render, InstallInput};

/// Name of the operator's ServiceAccount and Deployment; its ClusterRole and ClusterRoleBinding
/// are `mesh-operator-<namespace>`, as the renderer names cluster-scoped objects.
pub const NAME: &str = "mesh-operator";
/// Port of `/metrics`, `/healthz` and `/readyz` in the operator's pod.
pub const METRICS_PORT: u16 = 9090;

const MANAGE_VERBS: &[&str] = &[
    "get", "list", "watch", "create", "patch", "update", "delete",
];

/// The operator's objects in apply order, running `image` in `namespace`.
pub fn operator_manifests(namespace: &str, image: &str) -> Vec<Value> {
    let labels = json!({
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/component": "operator",
        LABEL_MANAGED_BY: MANAGED_BY,
        "install.meshctl.dev/version": crate::VERSION,
    });
    let selector = json!({"app.kubernetes.io/name": NAME});
    let cluster_name = cluster_scoped_name(namespace);
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {LABEL_MANAGED_BY: MANAGED_BY}},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cluster_name, "labels": labels},
            "rules": cluster_role_rules(),
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": NAME,
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": 65532,
                            "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": NAME,
                            "image": image,
                            "args": [
                                format!("--metrics-addr=0.0.0.0:{METRICS_PORT}"),
                                "--leader-election=true",
                                // One operator per install namespace: each reconciles only
                                // the MeshInstalls beside it, so installs in two namespaces
                                // never have two operators fighting over one object.
                                format!("--watch-namespace={namespace}"),
                            ],
                            "env": [
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                {"name": "RUST_LOG", "value": "info"},
                            ],
                            "ports": [{"name": "http-metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http-metrics"},
                                "periodSeconds": 10,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http-metrics"},
                                "periodSeconds": 5,
                            },
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }],
                    },
                },
            },
        }),
    ]
}

/// `mesh-operator-<namespace>`: the ClusterRole and ClusterRoleBinding of the operator running in
/// `namespace`.
pub fn cluster_scoped_name(namespace: &str) -> String {
    format!("{NAME}-{namespace}")
}

/// `(apiGroup, resource)` → verbs; and non-resource URL → verbs.
#[derive(Default)]
struct Grants {
    resources: BTreeMap<(String, String), BTreeSet<String>>,
    urls: BTreeMap<String, BTreeSet<String>>,
}

impl Grants {
    fn add(&mut self, group: &str, resource: &str, verbs: &[&str]) {
        let entry = self
            .resources
            .entry((group.to_owned(), resource.to_owned()))
            .or_default();
        entry.extend(verbs.iter().map(|v| (*v).to_owned()));
    }

    fn add_rule(&mut self, rule: &Value) {
        let strings = |key: &str| -> Vec<String> {
            rule.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let verbs = strings("verbs");
        for url in strings("nonResourceURLs") {
            self.urls
                .entry(url)
                .or_default()
                .extend(verbs.iter().cloned());
        }
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                self.resources
                    .entry((group.clone(), resource))
                    .or_default()
                    .extend(verbs.iter().cloned());
            }
        }
    }

    /// Rules grouped by (apiGroup, verbs), sorted, so the output is stable.
    fn rules(&self) -> Vec<Value> {
        let mut grouped: BTreeMap<(String, Vec<String>), Vec<String>> = BTreeMap::new();
        for ((group, resource), verbs) in &self.resources {
            grouped
                .entry((group.clone(), verbs.iter().cloned().collect()))
                .or_default()
                .push(resource.clone());
        }
        let mut rules: Vec<Value> = grouped
            .into_iter()
            .map(|((group, verbs), resources)| {
                json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
            })
            .collect();
        let mut by_verbs: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
        for (url, verbs) in &self.urls {
            by_verbs
                .entry(verbs.iter().cloned().collect())
                .or_default()
                .push(url.clone());
        }
        for (verbs, urls) in by_verbs {
            rules.push(json!({"nonResourceURLs": urls, "verbs": verbs}));
        }
        rules
    }
}

/// Installs whose renders together hold every Role and ClusterRole the renderer can produce.
fn role_sources() -> Vec<InstallInput> {
    let input = |profile: &str, sets: &[&str]| InstallInput {
        profile: Some(profile.to_owned()),
        overlays: Vec::new(),
        sets: sets.iter().map(|s| (*s).to_owned()).collect(),
    };
    vec![
        input("default", &[]),
        input("demo", &[]),
        input(
            "demo",
            &["addons.jaeger.enabled=false", "addons.zipkin.enabled=true"],
        ),
    ]
}

/// The operator's ClusterRole rules (see the module documentation).
pub fn cluster_role_rules() -> Vec<Value> {
    let mut grants = Grants::default();
    for kind in RENDERED {
        grants.add(kind.group, kind.plural, MANAGE_VERBS);
    }
    let own = "install.meshctl.dev";
    grants.add(
        own,
        "meshinstalls",
        &["get", "list", "watch", "patch", "update"],
    );
    grants.add(own, "meshinstalls/status", &["get", "patch", "update"]);
    grants.add(own, "meshinstalls/finalizers", &["update"]);
    grants.add(
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    );
    grants.add("events.k8s.io", "events", &["create", "patch"]);
    grants.add("", "pods", &["get", "list", "watch"]);

    for input in role_sources() {
        let Ok(install) = input.resolve() else {
            continue;
        };
        for manifest in render(&install) {
            if matches!(manifest.kind(), "ClusterRole" | "Role") {
                for rule in manifest.object["rules"].as_array().into_iter().flatten() {
                    grants.add_rule(rule);
                }
            }
        }
    }
    grants.rules()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_sources_resolve() {
        for input in role_sources() {
            assert!(input.resolve().is_ok(), "{input:?}");
        }
    }
}
