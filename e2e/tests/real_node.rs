//! The mesh on the cluster's real node, as a user's cluster runs it: `meshctl install` puts the
//! operator, meshd and the gateways in pods from the images `scripts/images.sh` built (imported
//! into the node's containerd by `scripts/test.sh`, never pulled); the sample application is
//! injected by meshd's webhook, captured by the real init container and served through real
//! sidecars and the ingress gateway, with traffic sent from the host as a user would.
//!
//! Its namespaces carry the scheduler's namespace annotations that send their pods to the real
//! node (the kwok nodes keep every other test's pods), and the install has a revision of its own,
//! so that nothing here meets the other tests' installs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use mesh_e2e::{repo_root, stderr, stdout, wait_for, Cluster};

const NS: &str = "e2e-real";
const APP_NS: &str = "e2e-real-app";
const REVISION: &str = "real";
const NODE: &str = "meshctl-e2e-node";
/// The sample's Gateway answers every host; here it gets a name of its own, because a Gateway's
/// selector (`istio: ingressgateway`) also picks the other tests' gateways and their Gateways'
/// `*` routes would meet this one's.
const HOST: &str = "sample.real-node.test";
/// The demo profile's Prometheus, built by e2e/node.sh from its Go module.
const PROMETHEUS_IMAGE: &str = "meshctl.dev/e2e/prometheus:3.5.0";
/// The control plane's image under a second tag, for the rolling update.
const NEXT_TAG: &str = "0.1.0-next";

/// The pods of these namespaces go to the real node: a node selector and the toleration of its
/// taint, added by the API server's PodNodeSelector and PodTolerationRestriction plugins.
fn real_node_namespace(cluster: &Cluster, ns: &str, labels: &[&str]) {
    let labels = labels
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            format!("    {k}: \"{v}\"\n")
        })
        .collect::<String>();
    let manifest = format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels:
    e2e: real-node
{labels}  annotations:
    scheduler.alpha.kubernetes.io/node-selector: meshctl.dev/node=real
    scheduler.alpha.kubernetes.io/defaultTolerations: '[{{"key":"meshctl.dev/real-node","operator":"Exists","effect":"NoSchedule"}}]'
"#
    );
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// One GET from the host: status and body (status 0 when no answer came).
fn get(url: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "-H", &format!("Host: {HOST}")])
        .args(["-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn reviews_version(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v["reviews"]["version"].as_str().map(str::to_owned)
}

/// The versions of reviews that answered `n` requests for the product page.
fn versions(url: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..n {
        let (code, body) = get(url);
        assert_eq!(code, 200, "{url}: {body}");
        let version =
            reviews_version(&body).unwrap_or_else(|| panic!("no reviews version in {body}"));
        *seen.entry(version).or_insert(0) += 1;
    }
    seen
}

fn pods(cluster: &Cluster, ns: &str, selector: &str) -> Vec<Value> {
    let list = cluster.get_json(&["pods", "-n", ns, "-l", selector]);
    list["items"].as_array().cloned().unwrap_or_default()
}

fn ready(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn apply(cluster: &Cluster, ns: &str, yaml: &str) {
    let out = cluster.kubectl_with_stdin(&["apply", "-n", ns, "-f", "-"], yaml);
    assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
}

fn meshctl_ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = cluster.meshctl(args, "");
    assert!(
        out.status.success(),
        "meshctl {args:?} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Sends requests through the gateway from a thread until stopped, counting what failed.
struct Load {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl Load {
    fn start(url: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut sent, mut failed) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                let (code, body) = get(&url);
                sent += 1;
                if code != 200 {
                    failed.push(format!("{code} {body}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (sent, failed)
        });
        Load { stop, handle }
    }

    fn finish(self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let (sent, failed) = self.handle.join().expect("load thread");
        assert!(sent > 20, "{what}: only {sent} requests were sent");
        assert!(
            failed.is_empty(),
            "{what}: {} of {sent} requests failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        eprintln!("{what}: {sent} requests, none failed");
    }
}

fn all_synced(cluster: &Cluster, proxies: usize) -> bool {
    let out = cluster.meshctl(&["proxy-status", "-i", NS], "");
    let text = stdout(&out);
    let rows: Vec<&str> = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    out.status.success()
        && rows.len() >= proxies
        && rows
            .iter()
            .all(|r| r.contains("SYNCED") && !r.contains("STALE") && !r.contains("NOT SENT"))
}

/// Removes what the test installed when it fails half-way: an install left running would publish
/// its trust bundle into the namespaces of the tests that run after this one. (A passing run
/// uninstalls as part of the test.)
struct RemoveOnFailure<'a>(&'a Cluster);

impl Drop for RemoveOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.meshctl(&["uninstall", "-y", "-r", REVISION], "");
            self.0.delete_namespace_and_wait(APP_NS, 120);
            self.0.delete_namespace_and_wait(NS, 120);
        }
    }
}

fn meshd_pod(cluster: &Cluster) -> Option<Value> {
    pods(cluster, NS, "app=meshd").into_iter().find(ready)
}

#[test]
fn the_mesh_runs_on_the_real_node() {
    let cluster = Cluster::from_env();
    // An earlier, interrupted run.
    let _ = cluster.meshctl(&["uninstall", "-y", "-r", REVISION], "");
    cluster.delete_namespace_and_wait(APP_NS, 120);
    cluster.delete_namespace_and_wait(NS, 120);

    let _remove_on_failure = RemoveOnFailure(&cluster);

    // The install, the way a user runs it, into namespaces bound to the real node.
    real_node_namespace(&cluster, NS, &[]);
    let set_ns = format!("namespace={NS}");
    let started = Instant::now();
    meshctl_ok(
        &cluster,
        &[
            "install",
            "--profile",
            "demo",
            "-r",
            REVISION,
            "--set",
            &set_ns,
            "--set",
            "addons.grafana.enabled=false",
            "--set",
            "addons.kiali.enabled=false",
            "--set",
            "addons.jaeger.enabled=false",
            "--set",
            &format!("addons.prometheus.image={PROMETHEUS_IMAGE}"),
            "--force",
            "-y",
            "--readiness-timeout",
            "5m",
        ],
    );
    eprintln!("installed on the real node in {:?}", started.elapsed());
    let control_plane = cluster.get_json(&["pods", "-n", NS]);
    let control_plane = control_plane["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for app in [
        "mesh-operator",
        "meshd",
        "mesh-ingressgateway",
        "mesh-egressgateway",
        "prometheus",
    ] {
        let pod = control_plane
            .iter()
            .find(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(app))
            })
            .unwrap_or_else(|| panic!("no {app} pod in {NS}"));
        assert_eq!(pod["spec"]["nodeName"], NODE, "{app} runs on the real node");
        assert!(ready(pod), "{app} is ready: {}", pod["status"]);
    }

    // The sample application, injected by meshd's webhook.
    real_node_namespace(&cluster, APP_NS, &[&format!("istio.io/rev={REVISION}")]);
    let app = std::fs::read_to_string(repo_root().join("sample/manifests/sample-app.yaml"))
        .expect("sample-app.yaml");
    let gateway = std::fs::read_to_string(repo_root().join("sample/manifests/gateway.yaml"))
        .expect("gateway.yaml")
        .replace(r#"hosts: ["*"]"#, &format!(r#"hosts: ["{HOST}"]"#));
    assert_eq!(gateway.matches(HOST).count(), 2, "{gateway}");
    apply(&cluster, APP_NS, &app);
    apply(&cluster, APP_NS, &gateway);
    let out = cluster.kubectl(&[
        "wait",
        "-n",
        APP_NS,
        "--for=condition=Available",
        "deployment",
        "--all",
        "--timeout=300s",
    ]);
    assert!(
        out.status.success(),
        "the sample app's Deployments: {}",
        stderr(&out)
    );
    for pod in pods(&cluster, APP_NS, "app") {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let containers: Vec<&str> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(
            containers.contains(&"istio-proxy"),
            "{name} has the sidecar: {containers:?}"
        );
        let init =
            pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"].as_i64();
        assert_eq!(init, Some(0), "{name}'s init container set up capture");
        assert_eq!(pod["spec"]["nodeName"], NODE);
    }

    // Through the ingress gateway from the host, to productpage, which calls details and every
    // version of reviews.
    let gateway_ip = cluster.kubectl_ok(&[
        "get",
        "service",
        "mesh-ingressgateway",
        "-n",
        NS,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let url = format!("http://{gateway_ip}/productpage");
    wait_for(
        "the product page through the gateway",
        Duration::from_secs(60),
        || (get(&url).0 == 200).then_some(()),
    );
    let (_, body) = get(&url);
    let page: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(page["details"]["service"], "details", "{body}");
    let seen = versions(&url, 60);
    assert_eq!(seen.len(), 3, "every version of reviews answers: {seen:?}");

    // Every proxy (five app pods, two gateways) SYNCED, through the port-forward the real kubelet
    // serves; proxy-config reads what one proxy holds the same way.
    wait_for("every proxy SYNCED", Duration::from_secs(60), || {
        all_synced(&cluster, 7).then_some(())
    });
    let productpage = pods(&cluster, APP_NS, "app=productpage");
    let productpage = productpage[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let productpage = format!("{productpage}.{APP_NS}");
    let clusters = meshctl_ok(&cluster, &["proxy-config", "clusters", &productpage]);
    assert!(
        clusters.contains(&format!("reviews.{APP_NS}.svc.cluster.local")),
        "{clusters}"
    );

    // A weighted split between two subsets.
    apply(
        &cluster,
        APP_NS,
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v3}, weight: 20}
"#,
    );
    // In force once productpage's proxy holds the route (proxy-config reads it from the proxy).
    wait_for(
        "the split in productpage's proxy",
        Duration::from_secs(30),
        || {
            let routes = cluster.meshctl(&["proxy-config", "routes", &productpage], "");
            stdout(&routes)
                .contains(&format!("{APP_NS}/reviews"))
                .then_some(())
        },
    );
    let seen = versions(&url, 300);
    let v1 = *seen.get("v1").unwrap_or(&0) as f64 / 300.0;
    assert!(!seen.contains_key("v2"), "{seen:?}");
    assert!((v1 - 0.8).abs() < 0.08, "80/20 split: {seen:?}");

    // STRICT mTLS: plain text from outside the mesh to a pod is refused; the mesh keeps working.
    apply(
        &cluster,
        APP_NS,
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec:\n  mtls: {mode: STRICT}\n",
    );
    let details_ip = pods(&cluster, APP_NS, "app=details")[0]["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let plain = format!("http://{details_ip}:9080/details");
    wait_for(
        "plain text to be refused under STRICT",
        Duration::from_secs(30),
        || (get(&plain).0 != 200).then_some(()),
    );
    assert_eq!(get(&url).0, 200, "mesh traffic keeps flowing under STRICT");

    // An AuthorizationPolicy denying the ingress gateway's identity at productpage: 403.
    apply(
        &cluster,
        APP_NS,
        &format!(
            r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: no-gateway}}
spec:
  selector: {{matchLabels: {{app: productpage}}}}
  action: DENY
  rules:
  - from:
    - source: {{namespaces: ["{NS}"]}}
"#
        ),
    );
    wait_for("403 from the policy", Duration::from_secs(30), || {
        (get(&url).0 == 403).then_some(())
    });
    cluster.kubectl_ok(&["delete", "authorizationpolicy", "no-gateway", "-n", APP_NS]);
    wait_for("the policy's removal", Duration::from_secs(30), || {
        (get(&url).0 == 200).then_some(())
    });

    // meshd's pod deleted under load: the proxies keep serving on what they hold and reconnect
    // to the new pod.
    let old = meshd_pod(&cluster).expect("a ready meshd pod");
    let old_name = old["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let load = Load::start(url.clone());
    std::thread::sleep(Duration::from_secs(2));
    cluster.kubectl_ok(&["delete", "pod", &old_name, "-n", NS, "--wait=false"]);
    wait_for("a new meshd pod, ready", Duration::from_secs(120), || {
        meshd_pod(&cluster).filter(|p| p["metadata"]["name"] != old_name.as_str())
    });
    wait_for(
        "every proxy SYNCED with the new meshd",
        Duration::from_secs(90),
        || all_synced(&cluster, 7).then_some(()),
    );
    load.finish("meshd's pod deleted");

    // Prometheus scrapes the sidecars on their merged-metrics port, with Istio's metric names,
    // once each: from productpage's side (reporter source) and from reviews' (reporter
    // destination, with the caller's mTLS identity).
    let prometheus_ip = cluster.kubectl_ok(&[
        "get",
        "service",
        "prometheus",
        "-n",
        NS,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let series = |reporter: &str| {
        let query = format!(
            "istio_requests_total{{reporter=\"{reporter}\",destination_workload=\"reviews-v1\",destination_workload_namespace=\"{APP_NS}\"}}"
        );
        let (code, body) = get(&format!(
            "http://{prometheus_ip}:9090/api/v1/query?query={}",
            query
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
        ));
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        (code == 200 && !result.is_empty()).then_some(result)
    };
    let from_source = wait_for(
        "reporter=source series in Prometheus",
        Duration::from_secs(90),
        || series("source"),
    );
    let from_destination = wait_for(
        "reporter=destination series in Prometheus",
        Duration::from_secs(90),
        || series("destination"),
    );
    assert_eq!(from_source.len(), 1, "scraped once: {from_source:?}");
    assert_eq!(
        from_source[0]["metric"]["source_workload"], "productpage-v1",
        "{from_source:?}"
    );
    assert_eq!(
        from_destination.len(),
        1,
        "scraped once: {from_destination:?}"
    );
    let labels = &from_destination[0]["metric"];
    assert_eq!(
        labels["connection_security_policy"], "mutual_tls",
        "{labels}"
    );
    assert_eq!(
        labels["source_principal"],
        format!("spiffe://cluster.local/ns/{APP_NS}/sa/sample-productpage"),
        "{labels}"
    );

    // The sidecar's readiness gates the pod: a drained proxy answers 503 on /healthz/ready, the
    // kubelet marks the pod not ready and its address leaves the Service while the rest serves.
    let v2 = pods(&cluster, APP_NS, "app=reviews,version=v2").remove(0);
    let v2_name = v2["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let v2_ip = v2["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let drained = in_pod_netns(
        &v2_ip,
        &[
            "curl",
            "-sS",
            "-X",
            "POST",
            "http://127.0.0.1:15000/drain_listeners",
        ],
    );
    assert!(drained.status.success(), "{}", stderr(&drained));
    // The injected readiness probe tolerates 30 failures 2 s apart (a slow first configuration),
    // so the kubelet takes up to a minute to see it.
    wait_for(
        "the drained pod to turn not ready",
        Duration::from_secs(90),
        || {
            let pod = cluster.get_json(&["pod", &v2_name, "-n", APP_NS]);
            let proxy_ready = pod["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == "istio-proxy")
                .map(|c| c["ready"] == true);
            (!ready(&pod) && proxy_ready == Some(false)).then_some(())
        },
    );
    wait_for(
        "its address to leave the reviews Service",
        Duration::from_secs(30),
        || {
            let out = cluster.kubectl_ok(&[
                "get",
                "endpoints",
                "reviews",
                "-n",
                APP_NS,
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip}",
            ]);
            (!out.split_whitespace().any(|ip| ip == v2_ip)).then_some(())
        },
    );
    assert_eq!(get(&url).0, 200, "the other versions keep serving");
    cluster.kubectl_ok(&["delete", "pod", &v2_name, "-n", APP_NS, "--wait=false"]);

    let install = cluster.kubectl_ok(&[
        "get",
        "meshinstalls",
        "-n",
        NS,
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);

    // The operator's pod deleted right after a change to the MeshInstall: its successor takes the
    // leader Lease and converges on the change.
    let operator = pods(&cluster, NS, "app.kubernetes.io/name=mesh-operator").remove(0);
    let operator_name = operator["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    patch_install(
        &cluster,
        &install,
        r#"{"spec":{"meshConfig":{"accessLogEncoding":"JSON"}}}"#,
    );
    cluster.kubectl_ok(&["delete", "pod", &operator_name, "-n", NS, "--wait=false"]);
    wait_for(
        "the change applied by the new operator pod",
        Duration::from_secs(120),
        || {
            let mesh = cluster.kubectl_ok(&[
                "get",
                "configmap",
                &format!("mesh-{REVISION}"),
                "-n",
                NS,
                "-o",
                "jsonpath={.data.mesh}",
            ]);
            let phase = cluster.kubectl_ok(&[
                "get",
                "meshinstall",
                &install,
                "-n",
                NS,
                "-o",
                "jsonpath={.status.phase}",
            ]);
            let successor = pods(&cluster, NS, "app.kubernetes.io/name=mesh-operator")
                .into_iter()
                .any(|p| ready(&p) && p["metadata"]["name"] != operator_name.as_str());
            (mesh.contains("JSON") && phase == "Healthy" && successor).then_some(())
        },
    );

    // A rolling update of the control plane to another image tag, under load: the sidecars keep
    // serving and follow the new meshd.
    let tagged = std::process::Command::new(repo_root().join("e2e/cluster.sh"))
        .args([
            "ctr",
            "images",
            "tag",
            "--force",
            "ghcr.io/meshctl/meshd:0.1.0",
        ])
        .arg(format!("ghcr.io/meshctl/meshd:{NEXT_TAG}"))
        .output()
        .expect("e2e/cluster.sh ctr");
    assert!(tagged.status.success(), "{}", stderr(&tagged));
    let load = Load::start(url.clone());
    std::thread::sleep(Duration::from_secs(2));
    patch_install(
        &cluster,
        &install,
        &format!(r#"{{"spec":{{"components":{{"controlPlane":{{"tag":"{NEXT_TAG}"}}}}}}}}"#),
    );
    wait_for(
        "meshd rolled to the new tag",
        Duration::from_secs(180),
        || {
            let all = pods(&cluster, NS, "app=meshd");
            let rolled = all.iter().all(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .is_some_and(|i| i.ends_with(NEXT_TAG))
            });
            (rolled && all.iter().any(ready)).then_some(())
        },
    );
    wait_for(
        "every proxy SYNCED with the updated meshd",
        Duration::from_secs(90),
        || all_synced(&cluster, 7).then_some(()),
    );
    load.finish("the control plane's rolling update");

    // An image the node cannot have shows in the MeshInstall's status with the reason. The
    // registry name is one that never resolves (`.invalid`), so the pull fails here at once.
    patch_install(
        &cluster,
        &install,
        r#"{"spec":{"addons":{"grafana":{"enabled":true,"image":"registry.invalid/grafana:none"}}}}"#,
    );
    let message = wait_for(
        "the pull failure in the status",
        Duration::from_secs(120),
        || {
            let status = cluster.get_json(&["meshinstall", &install, "-n", NS]);
            let grafana = &status["status"]["components"]["addon/grafana"];
            let message = grafana["message"].as_str().unwrap_or_default().to_owned();
            message.contains("image pull failure").then_some(message)
        },
    );
    assert!(
        message.contains("registry.invalid/grafana:none"),
        "{message}"
    );
    patch_install(
        &cluster,
        &install,
        r#"{"spec":{"addons":{"grafana":{"enabled":false}}}}"#,
    );

    // Uninstall through the operator's pod: its finalizer removes what it installed, then the
    // operator goes too.
    cluster.delete_namespace_and_wait(APP_NS, 120);
    meshctl_ok(&cluster, &["uninstall", "-y", "-r", REVISION]);
    wait_for("the mesh's pods to go", Duration::from_secs(120), || {
        let left = cluster.get_json(&["pods", "-n", NS]);
        let left = left["items"].as_array().map_or(0, Vec::len);
        (left == 0).then_some(())
    });
    cluster.delete_namespace_and_wait(NS, 120);
}

/// A merge patch of the MeshInstall, as a user's `kubectl patch` would make it.
fn patch_install(cluster: &Cluster, install: &str, patch: &str) {
    cluster.kubectl_ok(&[
        "patch",
        "meshinstall",
        install,
        "-n",
        NS,
        "--type",
        "merge",
        "-p",
        patch,
    ]);
}

/// Runs `cmd` in the network namespace of the pod at `ip` (the CNI plugin's `cni-…` namespace),
/// where the sidecar's admin port listens on 127.0.0.1.
fn in_pod_netns(ip: &str, cmd: &[&str]) -> std::process::Output {
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    let namespaces = String::from_utf8_lossy(&list.stdout).into_owned();
    let ns = namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("cni-"))
        .find(|n| {
            let addrs = std::process::Command::new("ip")
                .args(["-n", n, "-4", "-o", "addr"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            addrs.contains(&format!(" {ip}/"))
        })
        .unwrap_or_else(|| panic!("no pod network namespace holds {ip}"));
    std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("ip netns exec")
}
