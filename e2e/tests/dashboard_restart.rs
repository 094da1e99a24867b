//! `meshctl dashboard` rides out a kube-apiserver restart: it says it lost the API server, a
//! request made while the API server is down is held and retried, and forwarding resumes.
//!
//! A test binary of its own, so no other test runs while the API server is down.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use mesh_e2e::dashboard::{
    apply_add_on, apply_port_forward, ensure_namespace, get, get_within, serve_text,
    wait_for_ready_pod, Dashboard,
};
use mesh_e2e::{free_port, repo_root, wait_for, Cluster};

const NS: &str = "e2e-dashboard-restart";

/// `host:port` of the API server, from the kubeconfig's `server: https://...` line.
fn api_server_address(cluster: &Cluster) -> String {
    let text = std::fs::read_to_string(&cluster.kubeconfig).expect("kubeconfig");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .expect("a server line in the kubeconfig")
        .trim_end_matches('/')
        .to_owned()
}

#[test]
fn forwarding_resumes_after_the_api_server_restarts() {
    let cluster = Cluster::from_env();
    ensure_namespace(&cluster, NS);
    apply_add_on(&cluster, &["--profile", "demo"], NS, "kiali");
    let pod = wait_for_ready_pod(&cluster, NS, "app=kiali", "");
    apply_port_forward(&cluster, NS, &pod, 20001, serve_text("kiali"));

    let port = free_port().to_string();
    let dashboard = Dashboard::start(&cluster, &["kiali", "-n", NS, "-p", &port])
        .unwrap_or_else(|f| panic!("dashboard kiali: {f:?}"));
    assert_eq!(get(&dashboard.url).as_deref(), Ok("kiali"));

    let mut restart = Command::new(repo_root().join("e2e/cluster.sh"))
        .arg("restart-apiserver")
        .spawn()
        .expect("cluster.sh runs");
    let api_server = api_server_address(&cluster);
    wait_for("the API server to go down", Duration::from_secs(60), || {
        TcpStream::connect_timeout(
            &api_server.parse().expect("host:port"),
            Duration::from_millis(200),
        )
        .is_err()
        .then_some(())
    });
    // Made while the API server is down (its graceful stop can take 30 s): held until it is back.
    let url = dashboard.url.clone();
    let during = std::thread::spawn(move || get_within(&url, Duration::from_secs(90)));
    let status = restart.wait().expect("restart-apiserver ends");
    assert!(status.success(), "restart-apiserver failed");
    assert_eq!(
        during.join().expect("request thread").as_deref(),
        Ok("kiali")
    );
    assert_eq!(get(&dashboard.url).as_deref(), Ok("kiali"));

    let said = wait_for(
        "the dashboard to report the outage and the recovery",
        Duration::from_secs(60),
        || {
            let said = dashboard.stderr();
            (said.contains("lost the connection to the API server")
                && said.contains("the API server answers again"))
            .then_some(said)
        },
    );
    assert!(said.contains("retrying with backoff"), "{said}");
}
