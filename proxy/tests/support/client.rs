//! Clients for the tests: blocking ones for the admin ports, hyper-based HTTP/1.1 and HTTP/2
//! ones, and raw TCP for malformed input.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A plain blocking GET; the body, if the status was 200.
pub fn blocking_get(addr: SocketAddr, path: &str) -> Option<String> {
    let (status, body) = blocking_request(addr, "GET", path)?;
    (status == 200).then_some(body)
}

pub fn blocking_status(addr: SocketAddr, path: &str) -> Option<u16> {
    blocking_request(addr, "GET", path).map(|r| r.0)
}

pub fn blocking_request(addr: SocketAddr, method: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub trailers: Option<HeaderMap>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn backend(&self) -> Option<&str> {
        self.header("x-backend")
    }
}

/// A request as the tests write them.
pub struct Req<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a str,
}

pub fn get<'a>(host: &'a str, path: &'a str) -> Req<'a> {
    Req {
        method: "GET",
        host,
        path,
        headers: Vec::new(),
        body: "",
    }
}

impl<'a> Req<'a> {
    pub fn header(mut self, k: &'a str, v: &'a str) -> Self {
        self.headers.push((k, v));
        self
    }
    pub fn method(mut self, m: &'a str) -> Self {
        self.method = m;
        self
    }
    pub fn body(mut self, b: &'a str) -> Self {
        self.body = b;
        self
    }
    fn build(&self, absolute: bool) -> Request<Full<Bytes>> {
        let uri = if absolute {
            format!("http://{}{}", self.host, self.path)
        } else {
            self.path.to_owned()
        };
        let mut b = Request::builder().method(self.method).uri(uri);
        if !absolute {
            b = b.header("host", self.host);
        }
        for (k, v) in &self.headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(Bytes::from(self.body.to_owned())))
            .expect("request")
    }
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> Resp {
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.expect("response body");
    let trailers = collected.trailers().cloned();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        trailers,
    }
}

/// Sends one HTTP/1.1 request on a new connection.
pub async fn send(addr: SocketAddr, req: Req<'_>) -> Resp {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to proxy");
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let r = s.send_request(req.build(false)).await.expect("response");
    collect(r).await
}

/// An HTTP/1.1 connection for several requests (keep-alive).
pub struct H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl H1 {
    pub async fn connect(addr: SocketAddr) -> H1 {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        H1(s)
    }
    pub async fn send(&mut self, req: Req<'_>) -> Resp {
        self.0.ready().await.expect("connection ready");
        let r = self
            .0
            .send_request(req.build(false))
            .await
            .expect("response");
        collect(r).await
    }
}

/// An HTTP/2 (prior knowledge) connection.
#[derive(Clone)]
pub struct H2(pub hyper::client::conn::http2::SendRequest<Full<Bytes>>);

impl H2 {
    pub async fn connect(addr: SocketAddr) -> H2 {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (s, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        H2(s)
    }
    pub async fn send(&mut self, req: Req<'_>) -> Resp {
        self.try_send(req).await.expect("h2 response")
    }
    pub async fn try_send(&mut self, req: Req<'_>) -> Result<Resp, hyper::Error> {
        let r = self.0.send_request(req.build(true)).await?;
        Ok(collect(r).await)
    }
}

/// Writes raw bytes and reads until the server closes (or `wait` passes).
pub fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (String, bool) {
    let (out, closed) = raw_bytes(addr, bytes, wait);
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// Like [`raw`], without decoding what came back.
pub fn raw_bytes(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => break e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    (out, closed)
}
