//! The current push generation, handed to every connected proxy's stream, and what each stream
//! reports about its proxy (for `/debug/syncz` and `meshctl proxy-status`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::watch;

use super::generation::Generation;
use super::model::Model;
use super::scope::ProxyNode;

/// Per resource type, where a proxy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SyncState {
    /// It acknowledged exactly what meshd wants it to have.
    #[serde(rename = "SYNCED")]
    Synced,
    /// A push is on its way or was refused; it has an older set.
    #[serde(rename = "STALE")]
    Stale,
    #[serde(rename = "NOT SENT")]
    NotSent,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeStatus {
    pub state: SyncState,
    /// The generation of the set it acknowledged last.
    pub acked_generation: Option<u64>,
    #[serde(with = "unix_seconds")]
    pub acked_at: Option<SystemTime>,
    /// Why it refused the last push (NACK), while that push is the latest.
    pub rejected: Option<String>,
}

mod unix_seconds {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()) {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

/// One connected proxy.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyStatus {
    pub id: u64,
    pub pod: String,
    pub namespace: String,
    pub proxy_version: String,
    pub peer: String,
    #[serde(with = "unix_seconds_required")]
    pub connected_at: SystemTime,
    pub types: Mutex<BTreeMap<&'static str, TypeStatus>>,
}

mod unix_seconds_required {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        s.serialize_f64(secs)
    }
}

impl ProxyStatus {
    pub fn set(&self, type_url: &'static str, status: TypeStatus) {
        let mut types = match self.types.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        types.insert(type_url, status);
    }
}

pub struct Hub {
    generation: watch::Sender<Arc<Generation>>,
    proxies: Mutex<BTreeMap<u64, Arc<ProxyStatus>>>,
    next_id: AtomicU64,
    /// Where this meshd is (its pod name), for proxy-status.
    pub instance: String,
}

impl Hub {
    pub fn new(instance: String) -> Arc<Hub> {
        Arc::new(Hub {
            generation: watch::channel(Arc::new(Generation::new(0, Model::default()))).0,
            proxies: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            instance,
        })
    }

    /// Makes `model` the next generation; every stream wakes and pushes what changed for it.
    pub fn publish(&self, model: Model) -> u64 {
        let next = Generation::next(model, &self.generation.borrow());
        let number = next.number;
        self.generation.send_replace(Arc::new(next));
        number
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Generation>> {
        self.generation.subscribe()
    }

    pub fn current(&self) -> Arc<Generation> {
        self.generation.borrow().clone()
    }

    pub fn connect(
        &self,
        node: &ProxyNode,
        proxy_version: String,
        peer: String,
    ) -> Arc<ProxyStatus> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let status = Arc::new(ProxyStatus {
            id,
            pod: node.pod_name.clone(),
            namespace: node.namespace.clone(),
            proxy_version,
            peer,
            connected_at: SystemTime::now(),
            types: Mutex::new(BTreeMap::new()),
        });
        if let Ok(mut proxies) = self.proxies.lock() {
            proxies.insert(id, status.clone());
        }
        status
    }

    pub fn disconnect(&self, id: u64) {
        if let Ok(mut proxies) = self.proxies.lock() {
            proxies.remove(&id);
        }
    }

    pub fn connected(&self) -> Vec<Arc<ProxyStatus>> {
        match self.proxies.lock() {
            Ok(p) => p.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        }
    }
}
