//! The rules of VirtualServices: rules no request can reach and matches that repeat earlier
//! ones (IST0130, IST0131), regular expressions that do not compile (IST0122), and routing on
//! JWT claims where no RequestAuthentication validates the token (IST0149).

use std::collections::HashMap;

use mesh_crds::istio::common::StringMatch;
use mesh_crds::istio::networking::HttpMatchRequest;
use serde::Serialize;

use crate::codes::*;
use crate::context::Context;
use crate::labels;
use crate::report::Report;
use crate::workloads::Workload;

/// A rule's name for messages: its index, and its name when it has one.
fn rule_name(kind: &str, i: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{kind}[{i}] ({n:?})"),
        None => format!("{kind}[{i}]"),
    }
}

/// A match with nothing but a name (or a `/` prefix alone) matches every request.
fn matches_everything(m: &HttpMatchRequest) -> bool {
    let bare = HttpMatchRequest {
        name: None,
        uri: None,
        ..m.clone()
    };
    let uri_all = match &m.uri {
        None => true,
        Some(StringMatch {
            prefix: Some(p),
            exact: None,
            regex: None,
        }) => p == "/" && m.ignore_uri_case.is_none(),
        Some(_) => false,
    };
    uri_all && bare == HttpMatchRequest::default()
}

/// The text of a match without its name, to find repeats.
fn key_of<T: Serialize>(m: &T) -> String {
    let mut v = serde_json::to_value(m).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("name");
    }
    v.to_string()
}

/// Checks one list of rules, given per rule its name, whether it matches everything, and the
/// keys of its matches.
fn check_rules(r: &mut Report, obj: usize, kind: &str, rules: Vec<RuleSummary>) {
    let mut catch_all: Option<String> = None;
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, (name, everything, keys)) in rules.into_iter().enumerate() {
        let this = rule_name(kind, i, name);
        let field = format!("spec.{kind}[{i}]");
        if let Some(first) = &catch_all {
            r.add(
                &VIRTUAL_SERVICE_UNREACHABLE_RULE,
                obj,
                &field,
                format!("VirtualService rule {this} not used: the earlier rule {first} matches every request, so no request reaches this one. Move the catch-all rule last, or give it a match"),
            );
            continue;
        }
        if everything {
            catch_all = Some(this);
            continue;
        }
        let repeats: Vec<(usize, String)> = keys
            .iter()
            .enumerate()
            .filter_map(|(j, k)| seen.get(k).map(|earlier| (j, earlier.clone())))
            .collect();
        if !keys.is_empty() && repeats.len() == keys.len() {
            let earlier: Vec<&str> = repeats.iter().map(|(_, e)| e.as_str()).collect();
            r.add(
                &VIRTUAL_SERVICE_UNREACHABLE_RULE,
                obj,
                &field,
                format!("VirtualService rule {this} not used: each of its matches is already matched by an earlier rule ({}); remove the rule or change its matches", earlier.join(", ")),
            );
        } else {
            for (j, earlier) in repeats {
                r.add(
                    &VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
                    obj,
                    &format!("{field}.match[{j}]"),
                    format!("VirtualService rule {this} match {j} is not used: rule {earlier} has the same match and comes first; remove this match"),
                );
            }
        }
        for k in keys {
            seen.entry(k).or_insert_with(|| rule_name(kind, i, name));
        }
    }
}

/// What [`check_rules`] needs of a rule: its name, whether it matches everything, and the
/// keys of its matches.
type RuleSummary<'r> = (Option<&'r str>, bool, Vec<String>);

fn summary<'r, M: Serialize>(
    name: Option<&'r str>,
    matches: &[M],
    everything: bool,
) -> RuleSummary<'r> {
    (name, everything, matches.iter().map(key_of).collect())
}

pub fn unreachable(cx: &Context, r: &mut Report) {
    for vs in &cx.virtual_services {
        let http = vs.spec.http.iter().flatten().map(|rule| {
            let m = rule.match_.as_deref().unwrap_or(&[]);
            summary(
                rule.name.as_deref(),
                m,
                m.is_empty() || m.iter().any(matches_everything),
            )
        });
        check_rules(r, vs.obj, "http", http.collect());
        let tcp = vs.spec.tcp.iter().flatten().map(|rule| {
            let m = rule.match_.as_deref().unwrap_or(&[]);
            summary(None, m, m.is_empty())
        });
        check_rules(r, vs.obj, "tcp", tcp.collect());
        let tls = vs
            .spec
            .tls
            .iter()
            .flatten()
            .map(|rule| summary(None, &rule.match_, false));
        check_rules(r, vs.obj, "tls", tls.collect());
    }
}

fn regex_of(m: &Option<StringMatch>) -> Option<&str> {
    m.as_ref().and_then(|m| m.regex.as_deref())
}

pub fn regexes(cx: &Context, r: &mut Report) {
    for vs in &cx.virtual_services {
        for (i, http) in vs.spec.http.iter().flatten().enumerate() {
            let mut found: Vec<(String, &str)> = Vec::new();
            for (j, m) in http.match_.iter().flatten().enumerate() {
                let at = |f: &str| format!("spec.http[{i}].match[{j}].{f}");
                for (f, sm) in [
                    ("uri", &m.uri),
                    ("scheme", &m.scheme),
                    ("method", &m.method),
                    ("authority", &m.authority),
                ] {
                    if let Some(re) = regex_of(sm) {
                        found.push((at(&format!("{f}.regex")), re));
                    }
                }
                for (f, map) in [
                    ("headers", &m.headers),
                    ("queryParams", &m.query_params),
                    ("withoutHeaders", &m.without_headers),
                ] {
                    for (k, sm) in map.iter().flatten() {
                        if let Some(re) = sm.regex.as_deref() {
                            found.push((at(&format!("{f}[{k:?}].regex")), re));
                        }
                    }
                }
            }
            for (j, o) in http
                .cors_policy
                .iter()
                .flat_map(|c| c.allow_origins.iter().flatten())
                .enumerate()
            {
                if let Some(re) = o.regex.as_deref() {
                    found.push((
                        format!("spec.http[{i}].corsPolicy.allowOrigins[{j}].regex"),
                        re,
                    ));
                }
            }
            for (field, re) in found {
                if let Err(e) = regex::Regex::new(re) {
                    let problem = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    r.add(
                        &INVALID_REGEXP,
                        vs.obj,
                        &field,
                        format!("Field {field:?} regular expression invalid: {re:?} ({problem}); the proxy rejects the route. Fix the expression (RE2 syntax)"),
                    );
                }
            }
        }
    }
}

const CLAIM_HEADER: &str = "@request.auth.claims";

/// Whether a RequestAuthentication applies to a workload: one of its namespace (without
/// selector, or selecting it), or of the root namespace (mesh-wide, or selecting it).
fn request_authentication_applies(cx: &Context, w: &Workload) -> bool {
    cx.request_authentications.iter().any(|ra| {
        let ns = cx.object(ra.obj).namespace.as_str();
        if ns != w.namespace && ns != cx.mesh.root_namespace {
            return false;
        }
        match ra
            .spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
        {
            None => true,
            Some(sel) => labels::matches(&labels::selector_of(sel), w.labels),
        }
    })
}

pub fn jwt_claims(cx: &Context, r: &mut Report) {
    if !cx.knows_workloads() {
        return;
    }
    for vs in &cx.virtual_services {
        let ns = cx.object(vs.obj).namespace.as_str();
        let claim = vs.spec.http.iter().flatten().find_map(|h| {
            h.match_
                .iter()
                .flatten()
                .flat_map(|m| m.headers.iter().flatten())
                .find(|(k, _)| k.starts_with(CLAIM_HEADER))
                .map(|(k, _)| k.clone())
        });
        let Some(claim) = claim else { continue };
        for g in vs.spec.gateways.iter().flatten().filter(|g| *g != "mesh") {
            let (gw_ns, gw_name) = g.split_once('/').unwrap_or((ns, g));
            let Some(gw) = cx.gateway(gw_ns, gw_name) else {
                continue;
            };
            let selector = gw
                .spec
                .selector
                .as_ref()
                .map(labels::selector_of)
                .unwrap_or_default();
            let unprotected: Vec<String> = cx
                .select(&selector, None)
                .into_iter()
                .filter(|w| !request_authentication_applies(cx, w))
                .map(|w| cx.name_of(w.obj))
                .collect();
            if !unprotected.is_empty() {
                r.add(
                    &JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
                    vs.obj,
                    "spec.http",
                    format!(
                        "The virtual service uses JWT claim based routing (key: {claim}) but no RequestAuthentication applies to the pods of gateway {gw_ns}/{gw_name} ({}); without one the claims are never validated and the route never matches. Add a RequestAuthentication selecting the gateway pods",
                        unprotected.join(", ")
                    ),
                );
            }
        }
    }
}
