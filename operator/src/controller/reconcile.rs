//! The MeshInstall controller: kube-runtime's `Controller` over MeshInstalls, triggered also by
//! any change to an object they own (drift repair), with a finalizer that uninstalls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{
    Action, Config as RuntimeConfig, Controller, Error as ControllerError,
};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalized};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use mesh_crds::MeshInstall;
use tracing::{debug, info, warn};

use super::apply::apply;
use super::kinds::RENDERED;
use super::metrics::Metrics;
use super::prune::{delete_all, prune, Owner};
use super::{spec, status, Error, FINALIZER, LABEL_MANAGED_BY, MANAGED_BY, PURGE_ANNOTATION};
use crate::render::{render, LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE};

/// Requeue interval while an install is not Healthy: pod readiness can change without an event
/// the controller watches.
pub const REQUEUE_NOT_HEALTHY: Duration = Duration::from_secs(30);
/// Requeue interval of a Healthy install, to repair drift no watch saw.
pub const REQUEUE_HEALTHY: Duration = Duration::from_secs(300);
/// First and largest delay after a failed reconcile; doubles per failure in a row.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What the controller watches and how it writes.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Field manager of server-side applies.
    pub field_manager: String,
    /// Only MeshInstalls in this namespace (and objects they own); all namespaces when `None`.
    pub namespace: Option<String>,
    /// Name of this replica in Events.
    pub instance: Option<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            field_manager: super::FIELD_MANAGER.to_owned(),
            namespace: None,
            instance: None,
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub field_manager: String,
    /// Failures in a row per MeshInstall, for the backoff.
    failures: Mutex<HashMap<ObjectRef<MeshInstall>, u32>>,
}

impl Context {
    pub fn new(client: Client, config: &ControllerConfig, metrics: Metrics) -> Context {
        let reporter = Reporter {
            controller: "mesh-operator".to_owned(),
            instance: config.instance.clone(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            field_manager: config.field_manager.clone(),
            failures: Mutex::default(),
        }
    }

    fn reset_failures(&self, key: &ObjectRef<MeshInstall>) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }

    /// The delay before retrying after one more failure: 1 s, 2 s, 4 s, … capped at 5 min.
    fn next_backoff(&self, key: ObjectRef<MeshInstall>) -> Duration {
        let failures = match self.failures.lock() {
            Ok(mut map) => {
                let n = map.entry(key).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        backoff(failures)
    }
}

/// Delay after `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1u32 << exp).min(BACKOFF_MAX)
}

/// The MeshInstall an owned object points back to through its owner labels.
fn owner_of(meta: PartialObjectMeta<DynamicObject>) -> Option<ObjectRef<MeshInstall>> {
    let labels = meta.metadata.labels.as_ref()?;
    let name = labels.get(LABEL_OWNER_NAME)?;
    let namespace = labels.get(LABEL_OWNER_NAMESPACE)?;
    Some(ObjectRef::new(name).within(namespace))
}

/// The controller with every watch set up, not yet running.
pub fn controller(client: &Client, config: &ControllerConfig) -> Controller<MeshInstall> {
    let installs: Api<MeshInstall> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY}");
    if let Some(ns) = &config.namespace {
        selector.push_str(&format!(",{LABEL_OWNER_NAMESPACE}={ns}"));
    }
    let mut controller = Controller::new(installs, watcher::Config::default())
        .with_config(RuntimeConfig::default().debounce(Duration::from_millis(500)));
    for kind in RENDERED {
        let resource = kind.api_resource();
        // Metadata only: the mapper needs the owner labels, nothing else.
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client.clone(), &resource);
        controller = controller.watches_with(
            api,
            resource,
            watcher::Config::default().labels(&selector),
            owner_of,
        );
    }
    controller
}

/// Runs the controller until `shutdown` resolves (in-flight reconciles finish first). The
/// stream items are logged; the future ends when the controller has stopped.
pub fn run_controller(
    client: Client,
    config: ControllerConfig,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl std::future::Future<Output = ()> + Send {
    let context = Arc::new(Context::new(client.clone(), &config, metrics));
    let stream = controller(&client, &config)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context);
    drain(stream)
}

async fn drain<S, T>(stream: S)
where
    S: Stream<Item = Result<T, ControllerError<Error, watcher::Error>>> + Send,
    T: std::fmt::Debug,
{
    stream
        .for_each(|result| async move {
            match result {
                Ok(done) => debug!(?done, "reconciled"),
                // error_policy has logged it.
                Err(ControllerError::ReconcilerFailed(e, obj)) => {
                    debug!(error = %e, object = %obj, "reconcile failed")
                }
                // An owned object changed after its MeshInstall was deleted: expected.
                Err(ControllerError::ObjectNotFound(obj)) => {
                    debug!(object = %obj, "MeshInstall gone")
                }
                Err(e) => warn!(error = %e, "controller"),
            }
        })
        .await;
    info!("controller stopped");
}

/// One reconcile of one MeshInstall, through the finalizer.
pub async fn reconcile(install: Arc<MeshInstall>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let key = ObjectRef::from_obj(&*install);
    let namespace = install
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<MeshInstall> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, install, |event| async {
        match event {
            Finalized::Apply(install) => apply_install(&install, &ctx).await,
            Finalized::Cleanup(install) => cleanup(&install, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .observe_reconcile(started.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.reset_failures(&key);
    }
    result
}

/// Retries a failed reconcile after a per-object exponential backoff.
pub fn error_policy(install: Arc<MeshInstall>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_backoff(ObjectRef::from_obj(&*install));
    warn!(
        meshinstall = %spec::origin(&install),
        error = %error,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

fn owner(install: &MeshInstall) -> Result<Owner, Error> {
    Ok(Owner {
        name: install
            .metadata
            .name
            .clone()
            .ok_or(Error::MissingMetadata("name"))?,
        namespace: install
            .metadata
            .namespace
            .clone()
            .ok_or(Error::MissingMetadata("namespace"))?,
    })
}

fn purge(install: &MeshInstall) -> bool {
    install
        .annotations()
        .get(PURGE_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Render, apply, prune, report.
async fn apply_install(install: &MeshInstall, ctx: &Context) -> Result<Action, Error> {
    let owner = owner(install)?;
    let generation = install.metadata.generation;
    let merged = match spec::resolve(install) {
        Ok(m) => m,
        Err(e) => {
            // Nothing to apply until the spec changes; the status says why.
            warn!(meshinstall = %spec::origin(install), error = %e, "invalid spec");
            let new = status::invalid(e.to_string(), generation, install.status.as_ref());
            status::publish(&ctx.client, &ctx.recorder, install, new).await?;
            return Ok(Action::requeue(REQUEUE_HEALTHY));
        }
    };
    let manifests = render(&merged);
    let report = apply(&ctx.client, &manifests, &ctx.field_manager).await;
    let pruned = prune(&ctx.client, &owner, &manifests, purge(install)).await;
    let components = status::observe(&ctx.client, &manifests, &report).await;
    let new = status::summarize(components, generation, install.status.as_ref());
    let healthy = new.phase == Some(mesh_crds::meshinstall::Phase::Healthy);
    status::publish(&ctx.client, &ctx.recorder, install, new).await?;

    if let Some((key, message)) = report.failed.iter().next() {
        return Err(Error::ApplyFailed {
            count: report.failed.len(),
            first: format!("{key}: {message}"),
        });
    }
    pruned?;
    Ok(Action::requeue(if healthy {
        REQUEUE_HEALTHY
    } else {
        REQUEUE_NOT_HEALTHY
    }))
}

/// The MeshInstall is being deleted: delete everything it owns (CRDs and namespaces only with
/// the purge annotation), then the finalizer lets it go.
async fn cleanup(install: &MeshInstall, ctx: &Context) -> Result<Action, Error> {
    let owner = owner(install)?;
    let deleted = delete_all(&ctx.client, &owner, purge(install)).await?;
    info!(
        meshinstall = %spec::origin(install),
        objects = deleted.len(),
        "uninstalled"
    );
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(9), Duration::from_secs(256));
        assert_eq!(backoff(10), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
