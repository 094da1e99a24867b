//! One push generation: a built [`Model`] with the views of it computed so far, and the delta
//! responses computed so far, so that proxies sharing a scope share the work and the bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use mesh_xds::discovery::Resource;
use mesh_xds::types;

use super::model::{Model, Published};
use super::scope::{self, ScopeKey, View};

/// Names → versions of what a proxy holds or should hold, for one type.
pub type Versions = Arc<BTreeMap<Arc<str>, Arc<str>>>;

/// The set a fresh proxy holds; one shared value so that first pushes share their diff.
pub static NOTHING: LazyLock<Versions> = LazyLock::new(|| Arc::new(BTreeMap::new()));

/// The resources that turn one set into another.
#[derive(Debug, Default)]
pub struct Delta {
    pub resources: Vec<Resource>,
    pub removed: Vec<String>,
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

impl Generation {
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
            deltas: Mutex::new(HashMap::new()),
        }
    }

    pub fn view(&self, key: &ScopeKey) -> Arc<View> {
        let mut views = match self.views.lock() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        };
        views
            .entry(key.clone())
            .or_insert_with(|| Arc::new(scope::view(&self.model, key)))
            .clone()
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
        if let Ok(deltas) = self.deltas.lock() {
            if let Some((_, _, d)) = deltas.get(&key) {
                return d.clone();
            }
        }
        let mut delta = Delta::default();
        for (name, version) in want.iter() {
            if has.get(name) == Some(version) {
                continue;
            }
            if let Some(p) = self.published(type_url, name) {
                delta.resources.push(Resource {
                    name: name.to_string(),
                    version: version.to_string(),
                    body: p.body.clone(),
                });
            }
        }
        delta.removed = has
            .keys()
            .filter(|name| !want.contains_key(*name))
            .map(|n| n.to_string())
            .collect();
        let delta = Arc::new(delta);
        if let Ok(mut deltas) = self.deltas.lock() {
            deltas.insert(key, (has.clone(), want.clone(), delta.clone()));
        }
        delta
    }
}
