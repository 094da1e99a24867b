//! Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget of one part, with the
//! part's `k8s` settings applied the same way for the control plane, gateways and add-ons.

use serde_json::{json, Map, Value};

use mesh_crds::meshinstall::{KubernetesSettings, ServicePortSettings};

use super::context::{sort_map, Context};
use super::Component;

/// What differs between the workloads of the parts.
pub struct Workload<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub component: &'a Component,
    /// Labels that select the pods; also put on the pods.
    pub selector: Vec<(String, String)>,
    pub service_account: &'a str,
    /// The first container is the part's own: `k8s.resources` and `k8s.env` apply to it.
    pub containers: Vec<Value>,
    pub volumes: Vec<Value>,
    pub pod_annotations: Vec<(&'a str, String)>,
    pub settings: &'a KubernetesSettings,
    /// Pod-level security context; `None` when the image needs its own user.
    pub run_as_user: Option<i64>,
}

pub fn deployment(ctx: &Context, w: &Workload) -> Value {
    let selector_refs: Vec<(&str, &str)> = w
        .selector
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut metadata = ctx.metadata(w.name, Some(w.namespace), w.component, &selector_refs);
    if let Some(annotations) = annotations_of(w.settings.annotations.as_ref()) {
        metadata["annotations"] = annotations;
    }

    let mut pod_labels = ctx.labels(w.component);
    for (k, v) in &w.selector {
        pod_labels.insert(k.clone(), json!(v));
    }
    // The mesh's own pods are never injected; as a label (not only an annotation) the injection
    // webhook's objectSelector skips them without a call, so they start while meshd is down.
    pod_labels.insert("sidecar.istio.io/inject".to_owned(), json!("false"));
    sort_map(&mut pod_labels);

    let mut pod_annotations = Map::new();
    for (k, v) in &w.pod_annotations {
        pod_annotations.insert((*k).to_owned(), json!(v));
    }
    for (k, v) in w.settings.pod_annotations.clone().unwrap_or_default() {
        pod_annotations.insert(k, json!(v));
    }
    sort_map(&mut pod_annotations);

    let mut containers = w.containers.clone();
    if let Some(first) = containers.first_mut() {
        apply_container_settings(first, w.settings);
    }

    let mut pod_spec = Map::new();
    pod_spec.insert("serviceAccountName".to_owned(), json!(w.service_account));
    if let Some(uid) = w.run_as_user {
        pod_spec.insert(
            "securityContext".to_owned(),
            json!({"runAsNonRoot": true, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid}),
        );
    }
    pod_spec.insert("containers".to_owned(), Value::Array(containers));
    if !w.volumes.is_empty() {
        pod_spec.insert("volumes".to_owned(), Value::Array(w.volumes.clone()));
    }
    if let Some(ns) = &w.settings.node_selector {
        pod_spec.insert("nodeSelector".to_owned(), json!(ns));
    }
    if let Some(t) = &w.settings.tolerations {
        pod_spec.insert("tolerations".to_owned(), json!(t));
    }
    if let Some(a) = &w.settings.affinity {
        pod_spec.insert("affinity".to_owned(), json!(a));
    }

    let mut selector = Map::new();
    for (k, v) in &w.selector {
        selector.insert(k.clone(), json!(v));
    }
    sort_map(&mut selector);

    let mut template_meta = Map::new();
    template_meta.insert("labels".to_owned(), Value::Object(pod_labels));
    if !pod_annotations.is_empty() {
        template_meta.insert("annotations".to_owned(), Value::Object(pod_annotations));
    }

    let mut spec = Map::new();
    // An HPA owns the replica count when there is one; setting it here would fight the HPA.
    if w.settings.hpa_spec.is_none() {
        spec.insert(
            "replicas".to_owned(),
            json!(w.settings.replica_count.unwrap_or(1)),
        );
    }
    spec.insert("selector".to_owned(), json!({"matchLabels": selector}));
    spec.insert(
        "strategy".to_owned(),
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}}),
    );
    spec.insert(
        "template".to_owned(),
        json!({"metadata": template_meta, "spec": pod_spec}),
    );

    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": spec,
    })
}

fn apply_container_settings(container: &mut Value, settings: &KubernetesSettings) {
    if let Some(resources) = &settings.resources {
        container["resources"] = json!(resources);
    }
    if let Some(extra) = &settings.env {
        let mut env: Vec<Value> = container["env"].as_array().cloned().unwrap_or_default();
        for var in extra {
            let var = json!(var);
            match env.iter_mut().find(|e| e["name"] == var["name"]) {
                Some(existing) => *existing = var,
                None => env.push(var),
            }
        }
        container["env"] = Value::Array(env);
    }
}

fn annotations_of(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<Value> {
    annotations.filter(|a| !a.is_empty()).map(|a| json!(a))
}

/// The part's Service: `k8s.service` replaces the type and, when it lists ports, the ports.
pub fn service(
    ctx: &Context,
    w: &Workload,
    default_type: &str,
    default_ports: Vec<ServicePortSettings>,
) -> Value {
    let service = w.settings.service.clone().unwrap_or_default();
    let ports = service.ports.clone().unwrap_or(default_ports);
    let selector_refs: Vec<(&str, &str)> = w
        .selector
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut metadata = ctx.metadata(w.name, Some(w.namespace), w.component, &selector_refs);
    if let Some(annotations) = annotations_of(w.settings.annotations.as_ref()) {
        metadata["annotations"] = annotations;
    }
    let mut selector = Map::new();
    for (k, v) in &w.selector {
        selector.insert(k.clone(), json!(v));
    }
    sort_map(&mut selector);
    let type_ = service
        .type_
        .clone()
        .unwrap_or_else(|| default_type.to_owned());
    let mut spec = Map::new();
    spec.insert("type".to_owned(), json!(type_));
    spec.insert("selector".to_owned(), Value::Object(selector));
    spec.insert(
        "ports".to_owned(),
        Value::Array(ports.iter().map(service_port).collect()),
    );
    if let Some(ip) = &service.load_balancer_ip {
        spec.insert("loadBalancerIP".to_owned(), json!(ip));
    }
    if let Some(ranges) = &service.load_balancer_source_ranges {
        spec.insert("loadBalancerSourceRanges".to_owned(), json!(ranges));
    }
    if let Some(policy) = &service.external_traffic_policy {
        spec.insert("externalTrafficPolicy".to_owned(), json!(policy));
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec})
}

fn service_port(p: &ServicePortSettings) -> Value {
    let mut port = Map::new();
    port.insert("name".to_owned(), json!(p.name));
    port.insert("port".to_owned(), json!(p.port));
    port.insert(
        "protocol".to_owned(),
        json!(p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
    );
    port.insert(
        "targetPort".to_owned(),
        json!(p.target_port.unwrap_or(p.port)),
    );
    if let Some(node_port) = p.node_port {
        port.insert("nodePort".to_owned(), json!(node_port));
    }
    Value::Object(port)
}

/// A plain port of a default Service.
pub fn port(name: &str, port: i32, target_port: i32) -> ServicePortSettings {
    ServicePortSettings {
        name: name.to_owned(),
        port,
        target_port: Some(target_port),
        node_port: None,
        protocol: None,
    }
}

pub fn hpa(ctx: &Context, w: &Workload) -> Option<Value> {
    let hpa = w.settings.hpa_spec.as_ref()?;
    let mut spec = Map::new();
    spec.insert(
        "scaleTargetRef".to_owned(),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": w.name}),
    );
    spec.insert(
        "minReplicas".to_owned(),
        json!(hpa.min_replicas.unwrap_or(1)),
    );
    spec.insert("maxReplicas".to_owned(), json!(hpa.max_replicas));
    if let Some(metrics) = &hpa.metrics {
        spec.insert("metrics".to_owned(), json!(metrics));
    }
    Some(json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": ctx.metadata(w.name, Some(w.namespace), w.component, &[]),
        "spec": spec,
    }))
}

pub fn pdb(ctx: &Context, w: &Workload) -> Option<Value> {
    let pdb = w.settings.pod_disruption_budget.as_ref()?;
    let mut selector = Map::new();
    for (k, v) in &w.selector {
        selector.insert(k.clone(), json!(v));
    }
    sort_map(&mut selector);
    let mut spec = Map::new();
    if let Some(min) = &pdb.min_available {
        spec.insert("minAvailable".to_owned(), json!(min));
    }
    if let Some(max) = &pdb.max_unavailable {
        spec.insert("maxUnavailable".to_owned(), json!(max));
    }
    spec.insert("selector".to_owned(), json!({"matchLabels": selector}));
    Some(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.metadata(w.name, Some(w.namespace), w.component, &[]),
        "spec": spec,
    }))
}

pub fn service_account(ctx: &Context, name: &str, namespace: &str, component: &Component) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": ctx.metadata(name, Some(namespace), component, &[]),
    })
}

/// A container security context for processes that need no privilege at all.
pub fn restricted_container() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "privileged": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
    })
}

/// Environment variables from the downward API.
pub fn field_env(name: &str, field_path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": field_path}}})
}

/// The Istio API kinds meshd reads and Kiali shows, by resource name.
pub const ISTIO_NETWORKING_RESOURCES: &[&str] = &[
    "virtualservices",
    "destinationrules",
    "gateways",
    "serviceentries",
    "sidecars",
    "workloadentries",
];
pub const ISTIO_SECURITY_RESOURCES: &[&str] = &[
    "peerauthentications",
    "authorizationpolicies",
    "requestauthentications",
];

/// A ClusterRole/Role rule.
pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

pub fn rule_named(groups: &[&str], resources: &[&str], names: &[String], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "resourceNames": names, "verbs": verbs})
}

/// A binding of `role` (ClusterRole or Role) to a service account.
pub fn binding(
    ctx: &Context,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    component: &Component,
    role_kind: &str,
    sa: (&str, &str),
) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": ctx.metadata(name, namespace, component, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": sa.0, "namespace": sa.1}],
    })
}

pub fn role(
    ctx: &Context,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    component: &Component,
    rules: Vec<Value>,
) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": ctx.metadata(name, namespace, component, &[]),
        "rules": rules,
    })
}

pub fn config_map(
    ctx: &Context,
    name: &str,
    namespace: &str,
    component: &Component,
    data: Vec<(&str, String)>,
) -> Value {
    let mut map = Map::new();
    for (k, v) in data {
        map.insert(k.to_owned(), json!(v));
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(name, Some(namespace), component, &[]),
        "data": map,
    })
}
