//! The fast path in-process, over real loopback sockets: a raw client, the connection served
//! by [`super::serve`], and a raw upstream whose answers are scripted byte for byte, so that
//! framing, reuse and the hand-off to the full path can be seen exactly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::drain::Drain;
use crate::http::body::RespBody;
use crate::http::chain::{Chain, Filter, LocalReply};
use crate::listener::{ConnInfo, Side};
use crate::metrics::Metrics;
use crate::metrics::ResponseFlags;
use crate::snapshot::Snapshot;
use crate::store::Store;

/// What the raw upstream answers, by request path.
fn script(path: &str) -> (&'static [u8], bool) {
    match path {
        "/chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Raw-Case: 1\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            false,
        ),
        // No length: the body runs to the close.
        "/until-close" => (b"HTTP/1.1 200 OK\r\nX-Raw-Case: 1\r\n\r\nall of it", true),
        "/no-content" => (b"HTTP/1.1 204 No Content\r\nX-Raw-Case: 1\r\n\r\n", false),
        "/interim" => (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            false,
        ),
        // Answers, then closes the connection as it said it would.
        "/then-close" => (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            true,
        ),
        // Answers, then closes without saying so (an idle timeout on the upstream's side).
        "/silent-close" => (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true),
        "/bad" => (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok", true),
        "/cut" => (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true),
        _ => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Raw-Case: 1\r\n\r\nok",
            false,
        ),
    }
}

/// A raw HTTP/1.1 upstream: records each request (head and body) and answers per [`script`].
struct Upstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn upstream() -> Upstream {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (c, s) = (connections.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = l.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let seen = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = find(&buf, b"\r\n\r\n") else {
                        let mut b = [0u8; 4096];
                        match conn.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    let chunked = head
                        .to_ascii_lowercase()
                        .contains("transfer-encoding: chunked");
                    let length = if chunked {
                        loop {
                            if let Some(e) = find(&buf[end + 4..], b"0\r\n\r\n") {
                                break e + 5;
                            }
                            let mut b = [0u8; 4096];
                            match conn.read(&mut b).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&b[..n]),
                            }
                        }
                    } else {
                        length
                    };
                    while buf.len() < end + 4 + length {
                        let mut b = [0u8; 4096];
                        match conn.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    }
                    let body =
                        String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                    buf.drain(..end + 4 + length);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    seen.lock().unwrap().push(format!("{head}{body}"));
                    if path == "/slow" {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let (mut answer, close) = script(&path);
                    if head.starts_with("HEAD ") {
                        // The head alone, as a HEAD answer must be.
                        answer = &answer[..find(answer, b"\r\n\r\n").unwrap_or(0) + 4];
                    }
                    if conn.write_all(answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    Upstream {
        addr,
        connections,
        seen,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn config(upstream: SocketAddr, extra: &str) -> mesh_proxy_config::ProxyConfig {
    let yaml = format!(
        "listeners: [{{name: t, address: '127.0.0.1:1'}}]
services:
  - host: s.t.svc.cluster.local
    aliases: [s]
    ports: [{{number: 80, name: http}}]
    endpoints: [{{address: 127.0.0.1, port: {}}}]
{extra}",
        upstream.port()
    );
    mesh_proxy_config::ProxyConfig::from_yaml(&yaml, "t.yaml").expect("valid config")
}

/// A listener whose connections are served by the fast path with `store`'s snapshot.
async fn proxy(store: Arc<Store>) -> SocketAddr {
    proxy_with(store, Drain::default()).await
}

/// [`proxy`], its connections tracked by `drain`.
async fn proxy_with(store: Arc<Store>, drain: Drain) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((conn, peer)) = l.accept().await else {
                return;
            };
            let snap = store.load().expect("a snapshot");
            let info = Arc::new(ConnInfo {
                side: Side::Plain,
                listener: "t".into(),
                peer,
                destination: addr,
                tcp_destination: None,
                security: None,
            });
            let (drain, guard) = (drain.clone(), drain.track());
            let store = store.clone();
            tokio::spawn(async move {
                super::serve(conn, info, snap, store, drain).await;
                drop(guard);
            });
        }
    });
    addr
}

async fn start(extra: &str) -> (Upstream, Arc<Store>, SocketAddr) {
    let up = upstream().await;
    let store = Store::new(Metrics::new());
    store.apply(config(up.addr, extra));
    let addr = proxy(store.clone()).await;
    (up, store, addr)
}

/// Reads more of a response (0: closed, or nothing within 5 s).
async fn read_more(c: &mut TcpStream, pending: &mut Vec<u8>) -> usize {
    let mut b = [0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), c.read(&mut b)).await {
        Ok(Ok(n)) => {
            pending.extend_from_slice(&b[..n]);
            n
        }
        _ => 0,
    }
}

/// Reads one response: its head, and a body of `content-length` bytes, or chunked up to the
/// end of its trailers, or up to the close.
async fn response(c: &mut TcpStream, pending: &mut Vec<u8>) -> String {
    response_to(c, pending, false).await
}

/// [`response`], to a HEAD request if `head` (no body then).
async fn response_to(c: &mut TcpStream, pending: &mut Vec<u8>, head_request: bool) -> String {
    let end = loop {
        if let Some(e) = find(pending, b"\r\n\r\n") {
            break e + 4;
        }
        assert!(
            read_more(c, pending).await > 0,
            "closed: {:?}",
            String::from_utf8_lossy(pending)
        );
    };
    let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
    let body_end = if head_request {
        end
    } else if let Some(n) = head.lines().find_map(|l| {
        l.strip_prefix("content-length: ")
            .map(|v| v.trim().parse::<usize>().unwrap())
    }) {
        while pending.len() < end + n {
            assert!(read_more(c, pending).await > 0);
        }
        end + n
    } else if head.contains("transfer-encoding: chunked") {
        loop {
            if let Some(e) = find(&pending[end..], b"0\r\n") {
                if let Some(t) = find(&pending[end + e..], b"\r\n\r\n") {
                    break end + e + t + 4;
                }
            }
            assert!(read_more(c, pending).await > 0);
        }
    } else if head.starts_with("http/1.1 204") || head.starts_with("http/1.1 304") {
        end
    } else {
        while read_more(c, pending).await > 0 {}
        pending.len()
    };
    let text = String::from_utf8_lossy(&pending[..body_end]).into_owned();
    pending.drain(..body_end);
    text
}

async fn exchange(c: &mut TcpStream, request: &str) -> String {
    c.write_all(request.as_bytes()).await.unwrap();
    response_to(c, &mut Vec::new(), request.starts_with("HEAD ")).await
}

fn stat(store: &Store) -> (u64, u64) {
    let s = &store.metrics.server;
    (
        s.fast_path_requests_total.load(Ordering::SeqCst),
        s.full_path_handoffs_total.load(Ordering::SeqCst),
    )
}

#[tokio::test]
async fn keep_alive_on_both_sides_with_hop_by_hop_headers_dropped() {
    let (up, store, addr) = start("").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    for i in 0..3 {
        let r = exchange(
            &mut c,
            &format!("GET /k/{i} HTTP/1.1\r\nHost: s\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nTE: gzip\r\nX-Mixed-Case: v\r\n\r\n"),
        )
        .await;
        // The upstream's head as it came (its header case too), less its hop-by-hop headers.
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Raw-Case: 1\r\n\r\nok"
        );
    }
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0],
        "GET /k/0 HTTP/1.1\r\nHost: s\r\nX-Mixed-Case: v\r\n\r\n"
    );
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        1,
        "one upstream connection"
    );
    assert_eq!(stat(&store), (3, 0));
    // A second client reuses the idle upstream connection.
    let mut c2 = TcpStream::connect(addr).await.unwrap();
    exchange(&mut c2, "GET / HTTP/1.1\r\nHost: s\r\n\r\n").await;
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bodies_pipelining_and_close() {
    let (up, store, addr) = start("").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    // A body sent after the head, in a second write.
    c.write_all(b"POST /post HTTP/1.1\r\nHost: s\r\nContent-Length: 11\r\n\r\nhello")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(b" world").await.unwrap();
    let mut pending = Vec::new();
    assert!(response(&mut c, &mut pending).await.ends_with("\r\n\r\nok"));
    assert!(up.seen.lock().unwrap()[0].ends_with("Content-Length: 11\r\n\r\nhello world"));
    // Two requests in one write: two answers, in order.
    c.write_all(b"GET /p1 HTTP/1.1\r\nHost: s\r\n\r\nGET /p2 HTTP/1.1\r\nHost: s\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(response(&mut c, &mut pending)
            .await
            .starts_with("HTTP/1.1 200"));
    }
    let paths: Vec<String> = up
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.split(' ').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["/post", "/p1", "/p2"]);
    // `Connection: close`: the answer says so and the connection ends.
    let r = exchange(
        &mut c,
        "GET / HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.contains("connection: close\r\n"), "{r}");
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest)).await;
    assert!(matches!(n, Ok(Ok(0))), "closed after the answer");
    assert_eq!(stat(&store), (4, 0));
}

#[tokio::test]
async fn response_framings_pass_through() {
    let (up, _store, addr) = start("").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    // Chunked: forwarded as it came, trailers included; the connection stays usable.
    let r = exchange(&mut c, "GET /chunked HTTP/1.1\r\nHost: s\r\n\r\n").await;
    assert!(
        r.ends_with("\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"),
        "{r}"
    );
    let r = exchange(&mut c, "GET /no-content HTTP/1.1\r\nHost: s\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    // A HEAD answer has no body whatever its length says.
    let r = exchange(&mut c, "HEAD / HTTP/1.1\r\nHost: s\r\n\r\n").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\n"),
        "{r}"
    );
    // Interim answers are skipped, as hyper's client does.
    let r = exchange(&mut c, "GET /interim HTTP/1.1\r\nHost: s\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200 OK") && r.ends_with("ok"), "{r}");
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        1,
        "all on one upstream connection"
    );
    // No length: the body runs to the upstream's close, and so does the client connection.
    let r = exchange(&mut c, "GET /until-close HTTP/1.1\r\nHost: s\r\n\r\n").await;
    assert!(
        r.contains("connection: close\r\n") && r.ends_with("\r\n\r\nall of it"),
        "{r}"
    );
}

#[tokio::test]
async fn upstream_closes_and_broken_answers() {
    let (up, store, addr) = start("").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    // `Connection: close` from the upstream: not reused.
    assert!(
        exchange(&mut c, "GET /then-close HTTP/1.1\r\nHost: s\r\n\r\n")
            .await
            .ends_with("ok")
    );
    assert!(exchange(&mut c, "GET / HTTP/1.1\r\nHost: s\r\n\r\n")
        .await
        .ends_with("ok"));
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    // An upstream that closed an idle connection unannounced: the request goes again on a
    // new connection, and the client never knows.
    assert!(
        exchange(&mut c, "GET /silent-close HTTP/1.1\r\nHost: s\r\n\r\n")
            .await
            .ends_with("ok")
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(exchange(&mut c, "GET /again HTTP/1.1\r\nHost: s\r\n\r\n")
        .await
        .ends_with("ok"));
    assert_eq!(up.connections.load(Ordering::SeqCst), 3);
    // Conflicting lengths: 503 UC, as on the full path.
    let r = exchange(&mut c, "GET /bad HTTP/1.1\r\nHost: s\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(r.contains("reset reason: connection termination"), "{r}");
    // A body cut short: what came is relayed, then the client connection is closed (its
    // framing cannot be completed).
    c.write_all(b"GET /cut HTTP/1.1\r\nHost: s\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut all)).await;
    let all = String::from_utf8_lossy(&all);
    assert!(
        all.starts_with("HTTP/1.1 200") && all.ends_with("short"),
        "{all}"
    );
    let text = store.metrics.render_prometheus();
    assert!(text.contains("response_flags=\"UC\""), "{text}");
}

#[tokio::test]
async fn requests_that_need_the_full_path_are_handed_to_it_mid_connection() {
    let route = "virtualServices:
  - hosts: [s.t.svc.cluster.local]
    http:
      - match: [{uri: {prefix: /changed}}]
        route: [{destination: {host: s.t.svc.cluster.local}}]
        headers: {request: {set: {x-added: yes}}}
      - route: [{destination: {host: s.t.svc.cluster.local}}]
";
    let (up, store, addr) = start(route).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut pending = Vec::new();
    c.write_all(b"GET /plain HTTP/1.1\r\nHost: s\r\n\r\n")
        .await
        .unwrap();
    let r = response(&mut c, &mut pending).await;
    assert!(
        r.contains("X-Raw-Case"),
        "fast path: the upstream's header case: {r}"
    );
    assert_eq!(stat(&store), (1, 0));
    // A chunked upload and a route with header changes: hyper takes the connection, from the
    // request that needs it (read again from the bytes the fast path had).
    c.write_all(
        b"POST /up HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let r = response(&mut c, &mut pending).await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("x-raw-case"),
        "full path (hyper writes lower case): {r}"
    );
    assert_eq!(stat(&store), (1, 1));
    c.write_all(b"GET /changed HTTP/1.1\r\nHost: s\r\n\r\n")
        .await
        .unwrap();
    assert!(response(&mut c, &mut pending)
        .await
        .starts_with("HTTP/1.1 200"));
    let seen = up.seen.lock().unwrap().clone();
    assert!(seen[1].to_ascii_lowercase().contains("abc"), "{}", seen[1]);
    assert!(seen[2].contains("x-added: yes"), "{}", seen[2]);

    // A fresh connection whose first request needs the full path.
    let mut c = TcpStream::connect(addr).await.unwrap();
    let r = exchange(&mut c, "GET /changed HTTP/1.1\r\nHost: s\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(stat(&store), (1, 2));
    // Malformed: hyper's 400, and the connection closes.
    let mut c = TcpStream::connect(addr).await.unwrap();
    let r = exchange(&mut c, "GET / HTTP/1.1 extra\r\nHost: s\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
}

#[tokio::test]
async fn local_answers_no_route_and_no_endpoint() {
    let (_up, store, addr) =
        start("  - host: empty.t.svc.cluster.local\n    ports: [{number: 80, name: http}]\n").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let r = exchange(&mut c, "GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    let r = exchange(
        &mut c,
        "GET / HTTP/1.1\r\nHost: empty.t.svc.cluster.local\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 503") && r.ends_with("no healthy upstream"),
        "{r}"
    );
    let text = store.metrics.render_prometheus();
    assert!(text.contains("response_flags=\"NR\""), "{text}");
    assert!(text.contains("response_flags=\"UH\""), "{text}");
}

/// Denies requests that carry `x-deny`; marks every response.
struct Mark;

impl Filter for Mark {
    fn name(&self) -> &'static str {
        "mark"
    }
    fn on_request(&self, req: &http::request::Parts, _conn: &ConnInfo) -> Option<LocalReply> {
        req.headers.contains_key("x-deny").then(|| {
            let mut r = http::Response::new(RespBody::full("denied"));
            *r.status_mut() = http::StatusCode::FORBIDDEN;
            LocalReply {
                response: r,
                flags: ResponseFlags::NONE,
            }
        })
    }
    fn on_response(&self, resp: &mut http::response::Parts, _conn: &ConnInfo) {
        resp.headers
            .insert("x-filtered", http::HeaderValue::from_static("yes"));
    }
}

#[tokio::test]
async fn requests_and_answers_pass_through_the_filter_chain() {
    let up = upstream().await;
    let store = Store::new(Metrics::new());
    let mut snap = Snapshot::build(config(up.addr, ""), 1, store.metrics.clone(), None, None);
    snap.outbound_chain = Chain::new(vec![Arc::new(Mark)], None, false);
    store.put(Arc::new(snap));
    let addr = proxy(store.clone()).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let r = exchange(
        &mut c,
        "GET /f?q=1 HTTP/1.1\r\nHost: s\r\nConnection: keep-alive\r\nX-Mixed: v\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("x-filtered: yes\r\n") && r.ends_with("ok"),
        "{r}"
    );
    // What the filters saw is what went upstream (written from their `Parts`).
    assert_eq!(
        up.seen.lock().unwrap()[0],
        "GET /f?q=1 HTTP/1.1\r\nhost: s\r\nx-mixed: v\r\n\r\n"
    );
    let r = exchange(&mut c, "GET / HTTP/1.1\r\nHost: s\r\nX-Deny: 1\r\n\r\n").await;
    assert!(
        r.starts_with("HTTP/1.1 403") && r.contains("x-filtered: yes\r\n") && r.ends_with("denied"),
        "{r}"
    );
    assert_eq!(
        up.seen.lock().unwrap().len(),
        1,
        "the denied request went nowhere"
    );
    assert_eq!(stat(&store), (2, 0), "both on the fast path");
}

#[tokio::test]
async fn a_drain_closes_idle_connections_and_ends_busy_ones_after_their_answer() {
    let up = upstream().await;
    let store = Store::new(Metrics::new());
    store.apply(config(up.addr, ""));
    let drain = Drain::default();
    let addr = proxy_with(store.clone(), drain.clone()).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut idle, "GET / HTTP/1.1\r\nHost: s\r\n\r\n")
        .await
        .ends_with("ok"));
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: s\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let d = drain.clone();
    let drained = tokio::spawn(async move { d.drain(Duration::from_secs(5)).await });
    // The idle one is closed at once.
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(2), idle.read_to_end(&mut rest)).await;
    assert!(matches!(r, Ok(Ok(0))), "idle connection closed: {r:?}");
    // The busy one gets its answer, which says the connection ends, and then it does.
    let r = response(&mut busy, &mut Vec::new()).await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("connection: close\r\n"),
        "{r}"
    );
    let r = tokio::time::timeout(Duration::from_secs(2), busy.read_to_end(&mut rest)).await;
    assert!(
        matches!(r, Ok(Ok(0))),
        "busy connection closed after its answer"
    );
    assert!(
        drained.await.unwrap(),
        "every connection ended before the drain timeout"
    );
}

#[tokio::test]
async fn telemetry_sees_fast_path_requests() {
    let (up, store, addr) = start("tracing: {sampling: 100}\n").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let r = exchange(&mut c, "GET / HTTP/1.1\r\nHost: s\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let seen = up.seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        seen.contains("x-request-id: ") && seen.contains("traceparent: 00-"),
        "telemetry's headers went upstream: {seen}"
    );
    assert_eq!(stat(&store), (1, 0));
}

#[tokio::test]
async fn an_inbound_side_removes_a_claimed_client_certificate() {
    let up = upstream().await;
    let store = Store::new(Metrics::new());
    let mut snap = Snapshot::build(config(up.addr, ""), 1, store.metrics.clone(), None, None);
    // The outbound chain of a Plain listener, marked as an inbound side's.
    snap.outbound_chain = Chain::new(Vec::new(), None, true);
    store.put(Arc::new(snap));
    let addr = proxy(store.clone()).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let r = exchange(&mut c, "GET /a HTTP/1.1\r\nHost: s\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(stat(&store), (1, 0));
    let r = exchange(
        &mut c,
        "GET /b HTTP/1.1\r\nHost: s\r\nX-Forwarded-Client-Cert: URI=spiffe://forged\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(stat(&store), (2, 0));
    let seen = up.seen.lock().unwrap()[1].to_ascii_lowercase();
    assert!(!seen.contains("forged"), "the claim was removed: {seen}");
}
