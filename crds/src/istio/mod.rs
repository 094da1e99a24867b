//! The Istio API kinds the mesh reads, with the field names, enum spellings and CRDs of Istio's
//! own, so that Istio YAML is accepted unchanged.
//!
//! - [`networking`]: VirtualService, DestinationRule, Gateway, ServiceEntry, Sidecar,
//!   WorkloadEntry (`networking.istio.io`);
//! - [`security`]: PeerAuthentication, AuthorizationPolicy, RequestAuthentication
//!   (`security.istio.io`);
//! - [`common`]: types several kinds share, and the status every kind carries.

pub mod common;
pub mod networking;
pub mod security;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use common::{
    Destination, IstioStatus, Percent, PolicyTargetReference, PortSelector, StringMatch,
    WorkloadLabels, WorkloadSelector,
};
pub use networking::{
    DestinationRule, DestinationRuleSpec, Gateway, GatewaySpec, ServiceEntry, ServiceEntrySpec,
    Sidecar, SidecarSpec, VirtualService, VirtualServiceSpec, WorkloadEntry, WorkloadEntrySpec,
};
pub use security::{
    AuthorizationPolicy, AuthorizationPolicySpec, PeerAuthentication, PeerAuthenticationSpec,
    RequestAuthentication, RequestAuthenticationSpec,
};

/// Versions Istio serves besides v1, all with the v1 schema. The networking kinds date from
/// v1alpha3; the security kinds from v1beta1.
const NETWORKING_OLDER_VERSIONS: &[&str] = &["v1alpha3", "v1beta1"];
const SECURITY_OLDER_VERSIONS: &[&str] = &["v1beta1"];

/// The Istio CRDs, each serving v1 (stored) and the older versions Istio serves with the same
/// schema, in a stable order: by group, then by kind.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let networking = [
        DestinationRule::crd(),
        Gateway::crd(),
        ServiceEntry::crd(),
        Sidecar::crd(),
        VirtualService::crd(),
        WorkloadEntry::crd(),
    ];
    let security = [
        AuthorizationPolicy::crd(),
        PeerAuthentication::crd(),
        RequestAuthentication::crd(),
    ];
    networking
        .into_iter()
        .map(|crd| with_older_versions(crd, NETWORKING_OLDER_VERSIONS))
        .chain(
            security
                .into_iter()
                .map(|crd| with_older_versions(crd, SECURITY_OLDER_VERSIONS)),
        )
        .collect()
}

/// Adds a served, not stored, copy of the v1 version entry under each older name, after v1 (the
/// order of Istio's CRDs). Clients of v1alpha3/v1beta1 keep working: the schemas are identical,
/// so the apiserver converts between versions by relabelling (`conversion: None`).
fn with_older_versions(
    mut crd: CustomResourceDefinition,
    older: &[&str],
) -> CustomResourceDefinition {
    let Some(v1) = crd.spec.versions.first().cloned() else {
        return crd;
    };
    for name in older {
        let mut version = v1.clone();
        version.name = (*name).to_string();
        version.served = true;
        version.storage = false;
        crd.spec.versions.push(version);
    }
    crd
}
