//! The CA in force, shared by everything that signs (the webhook certificate, workload
//! certificates) or publishes its roots (webhook caBundles, trust-bundle ConfigMaps), with a
//! notification when it changes (a rotation, a new plug-in CA).

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::Ca;

#[derive(Clone)]
pub struct CaHandle {
    current: Arc<RwLock<Arc<Ca>>>,
    changes: Arc<watch::Sender<u64>>,
}

impl CaHandle {
    pub fn new(ca: Ca) -> CaHandle {
        CaHandle {
            current: Arc::new(RwLock::new(Arc::new(ca))),
            changes: Arc::new(watch::channel(0).0),
        }
    }

    pub fn get(&self) -> Arc<Ca> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, ca: Ca) {
        let ca = Arc::new(ca);
        match self.current.write() {
            Ok(mut guard) => *guard = ca,
            Err(poisoned) => *poisoned.into_inner() = ca,
        }
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// Resolves each time the CA changes after this call.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
