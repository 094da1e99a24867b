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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::metrics::{LabelSet, ServiceLabels};
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
}

pub struct Endpoint {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Metric labels of requests this endpoint answered.
    pub labels: Arc<LabelSet>,
    pub state: Arc<EndpointState>,
}

pub struct Cluster {
    /// Istio's naming: `outbound|9080|v1|reviews.default.svc.cluster.local`.
    pub name: String,
    pub service: ServiceLabels,
    pub endpoints: Vec<Endpoint>,
    /// Endpoint indexes repeated by weight, for the samplers.
    pub(crate) weighted: Vec<u32>,
    pub policy: ClusterPolicy,
    pub state: Arc<ClusterState>,
    /// Labels for requests that failed before an endpoint was chosen.
    pub labels: Arc<LabelSet>,
}

impl Cluster {
    pub fn new(
        name: String,
        service: ServiceLabels,
        endpoints: Vec<Endpoint>,
        policy: ClusterPolicy,
        state: Arc<ClusterState>,
        labels: Arc<LabelSet>,
    ) -> Cluster {
        let mut weighted = Vec::new();
        for (i, e) in endpoints.iter().enumerate() {
            for _ in 0..e.weight.clamp(1, 128) {
                weighted.push(i as u32);
            }
        }
        Cluster {
            name,
            service,
            endpoints,
            weighted,
            policy,
            state,
            labels,
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
