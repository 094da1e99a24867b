//! Istio objects' specs, validated against the CRD schema and read into their Rust types once,
//! when the object is made (on every core, while parsing). The JSON tree of the spec is then
//! dropped: the typed spec is all the analyzers read, and holding both would double the memory
//! of a large mesh.

use mesh_crds::istio::{
    AuthorizationPolicySpec, DestinationRuleSpec, GatewaySpec, PeerAuthenticationSpec,
    RequestAuthenticationSpec, ServiceEntrySpec, SidecarSpec, VirtualServiceSpec,
    WorkloadEntrySpec,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::schema;

/// The typed spec of an Istio object.
#[derive(Debug, Clone)]
pub enum IstioSpec {
    VirtualService(Box<VirtualServiceSpec>),
    DestinationRule(Box<DestinationRuleSpec>),
    Gateway(Box<GatewaySpec>),
    ServiceEntry(Box<ServiceEntrySpec>),
    Sidecar(Box<SidecarSpec>),
    PeerAuthentication(Box<PeerAuthenticationSpec>),
    AuthorizationPolicy(Box<AuthorizationPolicySpec>),
    RequestAuthentication(Box<RequestAuthenticationSpec>),
    /// Validated like the others; no analyzer reads it yet.
    WorkloadEntry(Box<WorkloadEntrySpec>),
}

/// What is wrong with a spec: a schema violation, or (when the schema found nothing) why it
/// does not read into its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    pub field: String,
    pub message: String,
    /// Whether the field is unknown to the schema (the API server would drop it silently).
    pub unknown_field: bool,
    /// Found by Istio's semantic validation (meshd's validation webhook), not the schema.
    pub semantic: bool,
}

fn typed<T: DeserializeOwned>(spec: &Value) -> Result<T, SpecProblem> {
    let empty = Value::Object(Default::default());
    let spec = if spec.is_null() { &empty } else { spec };
    // The fast path; on failure, read again to learn the path of the field at fault.
    T::deserialize(spec).map_err(|_| match serde_path_to_error::deserialize::<_, T>(spec) {
        Ok(_) => SpecProblem {
            field: "spec".to_owned(),
            message: "does not match its type".to_owned(),
            unknown_field: false,
            semantic: false,
        },
        Err(e) => {
            let inner = e.path().to_string();
            SpecProblem {
                field: if inner == "." || inner.is_empty() {
                    "spec".to_owned()
                } else {
                    format!("spec.{inner}")
                },
                message: e.inner().to_string(),
                unknown_field: false,
                semantic: false,
            }
        }
    })
}

/// Validates and reads the spec of `object`, of `group`/`kind`: against the CRD schema, then
/// against the rules meshd's validation webhook applies. None for kinds that are not Istio
/// kinds with a spec the analyzers read.
pub fn read(
    group: &str,
    kind: &str,
    object: &Value,
) -> Option<(Option<IstioSpec>, Vec<SpecProblem>)> {
    let spec = &object["spec"];
    if group != "networking.istio.io" && group != "security.istio.io" {
        return None;
    }
    fn boxed<T: DeserializeOwned>(
        spec: &Value,
        wrap: fn(Box<T>) -> IstioSpec,
    ) -> Result<IstioSpec, SpecProblem> {
        typed::<T>(spec).map(|t| wrap(Box::new(t)))
    }
    let result = match kind {
        "VirtualService" => boxed(spec, IstioSpec::VirtualService),
        "DestinationRule" => boxed(spec, IstioSpec::DestinationRule),
        "Gateway" => boxed(spec, IstioSpec::Gateway),
        "ServiceEntry" => boxed(spec, IstioSpec::ServiceEntry),
        "Sidecar" => boxed(spec, IstioSpec::Sidecar),
        "PeerAuthentication" => boxed(spec, IstioSpec::PeerAuthentication),
        "AuthorizationPolicy" => boxed(spec, IstioSpec::AuthorizationPolicy),
        "RequestAuthentication" => boxed(spec, IstioSpec::RequestAuthentication),
        "WorkloadEntry" => boxed(spec, IstioSpec::WorkloadEntry),
        _ => return None,
    };
    let mut problems: Vec<SpecProblem> = schema::validate(kind, spec)
        .into_iter()
        .map(|v| SpecProblem {
            unknown_field: v.message.starts_with("unknown field"),
            field: v.field,
            message: v.message,
            semantic: false,
        })
        .collect();
    match result {
        Ok(typed) => {
            // Only a spec the schema accepts is worth the webhook's rules: they would repeat
            // what the schema already said.
            if problems.is_empty() {
                if let Some(report) = mesh_crds::validate::validate_object(group, kind, object) {
                    problems.extend(report.errors.into_iter().map(|e| SpecProblem {
                        field: e.field,
                        message: e.reason,
                        unknown_field: false,
                        semantic: true,
                    }));
                }
            }
            Some((Some(typed), problems))
        }
        Err(problem) => {
            if problems.is_empty() {
                problems.push(problem);
            }
            Some((None, problems))
        }
    }
}
