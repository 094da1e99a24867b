//! The injector on whole objects: every workload kind, the skip rules, idempotence, upgrading an
//! older injection (ours or Istio's), and bad annotations.

use mesh_inject::config::Source;
use mesh_inject::uninject::{status_of, uninject};
use mesh_inject::{inject_object, InjectConfig, Outcome};
use serde_json::{json, Value};

fn config_with(tag: &str, hold: bool) -> InjectConfig {
    let values = json!({
        "hub": "ghcr.io/meshctl", "tag": tag,
        "proxyImage": format!("ghcr.io/meshctl/mesh-proxy:{tag}"),
        "revision": "default", "meshdAddress": "meshd.mesh-system.svc:15012",
        "trustDomain": "cluster.local",
        "proxyResources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        "holdApplicationUntilProxyStarts": hold,
    })
    .to_string();
    InjectConfig::from_sources(
        &Source {
            origin: "values",
            text: &values,
        },
        None,
        None,
    )
    .expect("valid config")
}

fn config() -> InjectConfig {
    config_with("0.1.0", false)
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "reviews", "namespace": "shop", "labels": {"app": "reviews"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "reviews"}},
            "template": {
                "metadata": {"labels": {"app": "reviews", "version": "v2"}, "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9080"}},
                "spec": {
                    "serviceAccountName": "reviews",
                    "containers": [{
                        "name": "reviews",
                        "image": "docker.io/istio/examples-bookinfo-reviews-v2:1.20.2",
                        "ports": [{"name": "http", "containerPort": 9080}],
                        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                        "x-unknown-field": {"kept": true},
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    })
}

fn template(object: &Value) -> &Value {
    &object["spec"]["template"]
}

fn container<'a>(spec: &'a Value, name: &str) -> &'a Value {
    spec["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

#[test]
fn a_deployment_gets_init_container_proxy_volumes_labels_and_annotations() {
    let mut object = deployment();
    assert_eq!(
        inject_object(&mut object, &config(), None),
        Ok(Outcome::Injected)
    );
    let t = template(&object);
    let spec = &t["spec"];

    let init = &spec["initContainers"][0];
    assert_eq!(init["name"], "istio-init");
    assert_eq!(init["args"][0], "iptables");
    assert_eq!(
        init["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN", "NET_RAW"])
    );

    let proxy = container(spec, "istio-proxy");
    assert_eq!(proxy["image"], "ghcr.io/meshctl/mesh-proxy:0.1.0");
    assert_eq!(proxy["securityContext"]["runAsUser"], 1337);
    assert_eq!(proxy["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        proxy["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    let ports: Vec<&Value> = proxy["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| &p["containerPort"])
        .collect();
    assert_eq!(ports, [&json!(15090), &json!(15021)]);
    assert_eq!(proxy["readinessProbe"]["httpGet"]["port"], 15021);
    assert_eq!(proxy["resources"]["requests"]["cpu"], "100m");
    let env: Vec<&str> = proxy["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for name in [
        "POD_NAME",
        "POD_NAMESPACE",
        "INSTANCE_IP",
        "SERVICE_ACCOUNT",
        "NODE_NAME",
        "MESHD_ADDRESS",
        "ISTIO_KUBE_APP_PROBERS",
        "ISTIO_PROMETHEUS_ANNOTATIONS",
    ] {
        assert!(env.contains(&name), "{name} in {env:?}");
    }
    // The app's probe goes through the proxy; its own fields are all still there.
    let app = container(spec, "reviews");
    assert_eq!(
        app["readinessProbe"]["httpGet"]["path"],
        "/app-health/reviews/readyz"
    );
    assert_eq!(app["x-unknown-field"], json!({"kept": true}));
    // The proxy runs after the app (no hold).
    assert_eq!(spec["containers"][1]["name"], "istio-proxy");

    let volumes: Vec<&str> = spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        volumes,
        [
            "tmp",
            "workload-certs",
            "istio-envoy",
            "istio-data",
            "istio-podinfo",
            "istio-token",
            "istiod-ca-cert"
        ]
    );
    assert_eq!(
        spec["volumes"][5]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "istio-ca"
    );

    let labels = &t["metadata"]["labels"];
    assert_eq!(labels["security.istio.io/tlsMode"], "istio");
    assert_eq!(labels["service.istio.io/canonical-name"], "reviews");
    assert_eq!(labels["service.istio.io/canonical-revision"], "v2");
    let annotations = &t["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], "15020");
    assert_eq!(annotations["prometheus.io/path"], "/stats/prometheus");
    assert_eq!(
        annotations["kubectl.kubernetes.io/default-container"],
        "reviews"
    );
    let status: Value = serde_json::from_str(
        annotations["sidecar.istio.io/status"]
            .as_str()
            .expect("status"),
    )
    .expect("JSON");
    assert_eq!(status["containers"], json!(["istio-proxy"]));
    assert_eq!(status["initContainers"], json!(["istio-init"]));
    assert_eq!(status["revision"], "default");
    // Nothing outside the pod template moved.
    assert_eq!(object["spec"]["replicas"], 2);
    assert_eq!(object["metadata"], deployment()["metadata"]);
}

#[test]
fn every_workload_kind_is_injected_at_its_pod_template() {
    let pod_spec = json!({"containers": [{"name": "app", "image": "app"}]});
    let template = json!({"metadata": {"labels": {"app": "a"}}, "spec": pod_spec});
    let objects = [
        json!({"kind": "Pod", "metadata": {"name": "a"}, "spec": pod_spec}),
        json!({"kind": "Deployment", "metadata": {"name": "a"}, "spec": {"template": template}}),
        json!({"kind": "StatefulSet", "metadata": {"name": "a"}, "spec": {"template": template}}),
        json!({"kind": "DaemonSet", "metadata": {"name": "a"}, "spec": {"template": template}}),
        json!({"kind": "ReplicaSet", "metadata": {"name": "a"}, "spec": {"template": template}}),
        json!({"kind": "ReplicationController", "metadata": {"name": "a"}, "spec": {"template": template}}),
        json!({"kind": "Job", "metadata": {"name": "a"}, "spec": {"template": template}}),
        json!({"kind": "CronJob", "metadata": {"name": "a"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
    ];
    for mut object in objects {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            inject_object(&mut object, &config(), None),
            Ok(Outcome::Injected),
            "{kind}"
        );
        let text = object.to_string();
        assert!(text.contains("\"istio-proxy\""), "{kind}: {text}");
    }
}

#[test]
fn other_kinds_pass_through_and_unknown_workloads_are_flagged() {
    let mut service =
        json!({"kind": "Service", "metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}});
    let before = service.clone();
    assert_eq!(
        inject_object(&mut service, &config(), None),
        Ok(Outcome::NotWorkload)
    );
    assert_eq!(service, before);
    let mut rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "a"},
        "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}});
    let before = rollout.clone();
    assert_eq!(
        inject_object(&mut rollout, &config(), None),
        Ok(Outcome::UnknownWorkload)
    );
    assert_eq!(rollout, before);
}

#[test]
fn skipped_workloads_are_unchanged_with_a_reason() {
    let mut opted_out = deployment();
    opted_out["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] = json!("false");
    let before = opted_out.clone();
    let outcome = inject_object(&mut opted_out, &config(), None);
    assert_eq!(
        outcome,
        Ok(Outcome::Skipped(
            "sidecar.istio.io/inject is \"false\" (label)".to_owned()
        ))
    );
    assert_eq!(opted_out, before);

    let mut host = deployment();
    host["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    assert!(matches!(
        inject_object(&mut host, &config(), None),
        Ok(Outcome::Skipped(_))
    ));

    let mut system = deployment();
    system["metadata"]["namespace"] = json!("kube-system");
    assert!(
        matches!(inject_object(&mut system, &config(), None), Ok(Outcome::Skipped(why)) if why.contains("kube-system"))
    );
}

#[test]
fn injecting_twice_gives_the_same_result() {
    let mut once = deployment();
    inject_object(&mut once, &config(), None).expect("injects");
    let mut twice = once.clone();
    assert_eq!(
        inject_object(&mut twice, &config(), None),
        Ok(Outcome::Injected)
    );
    assert_eq!(twice, once);
}

#[test]
fn removing_an_injection_restores_the_workload() {
    let mut object = deployment();
    inject_object(&mut object, &config(), None).expect("injects");
    let t = &mut object["spec"]["template"];
    let (mut meta, mut spec) = (t["metadata"].clone(), t["spec"].clone());
    assert!(uninject(&mut meta, &mut spec));
    assert_eq!(meta, template(&deployment())["metadata"]);
    assert_eq!(spec, template(&deployment())["spec"]);
}

#[test]
fn an_older_injection_is_replaced_not_stacked() {
    let mut old = deployment();
    inject_object(&mut old, &config_with("0.0.9", true), None).expect("injects");
    assert_eq!(
        old["spec"]["template"]["spec"]["containers"][0]["name"],
        "istio-proxy"
    );
    let mut upgraded = old.clone();
    inject_object(&mut upgraded, &config(), None).expect("re-injects");
    let mut fresh = deployment();
    inject_object(&mut fresh, &config(), None).expect("injects");
    assert_eq!(upgraded, fresh);
}

#[test]
fn an_istio_injection_is_replaced_by_ours() {
    // Trimmed from `istioctl kube-inject` output (Istio 1.2x): its status annotation, init
    // container, sidecar with the app's probe and scrape settings, and its volumes.
    let mut istio: Value =
        serde_json::from_str(include_str!("fixtures/istio-injected-deployment.json"))
            .expect("fixture");
    let spec = &istio["spec"]["template"]["spec"];
    assert!(status_of(&istio["spec"]["template"]["metadata"], spec).is_some());
    assert_eq!(
        inject_object(&mut istio, &config(), None),
        Ok(Outcome::Injected)
    );
    let spec = &istio["spec"]["template"]["spec"];
    let names: Vec<&str> = spec["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["details", "istio-proxy"]);
    let inits: Vec<&str> = spec["initContainers"]
        .as_array()
        .expect("inits")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(inits, ["istio-init"]);
    assert_eq!(
        container(spec, "istio-proxy")["image"],
        "ghcr.io/meshctl/mesh-proxy:0.1.0"
    );
    // Istio's rewritten probe was put back before ours was applied: same path scheme, and the
    // original port travels to our proxy.
    assert_eq!(
        container(spec, "details")["readinessProbe"]["httpGet"]["path"],
        "/app-health/details/readyz"
    );
    let probers = container(spec, "istio-proxy")["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "ISTIO_KUBE_APP_PROBERS")
        .map(|e| e["value"].clone())
        .expect("probers");
    assert!(
        probers
            .as_str()
            .unwrap_or_default()
            .contains("\"port\":9080"),
        "{probers}"
    );
    let volumes: Vec<&str> = spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(!volumes.contains(&"workload-socket"), "{volumes:?}");
    assert_eq!(volumes.iter().filter(|v| **v == "istio-envoy").count(), 1);
}

#[test]
fn resource_annotations_override_the_profile_and_bad_ones_are_errors() {
    let mut object = deployment();
    let annotations = &mut object["spec"]["template"]["metadata"]["annotations"];
    annotations["sidecar.istio.io/proxyCPU"] = json!("250m");
    annotations["sidecar.istio.io/proxyMemoryLimit"] = json!("512Mi");
    inject_object(&mut object, &config(), None).expect("injects");
    let proxy = container(&object["spec"]["template"]["spec"], "istio-proxy");
    assert_eq!(proxy["resources"]["requests"]["cpu"], "250m");
    assert_eq!(proxy["resources"]["requests"]["memory"], "128Mi");
    assert_eq!(proxy["resources"]["limits"]["memory"], "512Mi");

    let mut bad = deployment();
    bad["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/proxyMemory"] =
        json!("lots");
    let before = bad.clone();
    let err = inject_object(&mut bad, &config(), None).expect_err("bad quantity");
    assert_eq!(
        err.to_string(),
        "Deployment shop/reviews: annotation sidecar.istio.io/proxyMemory: \"lots\" is not a Kubernetes quantity (for example 100m or 0.5 for CPU, 128Mi for memory)"
    );
    assert_eq!(bad, before, "nothing half-applied");
}

#[test]
fn hold_application_puts_the_proxy_first_with_a_wait() {
    let mut object = deployment();
    inject_object(&mut object, &config_with("0.1.0", true), None).expect("injects");
    let first = &object["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(first["name"], "istio-proxy");
    assert_eq!(
        first["lifecycle"]["postStart"]["exec"]["command"],
        json!(["mesh-proxy", "wait"])
    );
}

#[test]
fn a_volume_named_like_the_sidecars_is_an_error() {
    let mut object = deployment();
    object["spec"]["template"]["spec"]["volumes"] = json!([{"name": "istio-data", "emptyDir": {}}]);
    let err = inject_object(&mut object, &config(), None).expect_err("conflict");
    assert!(
        err.to_string()
            .starts_with("Deployment shop/reviews: spec.volumes[istio-data]"),
        "{err}"
    );
}
