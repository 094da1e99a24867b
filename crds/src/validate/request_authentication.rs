//! RequestAuthentication: how it attaches and every JWT rule (issuer, key set, token locations,
//! claims copied to headers).

use serde_json::Value;

use crate::istio::security::JwtRule;
use crate::istio::RequestAuthenticationSpec;

use super::duration::check_duration;
use super::hosts::check_fqdn;
use super::http::{check_header_name, check_strict_header_name};
use super::net::{check_port, is_ip};
use super::policy::{check_attachment, Attachment};
use super::report::{FieldPath, Issues};
use super::Context;

pub(super) fn validate(
    policy: &RequestAuthenticationSpec,
    _context: &Context,
    issues: &mut Issues,
) {
    let spec = FieldPath::root("spec");
    let attachment = Attachment {
        selector: policy.selector.as_ref(),
        target_ref: policy.target_ref.as_ref(),
        target_refs: policy.target_refs.as_ref(),
    };
    check_attachment(&attachment, &spec, issues);
    for (i, rule) in policy.jwt_rules.iter().flatten().enumerate() {
        check_jwt_rule(rule, &spec.field("jwtRules").index(i), issues);
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn check_jwt_rule(rule: &JwtRule, at: &FieldPath, issues: &mut Issues) {
    let camel = non_empty(&rule.jwks_uri);
    let snake = non_empty(&rule.jwks_uri_snake_case);
    if let (Some(a), Some(b)) = (camel, snake) {
        if a != b {
            issues.error(
                &at.field("jwks_uri"),
                "jwksUri and its legacy spelling jwks_uri are set to different URLs",
            );
        }
    }
    if snake.is_some() {
        issues.warn(
            &at.field("jwks_uri"),
            "jwks_uri is the legacy spelling; use jwksUri",
        );
    }
    let (jwks_uri, uri_field) = match (camel, snake) {
        (Some(uri), _) => (Some(uri), "jwksUri"),
        (None, Some(uri)) => (Some(uri), "jwks_uri"),
        (None, None) => (None, "jwksUri"),
    };
    // Istio discovers the key set from the issuer, or takes the issuer from the key set's URL.
    if non_empty(&rule.issuer).is_none() && jwks_uri.is_none() {
        issues.error(&at.field("issuer"), "issuer must be set (or jwksUri)");
    }
    for (i, audience) in rule.audiences.iter().flatten().enumerate() {
        if audience.is_empty() {
            issues.error(
                &at.field("audiences").index(i),
                "audience must be non-empty string",
            );
        }
    }
    if let Some(uri) = jwks_uri {
        issues.check(&at.field(uri_field), check_jwks_uri(uri));
        if non_empty(&rule.jwks).is_some() {
            issues.error(&at.field("jwks"), "only one of jwks or jwksUri may be set");
        }
    }
    if let Some(jwks) = non_empty(&rule.jwks) {
        issues.check(&at.field("jwks"), check_jwks(jwks));
    }
    for (i, header) in rule.from_headers.iter().flatten().enumerate() {
        issues.check(
            &at.field("fromHeaders").index(i).field("name"),
            check_header_name(&header.name),
        );
    }
    for (field, values, what) in [
        ("fromParams", &rule.from_params, "location query"),
        ("fromCookies", &rule.from_cookies, "cookie name"),
    ] {
        for (i, value) in values.iter().flatten().enumerate() {
            if value.is_empty() {
                issues.error(
                    &at.field(field).index(i),
                    format!("{what} must be non-empty string"),
                );
            }
        }
    }
    for (i, copy) in rule.output_claim_to_headers.iter().flatten().enumerate() {
        let at = at.field("outputClaimToHeaders").index(i);
        if copy.claim.is_empty() {
            issues.error(
                &at.field("claim"),
                "outputClaimToHeaders claim must be non-empty string",
            );
        }
        issues.check(&at.field("header"), check_strict_header_name(&copy.header));
    }
    if let Some(header) = non_empty(&rule.output_payload_to_header) {
        issues.check(
            &at.field("outputPayloadToHeader"),
            check_header_name(header),
        );
    }
    if let Some(timeout) = &rule.timeout {
        issues.check(&at.field("timeout"), check_duration(timeout));
    }
}

/// An `http://` or `https://` URL with a host (DNS name, IPv4 or bracketed IPv6) and an
/// optional port; the proxy fetches the key set from it.
fn check_jwks_uri(uri: &str) -> Result<(), String> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(format!(
            "jwksUri {uri:?} is not a URL: write https://host/path"
        ));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(format!(
            "URI scheme {scheme:?} is not supported: use http or https"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("jwksUri {uri:?} must not carry credentials"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((ip, after)) => (ip, after.strip_prefix(':')),
            None => return Err(format!("jwksUri {uri:?} has an unclosed IPv6 address")),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(format!("jwksUri {uri:?} has no host"));
    }
    if !is_ip(host) && check_fqdn(host).is_err() {
        return Err(format!(
            "jwksUri {uri:?}: {host:?} is not a valid host name"
        ));
    }
    if let Some(port) = port {
        port.parse::<u32>()
            .map_err(|_| format!("jwksUri {uri:?}: port {port:?} is not a number"))
            .and_then(check_port)?;
    }
    if uri.chars().any(char::is_whitespace) {
        return Err(format!("jwksUri {uri:?} must not contain spaces"));
    }
    Ok(())
}

/// A JSON Web Key Set (`{"keys": [...]}`) or a single key, each key an object with a `kty`.
fn check_jwks(jwks: &str) -> Result<(), String> {
    let parsed: Value = serde_json::from_str(jwks).map_err(|e| format!("jwks parse error: {e}"))?;
    let keys: Vec<&Value> = match parsed.get("keys") {
        Some(Value::Array(keys)) => keys.iter().collect(),
        Some(_) => return Err("jwks parse error: `keys` must be a list".into()),
        None => vec![&parsed],
    };
    for key in keys {
        if key.get("kty").and_then(Value::as_str).is_none() {
            return Err("jwks parse error: every key needs a `kty`".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::*;
    use crate::validate::Report;
    use serde_json::json;

    fn check(spec: Value) -> Report {
        run(spec, validate)
    }

    #[test]
    fn a_typical_rule_is_valid() {
        let report = check(
            json!({"selector": {"matchLabels": {"app": "api"}}, "jwtRules": [{
            "issuer": "https://accounts.example.com", "audiences": ["api"],
            "jwksUri": "https://accounts.example.com:8443/.well-known/jwks.json",
            "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}],
            "outputClaimToHeaders": [{"header": "x-jwt-sub", "claim": "sub"}], "timeout": "5s"}]}),
        );
        assert_clean(&report);
    }

    #[test]
    fn issuer_or_jwks_uri() {
        assert_eq!(
            error_fields(&check(json!({"jwtRules": [{"audiences": ["a"]}]}))),
            ["spec.jwtRules[0].issuer"]
        );
        assert!(
            check(json!({"jwtRules": [{"jwksUri": "https://idp.example.com/keys"}]})).is_valid()
        );
    }

    #[test]
    fn jwks_uri_must_be_http_url() {
        for bad in [
            "ftp://idp.example.com/keys",
            "idp.example.com/keys",
            "https:///keys",
            "https://idp.example.com:http/keys",
            "https://bad_host/keys",
        ] {
            let report = check(json!({"jwtRules": [{"issuer": "i", "jwksUri": bad}]}));
            assert_eq!(error_fields(&report), ["spec.jwtRules[0].jwksUri"], "{bad}");
        }
        assert!(check_jwks_uri("http://[::1]:8080/keys").is_ok());
        assert!(check_jwks_uri("https://10.0.0.1/keys").is_ok());
        let snake = check(json!({"jwtRules": [{"issuer": "i", "jwks_uri": "gopher://x"}]}));
        assert_eq!(error_fields(&snake), ["spec.jwtRules[0].jwks_uri"]);
        assert_eq!(warning_fields(&snake), ["spec.jwtRules[0].jwks_uri"]);
    }

    #[test]
    fn jwks_and_jwks_uri_are_exclusive() {
        let jwks = r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"xyz"}]}"#;
        assert!(check(json!({"jwtRules": [{"issuer": "i", "jwks": jwks}]})).is_valid());
        let report = check(
            json!({"jwtRules": [{"issuer": "i", "jwks": jwks, "jwksUri": "https://idp.example.com/keys"}]}),
        );
        assert_eq!(error_fields(&report), ["spec.jwtRules[0].jwks"]);
        let report = check(json!({"jwtRules": [{"issuer": "i", "jwks": "{not json"}]}));
        assert_eq!(error_fields(&report), ["spec.jwtRules[0].jwks"]);
        let report =
            check(json!({"jwtRules": [{"issuer": "i", "jwks": r#"{"keys":[{"e":"AQAB"}]}"#}]}));
        assert_eq!(error_fields(&report), ["spec.jwtRules[0].jwks"]);
    }

    #[test]
    fn token_locations_and_claim_headers() {
        let report = check(json!({"jwtRules": [{"issuer": "i",
            "fromHeaders": [{"name": ""}, {"name": "bad header"}], "fromParams": [""], "fromCookies": [""],
            "outputClaimToHeaders": [{"header": "x_sub", "claim": "sub"}, {"header": "x-grp", "claim": ""}],
            "timeout": "0s"}]}));
        assert_eq!(
            error_fields(&report),
            [
                "spec.jwtRules[0].fromHeaders[0].name",
                "spec.jwtRules[0].fromHeaders[1].name",
                "spec.jwtRules[0].fromParams[0]",
                "spec.jwtRules[0].fromCookies[0]",
                "spec.jwtRules[0].outputClaimToHeaders[0].header",
                "spec.jwtRules[0].outputClaimToHeaders[1].claim",
                "spec.jwtRules[0].timeout",
            ]
        );
    }

    #[test]
    fn selector_and_target_refs_are_exclusive() {
        let report = check(
            json!({"selector": {"matchLabels": {"app": "api"}}, "targetRef": {"kind": "Service", "name": "api"}}),
        );
        assert_eq!(error_fields(&report), ["spec"]);
    }
}
