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

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
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
///
/// Install these rather than `VirtualService::crd()` and the like: the derived CRDs have only
/// v1, and nullable enum fields (see `enums_not_nullable`).
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
        .map(|crd| istio_crd(crd, NETWORKING_OLDER_VERSIONS))
        .chain(
            security
                .into_iter()
                .map(|crd| istio_crd(crd, SECURITY_OLDER_VERSIONS)),
        )
        .collect()
}

/// Turns the CRD kube derives (one version, v1) into the one Istio ships.
///
/// The older versions are served, not stored, copies of the v1 entry, after v1 (the order of
/// Istio's CRDs). Clients of v1alpha3/v1beta1 keep working: the schemas are identical, so the
/// apiserver converts between versions by relabelling (`conversion: None`).
fn istio_crd(mut crd: CustomResourceDefinition, older: &[&str]) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            enums_not_nullable(schema);
        }
    }
    let Some(v1) = crd.spec.versions.first().cloned() else {
        return crd;
    };
    for name in older {
        let mut version = v1.clone();
        version.name = (*name).to_string();
        version.served = true;
        version.storage = false;
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            strip_descriptions(schema);
        }
        crd.spec.versions.push(version);
    }
    crd
}

/// kube marks every `Option` field `nullable`. For an enum that is wrong for Istio YAML: the
/// apiserver then keeps an explicit `null` (say the empty `mode:` of a templated manifest) and
/// rejects it as not one of the enum's values, where Istio's CRD, whose enums are not nullable,
/// drops the null and accepts the object. So enum fields are made non-nullable, as in Istio's.
fn enums_not_nullable(schema: &mut JSONSchemaProps) {
    for_each_schema(schema, &mut |node| {
        if let Some(values) = &mut node.enum_ {
            node.nullable = None;
            values.retain(|v| !v.0.is_null());
        }
    });
}

/// Descriptions are kept on the stored version only: `kubectl explain` reads them from there,
/// and three described copies of DestinationRule would pass the 256 KiB that client-side
/// `kubectl apply` can record.
fn strip_descriptions(schema: &mut JSONSchemaProps) {
    for_each_schema(schema, &mut |node| node.description = None);
}

/// Calls `f` on `schema` and on every schema nested in it.
fn for_each_schema(schema: &mut JSONSchemaProps, f: &mut impl FnMut(&mut JSONSchemaProps)) {
    f(schema);
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.all_of.iter_mut().flatten())
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten())
        .chain(schema.not.as_deref_mut());
    for child in children {
        for_each_schema(child, f);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => for_each_schema(item, f),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(|i| for_each_schema(i, f))
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &mut schema.additional_properties {
        for_each_schema(values, f);
    }
}
