//! VirtualService: its hosts and gateways, and every HTTP, TLS and TCP rule (matches,
//! destinations, redirects, rewrites, retries, timeouts, faults, mirrors, CORS, headers).

use std::collections::BTreeMap;

use crate::istio::networking::{
    CorsPolicy, HeaderOperations, Headers, HttpFaultInjection, HttpMatchRequest, HttpRedirect,
    HttpRetry, HttpRewrite, HttpRoute, HttpRouteDestination, L4MatchAttributes, RouteDestination,
    TcpRoute, TlsMatchAttributes, TlsRoute,
};
use crate::istio::{Destination, StringMatch, VirtualServiceSpec};

use super::destination_rule::check_subset_name;
use super::duration::{check_duration, check_whole_seconds};
use super::hosts::{
    check_export_to, check_gateway_reference, check_wildcard_domain, host_is_subset_of,
    hosts_overlap, ExportToOwner, MESH_GATEWAY,
};
use super::http::{
    check_cors_method, check_grpc_status, check_header_match_name, check_header_name,
    check_header_to_change, check_header_value, check_http_status, check_percent, check_percentage,
    check_regex, check_request_header_to_set, check_retry_on, check_string_match,
    is_jwt_claim_route, MatchField,
};
use super::names::{check_labels, is_dns_label};
use super::net::{check_ip_or_cidr, check_port, is_ip};
use super::report::{FieldPath, Issues};
use super::Context;

/// Istio refuses direct response bodies above 1 MiB and warns above 100 KiB: every proxy keeps
/// them in memory.
const BODY_MAX: usize = 1024 * 1024;
const BODY_WARN: usize = 100 * 1024;

/// What the checks of one rule need to know about the VirtualService around it.
struct Scope<'a> {
    hosts: &'a [String],
    /// No hosts: a delegate, whose routes are spliced into the routes delegating to it.
    is_delegate: bool,
    /// Bound only to gateways, not to the sidecars of the mesh.
    gateways_only: bool,
}

pub(super) fn validate(vs: &VirtualServiceSpec, context: &Context, issues: &mut Issues) {
    let spec = FieldPath::root("spec");
    let hosts = vs.hosts.as_deref().unwrap_or_default();
    let gateways = vs.gateways.as_deref().unwrap_or_default();
    let http = vs.http.as_deref().unwrap_or_default();
    let tls = vs.tls.as_deref().unwrap_or_default();
    let tcp = vs.tcp.as_deref().unwrap_or_default();
    let scope = Scope {
        hosts,
        is_delegate: hosts.is_empty(),
        gateways_only: !gateways.is_empty() && !gateways.iter().any(|g| g == MESH_GATEWAY),
    };
    if scope.is_delegate {
        // A VirtualService without hosts is only reachable as a delegate, which is HTTP only
        // and bound wherever the delegating VirtualService is.
        let delegate_rules = [
            (
                !gateways.is_empty(),
                "gateways",
                "delegate virtual service must have no gateways specified",
            ),
            (
                !tls.is_empty(),
                "tls",
                "delegate virtual service must have no tls route specified",
            ),
            (
                !tcp.is_empty(),
                "tcp",
                "delegate virtual service must have no tcp route specified",
            ),
        ];
        for (broken, field, reason) in delegate_rules {
            if broken {
                issues.error(&spec.field(field), reason);
            }
        }
    }
    for (i, gateway) in gateways.iter().enumerate() {
        check_gateway_reference(gateway, &spec.field("gateways").index(i), issues);
    }
    check_hosts(vs, &scope, &spec.field("hosts"), issues);
    if http.is_empty() && tls.is_empty() && tcp.is_empty() {
        issues.error(
            &spec,
            "http, tcp or tls must be provided in virtual service",
        );
    }
    for (i, route) in http.iter().enumerate() {
        check_http_route(route, &scope, &spec.field("http").index(i), issues);
    }
    for (i, route) in tls.iter().enumerate() {
        check_tls_route(route, &scope, &spec.field("tls").index(i), issues);
    }
    for (i, route) in tcp.iter().enumerate() {
        check_tcp_route(route, &spec.field("tcp").index(i), issues);
    }
    check_export_to(
        vs.export_to.as_ref(),
        context.namespace,
        ExportToOwner::Other,
        &spec.field("exportTo"),
        issues,
    );
    warn_unreachable_rules(
        http.iter()
            .map(|r| (r.name.as_deref(), match_keys(r.match_.as_deref()))),
        &spec.field("http"),
        issues,
    );
    warn_unreachable_rules(
        tls.iter()
            .map(|r| (None, Some(r.match_.iter().map(json_key).collect()))),
        &spec.field("tls"),
        issues,
    );
    warn_unreachable_rules(
        tcp.iter().map(|r| (None, match_keys(r.match_.as_deref()))),
        &spec.field("tcp"),
        issues,
    );
}

/// Checks the hosts: DNS names (wildcard prefix allowed) or IPs, no `*` for the mesh, no overlaps.
fn check_hosts(vs: &VirtualServiceSpec, scope: &Scope, at: &FieldPath, issues: &mut Issues) {
    let sni_routing = vs
        .tls
        .iter()
        .flatten()
        .any(|r| r.match_.iter().any(|m| !m.sni_hosts.is_empty()));
    let mut all_valid = true;
    for (i, host) in scope.hosts.iter().enumerate() {
        let host_at = at.index(i);
        let checked = if scope.gateways_only {
            check_gateway_bound_host(host, sni_routing)
        } else {
            check_wildcard_domain(host)
        };
        match checked {
            Err(e) if !is_ip(host) => {
                issues.error(&host_at, e);
                all_valid = false;
            }
            Ok(()) if !scope.gateways_only && host == "*" => {
                issues.error(
                    &host_at,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_valid = false;
            }
            _ => {}
        }
    }
    // Overlapping hosts (`*.foo.com` and `a.foo.com`) make the routing of the overlap ambiguous.
    if all_valid {
        for (j, later) in scope.hosts.iter().enumerate() {
            if let Some(earlier) = scope.hosts[..j].iter().find(|h| hosts_overlap(h, later)) {
                issues.error(
                    &at.index(j),
                    format!("duplicate hosts in virtual service: {earlier} & {later}"),
                );
            }
        }
    }
}

/// A host of a VirtualService bound only to gateways. With SNI routing through an
/// AUTO_PASSTHROUGH gateway, the generated `outbound_.PORT_._.HOST` names are allowed too.
fn check_gateway_bound_host(host: &str, sni_routing: bool) -> Result<(), String> {
    if sni_routing && host.starts_with("outbound_") {
        let parts: Vec<&str> = host.split('_').collect();
        let port = parts
            .get(1)
            .map(|p| p.trim_matches('.'))
            .unwrap_or_default();
        let name = parts
            .get(3)
            .map(|p| p.trim_matches('.'))
            .unwrap_or_default();
        if parts.len() < 4
            || !port.starts_with(|c: char| c.is_ascii_digit())
            || !name.contains(|c: char| c.is_ascii_alphabetic())
        {
            return Err(format!(
                "domain name {host:?} invalid, should follow 'outbound_.<PORT>_._.<HOSTNAME>' format"
            ));
        }
        return Ok(());
    }
    check_wildcard_domain(host)
}

fn check_http_route(route: &HttpRoute, scope: &Scope, at: &FieldPath, issues: &mut Issues) {
    check_http_action(route, scope, at, issues);
    for (i, m) in route.match_.iter().flatten().enumerate() {
        check_http_match(m, scope, &at.field("match").index(i), issues);
    }
    if let Some(headers) = &route.headers {
        check_header_operations(headers, &at.field("headers"), issues);
    }
    if let Some(cors) = &route.cors_policy {
        check_cors(cors, &at.field("corsPolicy"), issues);
    }
    if let Some(fault) = &route.fault {
        check_fault(fault, &at.field("fault"), issues);
    }
    check_mirrors(route, at, issues);
    if let Some(redirect) = &route.redirect {
        check_redirect(redirect, &at.field("redirect"), issues);
    }
    if let Some(response) = &route.direct_response {
        let at = at.field("directResponse");
        issues.check(
            &at.field("status"),
            check_http_status(response.status.into()),
        );
        if let Some(body) = &response.body {
            check_body_size(
                body.string.as_deref().or(body.bytes.as_deref()),
                &at.field("body"),
                issues,
            );
            if body.string.is_some() && body.bytes.is_some() {
                issues.error(&at.field("body"), "only one of string or bytes may be set");
            }
        }
    }
    if let Some(retries) = &route.retries {
        check_retries(retries, &at.field("retries"), issues);
    }
    if let Some(rewrite) = &route.rewrite {
        check_rewrite(rewrite, &at.field("rewrite"), issues);
    }
    check_authority_rewritten_once(route, at, issues);
    check_http_destinations(
        route.route.as_deref().unwrap_or_default(),
        &at.field("route"),
        issues,
    );
    if let Some(timeout) = &route.timeout {
        issues.check(&at.field("timeout"), check_duration(timeout));
    }
}

/// A rule does exactly one thing with a request: forward it (`route`), redirect it, answer it
/// (`directResponse`) or hand it to another VirtualService (`delegate`). Faults and rewrites
/// only make sense when forwarding.
fn check_http_action(route: &HttpRoute, scope: &Scope, at: &FieldPath, issues: &mut Issues) {
    let forwards = route.route.as_ref().is_some_and(|r| !r.is_empty());
    let actions = [
        (forwards, "route"),
        (route.redirect.is_some(), "redirect"),
        (route.direct_response.is_some(), "directResponse"),
        (route.delegate.is_some(), "delegate"),
    ];
    let chosen: Vec<&str> = actions
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, n)| *n)
        .collect();
    match chosen.as_slice() {
        [] => issues.error(
            at,
            "HTTP route needs one of route, redirect, directResponse or delegate",
        ),
        [_] => {}
        [first, rest @ ..] => {
            for other in rest {
                issues.error(
                    &at.field(other),
                    format!("HTTP route cannot contain both {first} and {other}"),
                );
            }
        }
    }
    if route.delegate.is_some() && scope.is_delegate {
        issues.error(
            &at.field("delegate"),
            "delegate HTTP route cannot contain delegate",
        );
    }
    if !forwards {
        if let Some(action) = chosen.first() {
            if route.fault.is_some() {
                issues.error(
                    &at.field("fault"),
                    format!("HTTP route cannot contain both fault and {action}"),
                );
            }
            if route.rewrite.is_some() {
                issues.error(
                    &at.field("rewrite"),
                    format!("HTTP route cannot contain both rewrite and {action}"),
                );
            }
        }
    }
    if let Some(delegate) = &route.delegate {
        let at = at.field("delegate");
        match delegate.name.as_deref() {
            Some(name) if !name.is_empty() => {}
            _ => issues.error(
                &at.field("name"),
                "delegate needs the name of a VirtualService",
            ),
        }
        if let Some(ns) = delegate.namespace.as_deref().filter(|ns| !ns.is_empty()) {
            if !is_dns_label(ns) {
                issues.error(&at.field("namespace"), format!("invalid namespace {ns:?}"));
            }
        }
    }
    if route.mirror.is_some() && route.mirrors.is_some() {
        issues.error(
            &at.field("mirrors"),
            "HTTP route cannot contain both mirror and mirrors",
        );
    }
}

fn check_http_match(m: &HttpMatchRequest, scope: &Scope, at: &FieldPath, issues: &mut Issues) {
    let string_matches = [
        (&m.uri, "uri", MatchField::Uri),
        (&m.scheme, "scheme", MatchField::Value),
        (&m.method, "method", MatchField::Value),
        (&m.authority, "authority", MatchField::Value),
    ];
    for (value, field, kind) in string_matches {
        if let Some(value) = value {
            check_string_match(value, kind, &at.field(field), issues);
        }
    }
    check_header_matches(m.headers.as_ref(), scope, &at.field("headers"), issues);
    check_header_matches(
        m.without_headers.as_ref(),
        scope,
        &at.field("withoutHeaders"),
        issues,
    );
    for (name, value) in m.query_params.iter().flatten() {
        check_string_match(
            value,
            MatchField::PresenceAllowed,
            &at.field("queryParams").key(name),
            issues,
        );
    }
    if let Some(port) = m.port.filter(|p| *p != 0) {
        issues.check(&at.field("port"), check_port(port));
    }
    check_labels(m.source_labels.as_ref(), &at.field("sourceLabels"), issues);
    for (i, gateway) in m.gateways.iter().flatten().enumerate() {
        check_gateway_reference(gateway, &at.field("gateways").index(i), issues);
    }
    if let Some(ns) = m.source_namespace.as_deref().filter(|ns| !ns.is_empty()) {
        if !is_dns_label(ns) {
            issues.error(
                &at.field("sourceNamespace"),
                format!("sourceNamespace match {ns} is invalid"),
            );
        }
    }
}

fn check_header_matches(
    headers: Option<&BTreeMap<String, StringMatch>>,
    scope: &Scope,
    at: &FieldPath,
    issues: &mut Issues,
) {
    for (name, value) in headers.into_iter().flatten() {
        let at = at.key(name);
        issues.check(&at, check_header_match_name(name));
        // Only gateways validate JWTs before routing, so only they can route on claims.
        if is_jwt_claim_route(name) && !scope.gateways_only {
            issues.error(
                &at,
                format!("JWT claim based routing (key: {name}) is only supported for gateway, found no gateways"),
            );
        }
        // `regex: "*"` is Istio's spelling of "present" in withoutHeaders, not a regex.
        if value.regex.as_deref() != Some("*") {
            check_string_match(value, MatchField::PresenceAllowed, &at, issues);
        }
    }
}

fn check_header_operations(headers: &Headers, at: &FieldPath, issues: &mut Issues) {
    // A request may set its authority (`:authority`/`Host`); a response has none to set.
    let sides: [(&Option<HeaderOperations>, &str, HeaderCheck); 2] = [
        (&headers.request, "request", check_request_header_to_set),
        (&headers.response, "response", check_header_to_change),
    ];
    for (operations, side, check_name_to_set) in sides {
        let Some(operations) = operations else {
            continue;
        };
        let at = at.field(side);
        for (op, values) in [("set", &operations.set), ("add", &operations.add)] {
            for (name, value) in values.iter().flatten() {
                let at = at.field(op).key(name);
                issues.check(&at, check_name_to_set(name));
                issues.check(&at, check_header_value(value));
            }
        }
        for (i, name) in operations.remove.iter().flatten().enumerate() {
            issues.check(&at.field("remove").index(i), check_header_to_change(name));
        }
    }
}

type HeaderCheck = fn(&str) -> Result<(), String>;

/// The authority can be rewritten by `rewrite.authority` or by setting the `:authority`/`Host`
/// header, but only once: two rewrites would silently race.
fn check_authority_rewritten_once(route: &HttpRoute, at: &FieldPath, issues: &mut Issues) {
    let mut current = route.rewrite.as_ref().and_then(|r| r.authority.clone());
    let request = route.headers.as_ref().and_then(|h| h.request.as_ref());
    for (op, values) in request
        .into_iter()
        .flat_map(|r| [("set", &r.set), ("add", &r.add)])
    {
        for (name, value) in values.iter().flatten() {
            if !(name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")) {
                continue;
            }
            if let Some(have) = &current {
                issues.error(
                    &at.field("headers").field("request").field(op).key(name),
                    format!("authority header cannot be set multiple times: have {have:?}, attempting to set {value:?}"),
                );
            }
            current = Some(value.clone());
        }
    }
}

fn check_cors(cors: &CorsPolicy, at: &FieldPath, issues: &mut Issues) {
    if cors.allow_origin.is_some() {
        issues.warn(
            &at.field("allowOrigin"),
            "allowOrigin is deprecated; use allowOrigins",
        );
    }
    for (i, origin) in cors.allow_origins.iter().flatten().enumerate() {
        check_origin(origin, &at.field("allowOrigins").index(i), issues);
    }
    for (i, method) in cors.allow_methods.iter().flatten().enumerate() {
        issues.check(
            &at.field("allowMethods").index(i),
            check_cors_method(method),
        );
    }
    for (field, names) in [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ] {
        for (i, name) in names.iter().flatten().enumerate() {
            if name != "*" {
                issues.check(&at.field(field).index(i), check_header_name(name));
            }
        }
    }
    if let Some(max_age) = &cors.max_age {
        issues.check(&at.field("maxAge"), check_whole_seconds(max_age));
    }
}

/// An allowed origin: exactly one non-empty match. An exact origin is compared with the
/// browser's `Origin` header, `scheme://host[:port]`, so anything else never matches.
fn check_origin(origin: &StringMatch, at: &FieldPath, issues: &mut Issues) {
    let value = origin
        .exact
        .as_deref()
        .or(origin.prefix.as_deref())
        .or(origin.regex.as_deref());
    if value.is_none_or(str::is_empty) {
        issues.error(at, "'' is not a valid match type for CORS allow origins");
        return;
    }
    check_string_match(origin, MatchField::Value, at, issues);
    if let Some(exact) = origin.exact.as_deref() {
        let scheme_rest = exact.split_once("://");
        let looks_like_origin = exact == "*"
            || exact == "null"
            || scheme_rest.is_some_and(|(scheme, rest)| {
                !scheme.is_empty() && !rest.is_empty() && !rest.contains('/')
            });
        if !looks_like_origin {
            issues.warn(
                &at.field("exact"),
                format!(
                    "{exact:?} is not an origin (scheme://host[:port]): browsers never send it"
                ),
            );
        }
    }
}

fn check_fault(fault: &HttpFaultInjection, at: &FieldPath, issues: &mut Issues) {
    if fault.abort.is_none() && fault.delay.is_none() {
        issues.error(at, "HTTP fault injection must have an abort and/or a delay");
    }
    if let Some(abort) = &fault.abort {
        let at = at.field("abort");
        if let Some(p) = abort.percentage.as_ref().and_then(|p| p.value) {
            issues.check(&at.field("percentage").field("value"), check_percentage(p));
        }
        let kinds = [
            abort.http_status.is_some(),
            abort.grpc_status.is_some(),
            abort.http2_error.is_some(),
        ];
        match kinds.iter().filter(|set| **set).count() {
            // An abort without a status would abort nothing.
            0 => issues.error(&at, "abort needs httpStatus or grpcStatus"),
            1 => {}
            _ => issues.error(
                &at,
                "only one of httpStatus, grpcStatus or http2Error may be set",
            ),
        }
        if let Some(status) = abort.http_status {
            issues.check(&at.field("httpStatus"), check_http_status(status.into()));
        }
        if let Some(status) = &abort.grpc_status {
            issues.check(&at.field("grpcStatus"), check_grpc_status(status));
        }
        if abort.http2_error.is_some() {
            issues.error(
                &at.field("http2Error"),
                "HTTP/2 abort fault injection not supported yet",
            );
        }
    }
    if let Some(delay) = &fault.delay {
        let at = at.field("delay");
        if let Some(p) = delay.percentage.as_ref().and_then(|p| p.value) {
            issues.check(&at.field("percentage").field("value"), check_percentage(p));
        }
        if let Some(percent) = delay.percent {
            issues.check(&at.field("percent"), check_percent(percent.into()));
            issues.warn(
                &at.field("percent"),
                "percent is deprecated; use percentage",
            );
        }
        match (&delay.fixed_delay, &delay.exponential_delay) {
            (Some(fixed), None) => issues.check(&at.field("fixedDelay"), check_duration(fixed)),
            (None, Some(exponential)) => {
                issues.check(&at.field("exponentialDelay"), check_duration(exponential));
                issues.error(
                    &at.field("exponentialDelay"),
                    "exponentialDelay not supported yet; use fixedDelay",
                );
            }
            (Some(_), Some(_)) => {
                issues.error(&at, "only one of fixedDelay or exponentialDelay may be set")
            }
            (None, None) => issues.error(&at, "delay needs fixedDelay"),
        }
    }
}

fn check_mirrors(route: &HttpRoute, at: &FieldPath, issues: &mut Issues) {
    for (value, field) in [
        (route.mirror_percent, "mirrorPercent"),
        (route.mirror_percent_snake_case, "mirror_percent"),
    ] {
        if let Some(value) = value {
            let at = at.field(field);
            if value > 100 {
                issues.error(
                    &at,
                    format!("mirror_percent must have a max value of 100 (it has {value})"),
                );
            }
            issues.warn(
                &at,
                "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
            );
        }
    }
    if let Some(value) = route.mirror_percentage.as_ref().and_then(|p| p.value) {
        check_mirror_percentage(value, &at.field("mirrorPercentage").field("value"), issues);
    }
    if let Some(mirror) = &route.mirror {
        check_destination(mirror, &at.field("mirror"), issues);
    }
    for (i, mirror) in route.mirrors.iter().flatten().enumerate() {
        let at = at.field("mirrors").index(i);
        check_destination(&mirror.destination, &at.field("destination"), issues);
        if let Some(value) = mirror.percentage.as_ref().and_then(|p| p.value) {
            check_mirror_percentage(value, &at.field("percentage").field("value"), issues);
        }
    }
}

fn check_mirror_percentage(value: f64, at: &FieldPath, issues: &mut Issues) {
    if !(0.0..=100.0).contains(&value) {
        issues.error(
            at,
            format!("mirror percentage must be between 0 and 100 (it has {value})"),
        );
    }
}

fn check_redirect(redirect: &HttpRedirect, at: &FieldPath, issues: &mut Issues) {
    let empty = [&redirect.uri, &redirect.authority, &redirect.scheme]
        .iter()
        .all(|v| v.as_deref().is_none_or(str::is_empty))
        && redirect.port.is_none()
        && redirect.derive_port.is_none();
    if empty {
        issues.error(at, "redirect must specify URI, authority, scheme, or port");
    }
    if let Some(code) = redirect.redirect_code.filter(|c| *c != 0) {
        if !(300..=399).contains(&code) {
            issues.error(
                &at.field("redirectCode"),
                format!("{code} is not a valid redirect code, must be 3xx"),
            );
        }
    }
    if let Some(scheme) = redirect.scheme.as_deref().filter(|s| !s.is_empty()) {
        if scheme != "http" && scheme != "https" {
            issues.error(
                &at.field("scheme"),
                "invalid redirect scheme, must be \"http\" or \"https\"",
            );
        }
    }
    if let Some(port) = redirect.port {
        issues.check(&at.field("port"), check_port(port));
        if redirect.derive_port.is_some() {
            issues.error(
                &at.field("derivePort"),
                "only one of port or derivePort may be set",
            );
        }
    }
}

/// Checks the size of a direct response body.
fn check_body_size(body: Option<&str>, at: &FieldPath, issues: &mut Issues) {
    let size = body.map_or(0, str::len);
    if size > BODY_MAX {
        issues.error(
            at,
            "large direct_responses may impact control plane performance, must be less than 1MB",
        );
    } else if size > BODY_WARN {
        issues.warn(
            at,
            "large direct_responses may impact control plane performance",
        );
    }
}

fn check_retries(retries: &HttpRetry, at: &FieldPath, issues: &mut Issues) {
    // Unset attempts is zero in Istio's API, which turns retries off.
    let attempts = retries.attempts.unwrap_or(0);
    if attempts < 0 {
        issues.error(&at.field("attempts"), "attempts cannot be negative");
    }
    let configured = retries.per_try_timeout.is_some()
        || retries.retry_on.as_deref().is_some_and(|r| !r.is_empty())
        || retries.retry_remote_localities.is_some();
    if attempts == 0 && configured {
        issues.error(
            &at.field("attempts"),
            "http retry policy configured when attempts are set to 0 (disabled); set attempts",
        );
    }
    if let Some(timeout) = &retries.per_try_timeout {
        issues.check(&at.field("perTryTimeout"), check_duration(timeout));
    }
    if let Some(backoff) = &retries.backoff {
        issues.check(&at.field("backoff"), check_duration(backoff));
    }
    if let Some(retry_on) = retries.retry_on.as_deref().filter(|r| !r.is_empty()) {
        for policy in retry_on.split(',') {
            issues.check(&at.field("retryOn"), check_retry_on(policy));
        }
    }
}

fn check_rewrite(rewrite: &HttpRewrite, at: &FieldPath, issues: &mut Issues) {
    let uri = rewrite.uri.as_deref().is_some_and(|u| !u.is_empty());
    let authority = rewrite.authority.as_deref().is_some_and(|a| !a.is_empty());
    if uri && rewrite.uri_regex_rewrite.is_some() {
        issues.error(
            &at.field("uriRegexRewrite"),
            "rewrite may only contain one of uri or uriRegexRewrite",
        );
    }
    if !uri && !authority && rewrite.uri_regex_rewrite.is_none() {
        issues.error(
            at,
            "rewrite must specify at least one of uri, uriRegexRewrite, or authority",
        );
    }
    if let Some(regex) = &rewrite.uri_regex_rewrite {
        let at = at.field("uriRegexRewrite");
        let pattern = regex.match_.as_deref().unwrap_or_default();
        let replacement = regex.rewrite.as_deref().unwrap_or_default();
        if pattern.is_empty() || replacement.is_empty() {
            issues.error(
                &at,
                "uriRegexRewrite requires both rewrite and match fields to be specified",
            );
        } else {
            issues.check(&at.field("match"), check_regex(pattern));
        }
    }
}

fn check_http_destinations(routes: &[HttpRouteDestination], at: &FieldPath, issues: &mut Issues) {
    for (i, route) in routes.iter().enumerate() {
        let at = at.index(i);
        check_destination(&route.destination, &at.field("destination"), issues);
        check_weight(route.weight, &at.field("weight"), issues);
        if let Some(headers) = &route.headers {
            check_header_operations(headers, &at.field("headers"), issues);
        }
    }
    check_total_weight(routes.iter().map(|r| r.weight), at, issues);
}

fn check_route_destinations(routes: &[RouteDestination], at: &FieldPath, issues: &mut Issues) {
    for (i, route) in routes.iter().enumerate() {
        let at = at.index(i);
        check_destination(&route.destination, &at.field("destination"), issues);
        check_weight(route.weight, &at.field("weight"), issues);
    }
    check_total_weight(routes.iter().map(|r| r.weight), at, issues);
}

fn check_weight(weight: Option<i32>, at: &FieldPath, issues: &mut Issues) {
    if let Some(weight) = weight.filter(|w| *w < 0) {
        issues.error(at, format!("weight {weight} < 0"));
    }
}

/// Weights are relative shares (an unset weight is 0); with several destinations at least one
/// must get traffic.
fn check_total_weight(
    weights: impl Iterator<Item = Option<i32>>,
    at: &FieldPath,
    issues: &mut Issues,
) {
    let weights: Vec<i64> = weights.map(|w| i64::from(w.unwrap_or(0))).collect();
    if weights.len() > 1 && weights.iter().sum::<i64>() == 0 {
        issues.error(
            at,
            "total destination weight = 0: give at least one destination a weight",
        );
    }
}

/// A destination: a valid host that is not `*`, a valid subset name, a valid port.
pub(super) fn check_destination(destination: &Destination, at: &FieldPath, issues: &mut Issues) {
    let host_at = at.field("host");
    match destination.host.as_str() {
        "" => issues.error(&host_at, "destination host is required"),
        "*" => issues.error(&host_at, "invalid destination host *: name one service"),
        host => issues.check(&host_at, check_wildcard_domain(host)),
    }
    if let Some(subset) = destination.subset.as_deref().filter(|s| !s.is_empty()) {
        issues.check(&at.field("subset"), check_subset_name(subset));
    }
    if let Some(port) = &destination.port {
        issues.check(
            &at.field("port").field("number"),
            check_port(port.number.unwrap_or(0)),
        );
    }
}

fn check_tls_route(route: &TlsRoute, scope: &Scope, at: &FieldPath, issues: &mut Issues) {
    if route.match_.is_empty() {
        issues.error(
            &at.field("match"),
            "TLS route must have at least one match condition",
        );
    }
    for (i, m) in route.match_.iter().enumerate() {
        let at = at.field("match").index(i);
        if m.sni_hosts.is_empty() {
            issues.error(
                &at.field("sniHosts"),
                "TLS match must have at least one SNI host",
            );
        }
        for (j, sni) in m.sni_hosts.iter().enumerate() {
            check_sni_host(sni, scope, &at.field("sniHosts").index(j), issues);
        }
        check_l4_match(&L4Conditions::from(m), &at, issues);
    }
    check_l4_route_required(route.route.as_deref(), at, "TLS", issues);
}

/// An SNI host must be a name the VirtualService is for, or the rule could never match.
fn check_sni_host(sni: &str, scope: &Scope, at: &FieldPath, issues: &mut Issues) {
    let checked = if scope.gateways_only {
        check_gateway_bound_host(sni, true)
    } else {
        check_wildcard_domain(sni)
    };
    if let Err(e) = checked {
        if is_ip(sni) {
            issues.warn(at, format!("using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"));
        } else {
            issues.error(at, e);
        }
        return;
    }
    if !scope.hosts.iter().any(|h| host_is_subset_of(sni, h)) {
        issues.error(
            at,
            format!("SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]", scope.hosts.join(", ")),
        );
    }
}

fn check_tcp_route(route: &TcpRoute, at: &FieldPath, issues: &mut Issues) {
    for (i, m) in route.match_.iter().flatten().enumerate() {
        let at = at.field("match").index(i);
        check_l4_match(&L4Conditions::from(m), &at, issues);
        if let Some(subnet) = m.source_subnet.as_deref().filter(|s| !s.is_empty()) {
            issues.check(&at.field("sourceSubnet"), check_ip_or_cidr(subnet));
        }
    }
    check_l4_route_required(route.route.as_deref(), at, "TCP", issues);
}

fn check_l4_route_required(
    route: Option<&[RouteDestination]>,
    at: &FieldPath,
    kind: &str,
    issues: &mut Issues,
) {
    let route = route.unwrap_or_default();
    if route.is_empty() {
        issues.error(&at.field("route"), format!("{kind} route is required"));
    }
    check_route_destinations(route, &at.field("route"), issues);
}

/// The conditions TLS and TCP matches share.
struct L4Conditions<'a> {
    subnets: Option<&'a [String]>,
    port: Option<u32>,
    source_labels: Option<&'a BTreeMap<String, String>>,
    gateways: Option<&'a [String]>,
}

/// TLS and TCP match types have the same four fields under the same names.
macro_rules! l4_conditions_of {
    ($match_type:ty) => {
        impl<'a> From<&'a $match_type> for L4Conditions<'a> {
            fn from(m: &'a $match_type) -> Self {
                L4Conditions {
                    subnets: m.destination_subnets.as_deref(),
                    port: m.port,
                    source_labels: m.source_labels.as_ref(),
                    gateways: m.gateways.as_deref(),
                }
            }
        }
    };
}

l4_conditions_of!(TlsMatchAttributes);
l4_conditions_of!(L4MatchAttributes);

fn check_l4_match(conditions: &L4Conditions, at: &FieldPath, issues: &mut Issues) {
    let L4Conditions {
        subnets,
        port,
        source_labels,
        gateways,
    } = *conditions;
    for (i, subnet) in subnets.unwrap_or_default().iter().enumerate() {
        issues.check(
            &at.field("destinationSubnets").index(i),
            check_ip_or_cidr(subnet),
        );
    }
    if let Some(port) = port.filter(|p| *p != 0) {
        issues.check(&at.field("port"), check_port(port));
    }
    check_labels(source_labels, &at.field("sourceLabels"), issues);
    for (i, gateway) in gateways.unwrap_or_default().iter().enumerate() {
        check_gateway_reference(gateway, &at.field("gateways").index(i), issues);
    }
}

/// A match as a comparable key: its JSON without the `name`, which does not change what it
/// matches.
fn json_key<T: serde::Serialize>(m: &T) -> String {
    let mut value = serde_json::to_value(m).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("name");
    }
    value.to_string()
}

fn match_keys<T: serde::Serialize>(matches: Option<&[T]>) -> Option<Vec<String>> {
    matches
        .filter(|m| !m.is_empty())
        .map(|m| m.iter().map(json_key).collect())
}

/// Warns about rules no request can reach: rules after one without matches (which takes
/// everything), and rules all of whose matches an earlier rule already has. As in Istio these
/// are warnings (`VirtualServiceUnreachableRule`, `VirtualServiceIneffectiveMatch`).
fn warn_unreachable_rules<'a>(
    rules: impl Iterator<Item = (Option<&'a str>, Option<Vec<String>>)>,
    at: &FieldPath,
    issues: &mut Issues,
) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut catch_all: Option<usize> = None;
    for (i, (name, matches)) in rules.enumerate() {
        let rule = name.map_or_else(|| format!("#{i}"), |n| format!("{n:?}"));
        let Some(matches) = matches else {
            if catch_all.is_some() {
                issues.warn(&at.index(i), format!("virtualService rule {rule} not used (only the last rule can have no matches)"));
            }
            catch_all.get_or_insert(i);
            continue;
        };
        if let Some(first) = catch_all {
            issues.warn(&at.index(i), format!("virtualService rule {rule} not used (rule #{first} without matches is defined before)"));
            continue;
        }
        let mut duplicates = 0;
        for (j, key) in matches.iter().enumerate() {
            match seen.get(key) {
                Some(earlier) => {
                    duplicates += 1;
                    issues.warn(
                        &at.index(i).field("match").index(j),
                        format!("virtualService rule {rule} match #{j} is not used (duplicate match in rule #{earlier})"),
                    );
                }
                None => {
                    seen.insert(key.clone(), i);
                }
            }
        }
        if duplicates == matches.len() {
            issues.warn(
                &at.index(i),
                format!("virtualService rule {rule} not used (all matches used by prior rules)"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
