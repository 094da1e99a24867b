//! The HTTP server every role runs: one log line per request, SIGTERM drains and exits 0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::app::{App, Reply, Role};
use crate::cli::{self, Cli};
use crate::upstream::{self, Upstream};

/// In-flight requests get this long after SIGTERM; the kubelet's grace period is longer.
const DRAIN: Duration = Duration::from_secs(5);

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let (service, common, role) = match cli.role {
        cli::Role::Details(c) => ("details", c, Role::Details),
        cli::Role::Ratings(c) => ("ratings", c, Role::Ratings),
        cli::Role::Reviews { common, ratings } => (
            "reviews",
            common,
            Role::Reviews {
                ratings: ratings.map(|u| Upstream::new("ratings", &u)).transpose()?,
            },
        ),
        cli::Role::Productpage {
            common,
            details,
            reviews,
        } => (
            "productpage",
            common,
            Role::Productpage {
                details: Upstream::new("details", &details)?,
                reviews: Upstream::new("reviews", &reviews)?,
            },
        ),
    };
    let app = Arc::new(App {
        service,
        version: common.version,
        pod: std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".to_owned()),
        role,
        client: upstream::client(),
    });

    let addr = SocketAddr::from(([0, 0, 0, 0], common.port));
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let bound = listener.local_addr().context("the listening address")?;
    // The tests read the port from this line when they pass --port 0.
    println!("{service} {} listening on {bound}", app.version);

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    // Out of descriptors or a reset before accept: keep serving the others.
                    Err(e) => { eprintln!("accept: {e}"); continue; }
                };
                let app = app.clone();
                let conn = http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(respond(&app, req).await) }
                    }),
                );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    // A client that goes away mid-request is not the server's error.
                    let _ = conn.await;
                });
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(listener);
    println!("{service} {} shutting down", app.version);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    Ok(())
}

async fn respond(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let reply = app.handle(&method, &path, req.headers()).await;
    let (status, content_type, body) = match reply {
        Reply::Json(status, value) => {
            let mut body = serde_json::to_vec(&value).unwrap_or_default();
            body.push(b'\n');
            (status, "application/json", body)
        }
        Reply::Text(status, text) => (status, "text/plain", text.as_bytes().to_vec()),
    };
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    println!(
        "{method} {path} {} {}ms request_id={request_id}",
        status.as_u16(),
        start.elapsed().as_millis()
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
