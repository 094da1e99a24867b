//! HTTP vocabulary: header names and values, methods, status codes, retry conditions, gRPC
//! status names, regular expressions, string matches and percentages.

use crate::istio::StringMatch;

use super::report::{FieldPath, Issues};

/// Envoy refuses regexes whose RE2 program is too large; Istio approximates the program size by
/// the pattern's length.
const REGEX_MAX_LEN: usize = 1024;

/// Checks a regular expression with RE2's syntax, which Envoy uses. Rust's `regex` crate speaks
/// the same dialect (no backreferences, no look-around), so what it rejects Envoy rejects too.
pub(crate) fn check_regex(pattern: &str) -> Result<(), String> {
    if pattern.len() > REGEX_MAX_LEN {
        return Err(format!(
            "regex is too large, max length allowed is {REGEX_MAX_LEN}"
        ));
    }
    regex::Regex::new(pattern).map(|_| ()).map_err(|e| {
        let detail = e.to_string();
        let detail = detail.lines().last().unwrap_or_default().trim().to_string();
        format!(
            "invalid regex {pattern:?}: {detail}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"
        )
    })
}

/// An RFC 7230 token character, the alphabet of header names and methods.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// A header name as HTTP defines it (an RFC 7230 token).
pub(crate) fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if !is_token(name) {
        return Err(format!("header name {name:?} is not a valid header name"));
    }
    Ok(())
}

/// A header name restricted to letters, digits and `-`, where Istio is stricter than HTTP
/// (headers a JWT claim is copied into).
pub(crate) fn check_strict_header_name(name: &str) -> Result<(), String> {
    check_header_name(name)?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!(
            "header name {name:?} is not a valid header name: use only letters, digits and -"
        ));
    }
    Ok(())
}

const PSEUDO_HEADERS: [&str; 5] = [":method", ":scheme", ":authority", ":path", ":status"];

/// A JWT claim used as a routing "header": `@request.auth.claims.group` or
/// `@request.auth.claims[group]`.
pub(crate) fn is_jwt_claim_route(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("@request.auth.claims") else {
        return false;
    };
    match rest.strip_prefix('.') {
        Some(claim) => !claim.is_empty(),
        None => rest.len() > 2 && rest.starts_with('[') && rest.ends_with(']'),
    }
}

/// The key of a header match: a header name, an HTTP/2 pseudo-header, or a JWT claim.
pub(crate) fn check_header_match_name(name: &str) -> Result<(), String> {
    if is_jwt_claim_route(name) || PSEUDO_HEADERS.contains(&name) {
        return Ok(());
    }
    check_header_name(name)
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// A header that a request `set`/`add` may name: not an HTTP/2 pseudo-header, except the
/// authority (`:authority` or `Host`), which rewrites the authority.
pub(crate) fn check_request_header_to_set(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name.starts_with(':') && !is_authority_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// A header that a request `remove` or any response operation may name: neither `Host` nor an
/// HTTP/2 pseudo-header, which the proxy owns.
pub(crate) fn check_header_to_change(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!("invalid header {name:?}: cannot set Host header"));
    }
    if name.starts_with(':') {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// A header value the proxy sends: no control characters but tab, and every `%` either escaped
/// as `%%` or opening an Envoy variable such as `%HOSTNAME%` or `%REQ(x-id)%`.
pub(crate) fn check_header_value(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| (c.is_control() && c != '\t') || c == '\u{7f}')
    {
        return Err(format!(
            "header value {value:?} contains control characters"
        ));
    }
    let mut rest = value;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        if let Some(escaped) = after.strip_prefix('%') {
            rest = escaped;
            continue;
        }
        let Some(end) = after.find('%') else {
            return Err(format!(
                "header value {value:?}: unterminated % variable; write %% for a literal %"
            ));
        };
        let variable = &after[..end];
        let starts_well = variable
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_');
        if !starts_well {
            return Err(format!(
                "header value {value:?}: {variable:?} is not an Envoy variable such as %HOSTNAME%; write %% for a literal %"
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// The standard methods (RFC 9110 and PATCH) and WebDAV's, which real services use.
const KNOWN_METHODS: [&str; 16] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
];

/// The methods Istio accepts in a CORS policy: Go's standard set, and `*`.
const CORS_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

pub(crate) fn check_cors_method(method: &str) -> Result<(), String> {
    if CORS_METHODS.contains(&method) {
        Ok(())
    } else {
        Err(format!("{method:?} is not a supported HTTP method"))
    }
}

/// A method in an authorization rule. Methods are compared case-sensitively, so `get` never
/// matches a GET request: that is a warning, as is a method nobody defines (it is still a
/// valid token, and services may invent methods). A value that is not a token is an error.
pub(crate) fn check_rule_method(method: &str, at: &FieldPath, issues: &mut Issues) {
    if KNOWN_METHODS.contains(&method) {
        return;
    }
    if !is_token(method) {
        issues.error(at, format!("{method:?} is not a valid HTTP method"));
    } else if KNOWN_METHODS.contains(&method.to_ascii_uppercase().as_str()) {
        issues.warn(
            at,
            format!(
                "methods are case-sensitive: {method:?} never matches a {} request",
                method.to_ascii_uppercase()
            ),
        );
    } else {
        issues.warn(at, format!("{method:?} is not a standard HTTP method"));
    }
}

/// Status codes with a registered meaning, as Go's `http.StatusText` knows them; Istio accepts
/// these, and no others, as numeric retry conditions.
fn is_known_status(code: u32) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429
        | 431 | 451 | 500..=508 | 510 | 511)
}

/// Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` conditions.
const RETRY_ON: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Checks one comma-separated item of `retryOn`.
pub(crate) fn check_retry_on(policy: &str) -> Result<(), String> {
    if RETRY_ON.contains(&policy) || policy.parse::<u32>().is_ok_and(is_known_status) {
        return Ok(());
    }
    let hint = if policy.trim() != policy {
        "; remove the spaces around it"
    } else {
        ""
    };
    Err(format!(
        "{policy:?} is not a valid retryOn policy: use Envoy's conditions (5xx, gateway-error, connect-failure, ...) or HTTP status codes{hint}"
    ))
}

/// The gRPC status names an abort may return.
const GRPC_STATUSES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

pub(crate) fn check_grpc_status(status: &str) -> Result<(), String> {
    if GRPC_STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(format!(
            "gRPC status {status:?} is not supported; use a name of https://github.com/grpc/grpc/blob/master/doc/statuscodes.md, for example NOT_FOUND"
        ))
    }
}

/// A status the proxy itself answers with (aborts, direct responses).
pub(crate) fn check_http_status(status: i64) -> Result<(), String> {
    if (200..=599).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP status {status} is not in range 200-599"))
    }
}

/// A fractional percentage: 0, or between 0.0001 (Envoy's resolution) and 100.
pub(crate) fn check_percentage(value: f64) -> Result<(), String> {
    if value == 0.0 || (0.0001..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "percentage {value} is neither 0.0, nor in range [0.0001, 100.0]"
        ))
    }
}

/// An integer percentage: 0 to 100.
pub(crate) fn check_percent(value: i64) -> Result<(), String> {
    if (0..=100).contains(&value) {
        Ok(())
    } else {
        Err(format!("percentage {value} is not in range 0..100"))
    }
}

/// Which forms of an empty or partial [`StringMatch`] a field accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchField {
    /// Headers and query parameters: an empty match `{}` means "present".
    PresenceAllowed,
    /// The URI: an empty prefix means "any path", which Envoy accepts.
    Uri,
    /// Scheme, method, authority: an empty match would match nothing useful.
    Value,
}

/// Checks a string match: exactly one of `exact`, `prefix` and `regex`, a prefix that is not
/// empty (except for the URI), and a regex that compiles.
pub(crate) fn check_string_match(
    m: &StringMatch,
    field: MatchField,
    at: &FieldPath,
    issues: &mut Issues,
) {
    let set = [&m.exact, &m.prefix, &m.regex]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if set > 1 {
        issues.error(at, "only one of exact, prefix or regex may be set");
        return;
    }
    if set == 0 && field != MatchField::PresenceAllowed {
        issues.warn(
            at,
            "empty match: it matches any value; set exact, prefix or regex, or remove it",
        );
    }
    if let Some(prefix) = &m.prefix {
        if prefix.is_empty() && field != MatchField::Uri {
            issues.error(
                &at.field("prefix"),
                "prefix string match should not be empty",
            );
        }
    }
    if let Some(re) = &m.regex {
        if re.is_empty() {
            issues.error(&at.field("regex"), "regex string match should not be empty");
        } else {
            issues.check(&at.field("regex"), check_regex(re));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes() {
        assert!(check_regex("^/api/v[0-9]+/.*$").is_ok());
        assert!(check_regex("(a").is_err());
        // RE2 has no backreferences or look-around; Envoy would reject these.
        assert!(check_regex(r"(a)\1").is_err());
        assert!(check_regex("(?=a)").is_err());
        assert!(check_regex(&"a".repeat(1025)).is_err());
        let err = check_regex("[").unwrap_err();
        assert!(err.contains("RE2"), "{err}");
    }

    #[test]
    fn header_names() {
        assert!(check_header_name("x-request-id").is_ok());
        assert!(check_header_name("bad header").is_err());
        assert!(check_header_name("").is_err());
        assert!(check_header_match_name(":authority").is_ok());
        assert!(check_header_match_name("@request.auth.claims.group").is_ok());
        assert!(check_header_match_name("@request.auth.claims[group]").is_ok());
        assert!(check_header_match_name("@request.auth.claims[]").is_err());
        assert!(check_strict_header_name("x_jwt").is_err());
        assert!(check_request_header_to_set(":authority").is_ok());
        assert!(check_request_header_to_set(":path").is_err());
        assert!(check_header_to_change("Host").is_err());
        assert!(check_header_to_change("x-served-by").is_ok());
    }

    #[test]
    fn header_values() {
        for ok in [
            "foo",
            "%HOSTNAME%",
            "100%%",
            "a %REQ(x-id)% b",
            "max-age=31536000",
        ] {
            assert!(check_header_value(ok).is_ok(), "{ok}");
        }
        for bad in ["abc%123", "%START_TIME%%", "a\nb", "50%"] {
            assert!(check_header_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn methods_retries_statuses() {
        let at = FieldPath::root("m");
        let mut issues = Issues::default();
        check_rule_method("GET", &at, &mut issues);
        check_rule_method("get", &at, &mut issues);
        check_rule_method("PURGE", &at, &mut issues);
        check_rule_method("GE T", &at, &mut issues);
        let report = issues.into_report();
        assert_eq!(report.warnings.len(), 2);
        assert_eq!(report.errors.len(), 1);
        assert!(check_cors_method("*").is_ok());
        assert!(check_cors_method("get").is_err());
        assert!(check_retry_on("connect-failure").is_ok());
        assert!(check_retry_on("503").is_ok());
        assert!(check_retry_on("599").is_err());
        assert!(check_retry_on(" 5xx").unwrap_err().contains("spaces"));
        assert!(check_grpc_status("UNAVAILABLE").is_ok());
        assert!(check_grpc_status("14").is_err());
        assert!(check_http_status(503).is_ok());
        assert!(check_http_status(600).is_err());
        assert!(check_percentage(0.5).is_ok());
        assert!(check_percentage(0.00001).is_err());
        assert!(check_percentage(100.1).is_err());
        assert!(check_percent(-1).is_err());
    }

    #[test]
    fn string_matches() {
        let check = |m: StringMatch, field| {
            let mut issues = Issues::default();
            check_string_match(&m, field, &FieldPath::root("uri"), &mut issues);
            issues.into_report()
        };
        let both = StringMatch {
            exact: Some("/a".into()),
            prefix: Some("/a".into()),
            regex: None,
        };
        assert!(!check(both, MatchField::Uri).is_valid());
        let empty_prefix = StringMatch {
            prefix: Some(String::new()),
            ..Default::default()
        };
        assert!(check(empty_prefix.clone(), MatchField::Uri).is_valid());
        assert_eq!(
            check(empty_prefix, MatchField::Value).errors[0].field,
            "uri.prefix"
        );
        let bad_regex = StringMatch {
            regex: Some("(".into()),
            ..Default::default()
        };
        assert_eq!(
            check(bad_regex, MatchField::Uri).errors[0].field,
            "uri.regex"
        );
        let presence = check(StringMatch::default(), MatchField::PresenceAllowed);
        assert!(presence.is_valid() && presence.warnings.is_empty());
    }
}
