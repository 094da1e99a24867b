//! The live MeshInstall → the fully merged MeshInstall the renderer takes: its profile with the
//! object itself laid over it as the one overlay, exactly as `meshctl install -f` would merge it.

use mesh_crds::MeshInstall;
use serde_json::Value;

use super::Error;
use crate::{InstallInput, Overlay};

/// Metadata the API server manages; the overlay holds only what a person wrote.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "finalizers",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "ownerReferences",
];

/// Annotations tools add that mean nothing to the install.
const TOOL_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// `MeshInstall <namespace>/<name>`, how messages name the object.
pub fn origin(install: &MeshInstall) -> String {
    format!(
        "MeshInstall {}/{}",
        install.metadata.namespace.as_deref().unwrap_or_default(),
        install.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The object as an overlay document: no status, no server-managed metadata.
pub fn overlay_document(install: &MeshInstall) -> Result<Value, Error> {
    let mut doc = serde_json::to_value(install)?;
    if let Some(obj) = doc.as_object_mut() {
        obj.remove("status");
    }
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SERVER_METADATA {
            meta.remove(*key);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for key in TOOL_ANNOTATIONS {
                annotations.remove(*key);
            }
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    Ok(doc)
}

/// The fully merged MeshInstall, keeping the live object's name and namespace (they become the
/// owner labels of every rendered object).
pub fn resolve(install: &MeshInstall) -> Result<MeshInstall, Error> {
    let doc = overlay_document(install)?;
    let text = serde_yaml_ng::to_string(&doc)?;
    let input = InstallInput {
        profile: None,
        overlays: vec![Overlay {
            origin: origin(install),
            text,
        }],
        sets: Vec::new(),
    };
    input.resolve().map_err(Error::InvalidSpec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(profile: &str) -> MeshInstall {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "install.meshctl.dev/v1alpha1",
            "kind": "MeshInstall",
            "metadata": {
                "name": "main",
                "namespace": "team-a",
                "uid": "0b7f3c1e-1111-2222-3333-444455556666",
                "resourceVersion": "42",
                "generation": 3,
                "creationTimestamp": "2025-01-01T00:00:00Z",
                "finalizers": ["install.meshctl.dev/finalizer"],
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "team": "mesh"
                }
            },
            "spec": {"profile": profile, "namespace": "team-a"},
            "status": {"phase": "Healthy"}
        }))
        .unwrap()
    }

    #[test]
    fn merges_profile_and_keeps_identity() {
        let merged = resolve(&live("demo")).unwrap();
        assert_eq!(merged.metadata.name.as_deref(), Some("main"));
        assert_eq!(merged.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(merged.spec.namespace.as_deref(), Some("team-a"));
        let addons = merged.spec.addons.unwrap();
        assert_eq!(addons.prometheus.unwrap().enabled, Some(true));
        assert!(merged.metadata.finalizers.is_none());
        assert!(merged.metadata.uid.is_none());
        let annotations = merged.metadata.annotations.unwrap();
        assert_eq!(annotations.get("team").map(String::as_str), Some("mesh"));
        assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    }

    #[test]
    fn unknown_profile_is_named() {
        let err = resolve(&live("nope")).unwrap_err().to_string();
        assert!(err.contains("unknown profile \"nope\""), "{err}");
    }
}
