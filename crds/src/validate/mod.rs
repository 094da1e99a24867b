//! Semantic validation of Istio objects: the rules Istio's validating webhook applies beyond what
//! the CRD's OpenAPI schema can say (host syntax, references, durations, mutually exclusive
//! fields, value ranges, ...), as a pure function of one object.
//!
//! meshd's validating admission webhook rejects an object with errors and returns the warnings;
//! `meshctl analyze` reports both as IST0106 (SchemaValidationError). The rules follow Istio's
//! (`pkg/config/validation`), with its messages where they are good ones; where we are stricter
//! or looser than Istio, the rule's comment says so and why. docs/validation.md lists the rules
//! per kind.
//!
//! One module per kind, and shared checks in [`names`], [`hosts`], [`net`], [`duration`],
//! [`http`] and [`policy`].

mod authorization_policy;
mod destination_rule;
mod duration;
mod gateway;
mod hosts;
mod http;
mod names;
mod net;
mod peer_authentication;
mod policy;
mod report;
mod request_authentication;
mod service_entry;
mod sidecar;
mod traffic_policy;
mod virtual_service;
mod workload_entry;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use report::{FieldIssue, Report};

use report::{FieldPath, Issues};

const NETWORKING: &str = "networking.istio.io";
const SECURITY: &str = "security.istio.io";
const NETWORKING_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const SECURITY_VERSIONS: &[&str] = &["v1", "v1beta1"];

/// The annotation that puts an AuthorizationPolicy in dry-run mode (evaluated and logged, not
/// enforced); only AuthorizationPolicy understands it.
const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// What a kind's checks may need from the object besides its spec.
pub(crate) struct Context<'a> {
    /// `metadata.namespace`; absent when a file is checked before it is applied.
    pub(crate) namespace: Option<&'a str>,
    /// `metadata.annotations`.
    pub(crate) annotations: BTreeMap<&'a str, &'a str>,
}

/// How Kubernetes and Istio constrain the object's name.
#[derive(Clone, Copy)]
enum NameRule {
    /// Every custom resource: a DNS-1123 subdomain.
    Subdomain,
    /// A Gateway: a DNS-1123 label, because VirtualServices refer to it as `namespace/name`.
    Label,
}

/// One kind this module validates.
struct Kind {
    group: &'static str,
    kind: &'static str,
    versions: &'static [&'static str],
    name: NameRule,
    check: fn(&Value, &Context, &mut Issues),
}

const KINDS: &[Kind] = &[
    Kind {
        group: NETWORKING,
        kind: "VirtualService",
        versions: NETWORKING_VERSIONS,
        name: NameRule::Subdomain,
        check: |o, c, i| check_spec(o, c, i, virtual_service::validate),
    },
    Kind {
        group: NETWORKING,
        kind: "DestinationRule",
        versions: NETWORKING_VERSIONS,
        name: NameRule::Subdomain,
        check: |o, c, i| check_spec(o, c, i, destination_rule::validate),
    },
    Kind {
        group: NETWORKING,
        kind: "Gateway",
        versions: NETWORKING_VERSIONS,
        name: NameRule::Label,
        check: |o, c, i| check_spec(o, c, i, gateway::validate),
    },
    Kind {
        group: NETWORKING,
        kind: "ServiceEntry",
        versions: NETWORKING_VERSIONS,
        name: NameRule::Subdomain,
        check: |o, c, i| check_spec(o, c, i, service_entry::validate),
    },
    Kind {
        group: NETWORKING,
        kind: "Sidecar",
        versions: NETWORKING_VERSIONS,
        name: NameRule::Subdomain,
        check: |o, c, i| check_spec(o, c, i, sidecar::validate),
    },
    Kind {
        group: NETWORKING,
        kind: "WorkloadEntry",
        versions: NETWORKING_VERSIONS,
        name: NameRule::Subdomain,
        check: |o, c, i| check_spec(o, c, i, workload_entry::validate),
    },
    Kind {
        group: SECURITY,
        kind: "PeerAuthentication",
        versions: SECURITY_VERSIONS,
        name: NameRule::Subdomain,
        check: |o, c, i| check_spec(o, c, i, peer_authentication::validate),
    },
    Kind {
        group: SECURITY,
        kind: "AuthorizationPolicy",
        versions: SECURITY_VERSIONS,
        name: NameRule::Subdomain,
        check: |o, c, i| check_spec(o, c, i, authorization_policy::validate),
    },
    Kind {
        group: SECURITY,
        kind: "RequestAuthentication",
        versions: SECURITY_VERSIONS,
        name: NameRule::Subdomain,
        check: |o, c, i| check_spec(o, c, i, request_authentication::validate),
    },
];

/// Validates a whole object (apiVersion, kind, metadata, spec) given as JSON. `group` and `kind`
/// as in an AdmissionRequest (e.g. "networking.istio.io", "VirtualService"); any served version
/// (v1, v1beta1, v1alpha3) is accepted. A spec that does not even deserialize into our types is
/// one error naming the field serde reports. Returns None for a kind this module does not know.
pub fn validate_object(group: &str, kind: &str, object: &Value) -> Option<Report> {
    let rules = KINDS.iter().find(|k| k.group == group && k.kind == kind)?;
    let mut issues = Issues::default();
    check_type_meta(rules, object, &mut issues);
    let context = check_metadata(rules, object, &mut issues);
    (rules.check)(object, &context, &mut issues);
    Some(issues.into_report())
}

/// The object's `apiVersion` and `kind`, when it carries them, must be the ones it is validated
/// as, in a version Istio serves for the kind.
fn check_type_meta(rules: &Kind, object: &Value, issues: &mut Issues) {
    if let Some(kind) = object.get("kind").and_then(Value::as_str) {
        if kind != rules.kind {
            issues.error(
                &FieldPath::root("kind"),
                format!("kind {kind:?} is validated as {}", rules.kind),
            );
        }
    }
    let Some(api_version) = object.get("apiVersion").and_then(Value::as_str) else {
        return;
    };
    let served = api_version
        .split_once('/')
        .is_some_and(|(g, v)| g == rules.group && rules.versions.contains(&v));
    if !served {
        let versions: Vec<String> = rules
            .versions
            .iter()
            .map(|v| format!("{}/{v}", rules.group))
            .collect();
        issues.error(
            &FieldPath::root("apiVersion"),
            format!(
                "{} is served as {}, not {api_version:?}",
                rules.kind,
                versions.join(", ")
            ),
        );
    }
}

/// Checks `metadata` (name, namespace, annotations) and returns what the spec checks need.
fn check_metadata<'a>(rules: &Kind, object: &'a Value, issues: &mut Issues) -> Context<'a> {
    let meta = FieldPath::root("metadata");
    let metadata = object.get("metadata");
    let text = |field: &str| metadata.and_then(|m| m.get(field)).and_then(Value::as_str);
    match text("name") {
        Some(name) => issues.check(&meta.field("name"), check_name(rules, name)),
        // A name is generated on create; the webhook only ever sees the generated one.
        None if text("generateName").is_some() => {}
        None => issues.error(&meta.field("name"), "metadata.name is required"),
    }
    let namespace = text("namespace").filter(|ns| !ns.is_empty());
    if let Some(ns) = namespace {
        if !names::is_k8s_dns_label(ns) {
            issues.error(
                &meta.field("namespace"),
                format!("namespace {ns:?} must be a DNS-1123 label"),
            );
        }
    }
    let annotations: BTreeMap<&str, &str> = metadata
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
        .collect();
    if annotations.contains_key(DRY_RUN_ANNOTATION) && rules.kind != "AuthorizationPolicy" {
        issues.error(
            &meta.field("annotations").key(DRY_RUN_ANNOTATION),
            format!(
                "{} does not support the annotation {DRY_RUN_ANNOTATION}; please remove it",
                rules.kind
            ),
        );
    }
    Context {
        namespace,
        annotations,
    }
}

fn check_name(rules: &Kind, name: &str) -> Result<(), String> {
    match rules.name {
        NameRule::Subdomain if !names::is_k8s_dns_subdomain(name) => Err(format!(
            "invalid name {name:?}: it must be a DNS-1123 subdomain (lower-case letters, digits, - and ., at most 253 characters)"
        )),
        NameRule::Label if !names::is_k8s_dns_label(name) => Err(format!(
            "invalid gateway name {name:?}: it must be a DNS-1123 label (lower-case letters, digits and -, no dots, at most 63 characters)"
        )),
        _ => Ok(()),
    }
}

/// Reads `spec` as `T` and runs the kind's checks on it. A missing or null spec is read as `{}`
/// (Istio's CRDs do not require one). A spec that does not deserialize is one error at the field
/// serde names; the kind's checks then do not run, since they need the typed spec.
fn check_spec<T: DeserializeOwned>(
    object: &Value,
    context: &Context,
    issues: &mut Issues,
    validate: fn(&T, &Context, &mut Issues),
) {
    let empty = Value::Object(Default::default());
    let spec = match object.get("spec") {
        None | Some(Value::Null) => &empty,
        Some(spec) => spec,
    };
    match serde_path_to_error::deserialize::<_, T>(spec) {
        Ok(typed) => validate(&typed, context, issues),
        Err(e) => {
            let message = e.inner().to_string();
            let mut at = "spec".to_string();
            let path = e.path().to_string();
            if path != "." {
                if !path.starts_with('[') {
                    at.push('.');
                }
                at.push_str(&path);
            }
            // A missing field is reported at the object that lacks it; name the field itself.
            if let Some(field) = backquoted_field(&message) {
                if !at.ends_with(&format!(".{field}")) {
                    at.push('.');
                    at.push_str(field);
                }
            }
            issues.error(&FieldPath::root(&at), message);
        }
    }
}

/// The field an "unknown field `x`" or "missing field `x`" message names.
fn backquoted_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next()
}

/// What every kind's unit tests share: run a kind's checks on a spec written as JSON, and list
/// where the issues are.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Runs `validate` on `spec` as the kind's typed spec, in namespace `shop`.
    pub(crate) fn run<T: DeserializeOwned>(
        spec: Value,
        validate: fn(&T, &Context, &mut Issues),
    ) -> Report {
        run_in(spec, Some("shop"), &[], validate)
    }

    /// [`run`] with a namespace (or none, as for a file checked offline) and annotations.
    pub(crate) fn run_in<T: DeserializeOwned>(
        spec: Value,
        namespace: Option<&str>,
        annotations: &[(&str, &str)],
        validate: fn(&T, &Context, &mut Issues),
    ) -> Report {
        let typed: T = serde_json::from_value(spec).expect("the spec deserializes");
        let context = Context {
            namespace,
            annotations: annotations.iter().copied().collect(),
        };
        let mut issues = Issues::default();
        validate(&typed, &context, &mut issues);
        issues.into_report()
    }

    /// Asserts that a report has neither errors nor warnings.
    #[track_caller]
    pub(crate) fn assert_clean(report: &Report) {
        assert!(
            report.is_valid() && report.warnings.is_empty(),
            "{report:?}"
        );
    }

    pub(crate) fn error_fields(report: &Report) -> Vec<&str> {
        report.errors.iter().map(|e| e.field.as_str()).collect()
    }

    pub(crate) fn warning_fields(report: &Report) -> Vec<&str> {
        report.warnings.iter().map(|e| e.field.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vs(spec: Value) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": spec,
        })
    }

    #[test]
    fn unknown_kinds_are_not_validated() {
        assert!(validate_object("networking.istio.io", "EnvoyFilter", &json!({})).is_none());
        assert!(validate_object("example.com", "VirtualService", &json!({})).is_none());
    }

    #[test]
    fn a_spec_that_does_not_deserialize_names_the_field() {
        let report = validate_object(
            NETWORKING,
            "VirtualService",
            &vs(json!({"hosts": ["reviews"], "http": [{"rout": []}]})),
        )
        .expect("known kind");
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert_eq!(report.errors[0].field, "spec.http[0].rout");
        assert!(report.errors[0].reason.contains("unknown field `rout`"));

        let se = json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "ext"},
            "spec": {"ports": [{"number": "https", "name": "https"}]},
        });
        let report = validate_object(NETWORKING, "ServiceEntry", &se).expect("known kind");
        assert_eq!(report.errors[0].field, "spec.ports[0].number", "{report:?}");
    }

    #[test]
    fn a_spec_of_the_wrong_type_is_one_error_at_spec() {
        let report = validate_object(
            NETWORKING,
            "Sidecar",
            &json!({"metadata": {"name": "s"}, "spec": "egress"}),
        )
        .expect("known kind");
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert_eq!(report.errors[0].field, "spec");
        let report =
            validate_object(SECURITY, "AuthorizationPolicy", &json!(null)).expect("known kind");
        assert_eq!(report.errors[0].field, "metadata.name");
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let se = json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "ext"}, "spec": {}});
        let report = validate_object(NETWORKING, "ServiceEntry", &se).expect("known kind");
        assert_eq!(report.errors[0].field, "spec.hosts", "{report:?}");
    }

    #[test]
    fn every_served_version_is_accepted() {
        for version in ["v1", "v1beta1", "v1alpha3"] {
            let mut object = vs(
                json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}),
            );
            object["apiVersion"] = json!(format!("networking.istio.io/{version}"));
            let report = validate_object(NETWORKING, "VirtualService", &object).expect("known");
            assert!(report.is_valid(), "{version}: {report:?}");
        }
        let pa = json!({"apiVersion": "security.istio.io/v1alpha3", "kind": "PeerAuthentication",
            "metadata": {"name": "default"}, "spec": {}});
        let report = validate_object(SECURITY, "PeerAuthentication", &pa).expect("known");
        assert_eq!(report.errors[0].field, "apiVersion");
    }

    #[test]
    fn metadata_names() {
        let mut object = vs(
            json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}),
        );
        object["metadata"]["name"] = json!("Reviews_v1");
        let report = validate_object(NETWORKING, "VirtualService", &object).expect("known");
        assert_eq!(report.errors[0].field, "metadata.name");

        object["metadata"]["name"] = json!("reviews.v1");
        let report = validate_object(NETWORKING, "VirtualService", &object).expect("known");
        assert!(report.is_valid(), "{report:?}");

        let gw = json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "public.gateway"},
            "spec": {"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}});
        let report = validate_object(NETWORKING, "Gateway", &gw).expect("known");
        assert_eq!(report.errors[0].field, "metadata.name", "{report:?}");
        assert!(report.errors[0].reason.contains("no dots"));

        let mut object = vs(
            json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}),
        );
        object["metadata"] = json!({"generateName": "reviews-"});
        assert!(validate_object(NETWORKING, "VirtualService", &object)
            .expect("known")
            .is_valid());
        object["metadata"] = json!({});
        let report = validate_object(NETWORKING, "VirtualService", &object).expect("known");
        assert_eq!(report.errors[0].field, "metadata.name");
    }

    #[test]
    fn dry_run_is_only_for_authorization_policies() {
        let mut object = vs(
            json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}),
        );
        object["metadata"]["annotations"] = json!({"istio.io/dry-run": "true"});
        let report = validate_object(NETWORKING, "VirtualService", &object).expect("known");
        assert_eq!(
            report.errors[0].field,
            "metadata.annotations[istio.io/dry-run]"
        );
    }
}
