//! Authorization with AuthorizationPolicy's meaning, on inbound requests and connections.
//!
//! Order, as Istio's: a matching DENY policy denies; else, when any ALLOW policy applies to
//! the workload, one of them must match or the request is denied; AUDIT policies only mark
//! what they match. A policy matches when any of its rules does; a rule when its `from`, `to`
//! and `when` all do (each a list where any entry may match); a source or operation when all
//! its fields do; a field when any of its values matches, a `notX` field when none does.
//!
//! On opaque TCP only the connection's attributes exist. As in Istio, an ALLOW rule using an
//! HTTP-only field (hosts, methods, paths, request principals, request headers) never
//! matches, and a DENY rule is applied without its HTTP-only fields (so it denies more).

use std::net::IpAddr;
use std::sync::Arc;

use mesh_proxy_config::{self as cfg, parse_cidr, AuthzAction, ConditionKey};

use crate::http::chain::{Filter, LocalReply, ResponseDetails};
use crate::listener::ConnInfo;
use crate::metrics::{Metrics, ResponseFlags};
use crate::snapshot::in_subnet;
use crate::tls::identity;

/// A string pattern with Istio's wildcards: `*`, `prefix*`, `*suffix`, or exact.
#[derive(Debug, Clone)]
enum Pattern {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl Pattern {
    fn new(s: &str, lower: bool) -> Pattern {
        let s = if lower {
            s.to_ascii_lowercase()
        } else {
            s.to_owned()
        };
        if s == "*" {
            Pattern::Any
        } else if let Some(p) = s.strip_suffix('*') {
            Pattern::Prefix(p.to_owned())
        } else if let Some(p) = s.strip_prefix('*') {
            Pattern::Suffix(p.to_owned())
        } else {
            Pattern::Exact(s)
        }
    }
    fn matches(&self, v: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(e) => e == v,
            Pattern::Prefix(p) => v.starts_with(p.as_str()),
            Pattern::Suffix(s) => v.ends_with(s.as_str()),
        }
    }
}

fn patterns(list: &[String], lower: bool) -> Vec<Pattern> {
    list.iter().map(|s| Pattern::new(s, lower)).collect()
}

fn cidrs(list: &[String]) -> Vec<(IpAddr, u8)> {
    // Checked when the config was read.
    list.iter().filter_map(|s| parse_cidr(s).ok()).collect()
}

fn ports(list: &[String]) -> Vec<u16> {
    list.iter().filter_map(|s| s.parse().ok()).collect()
}

/// A field's condition: `Some(true)` holds, `Some(false)` fails; empty fields hold.
fn any_of<T>(list: &[T], f: impl Fn(&T) -> bool) -> bool {
    list.is_empty() || list.iter().any(f)
}
fn none_of<T>(list: &[T], f: impl Fn(&T) -> bool) -> bool {
    !list.iter().any(f)
}

#[derive(Debug)]
struct Source {
    principals: Vec<Pattern>,
    not_principals: Vec<Pattern>,
    request_principals: bool,
    not_request_principals: bool,
    namespaces: Vec<Pattern>,
    not_namespaces: Vec<Pattern>,
    ip_blocks: Vec<(IpAddr, u8)>,
    not_ip_blocks: Vec<(IpAddr, u8)>,
    remote_ip_blocks: Vec<(IpAddr, u8)>,
    not_remote_ip_blocks: Vec<(IpAddr, u8)>,
}

#[derive(Debug)]
struct Operation {
    hosts: Vec<Pattern>,
    not_hosts: Vec<Pattern>,
    ports: Vec<u16>,
    not_ports: Vec<u16>,
    methods: Vec<String>,
    not_methods: Vec<String>,
    paths: Vec<Pattern>,
    not_paths: Vec<Pattern>,
}

#[derive(Debug)]
enum Values {
    Strings(Vec<Pattern>, Vec<Pattern>),
    Ips(Vec<(IpAddr, u8)>, Vec<(IpAddr, u8)>),
    Ports(Vec<u16>, Vec<u16>),
}

#[derive(Debug)]
struct Condition {
    key: ConditionKey,
    values: Values,
}

#[derive(Debug)]
struct Rule {
    from: Vec<Source>,
    to: Vec<Operation>,
    when: Vec<Condition>,
    http_only: bool,
}

#[derive(Debug)]
struct Policy {
    namespace: String,
    name: String,
    rules: Vec<Rule>,
}

/// What a request or connection shows authorization.
pub struct Attributes<'a> {
    pub peer_ip: IpAddr,
    pub destination_ip: IpAddr,
    pub destination_port: u16,
    /// Without `spiffe://`; `None` for plaintext peers.
    pub principal: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub sni: Option<&'a str>,
    pub http: Option<HttpAttributes<'a>>,
}

pub struct HttpAttributes<'a> {
    pub host: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
}

impl Source {
    fn compile(s: &cfg::Source) -> Source {
        Source {
            principals: patterns(&s.principals, false),
            not_principals: patterns(&s.not_principals, false),
            request_principals: !s.request_principals.is_empty(),
            not_request_principals: !s.not_request_principals.is_empty(),
            namespaces: patterns(&s.namespaces, false),
            not_namespaces: patterns(&s.not_namespaces, false),
            ip_blocks: cidrs(&s.ip_blocks),
            not_ip_blocks: cidrs(&s.not_ip_blocks),
            remote_ip_blocks: cidrs(&s.remote_ip_blocks),
            not_remote_ip_blocks: cidrs(&s.not_remote_ip_blocks),
        }
    }
    fn http_only(&self) -> bool {
        self.request_principals || self.not_request_principals
    }
    fn matches(&self, a: &Attributes<'_>, strip_http: bool) -> bool {
        let principal = |p: &Pattern| a.principal.is_some_and(|v| p.matches(v));
        let namespace = |p: &Pattern| a.namespace.is_some_and(|v| p.matches(v));
        let ip = |n: &(IpAddr, u8)| in_subnet(a.peer_ip, *n);
        // No JWT validation yet: no request has a request principal.
        let request_principals_hold = strip_http || !self.request_principals;
        any_of(&self.principals, principal)
            && none_of(&self.not_principals, principal)
            && request_principals_hold
            && any_of(&self.namespaces, namespace)
            && none_of(&self.not_namespaces, namespace)
            && any_of(&self.ip_blocks, ip)
            && none_of(&self.not_ip_blocks, ip)
            && any_of(&self.remote_ip_blocks, ip)
            && none_of(&self.not_remote_ip_blocks, ip)
    }
}

/// The path as authorization compares it: without the query, dot segments resolved, so that
/// `/public/../admin` is `/admin` (Istio's BASE path normalization does the same).
fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    // Almost every path has no dot segment: then it is its own normal form, with no copy.
    if path.starts_with('/') && !path.contains("/.") {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/').skip(1) {
        match seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut p = String::with_capacity(path.len());
    for s in &out {
        p.push('/');
        p.push_str(s);
    }
    if p.is_empty() || (path.ends_with("/.") || path.ends_with("/..")) && !p.ends_with('/') {
        p.push('/');
    }
    std::borrow::Cow::Owned(p)
}

fn host_matches(p: &Pattern, host: &str) -> bool {
    let lower = crate::route::lowercase(host);
    if p.matches(&lower) {
        return true;
    }
    // A pattern without a port matches the host with any port.
    match lower.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => p.matches(h),
        _ => false,
    }
}

impl Operation {
    fn compile(o: &cfg::Operation) -> Operation {
        Operation {
            hosts: patterns(&o.hosts, true),
            not_hosts: patterns(&o.not_hosts, true),
            ports: ports(&o.ports),
            not_ports: ports(&o.not_ports),
            methods: o.methods.clone(),
            not_methods: o.not_methods.clone(),
            paths: patterns(&o.paths, false),
            not_paths: patterns(&o.not_paths, false),
        }
    }
    fn http_only(&self) -> bool {
        !(self.hosts.is_empty()
            && self.not_hosts.is_empty()
            && self.methods.is_empty()
            && self.not_methods.is_empty()
            && self.paths.is_empty()
            && self.not_paths.is_empty())
    }
    fn matches(&self, a: &Attributes<'_>) -> bool {
        let port = |p: &u16| *p == a.destination_port;
        if !(any_of(&self.ports, port) && none_of(&self.not_ports, port)) {
            return false;
        }
        let Some(h) = &a.http else {
            // TCP, with the HTTP-only fields stripped (DENY rules; ALLOW rules never get here).
            return true;
        };
        let host = |p: &Pattern| host_matches(p, h.host);
        let method = |m: &String| m == h.method;
        let normalized = normalize_path(h.path);
        let path = |p: &Pattern| p.matches(&normalized);
        any_of(&self.hosts, host)
            && none_of(&self.not_hosts, host)
            && any_of(&self.methods, method)
            && none_of(&self.not_methods, method)
            && any_of(&self.paths, path)
            && none_of(&self.not_paths, path)
    }
}

impl Condition {
    fn compile(c: &cfg::Condition) -> Option<Condition> {
        let key = ConditionKey::parse(&c.key).ok()?;
        let values = match key {
            ConditionKey::SourceIp | ConditionKey::RemoteIp | ConditionKey::DestinationIp => {
                Values::Ips(cidrs(&c.values), cidrs(&c.not_values))
            }
            ConditionKey::DestinationPort => Values::Ports(ports(&c.values), ports(&c.not_values)),
            _ => Values::Strings(patterns(&c.values, false), patterns(&c.not_values, false)),
        };
        Some(Condition { key, values })
    }
    fn matches(&self, a: &Attributes<'_>) -> bool {
        let string = |v: Option<&str>| match &self.values {
            Values::Strings(yes, no) => {
                let m = |p: &Pattern| v.is_some_and(|v| p.matches(v));
                (yes.is_empty() || yes.iter().any(m)) && !no.iter().any(m)
            }
            _ => false,
        };
        let ip = |v: IpAddr| match &self.values {
            Values::Ips(yes, no) => {
                let m = |n: &(IpAddr, u8)| in_subnet(v, *n);
                (yes.is_empty() || yes.iter().any(m)) && !no.iter().any(m)
            }
            _ => false,
        };
        match &self.key {
            ConditionKey::RequestHeader(name) => match &a.http {
                // Several values of one header are compared joined, as Envoy presents them.
                Some(h) => {
                    let joined: Vec<&str> = h
                        .headers
                        .get_all(name.as_str())
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    string((!joined.is_empty()).then(|| joined.join(",")).as_deref())
                }
                None => true, // stripped on TCP
            },
            // No JWT validation yet: the attribute is never there, so only `notValues` can
            // hold on HTTP; on TCP the condition is stripped.
            ConditionKey::RequestAuth => match &self.values {
                Values::Strings(yes, _) => a.http.is_none() || yes.is_empty(),
                _ => false,
            },
            ConditionKey::SourceIp | ConditionKey::RemoteIp => ip(a.peer_ip),
            ConditionKey::DestinationIp => ip(a.destination_ip),
            ConditionKey::DestinationPort => match &self.values {
                Values::Ports(yes, no) => {
                    (yes.is_empty() || yes.contains(&a.destination_port))
                        && !no.contains(&a.destination_port)
                }
                _ => false,
            },
            ConditionKey::SourceNamespace => string(a.namespace),
            ConditionKey::SourcePrincipal => string(a.principal),
            ConditionKey::ConnectionSni => string(a.sni),
        }
    }
}

impl Rule {
    fn compile(r: &cfg::AuthzRule) -> Rule {
        let from: Vec<Source> = r.from.iter().map(|f| Source::compile(&f.source)).collect();
        let to: Vec<Operation> =
            r.to.iter()
                .map(|t| Operation::compile(&t.operation))
                .collect();
        let when: Vec<Condition> = r.when.iter().filter_map(Condition::compile).collect();
        let http_only = from.iter().any(Source::http_only)
            || to.iter().any(Operation::http_only)
            || when.iter().any(|c| c.key.is_http_only());
        Rule {
            from,
            to,
            when,
            http_only,
        }
    }
    fn matches(&self, a: &Attributes<'_>) -> bool {
        let tcp = a.http.is_none();
        any_of(&self.from, |s| s.matches(a, tcp))
            && any_of(&self.to, |o| o.matches(a))
            && self.when.iter().all(|c| c.matches(a))
    }
}

impl Policy {
    /// The index of the first rule that matches. On TCP, `allow_like` policies skip rules with
    /// HTTP-only fields.
    fn matching_rule(&self, a: &Attributes<'_>, allow_like: bool) -> Option<usize> {
        self.rules.iter().position(|r| {
            if a.http.is_none() && allow_like && r.http_only {
                return false;
            }
            r.matches(a)
        })
    }
    fn describe(&self, rule: usize) -> String {
        format!("ns[{}]-policy[{}]-rule[{rule}]", self.namespace, self.name)
    }
}

/// The compiled policies of one workload.
pub struct Authz {
    allow: Vec<Policy>,
    deny: Vec<Policy>,
    audit: Vec<Policy>,
    metrics: Arc<Metrics>,
}

/// Why a request was denied: Envoy's `rbac_access_denied_matched_policy[…]`.
#[derive(Debug, PartialEq, Eq)]
pub struct Denied(pub String);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rbac_access_denied_matched_policy[{}]", self.0)
    }
}

impl Authz {
    pub fn compile(policies: &[cfg::AuthorizationPolicy], metrics: Arc<Metrics>) -> Authz {
        let mut a = Authz {
            allow: Vec::new(),
            deny: Vec::new(),
            audit: Vec::new(),
            metrics,
        };
        for p in policies {
            let compiled = Policy {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                rules: p.rules.iter().map(Rule::compile).collect(),
            };
            match p.action {
                AuthzAction::Allow => a.allow.push(compiled),
                AuthzAction::Deny => a.deny.push(compiled),
                AuthzAction::Audit => a.audit.push(compiled),
                // Refused when the config was read.
                AuthzAction::Custom => {}
            }
        }
        a
    }

    /// The decision for one request or connection.
    pub fn decide(&self, a: &Attributes<'_>) -> Result<(), Denied> {
        for p in &self.audit {
            if let Some(r) = p.matching_rule(a, true) {
                Metrics::inc(&self.metrics.security.rbac_audited);
                tracing::info!(policy = %p.describe(r), "authorization audit: matched");
            }
        }
        let decision = self.judge(a);
        match &decision {
            Ok(()) => Metrics::inc(&self.metrics.security.rbac_allowed),
            Err(_) => Metrics::inc(&self.metrics.security.rbac_denied),
        }
        decision
    }

    fn judge(&self, a: &Attributes<'_>) -> Result<(), Denied> {
        for p in &self.deny {
            if let Some(r) = p.matching_rule(a, false) {
                return Err(Denied(p.describe(r)));
            }
        }
        if self.allow.is_empty() {
            return Ok(());
        }
        if self
            .allow
            .iter()
            .any(|p| p.matching_rule(a, true).is_some())
        {
            return Ok(());
        }
        Err(Denied("none".into()))
    }

    /// An opaque TCP connection.
    pub fn check_connection(&self, conn: &ConnInfo) -> Result<(), Denied> {
        self.decide(&connection_attributes(conn, None))
    }
}

fn connection_attributes<'a>(
    conn: &'a ConnInfo,
    http: Option<HttpAttributes<'a>>,
) -> Attributes<'a> {
    let spiffe = conn.security.as_ref().and_then(|s| s.identity.as_deref());
    Attributes {
        peer_ip: conn.peer.ip(),
        destination_ip: conn.destination.ip(),
        destination_port: conn.destination.port(),
        principal: spiffe.map(identity::principal),
        namespace: spiffe.and_then(identity::namespace),
        sni: conn.security.as_ref().and_then(|s| s.sni.as_deref()),
        http,
    }
}

impl Filter for Authz {
    fn name(&self) -> &'static str {
        "rbac"
    }
    fn on_request(&self, req: &http::request::Parts, conn: &ConnInfo) -> Option<LocalReply> {
        let host = req
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                req.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or("");
        let attrs = connection_attributes(
            conn,
            Some(HttpAttributes {
                host,
                method: req.method.as_str(),
                path: req.uri.path(),
                headers: &req.headers,
            }),
        );
        let denied = self.decide(&attrs).err()?;
        tracing::debug!(peer = %conn.peer, path = req.uri.path(), "request denied: {denied}");
        let grpc = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let mut response = crate::http::local::reply(403, "RBAC: access denied", grpc);
        response
            .extensions_mut()
            .insert(ResponseDetails("rbac_access_denied"));
        Some(LocalReply {
            response,
            flags: ResponseFlags::NONE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_for_matching() {
        assert_eq!(normalize_path("/public/../admin"), "/admin");
        assert_eq!(normalize_path("/a/./b?x=1"), "/a/b");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/a/"), "/a/");
        assert_eq!(normalize_path("/a/.hidden/../b"), "/a/b");
        assert_eq!(normalize_path("/a/.."), "/");
        assert_eq!(normalize_path("/a/b/."), "/a/b/");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("?q=/../x"), "/");
    }

    #[test]
    fn wildcards() {
        assert!(Pattern::new("/api/*", false).matches("/api/x"));
        assert!(Pattern::new("*.html", false).matches("/a.html"));
        assert!(!Pattern::new("/api/*", false).matches("/other"));
        assert!(host_matches(
            &Pattern::new("Example.COM", true),
            "example.com:8080"
        ));
    }
}
