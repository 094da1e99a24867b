//! The watched objects: one Kubernetes watch per kind into a shared snapshot, and the loop that
//! turns each burst of changes into one new push generation.
//!
//! A burst (a rollout, `kubectl apply -f dir/`) becomes one push: after a change the loop waits
//! for [`QUIET`] without another, but never longer than [`MAX_DELAY`]. Nothing is published
//! before every kind has been listed once, so a proxy never gets the half-known mesh of a meshd
//! that is starting; while the API server is away, the last known state stays in force.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::hub::Hub;
use super::model::{Kind, MeshSettings, Model, Reuse, Snapshot};

pub const QUIET: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(1);

fn resource(kind: Kind) -> ApiResource {
    let (group, version, kind_name, plural) = match kind {
        Kind::Service => ("", "v1", "Service", "services"),
        Kind::EndpointSlice => ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        Kind::Pod => ("", "v1", "Pod", "pods"),
        Kind::Namespace => ("", "v1", "Namespace", "namespaces"),
        Kind::VirtualService => (
            "networking.istio.io",
            "v1",
            "VirtualService",
            "virtualservices",
        ),
        Kind::DestinationRule => (
            "networking.istio.io",
            "v1",
            "DestinationRule",
            "destinationrules",
        ),
        Kind::Gateway => ("networking.istio.io", "v1", "Gateway", "gateways"),
        Kind::Sidecar => ("networking.istio.io", "v1", "Sidecar", "sidecars"),
        Kind::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
        Kind::ServiceEntry => (
            "networking.istio.io",
            "v1",
            "ServiceEntry",
            "serviceentries",
        ),
        Kind::WorkloadEntry => (
            "networking.istio.io",
            "v1",
            "WorkloadEntry",
            "workloadentries",
        ),
        Kind::PeerAuthentication => (
            "security.istio.io",
            "v1",
            "PeerAuthentication",
            "peerauthentications",
        ),
        Kind::AuthorizationPolicy => (
            "security.istio.io",
            "v1",
            "AuthorizationPolicy",
            "authorizationpolicies",
        ),
    };
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        },
        kind: kind_name.to_owned(),
        plural: plural.to_owned(),
    }
}

pub const KINDS: &[Kind] = &[
    Kind::Service,
    Kind::EndpointSlice,
    Kind::Pod,
    Kind::Namespace,
    Kind::VirtualService,
    Kind::DestinationRule,
    Kind::Gateway,
    Kind::Sidecar,
    Kind::Ingress,
    Kind::PeerAuthentication,
    Kind::AuthorizationPolicy,
    Kind::ServiceEntry,
    Kind::WorkloadEntry,
];

type Key = (String, String);

#[derive(Default)]
struct KindState {
    objects: BTreeMap<Key, Arc<DynamicObject>>,
    listing: Option<BTreeMap<Key, Arc<DynamicObject>>>,
    listed: bool,
    failing_since: Option<SystemTime>,
}

/// The objects of every kind, shared by the watches and the push loop.
#[derive(Clone, Default)]
pub struct Store {
    kinds: Arc<Mutex<HashMap<Kind, KindState>>>,
    changed: Arc<Notify>,
}

fn key(o: &DynamicObject) -> Key {
    (
        o.metadata.namespace.clone().unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    )
}

impl Store {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Kind, KindState>) -> T) -> T {
        match self.kinds.lock() {
            Ok(mut k) => f(&mut k),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Takes in one watch event; true (and the push loop is woken) if it changed what
    /// discovery reads.
    fn apply(&self, kind: Kind, event: Event<DynamicObject>) -> bool {
        let notify = self.with(|kinds| {
            let state = kinds.entry(kind).or_default();
            state.failing_since = None;
            match event {
                Event::Apply(o) => {
                    let o = slim(kind, o);
                    let key = key(&o);
                    if state.objects.get(&key).is_some_and(|held| **held == o) {
                        return false;
                    }
                    state.objects.insert(key, Arc::new(o));
                    true
                }
                Event::Delete(o) => state.objects.remove(&key(&o)).is_some(),
                Event::Init => {
                    state.listing = Some(BTreeMap::new());
                    false
                }
                Event::InitApply(o) => {
                    let o = slim(kind, o);
                    state
                        .listing
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key(&o), Arc::new(o));
                    false
                }
                Event::InitDone => {
                    state.objects = state.listing.take().unwrap_or_default();
                    state.listed = true;
                    true
                }
            }
        });
        if notify {
            self.changed.notify_one();
        }
        notify
    }

    /// A kind the API server does not serve (its CRD is not installed) is known: it is empty.
    fn absent(&self, kind: Kind) {
        let first = self.with(|kinds| {
            let state = kinds.entry(kind).or_default();
            let first = !state.listed;
            state.listed = true;
            state.objects.clear();
            first
        });
        if first {
            self.changed.notify_one();
        }
    }

    fn failing(&self, kind: Kind) {
        self.with(|kinds| {
            let state = kinds.entry(kind).or_default();
            state.failing_since.get_or_insert_with(SystemTime::now);
        });
    }

    pub fn listed(&self) -> bool {
        self.with(|kinds| KINDS.iter().all(|k| kinds.get(k).is_some_and(|s| s.listed)))
    }

    /// The kinds whose watch is failing, and since when.
    pub fn failing_kinds(&self) -> Vec<(Kind, SystemTime)> {
        self.with(|kinds| {
            kinds
                .iter()
                .filter_map(|(k, s)| s.failing_since.map(|t| (*k, t)))
                .collect()
        })
    }

    pub fn snapshot(&self) -> Snapshot {
        self.with(|kinds| Snapshot {
            objects: kinds
                .iter()
                .map(|(k, s)| (*k, s.objects.values().cloned().collect()))
                .collect(),
        })
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What meshd keeps of a watched object: what discovery reads ([`super::registry`] and
/// [`Model::build`]). The API server's bookkeeping (managed fields, resource version) and
/// kubectl's last-applied copy go; of a pod only its metadata without annotations, its service
/// account and addresses stay, of a Service its addresses, ports and selector, of an
/// EndpointSlice its ports and endpoints' addresses and conditions, of a Namespace its
/// metadata. Pods are most of what a cluster holds, and most of their updates (status,
/// conditions) change nothing kept here, so they cost no new generation.
fn slim(kind: Kind, mut o: DynamicObject) -> DynamicObject {
    o.metadata.managed_fields = None;
    o.metadata.resource_version = None;
    if let Some(annotations) = o.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
    let data = std::mem::take(&mut o.data);
    o.data = match kind {
        Kind::Pod => {
            o.metadata.annotations = None;
            json!({
                "spec": keep(&data["spec"], &["serviceAccountName"]),
                "status": keep(&data["status"], &["podIP", "podIPs"]),
            })
        }
        Kind::Service => json!({
            "spec": keep(&data["spec"], &["clusterIP", "clusterIPs", "ports", "selector", "type", "externalName"]),
        }),
        Kind::EndpointSlice => {
            let endpoints: Vec<Value> = data["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| keep(e, &["addresses", "conditions"]))
                .collect();
            json!({"ports": data["ports"], "endpoints": endpoints})
        }
        Kind::Namespace => json!({}),
        _ => data,
    };
    o
}

/// The `fields` of `value` that it has.
fn keep(value: &Value, fields: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for field in fields {
        if let Some(v) = value.get(*field) {
            out.insert((*field).to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

fn is_not_served(e: &watcher::Error) -> bool {
    let text = e.to_string();
    text.contains("404") || text.contains("the server could not find the requested resource")
}

/// Watches `kind` for as long as meshd runs.
async fn watch(client: Client, kind: Kind, store: Store) {
    let api: Api<DynamicObject> = Api::all_with(client, &resource(kind));
    // Small pages: a page of a LIST is parsed whole before it is slimmed, and a page of 500
    // pods is tens of megabytes of JSON values.
    let mut events = watcher::watcher(api, watcher::Config::default().page_size(100))
        .backoff(super::backoff::WatchBackoff::default())
        .boxed();
    let mut reported = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                if reported {
                    info!(?kind, "watch back");
                    reported = false;
                }
                store.apply(kind, event);
            }
            Err(e) if is_not_served(&e) => store.absent(kind),
            Err(e) => {
                store.failing(kind);
                if !reported {
                    warn!(?kind, error = %e, "watch failing; serving the last known state");
                    reported = true;
                }
            }
        }
    }
}

/// Starts the watches and returns the store they fill.
pub fn start(client: Client) -> Store {
    let store = Store::default();
    for kind in KINDS {
        tokio::spawn(watch(client.clone(), *kind, store.clone()));
    }
    store
}

/// Publishes a new generation after each burst of changes, for as long as meshd runs.
/// `mesh` is read again for every build (the mesh config may change under it); `synced`
/// turns true with the first generation.
pub async fn push_loop(
    store: Store,
    hub: Arc<Hub>,
    mesh: impl Fn() -> MeshSettings,
    on_build: impl Fn(&Model),
    synced: Arc<AtomicBool>,
) {
    let mut reuse = Reuse::default();
    loop {
        store.changed.notified().await;
        let first = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(QUIET) => break,
                _ = store.changed.notified() => {
                    if first.elapsed() >= MAX_DELAY {
                        break;
                    }
                }
            }
        }
        if !store.listed() {
            continue;
        }
        let started = Instant::now();
        let model = Model::build_reusing(&store.snapshot(), &mesh(), &mut reuse);
        on_build(&model);
        let services = model.services.len();
        let generation = hub.publish(model);
        // The previous generation and the build's scratch are gone (or going, as streams move
        // to the new one): give their pages back.
        crate::allocator::release_free_memory();
        if !synced.swap(true, Ordering::Relaxed) {
            info!(generation, services, "first configuration built");
        }
        tracing::debug!(generation, took = ?started.elapsed(), "configuration built");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::model::{MeshSettings, Model, Snapshot};

    fn pod(version: &str, ready: &str, rv: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "reviews-1", "namespace": "shop", "resourceVersion": rv,
                         "labels": {"app": "reviews", "version": version},
                         "annotations": {"sidecar.istio.io/status": "{}"},
                         "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
            "spec": {"serviceAccountName": "reviews", "containers": [{"name": "app", "image": "reviews:1"}]},
            "status": {"podIP": "10.244.0.7", "conditions": [{"type": "Ready", "status": ready}]},
        }))
        .expect("pod")
    }

    #[test]
    fn a_pod_is_kept_as_far_as_discovery_reads_it_and_other_updates_wake_nothing() {
        let store = Store::default();
        assert!(store.apply(Kind::Pod, Event::Apply(pod("v1", "False", "1"))));
        let held = store.snapshot().objects[&Kind::Pod][0].clone();
        assert!(held.metadata.managed_fields.is_none());
        assert!(held.metadata.annotations.is_none());
        assert_eq!(
            held.data,
            json!({"spec": {"serviceAccountName": "reviews"}, "status": {"podIP": "10.244.0.7"}})
        );
        assert!(
            !store.apply(Kind::Pod, Event::Apply(pod("v1", "True", "2"))),
            "a condition changed: nothing discovery reads"
        );
        assert!(
            store.apply(Kind::Pod, Event::Apply(pod("v2", "True", "3"))),
            "its labels changed: the endpoints' labels change"
        );
    }

    #[test]
    fn slimmed_objects_give_the_same_configuration() {
        let objects = [
            (
                Kind::Service,
                json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "reviews", "namespace": "shop", "resourceVersion": "7",
                             "annotations": {"networking.istio.io/exportTo": ".", LAST_APPLIED: "{}"}},
                "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "type": "ClusterIP",
                         "ipFamilies": ["IPv4"], "sessionAffinity": "None", "selector": {"app": "reviews"},
                         "ports": [{"name": "http", "port": 9080, "targetPort": 9080, "protocol": "TCP", "appProtocol": "http"}]},
                "status": {"loadBalancer": {}}}),
            ),
            (
                Kind::EndpointSlice,
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "reviews-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "reviews"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.244.0.7"], "conditions": {"ready": true, "serving": true},
                     "nodeName": "node-1", "zone": "a", "targetRef": {"kind": "Pod", "namespace": "shop", "name": "reviews-1"}},
                    {"addresses": ["10.244.0.8"], "conditions": {"ready": false}}]}),
            ),
            (
                Kind::Pod,
                serde_json::to_value(pod("v1", "True", "1")).expect("pod"),
            ),
        ];
        let mesh = MeshSettings::new("cluster.local", "mesh-system");
        let mut whole = Snapshot::default();
        let mut slimmed = Snapshot::default();
        for (kind, value) in objects {
            let o: DynamicObject = serde_json::from_value(value).expect("object");
            slimmed
                .objects
                .entry(kind)
                .or_default()
                .push(Arc::new(slim(kind, o.clone())));
            whole.objects.entry(kind).or_default().push(Arc::new(o));
        }
        let (a, b) = (Model::build(&whole, &mesh), Model::build(&slimmed, &mesh));
        assert_eq!(a.services.len(), 1);
        assert_eq!(a.services[0].body, b.services[0].body);
        assert_eq!(a.services[0].export, b.services[0].export);
        let body: Value = serde_json::from_slice(&b.services[0].body).expect("JSON");
        assert_eq!(
            body["endpoints"][0]["labels"]["version"], "v1",
            "labelled from the pod"
        );
        assert_eq!(a.selectors, b.selectors);
    }
}
