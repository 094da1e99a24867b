//! Routing, with the meaning and field names of Istio's `VirtualService` (networking.istio.io/v1).
//! The control plane copies a VirtualService into this almost field for field, after resolving
//! short host names to fully qualified ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::matching::{opt_status_code, Percent, StringMatch};

/// Routes for the hosts it names. Without `gateways` (or with `mesh` among them) it applies to
/// the sidecar's outbound traffic; a plain listener with `gateway: NAME` uses the ones that list
/// `NAME`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VirtualService {
    /// For the config dump and logs only.
    pub name: String,
    pub namespace: String,
    /// Host names (as in the `Host`/`:authority` header, without port) the routes serve;
    /// `*.example.com` matches any subdomain and `*` anything.
    pub hosts: Vec<String>,
    pub gateways: Vec<String>,
    /// HTTP routes, tried in order; the first whose `match` fits wins.
    #[serde(deserialize_with = "crate::checked::vec")]
    pub http: Vec<HttpRoute>,
    /// Routes for opaque TCP traffic to these hosts.
    pub tcp: Vec<TcpRoute>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRoute {
    pub name: String,
    /// Any one of these must match (OR); within one, every condition must (AND). Empty: all.
    #[serde(rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    /// Where to send the request, split by `weight`.
    pub route: Vec<HttpRouteDestination>,
    pub redirect: Option<HttpRedirect>,
    pub direct_response: Option<HttpDirectResponse>,
    pub rewrite: Option<HttpRewrite>,
    /// Time for the whole request, retries included, until the response headers arrive.
    pub timeout: Option<Duration>,
    pub retries: Option<HttpRetry>,
    pub fault: Option<HttpFaultInjection>,
    /// Copies of requests go here too; their answers are dropped.
    pub mirror: Option<Destination>,
    /// The share of requests mirrored (default 100%).
    pub mirror_percentage: Option<Percent>,
    /// Several mirrors, each with its own percentage.
    pub mirrors: Vec<HttpMirrorPolicy>,
    pub cors_policy: Option<CorsPolicy>,
    pub headers: Option<Headers>,
    /// mesh-proxy's addition (Istio sets it with an EnvoyFilter): a token bucket for the
    /// requests this route serves; empty: 429 with response flag `RL`.
    #[serde(deserialize_with = "crate::telemetry::checked_bucket")]
    pub local_rate_limit: Option<crate::telemetry::TokenBucket>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpMatchRequest {
    pub name: String,
    pub uri: Option<StringMatch>,
    pub scheme: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    /// Header name (lower case) → match; `{}` means the header must be present.
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must not match (`{}`: must be absent).
    pub without_headers: BTreeMap<String, StringMatch>,
    /// The destination port the request was sent to.
    pub port: Option<u16>,
    /// Labels the sending workload (this proxy's node) must carry.
    pub source_labels: BTreeMap<String, String>,
    pub source_namespace: Option<String>,
    pub query_params: BTreeMap<String, StringMatch>,
    pub ignore_uri_case: bool,
    /// Gateways this match is limited to (plain listeners' `gateway` names).
    pub gateways: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteDestination {
    pub destination: Destination,
    /// Relative share of the traffic; a single destination without a weight gets all of it.
    #[serde(default)]
    pub weight: Option<u32>,
    #[serde(default)]
    pub headers: Option<Headers>,
}

/// A service (and optionally a subset and port) to send traffic to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Destination {
    /// A service's `host` (fully qualified, e.g. `reviews.default.svc.cluster.local`).
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<PortSelector>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSelector {
    pub number: u16,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRedirect {
    /// Replaces the path (and query).
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub port: Option<u16>,
    /// `FROM_PROTOCOL_DEFAULT` or `FROM_REQUEST_PORT`.
    pub derive_port: Option<DerivePort>,
    pub scheme: Option<String>,
    /// Default 301.
    #[serde(deserialize_with = "opt_status_code")]
    pub redirect_code: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DerivePort {
    FromProtocolDefault,
    FromRequestPort,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpDirectResponse {
    #[serde(deserialize_with = "crate::matching::status_code")]
    pub status: u16,
    #[serde(default)]
    pub body: Option<HttpBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpBody {
    pub string: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRewrite {
    /// Replaces the part of the path the `uri` match matched (its prefix, or all of an exact
    /// match); without a uri match, the whole path.
    pub uri: Option<String>,
    /// Replaces the `Host`/`:authority` header.
    pub authority: Option<String>,
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    #[serde(rename = "match")]
    pub pattern: crate::matching::RegexPattern,
    /// May use `\1`-style capture references.
    pub rewrite: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRetry {
    /// Retries after the first try (Istio's meaning): 2 means up to 3 tries.
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated: `5xx`, `gateway-error`, `reset`, `connect-failure`, `refused-stream`,
    /// `retriable-4xx`, `retriable-status-codes`, gRPC `cancelled`, `deadline-exceeded`,
    /// `internal`, `resource-exhausted`, `unavailable`, and status codes such as `503`.
    /// Default: `connect-failure,refused-stream,unavailable,cancelled,503` (Istio's).
    pub retry_on: Option<String>,
    pub retry_remote_localities: Option<bool>,
    /// mesh-proxy's addition: exponential backoff with full jitter between tries.
    pub backoff: Option<RetryBackoff>,
}

/// Backoff between retries: the n-th wait is random in `[0, min(base × 2ⁿ, max))`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBackoff {
    /// Default 25ms, as Envoy's.
    #[serde(default)]
    pub base_interval: Option<Duration>,
    /// Default 10 × base.
    #[serde(default)]
    pub max_interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpFaultInjection {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    pub fixed_delay: Duration,
    /// Share of requests delayed; absent: all.
    #[serde(default)]
    pub percentage: Option<Percent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    #[serde(default, deserialize_with = "opt_status_code")]
    pub http_status: Option<u16>,
    /// A gRPC status name (`UNAVAILABLE`) or number, answered as a trailers-only response.
    #[serde(default)]
    pub grpc_status: Option<String>,
    #[serde(default)]
    pub percentage: Option<Percent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMirrorPolicy {
    pub destination: Destination,
    #[serde(default)]
    pub percentage: Option<Percent>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CorsPolicy {
    pub allow_origins: Vec<StringMatch>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<Duration>,
    pub allow_credentials: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Headers {
    pub request: Option<HeaderOperations>,
    pub response: Option<HeaderOperations>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HeaderOperations {
    /// Replace (or create) these headers.
    pub set: BTreeMap<String, String>,
    /// Append these values.
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpRoute {
    #[serde(rename = "match")]
    pub matches: Vec<L4MatchAttributes>,
    pub route: Vec<RouteDestination>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct L4MatchAttributes {
    /// IPv4 CIDRs (`10.0.0.0/8`) or addresses the connection was sent to.
    pub destination_subnets: Vec<String>,
    pub port: Option<u16>,
    pub source_labels: BTreeMap<String, String>,
    pub source_namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDestination {
    pub destination: Destination,
    #[serde(default)]
    pub weight: Option<u32>,
}

impl crate::checked::Check for HttpRoute {
    fn check(&self) -> Result<(), String> {
        let actions = usize::from(!self.route.is_empty())
            + usize::from(self.redirect.is_some())
            + usize::from(self.direct_response.is_some());
        if actions != 1 {
            return Err(
                "an HTTP route needs exactly one of `route`, `redirect` or `directResponse`".into(),
            );
        }
        if self.route.len() > 1 && self.route.iter().all(|d| d.weight.unwrap_or(0) == 0) {
            return Err("several destinations need weights, not all 0".into());
        }
        if let Some(abort) = self.fault.as_ref().and_then(|f| f.abort.as_ref()) {
            if abort.http_status.is_none() == abort.grpc_status.is_none() {
                return Err("a fault abort needs one of `httpStatus` or `grpcStatus`".into());
            }
            if let Some(g) = &abort.grpc_status {
                if crate::grpc_code(g).is_none() {
                    return Err(format!("unknown gRPC status {g:?}"));
                }
            }
        }
        if let Some(r) = &self.retries {
            if let Some(on) = &r.retry_on {
                for kind in on.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    if !crate::RETRY_ON_KINDS.contains(&kind) && kind.parse::<u16>().is_err() {
                        return Err(format!(
                            "retryOn: unknown condition {kind:?} (known: {})",
                            crate::RETRY_ON_KINDS.join(", ")
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
