//! Ingress and egress gateways: mesh-proxy in gateway mode behind a Service.

use serde_json::{json, Value};

use mesh_crds::meshinstall::GatewaySpec;

use super::context::{k8s_of, Context};
use super::workload::{self, field_env, rule, Workload};
use super::{Component, Manifest};

const STATUS_PORT: i32 = 15021;
const METRICS_PORT: i32 = 15090;

pub fn render(ctx: &Context, out: &mut Vec<Manifest>) {
    for gw in ctx.ingress_gateways() {
        render_one(
            ctx,
            gw,
            Component::IngressGateway(gw.name.clone()),
            "LoadBalancer",
            out,
        );
    }
    for gw in ctx.egress_gateways() {
        render_one(
            ctx,
            gw,
            Component::EgressGateway(gw.name.clone()),
            "ClusterIP",
            out,
        );
    }
}

fn render_one(
    ctx: &Context,
    gw: &GatewaySpec,
    component: Component,
    default_type: &str,
    out: &mut Vec<Manifest>,
) {
    let name = gw.name.as_str();
    let ns = gw
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| ctx.namespace.clone());
    let settings = k8s_of(gw.k8s.as_ref());
    let mut push = |object: Value| {
        out.push(Manifest {
            component: component.clone(),
            object,
        })
    };
    // A gateway outside the mesh namespace needs its namespace created with it.
    if ns != ctx.namespace {
        push(ctx.namespace_object(&ns, &component));
    }

    let mut selector: Vec<(String, String)> =
        gw.label.clone().unwrap_or_default().into_iter().collect();
    if !selector.iter().any(|(k, _)| k == "app") {
        selector.push(("app".to_owned(), name.to_owned()));
    }
    selector.sort();

    push(workload::service_account(ctx, name, &ns, &component));
    // Gateways read the TLS Secrets their Gateway resources name (credentialName).
    push(workload::role(
        ctx,
        "Role",
        name,
        Some(&ns),
        &component,
        vec![rule(&[""], &["secrets"], &["get", "list", "watch"])],
    ));
    push(workload::binding(
        ctx,
        "RoleBinding",
        name,
        Some(&ns),
        &component,
        "Role",
        (name, &ns),
    ));

    let image = ctx.image(gw.hub.as_ref(), gw.tag.as_ref(), "mesh-proxy");
    let w = Workload {
        name,
        namespace: &ns,
        component: &component,
        selector,
        service_account: name,
        containers: vec![proxy_container(ctx, name, &image)],
        // The sidecar's volumes and paths (see inject/src/sidecar.rs), so that mesh-proxy finds
        // its token, the mesh roots and its labels where it looks for them in any pod.
        volumes: vec![
            json!({"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}),
            json!({"name": "istio-token", "projected": {"sources": [
                {"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}
            ]}}),
            json!({"name": "istio-podinfo", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            ]}}),
            json!({"name": "workload-certs", "emptyDir": {"medium": "Memory"}}),
        ],
        pod_annotations: vec![
            ("prometheus.io/scrape", "true".to_owned()),
            ("prometheus.io/port", METRICS_PORT.to_string()),
            ("prometheus.io/path", "/stats/prometheus".to_owned()),
        ],
        settings: &settings,
        run_as_user: Some(1337),
    };
    push(workload::service(
        ctx,
        &w,
        default_type,
        vec![
            workload::port("http2", 80, 8080),
            workload::port("https", 443, 8443),
        ],
    ));
    push(workload::deployment(ctx, &w));
    if let Some(hpa) = workload::hpa(ctx, &w) {
        push(hpa);
    }
    if let Some(pdb) = workload::pdb(ctx, &w) {
        push(pdb);
    }
}

fn proxy_container(ctx: &Context, name: &str, image: &str) -> Value {
    json!({
        "name": "mesh-proxy",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["run"],
        "env": [
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("INSTANCE_IP", "status.podIP"),
            field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
            field_env("NODE_NAME", "spec.nodeName"),
            {"name": "MESHD_ADDRESS", "value": ctx.meshd_address()},
            // A gateway: its listeners come from the Gateways selecting its labels.
            {"name": "ISTIO_META_ROUTER_MODE", "value": "router"},
            {"name": "ISTIO_META_WORKLOAD_NAME", "value": name},
            {"name": "TRUST_DOMAIN", "value": ctx.mesh_config.trust_domain.clone().unwrap_or_else(|| "cluster.local".to_owned())},
        ],
        "ports": [
            {"name": "http2", "containerPort": 8080, "protocol": "TCP"},
            {"name": "https", "containerPort": 8443, "protocol": "TCP"},
            {"name": "status-port", "containerPort": STATUS_PORT, "protocol": "TCP"},
            {"name": "http-envoy-prom", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": STATUS_PORT},
            "initialDelaySeconds": 1,
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": workload::restricted_container(),
        "volumeMounts": [
            {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio", "readOnly": true},
            {"name": "istio-token", "mountPath": "/var/run/secrets/tokens", "readOnly": true},
            {"name": "istio-podinfo", "mountPath": "/etc/istio/pod", "readOnly": true},
            {"name": "workload-certs", "mountPath": "/var/run/secrets/workload-spiffe-credentials"},
        ],
    })
}
