//! The names injection writes, Istio's own so that Kiali, dashboards and istioctl habits work.

pub const PROXY_CONTAINER: &str = "istio-proxy";
pub const INIT_CONTAINER: &str = "istio-init";

pub const ANNOTATION_STATUS: &str = "sidecar.istio.io/status";
pub const ANNOTATION_INJECT: &str = "sidecar.istio.io/inject";
pub const LABEL_INJECT: &str = "sidecar.istio.io/inject";
pub const ANNOTATION_PROXY_IMAGE: &str = "sidecar.istio.io/proxyImage";
pub const ANNOTATION_PROXY_CPU: &str = "sidecar.istio.io/proxyCPU";
pub const ANNOTATION_PROXY_MEMORY: &str = "sidecar.istio.io/proxyMemory";
pub const ANNOTATION_PROXY_CPU_LIMIT: &str = "sidecar.istio.io/proxyCPULimit";
pub const ANNOTATION_PROXY_MEMORY_LIMIT: &str = "sidecar.istio.io/proxyMemoryLimit";
pub const ANNOTATION_REWRITE_PROBES: &str = "sidecar.istio.io/rewriteAppHTTPProbers";
pub const ANNOTATION_INTERCEPTION_MODE: &str = "sidecar.istio.io/interceptionMode";
pub const ANNOTATION_MERGE_METRICS: &str = "prometheus.istio.io/merge-metrics";
pub const ANNOTATION_DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

pub const LABEL_TLS_MODE: &str = "security.istio.io/tlsMode";
pub const LABEL_CANONICAL_NAME: &str = "service.istio.io/canonical-name";
pub const LABEL_CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";

/// The proxy's own ports.
pub const PORT_OUTBOUND: u16 = 15001;
pub const PORT_INBOUND: u16 = 15006;
pub const PORT_METRICS: u16 = 15090;
pub const PORT_HEALTH: u16 = 15021;
pub const PORT_MERGED_METRICS: u16 = 15020;
pub const PORT_ADMIN: u16 = 15000;
pub const PROXY_UID: i64 = 1337;

/// Environment variables the proxy reads that injection also reads back when it upgrades or
/// removes an injection.
pub const ENV_APP_PROBERS: &str = "ISTIO_KUBE_APP_PROBERS";
pub const ENV_PROMETHEUS_ANNOTATIONS: &str = "ISTIO_PROMETHEUS_ANNOTATIONS";

/// Kubernetes' own namespaces: never injected, whatever they are labelled.
pub const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];
