//! meshd's discovery and push against the real API server: Services, EndpointSlices and pods
//! the cluster made, and VirtualServices applied with kubectl, reach a proxy over the delta
//! stream; a change reaches it; an object the proxies cannot use is skipped with an Event while
//! the rest is pushed; `meshctl proxy-status` shows the proxy SYNCED, through the API server's
//! port-forward to meshd's pod.
//!
//! The proxy here is a gRPC client behaving as mesh-proxy does (hello, ACK); meshd runs as a
//! local process at its kwok pod's IP (see `mesh_e2e::meshd`).

use std::time::Duration;

use mesh_e2e::dashboard::{apply_port_forward, ensure_namespace};
use mesh_e2e::meshd::{install_revision, remove_webhooks, set_route_timeout, Meshd};
use mesh_e2e::xds_client::{body, node, XdsClient};
use mesh_e2e::{meshctl_until_ok, stderr, stdout, wait_for, Cluster};
use mesh_xds::types;
use serde_json::Value;

const NS: &str = "e2e-push";
const APP_NS: &str = "e2e-push-app";
const REVISION: &str = "push";

const APP: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: e2e-push-app}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: e2e-push-app}
spec:
  replicas: 2
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}, annotations: {sidecar.istio.io/inject: "false"}}
    spec: {containers: [{name: reviews, image: reviews:v1, ports: [{containerPort: 9080}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: e2e-push-app}
spec:
  hosts: [reviews]
  http: [{timeout: 5s, route: [{destination: {host: reviews}}]}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_reaches_a_proxy_changes_follow_and_proxy_status_shows_it_synced() {
    let cluster = Cluster::from_env();
    cluster.delete_namespace_and_wait(APP_NS, 60);
    let ip = install_revision(&cluster, NS, REVISION);
    let meshd = Meshd::start(&cluster, NS, &format!("meshd-{REVISION}"), &ip);
    ensure_namespace(&cluster, APP_NS);
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
    let host = format!("reviews.{APP_NS}.svc.cluster.local");

    // The service arrives with the two endpoints the EndpointSlice controller listed.
    let mut proxy = XdsClient::connect(
        meshd.grpc_port,
        node("productpage-1", APP_NS, "productpage"),
    )
    .await;
    let service = proxy
        .wait_for(|r| {
            r.type_url == types::SERVICE
                && body(r, &host)
                    .is_some_and(|b| b["endpoints"].as_array().is_some_and(|e| e.len() == 2))
        })
        .await;
    let service = body(&service, &host).expect("the service");
    assert_eq!(service["endpoints"][0]["labels"]["version"], "v1");
    assert_eq!(service["endpoints"][0]["workload"], "reviews-v1");

    // A change through the API server reaches the proxy.
    set_route_timeout(&cluster, APP_NS, "reviews", "7s");
    let started = std::time::Instant::now();
    let vs = proxy
        .wait_for(|r| {
            r.type_url == types::VIRTUAL_SERVICE
                && body(r, &format!("{APP_NS}/reviews"))
                    .is_some_and(|b| b["http"][0]["timeout"] == "7s")
        })
        .await;
    eprintln!(
        "VirtualService change reached the proxy {:?} after kubectl returned",
        started.elapsed()
    );
    assert!(vs.removed_resources.is_empty());

    // An object the proxies cannot use is skipped, with an Event naming why, and the other
    // objects keep flowing.
    let broken = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: broken, namespace: e2e-push-app}\nspec:\n  hosts: [ratings]\n  http: [{timeout: soon, route: [{destination: {host: ratings}}]}]\n";
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], broken);
    assert!(out.status.success(), "{}", stderr(&out));
    set_route_timeout(&cluster, APP_NS, "reviews", "9s");
    let vs = proxy
        .wait_for(|r| {
            r.type_url == types::VIRTUAL_SERVICE
                && body(r, &format!("{APP_NS}/reviews"))
                    .is_some_and(|b| b["http"][0]["timeout"] == "9s")
        })
        .await;
    assert!(
        vs.resources
            .iter()
            .all(|r| r.name != format!("{APP_NS}/broken")),
        "the broken object was pushed"
    );
    let event = wait_for(
        "an Event on the skipped VirtualService",
        Duration::from_secs(30),
        || {
            let out = cluster.kubectl(&[
                "get",
                "events",
                "-n",
                APP_NS,
                "--field-selector",
                "involvedObject.name=broken",
                "-o",
                "json",
            ]);
            let list: Value = serde_json::from_slice(&out.stdout).ok()?;
            list["items"].as_array()?.first().cloned()
        },
    );
    assert_eq!(event["reason"], "ConfigSkipped");
    assert!(
        event["message"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.http[0].timeout"),
        "{event}"
    );

    // proxy-status, through the API server to meshd's pod.
    let pods = cluster.get_json(&["pods", "-n", NS, "-l", "app=meshd"]);
    let pod = pods["items"][0]["metadata"]["name"]
        .as_str()
        .expect("meshd pod")
        .to_owned();
    apply_port_forward(&cluster, NS, &pod, 8080, meshd.debug_port);
    let out = meshctl_until_ok(
        &cluster,
        &["proxy-status", "-i", NS],
        Duration::from_secs(90),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("productpage-1.{APP_NS}")))
        .unwrap_or_else(|| panic!("no row for the proxy:\n{text}"));
    assert_eq!(row.matches("SYNCED").count(), 4, "{text}");
    assert!(row.contains(&format!("{pod}.{NS}")), "{text}");
    let out = cluster.meshctl(
        &["proxy-status", "-i", NS, &format!("productpage-1.{APP_NS}")],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ROUTES    SYNCED"),
        "{}",
        stdout(&out)
    );
    let out = cluster.meshctl(&["version", "-i", NS], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!("control plane version: {version} (1 meshd)")),
        "{text}"
    );
    assert!(
        text.contains("data plane version: e2e (1 proxies)"),
        "{text}"
    );
    let out = cluster.meshctl(&["proxy-status", "-i", NS, "ghost.nowhere"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ghost.nowhere is not connected to meshd"),
        "{}",
        stderr(&out)
    );

    remove_webhooks(&cluster, NS, REVISION);
    drop(meshd);
    let _ = cluster.kubectl(&["delete", "namespace", APP_NS, "--wait=false"]);
}
