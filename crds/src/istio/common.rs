//! Types shared by more than one Istio kind, and the serde/schema helpers that make the Rust
//! types read and write exactly what Istio's protojson-based YAML does.
//!
//! Conventions used throughout `istio::*`:
//! - a protobuf `oneof` is a struct of `Option`s; the CRD schema gets Istio's own
//!   `oneOf: [{not: {anyOf: [required...]}}, {required: [a]}, ...]` constraint (see
//!   `at_most_one_of`) so that the apiserver rejects two members of the same oneof;
//! - a `google.protobuf.Duration` stays the text Istio writes (`"5s"`, `"1.5s"`, `"100ms"`);
//! - a `google.protobuf.*Value` wrapper is the plain `Option` of its value;
//! - a `double` serializes an integral value as an integer (`100`, not `100.0`), as protojson does,
//!   so that a document read and written again is unchanged;
//! - maps are `BTreeMap` so that output is deterministic.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};

/// How a string is compared. Exactly one of the three is set (it is a protobuf oneof).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = string_match_one_of)]
pub struct StringMatch {
    /// The whole string must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The string must start with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The string must match this RE2 regular expression in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

fn string_match_one_of(schema: &mut schemars::Schema) {
    at_most_one_of(schema, &["exact", "prefix", "regex"]);
}

/// The networking form of a workload selector (`networking.v1alpha3.WorkloadSelector`), used by
/// Sidecar and ServiceEntry: the key is `labels`, where the policy form has `matchLabels`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadLabels {
    /// Labels a pod or VM must all carry to be selected; wildcards are not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// The policy form of a workload selector (`type.v1beta1.WorkloadSelector`), used by the security
/// kinds' `selector` and DestinationRule's `workloadSelector`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Labels a pod or VM must all carry for the policy to apply to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// A reference to the Kubernetes object a policy attaches to (`type.v1beta1.PolicyTargetReference`),
/// e.g. a Gateway API `Gateway` or a `Service`; the alternative to a workload selector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    /// API group of the target; empty means the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the target, e.g. `Gateway` or `Service`.
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Namespace of the target; cross-namespace references are not supported, so it must be
    /// empty or the policy's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A port chosen by number.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    /// A valid port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

/// A percentage, 0.0 to 100.0, as Istio's `Percent` message.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_f64"
    )]
    pub value: Option<f64>,
}

/// Where traffic goes: a service of the registry, optionally one subset and one port of it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// Name of a service of the registry (Kubernetes service or ServiceEntry host); short names
    /// are resolved in the namespace of the rule, so a fully qualified name is safer.
    pub host: String,
    /// Name of a subset defined by a DestinationRule for this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Port of the host; needed only when the service exposes more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// The status Istio writes on every one of its kinds (`meta.v1alpha1.IstioStatus`).
///
/// It is free-form on purpose: the control plane and analyzers of different versions write it,
/// so any field this type does not name is kept and written back as is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct IstioStatus {
    /// Current service state of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<IstioCondition>>,
    /// Errors and warnings found by Istio's analyzers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_messages: Option<Vec<AnalysisMessage>>,
    /// Generation of the resource the status was computed for (Istio writes it as an integer or
    /// a string, as protojson does for int64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<Int64OrString>,
    /// Every other field, kept unchanged.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// One condition of an Istio status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct IstioCondition {
    /// Type of the condition, e.g. `Reconciled`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `True`, `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// When the condition was last probed (RFC 3339), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<String>,
    /// When the condition last changed (RFC 3339), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// One-word CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<Int64OrString>,
    /// Every other field, kept unchanged.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// One analyzer finding of an Istio status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct AnalysisMessage {
    /// Which message this is.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<AnalysisMessageType>,
    /// `UNKNOWN`, `ERROR`, `WARNING` or `INFO`; a string so that a level added later is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Link to the documentation of this message type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
    /// Every other field, kept unchanged.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// The identity of an analyzer message type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct AnalysisMessageType {
    /// Human-readable name, e.g. `ReferencedResourceNotFound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Seven-character code such as `IST0101`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Every other field, kept unchanged.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// An int64 that protojson may write either as a number or as a decimal string; kept in the
/// form it was read in. The schema is `x-kubernetes-int-or-string`, as in Istio's CRDs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Int64OrString {
    Int(i64),
    String(String),
}

impl JsonSchema for Int64OrString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Int64OrString".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "x-kubernetes-int-or-string": true })
    }
}

/// Adds Istio's encoding of a protobuf oneof to an object schema: at most one of `fields` is set.
///
/// Kubernetes accepts this in a structural schema because the branches only carry `required`
/// (no `type`, no `properties`). Each constraint is one entry of `allOf`, so that a message with
/// two oneofs (ConsistentHashLB) gets two independent constraints, as Istio's CRD has.
pub(crate) fn at_most_one_of(schema: &mut schemars::Schema, fields: &[&str]) {
    let required = |f: &&str| json!({ "required": [f] });
    let mut branches =
        vec![json!({ "not": { "anyOf": fields.iter().map(required).collect::<Vec<_>>() } })];
    branches.extend(fields.iter().map(required));
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let constraint = json!({ "oneOf": branches });
    match obj.get_mut("allOf").and_then(Value::as_array_mut) {
        Some(all_of) => all_of.push(constraint),
        None => {
            obj.insert("allOf".to_string(), Value::Array(vec![constraint]));
        }
    }
}

/// Serializes a double as protojson does: an integral value without a fractional part.
pub(crate) fn serialize_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    // 2^53: beyond this not every integer is representable, so keep the float form.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if v.is_finite() && v.fract() == 0.0 && v.abs() <= EXACT {
        if *v >= 0.0 {
            s.serialize_u64(*v as u64)
        } else {
            s.serialize_i64(*v as i64)
        }
    } else {
        s.serialize_f64(*v)
    }
}

/// [`serialize_f64`] for an optional double.
pub(crate) fn serialize_opt_f64<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => serialize_f64(v, s),
        None => s.serialize_none(),
    }
}

/// A map key that is a port number. YAML writes `8080: {...}`, which a YAML parser reads as an
/// integer key, while JSON (and so the apiserver) always has string keys; both are accepted and
/// kept as the decimal string.
struct PortKey(String);

impl<'de> Deserialize<'de> for PortKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = PortKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

/// Deserializes an optional map keyed by port number (see [`PortKey`]).
pub(crate) fn deserialize_port_map<'de, D, T>(d: D) -> Result<Option<BTreeMap<String, T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct MapVisitor<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for MapVisitor<T> {
        type Value = Option<BTreeMap<String, T>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map keyed by port number")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((PortKey(k), v)) = map.next_entry::<PortKey, T>()? {
                out.insert(k, v);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_option(MapVisitor(std::marker::PhantomData))
}
