//! Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas of the
//! operator can run and only one reconciles.
//!
//! kube-runtime 5 has no leader election, so this is a small one in the manner of client-go's:
//! every `retry_period` a candidate reads the Lease; the holder renews `renewTime`; another
//! candidate takes the Lease only when its record has not changed for `lease_duration` as
//! measured on the candidate's own clock (no comparison of clocks across machines). Every write
//! carries the `resourceVersion` it read, so two candidates cannot both win. A leader that
//! cannot renew for `renew_deadline` (shorter than `lease_duration`) steps down before anyone
//! else may take over. On shutdown the leader releases the Lease so a standby takes over at
//! once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::error::is_conflict;

/// Settings of the election.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per replica (the pod name plus a random suffix).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Lease `mesh-operator` in `namespace`: 15 s lease, renewed every 5 s, given up after 10 s
    /// without a successful renewal.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: "mesh-operator".to_owned(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(5),
        }
    }
}

/// `<pod or host name>-<random>`: unique even for two processes on one host.
pub fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "mesh-operator".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}-{:x}{:x}", std::process::id(), nanos)
}

/// One candidate in the election.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The last Lease spec seen and when it was first seen in that state.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    fn record(&self, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let renewing = previous
            .and_then(|p| p.holder_identity.as_deref())
            .is_some_and(|h| h == self.config.identity);
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(15),
            ),
            acquire_time: if renewing {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if renewing || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        }
    }

    /// One round: create, renew or take over the Lease if this candidate may. `Ok(true)` when
    /// this candidate holds the Lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.record(None, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let changed = self.observed.as_ref().is_none_or(|(seen, _)| *seen != spec);
        if changed {
            self.observed = Some((spec.clone(), Instant::now()));
        }
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        if holder != self.config.identity && !holder.is_empty() {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.config.lease_duration, Duration::from_secs);
            let unchanged_since = self
                .observed
                .as_ref()
                .map_or_else(Instant::now, |(_, t)| *t);
            if unchanged_since.elapsed() < duration {
                return Ok(false);
            }
            info!(lease = %self.config.name, previous = holder, "lease expired; taking over");
        }
        let mut updated = lease.clone();
        updated.spec = Some(self.record(Some(&spec), now));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                // Our own write is not a sign of another candidate's life.
                self.observed = Some((written.spec.unwrap_or_default(), Instant::now()));
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this candidate holds it, so a standby need not wait for expiry.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs the election until `shutdown` becomes true, sending `true` on `leading` while this
    /// candidate leads. Releases the Lease on the way out.
    pub async fn run(mut self, leading: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let mut last_renewal: Option<Instant> = None;
        loop {
            let is_leader = *leading.borrow();
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    last_renewal = Some(Instant::now());
                    if !is_leader {
                        info!(identity = %self.config.identity, lease = %self.config.name, "became leader");
                        leading.send_replace(true);
                    }
                }
                Ok(false) => {
                    if is_leader {
                        warn!(identity = %self.config.identity, "lost the lease");
                        leading.send_replace(false);
                    }
                }
                Err(e) => {
                    warn!(error = %e, lease = %self.config.name, "lease round failed");
                    let overdue =
                        last_renewal.is_none_or(|t| t.elapsed() >= self.config.renew_deadline);
                    if is_leader && overdue {
                        warn!(identity = %self.config.identity, "could not renew the lease in time; stepping down");
                        leading.send_replace(false);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        if *leading.borrow() {
            leading.send_replace(false);
            if let Err(e) = self.release().await {
                warn!(error = %e, "could not release the lease");
            } else {
                info!(lease = %self.config.name, "released the lease");
            }
        }
    }
}
