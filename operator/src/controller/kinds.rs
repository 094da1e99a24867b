//! The kinds the renderer produces, with what the API needs to address them; a static table so
//! that applying, pruning and watching need no discovery round trip. A test checks that every
//! kind any profile renders is here.

use kube::core::{ApiResource, GroupVersionKind};

/// One rendered kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

impl Kind {
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, `configmaps`: how RBAC and error messages name the resource.
    pub fn resource_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
        namespaced,
    }
}

/// Every kind the renderer produces, in apply order.
pub const RENDERED: &[Kind] = &[
    kind(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    kind("", "v1", "Namespace", "namespaces", false),
    kind("", "v1", "ServiceAccount", "serviceaccounts", true),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    kind("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    kind("", "v1", "ConfigMap", "configmaps", true),
    kind("", "v1", "Service", "services", true),
    kind("apps", "v1", "Deployment", "deployments", true),
    kind(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    kind(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    kind(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    kind(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
];

/// The table entry of an object's `apiVersion` and `kind`.
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static Kind> {
    RENDERED
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
}

/// The table entry of a kind name alone.
pub fn by_kind(kind: &str) -> Option<&'static Kind> {
    RENDERED.iter().find(|k| k.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions() {
        assert_eq!(
            by_kind("ConfigMap").map(Kind::api_version),
            Some("v1".into())
        );
        assert_eq!(
            by_kind("Deployment").map(Kind::api_version),
            Some("apps/v1".into())
        );
        assert_eq!(
            by_kind("Deployment").map(Kind::resource_name),
            Some("deployments.apps".into())
        );
        assert!(lookup("autoscaling/v2", "HorizontalPodAutoscaler").is_some());
        assert!(lookup("autoscaling/v1", "HorizontalPodAutoscaler").is_none());
    }
}
