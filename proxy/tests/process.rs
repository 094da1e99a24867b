//! The proxy as a process: configuration reload (valid and invalid), readiness, admin
//! endpoints, config swaps under load, SIGTERM drain, workers.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::backend;
use support::client::{self, get};
use support::{eventually, free_port, Proxy};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn config(port: u16, backend_port: u16, extra: &str) -> String {
    format!(
        "version: v1\nlisteners:\n  - name: local\n    address: 127.0.0.1:{port}\nservices:\n  - host: s.test.svc.cluster.local\n    aliases: [s]\n    ports: [{{number: 80, name: http}}]\n    endpoints: [{{address: 127.0.0.1, port: {backend_port}}}]\n{extra}"
    )
}

fn direct(body: &str) -> String {
    format!(
        "virtualServices:\n  - hosts: [s.test.svc.cluster.local]\n    http:\n      - match: [{{uri: {{prefix: /which}}}}]\n        directResponse: {{status: 200, body: {{string: {body}}}}}\n      - route: [{{destination: {{host: s.test.svc.cluster.local}}}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_valid_changes_and_keeps_the_old_config_on_errors() {
    let a = backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&config(port, a.port(), &direct("one")));
    let px = addr(port);
    assert_eq!(client::send(px, get("s", "/which")).await.body, "one");

    p.reload(&config(port, a.port(), &direct("two")));
    assert_eq!(client::send(px, get("s", "/which")).await.body, "two");

    // A typo on line 14: reported with file, line and field; "two" stays in force.
    let bad = config(port, a.port(), &direct("three")).replace("directResponse", "directRespons");
    std::fs::write(&p.config, &bad).unwrap();
    let file = p.config.display().to_string();
    assert!(
        eventually(Duration::from_secs(5), || p
            .stderr()
            .contains("config not reloaded")),
        "{}",
        p.stderr()
    );
    let err = p.stderr();
    let line = err
        .lines()
        .find(|l| l.starts_with("error: config not reloaded"))
        .unwrap()
        .to_owned();
    assert!(line.contains(&format!("{file}:14:9")), "{line}");
    assert!(
        line.contains("field `virtualServices[0].http[0].directRespons`"),
        "{line}"
    );
    assert!(line.contains("unknown field `directRespons`"), "{line}");
    assert_eq!(client::send(px, get("s", "/which")).await.body, "two");
    let dump = client::blocking_get(p.admin, "/config_dump").unwrap();
    assert!(
        dump.contains("unknown field"),
        "lastError in the dump: {dump}"
    );

    // A value error (a duration without unit) is located too.
    let bad = config(port, a.port(), "drainTimeout: 5\n");
    std::fs::write(&p.config, &bad).unwrap();
    assert!(eventually(Duration::from_secs(5), || p
        .stderr()
        .contains("field `drainTimeout`")));
    assert!(
        p.stderr().contains(&format!("{file}:10:")),
        "{}",
        p.stderr()
    );

    // Fixed again: the new config is taken.
    p.reload(&config(port, a.port(), &direct("four")));
    assert_eq!(client::send(px, get("s", "/which")).await.body, "four");

    // A reload can add and remove listeners.
    let port2 = free_port();
    let two = config(port, a.port(), "").replace(
        "listeners:\n",
        &format!("listeners:\n  - name: second\n    address: 127.0.0.1:{port2}\n"),
    );
    p.reload(&two);
    assert_eq!(client::send(addr(port2), get("s", "/")).await.status, 200);
    p.reload(&config(port, a.port(), ""));
    assert!(eventually(Duration::from_secs(3), || {
        std::net::TcpStream::connect(addr(port2)).is_err()
    }));
}

#[test]
fn invalid_config_at_start_exits_1_with_the_location() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "services:\n  - host: a\n    ports: [{number: 99999, name: http}]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
        .args(["run", "--config"])
        .arg(&file)
        .args(["--admin", &format!("127.0.0.1:{}", free_port())])
        .args(["--health", &format!("127.0.0.1:{}", free_port())])
        .args(["--metrics", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", file.display())), "{err}");
    assert!(err.contains("services[0].ports[0].number"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_after_a_config_is_loaded() {
    let a = backend::start("a").await;
    let port = free_port();
    let p = Proxy::with_config("").no_config().start();
    assert!(eventually(Duration::from_secs(5), || {
        client::blocking_status(p.health, "/healthz/ready").is_some()
    }));
    assert_eq!(
        client::blocking_status(p.health, "/healthz/ready"),
        Some(503)
    );
    assert_eq!(client::blocking_status(p.admin, "/ready"), Some(503));
    std::fs::write(&p.config, config(port, a.port(), "")).unwrap();
    p.wait_ready();
    assert_eq!(client::blocking_status(p.admin, "/ready"), Some(200));
    assert_eq!(client::send(addr(port), get("s", "/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_swaps_never_drop_in_flight_requests() {
    let a = backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&config(port, a.port(), &direct("gen0")));
    let px = addr(port);
    // Slow requests in flight across several swaps.
    let mut slow = Vec::new();
    for _ in 0..5 {
        slow.push(tokio::spawn(async move {
            client::send(px, get("s", "/?delay_ms=1500")).await.status
        }));
    }
    // And a steady stream of requests on keep-alive connections while the config changes.
    let stream = tokio::spawn(async move {
        let mut conn = client::H1::connect(px).await;
        let mut codes = Vec::new();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            codes.push(conn.send(get("s", "/steady")).await.status);
        }
        codes
    });
    for i in 1..=4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        p.reload(&config(port, a.port(), &direct(&format!("gen{i}"))));
    }
    for s in slow {
        assert_eq!(
            s.await.unwrap(),
            200,
            "an in-flight request survived the swaps"
        );
    }
    let codes = stream.await.unwrap();
    assert!(codes.len() > 10);
    assert!(codes.iter().all(|&c| c == 200), "{codes:?}");
    assert_eq!(client::send(px, get("s", "/which")).await.body, "gen4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let a = backend::start("a").await;
    let port = free_port();
    let mut p = Proxy::start(&config(port, a.port(), "drainTimeout: 10s\n"));
    let px = addr(port);
    let slow = tokio::spawn(async move { client::send(px, get("s", "/?delay_ms=1000")).await });
    // A keep-alive client with nothing in flight is closed by the drain.
    let mut idle = client::H1::connect(px).await;
    assert_eq!(idle.send(get("s", "/")).await.status, 200);
    assert!(eventually(Duration::from_secs(2), || a.count() >= 2));
    let t = Instant::now();
    p.signal(libc::SIGTERM);
    assert!(eventually(
        Duration::from_secs(2),
        || client::blocking_status(p.health, "/healthz/ready") == Some(503)
    ));
    assert!(
        eventually(Duration::from_secs(2), || std::net::TcpStream::connect(px)
            .is_err()),
        "listeners closed: no new connections"
    );
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200, "the in-flight request finished");
    let status = tokio::task::spawn_blocking(move || {
        let s = p.wait_exit(Duration::from_secs(8));
        (s, p)
    })
    .await
    .unwrap();
    assert!(status.0.expect("exited").success());
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "exited once drained, before the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_the_wait() {
    let a = backend::start("a").await;
    let port = free_port();
    let mut p = Proxy::start(&config(port, a.port(), "drainTimeout: 500ms\n"));
    let px = addr(port);
    let slow = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(px).await.unwrap();
        let (mut s, conn) = hyper::client::conn::http1::handshake::<
            _,
            http_body_util::Empty<bytes::Bytes>,
        >(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .uri("/?delay_ms=5000")
            .header("host", "s")
            .body(http_body_util::Empty::new())
            .unwrap();
        s.send_request(req).await.is_err()
    });
    assert!(eventually(Duration::from_secs(2), || a.count() == 1));
    let t = Instant::now();
    p.signal(libc::SIGTERM);
    let (status, _p) =
        tokio::task::spawn_blocking(move || (p.wait_exit(Duration::from_secs(4)), p))
            .await
            .unwrap();
    assert!(status.is_some(), "exited at the drain timeout");
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(slow.await.unwrap(), "the request past the timeout was cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints() {
    let a = backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&config(port, a.port(), ""));
    client::send(addr(port), get("s", "/")).await;
    let dump: serde_json::Value =
        serde_json::from_str(&client::blocking_get(p.admin, "/config_dump").unwrap()).unwrap();
    assert_eq!(dump["version"], "v1");
    assert_eq!(dump["generation"], 1);
    assert_eq!(
        dump["config"]["services"][0]["host"],
        "s.test.svc.cluster.local"
    );
    assert_eq!(dump["listeners"][0]["name"], "local");
    let stats = client::blocking_get(p.admin, "/stats").unwrap();
    assert!(stats.contains("server.config_loads: 1"), "{stats}");
    assert!(stats.contains("istio_requests_total{"), "{stats}");
    assert_eq!(
        client::blocking_get(p.admin, "/ready").as_deref(),
        Some("LIVE\n")
    );
    assert!(client::blocking_get(p.admin, "/clusters")
        .unwrap()
        .contains("outbound|80||s.test.svc.cluster.local"));
    assert!(client::blocking_get(p.admin, "/stats/prometheus")
        .unwrap()
        .contains("istio_requests_total"));

    // Log level: changed at run time; debug logs appear.
    assert_eq!(
        client::blocking_get(p.admin, "/logging").as_deref(),
        Some("info\n")
    );
    assert_eq!(
        client::blocking_request(p.admin, "POST", "/logging?level=nonsense=[").map(|r| r.0),
        Some(400)
    );
    assert_eq!(
        client::blocking_request(p.admin, "POST", "/logging?level=debug").map(|r| r.0),
        Some(200)
    );
    assert_eq!(
        client::blocking_get(p.admin, "/logging").as_deref(),
        Some("debug\n")
    );
    client::send(addr(port), get("nohost", "/")).await;
    let _ = std::net::TcpStream::connect(addr(port)).map(drop);
    assert!(
        eventually(Duration::from_secs(2), || p.stderr().contains("DEBUG")),
        "{}",
        p.stderr()
    );

    // Drain: listeners close and readiness goes, the process stays.
    assert_eq!(
        client::blocking_status(p.admin, "/drain_listeners"),
        Some(405),
        "POST only"
    );
    assert_eq!(
        client::blocking_request(p.admin, "POST", "/drain_listeners").map(|r| r.0),
        Some(200)
    );
    assert!(eventually(Duration::from_secs(2), || {
        std::net::TcpStream::connect(addr(port)).is_err()
    }));
    assert_eq!(
        client::blocking_status(p.health, "/healthz/ready"),
        Some(503)
    );
    assert_eq!(client::blocking_status(p.admin, "/ready"), Some(503));
    assert!(
        client::blocking_get(p.admin, "/stats").is_some(),
        "admin still answers"
    );
}

#[test]
fn admin_listens_on_localhost_by_default_and_the_metrics_port_serves_prometheus() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 127.0.0.1:15000]"), "{help}");
    assert!(help.contains("[default: 0.0.0.0:15021]"), "{help}");
    assert!(help.contains("[default: 0.0.0.0:15090]"), "{help}");
    assert!(
        help.contains("--workers <WORKERS>") && help.contains("[default: 1]"),
        "{help}"
    );
}

fn worker_threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .filter(|n| n.starts_with("worker-"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_by_default_and_more_on_request() {
    let a = backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&config(port, a.port(), ""));
    assert_eq!(worker_threads(p.pid()), ["worker-0"]);
    drop(p);
    let port = free_port();
    let p = Proxy::with_config(&config(port, a.port(), ""))
        .arg("--workers")
        .arg("3")
        .start();
    assert_eq!(
        worker_threads(p.pid()),
        ["worker-0", "worker-1", "worker-2"]
    );
    // Every worker serves: connections spread over them (SO_REUSEPORT), all answered.
    let mut tasks = Vec::new();
    for _ in 0..30 {
        tasks.push(tokio::spawn(async move {
            client::send(addr(port), get("s", "/")).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
}
