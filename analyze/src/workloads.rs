//! Workloads: what a selector can select. A Pod stands for itself; a Deployment, StatefulSet,
//! DaemonSet, Job, CronJob, ReplicaSet or ReplicationController stands for the pods its
//! template makes, so files without pods are analysed as the cluster will run them.

use serde_json::{Map, Value};

use crate::object::Object;

/// Pods or the pod template of a controller.
pub struct Workload<'a> {
    pub obj: usize,
    pub namespace: &'a str,
    pub labels: &'a Map<String, Value>,
    pub annotations: &'a Map<String, Value>,
    /// The pod's metadata (labels, annotations).
    pub meta: &'a Value,
    /// The pod spec.
    pub spec: &'a Value,
    /// Where the pod template is in the object (`spec.template`), empty for a Pod.
    pub template_path: &'static str,
}

static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();

/// The pod template path of a workload kind, None for kinds that are not workloads.
pub fn template_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some("spec.template"),
        "CronJob" => Some("spec.jobTemplate.spec.template"),
        _ => None,
    }
}

/// Controllers whose pods are already represented by a template: a pod they own is not a
/// workload of its own (it would be counted twice).
fn owned_by_template(object: &Object) -> bool {
    object.value["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|owners| {
            owners.iter().any(|o| {
                matches!(
                    o["kind"].as_str(),
                    Some(
                        "ReplicaSet"
                            | "StatefulSet"
                            | "DaemonSet"
                            | "Job"
                            | "ReplicationController"
                            | "Deployment"
                            | "CronJob"
                    )
                )
            })
        })
}

/// The workload of `object`, if it is one.
pub fn workload_of(obj: usize, object: &Object) -> Option<Workload<'_>> {
    let path = template_path(&object.kind)?;
    if object.group == "apps" || object.group == "batch" || object.group.is_empty() {
        // fine: the workload kinds of these groups
    } else {
        return None;
    }
    if (object.kind == "Pod" || object.kind == "ReplicaSet" || object.kind == "Job")
        && owned_by_template(object)
    {
        return None;
    }
    let template = match object.kind.as_str() {
        "Pod" => &object.value,
        "CronJob" => &object.value["spec"]["jobTemplate"]["spec"]["template"],
        _ => &object.value["spec"]["template"],
    };
    let empty = EMPTY.get_or_init(Map::new);
    let meta = &template["metadata"];
    Some(Workload {
        obj,
        namespace: &object.namespace,
        labels: meta["labels"].as_object().unwrap_or(empty),
        annotations: meta["annotations"].as_object().unwrap_or(empty),
        meta,
        spec: &template["spec"],
        template_path: path,
    })
}

impl<'a> Workload<'a> {
    /// The field path of `field` of the pod spec within the object, e.g.
    /// `spec.template.spec.containers[0]`.
    pub fn spec_path(&self, field: &str) -> String {
        match (self.template_path, field.is_empty()) {
            ("", true) => "spec".to_owned(),
            ("", false) => format!("spec.{field}"),
            (t, true) => format!("{t}.spec"),
            (t, false) => format!("{t}.spec.{field}"),
        }
    }

    /// The field path of the pod's metadata.
    pub fn metadata_path(&self) -> String {
        if self.template_path.is_empty() {
            "metadata".to_owned()
        } else {
            format!("{}.metadata", self.template_path)
        }
    }

    pub fn service_account(&self) -> &'a str {
        self.spec["serviceAccountName"]
            .as_str()
            .or_else(|| self.spec["serviceAccount"].as_str())
            .unwrap_or("default")
    }

    /// The container port a named target port refers to.
    pub fn named_port(&self, name: &str) -> Option<u64> {
        self.spec["containers"]
            .as_array()?
            .iter()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_u64())
    }
}
