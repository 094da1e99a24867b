//! What the MeshInstall's status says: per component phase and message, the overall phase (the
//! worst component), a `Ready` condition and `observedGeneration`; written only when it changed,
//! with an Event on each change of the overall phase.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource};
use mesh_crds::meshinstall::{ComponentStatus, MeshInstallStatus, Phase};
use mesh_crds::MeshInstall;
use serde_json::{Map, Value};
use tracing::{info, warn};

use super::apply::ApplyReport;
use super::Error;
use crate::Manifest;

/// Type of the condition that sums up the install.
pub const READY: &str = "Ready";

/// How bad a phase is; the overall phase is the worst component's.
fn severity(phase: Phase) -> u8 {
    match phase {
        Phase::Healthy => 0,
        Phase::Pending => 1,
        Phase::Reconciling => 2,
        Phase::Error => 3,
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Reconciling => "Reconciling",
        Phase::Healthy => "Healthy",
        Phase::Error => "Error",
    }
}

/// `Ok` when the Deployment is available: its controller saw the current generation and as
/// many replicas as it wants are updated and ready. Otherwise why not, from its pods.
pub fn deployment_health(deployment: &Deployment, pods: &[Pod]) -> Result<(), String> {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let status = deployment.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed >= generation && ready >= wanted && updated >= wanted {
        return Ok(());
    }
    let mut sorted: Vec<&Pod> = pods.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    if let Some(problem) = sorted.iter().find_map(|p| pod_problem(p)) {
        return Err(problem);
    }
    for condition in status.conditions.iter().flatten() {
        let failing = (condition.type_ == "ReplicaFailure" && condition.status == "True")
            || (condition.type_ == "Progressing" && condition.status == "False");
        if failing {
            let message = condition.message.as_deref().unwrap_or_default();
            return Err(format!("Deployment {name}: {message}"));
        }
    }
    if observed < generation {
        return Err(format!(
            "Deployment {name}: waiting for the rollout of generation {generation} to start"
        ));
    }
    Err(format!(
        "Deployment {name}: {ready}/{wanted} replicas ready, {updated}/{wanted} updated"
    ))
}

/// The first thing keeping a pod from running, in words a person can act on.
pub fn pod_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        if let Some(problem) = container_problem(container) {
            return Some(problem);
        }
    }
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| {
            format!(
                "unschedulable: {}",
                c.message
                    .as_deref()
                    .or(c.reason.as_deref())
                    .unwrap_or("no node fits")
            )
        })
}

fn container_problem(container: &ContainerStatus) -> Option<String> {
    let waiting = container.state.as_ref()?.waiting.as_ref()?;
    let message = waiting.message.as_deref().unwrap_or_default();
    match waiting.reason.as_deref()? {
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => Some(format!(
            "image pull failure: {}: {message}",
            container.image
        )),
        "CrashLoopBackOff" => Some(format!(
            "crash loop: container {} restarted {} times",
            container.name, container.restart_count
        )),
        "CreateContainerConfigError" | "CreateContainerError" => Some(format!(
            "cannot create container {}: {message}",
            container.name
        )),
        _ => None,
    }
}

/// Reads each component's Deployments (and their pods when not available) and combines that
/// with what applying did. Components without Deployments are Healthy once applied.
pub async fn observe(
    client: &Client,
    manifests: &[Manifest],
    report: &ApplyReport,
) -> BTreeMap<String, ComponentStatus> {
    let mut deployments: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for m in manifests {
        let entry = deployments.entry(m.component.status_key()).or_default();
        if m.kind() == "Deployment" {
            entry.push((
                m.namespace().unwrap_or_default().to_owned(),
                m.name().to_owned(),
            ));
        }
    }
    let mut out = BTreeMap::new();
    for (key, owned) in deployments {
        if let Some(message) = report.failed.get(&key) {
            out.insert(
                key,
                ComponentStatus {
                    phase: Phase::Error,
                    message: Some(message.clone()),
                },
            );
            continue;
        }
        let mut problems = Vec::new();
        for (namespace, name) in &owned {
            if let Err(problem) = check_deployment(client, namespace, name).await {
                problems.push(problem);
            }
        }
        let status = if problems.is_empty() {
            ComponentStatus {
                phase: Phase::Healthy,
                message: None,
            }
        } else {
            ComponentStatus {
                phase: Phase::Reconciling,
                message: Some(problems.join("; ")),
            }
        };
        out.insert(key, status);
    }
    out
}

async fn check_deployment(client: &Client, namespace: &str, name: &str) -> Result<(), String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = match deployments.get_opt(name).await {
        Ok(Some(d)) => d,
        Ok(None) => return Err(format!("Deployment {name}: not created yet")),
        Err(e) => return Err(format!("cannot read Deployment {namespace}/{name}: {e}")),
    };
    if deployment_health(&deployment, &[]).is_ok() {
        return Ok(());
    }
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(e) => {
            warn!(deployment = name, error = %e, "cannot list pods");
            Vec::new()
        }
    };
    deployment_health(&deployment, &pods)
}

/// The status for `components`: the overall phase is the worst one (Healthy when there is
/// nothing to install), with a `Ready` condition that keeps its transition time while its
/// status stays the same.
pub fn summarize(
    components: BTreeMap<String, ComponentStatus>,
    generation: Option<i64>,
    previous: Option<&MeshInstallStatus>,
) -> MeshInstallStatus {
    let phase = components
        .values()
        .map(|c| c.phase)
        .max_by_key(|p| severity(*p))
        .unwrap_or(Phase::Healthy);
    let (reason, message) = match phase {
        Phase::Healthy => ("Healthy", "every component is healthy".to_owned()),
        other => {
            let message = components
                .iter()
                .filter(|(_, c)| c.phase != Phase::Healthy)
                .map(|(k, c)| match &c.message {
                    Some(m) => format!("{k}: {m}"),
                    None => format!("{k}: {}", phase_name(c.phase)),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let reason = match other {
                Phase::Error => "ApplyFailed",
                Phase::Pending => "Pending",
                _ => "Reconciling",
            };
            (reason, message)
        }
    };
    MeshInstallStatus {
        phase: Some(phase),
        conditions: vec![ready_condition(
            phase == Phase::Healthy,
            reason,
            message,
            generation,
            previous,
        )],
        components,
        observed_generation: generation,
    }
}

/// The status of a MeshInstall whose spec cannot be resolved: Error with the reason; the
/// component statuses stay as they were (nothing was applied or removed).
pub fn invalid(
    message: String,
    generation: Option<i64>,
    previous: Option<&MeshInstallStatus>,
) -> MeshInstallStatus {
    MeshInstallStatus {
        phase: Some(Phase::Error),
        components: previous.map(|p| p.components.clone()).unwrap_or_default(),
        conditions: vec![ready_condition(
            false,
            "InvalidSpec",
            message,
            generation,
            previous,
        )],
        observed_generation: generation,
    }
}

fn ready_condition(
    ready: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    previous: Option<&MeshInstallStatus>,
) -> Condition {
    let status = if ready { "True" } else { "False" };
    let last_transition_time = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == READY))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The merge patch taking `old` to `new`: whatever `old` has and `new` lacks (a component that
/// went away, a message that no longer applies) is set to null, since a merge patch would
/// otherwise keep it.
pub fn status_patch(
    old: Option<&MeshInstallStatus>,
    new: &MeshInstallStatus,
) -> Result<Value, Error> {
    let new = serde_json::to_value(new)?;
    let old = match old {
        Some(o) => serde_json::to_value(o)?,
        None => Value::Null,
    };
    let mut patch = Map::new();
    patch.insert("status".to_owned(), merge_diff(&old, new));
    Ok(Value::Object(patch))
}

/// `new`, with a null for every key of `old` (recursively through objects) that `new` lacks.
fn merge_diff(old: &Value, new: Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(mut new)) => {
            for (key, old_value) in old {
                match new.remove(key) {
                    Some(new_value) => {
                        let merged = merge_diff(old_value, new_value);
                        new.insert(key.clone(), merged);
                    }
                    None => {
                        new.insert(key.clone(), Value::Null);
                    }
                }
            }
            Value::Object(new)
        }
        (_, new) => new,
    }
}

/// Writes `new` to the status subresource when it differs from what the object has, and emits
/// an Event when the overall phase changed. Returns whether anything was written.
pub async fn publish(
    client: &Client,
    recorder: &Recorder,
    install: &MeshInstall,
    new: MeshInstallStatus,
) -> Result<bool, Error> {
    let old = install.status.as_ref();
    if old == Some(&new) {
        return Ok(false);
    }
    let name = install
        .metadata
        .name
        .as_deref()
        .ok_or(Error::MissingMetadata("name"))?;
    let namespace = install
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<MeshInstall> = Api::namespaced(client.clone(), namespace);
    let patch = status_patch(old, &new)?;
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            Error::kube(
                "write status of",
                format!("MeshInstall {namespace}/{name}"),
                e,
            )
        })?;

    let old_phase = old.and_then(|o| o.phase);
    if old_phase != new.phase {
        let phase = new.phase.unwrap_or_default();
        let note = new
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .map(|c| truncate(&c.message, 1000));
        info!(meshinstall = %format!("{namespace}/{name}"), phase = phase_name(phase), "phase changed");
        let event = Event {
            type_: if phase == Phase::Error {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: phase_name(phase).to_owned(),
            note,
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &install.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
    Ok(true)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The overall phase a MeshInstall's status shows.
pub fn phase_of(install: &MeshInstall) -> Option<Phase> {
    install.status.as_ref().and_then(|s| s.phase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    fn deployment(replicas: i32, ready: i32, generation: i64, observed: i64) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "meshd", "generation": generation},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "meshd"}},
                     "template": {}},
            "status": {"readyReplicas": ready, "updatedReplicas": ready,
                       "observedGeneration": observed}
        }))
        .unwrap()
    }

    #[test]
    fn available_deployment_is_healthy() {
        assert_eq!(deployment_health(&deployment(2, 2, 3, 3), &[]), Ok(()));
        assert!(deployment_health(&deployment(2, 2, 4, 3), &[]).is_err());
        assert!(deployment_health(&deployment(2, 1, 3, 3), &[]).is_err());
    }

    #[test]
    fn image_pull_failure_names_the_image() {
        let p = pod(json!({"containerStatuses": [{
            "name": "meshd", "image": "ghcr.io/meshctl/meshd:nope", "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff",
                                   "message": "Back-off pulling image"}}}]}));
        assert_eq!(
            deployment_health(&deployment(1, 0, 1, 1), &[p]),
            Err("image pull failure: ghcr.io/meshctl/meshd:nope: Back-off pulling image".into())
        );
    }

    #[test]
    fn crash_loop_counts_restarts() {
        let p = pod(json!({"containerStatuses": [{
            "name": "discovery", "image": "x", "imageID": "", "ready": false, "restartCount": 7,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}));
        assert_eq!(
            pod_problem(&p).as_deref(),
            Some("crash loop: container discovery restarted 7 times")
        );
    }

    #[test]
    fn unschedulable_pod() {
        let p = pod(
            json!({"conditions": [{"type": "PodScheduled", "status": "False",
            "message": "0/2 nodes are available: 2 Insufficient cpu."}]}),
        );
        assert_eq!(
            pod_problem(&p).as_deref(),
            Some("unschedulable: 0/2 nodes are available: 2 Insufficient cpu.")
        );
    }

    #[test]
    fn overall_phase_is_the_worst() {
        let mut c = BTreeMap::new();
        c.insert(
            "base".into(),
            ComponentStatus {
                phase: Phase::Healthy,
                message: None,
            },
        );
        c.insert(
            "controlPlane".into(),
            ComponentStatus {
                phase: Phase::Reconciling,
                message: Some("crash loop".into()),
            },
        );
        let s = summarize(c.clone(), Some(2), None);
        assert_eq!(s.phase, Some(Phase::Reconciling));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.conditions[0].status, "False");
        assert_eq!(s.conditions[0].message, "controlPlane: crash loop");
        c.insert(
            "addon/kiali".into(),
            ComponentStatus {
                phase: Phase::Error,
                message: Some("missing permission".into()),
            },
        );
        assert_eq!(summarize(c, Some(2), None).phase, Some(Phase::Error));
        assert_eq!(
            summarize(BTreeMap::new(), None, None).phase,
            Some(Phase::Healthy)
        );
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let mut c = BTreeMap::new();
        c.insert(
            "base".into(),
            ComponentStatus {
                phase: Phase::Healthy,
                message: None,
            },
        );
        let mut first = summarize(c.clone(), Some(1), None);
        first.conditions[0].last_transition_time = Time(Timestamp::UNIX_EPOCH);
        let second = summarize(c, Some(1), Some(&first));
        assert_eq!(first, second);
    }

    #[test]
    fn patch_removes_vanished_components() {
        let mut old = MeshInstallStatus::default();
        old.components
            .insert("egressGateway/x".into(), ComponentStatus::default());
        old.components
            .insert("base".into(), ComponentStatus::default());
        let mut new = MeshInstallStatus::default();
        new.components
            .insert("base".into(), ComponentStatus::default());
        old.components.insert(
            "controlPlane".into(),
            ComponentStatus {
                phase: Phase::Reconciling,
                message: Some("crash loop".into()),
            },
        );
        new.components
            .insert("controlPlane".into(), ComponentStatus::default());
        let patch = status_patch(Some(&old), &new).unwrap();
        assert_eq!(
            patch["status"]["components"]["egressGateway/x"],
            Value::Null
        );
        assert!(patch["status"]["components"]["base"].is_object());
        assert_eq!(
            patch["status"]["components"]["controlPlane"]["message"],
            Value::Null
        );
        assert_eq!(
            patch["status"]["components"]["controlPlane"]["phase"],
            "Pending"
        );
    }
}
