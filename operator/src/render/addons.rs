//! Observability add-ons with upstream images at pinned versions, wired to the mesh namespace and
//! to Istio's metric names so that Istio's dashboards, Kiali and Prometheus rules work unchanged.

use serde_json::{json, Value};

use mesh_crds::meshinstall::{AddonSpec, ServicePortSettings};

use super::context::{k8s_of, Context};
use super::workload::{self, port, rule, Workload};
use super::{Component, Manifest};

/// Upstream images, pinned so that the same meshctl always installs the same add-ons.
pub const PROMETHEUS_IMAGE: &str = "docker.io/prom/prometheus:v3.5.0";
pub const GRAFANA_IMAGE: &str = "docker.io/grafana/grafana:12.1.1";
pub const KIALI_IMAGE: &str = "quay.io/kiali/kiali:v2.15.0";
pub const JAEGER_IMAGE: &str = "docker.io/jaegertracing/all-in-one:1.72.0";
pub const ZIPKIN_IMAGE: &str = "docker.io/openzipkin/zipkin:3.5.1";

pub fn render(ctx: &Context, out: &mut Vec<Manifest>) {
    for (name, spec) in &ctx.addons {
        let component = Component::Addon((*name).to_owned());
        let objects = match *name {
            "prometheus" => prometheus(ctx, spec, &component),
            "grafana" => grafana(ctx, spec, &component),
            "kiali" => kiali(ctx, spec, &component),
            "jaeger" => jaeger(ctx, spec, &component),
            "zipkin" => zipkin(ctx, spec, &component),
            _ => Vec::new(),
        };
        out.extend(objects.into_iter().map(|object| Manifest {
            component: component.clone(),
            object,
        }));
    }
}

/// The pieces of one add-on's Deployment.
struct Addon<'a> {
    name: &'a str,
    spec: &'a AddonSpec,
    component: &'a Component,
    container: Value,
    volumes: Vec<Value>,
    ports: Vec<ServicePortSettings>,
}

/// ServiceAccount, Service, Deployment (and HPA/PDB when asked) of an add-on.
fn workload_objects(ctx: &Context, addon: Addon) -> Vec<Value> {
    let settings = k8s_of(addon.spec.k8s.as_ref());
    let w = Workload {
        name: addon.name,
        namespace: &ctx.namespace,
        component: addon.component,
        selector: vec![("app".to_owned(), addon.name.to_owned())],
        service_account: addon.name,
        containers: vec![addon.container],
        volumes: addon.volumes,
        pod_annotations: Vec::new(),
        settings: &settings,
        // Upstream images run as their own non-root users.
        run_as_user: None,
    };
    let mut objects = vec![
        workload::service_account(ctx, addon.name, &ctx.namespace, addon.component),
        workload::service(ctx, &w, "ClusterIP", addon.ports),
        workload::deployment(ctx, &w),
    ];
    objects.extend(workload::hpa(ctx, &w));
    objects.extend(workload::pdb(ctx, &w));
    objects
}

fn image(spec: &AddonSpec, pinned: &str) -> String {
    spec.image
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| pinned.to_owned())
}

/// Add-on containers may write to their own filesystem, but get no privilege.
fn addon_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "privileged": false,
        "runAsNonRoot": true,
    })
}

fn url(ctx: &Context, service: &str, port: u16) -> String {
    format!("http://{service}.{}:{port}", ctx.namespace)
}

fn prometheus(ctx: &Context, spec: &AddonSpec, component: &Component) -> Vec<Value> {
    let name = "prometheus";
    let read = ["get", "list", "watch"];
    let mut objects = vec![
        workload::role(
            ctx,
            "ClusterRole",
            &format!("{name}-{}", ctx.namespace),
            None,
            component,
            vec![
                rule(
                    &[""],
                    &["nodes", "nodes/metrics", "services", "endpoints", "pods"],
                    &read,
                ),
                rule(&["discovery.k8s.io"], &["endpointslices"], &read),
                json!({"nonResourceURLs": ["/metrics"], "verbs": ["get"]}),
            ],
        ),
        workload::binding(
            ctx,
            "ClusterRoleBinding",
            &format!("{name}-{}", ctx.namespace),
            None,
            component,
            "ClusterRole",
            (name, &ctx.namespace),
        ),
        workload::config_map(
            ctx,
            name,
            &ctx.namespace,
            component,
            vec![("prometheus.yml", prometheus_config(ctx))],
        ),
    ];
    objects.extend(workload_objects(
        ctx,
        Addon {
            name,
            spec,
            component,
            container: json!({
                "name": "prometheus",
                "image": image(spec, PROMETHEUS_IMAGE),
                "imagePullPolicy": "IfNotPresent",
                "args": [
                    "--storage.tsdb.retention.time=6h",
                    "--config.file=/etc/prometheus/prometheus.yml",
                    "--storage.tsdb.path=/prometheus",
                    "--web.enable-lifecycle",
                ],
                "ports": [{"name": "http", "containerPort": 9090, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/-/ready", "port": 9090}, "periodSeconds": 5},
                "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}},
                "securityContext": addon_security(),
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/prometheus", "readOnly": true},
                    {"name": "storage", "mountPath": "/prometheus"},
                ],
            }),
            volumes: vec![
                json!({"name": "config", "configMap": {"name": name}}),
                json!({"name": "storage", "emptyDir": {}}),
            ],
            ports: vec![port("http", 9090, 9090)],
        },
    ));
    objects
}

/// Scrape jobs named and labelled as Istio's add-on does, so its recording rules and the Kiali
/// and Grafana queries find the series they expect.
fn prometheus_config(ctx: &Context) -> String {
    let config = json!({
        "global": {"scrape_interval": "15s", "scrape_timeout": "10s"},
        "scrape_configs": [
            {
                "job_name": "meshd",
                "kubernetes_sd_configs": [{"role": "endpoints", "namespaces": {"names": [ctx.namespace]}}],
                "relabel_configs": [{
                    "source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpoint_port_name"],
                    "action": "keep",
                    "regex": format!("{};http-monitoring", ctx.meshd_name()),
                }],
            },
            {
                "job_name": "envoy-stats",
                "metrics_path": "/stats/prometheus",
                "kubernetes_sd_configs": [{"role": "pod"}],
                "relabel_configs": [
                    {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "action": "keep", "regex": ".*-envoy-prom"},
                    // Pods that ask to be scraped (injected pods on the merged port 15020, gateways
                    // on 15090) are kubernetes-pods' below; scraping them here too would count
                    // every request twice.
                    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "drop", "regex": "true"},
                    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "action": "replace", "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "action": "replace", "target_label": "pod"},
                ],
            },
            {
                "job_name": "kubernetes-pods",
                "kubernetes_sd_configs": [{"role": "pod"}],
                "relabel_configs": [
                    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep", "regex": "true"},
                    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "action": "replace", "target_label": "__metrics_path__", "regex": "(.+)"},
                    {
                        "source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
                        "action": "replace",
                        "regex": "([^:]+)(?::\\d+)?;(\\d+)",
                        "replacement": "$1:$2",
                        "target_label": "__address__",
                    },
                    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "action": "replace", "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "action": "replace", "target_label": "pod"},
                ],
            },
        ],
    });
    serde_yaml_ng::to_string(&config).unwrap_or_default()
}

fn grafana(ctx: &Context, spec: &AddonSpec, component: &Component) -> Vec<Value> {
    let name = "grafana";
    let datasources = json!({
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus",
            "type": "prometheus",
            "access": "proxy",
            "url": url(ctx, "prometheus", 9090),
            "isDefault": true,
            "editable": true,
        }],
    });
    let mut objects = vec![workload::config_map(
        ctx,
        name,
        &ctx.namespace,
        component,
        vec![(
            "datasources.yaml",
            serde_yaml_ng::to_string(&datasources).unwrap_or_default(),
        )],
    )];
    let env = [
        ("GF_PATHS_DATA", "/var/lib/grafana"),
        ("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"),
        ("GF_AUTH_ANONYMOUS_ENABLED", "true"),
        ("GF_AUTH_ANONYMOUS_ORG_ROLE", "Admin"),
        ("GF_AUTH_BASIC_ENABLED", "false"),
        ("GF_SECURITY_ADMIN_USER", "admin"),
        ("GF_SECURITY_ADMIN_PASSWORD", "admin"),
    ];
    objects.extend(workload_objects(
        ctx,
        Addon {
            name,
            spec,
            component,
            container: json!({
                "name": "grafana",
                "image": image(spec, GRAFANA_IMAGE),
                "imagePullPolicy": "IfNotPresent",
                "env": env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                "ports": [{"name": "http", "containerPort": 3000, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/api/health", "port": 3000}, "periodSeconds": 5},
                "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
                "securityContext": addon_security(),
                "volumeMounts": [
                    {"name": "datasources", "mountPath": "/etc/grafana/provisioning/datasources", "readOnly": true},
                    {"name": "storage", "mountPath": "/var/lib/grafana"},
                ],
            }),
            volumes: vec![
                json!({"name": "datasources", "configMap": {"name": name}}),
                json!({"name": "storage", "emptyDir": {}}),
            ],
            ports: vec![port("http", 3000, 3000)],
        },
    ));
    objects
}

fn kiali(ctx: &Context, spec: &AddonSpec, component: &Component) -> Vec<Value> {
    let name = "kiali";
    let read = ["get", "list", "watch"];
    let tracing_enabled = ctx.addons.contains_key("jaeger") || ctx.addons.contains_key("zipkin");
    let config = json!({
        "auth": {"strategy": "anonymous"},
        "deployment": {"cluster_wide_access": true, "view_only_mode": true},
        "istio_namespace": ctx.namespace,
        "server": {"port": 20001, "web_root": "/kiali", "observability": {"metrics": {"enabled": true, "port": 9090}}},
        "external_services": {
            "istio": {
                "config_map_name": ctx.revisioned("mesh"),
                "istiod_deployment_name": ctx.meshd_name(),
                "istio_sidecar_injector_config_map_name": ctx.revisioned("mesh-sidecar-injector"),
                "root_namespace": ctx.namespace,
            },
            "prometheus": {"url": url(ctx, "prometheus", 9090)},
            "grafana": {"enabled": ctx.addons.contains_key("grafana"), "internal_url": url(ctx, "grafana", 3000)},
            "tracing": {"enabled": tracing_enabled, "internal_url": format!("{}/jaeger", url(ctx, "tracing", 80)), "use_grpc": false},
        },
    });
    let role_name = format!("{name}-{}", ctx.namespace);
    // Kiali is installed view-only: reads of what it draws, and nothing it could change.
    let rules = vec![
        rule(
            &[""],
            &[
                "configmaps",
                "endpoints",
                "namespaces",
                "nodes",
                "pods",
                "pods/log",
                "replicationcontrollers",
                "services",
            ],
            &read,
        ),
        rule(&[""], &["pods/portforward"], &["create", "post"]),
        rule(
            &["apps"],
            &["deployments", "replicasets", "statefulsets", "daemonsets"],
            &read,
        ),
        rule(&["batch"], &["jobs", "cronjobs"], &read),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], &read),
        rule(&["discovery.k8s.io"], &["endpointslices"], &read),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
            &read,
        ),
        rule(
            &["networking.istio.io"],
            workload::ISTIO_NETWORKING_RESOURCES,
            &read,
        ),
        rule(
            &["security.istio.io"],
            workload::ISTIO_SECURITY_RESOURCES,
            &read,
        ),
        rule(
            &["admissionregistration.k8s.io"],
            &["mutatingwebhookconfigurations"],
            &read,
        ),
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["selfsubjectaccessreviews", "subjectaccessreviews"],
            &["create"],
        ),
    ];
    let mut objects = vec![
        workload::role(ctx, "ClusterRole", &role_name, None, component, rules),
        workload::binding(
            ctx,
            "ClusterRoleBinding",
            &role_name,
            None,
            component,
            "ClusterRole",
            (name, &ctx.namespace),
        ),
        workload::config_map(
            ctx,
            name,
            &ctx.namespace,
            component,
            vec![(
                "config.yaml",
                serde_yaml_ng::to_string(&config).unwrap_or_default(),
            )],
        ),
    ];
    objects.extend(workload_objects(
        ctx,
        Addon {
            name,
            spec,
            component,
            container: json!({
                "name": "kiali",
                "image": image(spec, KIALI_IMAGE),
                "imagePullPolicy": "IfNotPresent",
                "command": ["/opt/kiali/kiali", "-config", "/kiali-configuration/config.yaml"],
                "env": [workload::field_env("ACTIVE_NAMESPACE", "metadata.namespace")],
                "ports": [
                    {"name": "api-port", "containerPort": 20001, "protocol": "TCP"},
                    {"name": "http-metrics", "containerPort": 9090, "protocol": "TCP"},
                ],
                "readinessProbe": {"httpGet": {"path": "/kiali/healthz", "port": 20001}, "periodSeconds": 10},
                "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}},
                "securityContext": workload::restricted_container(),
                "volumeMounts": [{"name": "config", "mountPath": "/kiali-configuration", "readOnly": true}],
            }),
            volumes: vec![json!({"name": "config", "configMap": {"name": name}})],
            ports: vec![port("http", 20001, 20001), port("http-metrics", 9090, 9090)],
        },
    ));
    objects
}

/// Jaeger all-in-one takes Zipkin-format spans on 9411 (what mesh-proxy sends) and serves its UI
/// under /jaeger, behind the `tracing` and `zipkin` Service names Istio's add-on uses.
fn jaeger(ctx: &Context, spec: &AddonSpec, component: &Component) -> Vec<Value> {
    let name = "jaeger";
    let mut objects = workload_objects(
        ctx,
        Addon {
            name,
            spec,
            component,
            container: json!({
                "name": "jaeger",
                "image": image(spec, JAEGER_IMAGE),
                "imagePullPolicy": "IfNotPresent",
                "env": [
                    {"name": "COLLECTOR_ZIPKIN_HOST_PORT", "value": ":9411"},
                    {"name": "MEMORY_MAX_TRACES", "value": "50000"},
                    {"name": "QUERY_BASE_PATH", "value": "/jaeger"},
                ],
                "ports": [
                    {"name": "http-query", "containerPort": 16686, "protocol": "TCP"},
                    {"name": "http-zipkin", "containerPort": 9411, "protocol": "TCP"},
                    {"name": "grpc-otel", "containerPort": 4317, "protocol": "TCP"},
                    {"name": "http-otel", "containerPort": 4318, "protocol": "TCP"},
                    {"name": "http-admin", "containerPort": 14269, "protocol": "TCP"},
                ],
                "readinessProbe": {"httpGet": {"path": "/", "port": 14269}, "periodSeconds": 5},
                "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
                "securityContext": addon_security(),
            }),
            volumes: Vec::new(),
            ports: vec![port("http-query", 16686, 16686)],
        },
    );
    objects.push(tracing_service(
        ctx,
        component,
        "tracing",
        vec![port("http-query", 80, 16686)],
        name,
    ));
    objects.push(tracing_service(
        ctx,
        component,
        "zipkin",
        vec![port("http-query", 9411, 9411)],
        name,
    ));
    objects.push(tracing_service(
        ctx,
        component,
        "jaeger-collector",
        vec![
            port("grpc-otel", 4317, 4317),
            port("http-otel", 4318, 4318),
            port("http-zipkin", 9411, 9411),
        ],
        name,
    ));
    objects
}

fn zipkin(ctx: &Context, spec: &AddonSpec, component: &Component) -> Vec<Value> {
    let name = "zipkin";
    let mut objects = workload_objects(
        ctx,
        Addon {
            name,
            spec,
            component,
            container: json!({
                "name": "zipkin",
                "image": image(spec, ZIPKIN_IMAGE),
                "imagePullPolicy": "IfNotPresent",
                "env": [{"name": "STORAGE_TYPE", "value": "mem"}, {"name": "MEM_MAX_SPANS", "value": "500000"}],
                "ports": [{"name": "http-query", "containerPort": 9411, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/health", "port": 9411}, "periodSeconds": 5},
                "resources": {"requests": {"cpu": "10m", "memory": "100Mi"}},
                "securityContext": addon_security(),
            }),
            volumes: Vec::new(),
            ports: vec![port("http-query", 9411, 9411)],
        },
    );
    objects.push(tracing_service(
        ctx,
        component,
        "tracing",
        vec![port("http-query", 80, 9411)],
        name,
    ));
    objects
}

/// An extra Service name in front of a tracing add-on's pods.
fn tracing_service(
    ctx: &Context,
    component: &Component,
    service: &str,
    ports: Vec<ServicePortSettings>,
    app: &str,
) -> Value {
    let settings = Default::default();
    let w = Workload {
        name: service,
        namespace: &ctx.namespace,
        component,
        selector: vec![("app".to_owned(), app.to_owned())],
        service_account: app,
        containers: Vec::new(),
        volumes: Vec::new(),
        pod_annotations: Vec::new(),
        settings: &settings,
        run_as_user: None,
    };
    workload::service(ctx, &w, "ClusterIP", ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_proxy_is_scraped_by_one_job() {
        let install: mesh_crds::meshinstall::MeshInstall = serde_json::from_value(
            json!({"metadata": {"name": "m", "namespace": "mesh"}, "spec": {}}),
        )
        .expect("a MeshInstall");
        let config: serde_json::Value =
            serde_yaml_ng::from_str(&prometheus_config(&Context::new(&install))).expect("YAML");
        let jobs = config["scrape_configs"].as_array().expect("jobs");
        let envoy = jobs
            .iter()
            .find(|j| j["job_name"] == "envoy-stats")
            .expect("envoy-stats");
        let pods = jobs
            .iter()
            .find(|j| j["job_name"] == "kubernetes-pods")
            .expect("kubernetes-pods");
        let annotation = "__meta_kubernetes_pod_annotation_prometheus_io_scrape";
        let rule = |job: &serde_json::Value, action: &str| {
            job["relabel_configs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| {
                    r["source_labels"][0] == annotation
                        && r["action"] == action
                        && r["regex"] == "true"
                })
        };
        assert!(rule(pods, "keep") && rule(envoy, "drop"), "{config}");
    }
}
