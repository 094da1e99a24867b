//! Span export in Zipkin v2 JSON: spans are queued without waiting (a full queue drops them,
//! counted), and a thread of its own sends them in batches to the collector, so neither a slow
//! collector nor a dead one touches the request path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    #[serde(rename = "serviceName", skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Endpoint {
    pub fn of(service_name: Option<String>, addr: Option<std::net::SocketAddr>) -> Endpoint {
        let (ipv4, ipv6) = match addr.map(|a| a.ip()) {
            Some(std::net::IpAddr::V4(v)) => (Some(v.to_string()), None),
            Some(std::net::IpAddr::V6(v)) => (None, Some(v.to_string())),
            None => (None, None),
        };
        Endpoint {
            service_name,
            ipv4,
            ipv6,
            port: addr.map(|a| a.port()),
        }
    }
}

/// One span as Zipkin's v2 API takes it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    pub trace_id: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub name: String,
    pub kind: &'static str,
    /// Microseconds since the epoch.
    pub timestamp: u64,
    /// Microseconds.
    pub duration: u64,
    pub local_endpoint: Endpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<Endpoint>,
    pub tags: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Target {
    address: String,
    batch: usize,
    flush: Duration,
}

/// The process's span exporter; its thread starts with the first span.
pub struct Exporter {
    target: Mutex<Option<Target>>,
    queue: Mutex<Option<mpsc::Sender<Span>>>,
    metrics: Arc<Metrics>,
    capacity: Mutex<usize>,
}

impl Exporter {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Exporter> {
        Arc::new(Exporter {
            target: Mutex::new(None),
            queue: Mutex::new(None),
            metrics,
            capacity: Mutex::new(10_000),
        })
    }

    /// Where spans go from now on (a snapshot's `tracing`).
    pub fn configure(&self, t: Option<&mesh_proxy_config::Tracing>) {
        let target = t.and_then(|t| {
            Some(Target {
                address: t.zipkin.as_ref()?.address.clone(),
                batch: t.max_batch_size.unwrap_or(100).max(1) as usize,
                flush: t
                    .flush_interval
                    .map_or(Duration::from_secs(1), |d| d.get())
                    .max(Duration::from_millis(1)),
            })
        });
        if let Some(t) = t {
            *lock(&self.capacity) = t.max_queued_spans.unwrap_or(10_000).max(1) as usize;
        }
        *lock(&self.target) = target;
    }

    pub fn is_exporting(&self) -> bool {
        lock(&self.target).is_some()
    }

    /// Queues a span; never waits.
    pub fn submit(self: &Arc<Self>, span: Span) {
        let sender = {
            let mut q = lock(&self.queue);
            if q.is_none() {
                *q = self.start();
            }
            q.clone()
        };
        let Some(sender) = sender else {
            Metrics::inc(&self.metrics.security.spans_dropped);
            return;
        };
        if sender.try_send(span).is_err() {
            Metrics::inc(&self.metrics.security.spans_dropped);
        }
    }

    fn start(self: &Arc<Self>) -> Option<mpsc::Sender<Span>> {
        let (tx, rx) = mpsc::channel(*lock(&self.capacity));
        let me = self.clone();
        std::thread::Builder::new()
            .name("span-export".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("span exporter runtime: {e}");
                        return;
                    }
                };
                rt.block_on(me.run(rx));
            })
            .map_err(|e| tracing::error!("span exporter thread: {e}"))
            .ok()?;
        Some(tx)
    }

    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Span>) {
        loop {
            let Some(first) = rx.recv().await else {
                return;
            };
            let Some(target) = lock(&self.target).clone() else {
                Metrics::inc(&self.metrics.security.spans_dropped);
                continue;
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + target.flush;
            while batch.len() < target.batch {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(s)) => batch.push(s),
                    Ok(None) | Err(_) => break,
                }
            }
            let n = batch.len() as u64;
            match post(&target.address, &batch).await {
                Ok(()) => {
                    self.metrics
                        .security
                        .spans_exported
                        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => {
                    Metrics::inc(&self.metrics.security.span_export_errors);
                    self.metrics
                        .security
                        .spans_dropped
                        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(collector = %target.address, "spans not exported: {e}");
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("request: {0}")]
    Request(#[from] http::Error),
    #[error("the collector answered {0}")]
    Status(u16),
}

/// POSTs one batch to `http://<address>/api/v2/spans`.
async fn post(address: &str, spans: &[Span]) -> Result<(), ExportError> {
    use http_body_util::{BodyExt, Full};
    let body = serde_json::to_vec(spans)?;
    let send = async {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(ExportError::Connect)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = http::Request::post("/api/v2/spans")
            .header(http::header::HOST, address)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes::Bytes::from(body)))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        if !(200..300).contains(&status) {
            return Err(ExportError::Status(status));
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), send)
        .await
        .map_err(|_| ExportError::Timeout)?
}
