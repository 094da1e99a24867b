//! Clusters with DestinationRule's meaning: the endpoints of one service port (and subset),
//! how to pick one ([`lb`]), how many connections and requests they may take ([`pool`]), and
//! which are ejected for failing ([`outlier`]).
//!
//! A [`Cluster`] is immutable and belongs to one config snapshot; its counters, connections and
//! ejections live in [`ClusterState`] / [`EndpointState`], which the next snapshot takes over
//! when it has a cluster of the same name, so a config swap keeps pooled connections and
//! in-flight accounting.

pub mod lb;
pub mod outlier;
pub mod policy;
pub mod pool;
pub mod raw_pool;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

use crate::metrics::{LabelSet, Metrics, Peer, Reporter, ServiceLabels};
use crate::tls::stream::Upstream;
use crate::tls::upstream::{EndpointTls, TlsConnectError, UpstreamTls};
use crate::tls::Credentials;
pub use policy::{ClusterPolicy, LbPolicy, UpstreamProtocol};

/// Counters shared by every snapshot's version of one cluster.
#[derive(Default)]
pub struct ClusterState {
    /// Upstream connections open (or being opened).
    pub connections: AtomicU32,
    /// Requests waiting for a connection.
    pub pending: AtomicU32,
    /// Requests in flight.
    pub active_requests: AtomicU32,
    /// Retries in flight.
    pub active_retries: AtomicU32,
    /// Woken when a connection is closed or returned idle.
    pub released: Notify,
    /// Round-robin position.
    pub rr: AtomicUsize,
}

/// One endpoint's live state: requests in flight, failures, ejection, pooled connections.
#[derive(Default)]
pub struct EndpointState {
    pub active: AtomicU32,
    pub consecutive_5xx: AtomicU32,
    pub consecutive_gateway: AtomicU32,
    /// Milliseconds since [`outlier::epoch`] until which it is ejected; 0: not ejected.
    pub ejected_until_ms: AtomicU64,
    pub ejections: AtomicU32,
    pub(crate) pool: Mutex<pool::EndpointPool>,
    /// Idle connections of the HTTP/1.1 fast path (`http::fast`).
    pub(crate) raw: raw_pool::RawIdle,
}

pub struct Endpoint {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Who answers here, for the metric labels.
    pub peer: Arc<Peer>,
    labels: OnceLock<Arc<LabelSet>>,
    pub state: Arc<EndpointState>,
    /// Its identity and whether it has a sidecar, for mTLS.
    pub tls: EndpointTls,
}

impl Endpoint {
    pub fn new(
        addr: SocketAddr,
        weight: u32,
        peer: Arc<Peer>,
        state: Arc<EndpointState>,
    ) -> Endpoint {
        Endpoint {
            addr,
            weight,
            peer,
            labels: OnceLock::new(),
            state,
            tls: EndpointTls::default(),
        }
    }

    pub fn with_tls(mut self, tls: EndpointTls) -> Endpoint {
        self.tls = tls;
        self
    }
}

/// What metric labels are made of on one side: rendered on first use, so that the thousands
/// of endpoints a config names cost nothing until they carry traffic.
pub struct LabelContext {
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
    /// This proxy's workload.
    pub local: Arc<Peer>,
}

impl LabelContext {
    /// Labels of a request from/to `remote` for `service`.
    pub fn render(&self, remote: &Peer, service: &ServiceLabels) -> Arc<LabelSet> {
        match self.reporter {
            Reporter::Source => {
                self.metrics
                    .label_set(Reporter::Source, &self.local, remote, service)
            }
            Reporter::Destination => {
                self.metrics
                    .label_set(Reporter::Destination, remote, &self.local, service)
            }
        }
    }
}

pub struct Cluster {
    /// Istio's naming: `outbound|9080|v1|reviews.default.svc.cluster.local`.
    pub name: Arc<str>,
    pub service: Arc<ServiceLabels>,
    pub endpoints: Vec<Endpoint>,
    /// Endpoint indexes repeated by weight, for the samplers (empty: all weights are 1).
    pub(crate) weighted: Vec<u32>,
    pub policy: ClusterPolicy,
    pub state: Arc<ClusterState>,
    ctx: Arc<LabelContext>,
    labels: OnceLock<Arc<LabelSet>>,
    /// How connections to the endpoints are secured (DestinationRule `tls`).
    pub tls: Arc<UpstreamTls>,
    credentials: Option<Arc<Credentials>>,
    /// Whether responses carry the endpoint that answered (for access logs and spans); off
    /// without telemetry, so that plain requests do not pay for the extension.
    pub report_upstream: bool,
}

impl Cluster {
    /// Sets the cluster's TLS; without it, connections are plaintext.
    pub fn with_tls(mut self, tls: UpstreamTls, credentials: Arc<Credentials>) -> Cluster {
        self.tls = Arc::new(tls);
        self.credentials = Some(credentials);
        self
    }

    pub fn with_upstream_reporting(mut self, on: bool) -> Cluster {
        self.report_upstream = on;
        self
    }

    /// The identity of endpoint `i` when connections to it are the mesh's mTLS.
    pub fn mtls_identity(&self, i: usize) -> Option<Arc<str>> {
        let ep = &self.endpoints[i];
        let creds = self.credentials.as_ref()?;
        crate::tls::upstream::is_mesh_mtls(&self.tls, &ep.tls, creds)
            .then(|| ep.tls.identity.clone())
            .flatten()
    }

    /// Puts a freshly connected socket to endpoint `i` under the cluster's TLS.
    pub async fn secure(
        &self,
        i: usize,
        stream: tokio::net::TcpStream,
        protocol: crate::tls::AppProtocol,
        metrics: &Metrics,
    ) -> Result<Upstream, TlsConnectError> {
        let ep = &self.endpoints[i];
        match &self.credentials {
            None => Ok(Upstream::Plain(stream)),
            Some(creds) => {
                crate::tls::upstream::secure(
                    stream, ep.addr, &self.tls, &ep.tls, creds, protocol, metrics,
                )
                .await
            }
        }
    }

    pub fn new(
        name: Arc<str>,
        service: Arc<ServiceLabels>,
        endpoints: Vec<Endpoint>,
        policy: ClusterPolicy,
        state: Arc<ClusterState>,
        ctx: Arc<LabelContext>,
    ) -> Cluster {
        let mut weighted = Vec::new();
        if endpoints.iter().any(|e| e.weight > 1) {
            for (i, e) in endpoints.iter().enumerate() {
                for _ in 0..e.weight.clamp(1, 128) {
                    weighted.push(i as u32);
                }
            }
        }
        Cluster {
            name,
            service,
            endpoints,
            weighted,
            policy,
            state,
            ctx,
            labels: OnceLock::new(),
            tls: Arc::new(UpstreamTls::Plain),
            credentials: None,
            report_upstream: false,
        }
    }

    /// Labels for requests that failed before an endpoint was chosen.
    pub fn labels(&self) -> Arc<LabelSet> {
        self.labels
            .get_or_init(|| self.ctx.render(&Peer::default(), &self.service))
            .clone()
    }

    /// Labels for requests endpoint `i` answered.
    pub fn endpoint_labels(&self, i: usize) -> Arc<LabelSet> {
        let e = &self.endpoints[i];
        e.labels
            .get_or_init(|| self.ctx.render(&e.peer, &self.service))
            .clone()
    }

    /// The number of sampling slots, and the endpoint in slot `k`.
    pub(crate) fn slots(&self) -> usize {
        if self.weighted.is_empty() {
            self.endpoints.len()
        } else {
            self.weighted.len()
        }
    }
    pub(crate) fn slot(&self, k: usize) -> usize {
        if self.weighted.is_empty() {
            k
        } else {
            self.weighted[k] as usize
        }
    }

    /// Starts a request: counts it, or refuses it when `http2MaxRequests` is reached.
    pub fn begin_request(&self) -> Option<RequestGuard> {
        let n = self.state.active_requests.fetch_add(1, Ordering::AcqRel);
        if n >= self.policy.max_requests {
            self.state.active_requests.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(RequestGuard {
            cluster: self.state.clone(),
            endpoint: None,
        })
    }
}

/// A request in flight on a cluster (and, once chosen, an endpoint); released on drop.
pub struct RequestGuard {
    cluster: Arc<ClusterState>,
    endpoint: Option<Arc<EndpointState>>,
}

impl RequestGuard {
    pub fn set_endpoint(&mut self, e: &Arc<EndpointState>) {
        if let Some(old) = self.endpoint.take() {
            old.active.fetch_sub(1, Ordering::AcqRel);
        }
        e.active.fetch_add(1, Ordering::AcqRel);
        self.endpoint = Some(e.clone());
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.cluster.active_requests.fetch_sub(1, Ordering::AcqRel);
        if let Some(e) = self.endpoint.take() {
            e.active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
