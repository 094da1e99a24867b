//! `MeshInstall` (`install.meshctl.dev/v1alpha1`): the operator's API, shaped like IstioOperator.
//!
//! Every struct denies unknown fields so that a typo in an overlay is an error that names the
//! field instead of a setting that silently does nothing. Free-form settings go in `values`.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::MetricSpec;
use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of one mesh installation.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "install.meshctl.dev",
    version = "v1alpha1",
    kind = "MeshInstall",
    namespaced,
    shortname = "mi",
    category = "meshctl",
    status = "MeshInstallStatus",
    printcolumn = r#"{"name":"Profile","type":"string","jsonPath":".spec.profile"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".spec.revision"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshInstallSpec {
    /// Install profile the rest of the spec is layered on: default, demo, minimal or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Container registry the mesh images are pulled from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// Image tag of the mesh images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Control-plane revision, for canary upgrades; empty means the default revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Namespace the control plane and gateways are installed into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Mesh-wide settings read by the control plane and the proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_config: Option<MeshConfig>,
    /// Which parts to install and their Kubernetes settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Components>,
    /// Observability add-ons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addons: Option<Addons>,
    /// Everything else, passed to the renderer as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub values: Option<serde_json::Value>,
}

/// Mesh-wide configuration, with the meaning of Istio's MeshConfig fields of the same names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshConfig {
    /// Where proxies write access logs: `/dev/stdout`, a file path, or empty for off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<String>,
    /// `TEXT` or `JSON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_encoding: Option<AccessLogEncoding>,
    /// Access log line format; empty for the default format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_format: Option<String>,
    /// Turn on tracing in the proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_tracing: Option<bool>,
    /// Percentage of requests traced, 0.0 to 100.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_sampling: Option<f64>,
    /// Zipkin-compatible collector address, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing_collector: Option<String>,
    /// What happens to traffic for destinations the mesh does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// mTLS mode applied when no PeerAuthentication says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_mtls_mode: Option<MtlsMode>,
    /// Send mTLS to peers that have a sidecar even without a DestinationRule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_auto_mtls: Option<bool>,
    /// SPIFFE trust domain of workload identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// Other trust domains whose identities are accepted as this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain_aliases: Option<Vec<String>>,
    /// Lifetime of workload certificates, e.g. `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_cert_ttl: Option<String>,
    /// Expose Prometheus scrape annotations that merge app and proxy metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_prometheus_merge: Option<bool>,
    /// Namespace that holds mesh-wide configuration (defaults to the install namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_namespace: Option<String>,
    /// Default port of the proxies' readiness and health endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_health_port: Option<u16>,
    /// Proxy defaults merged into every sidecar's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_config: Option<ProxyConfig>,
}

/// Proxy settings applied to every injected sidecar unless a workload overrides them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    /// Number of proxy worker threads; 0 means one per core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Time the proxy keeps serving after it is asked to stop, e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_duration: Option<String>,
    /// Hold the application's start until the proxy is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_application_until_proxy_starts: Option<bool>,
    /// Extra environment for the proxy, as in Istio's proxyMetadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_metadata: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    Text,
    Json,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficMode>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficMode {
    /// Unknown destinations are passed through.
    AllowAny,
    /// Unknown destinations are refused.
    RegistryOnly,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Plaintext and mTLS are both accepted.
    Permissive,
    /// Only mTLS is accepted.
    Strict,
    /// mTLS is off.
    Disable,
}

/// The installable parts of the mesh.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Components {
    /// CRDs and cluster-wide objects every other part needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<ComponentSpec>,
    /// meshd: discovery, configuration push, CA, webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ComponentSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_gateways: Option<Vec<GatewaySpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_gateways: Option<Vec<GatewaySpec>>,
}

/// A part that can be switched on and off and tuned.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Image hub for this part only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// Image tag for this part only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s: Option<KubernetesSettings>,
}

/// An ingress or egress gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewaySpec {
    /// Name of the gateway's Deployment and Service; the key `--set` addresses it by.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Namespace of the gateway, when not the install namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels of the gateway pods, which Gateway resources select.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s: Option<KubernetesSettings>,
}

/// Kubernetes settings of one part's workload.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Pod affinity, as in a PodSpec. Its schema is left open: the full affinity schema,
    /// repeated for every component, would push the CRD past what the API server stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub affinity: Option<Affinity>,
    /// Annotations of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, String>>,
    /// Annotations of the Deployment, Service and other objects of this part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_spec: Option<HpaSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<PdbSettings>,
}

/// The Service in front of a part.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSettings {
    /// ClusterIP, NodePort or LoadBalancer.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ServicePortSettings>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_source_ranges: Option<Vec<String>>,
    /// Cluster or Local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePortSettings {
    pub name: String,
    pub port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
    /// TCP (default) or UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// A HorizontalPodAutoscaler for the part's Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HpaSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    /// As in an autoscaling/v2 HPA; schema left open for the same reason as `affinity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_list")]
    pub metrics: Option<Vec<MetricSpec>>,
}

/// A PodDisruptionBudget for the part's pods; set one of the two.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PdbSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
}

/// Observability add-ons, with upstream images at pinned versions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Addons {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<AddonSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana: Option<AddonSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kiali: Option<AddonSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jaeger: Option<AddonSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zipkin: Option<AddonSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddonSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Full image reference, replacing the pinned upstream image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s: Option<KubernetesSettings>,
}

/// What the operator last saw of the installation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshInstallStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Keyed by component name (`base`, `controlPlane`, `ingressGateway/<name>`, `addon/<name>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, ComponentStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub phase: Phase,
    /// Why the part is not healthy, in words a person can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Reconciling,
    Healthy,
    Error,
}

fn free_form_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// The MeshInstall CRD as installed: the Kubernetes types inside every `k8s` block keep their
/// field names and types but not their long upstream descriptions, which, repeated for each
/// component, would make the CRD too large for client-side `kubectl apply` (256 KiB).
pub fn crd() -> CustomResourceDefinition {
    let crd = MeshInstall::crd();
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    strip_k8s_descriptions(&mut value, false);
    serde_json::from_value(value).unwrap_or(crd)
}

fn strip_k8s_descriptions(node: &mut serde_json::Value, inside_k8s_field: bool) {
    use serde_json::Value;
    match node {
        Value::Object(map) => {
            if inside_k8s_field {
                map.remove("description");
            }
            for (key, child) in map.iter_mut() {
                if key == "properties" {
                    if let Value::Object(props) = child {
                        for (name, prop) in props.iter_mut() {
                            if name == "k8s" {
                                // Keep each KubernetesSettings field's own description.
                                if let Some(Value::Object(fields)) = prop.get_mut("properties") {
                                    for field in fields.values_mut() {
                                        strip_children(field);
                                    }
                                }
                            } else {
                                strip_k8s_descriptions(prop, inside_k8s_field);
                            }
                        }
                    }
                } else {
                    strip_k8s_descriptions(child, inside_k8s_field);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| strip_k8s_descriptions(i, inside_k8s_field)),
        _ => {}
    }
}

fn strip_children(field: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = field {
        for (key, child) in map.iter_mut() {
            if key != "description" {
                strip_k8s_descriptions(child, true);
            }
        }
    }
}
