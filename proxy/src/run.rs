//! `mesh-proxy run`: the control thread (config, admin, health, metrics, signals) and the
//! workers (each a single-threaded runtime serving every listener through `SO_REUSEPORT`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};

use crate::admin::{self, Admin, Command, SetLogLevel};
use crate::drain::Drain;
use crate::listener::{bind, Listeners};
use crate::metrics::Metrics;
use crate::store::Store;

/// Where the configuration comes from.
pub enum ConfigSource {
    /// A YAML file, watched for changes.
    File(PathBuf),
    /// meshd, named by the injected environment.
    Meshd,
}

pub struct Options {
    pub source: ConfigSource,
    pub workers: usize,
    pub admin: SocketAddr,
    pub health: SocketAddr,
    pub metrics: SocketAddr,
    /// The proxy's and the application's metrics together (15020 in an injected pod).
    pub merged_metrics: Option<SocketAddr>,
    pub log_level: String,
    pub set_log_level: SetLogLevel,
}

/// Runs until SIGTERM/SIGINT (or `/quitquitquit`) and the drain that follows.
pub fn run(opts: Options) -> anyhow::Result<()> {
    tune_allocator();
    let store = Store::new(Metrics::new());
    let drain = Drain::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    rt.block_on(control(opts, store, drain))
}

async fn control(opts: Options, store: Arc<Store>, drain: Drain) -> anyhow::Result<()> {
    // Health first, so that a probe sees "not ready" rather than "refused" while loading.
    let health = bind(opts.health).with_context(|| format!("health port {}", opts.health))?;
    let metrics = bind(opts.metrics).with_context(|| format!("metrics port {}", opts.metrics))?;
    let admin_listener = bind(opts.admin).with_context(|| format!("admin port {}", opts.admin))?;
    let app = Arc::new(admin::app::App::from_env());
    tokio::spawn(admin::serve_async(
        health,
        admin::health(store.clone(), app.clone()),
    ));
    tokio::spawn(admin::serve(metrics, admin::metrics(store.clone())));
    if let Some(addr) = opts.merged_metrics {
        let merged = bind(addr).with_context(|| format!("merged metrics port {addr}"))?;
        tokio::spawn(admin::serve_async(
            merged,
            admin::merged_metrics(store.clone(), app),
        ));
    }
    let (commands, mut command_rx) = mpsc::unbounded_channel();
    let admin = Admin {
        store: store.clone(),
        commands,
        set_log_level: opts.set_log_level.clone(),
        log_level: Arc::new(std::sync::Mutex::new(opts.log_level.clone())),
        drain: drain.clone(),
    };
    tokio::spawn(admin::serve(admin_listener, admin.handler()));

    match &opts.source {
        ConfigSource::File(path) => {
            if path.exists() {
                crate::config_source::load(path, &store)?;
            } else {
                tracing::warn!(file = %path.display(), "config file not there yet; not ready until it is");
            }
            tokio::spawn(crate::config_source::watch(path.clone(), store.clone()));
        }
        ConfigSource::Meshd => crate::meshd_source::start(store.clone())?,
    }

    let (stop_listening, stop_rx) = watch::channel(false);
    for id in 0..opts.workers.max(1) {
        let (store, drain, stop_rx) = (store.clone(), drain.clone(), stop_rx.clone());
        std::thread::Builder::new()
            .name(format!("worker-{id}"))
            .spawn(move || worker(store, drain, stop_rx))
            .context("starting a worker thread")?;
    }

    // Certificate files are looked at for rotation.
    tokio::spawn(crate::tls::credentials::watch(
        store.shared.credentials.clone(),
    ));

    // Idle upstream connections are closed past their idle timeout.
    let sweeper = store.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(2));
        loop {
            t.tick().await;
            if let Some(s) = sweeper.load() {
                s.sweep_idle();
            }
        }
    });

    // The clock of the HTTP/1.1 fast path's header read timeout.
    tokio::spawn(async {
        let mut t = tokio::time::interval(Duration::from_secs(1));
        loop {
            t.tick().await;
            crate::http::fast::idle::tick();
        }
    });

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    let exit = loop {
        let cmd = tokio::select! {
            _ = term.recv() => Command::Quit,
            _ = int.recv() => Command::Quit,
            c = command_rx.recv() => c.unwrap_or(Command::Quit),
        };
        let timeout = store
            .load()
            .map_or(Duration::from_secs(5), |s| s.drain_timeout);
        if !drain.is_draining() {
            tracing::info!(
                ?timeout,
                "draining: listeners closed, waiting for in-flight requests"
            );
            store.set_draining();
            stop_listening.send_replace(true);
        }
        if cmd == Command::Quit {
            break timeout;
        }
        let d = drain.clone();
        tokio::spawn(async move { d.drain(timeout).await });
    };
    let clean = drain.drain(exit).await;
    if clean {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(
            left = drain.active(),
            "drain timeout; closing the connections left"
        );
    }
    Ok(())
}

fn worker(store: Arc<Store>, drain: Drain, mut stop: watch::Receiver<bool>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("worker runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let mut listeners = Listeners::new(store.clone(), drain);
        let mut changes = store.subscribe();
        if let Some(s) = store.load() {
            listeners.sync(&s);
        }
        loop {
            tokio::select! {
                r = changes.changed() => {
                    if r.is_err() {
                        break;
                    }
                    if let Some(s) = store.load() {
                        listeners.sync(&s);
                    }
                }
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        listeners.close_all();
        // The connections still being served run on this runtime until the process exits.
        std::future::pending::<()>().await;
    });
}

/// glibc malloc tuning for a small, long-running proxy: a fixed mmap threshold, so that the
/// large short-lived buffers of a config parse are unmapped when freed instead of staying in
/// the heap (glibc otherwise raises the threshold after the first such free), and two arenas
/// rather than one per thread.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
