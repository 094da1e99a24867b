//! The mesh, whole: pods of the real cluster (injected by meshd's webhook through the API
//! server) brought up as network namespaces with their app and mesh-proxy, capture by
//! `mesh-proxy iptables` with the args injection gave them, configuration pushed by meshd from
//! the Services, EndpointSlices and Istio objects in the cluster. Traffic crosses real sockets:
//! a VirtualService 80/20 split shows in 1,000 requests, a retry policy hides a failing
//! endpoint, the ingress gateway serves a Gateway + VirtualService (and an Ingress) from outside
//! the mesh, sidecars talk mTLS with their SPIFFE identities, PeerAuthentication STRICT refuses
//! plain text while mesh traffic keeps working, an AuthorizationPolicy denies a service account,
//! certificates rotate under load without a failed request, meshd restarted under load loses no
//! request, `meshctl proxy-status` shows every proxy SYNCED.

use std::path::PathBuf;
use std::time::Duration;

use mesh_e2e::dashboard::{apply_port_forward, ensure_namespace, get};
use mesh_e2e::mesh_pod::{App, MeshPod, MeshdAddress};
use mesh_e2e::meshd::{install_revision_with, remove_webhooks, Meshd};
use mesh_e2e::{meshctl_until_ok, stderr, stdout, wait_for, Cluster};
use serde_json::Value;

const NS: &str = "e2e-mesh";
const APP_NS: &str = "e2e-mesh-app";
const REVISION: &str = "mesh";

const APP: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: reviews, namespace: e2e-mesh-app}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ratings, namespace: e2e-mesh-app}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: productpage, namespace: e2e-mesh-app}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: e2e-mesh-app}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: e2e-mesh-app}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: e2e-mesh-app}
spec:
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {serviceAccountName: reviews, containers: [{name: reviews, image: reviews:v1, ports: [{containerPort: 9080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2, namespace: e2e-mesh-app}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata: {labels: {app: reviews, version: v2}}
    spec: {serviceAccountName: reviews, containers: [{name: reviews, image: reviews:v2, ports: [{containerPort: 9080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ratings-v1, namespace: e2e-mesh-app}
spec:
  selector: {matchLabels: {app: ratings, version: v1}}
  template:
    metadata: {labels: {app: ratings, version: v1}}
    spec: {serviceAccountName: ratings, containers: [{name: ratings, image: ratings:v1, ports: [{containerPort: 9080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: productpage, namespace: e2e-mesh-app}
spec:
  selector: {matchLabels: {app: productpage}}
  template:
    metadata: {labels: {app: productpage, version: v1}}
    spec: {serviceAccountName: productpage, containers: [{name: productpage, image: productpage:v1, ports: [{containerPort: 9080}]}]}
"#;

const SPLIT: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: e2e-mesh-app}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: e2e-mesh-app}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"#;

const EDGE: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gw, namespace: e2e-mesh-app}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: e2e-mesh-app}
spec:
  hosts: [shop.example.com]
  gateways: [shop-gw]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
"#;

const INGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: e2e-mesh-app}
spec:
  ingressClassName: istio
  rules:
  - host: ingress.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: reviews, port: {number: 9080}}}}
"#;

const STRICT: &str = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: e2e-mesh-app}
spec:
  mtls: {mode: STRICT}
"#;

const DENY_PRODUCTPAGE: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings, namespace: e2e-mesh-app}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules:
  - from:
    - source: {principals: [cluster.local/ns/e2e-mesh-app/sa/productpage]}
"#;

const RETRY: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: e2e-mesh-app}
spec:
  hosts: [ratings]
  http:
  - retries: {attempts: 3, retryOn: 5xx}
    route:
    - destination: {host: ratings}
"#;

fn bin(name: &str) -> PathBuf {
    match name {
        "echo-server" => PathBuf::from(env!("CARGO_BIN_EXE_echo-server")),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_mesh-get")),
    }
}

fn pod_of(cluster: &Cluster, app: &str) -> Value {
    wait_for(
        &format!("the {app} pod with its sidecar and IP"),
        Duration::from_secs(60),
        || {
            let list = cluster.get_json(&[
                "pods",
                "-n",
                APP_NS,
                "-l",
                &format!("app={}", app.split('-').next().unwrap_or(app)),
            ]);
            list["items"]
                .as_array()?
                .iter()
                .find(|p| {
                    p["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(app))
                        && p["status"]["podIP"].is_string()
                        && p["spec"]["containers"]
                            .as_array()
                            .is_some_and(|c| c.iter().any(|c| c["name"] == "istio-proxy"))
                })
                .cloned()
        },
    )
}

fn cluster_ip(cluster: &Cluster, service: &str) -> String {
    cluster.get_json(&["service", service, "-n", APP_NS])["spec"]["clusterIP"]
        .as_str()
        .expect("ClusterIP")
        .to_owned()
}

/// Every proxy meshd knows has acknowledged what meshd wants it to have, for every type.
fn all_synced(meshd: &Meshd, proxies: usize) -> bool {
    let Ok(text) = get(&format!("{}/debug/syncz", meshd.debug_url)) else {
        return false;
    };
    let Ok(status) = serde_json::from_str::<Value>(&text) else {
        return false;
    };
    let list = status["proxies"].as_array().cloned().unwrap_or_default();
    list.len() == proxies
        && list.iter().all(|p| {
            p["types"]
                .as_object()
                .is_some_and(|t| t.len() == 4 && t.values().all(|s| s["state"] == "SYNCED"))
        })
}

fn count(result: &Value, body_prefix: &str) -> u64 {
    result["bodies"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(body_prefix))
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn traffic_follows_the_mesh_configuration_and_survives_a_meshd_restart() {
    let cluster = Cluster::from_env();
    cluster.delete_namespace_and_wait(APP_NS, 90);
    let ip = install_revision_with(
        &cluster,
        NS,
        REVISION,
        &[
            "--set",
            "components.ingressGateways[name=mesh-ingressgateway].enabled=true",
        ],
    );
    let meshd_name = format!("meshd-{REVISION}");
    let meshd = Meshd::start(&cluster, NS, &meshd_name, &ip);
    let address = MeshdAddress {
        address: format!("{ip}:15012"),
        tls_name: format!("{meshd_name}.{NS}.svc"),
    };
    ensure_namespace(&cluster, APP_NS);
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        APP_NS,
        "--overwrite",
        &format!("istio.io/rev={REVISION}"),
    ]);
    wait_for(
        "the default ServiceAccount",
        Duration::from_secs(30),
        || {
            cluster
                .kubectl(&["get", "serviceaccount", "default", "-n", APP_NS])
                .status
                .success()
                .then_some(())
        },
    );
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], APP);
    assert!(out.status.success(), "{}", stderr(&out));

    let echo = bin("echo-server");
    let pods: Vec<MeshPod> = [
        ("reviews-v1", "mr1", vec![]),
        ("reviews-v2", "mr2", vec![]),
        ("ratings-v1", "mrt", vec![("ECHO_FAIL_EVERY", "2")]),
        ("productpage", "mpp", vec![]),
    ]
    .into_iter()
    .map(|(app, id, env)| {
        MeshPod::start(
            &cluster,
            &pod_of(&cluster, app),
            id,
            &address,
            &App {
                server: &echo,
                port: 9080,
                env: &env,
            },
            &[("SECRET_TTL", "8s")],
        )
    })
    .collect();
    let gateway_pod = wait_for("the ingress gateway's pod", Duration::from_secs(60), || {
        let list = cluster.get_json(&["pods", "-n", NS, "-l", "app=mesh-ingressgateway"]);
        list["items"]
            .as_array()?
            .iter()
            .find(|p| p["status"]["podIP"].is_string())
            .cloned()
    });
    let gateway = MeshPod::gateway(&cluster, &gateway_pod, "mgw", &address, &[]);
    let client = &pods[3];
    let client_bin = bin("mesh-get");
    wait_for(
        "every proxy SYNCED with meshd",
        Duration::from_secs(60),
        || all_synced(&meshd, 5).then_some(()),
    );
    wait_for(
        "every proxy ready (its workload certificate loaded)",
        Duration::from_secs(60),
        || (pods.iter().all(MeshPod::is_ready) && gateway.is_ready()).then_some(()),
    );

    // Without routing rules, both reviews endpoints answer through the two sidecars.
    let reviews = format!("http://{}:9080/", cluster_ip(&cluster, "reviews"));
    let result = client.get(&client_bin, &reviews, 100, "reviews", 0);
    if result["statuses"]["200"] != 100 {
        let dump = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &client.netns.netns,
                "curl",
                "-s",
                "127.0.0.1:15000/config_dump",
            ])
            .output()
            .expect("curl");
        eprintln!(
            "productpage proxy /config_dump: {}",
            String::from_utf8_lossy(&dump.stdout)
        );
        let clusters = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &client.netns.netns,
                "curl",
                "-s",
                "127.0.0.1:15000/clusters",
            ])
            .output()
            .expect("curl");
        eprintln!(
            "productpage proxy /clusters: {}",
            String::from_utf8_lossy(&clusters.stdout)
        );
    }
    assert_eq!(result["failures"], 0, "{result}");
    assert_eq!(result["statuses"]["200"], 100, "{result}");
    assert!(
        count(&result, "reviews-v1") > 0 && count(&result, "reviews-v2") > 0,
        "{result}"
    );

    // An 80/20 split by subsets shows in 1,000 requests, within 5 points.
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], SPLIT);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("the split to be in force", Duration::from_secs(30), || {
        let probe = client.get(&client_bin, &reviews, 50, "reviews", 0);
        (count(&probe, "reviews-v1") >= 30 && all_synced(&meshd, 5)).then_some(())
    });
    let result = client.get(&client_bin, &reviews, 1000, "reviews", 0);
    assert_eq!(result["statuses"]["200"], 1000, "{result}");
    let v1 = count(&result, "reviews-v1");
    eprintln!(
        "80/20 split: v1 {v1} / v2 {} of 1000",
        count(&result, "reviews-v2")
    );
    assert!((750..=850).contains(&v1), "v1 got {v1} of 1000: {result}");

    // The ingress gateway listens where the Gateway says and routes by the VirtualService bound
    // to it, into the mesh: a request from outside (the host) reaches reviews v2.
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], EDGE);
    assert!(out.status.success(), "{}", stderr(&out));
    let edge = format!("http://{}:8080/", gateway.ip);
    let from_outside = wait_for(
        "the gateway to route shop.example.com",
        Duration::from_secs(30),
        || {
            let out = std::process::Command::new(&client_bin)
                .args([edge.as_str(), "20", "shop.example.com", "0"])
                .output()
                .ok()?;
            let result: Value = serde_json::from_slice(&out.stdout).ok()?;
            (result["statuses"]["200"] == 20).then_some(result)
        },
    );
    assert_eq!(count(&from_outside, "reviews-v2"), 20, "{from_outside}");
    // A Kubernetes Ingress of class istio is served by the same gateway.
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], INGRESS);
    assert!(out.status.success(), "{}", stderr(&out));
    let through_ingress = wait_for(
        "the gateway to serve the Ingress",
        Duration::from_secs(30),
        || {
            let out = std::process::Command::new(&client_bin)
                .args([edge.as_str(), "20", "ingress.example.com", "0"])
                .output()
                .ok()?;
            let result: Value = serde_json::from_slice(&out.stdout).ok()?;
            (result["statuses"]["200"] == 20).then_some(result)
        },
    );
    assert!(
        count(&through_ingress, "reviews-v") == 20,
        "{through_ingress}"
    );

    // ratings fails every second request; a retry policy hides it.
    let ratings = format!("http://{}:9080/", cluster_ip(&cluster, "ratings"));
    let result = client.get(&client_bin, &ratings, 100, "ratings", 0);
    let failed = result["statuses"]["503"].as_u64().unwrap_or(0);
    assert!(
        failed >= 30,
        "the failing endpoint did not fail without retries: {result}"
    );
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], RETRY);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(
        "the retry policy to be in force",
        Duration::from_secs(30),
        || {
            let probe = client.get(&client_bin, &ratings, 20, "ratings", 0);
            (probe["statuses"]["200"] == 20).then_some(())
        },
    );
    let result = client.get(&client_bin, &ratings, 200, "ratings", 0);
    assert_eq!(
        result["statuses"]["200"], 200,
        "retries did not hide the failures: {result}"
    );

    // Mutual TLS between the sidecars, with the SPIFFE identities of their service accounts:
    // reviews-v1's proxy saw productpage's requests over mTLS.
    let metrics = pods[0].local_get(15090, "/stats/prometheus");
    let productpage_principal = format!("spiffe://cluster.local/ns/{APP_NS}/sa/productpage");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total")
                && l.contains("reporter=\"destination\"")
                && l.contains("connection_security_policy=\"mutual_tls\"")
                && l.contains(&format!("source_principal=\"{productpage_principal}\""))),
        "no mTLS request from productpage in reviews-v1's metrics:\n{metrics}"
    );
    // PERMISSIVE (the default): a client outside the mesh reaches the pod in plain text.
    let direct = format!("http://{}:9080/", pods[0].ip);
    let from_host = |count: usize| -> Value {
        let out = std::process::Command::new(&client_bin)
            .args([direct.as_str(), &count.to_string(), "reviews", "0"])
            .output()
            .expect("mesh-get");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    assert_eq!(
        from_host(10)["statuses"]["200"],
        10,
        "plain text refused under PERMISSIVE"
    );
    // STRICT: plain text is refused, the mesh's own traffic keeps working over mTLS.
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], STRICT);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(
        "STRICT to refuse plain text",
        Duration::from_secs(30),
        || {
            let result = from_host(5);
            (result["statuses"].get("200").is_none() && result["failures"] == 5).then_some(())
        },
    );
    let result = client.get(&client_bin, &reviews, 100, "reviews", 0);
    assert_eq!(
        result["statuses"]["200"], 100,
        "mesh traffic broke under STRICT: {result}"
    );
    assert!(
        pods[0].proxy_log().contains("plaintext") || pods[1].proxy_log().contains("plaintext"),
        "no log line for the refused plain-text connection"
    );

    // An AuthorizationPolicy denying productpage's service account on ratings: 403.
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], DENY_PRODUCTPAGE);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(
        "the DENY policy to be in force",
        Duration::from_secs(30),
        || {
            let result = client.get(&client_bin, &ratings, 10, "ratings", 0);
            (result["statuses"]["403"] == 10).then_some(())
        },
    );
    cluster.kubectl_ok(&["delete", "authorizationpolicy", "ratings", "-n", APP_NS]);
    wait_for(
        "ratings to answer productpage again",
        Duration::from_secs(30),
        || {
            let result = client.get(&client_bin, &ratings, 10, "ratings", 0);
            (result["statuses"]["200"] == 10).then_some(())
        },
    );

    // Workload certificates (8 s here, SECRET_TTL) rotate under load without a failed request.
    let written = |pod: &MeshPod| {
        pod.proxy_log()
            .matches("workload certificate written")
            .count()
    };
    let before = (written(client), written(&pods[0]));
    let result = client.get(&client_bin, &reviews, 2000, "reviews", 5);
    assert_eq!(
        result["failures"], 0,
        "requests failed while certificates rotated: {result}"
    );
    assert_eq!(result["statuses"]["200"], 2000, "{result}");
    let after = (written(client), written(&pods[0]));
    assert!(
        after.0 >= before.0 + 2 && after.1 >= before.1 + 2,
        "the certificates did not rotate under load: {before:?} → {after:?}"
    );
    cluster.kubectl_ok(&["delete", "peerauthentication", "default", "-n", APP_NS]);

    // meshd restarted under load: the proxies keep their configuration, no request is lost.
    let load_url = reviews.clone();
    let client_netns = client.netns.netns.clone();
    let load = std::thread::spawn(move || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &client_netns])
            .arg(&client_bin)
            .args([load_url.as_str(), "600", "reviews", "5"])
            .output()
            .expect("mesh-get");
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    });
    std::thread::sleep(Duration::from_millis(800));
    drop(meshd);
    std::thread::sleep(Duration::from_millis(1500));
    let meshd = Meshd::start(&cluster, NS, &meshd_name, &ip);
    let result = load.join().expect("load thread");
    assert_eq!(
        result["failures"], 0,
        "requests failed while meshd restarted: {result}"
    );
    assert_eq!(result["statuses"]["200"], 600, "{result}");
    wait_for(
        "every proxy back and SYNCED with the new meshd",
        Duration::from_secs(60),
        || all_synced(&meshd, 5).then_some(()),
    );

    // proxy-status, through the API server's port-forward to meshd's pod.
    let meshd_pods = cluster.get_json(&["pods", "-n", NS, "-l", "app=meshd"]);
    let meshd_pod = meshd_pods["items"][0]["metadata"]["name"]
        .as_str()
        .expect("meshd pod")
        .to_owned();
    apply_port_forward(&cluster, NS, &meshd_pod, 8080, meshd.debug_port);
    let out = meshctl_until_ok(
        &cluster,
        &["proxy-status", "-i", NS],
        Duration::from_secs(90),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let proxies = pods
        .iter()
        .map(|p| format!("{}.{APP_NS}", p.name))
        .chain(std::iter::once(format!("{}.{NS}", gateway.name)));
    for proxy in proxies {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("{proxy} ")))
            .unwrap_or_else(|| panic!("no row for {proxy}:\n{text}"));
        assert_eq!(row.matches("SYNCED").count(), 4, "{text}");
    }

    // proxy-config reads what productpage's proxy holds from its admin port (localhost in the
    // pod), through the API server's port-forward; kwok pipes the stream into the pod's namespace.
    let forward = serde_json::json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "PortForward",
        "metadata": {"name": client.name, "namespace": APP_NS},
        "spec": {"forwards": [{"ports": [15000], "command": [
            "ip", "netns", "exec", client.netns.netns, "bash", "-c",
            "exec 3<>/dev/tcp/127.0.0.1/15000; cat <&3 & cat >&3; wait",
        ]}]},
    });
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &forward.to_string());
    assert!(out.status.success(), "{}", stderr(&out));
    let pod_arg = format!("{}.{APP_NS}", client.name);
    let config = |section: &str| {
        let out = cluster.meshctl(&["proxy-config", section, &pod_arg], "");
        assert!(
            out.status.success(),
            "proxy-config {section}: {}",
            stderr(&out)
        );
        stdout(&out)
    };
    let reviews_host = format!("reviews.{APP_NS}.svc.cluster.local");
    let text = config("routes");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{APP_NS}/reviews "))
                && l.contains(&format!("{reviews_host}|v1 80%"))),
        "{text}"
    );
    let text = config("clusters");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&reviews_host) && l.contains(" v2 ")),
        "{text}"
    );
    let text = config("endpoints");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{}:9080 ", pods[0].ip)) && l.contains("HEALTHY")),
        "{text}"
    );
    let text = config("listeners");
    assert!(
        text.contains("0.0.0.0:15001") && text.contains("outbound"),
        "{text}"
    );
    let out = cluster.meshctl(&["proxy-config", "routes", &format!("ghost.{APP_NS}")], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    remove_webhooks(&cluster, NS, REVISION);
    drop(pods);
    drop(gateway);
    drop(meshd);
    let _ = cluster.kubectl(&["delete", "namespace", APP_NS, "--wait=false"]);
}
