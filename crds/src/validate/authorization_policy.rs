//! AuthorizationPolicy: how it attaches, its action and provider, and every rule's sources,
//! operations and conditions.

use crate::istio::security::{AuthorizationAction, Condition, Operation, Rule, Source};
use crate::istio::AuthorizationPolicySpec;

use super::net::{check_ip_or_cidr, check_port};
use super::policy::{check_attachment, Attachment};
use super::report::{FieldPath, Issues};
use super::{Context, DRY_RUN_ANNOTATION};

/// Condition keys with exact names, and whether their values are IP/CIDRs, ports or service
/// accounts. Keys of the form `name[...]` are in [`MAP_KEYS`].
const KEYS: [(&str, ValueKind); 11] = [
    ("source.ip", ValueKind::IpBlock),
    ("remote.ip", ValueKind::IpBlock),
    ("source.namespace", ValueKind::Text),
    ("source.serviceAccount", ValueKind::ServiceAccount),
    ("source.principal", ValueKind::Text),
    ("request.auth.principal", ValueKind::Text),
    ("request.auth.audiences", ValueKind::Text),
    ("request.auth.presenter", ValueKind::Text),
    ("destination.ip", ValueKind::IpBlock),
    ("destination.port", ValueKind::Port),
    ("connection.sni", ValueKind::Text),
];

/// Condition keys that take a `[name]` suffix, e.g. `request.headers[x-tenant]`.
const MAP_KEYS: [&str; 4] = [
    "request.headers",
    "request.experimental.inline.headers",
    "request.auth.claims",
    "experimental.envoy.filters.",
];

#[derive(Clone, Copy)]
enum ValueKind {
    Text,
    IpBlock,
    Port,
    ServiceAccount,
}

pub(super) fn validate(policy: &AuthorizationPolicySpec, context: &Context, issues: &mut Issues) {
    let spec = FieldPath::root("spec");
    let attachment = Attachment {
        selector: policy.selector.as_ref(),
        target_ref: policy.target_ref.as_ref(),
        target_refs: policy.target_refs.as_ref(),
    };
    check_attachment(&attachment, &spec, issues);
    let action = policy.action.unwrap_or(AuthorizationAction::Allow);
    check_dry_run(action, context, issues);
    match action {
        AuthorizationAction::Custom => check_custom(policy, &spec, issues),
        _ if policy.provider.is_some() => issues.error(
            &spec.field("provider"),
            format!(
                "`provider` must not be with non CUSTOM action, found {}",
                action_name(action)
            ),
        ),
        _ => {}
    }
    if action == AuthorizationAction::Deny && has_no_rules(policy) {
        issues.error(
            &spec.field("rules"),
            "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
        );
    }
    for (i, rule) in policy.rules.iter().flatten().enumerate() {
        let at = spec.field("rules").index(i);
        check_rule(rule, &at, issues);
        if action == AuthorizationAction::Deny && denies_tcp_by_http_attributes(rule) {
            issues.warn(
                &at,
                "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
            );
        }
    }
}

/// `rules: []` is no rules, as in Istio's API (an empty list and an absent one are the same).
fn has_no_rules(policy: &AuthorizationPolicySpec) -> bool {
    policy.rules.as_ref().is_none_or(Vec::is_empty)
}

fn action_name(action: AuthorizationAction) -> &'static str {
    match action {
        AuthorizationAction::Allow => "ALLOW",
        AuthorizationAction::Deny => "DENY",
        AuthorizationAction::Audit => "AUDIT",
        AuthorizationAction::Custom => "CUSTOM",
    }
}

/// `istio.io/dry-run` must be a boolean and works with ALLOW and DENY only.
fn check_dry_run(action: AuthorizationAction, context: &Context, issues: &mut Issues) {
    let Some(value) = context.annotations.get(DRY_RUN_ANNOTATION) else {
        return;
    };
    let at = FieldPath::root("metadata")
        .field("annotations")
        .key(DRY_RUN_ANNOTATION);
    if !matches!(
        action,
        AuthorizationAction::Allow | AuthorizationAction::Deny
    ) {
        issues.error(
            &at,
            format!("the annotation {DRY_RUN_ANNOTATION} currently only supports action ALLOW/DENY, found action {}", action_name(action)),
        );
    } else if !matches!(
        *value,
        "true" | "false" | "True" | "False" | "TRUE" | "FALSE" | "1" | "0" | "t" | "f" | "T" | "F"
    ) {
        issues.error(
            &at,
            format!(
                "annotation {DRY_RUN_ANNOTATION} with invalid value ({value}): use true or false"
            ),
        );
    }
}

/// A CUSTOM policy hands requests to an external authorizer: it needs rules (or it never
/// triggers) and a provider, and its rules cannot use the attributes only known after
/// authentication, which happens after the external call.
fn check_custom(policy: &AuthorizationPolicySpec, spec: &FieldPath, issues: &mut Issues) {
    let provider_named = policy
        .provider
        .as_ref()
        .and_then(|p| p.name.as_deref())
        .is_some_and(|name| !name.is_empty());
    if has_no_rules(policy) {
        issues.error(
            &spec.field("rules"),
            "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
        );
    } else if !provider_named {
        issues.error(
            &spec.field("provider").field("name"),
            "`provider.name` must not be empty",
        );
    }
    for (i, rule) in policy.rules.iter().flatten().enumerate() {
        let at = spec.field("rules").index(i);
        for (j, from) in rule.from.iter().flatten().enumerate() {
            let Some(source) = &from.source else { continue };
            let at = at.field("from").index(j).field("source");
            let unsupported = [
                (&source.namespaces, "namespaces"),
                (&source.not_namespaces, "notNamespaces"),
                (&source.service_accounts, "serviceAccounts"),
                (&source.not_service_accounts, "notServiceAccounts"),
                (&source.principals, "principals"),
                (&source.not_principals, "notPrincipals"),
                (&source.request_principals, "requestPrincipals"),
                (&source.not_request_principals, "notRequestPrincipals"),
            ];
            for (values, field) in unsupported {
                if values.as_ref().is_some_and(|v| !v.is_empty()) {
                    issues.error(
                        &at.field(field),
                        format!("{field} is currently not supported with CUSTOM action"),
                    );
                }
            }
        }
        for (j, condition) in rule.when.iter().flatten().enumerate() {
            let key = condition.key.as_str();
            if matches!(
                key,
                "source.namespace" | "source.serviceAccount" | "source.principal"
            ) || key.starts_with("request.auth.")
            {
                issues.error(
                    &at.field("when").index(j).field("key"),
                    format!("{key} is currently not supported with CUSTOM action"),
                );
            }
        }
    }
}

fn check_rule(rule: &Rule, at: &FieldPath, issues: &mut Issues) {
    // An empty list matches nothing, which is never what was written: `from: []` does not mean
    // "from anywhere" (that is leaving `from` out).
    for (list_empty, field) in [
        (rule.from.as_ref().is_some_and(Vec::is_empty), "from"),
        (rule.to.as_ref().is_some_and(Vec::is_empty), "to"),
        (rule.when.as_ref().is_some_and(Vec::is_empty), "when"),
    ] {
        if list_empty {
            issues.error(
                &at.field(field),
                format!("`{field}` must not be empty: leave it out to match everything"),
            );
        }
    }
    for (i, from) in rule.from.iter().flatten().enumerate() {
        let at = at.field("from").index(i);
        match &from.source {
            None => issues.error(&at.field("source"), "`from.source` must not be nil"),
            Some(source) => check_source(source, &at.field("source"), issues),
        }
    }
    for (i, to) in rule.to.iter().flatten().enumerate() {
        let at = at.field("to").index(i);
        match &to.operation {
            None => issues.error(&at.field("operation"), "`to.operation` must not be nil"),
            Some(operation) => check_operation(operation, &at.field("operation"), issues),
        }
    }
    for (i, condition) in rule.when.iter().flatten().enumerate() {
        check_condition(condition, &at.field("when").index(i), issues);
    }
}

/// Checks a list of values: none empty, each of the given kind.
fn check_values(
    values: &Option<Vec<String>>,
    kind: ValueKind,
    at: &FieldPath,
    issues: &mut Issues,
) {
    for (i, value) in values.iter().flatten().enumerate() {
        let at = at.index(i);
        if value.is_empty() {
            issues.error(&at, "empty value not allowed");
            continue;
        }
        let checked = match kind {
            ValueKind::Text => Ok(()),
            ValueKind::IpBlock => check_ip_or_cidr(value),
            ValueKind::Port => value
                .parse::<u32>()
                .map_err(|_| format!("bad port ({value}): not a number"))
                .and_then(check_port),
            ValueKind::ServiceAccount => check_service_account(value),
        };
        issues.check(&at, checked);
    }
}

/// `namespace/serviceAccount` or `serviceAccount`, without wildcards.
fn check_service_account(value: &str) -> Result<(), String> {
    if value.contains('*') {
        return Err(format!("wildcard not allowed in service account {value:?}"));
    }
    if value.len() > 320 {
        return Err(format!(
            "service account {value:?} cannot exceed 320 characters"
        ));
    }
    let parts: Vec<&str> = value.split('/').collect();
    if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "expected format 'serviceAccount' or 'namespace/serviceAccount', found {value:?}"
        ));
    }
    Ok(())
}

fn has_any(values: &[&Option<Vec<String>>]) -> bool {
    values
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
}

fn check_source(source: &Source, at: &FieldPath, issues: &mut Issues) {
    let identities = [
        &source.principals,
        &source.not_principals,
        &source.namespaces,
        &source.not_namespaces,
    ];
    let accounts = [&source.service_accounts, &source.not_service_accounts];
    if has_any(&identities) && has_any(&accounts) {
        issues.error(
            at,
            "cannot set serviceAccounts with namespaces or principals",
        );
    }
    let all = [
        &source.principals,
        &source.not_principals,
        &source.request_principals,
        &source.not_request_principals,
        &source.namespaces,
        &source.not_namespaces,
        &source.service_accounts,
        &source.not_service_accounts,
        &source.ip_blocks,
        &source.not_ip_blocks,
        &source.remote_ip_blocks,
        &source.not_remote_ip_blocks,
    ];
    if !has_any(&all) {
        issues.error(at, "`from.source` must not be empty");
    }
    let fields = [
        (&source.principals, "principals", ValueKind::Text),
        (&source.not_principals, "notPrincipals", ValueKind::Text),
        (
            &source.request_principals,
            "requestPrincipals",
            ValueKind::Text,
        ),
        (
            &source.not_request_principals,
            "notRequestPrincipals",
            ValueKind::Text,
        ),
        (&source.namespaces, "namespaces", ValueKind::Text),
        (&source.not_namespaces, "notNamespaces", ValueKind::Text),
        (
            &source.service_accounts,
            "serviceAccounts",
            ValueKind::ServiceAccount,
        ),
        (
            &source.not_service_accounts,
            "notServiceAccounts",
            ValueKind::ServiceAccount,
        ),
        (&source.ip_blocks, "ipBlocks", ValueKind::IpBlock),
        (&source.not_ip_blocks, "notIpBlocks", ValueKind::IpBlock),
        (
            &source.remote_ip_blocks,
            "remoteIpBlocks",
            ValueKind::IpBlock,
        ),
        (
            &source.not_remote_ip_blocks,
            "notRemoteIpBlocks",
            ValueKind::IpBlock,
        ),
    ];
    for (values, field, kind) in fields {
        check_values(values, kind, &at.field(field), issues);
    }
}

fn check_operation(operation: &Operation, at: &FieldPath, issues: &mut Issues) {
    let all = [
        &operation.hosts,
        &operation.not_hosts,
        &operation.ports,
        &operation.not_ports,
        &operation.methods,
        &operation.not_methods,
        &operation.paths,
        &operation.not_paths,
    ];
    if !has_any(&all) {
        issues.error(at, "`to.operation` must not be empty");
    }
    for (values, field) in [
        (&operation.ports, "ports"),
        (&operation.not_ports, "notPorts"),
    ] {
        check_values(values, ValueKind::Port, &at.field(field), issues);
    }
    for (values, field) in [
        (&operation.methods, "methods"),
        (&operation.not_methods, "notMethods"),
    ] {
        for (i, method) in values.iter().flatten().enumerate() {
            let at = at.field(field).index(i);
            if method.is_empty() {
                issues.error(&at, "empty value not allowed");
            } else {
                super::http::check_rule_method(method, &at, issues);
            }
        }
    }
    for (values, field) in [
        (&operation.hosts, "hosts"),
        (&operation.not_hosts, "notHosts"),
    ] {
        for (i, host) in values.iter().flatten().enumerate() {
            issues.check(&at.field(field).index(i), check_glob(host));
        }
    }
    for (values, field) in [
        (&operation.paths, "paths"),
        (&operation.not_paths, "notPaths"),
    ] {
        for (i, path) in values.iter().flatten().enumerate() {
            issues.check(&at.field(field).index(i), check_path(path));
        }
    }
}

/// A host or path value: exact, `*` alone, or one `*` as the first or last character (suffix
/// or prefix match). Stricter than Istio, which takes a `*` elsewhere literally: in a policy, a
/// value that silently matches nothing widens or narrows access.
fn check_glob(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("empty value not allowed".into());
    }
    let stars = value.matches('*').count();
    let placed = value == "*" || (stars == 1 && (value.starts_with('*') || value.ends_with('*')));
    if stars > 0 && !placed {
        return Err(format!(
            "{value:?}: `*` is only supported alone, as the first character (suffix match) or as the last character (prefix match)"
        ));
    }
    Ok(())
}

/// A path: a [`check_glob`] value, or a template of `/`-separated segments where `{*}` matches
/// one segment and `{**}` (last only) the rest; other segments of a template must be literal.
fn check_path(path: &str) -> Result<(), String> {
    if !(path.contains("{*}") || path.contains("{**}")) {
        if path.contains(['{', '}']) {
            return Err(format!("invalid or unsupported path {path:?}: contains '{{' or '}}' beyond a supported path template ({{*}} or {{**}})"));
        }
        return check_glob(path);
    }
    let mut any_seen = false;
    for segment in path.trim_matches('/').split('/') {
        match segment {
            "{*}" | "{**}" if any_seen => {
                return Err(format!(
                    "invalid or unsupported path {path:?}: {{**}} is not the last operator"
                ));
            }
            "{*}" => {}
            "{**}" => any_seen = true,
            literal if literal.contains(['{', '}']) => {
                return Err(format!("invalid or unsupported path {path:?}: contains '{{' or '}}' beyond a supported path template"));
            }
            literal if !is_path_literal(literal) => {
                return Err(format!("invalid or unsupported path {path:?}: segment {literal:?} is not a valid string literal"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// RFC 3986 `pchar`s, which the segments of a path template must be made of.
fn is_path_literal(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~%!$&'()+,;:@=".contains(c))
}

fn check_condition(condition: &Condition, at: &FieldPath, issues: &mut Issues) {
    let key = condition.key.as_str();
    if key.is_empty() {
        issues.error(&at.field("key"), "`key` must not be empty");
        return;
    }
    let values_empty = condition.values.as_ref().is_none_or(Vec::is_empty);
    let not_values_empty = condition.not_values.as_ref().is_none_or(Vec::is_empty);
    if values_empty && not_values_empty {
        issues.error(
            at,
            format!("at least one of `values` or `notValues` must be set for key {key}"),
        );
        return;
    }
    let kind = match condition_key_kind(key) {
        Ok(kind) => kind,
        Err(e) => {
            issues.error(&at.field("key"), e);
            return;
        }
    };
    check_values(&condition.values, kind, &at.field("values"), issues);
    check_values(&condition.not_values, kind, &at.field("notValues"), issues);
}

/// Which kind of values a condition key takes, or why the key is not one Istio knows.
fn condition_key_kind(key: &str) -> Result<ValueKind, String> {
    if let Some((_, kind)) = KEYS.iter().find(|(k, _)| *k == key) {
        return Ok(*kind);
    }
    if let Some(prefix) = MAP_KEYS.iter().find(|p| key.starts_with(*p)) {
        // `name[inner]` with a non-empty inner name.
        let open = key.find('[');
        let well_formed = key.ends_with(']') && open.is_some_and(|o| o > 0 && o + 2 < key.len());
        return if well_formed {
            Ok(ValueKind::Text)
        } else {
            Err(format!(
                "bad key ({key}): should have format {prefix}[name]"
            ))
        };
    }
    Err(match key {
        "destination.namespace" => format!("attribute {key} is replaced by the metadata.namespace"),
        k if k.starts_with("destination.labels") => {
            format!("attribute {key} is replaced by the workload selector")
        }
        "destination.name" | "destination.user" => {
            format!("deprecated attribute {key}: only supported in v1alpha1")
        }
        _ => format!("unknown attribute: {key}"),
    })
}

/// A DENY rule that uses only HTTP attributes cannot be evaluated on TCP traffic, so Istio
/// denies that traffic whole.
fn denies_tcp_by_http_attributes(rule: &Rule) -> bool {
    let sources: Vec<&Source> = rule
        .from
        .iter()
        .flatten()
        .filter_map(|f| f.source.as_ref())
        .collect();
    let operations: Vec<&Operation> = rule
        .to
        .iter()
        .flatten()
        .filter_map(|t| t.operation.as_ref())
        .collect();
    let tcp_in_from = sources.iter().any(|s| {
        [
            &s.principals,
            &s.not_principals,
            &s.namespaces,
            &s.not_namespaces,
            &s.ip_blocks,
            &s.not_ip_blocks,
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
            &s.service_accounts,
            &s.not_service_accounts,
        ]
        .iter()
        .any(|v| v.is_some())
    });
    let tcp_in_to = operations
        .iter()
        .any(|o| o.ports.is_some() || o.not_ports.is_some());
    (!sources.is_empty() && operations.is_empty() && !tcp_in_from)
        || (!operations.is_empty() && !tcp_in_to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::*;
    use crate::validate::Report;
    use serde_json::{json, Value};

    fn check_with(spec: Value, annotations: &[(&str, &str)]) -> Report {
        run_in(spec, Some("shop"), annotations, validate)
    }

    fn check(spec: Value) -> Report {
        check_with(spec, &[])
    }

    #[test]
    fn typical_policies_are_valid() {
        for spec in [
            json!({}),
            json!({"action": "ALLOW", "rules": [{}]}),
            json!({"selector": {"matchLabels": {"app": "api"}}, "rules": [{
                "from": [{"source": {"principals": ["cluster.local/ns/shop/sa/frontend"]}}],
                "to": [{"operation": {"methods": ["GET"], "paths": ["/api/*", "/orders/{*}/items"], "ports": ["8080"]}}],
                "when": [{"key": "request.auth.claims[groups]", "values": ["customers"]}]}]}),
            json!({"action": "DENY", "rules": [{"from": [{"source": {"notNamespaces": ["shop"]}}]}]}),
        ] {
            assert_clean(&check(spec));
        }
    }

    #[test]
    fn custom_needs_a_provider_and_provider_needs_custom() {
        assert_eq!(
            error_fields(&check(json!({"action": "CUSTOM", "rules": [{}]}))),
            ["spec.provider.name"]
        );
        assert_eq!(
            error_fields(&check(
                json!({"action": "CUSTOM", "provider": {"name": "authz"}})
            )),
            ["spec.rules"]
        );
        assert!(
            check(json!({"action": "CUSTOM", "provider": {"name": "authz"}, "rules": [{}]}))
                .is_valid()
        );
        assert_eq!(
            error_fields(&check(
                json!({"provider": {"name": "authz"}, "rules": [{}]})
            )),
            ["spec.provider"]
        );
        let report = check(
            json!({"action": "CUSTOM", "provider": {"name": "authz"}, "rules": [{
            "from": [{"source": {"principals": ["a"]}}], "when": [{"key": "request.auth.claims[iss]", "values": ["x"]}]}]}),
        );
        assert_eq!(
            error_fields(&report),
            [
                "spec.rules[0].from[0].source.principals",
                "spec.rules[0].when[0].key"
            ]
        );
    }

    #[test]
    fn deny_needs_rules() {
        assert_eq!(
            error_fields(&check(json!({"action": "DENY"}))),
            ["spec.rules"]
        );
        assert_eq!(
            error_fields(&check(json!({"action": "DENY", "rules": []}))),
            ["spec.rules"]
        );
        assert!(check(json!({"action": "DENY", "rules": [{}]})).is_valid());
    }

    #[test]
    fn selector_and_target_refs_are_exclusive() {
        let report = check(
            json!({"selector": {"matchLabels": {"app": "api"}}, "targetRefs": [{"kind": "Service", "name": "api"}]}),
        );
        assert_eq!(error_fields(&report), ["spec"]);
        let report = check(json!({"targetRef": {"kind": "Service", "name": "api"}}));
        assert!(report.is_valid());
        assert_eq!(warning_fields(&report), ["spec.targetRef"]);
    }

    #[test]
    fn empty_entries_are_errors() {
        let report = check(json!({"rules": [{"from": [], "to": [], "when": []}]}));
        assert_eq!(
            error_fields(&report),
            [
                "spec.rules[0].from",
                "spec.rules[0].to",
                "spec.rules[0].when"
            ]
        );
        let report = check(
            json!({"rules": [{"from": [{}, {"source": {}}], "to": [{}, {"operation": {}}]}]}),
        );
        assert_eq!(
            error_fields(&report),
            [
                "spec.rules[0].from[0].source",
                "spec.rules[0].from[1].source",
                "spec.rules[0].to[0].operation",
                "spec.rules[0].to[1].operation",
            ]
        );
    }

    #[test]
    fn source_values() {
        let report = check(json!({"rules": [{"from": [{"source": {
            "principals": [""], "namespaces": ["shop"], "serviceAccounts": ["shop/*"],
            "ipBlocks": ["10.0.0.0/33"], "remoteIpBlocks": ["not-an-ip"]}}]}]}));
        assert_eq!(
            error_fields(&report),
            [
                "spec.rules[0].from[0].source",
                "spec.rules[0].from[0].source.principals[0]",
                "spec.rules[0].from[0].source.serviceAccounts[0]",
                "spec.rules[0].from[0].source.ipBlocks[0]",
                "spec.rules[0].from[0].source.remoteIpBlocks[0]",
            ]
        );
    }

    #[test]
    fn operation_values() {
        let report = check(json!({"rules": [{"to": [{"operation": {
            "ports": ["http", "70000"], "methods": ["get", "G ET"], "paths": ["/a/*/b", "/a/{**}/{*}", "/a/{x}"],
            "hosts": ["*.example.com", "a*b.example.com"]}}]}]}));
        assert_eq!(
            error_fields(&report),
            [
                "spec.rules[0].to[0].operation.ports[0]",
                "spec.rules[0].to[0].operation.ports[1]",
                "spec.rules[0].to[0].operation.methods[1]",
                "spec.rules[0].to[0].operation.hosts[1]",
                "spec.rules[0].to[0].operation.paths[0]",
                "spec.rules[0].to[0].operation.paths[1]",
                "spec.rules[0].to[0].operation.paths[2]",
            ]
        );
        assert_eq!(
            warning_fields(&report),
            ["spec.rules[0].to[0].operation.methods[0]"]
        );
    }

    #[test]
    fn conditions() {
        let report = check(json!({"rules": [{"when": [
            {"key": "request.headers[x-tenant]", "values": ["acme"]},
            {"key": "connection.sni", "values": ["api.example.com"]},
            {"key": "source.ip", "values": ["10.0.0.0/8"], "notValues": ["bad"]},
            {"key": "destination.port", "values": ["https"]},
            {"key": "request.headers[]", "values": ["x"]},
            {"key": "request.color", "values": ["blue"]},
            {"key": "source.namespace"},
            {"key": "destination.namespace", "values": ["shop"]},
        ]}]}));
        assert_eq!(
            error_fields(&report),
            [
                "spec.rules[0].when[2].notValues[0]",
                "spec.rules[0].when[3].values[0]",
                "spec.rules[0].when[4].key",
                "spec.rules[0].when[5].key",
                "spec.rules[0].when[6]",
                "spec.rules[0].when[7].key",
            ]
        );
    }

    #[test]
    fn deny_with_only_http_attributes_warns() {
        let report = check(
            json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}),
        );
        assert!(report.is_valid());
        assert_eq!(warning_fields(&report), ["spec.rules[0]"]);
        let report = check(
            json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"], "ports": ["8080"]}}]}]}),
        );
        assert!(report.warnings.is_empty());
    }

    #[test]
    fn dry_run_annotation() {
        assert!(check_with(json!({"rules": [{}]}), &[("istio.io/dry-run", "true")]).is_valid());
        let report = check_with(json!({"rules": [{}]}), &[("istio.io/dry-run", "yes")]);
        assert_eq!(
            error_fields(&report),
            ["metadata.annotations[istio.io/dry-run]"]
        );
        let report = check_with(
            json!({"action": "AUDIT", "rules": [{}]}),
            &[("istio.io/dry-run", "true")],
        );
        assert_eq!(
            error_fields(&report),
            ["metadata.annotations[istio.io/dry-run]"]
        );
    }
}
