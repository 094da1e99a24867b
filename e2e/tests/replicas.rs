//! meshd with several replicas: two started at once against a namespace without a CA agree on
//! one root (one creates it, the other reads it), both serve proxies the same configuration and
//! follow the same change, and `meshctl proxy-status` / `version` show the proxies spread across
//! them.
//!
//! The replicas are local processes at the IPs of the two kwok pods of meshd's Deployment (see
//! `mesh_e2e::meshd`); the proxies are gRPC clients behaving as mesh-proxy does.

use std::time::Duration;

use mesh_e2e::dashboard::{apply_port_forward, ensure_namespace};
use mesh_e2e::meshd::{install_revision, remove_webhooks, set_route_timeout, Meshd};
use mesh_e2e::xds_client::{body, node, XdsClient};
use mesh_e2e::{meshctl_until_ok, stderr, stdout, wait_for, Cluster};
use mesh_xds::types;
use serde_json::Value;

const NS: &str = "e2e-replicas";
const APP_NS: &str = "e2e-replicas-app";
const REVISION: &str = "replicas";

const APP: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: e2e-replicas-app}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ratings-v1, namespace: e2e-replicas-app}
spec:
  replicas: 1
  selector: {matchLabels: {app: ratings, version: v1}}
  template:
    metadata: {labels: {app: ratings, version: v1}, annotations: {sidecar.istio.io/inject: "false"}}
    spec: {containers: [{name: ratings, image: ratings:v1, ports: [{containerPort: 9080}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: e2e-replicas-app}
spec:
  hosts: [ratings]
  http: [{timeout: 5s, route: [{destination: {host: ratings}}]}]
"#;

/// The IPs of meshd's Ready pods, once the Service lists `n` of them.
fn replica_ips(cluster: &Cluster, n: usize) -> Vec<String> {
    let service = format!("meshd-{REVISION}");
    wait_for(
        "both meshd pods in the Service's endpoints",
        Duration::from_secs(60),
        || {
            let out = cluster.kubectl(&["get", "endpoints", &service, "-n", NS, "-o", "json"]);
            let endpoints: Value = serde_json::from_slice(&out.stdout).ok()?;
            let ips: Vec<String> = endpoints["subsets"][0]["addresses"]
                .as_array()?
                .iter()
                .filter_map(|a| a["ip"].as_str().map(str::to_owned))
                .collect();
            (ips.len() == n).then_some(ips)
        },
    )
}

/// The meshd pod at `ip`.
fn pod_at(cluster: &Cluster, ip: &str) -> String {
    let pods = cluster.get_json(&["pods", "-n", NS, "-l", "app=meshd"]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["status"]["podIP"] == ip)
        .and_then(|p| p["metadata"]["name"].as_str())
        .expect("a meshd pod at the IP")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_root_and_serve_proxies_alike() {
    let cluster = Cluster::from_env();
    cluster.delete_namespace_and_wait(APP_NS, 60);
    install_revision(&cluster, NS, REVISION);
    // A namespace without a root yet, so that the two replicas race to create it.
    let _ = cluster.kubectl(&[
        "delete",
        "secret",
        "mesh-ca-secret",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    cluster.kubectl_ok(&[
        "scale",
        "deployment",
        &format!("meshd-{REVISION}"),
        "-n",
        NS,
        "--replicas=2",
    ]);
    let ips = replica_ips(&cluster, 2);
    let name = format!("meshd-{REVISION}");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Meshd::start(&cluster, NS, &name, &ips[0]));
        let b = s.spawn(|| Meshd::start(&cluster, NS, &name, &ips[1]));
        (
            a.join().expect("first replica"),
            b.join().expect("second replica"),
        )
    });

    // One root: exactly one replica created it, and both publish it.
    let created = [&a, &b]
        .iter()
        .filter(|m| m.log().contains("created the mesh root CA"))
        .count();
    assert_eq!(created, 1, "replica logs:\n{}\n---\n{}", a.log(), b.log());
    let secret = cluster.get_json(&["secret", "mesh-ca-secret", "-n", NS]);
    let root = secret["data"]["root-cert.pem"]
        .as_str()
        .expect("the root in the CA Secret")
        .to_owned();
    assert!(!root.is_empty());

    ensure_namespace(&cluster, APP_NS);
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], APP);
    assert!(out.status.success(), "{}", stderr(&out));
    let host = format!("ratings.{APP_NS}.svc.cluster.local");
    let bundle = wait_for(
        "the trust bundle in the application namespace",
        Duration::from_secs(30),
        || {
            let out = cluster.kubectl(&[
                "get",
                "configmap",
                "istio-ca-root-cert",
                "-n",
                APP_NS,
                "-o",
                "json",
            ]);
            let cm: Value = serde_json::from_slice(&out.stdout).ok()?;
            cm["data"]["root-cert.pem"].as_str().map(str::to_owned)
        },
    );
    let decoded = {
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(root.as_bytes())
            .expect("base64 in the Secret");
        String::from_utf8(der).expect("PEM text")
    };
    assert_eq!(
        bundle.trim(),
        decoded.trim(),
        "the published bundle is the root in the Secret"
    );

    // A proxy on each replica gets the service and follows a change.
    let mut on_a = XdsClient::connect(a.grpc_port, node("reviews-a", APP_NS, "reviews")).await;
    let mut on_b = XdsClient::connect(b.grpc_port, node("reviews-b", APP_NS, "reviews")).await;
    for proxy in [&mut on_a, &mut on_b] {
        proxy
            .wait_for(|r| r.type_url == types::SERVICE && body(r, &host).is_some())
            .await;
    }
    set_route_timeout(&cluster, APP_NS, "ratings", "3s");
    for proxy in [&mut on_a, &mut on_b] {
        proxy
            .wait_for(|r| {
                r.type_url == types::VIRTUAL_SERVICE
                    && body(r, &format!("{APP_NS}/ratings"))
                        .is_some_and(|b| b["http"][0]["timeout"] == "3s")
            })
            .await;
    }

    for proxy in [&mut on_a, &mut on_b] {
        proxy.settle(Duration::from_secs(2)).await;
    }

    // proxy-status and version ask every replica, through the API server.
    let (pod_a, pod_b) = (pod_at(&cluster, &ips[0]), pod_at(&cluster, &ips[1]));
    apply_port_forward(&cluster, NS, &pod_a, 8080, a.debug_port);
    apply_port_forward(&cluster, NS, &pod_b, 8080, b.debug_port);
    let out = meshctl_until_ok(
        &cluster,
        &["proxy-status", "-i", NS],
        Duration::from_secs(90),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for (proxy, pod) in [("reviews-a", &pod_a), ("reviews-b", &pod_b)] {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("{proxy}.{APP_NS}")))
            .unwrap_or_else(|| panic!("no row for {proxy}:\n{text}"));
        assert!(row.contains(&format!("{pod}.{NS}")), "{text}");
        assert_eq!(row.matches("SYNCED").count(), 4, "{text}");
    }
    let out = cluster.meshctl(&["version", "-i", NS], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("(2 meshd)"), "{text}");
    assert!(text.contains("(2 proxies)"), "{text}");

    remove_webhooks(&cluster, NS, REVISION);
    drop((a, b));
    let _ = cluster.kubectl(&["delete", "namespace", APP_NS, "--wait=false"]);
}
