//! MeshInstall → the Kubernetes objects of the mesh, in apply order.
//!
//! Objects are built as JSON trees in the order kubectl prints fields (apiVersion, kind,
//! metadata, spec), and every map is sorted, so the same MeshInstall always gives the same bytes.
//! A test reads each object back through its k8s-openapi type to catch misspelled fields.

mod addons;
mod base;
mod context;
mod controlplane;
mod gateway;
mod workload;

use serde_json::Value;

use mesh_crds::MeshInstall;

pub use context::{Context, LABEL_COMPONENT, LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE};

/// The part of the installation an object belongs to; `-o DIR` writes one file per component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Base,
    ControlPlane,
    IngressGateway(String),
    EgressGateway(String),
    Addon(String),
}

impl Component {
    /// The value of the `install.meshctl.dev/component` label.
    pub fn label(&self) -> String {
        match self {
            Component::Base => "base".to_owned(),
            Component::ControlPlane => "control-plane".to_owned(),
            Component::IngressGateway(_) => "ingress-gateway".to_owned(),
            Component::EgressGateway(_) => "egress-gateway".to_owned(),
            Component::Addon(name) => format!("addon-{name}"),
        }
    }

    /// The status key of the component (`ingressGateway/<name>`), as MeshInstall status shows it.
    pub fn status_key(&self) -> String {
        match self {
            Component::Base => "base".to_owned(),
            Component::ControlPlane => "controlPlane".to_owned(),
            Component::IngressGateway(name) => format!("ingressGateway/{name}"),
            Component::EgressGateway(name) => format!("egressGateway/{name}"),
            Component::Addon(name) => format!("addon/{name}"),
        }
    }

    /// File name under `manifest generate -o DIR`; the number prefix keeps `kubectl apply -f DIR`
    /// (which reads files in name order) applying the base before what needs it.
    pub fn file_name(&self) -> String {
        match self {
            Component::Base => "00-base.yaml".to_owned(),
            Component::ControlPlane => "10-control-plane.yaml".to_owned(),
            Component::IngressGateway(name) => format!("20-ingress-gateway-{name}.yaml"),
            Component::EgressGateway(name) => format!("30-egress-gateway-{name}.yaml"),
            Component::Addon(name) => format!("40-addon-{name}.yaml"),
        }
    }
}

/// One rendered Kubernetes object.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub component: Component,
    pub object: Value,
}

impl Manifest {
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }

    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    /// `Kind namespace/name` or `Kind name`, as messages name objects.
    pub fn display_name(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }
}

/// Where a kind goes in apply order: what others need comes first.
fn apply_rank(kind: &str) -> u8 {
    match kind {
        "CustomResourceDefinition" => 0,
        "Namespace" => 1,
        "ServiceAccount" => 2,
        "ClusterRole" => 3,
        "ClusterRoleBinding" => 4,
        "Role" => 5,
        "RoleBinding" => 6,
        "ConfigMap" | "Secret" => 7,
        "Service" => 8,
        "Deployment" | "StatefulSet" | "DaemonSet" => 9,
        "HorizontalPodAutoscaler" | "PodDisruptionBudget" => 10,
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => 11,
        _ => 12,
    }
}

/// Every object of the installation, in apply order.
pub fn render(install: &MeshInstall) -> Vec<Manifest> {
    let ctx = Context::new(install);
    let mut out = Vec::new();
    base::render(&ctx, &mut out);
    controlplane::render(&ctx, &mut out);
    gateway::render(&ctx, &mut out);
    addons::render(&ctx, &mut out);
    out.sort_by(|a, b| {
        (apply_rank(a.kind()), &a.component, a.namespace(), a.name()).cmp(&(
            apply_rank(b.kind()),
            &b.component,
            b.namespace(),
            b.name(),
        ))
    });
    out
}

/// The multi-document YAML `kubectl apply -f -` takes.
pub fn to_yaml(manifests: &[Manifest]) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for manifest in manifests {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&manifest.object)?);
    }
    Ok(out)
}

/// The objects grouped by the file `-o DIR` writes them to, files in name order.
pub fn by_file(manifests: &[Manifest]) -> Vec<(String, Vec<Manifest>)> {
    let mut files: std::collections::BTreeMap<String, Vec<Manifest>> = Default::default();
    for m in manifests {
        files
            .entry(m.component.file_name())
            .or_default()
            .push(m.clone());
    }
    files.into_iter().collect()
}
