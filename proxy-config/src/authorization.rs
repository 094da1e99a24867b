//! Authorization with the field names and meaning of Istio's `AuthorizationPolicy`. The control
//! plane hands each proxy the policies that select its workload; the proxy evaluates them on
//! inbound requests and connections. A policy that does not pass the checks here makes the
//! whole snapshot invalid, so the one in force stays.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuthorizationPolicy {
    pub name: String,
    pub namespace: String,
    pub action: AuthzAction,
    /// Any one rule matching makes the policy match; no rules: matches nothing (an ALLOW
    /// policy without rules therefore denies everything).
    pub rules: Vec<AuthzRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthzAction {
    #[default]
    Allow,
    Deny,
    /// Matching requests are logged as audited; the decision is not changed.
    Audit,
    /// External authorization: not supported (refused when read).
    Custom,
}

/// `from`, `to` and `when` must all match; within each list any one element.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuthzRule {
    pub from: Vec<RuleFrom>,
    pub to: Vec<RuleTo>,
    pub when: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RuleFrom {
    pub source: Source,
}

/// Every field set must match (AND); a list matches when any entry does; `notX`: when none does.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Source {
    /// Peer identities without `spiffe://` (`cluster.local/ns/default/sa/sleep`); `*` as a
    /// prefix or suffix wildcard. Needs mTLS: plaintext peers have none.
    pub principals: Vec<String>,
    pub not_principals: Vec<String>,
    /// JWT principals: mesh-proxy does not validate JWTs yet, so a request never has one.
    pub request_principals: Vec<String>,
    pub not_request_principals: Vec<String>,
    /// The peer's namespace, from its identity.
    pub namespaces: Vec<String>,
    pub not_namespaces: Vec<String>,
    /// The peer's IP: addresses or CIDRs.
    pub ip_blocks: Vec<String>,
    pub not_ip_blocks: Vec<String>,
    /// The original client IP; for a sidecar the same as `ipBlocks`.
    pub remote_ip_blocks: Vec<String>,
    pub not_remote_ip_blocks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RuleTo {
    pub operation: Operation,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Operation {
    /// The request's host (case-insensitive, with or without port); `*` wildcards. HTTP only.
    pub hosts: Vec<String>,
    pub not_hosts: Vec<String>,
    /// The destination port, as strings (Istio's type).
    pub ports: Vec<String>,
    pub not_ports: Vec<String>,
    /// HTTP only.
    pub methods: Vec<String>,
    pub not_methods: Vec<String>,
    /// The path without the query; exact, `/prefix/*`, `*suffix` or `*`. HTTP only.
    pub paths: Vec<String>,
    pub not_paths: Vec<String>,
}

/// A condition on one attribute: `key` must have one of `values` and none of `notValues`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Condition {
    pub key: String,
    pub values: Vec<String>,
    pub not_values: Vec<String>,
}

/// The attribute a `when` key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionKey {
    /// `request.headers[name]` (name lower-cased). HTTP only.
    RequestHeader(String),
    SourceIp,
    RemoteIp,
    SourceNamespace,
    SourcePrincipal,
    DestinationIp,
    DestinationPort,
    ConnectionSni,
    /// `request.auth.*`: needs JWT validation, so never present yet. HTTP only.
    RequestAuth,
}

impl ConditionKey {
    pub fn parse(key: &str) -> Result<ConditionKey, String> {
        if let Some(rest) = key.strip_prefix("request.headers[") {
            let name = rest
                .strip_suffix(']')
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("condition key {key:?}: expected request.headers[NAME]"))?;
            return Ok(ConditionKey::RequestHeader(name.to_ascii_lowercase()));
        }
        Ok(match key {
            "source.ip" => ConditionKey::SourceIp,
            "remote.ip" => ConditionKey::RemoteIp,
            "source.namespace" => ConditionKey::SourceNamespace,
            "source.principal" => ConditionKey::SourcePrincipal,
            "destination.ip" => ConditionKey::DestinationIp,
            "destination.port" => ConditionKey::DestinationPort,
            "connection.sni" => ConditionKey::ConnectionSni,
            k if k.starts_with("request.auth.") => ConditionKey::RequestAuth,
            _ => {
                return Err(format!(
                    "unknown condition key {key:?} (known: request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, destination.ip, destination.port, connection.sni, request.auth.*)"
                ))
            }
        })
    }

    /// Whether the attribute exists only for HTTP requests.
    pub fn is_http_only(&self) -> bool {
        matches!(
            self,
            ConditionKey::RequestHeader(_) | ConditionKey::RequestAuth
        )
    }
}

/// An IP address or CIDR, as `ipBlocks` take them.
pub fn parse_cidr(s: &str) -> Result<(std::net::IpAddr, u8), String> {
    let bad = || format!("{s:?} is not an IP address or CIDR");
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (
            ip.parse::<std::net::IpAddr>().map_err(|_| bad())?,
            Some(len.parse::<u8>().map_err(|_| bad())?),
        ),
        None => (s.parse().map_err(|_| bad())?, None),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    if len > max {
        return Err(bad());
    }
    Ok((ip, len))
}

fn check_wildcards(field: &str, values: &[String]) -> Result<(), String> {
    for v in values {
        let inner = v.trim_start_matches('*').trim_end_matches('*');
        if v.len() > 1 && (inner.contains('*') || v.starts_with("**")) && v != "*" {
            return Err(format!(
                "{field}: {v:?}: `*` may only stand at the start or the end"
            ));
        }
        if v.starts_with('*') && v.ends_with('*') && v.len() > 1 {
            return Err(format!(
                "{field}: {v:?}: `*` may only stand at the start or the end"
            ));
        }
    }
    Ok(())
}

impl crate::checked::Check for AuthorizationPolicy {
    fn check(&self) -> Result<(), String> {
        let name = format!("authorization policy {}/{}", self.namespace, self.name);
        if self.action == AuthzAction::Custom {
            return Err(format!(
                "{name}: action CUSTOM (external authorization) is not supported"
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let at = |f: &str| format!("{name}: rules[{i}].{f}");
            for f in &r.from {
                let s = &f.source;
                for (field, list) in [
                    ("principals", &s.principals),
                    ("notPrincipals", &s.not_principals),
                    ("namespaces", &s.namespaces),
                    ("notNamespaces", &s.not_namespaces),
                ] {
                    check_wildcards(&at(&format!("from.source.{field}")), list)?;
                }
                for list in [
                    &s.ip_blocks,
                    &s.not_ip_blocks,
                    &s.remote_ip_blocks,
                    &s.not_remote_ip_blocks,
                ] {
                    for b in list {
                        parse_cidr(b).map_err(|e| at(&format!("from.source: {e}")))?;
                    }
                }
            }
            for t in &r.to {
                let o = &t.operation;
                for p in o.ports.iter().chain(&o.not_ports) {
                    p.parse::<u16>()
                        .map_err(|_| at(&format!("to.operation.ports: {p:?} is not a port")))?;
                }
                check_wildcards(&at("to.operation.hosts"), &o.hosts)?;
                check_wildcards(&at("to.operation.notHosts"), &o.not_hosts)?;
                check_wildcards(&at("to.operation.paths"), &o.paths)?;
                check_wildcards(&at("to.operation.notPaths"), &o.not_paths)?;
            }
            for c in &r.when {
                let key = ConditionKey::parse(&c.key).map_err(|e| at(&format!("when: {e}")))?;
                if c.values.is_empty() && c.not_values.is_empty() {
                    return Err(at(&format!(
                        "when: {:?} needs `values` or `notValues`",
                        c.key
                    )));
                }
                match key {
                    ConditionKey::SourceIp
                    | ConditionKey::RemoteIp
                    | ConditionKey::DestinationIp => {
                        for v in c.values.iter().chain(&c.not_values) {
                            parse_cidr(v).map_err(|e| at(&format!("when {:?}: {e}", c.key)))?;
                        }
                    }
                    ConditionKey::DestinationPort => {
                        for v in c.values.iter().chain(&c.not_values) {
                            v.parse::<u16>().map_err(|_| {
                                at(&format!("when {:?}: {v:?} is not a port", c.key))
                            })?;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
