//! `meshctl dashboard` against the real cluster: the forward goes from a local port through the
//! kube-apiserver to kwok's kubelet port-forward API, and kwok's `PortForward` objects connect the
//! pods' ports to HTTP servers this test runs on the host, standing in for the add-ons.

use std::time::Duration;

use mesh_e2e::dashboard::{
    apply_add_on, apply_component, apply_port_forward, dashboard_fails, ensure_namespace, get,
    ready_pods, serve_text, wait_for_ready_pod, Dashboard,
};
use mesh_e2e::{free_port, wait_for, Cluster};

const NS: &str = "e2e-dashboard";

#[test]
fn kiali_is_forwarded_to_its_pod_and_follows_a_replacement() {
    let cluster = Cluster::from_env();
    ensure_namespace(&cluster, NS);
    apply_add_on(&cluster, &["--profile", "demo"], NS, "kiali");
    let first = wait_for_ready_pod(&cluster, NS, "app=kiali", "");
    apply_port_forward(&cluster, NS, &first, 20001, serve_text("kiali one"));

    let port = free_port().to_string();
    let dashboard = Dashboard::start(&cluster, &["kiali", "-n", NS, "-p", &port])
        .unwrap_or_else(|f| panic!("dashboard kiali: {f:?}"));
    assert_eq!(dashboard.url, format!("http://localhost:{port}/kiali"));
    assert_eq!(get(&dashboard.url).as_deref(), Ok("kiali one"));

    // Many connections at once, each its own stream through the API server.
    let answers: Vec<Result<String, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24).map(|_| s.spawn(|| get(&dashboard.url))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    for answer in answers {
        assert_eq!(answer.as_deref(), Ok("kiali one"));
    }

    // The Deployment replaces a deleted pod; the forward moves to the new one.
    cluster.kubectl_ok(&["delete", "pod", "-n", NS, &first, "--wait=false"]);
    let second = wait_for_ready_pod(&cluster, NS, "app=kiali", &first);
    apply_port_forward(&cluster, NS, &second, 20001, serve_text("kiali two"));
    wait_for(
        "the forward to reach the replacement pod",
        Duration::from_secs(60),
        || (get(&dashboard.url).as_deref() == Ok("kiali two")).then_some(()),
    );
    let said = dashboard.stderr();
    assert!(
        said.contains(&format!("forwarding to pod {NS}/{second} now")),
        "{said}"
    );
}

#[test]
fn the_mesh_namespace_comes_from_the_installed_mesh_install() {
    let cluster = Cluster::from_env();
    // A MeshInstall no operator watches: only its resolved spec.namespace matters here. Zipkin,
    // because no other test's install has it, so the search cannot stop at theirs.
    let owner_ns = "e2e-dashboard-owner";
    let mesh_ns = "e2e-dashboard-mesh";
    ensure_namespace(&cluster, owner_ns);
    ensure_namespace(&cluster, mesh_ns);
    let crd = "meshinstalls.install.meshctl.dev";
    mesh_e2e::ensure_crd(&cluster, crd);
    let install = serde_json::json!({
        "apiVersion": "install.meshctl.dev/v1alpha1",
        "kind": "MeshInstall",
        "metadata": {"name": "dashboard", "namespace": owner_ns},
        "spec": {"profile": "minimal", "namespace": mesh_ns, "addons": {"zipkin": {"enabled": true}}},
    });
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &install.to_string());
    assert!(out.status.success(), "{}", mesh_e2e::stderr(&out));

    apply_add_on(
        &cluster,
        &[
            "--profile",
            "minimal",
            "--set",
            "addons.zipkin.enabled=true",
        ],
        mesh_ns,
        "zipkin",
    );
    let pod = wait_for_ready_pod(&cluster, mesh_ns, "app=zipkin", "");
    apply_port_forward(&cluster, mesh_ns, &pod, 9411, serve_text("zipkin"));

    let port = free_port().to_string();
    let dashboard = Dashboard::start(&cluster, &["zipkin", "-p", &port, "--address", "127.0.0.1"])
        .unwrap_or_else(|f| panic!("dashboard zipkin: {f:?}"));
    assert_eq!(dashboard.url, format!("http://127.0.0.1:{port}/zipkin/"));
    assert_eq!(get(&dashboard.url).as_deref(), Ok("zipkin"));
    assert!(dashboard
        .stderr()
        .contains(&format!("to pod {mesh_ns}/{pod} port 9411")));
    // Other tests list every MeshInstall in the cluster; this one must not linger for them.
    let _ = cluster.kubectl(&[
        "delete",
        "meshinstall",
        "dashboard",
        "-n",
        owner_ns,
        "--wait=false",
    ]);
}

#[test]
fn a_sidecar_admin_page_is_forwarded_from_a_named_pod() {
    let cluster = Cluster::from_env();
    let ns = "e2e-dashboard-proxy";
    ensure_namespace(&cluster, ns);
    let pods = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
         "spec": {"containers": [{"name": "web", "image": "nginx"}, {"name": "istio-proxy", "image": "mesh-proxy"}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain", "namespace": ns},
         "spec": {"containers": [{"name": "plain", "image": "nginx"}]}},
    ]});
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &pods.to_string());
    assert!(out.status.success(), "{}", mesh_e2e::stderr(&out));
    wait_for("pods to be ready", Duration::from_secs(60), || {
        (ready_pods(&cluster, ns, "").len() == 2).then_some(())
    });
    apply_port_forward(&cluster, ns, "web", 15000, serve_text("admin"));

    let port = free_port().to_string();
    let target = format!("web.{ns}");
    let dashboard = Dashboard::start(&cluster, &["proxy", &target, "-p", &port])
        .unwrap_or_else(|f| panic!("dashboard proxy: {f:?}"));
    assert_eq!(get(&dashboard.url).as_deref(), Ok("admin"));

    // By selector too, through the `envoy` alias istioctl users type.
    let port = free_port().to_string();
    let by_label = Dashboard::start(&cluster, &["envoy", "-l", "app=web", "-n", ns, "-p", &port])
        .unwrap_or_else(|f| panic!("dashboard envoy -l: {f:?}"));
    assert_eq!(get(&by_label.url).as_deref(), Ok("admin"));

    let failed = dashboard_fails(&cluster, &["proxy", "plain", "-n", ns]);
    assert_eq!(failed.code, Some(1));
    assert!(
        failed
            .stderr
            .contains(&format!("pod {ns}/plain has no mesh-proxy sidecar")),
        "{}",
        failed.stderr
    );
    let failed = dashboard_fails(&cluster, &["proxy", "nosuch", "-n", ns]);
    assert!(
        failed
            .stderr
            .contains(&format!("no pod nosuch in namespace {ns}")),
        "{}",
        failed.stderr
    );
}

#[test]
fn errors_say_what_is_wrong_and_what_to_do() {
    let cluster = Cluster::from_env();
    let ns = "e2e-dashboard-errors";
    ensure_namespace(&cluster, ns);

    // Not installed: which profile or --set installs it; nothing on stdout.
    let failed = dashboard_fails(&cluster, &["grafana", "-n", ns]);
    assert_eq!(failed.code, Some(1));
    assert!(failed.stdout.is_empty());
    for part in [
        "grafana is not installed: no pod labelled app=grafana in namespace e2e-dashboard-errors",
        "`meshctl install --profile demo`",
        "--set addons.grafana.enabled=true",
    ] {
        assert!(
            failed.stderr.contains(part),
            "{part:?} in {}",
            failed.stderr
        );
    }

    // Not ready: why, from the pod's status.
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "prometheus-stuck", "namespace": ns, "labels": {"app": "prometheus"}},
        "spec": {"nodeSelector": {"no-such-node": "true"}, "containers": [{"name": "prometheus", "image": "prom/prometheus"}]}});
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &pod.to_string());
    assert!(out.status.success(), "{}", mesh_e2e::stderr(&out));
    wait_for(
        "the scheduler to give up on the pod",
        Duration::from_secs(60),
        || {
            let pod = cluster.get_json(&["pod", "-n", ns, "prometheus-stuck"]);
            let conditions = pod["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conditions
                .iter()
                .any(|c| c["type"] == "PodScheduled" && c["status"] == "False")
                .then_some(())
        },
    );
    let failed = dashboard_fails(&cluster, &["prometheus", "-n", ns]);
    assert_eq!(failed.code, Some(1));
    for part in [
        "no prometheus pod in namespace e2e-dashboard-errors is ready",
        "pod e2e-dashboard-errors/prometheus-stuck: unschedulable",
    ] {
        assert!(
            failed.stderr.contains(part),
            "{part:?} in {}",
            failed.stderr
        );
    }

    // Port in use: which one, and -p.
    apply_add_on(&cluster, &["--profile", "demo"], ns, "kiali");
    wait_for_ready_pod(&cluster, ns, "app=kiali", "");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("address").port().to_string();
    let failed = dashboard_fails(
        &cluster,
        &["kiali", "-n", ns, "-p", &port, "--address", "127.0.0.1"],
    );
    assert_eq!(failed.code, Some(1));
    assert!(
        failed
            .stderr
            .contains(&format!("local port {port} is already in use on 127.0.0.1")),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("-p PORT"), "{}", failed.stderr);
}

#[test]
fn controlz_finds_meshd_and_the_browser_gets_the_url() {
    let cluster = Cluster::from_env();
    let ns = "e2e-dashboard-controlz";
    ensure_namespace(&cluster, ns);
    apply_component(&cluster, &["--profile", "minimal"], ns, "control-plane");
    let pod = wait_for_ready_pod(&cluster, ns, "app=meshd", "");
    apply_port_forward(&cluster, ns, &pod, 8080, serve_text("controlz"));

    // A stand-in `xdg-open` records what it was asked to open, as a desktop's would open it.
    let bin = tempfile_dir("xdg-open");
    let opened = bin.join("opened");
    let script = bin.join("xdg-open");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" > {}\n", opened.display()),
    )
    .expect("write xdg-open");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod xdg-open");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = free_port().to_string();
    let dashboard = Dashboard::start_with(
        &cluster,
        &["controlz", "-n", ns, "-p", &port],
        &[("PATH", &path), ("DISPLAY", ":99"), ("WAYLAND_DISPLAY", "")],
    )
    .unwrap_or_else(|f| panic!("dashboard controlz: {f:?}"));
    assert_eq!(get(&dashboard.url).as_deref(), Ok("controlz"));
    let url = wait_for("the browser to be asked", Duration::from_secs(10), || {
        std::fs::read_to_string(&opened).ok()
    });
    assert_eq!(url.trim(), dashboard.url);

    // No display: nothing is opened, and it says so.
    let port = free_port().to_string();
    let headless = Dashboard::start_with(
        &cluster,
        &["controlz", "-n", ns, "-p", &port],
        &[("DISPLAY", ""), ("WAYLAND_DISPLAY", "")],
    )
    .unwrap_or_else(|f| panic!("dashboard controlz: {f:?}"));
    wait_for("the no-display note", Duration::from_secs(10), || {
        headless
            .stderr()
            .contains("no display to open a browser on")
            .then_some(())
    });
}

/// A fresh directory under the system temp dir, unique to this process.
fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meshctl-e2e-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
