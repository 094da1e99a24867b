//! One push generation: a built [`Model`] with the views of it computed so far, and the delta
//! responses computed so far, so that proxies sharing a scope share the work and the bytes.
//!
//! Equal sets are one set: scopes that see the same resources (every namespace, when nothing
//! restricts what it sees) share one [`Versions`] per type, and a set that did not change from
//! the previous generation is that generation's set. A proxy then compares what it holds with
//! what it should hold by address, and every proxy of the mesh shares one delta per change.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use bytes::Bytes;
use mesh_xds::discovery::Resource;
use mesh_xds::types;

use super::model::{Model, Published};
use super::scope::{self, ScopeKey, View};
use super::wire;

/// Names → versions of what a proxy holds or should hold, for one type.
pub type Versions = Arc<BTreeMap<Arc<str>, Arc<str>>>;

/// The set a fresh proxy holds; one shared value so that first pushes share their diff.
pub static NOTHING: LazyLock<Versions> = LazyLock::new(|| Arc::new(BTreeMap::new()));

/// The resources that turn one set into another, encoded once for every proxy it goes to.
#[derive(Debug, Default)]
pub struct Delta {
    /// The `resources` and `removed_resources` of the response ([`wire::encode_changes`]).
    pub encoded: Bytes,
    pub resources: usize,
    pub removed: usize,
}

/// A type and the addresses of the two sets a delta goes between.
type DeltaKey = (&'static str, usize, usize);
/// The two sets (kept alive) and the delta between them.
type CachedDelta = (Versions, Versions, Arc<Delta>);

pub struct Generation {
    pub number: u64,
    pub model: Arc<Model>,
    by_name: HashMap<&'static str, HashMap<Arc<str>, usize>>,
    views: Mutex<HashMap<ScopeKey, Arc<View>>>,
    /// The sets the views of this generation use, by content hash.
    sets: Mutex<HashMap<u64, Versions>>,
    /// The previous generation's, for the sets that did not change.
    inherited: HashMap<u64, Versions>,
    /// Keyed by the two sets' addresses; the sets are kept in the value, so that neither can be
    /// freed and its address reused for another set while the entry exists.
    deltas: Mutex<HashMap<DeltaKey, CachedDelta>>,
}

fn index(items: &[Published]) -> HashMap<Arc<str>, usize> {
    items
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), i))
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn fingerprint(set: &BTreeMap<Arc<str>, Arc<str>>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    set.len().hash(&mut hasher);
    for (name, version) in set {
        name.hash(&mut hasher);
        version.hash(&mut hasher);
    }
    hasher.finish()
}

impl Generation {
    /// The generation after `previous`: sets equal to one of `previous` are that set.
    pub fn next(model: Model, previous: &Generation) -> Generation {
        let mut next = Generation::new(previous.number + 1, model);
        next.inherited = lock(&previous.sets).clone();
        next
    }

    pub fn new(number: u64, model: Model) -> Generation {
        let by_name = HashMap::from([
            (types::SERVICE, index(&model.services)),
            (types::DESTINATION_RULE, index(&model.destination_rules)),
            (types::VIRTUAL_SERVICE, index(&model.virtual_services)),
        ]);
        Generation {
            number,
            model: Arc::new(model),
            by_name,
            views: Mutex::new(HashMap::new()),
            sets: Mutex::new(HashMap::new()),
            inherited: HashMap::new(),
            deltas: Mutex::new(HashMap::new()),
        }
    }

    pub fn view(&self, key: &ScopeKey) -> Arc<View> {
        let mut views = lock(&self.views);
        if let Some(view) = views.get(key) {
            return view.clone();
        }
        let computed = scope::view(&self.model, key);
        let view = Arc::new(View {
            services: self.shared(computed.services),
            destination_rules: self.shared(computed.destination_rules),
            virtual_services: self.shared(computed.virtual_services),
        });
        views.insert(key.clone(), view.clone());
        view
    }

    /// The one set of this generation equal to `set` (the previous generation's, if equal).
    fn shared(&self, set: Versions) -> Versions {
        let hash = fingerprint(&set);
        let mut sets = lock(&self.sets);
        if let Some(known) = sets.get(&hash).filter(|known| **known == set) {
            return known.clone();
        }
        let chosen = self
            .inherited
            .get(&hash)
            .filter(|old| **old == set)
            .cloned()
            .unwrap_or(set);
        sets.insert(hash, chosen.clone());
        chosen
    }

    fn published(&self, type_url: &str, name: &str) -> Option<&Published> {
        let i = *self.by_name.get(type_url)?.get(name)?;
        let items = match type_url {
            types::SERVICE => &self.model.services,
            types::DESTINATION_RULE => &self.model.destination_rules,
            _ => &self.model.virtual_services,
        };
        items.get(i)
    }

    /// What to send a proxy that holds `has` so that it holds `want`.
    pub fn delta(&self, type_url: &'static str, has: &Versions, want: &Versions) -> Arc<Delta> {
        let key = (
            type_url,
            Arc::as_ptr(has) as usize,
            Arc::as_ptr(want) as usize,
        );
        if let Some((_, _, d)) = lock(&self.deltas).get(&key) {
            return d.clone();
        }
        let mut resources = Vec::new();
        for (name, version) in want.iter() {
            if has.get(name) == Some(version) {
                continue;
            }
            if let Some(p) = self.published(type_url, name) {
                resources.push(Resource {
                    name: name.to_string(),
                    version: version.to_string(),
                    body: p.body.clone(),
                });
            }
        }
        let removed: Vec<String> = has
            .keys()
            .filter(|name| !want.contains_key(*name))
            .map(|n| n.to_string())
            .collect();
        let delta = Arc::new(Delta {
            resources: resources.len(),
            removed: removed.len(),
            encoded: wire::encode_changes(resources, removed),
        });
        lock(&self.deltas).insert(key, (has.clone(), want.clone(), delta.clone()));
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::model::{Kind, MeshSettings, Snapshot};
    use kube::api::DynamicObject;
    use mesh_xds::discovery::DeltaResponse;
    use prost::Message;
    use serde_json::{json, Value};

    fn object(value: Value) -> Arc<DynamicObject> {
        Arc::new(serde_json::from_value(value).expect("object"))
    }

    fn model(weight: u32) -> Model {
        let mut snapshot = Snapshot::default();
        snapshot.objects.insert(
            Kind::Service,
            ["reviews", "ratings"]
                .iter()
                .map(|name| {
                    object(json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": "shop"},
                        "spec": {"clusterIP": "10.96.0.9", "ports": [{"name": "http", "port": 80}]}}))
                })
                .collect(),
        );
        snapshot.objects.insert(
            Kind::VirtualService,
            vec![object(
                json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "reviews", "namespace": "shop"},
                "spec": {"hosts": ["reviews"], "http": [{"route": [
                    {"destination": {"host": "reviews", "subset": "v1"}, "weight": weight},
                    {"destination": {"host": "reviews", "subset": "v2"}, "weight": 100 - weight}]}]}}),
            )],
        );
        Model::build(
            &snapshot,
            &MeshSettings::new("cluster.local", "mesh-system"),
        )
    }

    fn key(namespace: &str) -> ScopeKey {
        ScopeKey {
            namespace: namespace.into(),
            sidecar: None,
            gateways: None,
        }
    }

    #[test]
    fn equal_sets_are_one_set_within_and_across_generations_and_share_their_delta() {
        let first = Generation::new(1, model(90));
        let (a, b) = (first.view(&key("web")), first.view(&key("bank")));
        assert!(
            Arc::ptr_eq(&a.services, &b.services),
            "two namespaces that see the same services share the set"
        );
        assert!(Arc::ptr_eq(&a.virtual_services, &b.virtual_services));

        let same = Generation::next(model(90), &first);
        let again = same.view(&key("web"));
        assert!(
            Arc::ptr_eq(&again.services, &a.services)
                && Arc::ptr_eq(&again.virtual_services, &a.virtual_services),
            "an unchanged set is the previous generation's"
        );

        let changed = Generation::next(model(70), &same);
        let (web, bank) = (changed.view(&key("web")), changed.view(&key("bank")));
        assert!(Arc::ptr_eq(&web.services, &a.services));
        assert!(!Arc::ptr_eq(&web.virtual_services, &a.virtual_services));
        let delta = changed.delta(
            types::VIRTUAL_SERVICE,
            &a.virtual_services,
            &web.virtual_services,
        );
        let other = changed.delta(
            types::VIRTUAL_SERVICE,
            &b.virtual_services,
            &bank.virtual_services,
        );
        assert!(Arc::ptr_eq(&delta, &other), "one delta for every proxy");
        assert_eq!((delta.resources, delta.removed), (1, 0));
        let decoded = DeltaResponse::decode(delta.encoded.clone()).expect("decodes");
        assert_eq!(decoded.resources[0].name, "shop/reviews");
        let body: Value = serde_json::from_slice(&decoded.resources[0].body).expect("JSON");
        assert_eq!(body["http"][0]["route"][0]["weight"], 70);
    }
}
