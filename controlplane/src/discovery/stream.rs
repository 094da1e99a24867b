//! One proxy's delta stream: what it holds per type, what is on its way, and what it refused.
//!
//! A type has at most one push in flight: a newer generation waits for the proxy's answer to
//! the one before, then goes as one response from what the proxy acknowledged to what it should
//! have now, so a burst of generations costs a slow proxy one push, not many. A refused (NACKed)
//! set is not sent again; the next different one is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::{Stream, StreamExt};
use mesh_xds::discovery::{DeltaRequest, Resource};
use mesh_xds::types;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{debug, warn};

use super::generation::{Generation, Versions, NOTHING};
use super::hub::{Hub, ProxyStatus, SyncState, TypeStatus};
use super::scope::{self, ProxyNode, View};
use super::wire::{self, Encoded};
use crate::metrics::Metrics;

/// The name of the proxy's own settings resource.
pub const SELF: &str = "self";

struct Pending {
    nonce: String,
    target: Versions,
    generation: u64,
    sent_at: Instant,
}

struct TypeState {
    type_url: &'static str,
    has: Versions,
    pending: Option<Pending>,
    refused: Option<(Versions, String)>,
    sent_once: bool,
    acked_generation: Option<u64>,
    acked_at: Option<SystemTime>,
}

impl TypeState {
    fn new(type_url: &'static str, has: Versions) -> TypeState {
        TypeState {
            type_url,
            has,
            pending: None,
            refused: None,
            sent_once: false,
            acked_generation: None,
            acked_at: None,
        }
    }

    fn status(&self, want: &Versions) -> TypeStatus {
        let state = if !self.sent_once {
            SyncState::NotSent
        } else if self.pending.is_none() && same(&self.has, want) {
            SyncState::Synced
        } else {
            SyncState::Stale
        };
        TypeStatus {
            state,
            acked_generation: self.acked_generation,
            acked_at: self.acked_at,
            rejected: self.refused.as_ref().map(|(_, why)| why.clone()),
        }
    }
}

fn same(a: &Versions, b: &Versions) -> bool {
    Arc::ptr_eq(a, b) || **a == **b
}

/// What the proxy should hold in one generation, worked out once per generation.
struct Wanted {
    generation: u64,
    view: Arc<View>,
    own: Versions,
    own_body: bytes::Bytes,
}

pub struct ProxyStream {
    hub: Arc<Hub>,
    metrics: Metrics,
    node: ProxyNode,
    status: Arc<ProxyStatus>,
    out: mpsc::Sender<Box<Encoded>>,
    types: Vec<TypeState>,
    nonces: u64,
    wanted: Option<Wanted>,
}

/// What the proxy said it holds when it (re)connected, per type.
fn initial(request: &DeltaRequest) -> BTreeMap<String, BTreeMap<Arc<str>, Arc<str>>> {
    let mut out: BTreeMap<String, BTreeMap<Arc<str>, Arc<str>>> = BTreeMap::new();
    for v in &request.initial_versions {
        out.entry(v.type_url.clone())
            .or_default()
            .insert(Arc::from(v.name.as_str()), Arc::from(v.version.as_str()));
    }
    out
}

impl ProxyStream {
    pub fn new(
        hub: Arc<Hub>,
        metrics: Metrics,
        node: ProxyNode,
        first: &DeltaRequest,
        status: Arc<ProxyStatus>,
        out: mpsc::Sender<Box<Encoded>>,
    ) -> ProxyStream {
        let mut held = initial(first);
        let types = types::ALL
            .iter()
            .map(|t| {
                let has = held
                    .remove(*t)
                    .map(Arc::new)
                    .unwrap_or_else(|| NOTHING.clone());
                TypeState::new(t, has)
            })
            .collect();
        ProxyStream {
            hub,
            metrics,
            node,
            status,
            out,
            types,
            nonces: 0,
            wanted: None,
        }
    }

    /// Serves the stream until either side ends it.
    pub async fn run(
        mut self,
        mut inbound: impl Stream<Item = Result<DeltaRequest, Status>> + Unpin,
    ) {
        let mut generations = self.hub.subscribe();
        let mut generation = generations.borrow_and_update().clone();
        // Generation 0 is the empty mesh of a meshd that has not listed everything yet.
        while generation.number == 0 {
            if generations.changed().await.is_err() {
                self.hub.disconnect(self.status.id);
                return;
            }
            generation = generations.borrow_and_update().clone();
        }
        self.metrics.proxy_connected();
        let mut open = self.sync_all(&generation).await;
        while open {
            tokio::select! {
                changed = generations.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    generation = generations.borrow_and_update().clone();
                    open = self.sync_all(&generation).await;
                }
                request = inbound.next() => match request {
                    Some(Ok(request)) => {
                        self.answer(&request);
                        open = self.sync_all(&generation).await;
                    }
                    Some(Err(e)) => {
                        debug!(pod = %self.node.pod_name, error = %e, "stream error");
                        break;
                    }
                    None => break,
                },
            }
        }
        self.metrics.proxy_disconnected();
        self.hub.disconnect(self.status.id);
    }

    /// The proxy's ACK or NACK of a push.
    fn answer(&mut self, request: &DeltaRequest) {
        let Some(state) = self.types.iter_mut().find(|s| {
            s.pending
                .as_ref()
                .is_some_and(|p| p.nonce == request.response_nonce)
        }) else {
            return;
        };
        let Some(pending) = state.pending.take() else {
            return;
        };
        if request.error_detail.is_empty() {
            state.has = pending.target;
            state.refused = None;
            state.acked_generation = Some(pending.generation);
            state.acked_at = Some(SystemTime::now());
            self.metrics.push_acknowledged(pending.sent_at.elapsed());
        } else {
            warn!(
                pod = %self.node.pod_name,
                namespace = %self.node.namespace,
                type_url = state.type_url,
                error = %request.error_detail,
                "the proxy refused a push (NACK); it keeps its previous configuration"
            );
            self.metrics.push_rejected();
            state.refused = Some((pending.target, request.error_detail.clone()));
        }
    }

    /// Pushes every type whose wanted set differs from what the proxy holds; false once the
    /// stream is gone.
    async fn sync_all(&mut self, generation: &Arc<Generation>) -> bool {
        let wanted = match self.wanted.take() {
            Some(w) if w.generation == generation.number => w,
            _ => {
                let key = scope::scope_key(&generation.model, &self.node);
                let view = generation.view(&key);
                let (own_version, own_body) =
                    scope::own_resource(&generation.model, &self.node, &key);
                Wanted {
                    generation: generation.number,
                    view,
                    own: Arc::new(BTreeMap::from([(Arc::from(SELF), own_version)])),
                    own_body,
                }
            }
        };
        let open = self.sync_types(generation, &wanted).await;
        self.wanted = Some(wanted);
        open
    }

    async fn sync_types(&mut self, generation: &Arc<Generation>, wanted: &Wanted) -> bool {
        for i in 0..self.types.len() {
            let type_url = self.types[i].type_url;
            let want = match type_url {
                types::PROXY => &wanted.own,
                types::SERVICE => &wanted.view.services,
                types::DESTINATION_RULE => &wanted.view.destination_rules,
                _ => &wanted.view.virtual_services,
            };
            if !self.push(i, generation, want, &wanted.own_body).await {
                return false;
            }
            self.status.set(type_url, self.types[i].status(want));
        }
        true
    }

    async fn push(
        &mut self,
        i: usize,
        generation: &Arc<Generation>,
        want: &Versions,
        own_body: &bytes::Bytes,
    ) -> bool {
        let state = &mut self.types[i];
        if state.pending.is_some() {
            return true;
        }
        let type_url = state.type_url;
        // The proxy's own resource is one small set per proxy; the others are shared sets,
        // compared through their delta, which every proxy holding the same set shares.
        let delta = (type_url != types::PROXY && !Arc::ptr_eq(&state.has, want))
            .then(|| generation.delta(type_url, &state.has, want));
        if state.sent_once {
            let unchanged = match &delta {
                None => type_url != types::PROXY || same(&state.has, want),
                Some(d) => d.resources == 0 && d.removed == 0,
            };
            if unchanged {
                // Equal content: from now on the proxy holds this very set.
                state.has = want.clone();
                return true;
            }
        }
        if state
            .refused
            .as_ref()
            .is_some_and(|(set, _)| same(set, want))
        {
            return true;
        }
        let changes = if type_url == types::PROXY {
            let changed = state.has.get(SELF) != want.get(SELF);
            let resources = if changed {
                vec![Resource {
                    name: SELF.to_owned(),
                    version: want.get(SELF).map(|v| v.to_string()).unwrap_or_default(),
                    body: own_body.clone(),
                }]
            } else {
                Vec::new()
            };
            wire::encode_changes(resources, Vec::new())
        } else {
            delta
                .unwrap_or_else(|| generation.delta(type_url, &state.has, want))
                .encoded
                .clone()
        };
        self.nonces += 1;
        let nonce = format!("{}-{}", self.status.id, self.nonces);
        let response = Encoded::response(
            type_url,
            generation.number.to_string(),
            nonce.clone(),
            true,
            changes,
        );
        self.metrics.push_sent(type_url);
        if self.out.send(Box::new(response)).await.is_err() {
            return false;
        }
        let state = &mut self.types[i];
        state.sent_once = true;
        state.pending = Some(Pending {
            nonce,
            target: want.clone(),
            generation: generation.number,
            sent_at: Instant::now(),
        });
        true
    }
}
