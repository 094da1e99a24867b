//! Taking an injection out again, so that re-injecting replaces it instead of stacking a second
//! sidecar. Works on our injections (of any template or revision) and on Istio's: both describe
//! what they added in the `sidecar.istio.io/status` annotation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::names::*;
use crate::{probes, prometheus};

/// The `sidecar.istio.io/status` annotation: Istio's fields (Kiali reads `containers`), plus the
/// labels and annotations we added so they can be removed exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub init_containers: Vec<String>,
    #[serde(default)]
    pub containers: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub image_pull_secrets: Option<Vec<String>>,
    #[serde(default)]
    pub revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Vec<String>>,
}

fn named(list: &Value, name: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .any(|c| c["name"].as_str() == Some(name))
}

/// The status of the injection in this pod template, if it has one. A proxy container without
/// a status (injected by hand or by a tool that lost it) counts as Istio's default injection.
pub fn status_of(meta: &Value, spec: &Value) -> Option<Status> {
    if let Some(text) = meta["annotations"][ANNOTATION_STATUS].as_str() {
        if let Ok(status) = serde_json::from_str::<Status>(text) {
            return Some(status);
        }
    }
    if !named(&spec["containers"], PROXY_CONTAINER) {
        return None;
    }
    Some(Status {
        init_containers: vec![INIT_CONTAINER.to_owned()],
        containers: vec![PROXY_CONTAINER.to_owned()],
        volumes: crate::sidecar::volume_names(),
        ..Status::default()
    })
}

fn env_json(container: &Value, name: &str) -> Option<Map<String, Value>> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))?["value"]
        .as_str()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|v| v.as_object().cloned())
}

fn remove_named(spec: &mut Value, field: &str, names: &[String]) {
    let Some(list) = spec.get_mut(field).and_then(Value::as_array_mut) else {
        return;
    };
    list.retain(|item| {
        !item["name"]
            .as_str()
            .is_some_and(|n| names.iter().any(|x| x == n))
    });
    if list.is_empty() {
        if let Some(obj) = spec.as_object_mut() {
            obj.shift_remove(field);
        }
    }
}

fn remove_keys(meta: &mut Value, field: &str, keys: &[String]) {
    let Some(map) = meta.get_mut(field).and_then(Value::as_object_mut) else {
        return;
    };
    for key in keys {
        map.shift_remove(key);
    }
    if map.is_empty() {
        if let Some(obj) = meta.as_object_mut() {
            obj.shift_remove(field);
        }
    }
}

/// Removes the injection from a pod template's metadata and spec; false when there was none.
pub fn uninject(meta: &mut Value, spec: &mut Value) -> bool {
    let Some(status) = status_of(meta, spec) else {
        return false;
    };
    let proxy = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| status.containers.iter().any(|x| x == n))
        })
        .cloned()
        .unwrap_or(Value::Null);
    let probers = env_json(&proxy, ENV_APP_PROBERS).unwrap_or_default();
    let app_scrape = env_json(&proxy, ENV_PROMETHEUS_ANNOTATIONS);

    remove_named(spec, "containers", &status.containers);
    remove_named(spec, "initContainers", &status.init_containers);
    remove_named(spec, "volumes", &status.volumes);
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        probes::restore(containers, &probers);
    }

    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        if prometheus::is_merged(annotations) {
            prometheus::unmerge(annotations, app_scrape.as_ref());
        }
    }
    let mut annotations = status
        .annotations
        .clone()
        .unwrap_or_else(|| vec![ANNOTATION_DEFAULT_CONTAINER.to_owned()]);
    annotations.push(ANNOTATION_STATUS.to_owned());
    remove_keys(meta, "annotations", &annotations);
    let labels = status
        .labels
        .clone()
        .unwrap_or_else(|| vec![LABEL_TLS_MODE.to_owned()]);
    remove_keys(meta, "labels", &labels);
    true
}
