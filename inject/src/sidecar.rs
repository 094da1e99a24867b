//! The containers and volumes injection adds: the `istio-init` container that sets up capture,
//! the `istio-proxy` sidecar, and the volumes they need.

use serde_json::{json, Map, Value};

use crate::config::InjectConfig;
use crate::error::InjectError;
use crate::names::*;
use crate::quantity::is_quantity;

/// Volumes the sidecar mounts, with where. Istio's names, so that tools which look for them work.
const MOUNTS: &[(&str, &str)] = &[
    (
        "workload-certs",
        "/var/run/secrets/workload-spiffe-credentials",
    ),
    ("istio-envoy", "/etc/istio/proxy"),
    ("istio-data", "/var/lib/istio/data"),
    ("istio-podinfo", "/etc/istio/pod"),
    ("istio-token", "/var/run/secrets/tokens"),
    ("istiod-ca-cert", "/var/run/secrets/istio"),
];

/// The ConfigMap meshd publishes in every namespace with the mesh's root certificate.
pub const ROOT_CERT_CONFIGMAP: &str = "istio-ca-root-cert";
/// The audience the proxy's service-account token is issued for; meshd's CA accepts only it.
pub const TOKEN_AUDIENCE: &str = "istio-ca";

/// The names of the volumes injection adds.
pub fn volume_names() -> Vec<String> {
    MOUNTS.iter().map(|(n, _)| (*n).to_owned()).collect()
}

pub fn volumes() -> Vec<Value> {
    vec![
        json!({"name": "workload-certs", "emptyDir": {"medium": "Memory"}}),
        json!({"name": "istio-envoy", "emptyDir": {"medium": "Memory"}}),
        json!({"name": "istio-data", "emptyDir": {}}),
        json!({"name": "istio-podinfo", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        ]}}),
        json!({"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": TOKEN_AUDIENCE, "expirationSeconds": 43200, "path": "istio-token",
        }}]}}),
        json!({"name": "istiod-ca-cert", "configMap": {"name": ROOT_CERT_CONFIGMAP}}),
    ]
}

/// The proxy image: the `sidecar.istio.io/proxyImage` annotation, else the mesh's.
pub fn proxy_image(config: &InjectConfig, annotations: &Value) -> String {
    annotations[ANNOTATION_PROXY_IMAGE]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| config.values.proxy_image.clone())
}

/// The mesh's proxy resources with the pod's `sidecar.istio.io/proxy*` annotations laid over.
pub fn resources(
    config: &InjectConfig,
    annotations: &Value,
    resource: &str,
) -> Result<Value, InjectError> {
    let mut resources = match &config.values.proxy_resources {
        Value::Object(_) => config.values.proxy_resources.clone(),
        _ => json!({}),
    };
    for (annotation, section, name) in [
        (ANNOTATION_PROXY_CPU, "requests", "cpu"),
        (ANNOTATION_PROXY_MEMORY, "requests", "memory"),
        (ANNOTATION_PROXY_CPU_LIMIT, "limits", "cpu"),
        (ANNOTATION_PROXY_MEMORY_LIMIT, "limits", "memory"),
    ] {
        let Some(value) = annotations[annotation].as_str() else {
            continue;
        };
        if !is_quantity(value) {
            return Err(InjectError::Annotation {
                resource: resource.to_owned(),
                annotation: annotation.to_owned(),
                message: format!(
                    "{value:?} is not a Kubernetes quantity (for example 100m or 0.5 for CPU, 128Mi for memory)"
                ),
            });
        }
        if !resources[section].is_object() {
            resources[section] = json!({});
        }
        resources[section][name] = json!(value);
    }
    Ok(resources)
}

/// The init container that writes the capture rules; it runs as root with NET_ADMIN/NET_RAW
/// and nothing else.
pub fn init_container(
    config: &InjectConfig,
    image: &str,
    args: Vec<String>,
    resources: &Value,
) -> Value {
    json!({
        "name": INIT_CONTAINER,
        "image": image,
        "imagePullPolicy": config.values.image_pull_policy,
        "args": args,
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": false,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "runAsUser": 0,
        },
    })
}

/// What the proxy container's environment says about its pod beyond the downward API.
pub struct ProxyFacts<'a> {
    pub workload_name: &'a str,
    pub app_containers: Vec<String>,
    pub app_ports: Vec<Value>,
    pub probers: Map<String, Value>,
    pub app_scrape: Option<Map<String, Value>>,
}

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

fn env(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

pub fn proxy_container(
    config: &InjectConfig,
    image: &str,
    resources: &Value,
    facts: ProxyFacts,
) -> Value {
    let values = &config.values;
    let mut env_list = vec![
        env("MESHD_ADDRESS", values.meshd_address.clone()),
        env("CA_ADDR", values.meshd_address.clone()),
        env("TRUST_DOMAIN", values.trust_domain.clone()),
        env("REVISION", values.revision.clone()),
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("INSTANCE_IP", "status.podIP"),
        field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        field_env("NODE_NAME", "spec.nodeName"),
        field_env("HOST_IP", "status.hostIP"),
        env("ISTIO_META_WORKLOAD_NAME", facts.workload_name),
        env("ISTIO_META_APP_CONTAINERS", facts.app_containers.join(",")),
        env(
            "ISTIO_META_POD_PORTS",
            Value::Array(facts.app_ports).to_string(),
        ),
        env("ISTIO_META_INTERCEPTION_MODE", "REDIRECT"),
        env("ISTIO_META_MESH_ID", values.trust_domain.clone()),
    ];
    if !config.proxy_config.is_empty() {
        env_list.push(env(
            "PROXY_CONFIG",
            Value::Object(config.proxy_config.clone()).to_string(),
        ));
    }
    if !facts.probers.is_empty() {
        env_list.push(env(
            ENV_APP_PROBERS,
            Value::Object(facts.probers).to_string(),
        ));
    }
    if let Some(scrape) = facts.app_scrape {
        env_list.push(env(
            ENV_PROMETHEUS_ANNOTATIONS,
            Value::Object(scrape).to_string(),
        ));
    }
    let mounts: Vec<Value> = MOUNTS
        .iter()
        .map(|(name, path)| json!({"name": name, "mountPath": path}))
        .collect();
    let mut container = json!({
        "name": PROXY_CONTAINER,
        "image": image,
        "imagePullPolicy": values.image_pull_policy,
        "args": ["run"],
        "env": env_list,
        "ports": [
            {"containerPort": PORT_METRICS, "name": "http-envoy-prom", "protocol": "TCP"},
            {"containerPort": PORT_HEALTH, "name": "status-port", "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": PORT_HEALTH},
            "initialDelaySeconds": 1,
            "periodSeconds": 2,
            "timeoutSeconds": 3,
            "failureThreshold": 30,
        },
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": true,
            "runAsUser": PROXY_UID,
        },
        "volumeMounts": mounts,
    });
    if values.hold_application_until_proxy_starts {
        // The kubelet starts the next container only after this returns: the application's
        // first connection finds the proxy listening.
        container["lifecycle"] =
            json!({"postStart": {"exec": {"command": ["mesh-proxy", "wait"]}}});
    }
    container
}
