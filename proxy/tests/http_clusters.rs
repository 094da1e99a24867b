//! Clusters with DestinationRule meaning, and the resilience of routes: retries, timeouts,
//! load balancing, connection pool limits, outlier detection, connect timeout, keepalive,
//! HTTP/2 upstreams. Real proxy process, real upstream servers on loopback.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use support::backend::{self, Backend};
use support::client::{self, get};
use support::{free_port, Proxy};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A config with one plain listener and service `s` over `endpoints`, plus `extra` YAML.
fn config(port: u16, endpoints: &[u16], extra: &str) -> String {
    let mut eps = String::new();
    for (i, p) in endpoints.iter().enumerate() {
        eps.push_str(&format!(
            "      - {{address: 127.0.0.1, port: {p}, labels: {{idx: 'e{i}'}}}}\n"
        ));
    }
    format!(
        "listeners:\n  - name: local\n    address: 127.0.0.1:{port}\nservices:\n  - host: s.test.svc.cluster.local\n    aliases: [s]\n    ports: [{{number: 80, name: http}}]\n    endpoints:\n{eps}{extra}"
    )
}

fn dr(policy: &str) -> String {
    format!("destinationRules:\n  - host: s.test.svc.cluster.local\n    trafficPolicy:\n{policy}")
}

fn vs(route_extra: &str) -> String {
    format!(
        "virtualServices:\n  - hosts: [s.test.svc.cluster.local]\n    http:\n      - route: [{{destination: {{host: s.test.svc.cluster.local}}}}]\n{route_extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_by_kind_with_attempt_limit() {
    let a = backend::start("a").await;
    let port = free_port();
    let cfg = config(
        port,
        &[a.port()],
        &vs("        retries: {attempts: 2, retryOn: '5xx', backoff: {baseInterval: 5ms}}\n"),
    );
    let p = Proxy::start(&cfg);
    let px = addr(port);
    // Fails twice, then succeeds: two retries are enough.
    let r = client::send(px, get("s", "/?fail=2&key=k1")).await;
    assert_eq!(r.status, 200);
    // Fails three times: the third failure is returned.
    let r = client::send(px, get("s", "/?fail=3&key=k2")).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        a.seen().iter().filter(|s| s.path.contains("k2")).count(),
        3,
        "1 try + 2 retries"
    );
    // A POST body is replayed on the retry.
    let r = client::send(px, get("s", "/?fail=1&key=k3").method("POST").body("again")).await;
    assert_eq!(r.status, 200);
    assert!(a
        .seen()
        .iter()
        .filter(|s| s.path.contains("k3"))
        .all(|s| &s.body[..] == b"again"));
    // 4xx are not 5xx.
    let n = a.count();
    assert_eq!(
        client::send(px, get("s", "/?fail=1&key=k4&fail_status=404"))
            .await
            .status,
        404
    );
    assert_eq!(a.count(), n + 1);
    drop(p);

    // gateway-error retries 502-504 only; retriable-status-codes the listed codes; gRPC codes.
    let port = free_port();
    let cfg = config(
        port,
        &[a.port()],
        &(format!(
            "virtualServices:\n  - hosts: [s.test.svc.cluster.local]\n    http:\n{}{}{}",
            "      - match: [{uri: {prefix: /gw}}]\n        retries: {attempts: 3, retryOn: gateway-error}\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n",
            "      - match: [{uri: {prefix: /codes}}]\n        retries: {attempts: 3, retryOn: 'retriable-status-codes,409'}\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n",
            "      - match: [{uri: {prefix: /off}}]\n        retries: {attempts: 0}\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n",
        ) + "      - match: [{uri: {prefix: /r4}}]\n        retries: {attempts: 2, retryOn: retriable-4xx}\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n"
            + "      - match: [{uri: {prefix: /reset}}]\n        retries: {attempts: 2, retryOn: reset}\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n"
            + "      - match: [{uri: {prefix: /noreset}}]\n        retries: {attempts: 2, retryOn: 5xx}\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n"
            + "      - match: [{uri: {prefix: /gwreset}}]\n        retries: {attempts: 2, retryOn: gateway-error}\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n"),
    );
    let p = Proxy::start(&cfg);
    let px = addr(port);
    assert_eq!(
        client::send(px, get("s", "/gw?fail=1&key=g1&fail_status=504"))
            .await
            .status,
        200
    );
    assert_eq!(
        client::send(px, get("s", "/gw?fail=1&key=g2&fail_status=500"))
            .await
            .status,
        500
    );
    assert_eq!(
        client::send(px, get("s", "/codes?fail=1&key=c1&fail_status=409"))
            .await
            .status,
        200
    );
    assert_eq!(
        client::send(px, get("s", "/codes?fail=1&key=c2&fail_status=503"))
            .await
            .status,
        503
    );
    assert_eq!(
        client::send(px, get("s", "/off?fail=1&key=o1"))
            .await
            .status,
        503
    );
    assert!(support::eventually(Duration::from_secs(2), || {
        client::blocking_get(p.admin, "/stats")
            .is_some_and(|s| s.contains("server.upstream_rq_retry: 2"))
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_on_another_endpoint() {
    let a = backend::start("a").await;
    let dead = free_port();
    let port = free_port();
    let cfg = config(
        port,
        &[dead, a.port()],
        &dr("      loadBalancer: {simple: ROUND_ROBIN}\n"),
    );
    let p = Proxy::start(&cfg);
    let px = addr(port);
    for _ in 0..6 {
        assert_eq!(
            client::send(px, get("s", "/")).await.status,
            200,
            "{}",
            p.stderr()
        );
    }
    drop(p);
    // Without retries, the dead endpoint's turn fails with 503 UF.
    let port = free_port();
    let cfg = config(port, &[dead], &vs("        retries: {attempts: 0}\n"));
    let p = Proxy::start(&cfg);
    let r = client::send(addr(port), get("s", "/")).await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("connection failure"), "{}", r.body);
    assert!(support::eventually(Duration::from_secs(2), || {
        p.metric(
            "istio_requests_total",
            &[("response_code", "503"), ("response_flags", "UF")],
        ) == 1.0
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_and_per_try_timeout() {
    let a = backend::start("a").await;
    let port = free_port();
    let cfg = config(
        port,
        &[a.port()],
        &format!(
            "virtualServices:\n  - hosts: [s.test.svc.cluster.local]\n    http:\n{}{}",
            "      - match: [{uri: {prefix: /pertry}}]\n        retries: {attempts: 1, perTryTimeout: 200ms, retryOn: 5xx}\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n",
            "      - timeout: 300ms\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n",
        ),
    );
    let p = Proxy::start(&cfg);
    let px = addr(port);
    let t = std::time::Instant::now();
    let r = client::send(px, get("s", "/?delay_ms=3000")).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.body, "upstream request timeout");
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "answered at the timeout, not after the upstream"
    );
    assert_eq!(
        client::send(px, get("s", "/?delay_ms=10")).await.status,
        200
    );
    // Per-try timeout: both tries time out.
    let r = client::send(px, get("s", "/pertry?delay_ms=3000")).await;
    assert_eq!(r.status, 504);
    assert_eq!(
        a.seen()
            .iter()
            .filter(|s| s.path.starts_with("/pertry"))
            .count(),
        2
    );
    assert!(support::eventually(Duration::from_secs(2), || {
        p.metric(
            "istio_requests_total",
            &[("response_code", "504"), ("response_flags", "UT")],
        ) == 1.0
    }));
}

async fn spread(
    px: SocketAddr,
    n: usize,
    req: impl Fn(usize) -> (String, Vec<(String, String)>),
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let (path, headers) = req(i);
        let mut r = get("s", &path);
        for (k, v) in &headers {
            r = r.header(k, v);
        }
        let resp = client::send(px, r).await;
        *counts
            .entry(resp.backend().unwrap_or("none").to_owned())
            .or_insert(0) += 1;
    }
    counts
}

async fn three() -> (Backend, Backend, Backend) {
    (
        backend::start("b0").await,
        backend::start("b1").await,
        backend::start("b2").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancing_policies() {
    let (b0, b1, b2) = three().await;
    let eps = [b0.port(), b1.port(), b2.port()];

    // Round robin: exactly even.
    let port = free_port();
    let _p = Proxy::start(&config(
        port,
        &eps,
        &dr("      loadBalancer: {simple: ROUND_ROBIN}\n"),
    ));
    let c = spread(addr(port), 30, |_| ("/".into(), vec![])).await;
    assert_eq!(
        c.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{c:?}"
    );

    // Random: every endpoint gets some.
    let port = free_port();
    let _p = Proxy::start(&config(
        port,
        &eps,
        &dr("      loadBalancer: {simple: RANDOM}\n"),
    ));
    let c = spread(addr(port), 90, |_| ("/".into(), vec![])).await;
    assert_eq!(c.len(), 3, "{c:?}");
    assert!(c.values().all(|&n| n >= 10), "{c:?}");

    // Consistent hash by header: a key sticks to one endpoint; keys spread.
    let port = free_port();
    let _p = Proxy::start(&config(
        port,
        &eps,
        &dr("      loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n"),
    ));
    let c = spread(addr(port), 20, |_| {
        ("/".into(), vec![("x-user".into(), "alice".into())])
    })
    .await;
    assert_eq!(c.len(), 1, "one key, one endpoint: {c:?}");
    let c = spread(addr(port), 60, |i| {
        ("/".into(), vec![("x-user".into(), format!("user{i}"))])
    })
    .await;
    assert_eq!(c.len(), 3, "many keys use every endpoint: {c:?}");

    // By query parameter.
    let port = free_port();
    let _p = Proxy::start(&config(
        port,
        &eps,
        &dr("      loadBalancer: {consistentHash: {httpQueryParameterName: user}}\n"),
    ));
    let c = spread(addr(port), 20, |_| ("/?user=bob".into(), vec![])).await;
    assert_eq!(c.len(), 1, "{c:?}");
    let c = spread(addr(port), 60, |i| (format!("/?user=u{i}"), vec![])).await;
    assert_eq!(c.len(), 3, "{c:?}");

    // By source IP: every request here comes from 127.0.0.1.
    let port = free_port();
    let _p = Proxy::start(&config(
        port,
        &eps,
        &dr("      loadBalancer: {consistentHash: {useSourceIp: true}}\n"),
    ));
    let c = spread(addr(port), 20, |_| ("/".into(), vec![])).await;
    assert_eq!(c.len(), 1, "{c:?}");

    // By cookie: without one the proxy sets it; sent back, it sticks.
    let port = free_port();
    let _p = Proxy::start(&config(
        port,
        &eps,
        &dr("      loadBalancer: {consistentHash: {httpCookie: {name: sticky, ttl: 60s, path: /}}}\n"),
    ));
    let r = client::send(addr(port), get("s", "/")).await;
    let set = r
        .header("set-cookie")
        .expect("the proxy sets the hash cookie")
        .to_owned();
    assert!(
        set.starts_with("sticky=") && set.contains("Max-Age=60") && set.contains("Path=/"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let c = spread(addr(port), 20, |_| {
        ("/".into(), vec![("cookie".into(), cookie.clone())])
    })
    .await;
    assert_eq!(c.len(), 1, "{c:?}");
    let c = spread(addr(port), 60, |i| {
        ("/".into(), vec![("cookie".into(), format!("sticky=v{i}"))])
    })
    .await;
    assert_eq!(c.len(), 3, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_avoids_the_busy_endpoint() {
    let slow = backend::start("slow").await;
    let fast = backend::start("fast").await;
    let port = free_port();
    let _p = Proxy::start(&config(
        port,
        &[slow.port(), fast.port()],
        &dr("      loadBalancer: {simple: LEAST_REQUEST}\n"),
    ));
    let px = addr(port);
    // One request holds an endpoint busy; P2C compares two different endpoints, so with two
    // the idle one always wins.
    let held = tokio::spawn(async move { client::send(px, get("s", "/?delay_ms=3000")).await });
    assert!(support::eventually(Duration::from_secs(2), || slow.count()
        + fast.count()
        == 1));
    let busy = if slow.count() == 1 { &slow } else { &fast };
    let idle = if slow.count() == 1 { &fast } else { &slow };
    for _ in 0..20 {
        client::send(px, get("s", "/")).await;
    }
    assert_eq!((busy.count(), idle.count()), (1, 20));
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_pool_limits_fail_fast_with_503_uo() {
    let a = backend::start("a").await;
    let port = free_port();
    let cfg = config(
        port,
        &[a.port()],
        &dr("      connectionPool:\n        tcp: {maxConnections: 1}\n        http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}\n"),
    );
    let p = Proxy::start(&cfg);
    let px = addr(port);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        tasks.push(tokio::spawn(async move {
            client::send(px, get("s", "/?delay_ms=500")).await
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut codes = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 503 {
            assert!(r.body.contains("overflow"), "{}", r.body);
        }
        codes.push(r.status);
    }
    let ok = codes.iter().filter(|&&c| c == 200).count();
    let overflow = codes.iter().filter(|&&c| c == 503).count();
    assert_eq!(
        (ok, overflow),
        (2, 4),
        "one in flight, one pending, the rest refused: {codes:?}"
    );
    assert!(support::eventually(Duration::from_secs(2), || {
        p.metric(
            "istio_requests_total",
            &[("response_code", "503"), ("response_flags", "UO")],
        ) == 4.0
    }));
    // maxRequestsPerConnection: 1 means a new upstream connection per request.
    let before = a.connections();
    for _ in 0..3 {
        assert_eq!(client::send(px, get("s", "/")).await.status, 200);
    }
    assert_eq!(a.connections() - before, 3);
    drop(p);

    // http2MaxRequests caps requests in flight regardless of connections.
    let port = free_port();
    let p = Proxy::start(&config(
        port,
        &[a.port()],
        &dr("      connectionPool:\n        http: {http2MaxRequests: 2}\n"),
    ));
    let px = addr(port);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        tasks.push(tokio::spawn(async move {
            client::send(px, get("s", "/?delay_ms=500")).await.status
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    codes.sort();
    assert_eq!(codes, [200, 200, 503, 503, 503]);
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_closed_when_idle() {
    let a = backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&config(
        port,
        &[a.port()],
        &dr("      connectionPool:\n        http: {idleTimeout: 1s}\n"),
    ));
    let px = addr(port);
    for _ in 0..10 {
        assert_eq!(client::send(px, get("s", "/")).await.status, 200);
    }
    assert_eq!(
        a.connections(),
        1,
        "sequential requests share one pooled upstream connection"
    );
    assert!(
        support::eventually(Duration::from_secs(6), || a
            .state
            .closed
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1),
        "the idle connection was closed after idleTimeout"
    );
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_failing_endpoints() {
    let good = backend::start("good").await;
    let bad = backend::start("bad").await;
    let port = free_port();
    let p = Proxy::start(&config(
        port,
        &[good.port(), bad.port()],
        &format!(
            "{}{}",
            dr("      loadBalancer: {simple: ROUND_ROBIN}\n      outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}\n"),
            vs("        retries: {attempts: 0}\n"),
        ),
    ));
    let px = addr(port);
    bad.state
        .fail_all
        .store(500, std::sync::atomic::Ordering::SeqCst);
    let mut from_bad = 0;
    for _ in 0..20 {
        let r = client::send(px, get("s", "/")).await;
        if r.backend() == Some("bad") {
            assert_eq!(r.status, 500);
            from_bad += 1;
        }
    }
    assert_eq!(from_bad, 2, "ejected after 2 consecutive 5xx");
    drop(p);

    // Connect failures count as 5xx and gateway errors too.
    let dead = free_port();
    let port = free_port();
    let p = Proxy::start(&config(
        port,
        &[good.port(), dead],
        &format!(
            "{}{}",
            dr("      loadBalancer: {simple: ROUND_ROBIN}\n      outlierDetection: {consecutiveGatewayErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}\n"),
            vs("        retries: {attempts: 0}\n"),
        ),
    ));
    let px = addr(port);
    let mut failures = 0;
    for _ in 0..20 {
        if client::send(px, get("s", "/")).await.status != 200 {
            failures += 1;
        }
    }
    assert_eq!(failures, 2, "ejected after 2 consecutive gateway errors");
    let clusters = client::blocking_get(p.admin, "/clusters").unwrap();
    assert!(
        clusters.contains(&format!(
            "127.0.0.1:{dead}::active=0 ejected=true times_ejected=1"
        )),
        "{clusters}"
    );
    drop(p);

    // Without outlier detection the dead endpoint keeps getting its turn.
    let port = free_port();
    let _p = Proxy::start(&config(
        port,
        &[good.port(), dead],
        &format!(
            "{}{}",
            dr("      loadBalancer: {simple: ROUND_ROBIN}\n"),
            vs("        retries: {attempts: 0}\n")
        ),
    ));
    let mut failures = 0;
    for _ in 0..20 {
        if client::send(addr(port), get("s", "/")).await.status != 200 {
            failures += 1;
        }
    }
    assert_eq!(failures, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_and_tcp_keepalive() {
    // A listener whose accept queue is full drops new SYNs: connecting hangs.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let stuck: SocketAddr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&stuck, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    let port = free_port();
    let p = Proxy::start(&config(
        port,
        &[stuck.port()],
        &format!(
            "{}{}",
            dr("      connectionPool:\n        tcp: {connectTimeout: 300ms}\n"),
            vs("        retries: {attempts: 0}\n"),
        ),
    ));
    let t = std::time::Instant::now();
    let r = client::send(addr(port), get("s", "/")).await;
    assert_eq!(r.status, 503);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "gave up at the connect timeout"
    );
    drop(p);
    drop(fillers);

    let a = backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&config(
        port,
        &[a.port()],
        &dr("      connectionPool:\n        tcp: {tcpKeepalive: {time: 7s, interval: 3s, probes: 4}}\n"),
    ));
    assert_eq!(client::send(addr(port), get("s", "/")).await.status, 200);
    // The pooled upstream socket has SO_KEEPALIVE on: `ss -o` shows its keepalive timer.
    let out = std::process::Command::new("ss")
        .args([
            "-tnoH",
            "state",
            "established",
            &format!("( dport = :{} )", a.port()),
        ])
        .output()
        .expect("ss runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keepalive"), "{text}");
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstreams_by_policy_port_name_or_client_protocol() {
    let a = backend::start("a").await;
    // h2UpgradePolicy: UPGRADE turns HTTP/1.1 clients' requests into HTTP/2 upstream.
    let port = free_port();
    let p = Proxy::start(&config(
        port,
        &[a.port()],
        &dr("      connectionPool:\n        http: {h2UpgradePolicy: UPGRADE}\n"),
    ));
    let r = client::send(addr(port), get("s", "/up")).await;
    assert_eq!(r.status, 200);
    assert_eq!(a.last().unwrap().version, "HTTP/2.0");
    // Many concurrent requests share one HTTP/2 connection.
    let before = a.connections();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let px = addr(port);
        tasks.push(tokio::spawn(async move {
            client::send(px, get("s", "/?delay_ms=100")).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert!(a.connections() - before <= 1);
    drop(p);

    // An `http` port and an HTTP/2 client: HTTP/1.1 upstream (Istio's DEFAULT policy).
    let port = free_port();
    let p = Proxy::start(&config(port, &[a.port()], ""));
    let mut h2 = client::H2::connect(addr(port)).await;
    let r = h2.send(get("s", "/h2-client")).await;
    assert_eq!(r.status, 200);
    assert_eq!(a.last().unwrap().version, "HTTP/1.1");
    drop(p);

    // useClientProtocol keeps HTTP/2.
    let port = free_port();
    let _p = Proxy::start(&config(
        port,
        &[a.port()],
        &dr("      connectionPool:\n        http: {useClientProtocol: true}\n"),
    ));
    let mut h2 = client::H2::connect(addr(port)).await;
    h2.send(get("s", "/h2-kept")).await;
    assert_eq!(a.last().unwrap().version, "HTTP/2.0");
    let r = client::send(addr(port), get("s", "/h1-kept")).await;
    assert_eq!(r.status, 200);
    assert_eq!(a.last().unwrap().version, "HTTP/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retries_caps_retries_in_flight() {
    let a = backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&config(
        port,
        &[a.port()],
        &format!(
            "{}{}",
            dr("      connectionPool:\n        http: {maxRetries: 0}\n"),
            vs("        retries: {attempts: 3, retryOn: 5xx}\n"),
        ),
    ));
    let r = client::send(addr(port), get("s", "/?fail=1&key=m1")).await;
    assert_eq!(r.status, 503, "no retry budget: the first answer is final");
    assert_eq!(a.seen().iter().filter(|s| s.path.contains("m1")).count(), 1);
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejected_endpoints_return_after_the_ejection_time_and_max_percent_holds() {
    let good = backend::start("good").await;
    let dead = free_port();
    let port = free_port();
    let p = Proxy::start(&config(
        port,
        &[good.port(), dead],
        &format!(
            "{}{}",
            dr("      loadBalancer: {simple: ROUND_ROBIN}\n      outlierDetection: {consecutiveGatewayErrors: 1, interval: 100ms, baseEjectionTime: 1s, maxEjectionPercent: 100}\n"),
            vs("        retries: {attempts: 0}\n"),
        ),
    ));
    let px = addr(port);
    let mut failures = 0;
    for _ in 0..10 {
        if client::send(px, get("s", "/")).await.status != 200 {
            failures += 1;
        }
    }
    assert_eq!(failures, 1, "ejected after its first failure");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut failures = 0;
    for _ in 0..10 {
        if client::send(px, get("s", "/")).await.status != 200 {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 1,
        "back after baseEjectionTime, failed, ejected again (now for 2s)"
    );
    let clusters = client::blocking_get(p.admin, "/clusters").unwrap();
    assert!(clusters.contains("times_ejected=2"), "{clusters}");
    drop(p);

    // Two dead endpoints of three, at most 34% ejected: only one of them can be out at once.
    let dead2 = free_port();
    let port = free_port();
    let _p = Proxy::start(&config(
        port,
        &[good.port(), dead, dead2],
        &format!(
            "{}{}",
            dr("      loadBalancer: {simple: ROUND_ROBIN}\n      outlierDetection: {consecutiveGatewayErrors: 1, baseEjectionTime: 30s, maxEjectionPercent: 34}\n"),
            vs("        retries: {attempts: 0}\n"),
        ),
    ));
    let mut failures = 0;
    for _ in 0..20 {
        if client::send(addr(port), get("s", "/")).await.status != 200 {
            failures += 1;
        }
    }
    // Round robin over [good, dead, dead2]: the first dead one is ejected at once; the second
    // can not be, and takes the ejected one's turns as well: 2 of every 3 requests fail.
    assert_eq!(failures, 13, "one dead endpoint stays in rotation");
}
