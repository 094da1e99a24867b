//! The static config file: read at start, then watched. A changed file that parses is put in
//! force; one that does not is reported (file:line, field) and the config in force stays.
//!
//! Watched by polling its metadata every half second rather than with inotify (the `notify`
//! crate): Kubernetes updates a mounted ConfigMap by swapping a symlinked directory, which
//! file-level inotify watches miss, and a stat twice a second costs nothing.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mesh_proxy_config::{ConfigError, ProxyConfig};

use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    mtime: i64,
    mtime_nsec: i64,
    len: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        len: m.len(),
        ino: m.ino(),
    })
}

/// Reads the file and, if valid, puts it in force. Returns the error otherwise.
pub fn load(path: &Path, store: &Store) -> Result<(), ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(source) => {
            let e = ConfigError::Read {
                file: path.display().to_string(),
                source,
            };
            store.reject(e.to_string());
            return Err(e);
        }
    };
    match ProxyConfig::from_yaml(&text, &path.display().to_string()) {
        Ok(cfg) => {
            let snap = store.apply_with_source(cfg, Some(text.into_boxed_str()));
            tracing::info!(file = %path.display(), generation = snap.generation, "config loaded");
            Ok(())
        }
        Err(e) => {
            store.reject(e.to_string());
            Err(e)
        }
    }
}

/// Whether `text` is what the config in force was read from (then a touched file, or a
/// ConfigMap swapped for the same content, needs no reload). Compared with the snapshot's own
/// copy rather than a second one kept here: a large config is then held once.
fn in_force(text: &[u8], store: &Store) -> bool {
    store.load().is_some_and(|s| s.dump.is_yaml(text))
}

/// Watches `path` until the process ends, reloading on change.
pub async fn watch(path: PathBuf, store: Arc<Store>) {
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        if std::fs::read(&path).is_ok_and(|t| in_force(&t, &store)) {
            continue;
        }
        if let Err(e) = load(&path, &store) {
            tracing::error!("config not reloaded, the previous one stays in force: {e}");
            eprintln!("error: config not reloaded, the previous one stays in force: {e}");
        }
    }
}
