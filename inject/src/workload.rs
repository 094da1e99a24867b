//! Any Kubernetes object in, the same object out with its pod template injected when it is a
//! workload; every other field and kind untouched.

use serde_json::Value;

use crate::config::InjectConfig;
use crate::error::InjectError;
use crate::pod::{inject_pod, PodOutcome, Target};

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Injected,
    /// A workload left alone, and why.
    Skipped(String),
    /// Not a workload (a Service, a ConfigMap, a CRD, ...): passed through.
    NotWorkload,
    /// Has a pod template, but its kind is not one we know how to inject: passed through.
    UnknownWorkload,
}

/// Where the pod template of each workload kind is.
fn template_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&[]),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some(&["spec", "template"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

/// `Kind namespace/name`, how messages name an object.
pub fn resource_name(object: &Value, namespace: Option<&str>) -> String {
    let kind = object["kind"].as_str().unwrap_or("object");
    let meta = &object["metadata"];
    let name = meta["name"]
        .as_str()
        .or_else(|| meta["generateName"].as_str())
        .unwrap_or("<unnamed>");
    match meta["namespace"].as_str().or(namespace) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The workload's own name: a pod made by a ReplicaSet of a Deployment is named after the
/// Deployment (`web-5d7b4547c6-x2x9q` → `web`), like Istio's workload name.
pub fn workload_name(object: &Value) -> String {
    let meta = &object["metadata"];
    if let Some(name) = meta["name"].as_str().filter(|n| !n.is_empty()) {
        if object["kind"] != "Pod" {
            return name.to_owned();
        }
    }
    let base = meta["generateName"]
        .as_str()
        .map(|g| g.trim_end_matches('-'))
        .or_else(|| meta["name"].as_str())
        .unwrap_or_default();
    match meta["labels"]["pod-template-hash"].as_str() {
        Some(hash) => base
            .strip_suffix(hash)
            .map(|b| b.trim_end_matches('-'))
            .unwrap_or(base)
            .to_owned(),
        None => base.to_owned(),
    }
}

/// Injects `object` in place. `namespace` stands in when the object names none (the namespace
/// of an admission request). Nothing changes when an error is returned.
pub fn inject_object(
    object: &mut Value,
    config: &InjectConfig,
    namespace: Option<&str>,
) -> Result<Outcome, InjectError> {
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    let Some(path) = template_path(&kind) else {
        let has_template = object["spec"]["template"]["spec"]["containers"].is_array();
        return Ok(if has_template {
            Outcome::UnknownWorkload
        } else {
            Outcome::NotWorkload
        });
    };
    let resource = resource_name(object, namespace);
    let name = workload_name(object);
    let ns = object["metadata"]["namespace"]
        .as_str()
        .or(namespace)
        .map(str::to_owned);
    let mut template = object;
    for key in path {
        template = &mut template[*key];
    }
    if !template.is_object() {
        return Err(InjectError::Field {
            resource,
            field: path.join("."),
            message: "the workload has no pod template".to_owned(),
        });
    }
    let mut meta = template["metadata"].clone();
    let mut spec = template["spec"].clone();
    let target = Target {
        resource: &resource,
        workload_name: &name,
        namespace: ns.as_deref(),
    };
    match inject_pod(&mut meta, &mut spec, &target, config)? {
        PodOutcome::Skipped(why) => Ok(Outcome::Skipped(why)),
        PodOutcome::Injected => {
            template["metadata"] = meta;
            template["spec"] = spec;
            Ok(Outcome::Injected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workload_names() {
        let pod = json!({"kind": "Pod", "metadata": {"generateName": "web-5d7b4547c6-", "labels": {"pod-template-hash": "5d7b4547c6"}}});
        assert_eq!(workload_name(&pod), "web");
        let pod = json!({"kind": "Pod", "metadata": {"generateName": "db-"}});
        assert_eq!(workload_name(&pod), "db");
        let deployment = json!({"kind": "Deployment", "metadata": {"name": "reviews-v1"}});
        assert_eq!(workload_name(&deployment), "reviews-v1");
    }

    #[test]
    fn resource_names() {
        let d = json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}});
        assert_eq!(resource_name(&d, None), "Deployment shop/web");
        let d = json!({"kind": "Deployment", "metadata": {"name": "web"}});
        assert_eq!(resource_name(&d, Some("x")), "Deployment x/web");
        assert_eq!(resource_name(&d, None), "Deployment web");
    }
}
