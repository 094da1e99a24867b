//! Local rate limits: token buckets, per route (VirtualService `localRateLimit`) and per
//! inbound port (`inbound.rateLimits`). A request finding the bucket empty is answered 429
//! with response flag `RL`, as Envoy's local rate limit filter does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh_proxy_config as cfg;

use crate::http::chain::{Filter, LocalReply, ResponseDetails};
use crate::listener::ConnInfo;
use crate::metrics::{Metrics, ResponseFlags};

/// Envoy's token bucket: full at start, `per_fill` tokens added every `interval` (in whole
/// fills, so the rate is exact over each interval), never more than `max`.
#[derive(Debug)]
pub struct TokenBucket {
    max: u32,
    per_fill: u32,
    interval: Duration,
    state: Mutex<(u32, Instant)>,
}

impl TokenBucket {
    pub fn new(b: &cfg::TokenBucket) -> TokenBucket {
        TokenBucket {
            max: b.max_tokens,
            per_fill: b.tokens_per_fill.unwrap_or(b.max_tokens),
            interval: b.fill_interval.get(),
            state: Mutex::new((b.max_tokens, Instant::now())),
        }
    }

    /// The bucket for `key` (a route or port) with these settings: the one an earlier
    /// snapshot made, if it is still in use, so that a config push (they come often) does not
    /// refill the buckets; a new one otherwise.
    pub fn shared(key: &str, b: &cfg::TokenBucket) -> Arc<TokenBucket> {
        static LIVE: std::sync::OnceLock<Mutex<HashMap<String, std::sync::Weak<TokenBucket>>>> =
            std::sync::OnceLock::new();
        let full_key = format!(
            "{key} {}/{}/{:?}",
            b.max_tokens,
            b.tokens_per_fill.unwrap_or(b.max_tokens),
            b.fill_interval.get()
        );
        let mut live = LIVE
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = live.get(&full_key).and_then(std::sync::Weak::upgrade) {
            return existing;
        }
        live.retain(|_, w| w.strong_count() > 0);
        let bucket = Arc::new(TokenBucket::new(b));
        live.insert(full_key, Arc::downgrade(&bucket));
        bucket
    }

    /// Takes a token if there is one.
    pub fn try_take(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(s.1);
        if elapsed >= self.interval {
            let fills = (elapsed.as_nanos() / self.interval.as_nanos().max(1)) as u64;
            let added = fills.saturating_mul(u64::from(self.per_fill));
            s.0 = (u64::from(s.0) + added).min(u64::from(self.max)) as u32;
            s.1 += self.interval * fills.min(u64::from(u32::MAX)) as u32;
        }
        if s.0 == 0 {
            return false;
        }
        s.0 -= 1;
        true
    }
}

/// The 429 of an empty bucket.
pub fn limited_reply(grpc: bool) -> LocalReply {
    let mut response = crate::http::local::reply(429, "local_rate_limited", grpc);
    response
        .extensions_mut()
        .insert(ResponseDetails("local_rate_limited"));
    LocalReply {
        response,
        flags: ResponseFlags::RATE_LIMITED,
    }
}

/// The inbound side's buckets by workload port; entries without a port share one bucket for
/// the ports no entry names.
pub struct PortLimits {
    by_port: HashMap<u16, Arc<TokenBucket>>,
    other: Option<Arc<TokenBucket>>,
    metrics: Arc<Metrics>,
}

impl PortLimits {
    pub fn new(limits: &[cfg::PortRateLimit], metrics: Arc<Metrics>) -> PortLimits {
        let mut by_port = HashMap::new();
        let mut other = None;
        for l in limits {
            match l.port {
                Some(p) => {
                    by_port.insert(
                        p,
                        TokenBucket::shared(&format!("inbound port {p}"), &l.token_bucket),
                    );
                }
                None => other = Some(TokenBucket::shared("inbound other ports", &l.token_bucket)),
            }
        }
        PortLimits {
            by_port,
            other,
            metrics,
        }
    }

    /// Takes a token for `port`; true if allowed (or the port is not limited).
    pub fn take(&self, port: u16) -> bool {
        let bucket = self.by_port.get(&port).or(self.other.as_ref());
        let ok = bucket.is_none_or(|b| b.try_take());
        if !ok {
            Metrics::inc(&self.metrics.security.rate_limited);
        }
        ok
    }
}

impl Filter for PortLimits {
    fn name(&self) -> &'static str {
        "local_rate_limit"
    }
    fn on_request(&self, req: &http::request::Parts, conn: &ConnInfo) -> Option<LocalReply> {
        if self.take(conn.destination.port()) {
            return None;
        }
        let grpc = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        Some(limited_reply(grpc))
    }
}

/// A route's bucket check, for the outbound handler.
pub fn check_route(bucket: &TokenBucket, metrics: &Metrics, grpc: bool) -> Option<LocalReply> {
    if bucket.try_take() {
        return None;
    }
    Metrics::inc(&metrics.security.rate_limited);
    Some(limited_reply(grpc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_its_size_then_refills_whole() {
        let b = TokenBucket::new(&cfg::TokenBucket {
            max_tokens: 3,
            tokens_per_fill: Some(2),
            fill_interval: cfg::Duration::from_secs(3600),
        });
        assert!(b.try_take() && b.try_take() && b.try_take());
        assert!(!b.try_take());
        // Move the last fill back by one interval: two tokens come back, not three.
        {
            let mut s = b.state.lock().unwrap();
            s.1 -= Duration::from_secs(3600);
        }
        assert!(b.try_take() && b.try_take());
        assert!(!b.try_take());
    }
}
