//! The proxy's own HTTP endpoints, served on the control thread (never on the workers):
//! admin on 127.0.0.1:15000, health on 15021 (`/healthz/ready` and the application's probes),
//! metrics on 15090 (`/stats/prometheus`), merged with the application's on 15020.

pub mod app;

use std::convert::Infallible;
use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::store::Store;
use app::App;

/// What the admin endpoints can ask of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Stop accepting and drain connections; keep running.
    Drain,
    /// Drain, then exit.
    Quit,
}

/// Changes the log filter (`info`, `debug`, `mesh_proxy=trace`, …).
pub type SetLogLevel = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub struct Admin {
    pub store: Arc<Store>,
    pub commands: mpsc::UnboundedSender<Command>,
    pub set_log_level: SetLogLevel,
    pub log_level: Arc<std::sync::Mutex<String>>,
    pub drain: crate::drain::Drain,
}

type Reply = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn prometheus(store: &Store) -> Reply {
    prometheus_text(store.metrics.render_prometheus())
}

/// Metrics in Prometheus's text format.
fn prometheus_text(body: impl Into<Bytes>) -> Reply {
    let mut r = text(StatusCode::OK, body);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Serves `handler` on `listener` until the process ends.
pub async fn serve<F>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Reply + Clone + Send + Sync + 'static,
{
    serve_async(listener, move |req| {
        let reply = handler(req);
        Box::pin(async move { reply }) as PendingReply
    })
    .await
}

/// A reply that needs I/O first (the application's probes and metrics).
pub type PendingReply = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// [`serve`] for handlers that answer asynchronously.
pub async fn serve_async<F>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> PendingReply + Clone + Send + Sync + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let h = handler.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let reply = h(req);
                async move { Ok::<_, Infallible>(reply.await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The health port: `/healthz/ready`, 200 once a config is loaded and until a drain; and
/// `/app-health/...`, the application's probes run by the proxy.
pub fn health(
    store: Arc<Store>,
    app: Arc<App>,
) -> impl Fn(Request<Incoming>) -> PendingReply + Clone + Send + Sync + 'static {
    move |req| {
        let path = req.uri().path().to_owned();
        let (store, app) = (store.clone(), app.clone());
        Box::pin(async move {
            match path.as_str() {
                "/healthz/ready" if store.is_ready() => text(StatusCode::OK, ""),
                "/healthz/ready" if store.is_draining() => {
                    text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
                }
                "/healthz/ready" => {
                    text(StatusCode::SERVICE_UNAVAILABLE, "no configuration loaded\n")
                }
                p if p.starts_with("/app-health/") => match app.probe(p).await {
                    Some(answer) => text(answer.status, answer.body),
                    None => text(StatusCode::NOT_FOUND, "no such application probe\n"),
                },
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        })
    }
}

/// The merged-metrics port: the proxy's metrics followed by the application's own, so that
/// Prometheus scrapes an injected pod once (injection points its annotations here). When the
/// application does not answer, the proxy's metrics are still served.
pub fn merged_metrics(
    store: Arc<Store>,
    app: Arc<App>,
) -> impl Fn(Request<Incoming>) -> PendingReply + Clone + Send + Sync + 'static {
    move |req| {
        let path = req.uri().path().to_owned();
        let (store, app) = (store.clone(), app.clone());
        Box::pin(async move {
            if path != "/stats/prometheus" && path != "/metrics" {
                return text(StatusCode::NOT_FOUND, "not found\n");
            }
            let mut body = store.metrics.render_prometheus().into_bytes();
            match app.metrics().await {
                Some(Ok(own)) => {
                    if !body.ends_with(b"\n") && !body.is_empty() {
                        body.push(b'\n');
                    }
                    body.extend_from_slice(&own);
                }
                Some(Err(e)) => tracing::warn!("the application's metrics were not merged: {e}"),
                None => {}
            }
            prometheus_text(body)
        })
    }
}

/// `/stats/prometheus` on the metrics port.
pub fn metrics(
    store: Arc<Store>,
) -> impl Fn(Request<Incoming>) -> Reply + Clone + Send + Sync + 'static {
    move |req| match req.uri().path() {
        "/stats/prometheus" | "/metrics" => prometheus(&store),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

const HELP: &str = "mesh-proxy admin
  GET  /config_dump          the configuration in force (JSON)
  GET  /clusters             clusters and endpoints: requests in flight, connections, ejection
  GET  /stats                proxy counters, then the Istio metrics
  GET  /stats/prometheus     the Istio metrics
  GET  /ready                LIVE (200) once configured, else 503
  GET  /logging              the log filter; POST /logging?level=debug changes it
  POST /drain_listeners      stop accepting and drain connections
  POST /quitquitquit         drain, then exit
";

impl Admin {
    pub fn handler(self) -> impl Fn(Request<Incoming>) -> Reply + Clone + Send + Sync + 'static {
        move |req| self.route(&req)
    }

    fn route(&self, req: &Request<Incoming>) -> Reply {
        let post = req.method() == Method::POST;
        match req.uri().path() {
            "/" | "/help" => text(StatusCode::OK, HELP),
            "/config_dump" => self.config_dump(),
            "/clusters" => self.clusters(),
            "/stats" => self.stats(),
            "/stats/prometheus" => prometheus(&self.store),
            "/ready" if self.store.is_ready() => text(StatusCode::OK, "LIVE\n"),
            "/ready" if self.store.is_draining() => {
                text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n")
            }
            "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n"),
            "/logging" if post => self.logging(req.uri().query().unwrap_or("")),
            "/logging" => text(StatusCode::OK, format!("{}\n", self.level())),
            "/drain_listeners" | "/quitquitquit" if !post => {
                text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n")
            }
            "/drain_listeners" => {
                let _ = self.commands.send(Command::Drain);
                text(StatusCode::OK, "OK\n")
            }
            "/quitquitquit" => {
                let _ = self.commands.send(Command::Quit);
                text(StatusCode::OK, "OK\n")
            }
            _ => text(StatusCode::NOT_FOUND, HELP),
        }
    }

    fn level(&self) -> String {
        self.log_level
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn logging(&self, query: &str) -> Reply {
        let Some(level) = crate::route::query_param(query, "level").filter(|l| !l.is_empty())
        else {
            return text(
                StatusCode::BAD_REQUEST,
                "give ?level=trace|debug|info|warn|error (or a filter)\n",
            );
        };
        match (self.set_log_level)(level) {
            Ok(()) => {
                *self.log_level.lock().unwrap_or_else(|e| e.into_inner()) = level.to_owned();
                text(StatusCode::OK, format!("log level: {level}\n"))
            }
            Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    }

    fn config_dump(&self) -> Reply {
        let snap = self.store.load();
        let config = snap.as_ref().and_then(|s| s.dump.to_json());
        let dump = serde_json::json!({
            "generation": snap.as_ref().map(|s| s.generation),
            "version": snap.as_ref().and_then(|s| s.config.version.clone()),
            "lastError": self.store.last_error(),
            "listeners": snap.as_ref().map(|s| s.config.effective_listeners()),
            "inboundFilters": snap.as_ref().map(|s| s.inbound_chain.names()),
            "outboundFilters": snap.as_ref().map(|s| s.outbound_chain.names()),
            "config": config,
        });
        json(serde_json::to_string_pretty(&dump).unwrap_or_default())
    }

    fn clusters(&self) -> Reply {
        let mut out = String::new();
        if let Some(snap) = self.store.load() {
            for c in snap.clusters() {
                let s = &c.state;
                let _ = writeln!(
                    out,
                    "{}::connections={} pending={} active_requests={} lb={:?}",
                    c.name,
                    s.connections.load(Ordering::Relaxed),
                    s.pending.load(Ordering::Relaxed),
                    s.active_requests.load(Ordering::Relaxed),
                    c.policy.lb
                );
                let now = crate::cluster::outlier::now_ms();
                for e in &c.endpoints {
                    let ejected = e.state.ejected_until_ms.load(Ordering::Relaxed) > now;
                    let _ = writeln!(
                        out,
                        "{}::{}::active={} ejected={} times_ejected={}",
                        c.name,
                        e.addr,
                        e.state.active.load(Ordering::Relaxed),
                        ejected,
                        e.state.ejections.load(Ordering::Relaxed)
                    );
                }
            }
        }
        text(StatusCode::OK, out)
    }

    fn stats(&self) -> Reply {
        let s = &self.store.metrics.server;
        let mut out = String::new();
        let snap = self.store.load();
        let rows: [(&str, u64); 12] = [
            (
                "downstream_cx_total",
                s.downstream_connections_total.load(Ordering::Relaxed),
            ),
            (
                "downstream_cx_active",
                s.downstream_connections_active.load(Ordering::Relaxed),
            ),
            (
                "downstream_cx_refused",
                s.downstream_connections_refused.load(Ordering::Relaxed),
            ),
            (
                "upstream_cx_total",
                s.upstream_connections_total.load(Ordering::Relaxed),
            ),
            (
                "upstream_cx_connect_fail",
                s.upstream_connect_failures_total.load(Ordering::Relaxed),
            ),
            ("config_loads", s.config_loads_total.load(Ordering::Relaxed)),
            (
                "config_load_errors",
                s.config_load_errors_total.load(Ordering::Relaxed),
            ),
            (
                "outlier_ejections",
                s.outlier_ejections_total.load(Ordering::Relaxed),
            ),
            ("upstream_rq_retry", s.retries_total.load(Ordering::Relaxed)),
            (
                "upstream_rq_mirrored",
                s.mirrored_requests_total.load(Ordering::Relaxed),
            ),
            (
                "http1_fast_path_rq",
                s.fast_path_requests_total.load(Ordering::Relaxed),
            ),
            (
                "http1_full_path_handoffs",
                s.full_path_handoffs_total.load(Ordering::Relaxed),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(out, "server.{k}: {v}");
        }
        let _ = writeln!(
            out,
            "server.config_generation: {}",
            snap.map_or(0, |s| s.generation)
        );
        let _ = writeln!(out, "server.draining_connections: {}", self.drain.active());
        out.push('\n');
        out.push_str(&self.store.metrics.render_prometheus());
        text(StatusCode::OK, out)
    }
}
