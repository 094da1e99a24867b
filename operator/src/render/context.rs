//! The settings every renderer needs, resolved once from the MeshInstall.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use mesh_crds::meshinstall::{
    AddonSpec, ComponentSpec, Components, GatewaySpec, KubernetesSettings, MeshConfig,
};
use mesh_crds::MeshInstall;

use super::Component;

pub const LABEL_OWNER_NAME: &str = "install.meshctl.dev/owner-name";
pub const LABEL_OWNER_NAMESPACE: &str = "install.meshctl.dev/owner-namespace";
pub const LABEL_COMPONENT: &str = "install.meshctl.dev/component";
const LABEL_VERSION: &str = "install.meshctl.dev/version";
const DEFAULT_HUB: &str = "ghcr.io/meshctl";

pub struct Context {
    pub owner_name: String,
    pub owner_namespace: String,
    /// Namespace of the control plane and, unless a gateway says otherwise, of the gateways.
    pub namespace: String,
    /// Empty for the default revision.
    pub revision: String,
    pub hub: String,
    pub tag: String,
    pub mesh_config: MeshConfig,
    pub components: Components,
    pub addons: BTreeMap<&'static str, AddonSpec>,
    pub values: Value,
}

impl Context {
    pub fn new(install: &MeshInstall) -> Context {
        let spec = &install.spec;
        let namespace = spec
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "mesh-system".to_owned());
        let addons = spec.addons.clone().unwrap_or_default();
        let mut addon_map = BTreeMap::new();
        for (name, addon) in [
            ("prometheus", addons.prometheus),
            ("grafana", addons.grafana),
            ("kiali", addons.kiali),
            ("jaeger", addons.jaeger),
            ("zipkin", addons.zipkin),
        ] {
            if let Some(a) = addon.filter(|a| a.enabled == Some(true)) {
                addon_map.insert(name, a);
            }
        }
        Context {
            owner_name: install
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            owner_namespace: install
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.clone()),
            namespace,
            revision: spec.revision.clone().unwrap_or_default(),
            hub: spec
                .hub
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| DEFAULT_HUB.to_owned()),
            tag: spec
                .tag
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| crate::VERSION.to_owned()),
            mesh_config: spec.mesh_config.clone().unwrap_or_default(),
            components: spec.components.clone().unwrap_or_default(),
            addons: addon_map,
            values: spec.values.clone().unwrap_or(Value::Null),
        }
    }

    /// `name` for the default revision, `name-<revision>` otherwise, so revisions live side by side.
    pub fn revisioned(&self, name: &str) -> String {
        if self.revision.is_empty() {
            name.to_owned()
        } else {
            format!("{name}-{}", self.revision)
        }
    }

    /// The value of `istio.io/rev`.
    pub fn revision_label(&self) -> &str {
        if self.revision.is_empty() {
            "default"
        } else {
            &self.revision
        }
    }

    pub fn base(&self) -> Option<&ComponentSpec> {
        enabled(self.components.base.as_ref())
    }

    pub fn control_plane(&self) -> Option<&ComponentSpec> {
        enabled(self.components.control_plane.as_ref())
    }

    pub fn ingress_gateways(&self) -> Vec<&GatewaySpec> {
        enabled_gateways(self.components.ingress_gateways.as_deref())
    }

    pub fn egress_gateways(&self) -> Vec<&GatewaySpec> {
        enabled_gateways(self.components.egress_gateways.as_deref())
    }

    pub fn anything_enabled(&self) -> bool {
        self.base().is_some()
            || self.control_plane().is_some()
            || !self.ingress_gateways().is_empty()
            || !self.egress_gateways().is_empty()
            || !self.addons.is_empty()
    }

    /// Name of meshd's Service and Deployment.
    pub fn meshd_name(&self) -> String {
        self.revisioned("meshd")
    }

    /// Where proxies reach meshd for configuration and certificates.
    pub fn meshd_address(&self) -> String {
        format!("{}.{}.svc:15012", self.meshd_name(), self.namespace)
    }

    pub fn image(&self, hub: Option<&String>, tag: Option<&String>, name: &str) -> String {
        let hub = hub.filter(|h| !h.is_empty()).unwrap_or(&self.hub);
        let tag = tag.filter(|t| !t.is_empty()).unwrap_or(&self.tag);
        format!("{hub}/{name}:{tag}")
    }

    /// The labels every object carries: who owns it (for pruning), which part, which version.
    pub fn labels(&self, component: &Component) -> Map<String, Value> {
        let mut labels = Map::new();
        for (k, v) in [
            ("app.kubernetes.io/managed-by", "meshctl".to_owned()),
            ("app.kubernetes.io/part-of", "meshctl".to_owned()),
            ("app.kubernetes.io/version", crate::VERSION.to_owned()),
            (LABEL_COMPONENT, component.label()),
            (LABEL_OWNER_NAME, self.owner_name.clone()),
            (LABEL_OWNER_NAMESPACE, self.owner_namespace.clone()),
            (LABEL_VERSION, crate::VERSION.to_owned()),
            ("istio.io/rev", self.revision_label().to_owned()),
        ] {
            labels.insert(k.to_owned(), Value::String(v));
        }
        labels
    }

    /// `metadata` of an object: name, namespace when namespaced, the standard labels plus `extra`.
    pub fn metadata(
        &self,
        name: &str,
        namespace: Option<&str>,
        component: &Component,
        extra: &[(&str, &str)],
    ) -> Value {
        let mut labels = self.labels(component);
        for (k, v) in extra {
            labels.insert((*k).to_owned(), Value::String((*v).to_owned()));
        }
        sort_map(&mut labels);
        let mut meta = Map::new();
        meta.insert("name".to_owned(), json!(name));
        if let Some(ns) = namespace {
            meta.insert("namespace".to_owned(), json!(ns));
        }
        meta.insert("labels".to_owned(), Value::Object(labels));
        Value::Object(meta)
    }

    /// A Namespace the installation creates. It carries no `istio.io/rev` label: on a namespace
    /// that label asks for sidecar injection, and the mesh's own pods must never wait on the
    /// webhook they are about to serve.
    pub fn namespace_object(&self, name: &str, component: &Component) -> Value {
        let mut metadata = self.metadata(name, None, component, &[]);
        if let Some(labels) = metadata["labels"].as_object_mut() {
            labels.remove("istio.io/rev");
        }
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
    }

    /// A free-form setting under `spec.values`, by path.
    pub fn value(&self, pointer: &str) -> Option<&Value> {
        self.values.pointer(pointer).filter(|v| !v.is_null())
    }
}

fn enabled(spec: Option<&ComponentSpec>) -> Option<&ComponentSpec> {
    spec.filter(|c| c.enabled.unwrap_or(false))
}

fn enabled_gateways(gateways: Option<&[GatewaySpec]>) -> Vec<&GatewaySpec> {
    gateways
        .unwrap_or_default()
        .iter()
        .filter(|g| g.enabled.unwrap_or(false))
        .collect()
}

/// Maps built with `preserve_order` keep insertion order; labels and annotations are sorted so
/// their order never depends on how they were assembled.
pub fn sort_map(map: &mut Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    map.extend(entries);
}

/// A `KubernetesSettings` that is absent reads as all defaults.
pub fn k8s_of(settings: Option<&KubernetesSettings>) -> KubernetesSettings {
    settings.cloned().unwrap_or_default()
}
