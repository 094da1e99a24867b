//! Telemetry beyond metrics: tracing (meshConfig `defaultConfig.tracing`'s meaning), access logs
//! (meshConfig `accessLogFile` / `accessLogEncoding`, and the Telemetry API's on / errors-only),
//! and local rate limits (Envoy's local rate limit token bucket).

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Tracing {
    /// Percentage of new traces sampled, 0 to 100 (Istio's default 1). A request that arrives
    /// with a sampling decision keeps it.
    pub sampling: Option<f64>,
    /// Where sampled spans go, in Zipkin v2 JSON; absent: headers are still propagated and
    /// generated, nothing is exported.
    pub zipkin: Option<Zipkin>,
    /// Spans per export request (default 100).
    pub max_batch_size: Option<u32>,
    /// Spans wait at most this long before they are sent (default 1s).
    pub flush_interval: Option<Duration>,
    /// Spans queued for export at most; beyond it new spans are dropped and counted (default 10000).
    pub max_queued_spans: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Zipkin {
    /// `host:port` of the collector (`zipkin.istio-system:9411`); spans are POSTed to
    /// `/api/v2/spans`.
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AccessLog {
    pub mode: AccessLogMode,
    pub encoding: AccessLogEncoding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogMode {
    #[default]
    Off,
    On,
    /// Only requests answered with a status ≥ 400 or a response flag, and TCP connections
    /// that ended with a flag.
    Errors,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    /// Istio's default text format.
    #[default]
    Text,
    /// One JSON object per line with Istio's default JSON keys.
    Json,
}

/// A token bucket: `maxTokens` to start with and at most, `tokensPerFill` added every
/// `fillInterval`; a request (or connection) takes one, none left: refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenBucket {
    pub max_tokens: u32,
    /// Default: `maxTokens`.
    #[serde(default)]
    pub tokens_per_fill: Option<u32>,
    pub fill_interval: Duration,
}

/// A local rate limit on inbound traffic to one workload port (or to every port).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRateLimit {
    /// The workload port; absent: every port no other entry names.
    #[serde(default)]
    pub port: Option<u16>,
    pub token_bucket: TokenBucket,
}

impl crate::checked::Check for TokenBucket {
    fn check(&self) -> Result<(), String> {
        if self.max_tokens == 0 {
            return Err("tokenBucket.maxTokens must be at least 1".into());
        }
        if self.fill_interval.get().is_zero() {
            return Err("tokenBucket.fillInterval must be more than 0".into());
        }
        Ok(())
    }
}

impl crate::checked::Check for PortRateLimit {
    fn check(&self) -> Result<(), String> {
        self.token_bucket.check()
    }
}

pub(crate) fn checked_bucket<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<TokenBucket>, D::Error> {
    let v = Option::<TokenBucket>::deserialize(d)?;
    if let Some(t) = &v {
        crate::checked::Check::check(t).map_err(serde::de::Error::custom)?;
    }
    Ok(v)
}

impl crate::checked::Check for Tracing {
    fn check(&self) -> Result<(), String> {
        if let Some(s) = self.sampling {
            if !(0.0..=100.0).contains(&s) {
                return Err(format!(
                    "tracing.sampling {s} is not a percentage (0 to 100)"
                ));
            }
        }
        if let Some(z) = &self.zipkin {
            if z.address
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(format!(
                    "tracing.zipkin.address {:?}: expected HOST:PORT",
                    z.address
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn checked_tracing<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Tracing>, D::Error> {
    let v = Option::<Tracing>::deserialize(d)?;
    if let Some(t) = &v {
        crate::checked::Check::check(t).map_err(serde::de::Error::custom)?;
    }
    Ok(v)
}
