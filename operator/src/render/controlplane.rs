//! meshd: its Deployment and Service, least-privilege RBAC, the mesh config and injection
//! template ConfigMaps, and the injection and validation webhook configurations.

use serde_json::{json, Map, Value};

use super::context::{k8s_of, Context};
use super::workload::{self, field_env, rule, rule_named, Workload};
use super::{Component, Manifest};

/// Ports of meshd, as its Service and container expose them.
const GRPC_XDS: i32 = 15010;
const GRPC_XDS_TLS: i32 = 15012;
const WEBHOOK: i32 = 15017;
const MONITORING: i32 = 15014;
const DEBUG: i32 = 8080;

pub fn render(ctx: &Context, out: &mut Vec<Manifest>) {
    let Some(spec) = ctx.control_plane() else {
        return;
    };
    let component = Component::ControlPlane;
    let name = ctx.meshd_name();
    let ns = ctx.namespace.as_str();
    let settings = k8s_of(spec.k8s.as_ref());
    let mut push = |object: Value| {
        out.push(Manifest {
            component: component.clone(),
            object,
        })
    };

    push(workload::service_account(ctx, &name, ns, &component));
    let cluster_role_name = format!("{name}-{ns}");
    push(workload::role(
        ctx,
        "ClusterRole",
        &cluster_role_name,
        None,
        &component,
        cluster_rules(ctx),
    ));
    push(workload::binding(
        ctx,
        "ClusterRoleBinding",
        &cluster_role_name,
        None,
        &component,
        "ClusterRole",
        (&name, ns),
    ));
    push(workload::role(
        ctx,
        "Role",
        &name,
        Some(ns),
        &component,
        namespace_rules(),
    ));
    push(workload::binding(
        ctx,
        "RoleBinding",
        &name,
        Some(ns),
        &component,
        "Role",
        (&name, ns),
    ));
    push(workload::config_map(
        ctx,
        &ctx.revisioned("mesh"),
        ns,
        &component,
        vec![
            ("mesh", mesh_config_yaml(ctx)),
            ("meshNetworks", "networks: {}\n".to_owned()),
        ],
    ));
    push(workload::config_map(
        ctx,
        &ctx.revisioned("mesh-sidecar-injector"),
        ns,
        &component,
        vec![
            ("config", injector_policy()),
            ("values", injector_values(ctx)),
        ],
    ));

    let image = ctx.image(spec.hub.as_ref(), spec.tag.as_ref(), "meshd");
    let w = Workload {
        name: &name,
        namespace: ns,
        component: &component,
        selector: vec![
            ("app".to_owned(), "meshd".to_owned()),
            ("istio.io/rev".to_owned(), ctx.revision_label().to_owned()),
        ],
        service_account: &name,
        containers: vec![meshd_container(ctx, &image)],
        volumes: meshd_volumes(ctx),
        pod_annotations: vec![
            ("prometheus.io/scrape", "true".to_owned()),
            ("prometheus.io/port", MONITORING.to_string()),
        ],
        settings: &settings,
        run_as_user: Some(1337),
    };
    push(workload::service(
        ctx,
        &w,
        "ClusterIP",
        vec![
            workload::port("grpc-xds", GRPC_XDS, GRPC_XDS),
            workload::port("https-dns", GRPC_XDS_TLS, GRPC_XDS_TLS),
            workload::port("https-webhook", 443, WEBHOOK),
            workload::port("http-monitoring", MONITORING, MONITORING),
        ],
    ));
    push(workload::deployment(ctx, &w));
    if let Some(hpa) = workload::hpa(ctx, &w) {
        push(hpa);
    }
    if let Some(pdb) = workload::pdb(ctx, &w) {
        push(pdb);
    }
    push(mutating_webhook(ctx, &component));
    push(validating_webhook(ctx, &component));
}

fn webhook_names(ctx: &Context) -> (String, String) {
    (
        format!(
            "{}-{}",
            ctx.revisioned("meshd-sidecar-injector"),
            ctx.namespace
        ),
        format!("{}-{}", ctx.revisioned("meshd-validator"), ctx.namespace),
    )
}

/// Cluster-wide reads meshd needs for discovery, plus the few writes it makes: the trust bundle
/// ConfigMap in every namespace, token and access reviews, and its own webhooks' CA bundle.
fn cluster_rules(ctx: &Context) -> Vec<Value> {
    let (injector, validator) = webhook_names(ctx);
    let read = ["get", "list", "watch"];
    vec![
        rule(
            &[""],
            &["services", "endpoints", "pods", "nodes", "namespaces"],
            &read,
        ),
        rule(&["discovery.k8s.io"], &["endpointslices"], &read),
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
            &["networking.k8s.io"],
            &["ingresses", "ingressclasses"],
            &read,
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses/status"],
            &["update", "patch"],
        ),
        rule(
            &[""],
            &["configmaps"],
            &["get", "list", "watch", "create", "update", "patch"],
        ),
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
            &["create"],
        ),
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &read,
        ),
        rule(
            &["admissionregistration.k8s.io"],
            &[
                "mutatingwebhookconfigurations",
                "validatingwebhookconfigurations",
            ],
            &read,
        ),
        rule_named(
            &["admissionregistration.k8s.io"],
            &["mutatingwebhookconfigurations"],
            &[injector],
            &["update", "patch"],
        ),
        rule_named(
            &["admissionregistration.k8s.io"],
            &["validatingwebhookconfigurations"],
            &[validator],
            &["update", "patch"],
        ),
        rule(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
    ]
}

/// In its own namespace meshd keeps the CA key pair and its leader-election lease.
fn namespace_rules() -> Vec<Value> {
    vec![
        rule(
            &[""],
            &["secrets"],
            &["get", "list", "watch", "create", "update"],
        ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "list", "watch", "create", "update"],
        ),
    ]
}

fn meshd_container(ctx: &Context, image: &str) -> Value {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        json!({"name": "REVISION", "value": ctx.revision_label()}),
    ];
    if let Some(td) = &ctx.mesh_config.trust_domain {
        env.push(json!({"name": "TRUST_DOMAIN", "value": td}));
    }
    json!({
        "name": "meshd",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "serve",
            "--mesh-config=/etc/mesh/config/mesh",
            "--inject-config=/etc/mesh/inject",
            format!("--revision={}", ctx.revision_label()),
            format!("--service={}", ctx.meshd_name()),
            format!("--injector-webhook={}", webhook_names(ctx).0),
            format!("--validator-webhook={}", webhook_names(ctx).1),
        ],
        "env": env,
        "ports": [
            {"name": "grpc-xds", "containerPort": GRPC_XDS, "protocol": "TCP"},
            {"name": "https-dns", "containerPort": GRPC_XDS_TLS, "protocol": "TCP"},
            {"name": "https-webhook", "containerPort": WEBHOOK, "protocol": "TCP"},
            {"name": "http-monitoring", "containerPort": MONITORING, "protocol": "TCP"},
            {"name": "http-debug", "containerPort": DEBUG, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": DEBUG},
            "initialDelaySeconds": 1,
            "periodSeconds": 3,
            "timeoutSeconds": 5,
        },
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
        "securityContext": workload::restricted_container(),
        "volumeMounts": [
            {"name": "mesh-config", "mountPath": "/etc/mesh/config", "readOnly": true},
            {"name": "inject", "mountPath": "/etc/mesh/inject", "readOnly": true},
            {"name": "cacerts", "mountPath": "/etc/cacerts", "readOnly": true},
            {"name": "local-certs", "mountPath": "/var/run/secrets/mesh-dns"},
            {"name": "mesh-token", "mountPath": "/var/run/secrets/tokens", "readOnly": true},
        ],
    })
}

fn meshd_volumes(ctx: &Context) -> Vec<Value> {
    vec![
        json!({"name": "mesh-config", "configMap": {"name": ctx.revisioned("mesh")}}),
        json!({"name": "inject", "configMap": {"name": ctx.revisioned("mesh-sidecar-injector")}}),
        // A user-provided (plug-in) CA; meshd creates its own root when this Secret is absent.
        json!({"name": "cacerts", "secret": {"secretName": "cacerts", "optional": true}}),
        json!({"name": "local-certs", "emptyDir": {"medium": "Memory"}}),
        json!({"name": "mesh-token", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "meshd", "expirationSeconds": 43200, "path": "mesh-token"}}
        ]}}),
    ]
}

/// The mesh config the control plane and proxies read, with every default spelled out.
fn mesh_config_yaml(ctx: &Context) -> String {
    let mut mesh = serde_json::to_value(&ctx.mesh_config).unwrap_or_else(|_| json!({}));
    let map = mesh.as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut out = Map::new();
    out.extend(map);
    out.entry("rootNamespace")
        .or_insert_with(|| json!(ctx.namespace));
    if !out.contains_key("tracingCollector") {
        if let Some(collector) = tracing_collector(ctx) {
            out.insert("tracingCollector".to_owned(), json!(collector));
        }
    }
    let default_config = out.entry("defaultConfig").or_insert_with(|| json!({}));
    if let Some(dc) = default_config.as_object_mut() {
        dc.entry("discoveryAddress")
            .or_insert_with(|| json!(ctx.meshd_address()));
    }
    serde_yaml_ng::to_string(&Value::Object(out)).unwrap_or_default()
}

/// The tracing add-on installed with the mesh, if any, is where spans go.
fn tracing_collector(ctx: &Context) -> Option<String> {
    (ctx.addons.contains_key("jaeger") || ctx.addons.contains_key("zipkin"))
        .then(|| format!("zipkin.{}.svc:9411", ctx.namespace))
}

fn injector_policy() -> String {
    "policy: enabled\nalwaysInjectSelector: []\nneverInjectSelector: []\ninjectedAnnotations: {}\n"
        .to_owned()
}

/// What the injector needs to build a sidecar: image, meshd address, resources.
fn injector_values(ctx: &Context) -> String {
    let default_resources = json!({
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "2000m", "memory": "1024Mi"},
    });
    let values = json!({
        "hub": ctx.hub,
        "tag": ctx.tag,
        "proxyImage": ctx.image(None, None, "mesh-proxy"),
        "imagePullPolicy": "IfNotPresent",
        "revision": ctx.revision_label(),
        "meshdAddress": ctx.meshd_address(),
        "trustDomain": ctx.mesh_config.trust_domain.clone().unwrap_or_else(|| "cluster.local".to_owned()),
        "proxyResources": ctx.value("/sidecar/resources").cloned().unwrap_or(default_resources),
        "holdApplicationUntilProxyStarts": ctx
            .mesh_config
            .default_config
            .as_ref()
            .and_then(|d| d.hold_application_until_proxy_starts)
            .unwrap_or(false),
    });
    serde_json::to_string_pretty(&values).unwrap_or_default()
}

/// Kubernetes' own namespaces are never injected, whatever their labels say.
fn system_namespaces_excluded() -> Value {
    json!({
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": ["kube-system", "kube-public", "kube-node-lease", "local-path-storage"],
    })
}

fn webhook_client(ctx: &Context, path: &str) -> Value {
    json!({"service": {"name": ctx.meshd_name(), "namespace": ctx.namespace, "path": path, "port": 443}})
}

/// Pods are sent for injection when their namespace opts in (`istio-injection=enabled`, or
/// `istio.io/rev=<rev>` for a revision) or the pod itself does, as Istio does.
fn mutating_webhook(ctx: &Context, component: &Component) -> Value {
    let (name, _) = webhook_names(ctx);
    let not_opted_out =
        json!({"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]});
    let opted_in = json!({"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]});
    let rules = json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]);
    let hook = |hook_name: &str, mut namespace_selector: Value, object_selector: Value| {
        if let Some(expressions) = namespace_selector["matchExpressions"].as_array_mut() {
            expressions.push(system_namespaces_excluded());
        }
        json!({
            "name": hook_name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": webhook_client(ctx, "/inject"),
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "namespaceSelector": namespace_selector,
            "objectSelector": object_selector,
            "reinvocationPolicy": "IfNeeded",
            "rules": rules,
            "sideEffects": "None",
            "timeoutSeconds": 10,
        })
    };
    let webhooks = if ctx.revision.is_empty() {
        vec![
            hook(
                "namespace.sidecar-injector.meshctl.dev",
                json!({"matchExpressions": [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]}),
                json!({"matchExpressions": [not_opted_out]}),
            ),
            hook(
                "object.sidecar-injector.meshctl.dev",
                json!({"matchExpressions": [
                    {"key": "istio-injection", "operator": "DoesNotExist"},
                    {"key": "istio.io/rev", "operator": "DoesNotExist"},
                ]}),
                json!({"matchExpressions": [opted_in, {"key": "istio.io/rev", "operator": "DoesNotExist"}]}),
            ),
        ]
    } else {
        let rev = json!({"key": "istio.io/rev", "operator": "In", "values": [ctx.revision]});
        vec![
            hook(
                "rev.namespace.sidecar-injector.meshctl.dev",
                json!({"matchExpressions": [rev, {"key": "istio-injection", "operator": "DoesNotExist"}]}),
                json!({"matchExpressions": [not_opted_out]}),
            ),
            // Only where the namespace does not choose: a pod on the revision in a namespace on
            // it too is the namespace hook's, and must not be sent twice.
            hook(
                "rev.object.sidecar-injector.meshctl.dev",
                json!({"matchExpressions": [
                    {"key": "istio-injection", "operator": "DoesNotExist"},
                    {"key": "istio.io/rev", "operator": "DoesNotExist"},
                ]}),
                json!({"matchExpressions": [not_opted_out, rev]}),
            ),
        ]
    };
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": ctx.metadata(&name, None, component, &[]),
        "webhooks": webhooks,
    })
}

/// Istio API objects are validated on create and update. The policy is Ignore so that a control
/// plane that is down cannot block every config change in the cluster (meshd only writes the
/// caBundle; a policy it changed would be put back by the operator's drift repair).
fn validating_webhook(ctx: &Context, component: &Component) -> Value {
    let (_, name) = webhook_names(ctx);
    // Objects labelled for another revision are that revision's to validate.
    let revision_requirement = if ctx.revision.is_empty() {
        json!({"key": "istio.io/rev", "operator": "DoesNotExist"})
    } else {
        json!({"key": "istio.io/rev", "operator": "In", "values": [ctx.revision]})
    };
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": ctx.metadata(&name, None, component, &[]),
        "webhooks": [{
            "name": "validation.meshctl.dev",
            "admissionReviewVersions": ["v1"],
            "clientConfig": webhook_client(ctx, "/validate"),
            "failurePolicy": "Ignore",
            "matchPolicy": "Equivalent",
            "objectSelector": {"matchExpressions": [revision_requirement]},
            "rules": [{
                "apiGroups": ["networking.istio.io", "security.istio.io"],
                "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["*"],
                "scope": "*",
            }],
            "sideEffects": "None",
            "timeoutSeconds": 10,
        }],
    })
}
