//! Protocols through the proxy: HTTP/1.1 keep-alive, chunked bodies, upgrades (WebSocket),
//! HTTP/2 clients, gRPC (trailers, status, metrics, retries on gRPC codes), opaque TCP,
//! protocol detection; and what a hostile client gets.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::backend;
use support::client::{self, get};
use support::{free_port, Proxy};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn one_service(listeners: &str, port_name: &str, backend_port: u16, extra: &str) -> String {
    format!(
        "listeners:\n{listeners}services:\n  - host: s.test.svc.cluster.local\n    aliases: [s]\n    namespace: test\n    ports: [{{number: 80, name: {port_name}}}]\n    endpoints:\n      - {{address: 127.0.0.1, port: {backend_port}, workload: s-v1, namespace: test, labels: {{app: s, version: v1}}}}\n{extra}"
    )
}

fn plain(port: u16) -> String {
    format!("  - name: local\n    address: 127.0.0.1:{port}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_keepalive_chunked_and_upgrade() {
    let a = backend::start("a").await;
    let port = free_port();
    let _p = Proxy::start(&one_service(&plain(port), "http", a.port(), ""));
    let px = addr(port);
    // Keep-alive: one client connection, many requests, one upstream connection.
    let mut conn = client::H1::connect(px).await;
    for i in 0..5 {
        let r = conn.send(get("s", &format!("/ka/{i}"))).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(a.connections(), 1);

    // Chunked request and response bodies, over a raw socket to see the framing.
    let mut s = TcpStream::connect(px).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"POST /c?chunked=1 HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("0\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{text}"
    );
    assert!(
        text.contains("chunk0;") && text.contains("chunk2;"),
        "{text}"
    );
    assert_eq!(&a.last().unwrap().body[..], b"hello world");

    // Upgrade: 101, then bytes both ways.
    let mut s = TcpStream::connect(px).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).unwrap(), 1);
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    s.write_all(b"ping over the upgraded connection").unwrap();
    let mut echo = [0u8; 33];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping over the upgraded connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_and_grpc() {
    let a = backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&one_service(
        &plain(port),
        "grpc",
        a.port(),
        "virtualServices:\n  - hosts: [s.test.svc.cluster.local]\n    http:\n      - match: [{uri: {prefix: /retry.Svc}}]\n        retries: {attempts: 2, retryOn: unavailable}\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n      - match: [{uri: {prefix: /fault.Svc}}]\n        fault: {abort: {grpcStatus: PERMISSION_DENIED}}\n        route: [{destination: {host: s.test.svc.cluster.local}}]\n      - route: [{destination: {host: s.test.svc.cluster.local}}]\n",
    ));
    let px = addr(port);
    let mut h2 = client::H2::connect(px).await;
    // gRPC: HTTP/2 upstream (the port is named grpc), body and trailers come through.
    let r = h2
        .send(
            get("s", "/pkg.Svc/Method?grpc_status=0")
                .method("POST")
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body("\0\0\0\0\x05hello"),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .unwrap(),
        "0"
    );
    assert_eq!(a.last().unwrap().version, "HTTP/2.0");
    assert_eq!(&a.last().unwrap().body[..], b"\0\0\0\0\x05hello");
    let r = h2
        .send(
            get("s", "/pkg.Svc/Method?grpc_status=5")
                .method("POST")
                .header("content-type", "application/grpc"),
        )
        .await;
    assert_eq!(
        r.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .unwrap(),
        "5"
    );
    // Retry on a gRPC code in a trailers-only answer.
    let r = h2
        .send(
            get(
                "s",
                "/retry.Svc/M?grpc_status=14&trailers_only=1&fail=0&key=x",
            )
            .method("POST")
            .header("content-type", "application/grpc"),
        )
        .await;
    assert_eq!(r.header("grpc-status"), Some("14"));
    assert_eq!(
        a.seen()
            .iter()
            .filter(|s| s.path.starts_with("/retry.Svc"))
            .count(),
        3,
        "1 try + 2 retries on UNAVAILABLE"
    );
    // Fault abort with a gRPC status.
    let r = h2
        .send(
            get("s", "/fault.Svc/M")
                .method("POST")
                .header("content-type", "application/grpc"),
        )
        .await;
    assert_eq!((r.status, r.header("grpc-status")), (200, Some("7")));
    // Metrics carry request_protocol=grpc and the gRPC status.
    assert!(
        support::eventually(Duration::from_secs(2), || {
            p.metric(
                "istio_requests_total",
                &[("request_protocol", "grpc"), ("grpc_response_status", "5")],
            ) == 1.0
                && p.metric(
                    "istio_requests_total",
                    &[("request_protocol", "grpc"), ("grpc_response_status", "0")],
                ) == 1.0
        }),
        "{}",
        p.metrics_text()
    );
    // Plain HTTP/2 requests on the same connection.
    for _ in 0..3 {
        assert_eq!(h2.send(get("s", "/plain")).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tcp_and_protocol_detection() {
    let echo = backend::tcp_echo(None).await;
    let banner = backend::tcp_echo(Some(b"220 server speaks first\r\n")).await;
    let a = backend::start("a").await;
    let tcp_port = free_port();
    let sniff_port = free_port();
    let first_port = free_port();
    let listeners = format!(
        "  - name: tcp\n    address: 127.0.0.1:{tcp_port}\n    protocol: TCP\n    destination: {{host: echo.test.svc.cluster.local}}\n  - name: sniffed\n    address: 127.0.0.1:{sniff_port}\n    destination: {{host: echo.test.svc.cluster.local}}\n  - name: server-first\n    address: 127.0.0.1:{first_port}\n    destination: {{host: banner.test.svc.cluster.local}}\n"
    );
    let extra = format!(
        "  - host: echo.test.svc.cluster.local\n    ports: [{{number: 9000, name: tcp}}]\n    endpoints: [{{address: 127.0.0.1, port: {}}}]\n  - host: banner.test.svc.cluster.local\n    ports: [{{number: 25, name: tcp}}]\n    endpoints: [{{address: 127.0.0.1, port: {}}}]\nprotocolDetectionTimeout: 200ms\n",
        echo.port(),
        banner.port()
    );
    let p = Proxy::start(&one_service(&listeners, "http", a.port(), &extra));

    // Declared TCP: bytes go through as they are, even ones that look like HTTP.
    let mut s = TcpStream::connect(addr(tcp_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut b = [0u8; 18];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"GET / HTTP/1.1\r\n\r\n");
    s.write_all(&[0, 1, 2, 255]).unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    assert_eq!(b, [0, 1, 2, 255]);
    drop(s);

    // Detected: HTTP is routed by Host...
    let r = client::send(addr(sniff_port), get("s", "/sniffed")).await;
    assert_eq!(r.backend(), Some("a"));
    // ...anything else is TCP to the listener's destination.
    let mut s = TcpStream::connect(addr(sniff_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\x16\x03\x01 not http").unwrap();
    let mut b = [0u8; 12];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"\x16\x03\x01 not http");
    drop(s);

    // A server-first protocol: the client says nothing, the detection timeout passes, and
    // the connection is TCP.
    let t = Instant::now();
    let mut s = TcpStream::connect(addr(first_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 25];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"220 server speaks first\r\n");
    assert!(t.elapsed() >= Duration::from_millis(200));
    drop(s);

    assert!(
        support::eventually(Duration::from_secs(3), || {
            let t = p.metrics_text();
            support::metric_sum(
                &t,
                "istio_tcp_connections_opened_total",
                &[("destination_service", "echo.test.svc.cluster.local")],
            ) == 2.0
                && support::metric_sum(
                    &t,
                    "istio_tcp_connections_closed_total",
                    &[("destination_service", "echo.test.svc.cluster.local")],
                ) == 2.0
                && support::metric_sum(
                    &t,
                    "istio_tcp_received_bytes_total",
                    &[("destination_service", "echo.test.svc.cluster.local")],
                ) == 34.0
                && support::metric_sum(
                    &t,
                    "istio_tcp_sent_bytes_total",
                    &[("destination_service", "echo.test.svc.cluster.local")],
                ) == 34.0
        }),
        "{}",
        p.metrics_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_metrics_names_and_labels() {
    let a = backend::start("a").await;
    let port = free_port();
    let p = Proxy::start(&one_service(
        &plain(port),
        "http",
        a.port(),
        "node:\n  workload: caller-v2\n  namespace: apps\n  labels: {app: caller, version: v2}\n",
    ));
    for _ in 0..3 {
        client::send(addr(port), get("s", "/m").method("POST").body("0123456789")).await;
    }
    client::send(addr(port), get("s", "/?status=503")).await;
    let want = [
        ("reporter", "source"),
        ("source_workload", "caller-v2"),
        ("source_workload_namespace", "apps"),
        ("source_app", "caller"),
        ("source_version", "v2"),
        ("source_canonical_service", "caller"),
        ("source_canonical_revision", "v2"),
        ("destination_workload", "s-v1"),
        ("destination_workload_namespace", "test"),
        ("destination_app", "s"),
        ("destination_version", "v1"),
        ("destination_service", "s.test.svc.cluster.local"),
        ("destination_service_name", "s"),
        ("destination_service_namespace", "test"),
        ("request_protocol", "http"),
        ("response_flags", "-"),
        // The client side does not report it, as Istio's sidecars.
        ("connection_security_policy", "unknown"),
    ];
    assert!(
        support::eventually(Duration::from_secs(2), || {
            let t = p.metrics_text();
            let mut ok = want.to_vec();
            ok.push(("response_code", "200"));
            support::metric_sum(&t, "istio_requests_total", &ok) == 3.0
                && support::metric_sum(&t, "istio_requests_total", &[("response_code", "503")])
                    == 1.0
                && support::metric_sum(&t, "istio_request_duration_milliseconds_count", &ok) == 3.0
                && support::metric_sum(&t, "istio_request_bytes_count", &ok) == 3.0
                && support::metric_sum(&t, "istio_response_bytes_count", &ok) == 3.0
        }),
        "{}",
        p.metrics_text()
    );
    let t = p.metrics_text();
    assert!(t.contains("# TYPE istio_request_duration_milliseconds histogram"));
    assert!(t.contains("le=\"0.5\""));
    // Request bytes count the body: every request here is bigger than 10 bytes.
    assert_eq!(
        support::metric_sum(
            &t,
            "istio_request_bytes_bucket",
            &[("response_code", "200"), ("le", "10")]
        ),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http1_clients_get_4xx_and_a_clean_close() {
    let a = backend::start("a").await;
    let port = free_port();
    let _p = Proxy::start(&one_service(
        &plain(port),
        "http",
        a.port(),
        "limits: {maxRequestHeadersKb: 16, headerReadTimeout: 1s}\n",
    ));
    let px = addr(port);
    let wait = Duration::from_secs(5);

    // Oversized headers: 431, then the connection is closed.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: s\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let (resp, closed) = client::raw(px, big.as_bytes(), wait);
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert!(closed);

    // Malformed request line and header: 400 and close.
    for bad in [
        &b"GET / HTTP/1.1 extra\r\nHost: s\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"\x00\x01GET /\r\n\r\n",
    ] {
        let (resp, closed) = client::raw(px, bad, wait);
        assert!(
            resp.starts_with("HTTP/1.1 400") || resp.is_empty(),
            "{resp:?}"
        );
        assert!(closed, "closed after {bad:?}");
    }
    let (resp, closed) = client::raw(
        px,
        b"GET / HTTP/1.1\r\nHost: s\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        wait,
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(closed);
    assert_eq!(a.count(), 0, "nothing malformed reached the upstream");

    // Slowloris: a client dribbling its head is cut off at the header read timeout, while
    // others are served.
    let t = Instant::now();
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(px).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut closed_after = None;
        for chunk in b"GET / HTTP/1.1\r\nHost: s\r\nX-Slow: "
            .iter()
            .chain(b"aaaaaaaaaaaaaaaaaaaaaaaa".iter())
        {
            if s.write_all(&[*chunk]).is_err() {
                closed_after = Some(t.elapsed());
                break;
            }
            let mut b = [0u8; 512];
            match s.read(&mut b) {
                Ok(0) => {
                    closed_after = Some(t.elapsed());
                    break;
                }
                Ok(_) => {
                    closed_after = Some(t.elapsed());
                    break;
                }
                Err(_) => {}
            }
        }
        closed_after
    });
    for _ in 0..5 {
        assert_eq!(client::send(px, get("s", "/meanwhile")).await.status, 200);
    }
    let closed_after = tokio::task::spawn_blocking(move || slow.join().unwrap())
        .await
        .unwrap();
    let closed_after = closed_after.expect("the slow client was cut off");
    assert!(closed_after < Duration::from_secs(4), "{closed_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http2_clients_are_limited() {
    let a = backend::start("a").await;
    let port = free_port();
    let _p = Proxy::start(&one_service(
        &plain(port),
        "http",
        a.port(),
        "limits: {http2MaxConcurrentStreams: 4}\n",
    ));
    let px = addr(port);

    // Garbage after the preface: GOAWAY and close.
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    bytes.extend_from_slice(&[0, 0, 8, 0xff, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]); // unknown frame on stream 1: ignored
    bytes.extend_from_slice(&[0, 0, 3, 1, 4, 0, 0, 0, 2, 0xff, 0xff, 0xff]); // HEADERS on an even stream id: protocol error
    let (raw, closed) = client::raw_bytes(px, &bytes, Duration::from_secs(5));
    assert!(closed, "the connection was closed");
    // A GOAWAY frame (type 7) was sent before closing.
    let mut i = 0;
    let mut goaway = false;
    while i + 9 <= raw.len() {
        let len = ((raw[i] as usize) << 16) | ((raw[i + 1] as usize) << 8) | raw[i + 2] as usize;
        if raw[i + 3] == 7 {
            goaway = true;
        }
        i += 9 + len;
    }
    assert!(goaway, "GOAWAY sent");

    // A stream flood: streams opened beyond the limit before the client has the server's
    // SETTINGS are refused (RST_STREAM REFUSED_STREAM); the upstream never sees more than 4 at
    // once, and the proxy goes on serving.
    let h2 = client::H2::connect(px).await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let mut c = h2.clone();
        tasks.push(tokio::spawn(async move {
            c.try_send(get("s", "/?delay_ms=300"))
                .await
                .map(|r| r.status)
        }));
    }
    let mut served = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(200) => served += 1,
            Ok(other) => panic!("status {other}"),
            Err(_) => refused += 1,
        }
    }
    assert!(served >= 4, "served {served}, refused {refused}");
    assert!(a.count() <= 12);
    let mut fresh = client::H2::connect(px).await;
    assert_eq!(fresh.send(get("s", "/after")).await.status, 200);
    let _ = refused;
}
