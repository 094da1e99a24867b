//! What analysis needs of the mesh config (`--meshConfigFile`, or the installed mesh's).

use serde_json::Value;

/// The mesh-wide settings analyzers depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshSettings {
    /// Policies (PeerAuthentication, RequestAuthentication, AuthorizationPolicy, Sidecar)
    /// here apply to the whole mesh; the mesh's own components live here.
    pub root_namespace: String,
    /// The trust domain of workload identities: principals are `<trustDomain>/ns/NS/sa/SA`.
    pub trust_domain: String,
    /// Whether proxies allocate addresses for ServiceEntries (`ISTIO_META_DNS_AUTO_ALLOCATE`),
    /// which makes addresses optional.
    pub dns_auto_allocate: bool,
}

impl Default for MeshSettings {
    fn default() -> Self {
        MeshSettings {
            root_namespace: "mesh-system".to_owned(),
            trust_domain: "cluster.local".to_owned(),
            dns_auto_allocate: false,
        }
    }
}

impl MeshSettings {
    /// From a mesh config document (the `mesh` key of the mesh ConfigMap); unset fields keep
    /// their defaults.
    pub fn from_mesh_config(mesh: &Value) -> MeshSettings {
        let defaults = MeshSettings::default();
        let text = |key: &str| {
            mesh[key]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let auto_allocate = &mesh["defaultConfig"]["proxyMetadata"]["ISTIO_META_DNS_AUTO_ALLOCATE"];
        MeshSettings {
            root_namespace: text("rootNamespace").unwrap_or(defaults.root_namespace),
            trust_domain: text("trustDomain").unwrap_or(defaults.trust_domain),
            dns_auto_allocate: auto_allocate.as_str() == Some("true")
                || auto_allocate.as_bool() == Some(true),
        }
    }
}
