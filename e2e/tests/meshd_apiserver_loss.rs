//! meshd while the API server is away: it keeps serving the last known configuration (to the
//! proxy already connected and to one that connects meanwhile), says so in its readiness and in
//! `meshd_watch_failing_kinds`, and follows changes again once the API server is back.
//!
//! A test binary of its own, so no other test runs while the API server is down.

use std::process::Command;
use std::time::Duration;

use mesh_e2e::dashboard::ensure_namespace;
use mesh_e2e::meshd::{install_revision, remove_webhooks, set_route_timeout, Meshd};
use mesh_e2e::xds_client::{body, node, XdsClient};
use mesh_e2e::{repo_root, stderr, wait_for, Cluster};
use mesh_xds::types;

const NS: &str = "e2e-apiloss";
const APP_NS: &str = "e2e-apiloss-app";
const REVISION: &str = "apiloss";
/// Long enough for meshd to notice and for the checks made meanwhile.
const DOWN_SECONDS: u64 = 40;

const APP: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: details, namespace: e2e-apiloss-app}
spec:
  selector: {app: details}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: e2e-apiloss-app}
spec:
  hosts: [details]
  http: [{timeout: 5s, route: [{destination: {host: details}}]}]
"#;

/// The `restart-apiserver` run; waited for even when the test fails, so that the API server is
/// back before the next test binary starts.
struct Restart(std::process::Child);

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = self.0.wait();
    }
}

/// Created after the restart, to see the cluster serve new pods again.
const PROBE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: probe, namespace: e2e-apiloss-app}
spec:
  selector: {app: probe}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: probe, namespace: e2e-apiloss-app}
spec:
  replicas: 1
  selector: {matchLabels: {app: probe}}
  template:
    metadata: {labels: {app: probe}}
    spec: {containers: [{name: probe, image: probe:v1, ports: [{containerPort: 80}]}]}
"#;

/// meshd's `/ready` answer, whatever its status (a 503 names what is missing).
fn readiness(meshd: &Meshd) -> String {
    let out = Command::new("curl")
        .args(["-s", "-m", "2", &format!("{}/ready", meshd.debug_url)])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `meshd_watch_failing_kinds` on meshd's `/metrics`.
fn failing_kinds(meshd: &Meshd) -> Option<f64> {
    let text = mesh_e2e::dashboard::get_within(
        &format!("{}/metrics", meshd.debug_url),
        Duration::from_secs(2),
    )
    .ok()?;
    text.lines()
        .find(|l| l.starts_with("meshd_watch_failing_kinds "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshd_serves_the_last_known_state_while_the_api_server_is_away() {
    let cluster = Cluster::from_env();
    cluster.delete_namespace_and_wait(APP_NS, 60);
    let ip = install_revision(&cluster, NS, REVISION);
    let meshd = Meshd::start(&cluster, NS, &format!("meshd-{REVISION}"), &ip);
    ensure_namespace(&cluster, APP_NS);
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], APP);
    assert!(out.status.success(), "{}", stderr(&out));
    let host = format!("details.{APP_NS}.svc.cluster.local");
    let vs = format!("{APP_NS}/details");
    let mut before = XdsClient::connect(meshd.grpc_port, node("web-1", APP_NS, "web")).await;
    before
        .wait_for(|r| r.type_url == types::SERVICE && body(r, &host).is_some())
        .await;
    assert_eq!(failing_kinds(&meshd), Some(0.0));

    let mut restart = Restart(
        Command::new(repo_root().join("e2e/cluster.sh"))
            .arg("restart-apiserver")
            .env("APISERVER_DOWN_SECONDS", DOWN_SECONDS.to_string())
            .spawn()
            .expect("cluster.sh runs"),
    );

    // The API server goes after its graceful shutdown (up to 30 s, during which it still
    // serves watches); meshd notices at once, and says so.
    let said = wait_for(
        "meshd's readiness to name the lost API server",
        Duration::from_secs(30 + DOWN_SECONDS - 10),
        || {
            let r = readiness(&meshd);
            r.contains("the API server cannot be watched").then_some(r)
        },
    );
    assert!(!said.starts_with("ready"), "{said}");
    // The gauge follows every 2 s.
    wait_for(
        "meshd_watch_failing_kinds above 0",
        Duration::from_secs(10),
        || {
            failing_kinds(&meshd)
                .is_some_and(|n| n >= 1.0)
                .then_some(())
        },
    );
    // A proxy that connects now gets the last known configuration.
    let mut during = XdsClient::connect(meshd.grpc_port, node("web-2", APP_NS, "web")).await;
    during
        .wait_for(|r| r.type_url == types::SERVICE && body(r, &host).is_some())
        .await;

    let status = restart.0.wait().expect("cluster.sh ends");
    assert!(status.success(), "restart-apiserver failed");

    // Back: ready again, and changes flow to both proxies.
    wait_for(
        "meshd ready again after the API server came back",
        Duration::from_secs(60),
        || readiness(&meshd).starts_with("ready").then_some(()),
    );
    wait_for(
        "meshd_watch_failing_kinds back to 0",
        Duration::from_secs(10),
        || (failing_kinds(&meshd) == Some(0.0)).then_some(()),
    );
    set_route_timeout(&cluster, APP_NS, "details", "2s");
    for proxy in [&mut before, &mut during] {
        proxy
            .wait_for(|r| {
                r.type_url == types::VIRTUAL_SERVICE
                    && body(r, &vs).is_some_and(|b| b["http"][0]["timeout"] == "2s")
            })
            .await;
    }

    // The tests after this one need the whole cluster back: the controllers and kwok follow
    // the API server again on their own backoff. A new pod reaching a Service's endpoints says
    // they all do.
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], PROBE);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(
        "a new pod in a Service's endpoints after the restart",
        Duration::from_secs(180),
        || {
            let out = cluster.kubectl(&["get", "endpoints", "probe", "-n", APP_NS, "-o", "json"]);
            let endpoints: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            endpoints["subsets"][0]["addresses"][0]["ip"]
                .as_str()
                .map(|_| ())
        },
    );

    remove_webhooks(&cluster, NS, REVISION);
    drop(meshd);
    let _ = cluster.kubectl(&["delete", "namespace", APP_NS, "--wait=false"]);
}
