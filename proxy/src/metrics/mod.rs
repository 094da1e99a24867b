//! Istio's standard metrics (`istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`, `istio_tcp_*`) with their standard labels.
//!
//! Written here rather than with `prometheus-client`: its label families take an owned label
//! set per observation (a dozen string clones per request); here the labels that depend on the
//! peers are rendered once into an interned [`LabelSet`], and a request only looks up a small
//! copyable key.

mod flags;
mod labels;
mod render;
mod security;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use flags::ResponseFlags;
pub use labels::{LabelSet, Peer, Reporter, ServiceLabels};
pub use security::SecurityStats;

/// Istio's buckets for `istio_request_duration_milliseconds`.
pub const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
/// Istio's buckets for `istio_request_bytes` / `istio_response_bytes`.
pub const BYTES_BUCKETS: [f64; 10] = [
    1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1e6, 1e7, 1e8, 1e9,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestProtocol {
    Http,
    Grpc,
}

impl RequestProtocol {
    fn as_str(self) -> &'static str {
        match self {
            RequestProtocol::Http => "http",
            RequestProtocol::Grpc => "grpc",
        }
    }
}

/// What one finished request contributes.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord {
    pub protocol: RequestProtocol,
    pub response_code: u16,
    /// `None`: not gRPC, or no status seen.
    pub grpc_status: Option<u8>,
    pub flags: ResponseFlags,
    pub duration_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct RequestKey {
    labels: usize,
    protocol: RequestProtocol,
    code: u16,
    grpc: Option<u8>,
    flags: ResponseFlags,
}

struct Histogram<const N: usize> {
    counts: [u64; N],
    sum: f64,
    count: u64,
}

impl<const N: usize> Histogram<N> {
    fn new() -> Self {
        Histogram {
            counts: [0; N],
            sum: 0.0,
            count: 0,
        }
    }
    fn observe(&mut self, bounds: &[f64; N], v: f64) {
        // Counts are per bucket; rendering accumulates them.
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

struct RequestSeries {
    labels: Arc<LabelSet>,
    total: u64,
    duration: Histogram<19>,
    request_bytes: Histogram<10>,
    response_bytes: Histogram<10>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct TcpKey {
    labels: usize,
    flags: ResponseFlags,
}

struct TcpSeries {
    labels: Arc<LabelSet>,
    opened: u64,
    closed: u64,
    sent: u64,
    received: u64,
}

/// Counters about the proxy itself (shown by the admin `/stats`).
#[derive(Default)]
pub struct ServerStats {
    pub downstream_connections_total: AtomicU64,
    pub downstream_connections_active: AtomicU64,
    pub downstream_connections_refused: AtomicU64,
    pub upstream_connections_total: AtomicU64,
    pub upstream_connect_failures_total: AtomicU64,
    pub config_loads_total: AtomicU64,
    pub config_load_errors_total: AtomicU64,
    pub outlier_ejections_total: AtomicU64,
    pub retries_total: AtomicU64,
    pub mirrored_requests_total: AtomicU64,
    /// HTTP/1.1 requests the fast path answered (`http::fast`).
    pub fast_path_requests_total: AtomicU64,
    /// HTTP/1.1 connections the fast path handed to the full path.
    pub full_path_handoffs_total: AtomicU64,
}

/// Every metric the proxy serves.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<rustc_hash::FxHashMap<RequestKey, RequestSeries>>,
    tcp: Mutex<rustc_hash::FxHashMap<TcpKey, TcpSeries>>,
    pub server: ServerStats,
    pub security: SecurityStats,
    interner: labels::Interner,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves counters, which stay usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// The interned label set for this reporter and pair of peers.
    pub fn label_set(
        &self,
        reporter: Reporter,
        source: &Peer,
        destination: &Peer,
        service: &ServiceLabels,
    ) -> Arc<LabelSet> {
        self.interner
            .get(labels::render(reporter, source, destination, service))
    }

    /// `base` as seen over an mTLS connection from `source_principal` (see [`labels::secured`]).
    pub fn secured_labels(&self, base: &LabelSet, source_principal: &str) -> Arc<LabelSet> {
        self.interner
            .get(labels::secured(&base.text, source_principal))
    }

    pub fn record_request(&self, labels: &Arc<LabelSet>, r: &RequestRecord) {
        let key = RequestKey {
            labels: Arc::as_ptr(labels) as usize,
            protocol: r.protocol,
            code: r.response_code,
            grpc: r.grpc_status,
            flags: r.flags,
        };
        let mut map = lock(&self.requests);
        let s = map.entry(key).or_insert_with(|| RequestSeries {
            labels: labels.clone(),
            total: 0,
            duration: Histogram::new(),
            request_bytes: Histogram::new(),
            response_bytes: Histogram::new(),
        });
        s.total += 1;
        s.duration.observe(&DURATION_BUCKETS_MS, r.duration_ms);
        s.request_bytes
            .observe(&BYTES_BUCKETS, r.request_bytes as f64);
        s.response_bytes
            .observe(&BYTES_BUCKETS, r.response_bytes as f64);
    }

    fn tcp_series<R>(
        &self,
        labels: &Arc<LabelSet>,
        flags: ResponseFlags,
        f: impl FnOnce(&mut TcpSeries) -> R,
    ) -> R {
        let key = TcpKey {
            labels: Arc::as_ptr(labels) as usize,
            flags,
        };
        let mut map = lock(&self.tcp);
        let s = map.entry(key).or_insert_with(|| TcpSeries {
            labels: labels.clone(),
            opened: 0,
            closed: 0,
            sent: 0,
            received: 0,
        });
        f(s)
    }

    pub fn tcp_opened(&self, labels: &Arc<LabelSet>) {
        self.tcp_series(labels, ResponseFlags::NONE, |s| s.opened += 1);
    }

    /// A TCP connection ended: `sent` went to the client, `received` came from it.
    pub fn tcp_closed(
        &self,
        labels: &Arc<LabelSet>,
        flags: ResponseFlags,
        sent: u64,
        received: u64,
    ) {
        self.tcp_series(labels, flags, |s| {
            s.closed += 1;
            s.sent += sent;
            s.received += received;
        });
    }

    /// Prometheus text exposition of every series.
    pub fn render_prometheus(&self) -> String {
        render::prometheus(self)
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
