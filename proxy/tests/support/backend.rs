//! Upstream test servers: an HTTP echo server (HTTP/1.1 and HTTP/2) whose answers say what it
//! received, driven by query parameters; a TCP echo server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub version: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub conn: u64,
}

#[derive(Default)]
pub struct State {
    pub name: String,
    pub seen: Mutex<Vec<Seen>>,
    pub connections: AtomicU64,
    /// Connections that have ended.
    pub closed: AtomicU64,
    /// When not 0: the status of every answer.
    pub fail_all: std::sync::atomic::AtomicU16,
    failures: Mutex<HashMap<String, u32>>,
}

#[derive(Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    pub state: Arc<State>,
}

impl Backend {
    pub fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
    pub fn last(&self) -> Option<Seen> {
        self.state.seen.lock().unwrap().last().cloned()
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }
}

fn query<'a>(q: &'a str, k: &str) -> Option<&'a str> {
    q.split('&').find_map(|kv| {
        let (a, b) = kv.split_once('=').unwrap_or((kv, ""));
        (a == k).then_some(b)
    })
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(state: Arc<State>, conn: u64, mut req: Request<Incoming>) -> Response<Body> {
    let q = req.uri().query().unwrap_or("").to_owned();
    // WebSocket-style upgrade: 101, then echo bytes.
    if req.headers().contains_key(http::header::UPGRADE) {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = Response::new(Full::new(Bytes::new()).boxed());
        *r.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
        r.headers_mut().insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
        return r;
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/".into(), |p| p.to_string()),
        version: format!("{:?}", parts.version),
        headers: parts.headers.clone(),
        body: body.clone(),
        conn,
    };
    state.seen.lock().unwrap().push(seen.clone());
    if let Some(ms) = query(&q, "delay_ms").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut status: u16 = query(&q, "status")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let forced = state.fail_all.load(Ordering::SeqCst);
    if forced != 0 {
        status = forced;
    }
    if let (Some(n), Some(key)) = (
        query(&q, "fail").and_then(|v| v.parse::<u32>().ok()),
        query(&q, "key"),
    ) {
        let mut f = state.failures.lock().unwrap();
        let c = f.entry(key.to_owned()).or_insert(0);
        if *c < n {
            *c += 1;
            status = query(&q, "fail_status")
                .and_then(|v| v.parse().ok())
                .unwrap_or(503);
        }
    }
    let grpc = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let text = format!(
        "backend={} method={} path={} version={:?} body={}",
        state.name,
        seen.method,
        seen.path,
        parts.version,
        String::from_utf8_lossy(&body)
    );
    let mut resp = if grpc {
        let code = query(&q, "grpc_status").unwrap_or("0").to_owned();
        if query(&q, "trailers_only").is_some() {
            let mut r = Response::new(Full::new(Bytes::new()).boxed());
            r.headers_mut()
                .insert("grpc-status", HeaderValue::from_str(&code).unwrap());
            r
        } else {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_str(&code).unwrap());
            let frames = vec![
                Ok::<_, Infallible>(Frame::data(Bytes::from(text.clone()))),
                Ok(Frame::trailers(trailers)),
            ];
            Response::new(StreamBody::new(futures_stream(frames)).boxed())
        }
    } else if query(&q, "chunked").is_some() {
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = (0..3)
            .map(|i| Ok(Frame::data(Bytes::from(format!("chunk{i};")))))
            .collect();
        Response::new(StreamBody::new(futures_stream(frames)).boxed())
    } else {
        Response::new(Full::new(Bytes::from(text)).boxed())
    };
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
    let h = resp.headers_mut();
    if grpc {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
    }
    h.insert("x-backend", HeaderValue::from_str(&state.name).unwrap());
    h.insert("x-conn", HeaderValue::from(conn));
    h.insert("x-from-backend", HeaderValue::from_static("yes"));
    resp
}

fn futures_stream<T: Send + 'static>(items: Vec<T>) -> impl futures::Stream<Item = T> {
    futures::stream::iter(items)
}

/// Starts an echo backend named `name` on a free loopback port.
pub async fn start(name: &str) -> Backend {
    start_on("127.0.0.1:0".parse().unwrap(), name).await
}

/// Starts an echo backend on `addr`.
pub async fn start_on(addr: SocketAddr, name: &str) -> Backend {
    let listener = TcpListener::bind(addr).await.expect("bind backend");
    serve(listener, name)
}

/// Serves an echo backend on a listener made elsewhere (e.g. inside a network namespace).
pub fn start_with(listener: std::net::TcpListener, name: &str) -> Backend {
    listener.set_nonblocking(true).expect("nonblocking");
    serve(
        TcpListener::from_std(listener).expect("tokio listener"),
        name,
    )
}

fn serve(listener: TcpListener, name: &str) -> Backend {
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State {
        name: name.to_owned(),
        ..State::default()
    });
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let conn = s.connections.fetch_add(1, Ordering::SeqCst) + 1;
            let st = s.clone();
            let closed = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let st = st.clone();
                    async move {
                        // `?reset=N&key=K`: the first N such requests get no answer; the
                        // connection is dropped (the proxy sees a reset).
                        let q = req.uri().query().unwrap_or("").to_owned();
                        if let (Some(n), Some(key)) = (
                            query(&q, "reset").and_then(|v| v.parse::<u32>().ok()),
                            query(&q, "key"),
                        ) {
                            let mut f = st.failures.lock().unwrap();
                            let c = f.entry(format!("reset:{key}")).or_insert(0);
                            if *c < n {
                                *c += 1;
                                drop(f);
                                st.seen.lock().unwrap().push(Seen {
                                    method: req.method().to_string(),
                                    path: req.uri().to_string(),
                                    version: String::new(),
                                    headers: req.headers().clone(),
                                    body: Bytes::new(),
                                    conn,
                                });
                                return Err(std::io::Error::other("reset on purpose"));
                            }
                        }
                        Ok::<_, std::io::Error>(answer(st, conn, req).await)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
                closed.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Backend { addr, state }
}

/// A TCP server that writes `banner` on accept (if any), then echoes.
pub async fn tcp_echo(banner: Option<&'static [u8]>) -> SocketAddr {
    tcp_echo_on("127.0.0.1:0".parse().unwrap(), banner).await
}

pub async fn tcp_echo_on(addr: SocketAddr, banner: Option<&'static [u8]>) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.expect("bind tcp echo");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Some(b) = banner {
                    let _ = s.write_all(b).await;
                }
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}
