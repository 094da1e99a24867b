//! Injecting one pod template: decide, take out an earlier injection, add the sidecar.

use serde_json::{json, Map, Value};

use crate::config::InjectConfig;
use crate::decide::{decide, Decision};
use crate::error::InjectError;
use crate::names::*;
use crate::prometheus::{self, Merge};
use crate::sidecar::{self, ProxyFacts};
use crate::uninject::{self, Status};
use crate::{probes, traffic};

/// The workload a pod template belongs to, for messages and the proxy's identity.
pub struct Target<'a> {
    /// `Kind namespace/name`.
    pub resource: &'a str,
    /// The workload's name (a Deployment's, not its pods').
    pub workload_name: &'a str,
    pub namespace: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodOutcome {
    Injected,
    Skipped(String),
}

fn object<'a>(parent: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !parent[key].is_object() {
        parent[key] = json!({});
    }
    match parent[key].as_object_mut() {
        Some(map) => map,
        None => unreachable!("just made an object"),
    }
}

/// Sets `key` unless present; true when it was added.
fn add_if_absent(map: &mut Map<String, Value>, key: &str, value: &str) -> bool {
    if map.contains_key(key) {
        return false;
    }
    map.insert(key.to_owned(), json!(value));
    true
}

/// Injects `meta`/`spec` in place. On error they may be half-changed: callers work on a copy.
pub fn inject_pod(
    meta: &mut Value,
    spec: &mut Value,
    target: &Target,
    config: &InjectConfig,
) -> Result<PodOutcome, InjectError> {
    if let Decision::Skip(why) = decide(meta, spec, target.namespace, &config.policy) {
        return Ok(PodOutcome::Skipped(why));
    }
    if spec["containers"].as_array().is_none_or(Vec::is_empty) {
        return Err(InjectError::Field {
            resource: target.resource.to_owned(),
            field: "spec.containers".to_owned(),
            message: "a pod needs at least one container".to_owned(),
        });
    }
    uninject::uninject(meta, spec);

    let annotations = meta["annotations"].clone();
    let args = traffic::iptables_args(&annotations, target.resource)?;
    let resources = sidecar::resources(config, &annotations, target.resource)?;
    let image = sidecar::proxy_image(config, &annotations);
    let ours = sidecar::volume_names();
    if let Some(taken) = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .find(|n| ours.iter().any(|o| o == n))
    {
        return Err(InjectError::Field {
            resource: target.resource.to_owned(),
            field: format!("spec.volumes[{taken}]"),
            message: format!("the name {taken:?} is the sidecar's; rename the workload's volume"),
        });
    }

    let containers = spec["containers"]
        .as_array_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut containers = containers;
    let app_containers: Vec<String> = containers
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let app_ports: Vec<Value> = containers
        .iter()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .collect();
    let probers = if annotations[ANNOTATION_REWRITE_PROBES].as_str() == Some("false") {
        Map::new()
    } else {
        probes::rewrite(&mut containers)
    };

    let mut added_annotations = Vec::new();
    let annotation_map = object(meta, "annotations");
    let app_scrape = match prometheus::merge(annotation_map) {
        Merge::Merged { app } => app,
        Merge::Untouched => None,
    };
    if let Some(first) = app_containers.first() {
        if add_if_absent(annotation_map, ANNOTATION_DEFAULT_CONTAINER, first) {
            added_annotations.push(ANNOTATION_DEFAULT_CONTAINER.to_owned());
        }
    }
    for (key, value) in &config.policy.injected_annotations {
        if add_if_absent(annotation_map, key, value.as_str().unwrap_or_default()) {
            added_annotations.push(key.clone());
        }
    }

    let mut added_labels = Vec::new();
    let labels = object(meta, "labels");
    let label = |key: &str| labels.get(key).and_then(Value::as_str).map(str::to_owned);
    let canonical_name = label("app.kubernetes.io/name")
        .or_else(|| label("app"))
        .unwrap_or_else(|| target.workload_name.to_owned());
    let canonical_revision = label("app.kubernetes.io/version")
        .or_else(|| label("version"))
        .unwrap_or_else(|| "latest".to_owned());
    for (key, value) in [
        (LABEL_TLS_MODE, "istio"),
        (LABEL_CANONICAL_NAME, canonical_name.as_str()),
        (LABEL_CANONICAL_REVISION, canonical_revision.as_str()),
    ] {
        if add_if_absent(labels, key, value) {
            added_labels.push(key.to_owned());
        }
    }

    let proxy = sidecar::proxy_container(
        config,
        &image,
        &resources,
        ProxyFacts {
            workload_name: target.workload_name,
            app_containers,
            app_ports,
            probers,
            app_scrape,
        },
    );
    if config.values.hold_application_until_proxy_starts {
        containers.insert(0, proxy);
    } else {
        containers.push(proxy);
    }
    spec["containers"] = Value::Array(containers);
    // Last, so the workload's own init containers still reach the network before capture.
    let init = sidecar::init_container(config, &image, args, &resources);
    match spec["initContainers"].as_array_mut() {
        Some(list) => list.push(init),
        None => spec["initContainers"] = json!([init]),
    }
    match spec["volumes"].as_array_mut() {
        Some(list) => list.extend(sidecar::volumes()),
        None => spec["volumes"] = Value::Array(sidecar::volumes()),
    }

    let status = Status {
        init_containers: vec![INIT_CONTAINER.to_owned()],
        containers: vec![PROXY_CONTAINER.to_owned()],
        volumes: ours,
        image_pull_secrets: None,
        revision: config.values.revision.clone(),
        labels: Some(added_labels),
        annotations: Some(added_annotations),
    };
    let status = serde_json::to_string(&status).map_err(|e| InjectError::Field {
        resource: target.resource.to_owned(),
        field: "metadata.annotations".to_owned(),
        message: e.to_string(),
    })?;
    object(meta, "annotations").insert(ANNOTATION_STATUS.to_owned(), json!(status));
    Ok(PodOutcome::Injected)
}
