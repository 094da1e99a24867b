//! The whole operator: the metrics server, the wait for the API server, and the controller,
//! either always (no leader election) or while this replica holds the Lease.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use super::http;
use super::leader::{Elector, LeaseConfig};
use super::metrics::Metrics;
use super::reconcile::{run_controller, ControllerConfig};
use super::Error;

/// How long a controller that must stop (lease lost, shutdown) may finish its reconciles.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Everything `mesh-operator` is started with.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    pub controller: ControllerConfig,
    /// `None`: no election, this process always reconciles.
    pub leader_election: Option<LeaseConfig>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None`: not served.
    pub metrics_addr: Option<SocketAddr>,
}

/// Runs until `shutdown` turns true. Fails only when the metrics address cannot be bound.
pub async fn run(
    client: Client,
    config: RunConfig,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let server = match config.metrics_addr {
        Some(addr) => {
            let listener = http::bind(addr).await?;
            let stop = became_true(shutdown.clone());
            Some(tokio::spawn(http::serve_on(
                listener,
                metrics.clone(),
                stop,
            )))
        }
        None => None,
    };

    if wait_for_apiserver(&client, &metrics, shutdown.clone()).await {
        metrics.loop_running.store(true, Ordering::Relaxed);
        match config.leader_election {
            None => {
                metrics.set_leader(true);
                let stop = became_true(shutdown.clone());
                lead(
                    &client,
                    &config.controller,
                    &metrics,
                    stop,
                    observe_true(shutdown.clone()),
                )
                .await;
                metrics.set_leader(false);
            }
            Some(lease) => {
                elect_and_lead(&client, &config.controller, &metrics, lease, shutdown).await
            }
        }
        metrics.loop_running.store(false, Ordering::Relaxed);
    }

    if let Some(server) = server {
        let _ = server.await;
    }
    info!("stopped");
    Ok(())
}

/// Waits until the API server answers; `false` if shutdown came first.
async fn wait_for_apiserver(
    client: &Client,
    metrics: &Metrics,
    mut shutdown: watch::Receiver<bool>,
) -> bool {
    loop {
        match client.apiserver_version().await {
            Ok(version) => {
                info!(version = %version.git_version, "API server answered");
                metrics.apiserver_seen.store(true, Ordering::Relaxed);
                return true;
            }
            Err(e) => warn!(error = %e, "API server not reachable yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.wait_for(|s| *s) => return false,
        }
    }
}

async fn elect_and_lead(
    client: &Client,
    controller: &ControllerConfig,
    metrics: &Metrics,
    lease: LeaseConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let (leading_tx, mut leading) = watch::channel(false);
    let (elector_stop, elector_stop_rx) = watch::channel(false);
    let identity = lease.identity.clone();
    info!(%identity, lease = %lease.name, namespace = %lease.namespace, "standing for leader");
    let elector =
        tokio::spawn(Elector::new(client.clone(), lease).run(leading_tx, elector_stop_rx));
    loop {
        tokio::select! {
            res = leading.wait_for(|l| *l) => if res.is_err() { break },
            _ = shutdown.wait_for(|s| *s) => break,
        }
        metrics.set_leader(true);
        let stop = either_signal(leading.clone(), shutdown.clone());
        lead(
            client,
            controller,
            metrics,
            stop,
            either_observer(leading.clone(), shutdown.clone()),
        )
        .await;
        metrics.set_leader(false);
        if *shutdown.borrow() {
            break;
        }
    }
    // The controller has stopped: only now may a standby take over.
    elector_stop.send_replace(true);
    let _ = elector.await;
}

/// Runs the controller until `stop` resolves, bounding its graceful stop by [`STOP_GRACE`].
async fn lead(
    client: &Client,
    config: &ControllerConfig,
    metrics: &Metrics,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
    stop_observer: impl Future<Output = ()> + Send,
) {
    info!("starting the controller");
    let controller = run_controller(client.clone(), config.clone(), metrics.clone(), stop);
    tokio::pin!(controller);
    tokio::select! {
        _ = &mut controller => return,
        _ = stop_observer => {}
    }
    if tokio::time::timeout(STOP_GRACE, controller).await.is_err() {
        warn!(grace = ?STOP_GRACE, "controller did not stop in time; dropping it");
    }
}

/// A `Send + Sync` future that resolves once `rx` holds `true` (or its sender is gone).
fn became_true(rx: watch::Receiver<bool>) -> impl Future<Output = ()> + Send + Sync + 'static {
    relay(observe_true(rx))
}

async fn observe_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Resolves when leadership is lost or shutdown is asked for.
fn either_signal(
    leading: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    relay(either_observer(leading, shutdown))
}

async fn either_observer(mut leading: watch::Receiver<bool>, mut shutdown: watch::Receiver<bool>) {
    tokio::select! {
        _ = leading.wait_for(|l| !*l) => {}
        _ = shutdown.wait_for(|s| *s) => {}
    }
}

/// Runs `fut` on a task and resolves when it has; the returned future is `Sync`, as
/// kube-runtime's shutdown triggers must be.
fn relay(
    fut: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    tokio::spawn(async move {
        fut.await;
        let _ = tx.send(());
    });
    async move {
        let _ = rx.await;
    }
}
