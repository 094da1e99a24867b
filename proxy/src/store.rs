//! The snapshot in force, swapped atomically. A static file and a control-plane push both end in
//! [`Store::apply`]; requests `load` the current snapshot once and keep it to their end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use mesh_proxy_config::ProxyConfig;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::snapshot::{Shared, Snapshot};

pub struct Store {
    current: ArcSwapOption<Snapshot>,
    changes: watch::Sender<u64>,
    building: Mutex<()>,
    generation: AtomicU64,
    pub metrics: Arc<Metrics>,
    last_error: Mutex<Option<String>>,
    draining: AtomicBool,
    /// The workload's certificates and the telemetry outputs, shared by every snapshot.
    pub shared: Shared,
}

impl Store {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Store> {
        Arc::new(Store {
            current: ArcSwapOption::empty(),
            changes: watch::channel(0).0,
            building: Mutex::new(()),
            generation: AtomicU64::new(0),
            last_error: Mutex::new(None),
            draining: AtomicBool::new(false),
            shared: Shared::new(&metrics),
            metrics,
        })
    }

    /// The snapshot in force, if one was loaded.
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Compiles `config` and puts it in force; requests already running keep theirs.
    pub fn apply(&self, config: ProxyConfig) -> Arc<Snapshot> {
        self.apply_with_source(config, None)
    }

    /// Like [`Store::apply`], keeping the YAML text the config was read from for the dump.
    pub fn apply_with_source(&self, config: ProxyConfig, yaml: Option<Box<str>>) -> Arc<Snapshot> {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let snap = {
            // One build at a time, so that each takes over the state of the one before.
            let _building = self.building.lock().unwrap_or_else(|e| e.into_inner());
            let previous = self.current.load_full();
            // Certificates first: the new snapshot's mTLS uses them from its first connection.
            self.shared
                .credentials
                .configure(config.certificates.as_ref());
            self.shared.sinks.configure(&config);
            Arc::new(Snapshot::build_with(
                config,
                generation,
                self.metrics.clone(),
                previous.as_deref(),
                yaml,
                self.shared.clone(),
            ))
        };
        self.current.store(Some(snap.clone()));
        release_freed_memory();
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Metrics::inc(&self.metrics.server.config_loads_total);
        self.changes.send_replace(generation);
        snap
    }

    /// Puts a snapshot built by hand in force (tests that set filter chains themselves).
    #[cfg(test)]
    pub(crate) fn put(&self, snap: Arc<Snapshot>) {
        self.current.store(Some(snap));
    }

    /// Records a configuration that was refused; the one in force stays.
    pub fn reject(&self, error: String) {
        Metrics::inc(&self.metrics.server.config_load_errors_total);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Woken on every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Ready: a config is loaded, its certificates too (when it has some), and the proxy is
    /// not draining.
    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
            && self.shared.credentials.is_ready()
            && !self.draining.load(Ordering::Acquire)
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// Gives memory freed after a load (the YAML parse, the previous snapshot) back to the OS, so
/// that RSS reflects what the proxy holds rather than what parsing once needed.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
