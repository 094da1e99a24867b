//! `/metrics`, `/healthz` and `/readyz` over a real socket on loopback.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mesh_operator::controller::http::{bind, serve_on};
use mesh_operator::controller::metrics::Metrics;
/// A plain HTTP/1.1 GET over a blocking socket (on a blocking thread), bounded by 5 s.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let path = path.to_owned();
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    })
    .await
    .expect("request thread");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let metrics = Metrics::new();
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(listener, metrics.clone(), async {
        let _ = stopped.await;
    }));

    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");

    metrics.loop_running.store(true, Ordering::Relaxed);
    assert_eq!(get(addr, "/readyz").await.0, 503, "API server not seen yet");
    metrics.apiserver_seen.store(true, Ordering::Relaxed);
    assert_eq!(get(addr, "/readyz").await.0, 200);

    metrics.observe_reconcile(Duration::from_millis(120), false);
    metrics.observe_reconcile(Duration::from_millis(40), true);
    metrics.set_leader(true);
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "mesh_operator_reconciles_total 2",
        "mesh_operator_reconcile_errors_total 1",
        "mesh_operator_reconcile_duration_seconds_count 2",
        "mesh_operator_leader 1",
    ] {
        assert!(body.contains(line), "{line} missing from:\n{body}");
    }
    assert!(
        body.contains("mesh_operator_reconcile_duration_seconds_bucket{le=\"0.16\"} 2"),
        "{body}"
    );
    assert_eq!(get(addr, "/nope").await.0, 404);

    // Binding a taken address fails with the address in the message.
    let err = bind(addr).await.expect_err("address in use").to_string();
    assert!(err.contains(&addr.to_string()), "{err}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .expect("server task");
}
