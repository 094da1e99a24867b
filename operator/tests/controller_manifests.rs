//! The operator's own objects and the static kinds table, checked against the renderer: RBAC
//! without wildcards that covers everything the operator applies and everything the roles it
//! creates grant (RBAC escalation prevention), and typed Kubernetes objects.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use mesh_operator::controller::kinds::{self, RENDERED};
use mesh_operator::controller::operator_manifests;
use mesh_operator::{render, InstallInput, Manifest};
use serde_json::Value;

fn render_profile(profile: &str, sets: &[&str]) -> Vec<Manifest> {
    let install = InstallInput {
        profile: Some(profile.to_owned()),
        overlays: Vec::new(),
        sets: sets.iter().map(|s| (*s).to_owned()).collect(),
    }
    .resolve()
    .expect("profile resolves");
    render(&install)
}

/// Renders covering every kind and every role the renderer can produce.
fn all_renders() -> Vec<Manifest> {
    let mut out = Vec::new();
    for (profile, sets) in [
        ("default", vec![]),
        ("demo", vec![]),
        ("minimal", vec![]),
        ("empty", vec![]),
        (
            "demo",
            vec![
                "addons.jaeger.enabled=false",
                "addons.zipkin.enabled=true",
                "revision=canary",
            ],
        ),
        ("default", vec!["namespace=elsewhere"]),
    ] {
        out.extend(render_profile(profile, &sets));
    }
    out
}

fn cluster_role() -> ClusterRole {
    let objects = operator_manifests("mesh-system", "ghcr.io/meshctl/mesh-operator:test");
    let role = objects
        .iter()
        .find(|o| o["kind"] == "ClusterRole")
        .expect("ClusterRole")
        .clone();
    serde_json::from_value(role).expect("typed ClusterRole")
}

/// `(group, resource)` → verbs the rules grant, with resourceNames-restricted rules kept apart.
fn grants(rules: &[PolicyRule]) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in rules {
        if rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()) {
            continue;
        }
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                out.entry((group.clone(), resource.clone()))
                    .or_default()
                    .extend(rule.verbs.iter().cloned());
            }
        }
    }
    out
}

#[test]
fn every_rendered_kind_is_in_the_table() {
    for m in all_renders() {
        assert!(
            kinds::lookup(m.api_version(), m.kind()).is_some(),
            "{} ({} {}) is not in controller::kinds::RENDERED",
            m.display_name(),
            m.api_version(),
            m.kind()
        );
    }
}

#[test]
fn operator_objects_are_typed_and_named() {
    let objects = operator_manifests("mesh-system", "ghcr.io/meshctl/mesh-operator:1.0");
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment"
        ]
    );
    let _: Namespace = serde_json::from_value(objects[0].clone()).unwrap();
    let _: ServiceAccount = serde_json::from_value(objects[1].clone()).unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(objects[3].clone()).unwrap();
    assert_eq!(binding.role_ref.name, "mesh-operator-mesh-system");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "mesh-operator", Some("mesh-system"))
    );
    let deployment: Deployment = serde_json::from_value(objects[4].clone()).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("mesh-operator"));
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("ghcr.io/meshctl/mesh-operator:1.0")
    );
    let env: BTreeSet<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        env.contains("POD_NAMESPACE") && env.contains("POD_NAME"),
        "{env:?}"
    );
    // Never owned by a MeshInstall: pruning must not be able to remove the operator.
    for o in &objects {
        let labels = o["metadata"]["labels"].as_object().unwrap();
        assert!(
            !labels.contains_key("install.meshctl.dev/owner-name"),
            "{o}"
        );
        assert_eq!(
            labels["app.kubernetes.io/managed-by"],
            Value::from("meshctl")
        );
    }
}

#[test]
fn cluster_role_has_no_wildcards() {
    for rule in cluster_role().rules.unwrap() {
        let all = rule
            .api_groups
            .iter()
            .flatten()
            .chain(rule.resources.iter().flatten())
            .chain(rule.verbs.iter())
            .chain(rule.non_resource_urls.iter().flatten());
        for item in all {
            assert!(!item.contains('*'), "wildcard in {rule:?}");
        }
        for verb in &rule.verbs {
            assert!(
                !matches!(verb.as_str(), "escalate" | "bind" | "impersonate"),
                "{rule:?}"
            );
        }
    }
}

#[test]
fn cluster_role_manages_exactly_the_rendered_kinds() {
    let granted = grants(&cluster_role().rules.unwrap());
    for kind in RENDERED {
        let verbs = granted
            .get(&(kind.group.to_owned(), kind.plural.to_owned()))
            .unwrap_or_else(|| panic!("no rule for {}", kind.resource_name()));
        for verb in [
            "get", "list", "watch", "create", "patch", "update", "delete",
        ] {
            assert!(
                verbs.contains(verb),
                "{verb} {} missing",
                kind.resource_name()
            );
        }
    }
    // Nothing else may be deleted.
    let deletable: BTreeSet<String> = granted
        .iter()
        .filter(|(_, verbs)| verbs.contains("delete"))
        .map(|((g, r), _)| {
            if g.is_empty() {
                r.clone()
            } else {
                format!("{r}.{g}")
            }
        })
        .collect();
    let rendered: BTreeSet<String> = RENDERED.iter().map(|k| k.resource_name()).collect();
    let extra: Vec<_> = deletable.difference(&rendered).collect();
    assert!(
        extra.is_empty(),
        "delete granted beyond the rendered kinds: {extra:?}"
    );

    let own = |r: &str| {
        granted
            .get(&("install.meshctl.dev".into(), r.into()))
            .cloned()
    };
    assert!(own("meshinstalls").is_some_and(|v| v.contains("watch") && v.contains("patch")));
    assert!(own("meshinstalls/status").is_some_and(|v| v.contains("patch")));
    assert!(own("meshinstalls/finalizers").is_some_and(|v| v.contains("update")));
    assert!(granted
        .get(&("coordination.k8s.io".into(), "leases".into()))
        .is_some_and(|v| v.contains("create") && v.contains("update")));
    assert!(granted
        .get(&("events.k8s.io".into(), "events".into()))
        .is_some_and(|v| v.contains("create")));
}

/// The API server lets the operator create a Role or ClusterRole only if it holds every
/// permission in it; check that against every role any render produces.
#[test]
fn cluster_role_covers_every_rendered_role() {
    let role = cluster_role();
    let granted = grants(role.rules.as_ref().unwrap());
    let urls: BTreeMap<String, BTreeSet<String>> = role
        .rules
        .iter()
        .flatten()
        .flat_map(|r| {
            r.non_resource_urls
                .iter()
                .flatten()
                .map(|u| (u.clone(), r.verbs.iter().cloned().collect::<BTreeSet<_>>()))
        })
        .collect();
    for m in all_renders() {
        if !matches!(m.kind(), "ClusterRole" | "Role") {
            continue;
        }
        let rules: Vec<PolicyRule> =
            serde_json::from_value(m.object["rules"].clone()).expect("rules");
        for rule in rules {
            for verb in &rule.verbs {
                for url in rule.non_resource_urls.iter().flatten() {
                    assert!(
                        urls.get(url).is_some_and(|v| v.contains(verb)),
                        "{}: {verb} {url} not held by the operator",
                        m.display_name()
                    );
                }
                for group in rule.api_groups.iter().flatten() {
                    for resource in rule.resources.iter().flatten() {
                        assert!(
                            granted
                                .get(&(group.clone(), resource.clone()))
                                .is_some_and(|v| v.contains(verb)),
                            "{}: {verb} {resource} in group {group:?} not held by the operator",
                            m.display_name()
                        );
                    }
                }
            }
        }
    }
}
