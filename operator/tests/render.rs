//! The renderer's output for every profile: which objects, where, labelled how, in which order,
//! and that each object is a valid instance of its Kubernetes type.

use std::collections::BTreeSet;

use mesh_operator::render::{
    self, Manifest, LABEL_COMPONENT, LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE,
};
use mesh_operator::InstallInput;
use serde_json::Value;

fn render_profile(profile: &str, sets: &[&str]) -> Vec<Manifest> {
    let install = InstallInput {
        profile: Some(profile.to_owned()),
        overlays: Vec::new(),
        sets: sets.iter().map(|s| (*s).to_owned()).collect(),
    }
    .resolve()
    .expect("profile resolves");
    render::render(&install)
}

fn names(manifests: &[Manifest]) -> BTreeSet<String> {
    manifests.iter().map(|m| m.display_name()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

const ISTIO_CRDS: &[&str] = &[
    "CustomResourceDefinition authorizationpolicies.security.istio.io",
    "CustomResourceDefinition destinationrules.networking.istio.io",
    "CustomResourceDefinition gateways.networking.istio.io",
    "CustomResourceDefinition peerauthentications.security.istio.io",
    "CustomResourceDefinition requestauthentications.security.istio.io",
    "CustomResourceDefinition serviceentries.networking.istio.io",
    "CustomResourceDefinition sidecars.networking.istio.io",
    "CustomResourceDefinition virtualservices.networking.istio.io",
    "CustomResourceDefinition workloadentries.networking.istio.io",
];

const CONTROL_PLANE: &[&str] = &[
    "Namespace mesh-system",
    "ServiceAccount mesh-system/meshd",
    "ClusterRole meshd-mesh-system",
    "ClusterRoleBinding meshd-mesh-system",
    "Role mesh-system/meshd",
    "RoleBinding mesh-system/meshd",
    "ConfigMap mesh-system/mesh",
    "ConfigMap mesh-system/mesh-sidecar-injector",
    "Service mesh-system/meshd",
    "Deployment mesh-system/meshd",
    "MutatingWebhookConfiguration meshd-sidecar-injector-mesh-system",
    "ValidatingWebhookConfiguration meshd-validator-mesh-system",
];

fn gateway(name: &str) -> Vec<String> {
    [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
    ]
    .iter()
    .map(|kind| format!("{kind} mesh-system/{name}"))
    .collect()
}

#[test]
fn minimal_profile_is_the_control_plane_and_the_crds() {
    let mut expected = set(ISTIO_CRDS);
    expected.extend(set(CONTROL_PLANE));
    expected.insert("HorizontalPodAutoscaler mesh-system/meshd".to_owned());
    assert_eq!(names(&render_profile("minimal", &[])), expected);
}

#[test]
fn default_profile_adds_an_autoscaled_ingress_gateway() {
    let mut expected = set(ISTIO_CRDS);
    expected.extend(set(CONTROL_PLANE));
    expected.insert("HorizontalPodAutoscaler mesh-system/meshd".to_owned());
    expected.extend(gateway("mesh-ingressgateway"));
    expected.insert("HorizontalPodAutoscaler mesh-system/mesh-ingressgateway".to_owned());
    expected.insert("PodDisruptionBudget mesh-system/mesh-ingressgateway".to_owned());
    assert_eq!(names(&render_profile("default", &[])), expected);
}

#[test]
fn demo_profile_adds_egress_and_the_addons() {
    let mut expected = set(ISTIO_CRDS);
    expected.extend(set(CONTROL_PLANE));
    expected.extend(gateway("mesh-ingressgateway"));
    expected.extend(gateway("mesh-egressgateway"));
    for addon in ["prometheus", "grafana", "kiali", "jaeger"] {
        for kind in ["ServiceAccount", "Service", "Deployment"] {
            expected.insert(format!("{kind} mesh-system/{addon}"));
        }
    }
    expected.extend(set(&[
        "ClusterRole prometheus-mesh-system",
        "ClusterRoleBinding prometheus-mesh-system",
        "ConfigMap mesh-system/prometheus",
        "ConfigMap mesh-system/grafana",
        "ClusterRole kiali-mesh-system",
        "ClusterRoleBinding kiali-mesh-system",
        "ConfigMap mesh-system/kiali",
        "Service mesh-system/tracing",
        "Service mesh-system/zipkin",
        "Service mesh-system/jaeger-collector",
    ]));
    let rendered = render_profile("demo", &[]);
    assert_eq!(names(&rendered), expected);

    let mesh = rendered
        .iter()
        .find(|m| m.display_name() == "ConfigMap mesh-system/mesh")
        .expect("mesh config");
    let mesh: Value =
        serde_yaml_ng::from_str(mesh.object["data"]["mesh"].as_str().expect("text")).expect("yaml");
    assert_eq!(mesh["accessLogFile"], "/dev/stdout");
    assert_eq!(mesh["traceSampling"], 100.0);
    assert_eq!(mesh["tracingCollector"], "zipkin.mesh-system.svc:9411");
    assert_eq!(
        mesh["defaultConfig"]["discoveryAddress"],
        "meshd.mesh-system.svc:15012"
    );
}

#[test]
fn empty_profile_renders_nothing() {
    assert!(render_profile("empty", &[]).is_empty());
}

#[test]
fn every_object_carries_the_owner_component_and_version_labels() {
    for profile in ["default", "demo", "minimal"] {
        for m in render_profile(profile, &[]) {
            let labels = &m.object["metadata"]["labels"];
            assert_eq!(labels[LABEL_OWNER_NAME], "default", "{}", m.display_name());
            assert_eq!(
                labels[LABEL_OWNER_NAMESPACE],
                "mesh-system",
                "{}",
                m.display_name()
            );
            assert_eq!(
                labels[LABEL_COMPONENT],
                m.component.label(),
                "{}",
                m.display_name()
            );
            assert_eq!(
                labels["install.meshctl.dev/version"],
                mesh_operator::VERSION
            );
            assert_eq!(labels["app.kubernetes.io/managed-by"], "meshctl");
        }
    }
}

#[test]
fn objects_come_in_apply_order() {
    let rendered = render_profile("demo", &[]);
    let position = |pred: &dyn Fn(&Manifest) -> bool| rendered.iter().position(pred);
    let last_crd = rendered
        .iter()
        .rposition(|m| m.kind() == "CustomResourceDefinition")
        .expect("crds");
    let namespace = position(&|m| m.kind() == "Namespace").expect("namespace");
    let first_namespaced = position(&|m| m.namespace().is_some()).expect("namespaced");
    let first_workload = position(&|m| m.kind() == "Deployment").expect("deployment");
    let last_config = rendered
        .iter()
        .rposition(|m| m.kind() == "ConfigMap" || m.kind() == "ServiceAccount")
        .expect("config");
    let first_webhook = position(&|m| m.kind().ends_with("WebhookConfiguration")).expect("webhook");
    assert!(last_crd < namespace, "CRDs before the namespace");
    assert!(
        namespace < first_namespaced,
        "namespace before what lives in it"
    );
    assert!(
        last_config < first_workload,
        "config and accounts before workloads"
    );
    assert!(
        rendered[first_webhook..]
            .iter()
            .all(|m| m.kind().ends_with("WebhookConfiguration")),
        "webhooks last"
    );
}

#[test]
fn rendering_is_deterministic() {
    let a = render::to_yaml(&render_profile("demo", &["values.x.y=1"])).expect("yaml");
    let b = render::to_yaml(&render_profile("demo", &["values.x.y=1"])).expect("yaml");
    assert_eq!(a, b);
    assert!(
        a.starts_with("---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n")
    );
}

#[test]
fn a_revision_renames_the_control_plane_and_scopes_its_webhooks() {
    let rendered = render_profile("minimal", &["revision=canary"]);
    let names = names(&rendered);
    assert!(
        names.contains("Deployment mesh-system/meshd-canary"),
        "{names:?}"
    );
    assert!(names.contains("ConfigMap mesh-system/mesh-canary"));
    assert!(
        names.contains("MutatingWebhookConfiguration meshd-sidecar-injector-canary-mesh-system")
    );
    let hook = rendered
        .iter()
        .find(|m| m.kind() == "MutatingWebhookConfiguration")
        .expect("hook");
    let text = hook.object.to_string();
    assert!(
        text.contains(r#"{"key":"istio.io/rev","operator":"In","values":["canary"]}"#),
        "{text}"
    );
    for m in rendered.iter().filter(|m| m.kind() != "Namespace") {
        assert_eq!(m.object["metadata"]["labels"]["istio.io/rev"], "canary");
        assert_eq!(m.object["metadata"]["labels"][LABEL_OWNER_NAME], "canary");
    }
}

#[test]
fn k8s_settings_reach_the_workload() {
    let rendered = render_profile(
        "demo",
        &[
            "components.controlPlane.k8s.replicaCount=3",
            "components.controlPlane.k8s.nodeSelector.disk=ssd",
            "components.controlPlane.k8s.env[name=LOG_LEVEL].value=debug",
            "components.ingressGateways[name=mesh-ingressgateway].k8s.service.type=NodePort",
            "addons.grafana.image=example.com/grafana:1",
        ],
    );
    let find = |name: &str| {
        rendered
            .iter()
            .find(|m| m.display_name() == name)
            .expect(name)
            .object
            .clone()
    };
    let meshd = find("Deployment mesh-system/meshd");
    assert_eq!(meshd["spec"]["replicas"], 3);
    assert_eq!(
        meshd["spec"]["template"]["spec"]["nodeSelector"]["disk"],
        "ssd"
    );
    let env = meshd["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .clone();
    assert!(env
        .iter()
        .any(|e| e["name"] == "LOG_LEVEL" && e["value"] == "debug"));
    assert_eq!(
        find("Service mesh-system/mesh-ingressgateway")["spec"]["type"],
        "NodePort"
    );
    assert_eq!(
        find("Deployment mesh-system/grafana")["spec"]["template"]["spec"]["containers"][0]
            ["image"],
        "example.com/grafana:1"
    );
}

#[test]
fn disabling_a_gateway_removes_all_its_objects() {
    let rendered = render_profile(
        "demo",
        &["components.egressGateways[name=mesh-egressgateway].enabled=false"],
    );
    assert!(rendered.iter().all(|m| !m.name().contains("egressgateway")));
}

/// Reads each object into its k8s-openapi type and back: a field name the type does not know is
/// dropped on the way, and the comparison fails.
#[test]
fn every_object_is_a_valid_instance_of_its_kind() {
    use k8s_openapi::api::admissionregistration::v1 as admission;
    use k8s_openapi::api::{apps, autoscaling, core, policy, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

    fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> Value {
        let typed: T =
            serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{e}: {object}"));
        serde_json::to_value(typed).expect("serialize")
    }

    let mut kinds = BTreeSet::new();
    for profile in ["default", "demo"] {
        for m in render_profile(
            profile,
            &["addons.zipkin.enabled=true", "addons.jaeger.enabled=false"],
        ) {
            let o = &m.object;
            let back = match m.kind() {
                "CustomResourceDefinition" => roundtrip::<CustomResourceDefinition>(o),
                "Namespace" => roundtrip::<core::v1::Namespace>(o),
                "ServiceAccount" => roundtrip::<core::v1::ServiceAccount>(o),
                "ConfigMap" => roundtrip::<core::v1::ConfigMap>(o),
                "Service" => roundtrip::<core::v1::Service>(o),
                "ClusterRole" => roundtrip::<rbac::v1::ClusterRole>(o),
                "ClusterRoleBinding" => roundtrip::<rbac::v1::ClusterRoleBinding>(o),
                "Role" => roundtrip::<rbac::v1::Role>(o),
                "RoleBinding" => roundtrip::<rbac::v1::RoleBinding>(o),
                "Deployment" => roundtrip::<apps::v1::Deployment>(o),
                "HorizontalPodAutoscaler" => {
                    roundtrip::<autoscaling::v2::HorizontalPodAutoscaler>(o)
                }
                "PodDisruptionBudget" => roundtrip::<policy::v1::PodDisruptionBudget>(o),
                "MutatingWebhookConfiguration" => {
                    roundtrip::<admission::MutatingWebhookConfiguration>(o)
                }
                "ValidatingWebhookConfiguration" => {
                    roundtrip::<admission::ValidatingWebhookConfiguration>(o)
                }
                other => panic!("no type check for kind {other}"),
            };
            assert_eq!(
                sorted(&back),
                sorted(o),
                "{} changed on a round trip through its type",
                m.display_name()
            );
            kinds.insert(m.kind().to_owned());
        }
    }
    assert_eq!(kinds.len(), 14, "{kinds:?}");
}

/// Compares trees without regard to key order.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[test]
fn rbac_has_no_wildcards() {
    for m in render_profile("demo", &[]) {
        if !m.kind().ends_with("Role") {
            continue;
        }
        for rule in m.object["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs"] {
                let values = rule[field].as_array().cloned().unwrap_or_default();
                assert!(
                    !values.iter().any(|v| v == "*"),
                    "{} has a wildcard in {field}",
                    m.display_name()
                );
            }
        }
    }
}

/// The mesh's own pods must start while meshd (which serves the injection webhook) is down: their
/// namespace does not ask for injection and their pods opt out by label.
#[test]
fn the_mesh_never_waits_on_its_own_injection_webhook() {
    for sets in [vec![], vec!["revision=canary"]] {
        for m in render_profile("demo", &sets) {
            if m.kind() == "Namespace" {
                assert!(
                    m.object["metadata"]["labels"].get("istio.io/rev").is_none(),
                    "{}",
                    m.display_name()
                );
                assert!(m.object["metadata"]["labels"]
                    .get("istio-injection")
                    .is_none());
            }
            if m.kind() == "Deployment" {
                assert_eq!(
                    m.object["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"],
                    "false",
                    "{}",
                    m.display_name()
                );
            }
        }
    }
}
