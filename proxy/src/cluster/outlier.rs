//! Outlier detection: endpoints that answer with too many 5xx (or gateway errors, or fail to
//! connect) in a row are ejected for `baseEjectionTime × times ejected`, at most
//! `maxEjectionPercent` of the cluster at once (one endpoint always may be).

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Instant;

use super::Cluster;
use crate::metrics::Metrics;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// A fixed point in time the ejection deadlines count from.
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since [`epoch`]; never 0, so that 0 can mean "not ejected".
pub fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// How an attempt on an endpoint ended, as outlier detection counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// Could not connect, or the connection broke before an answer.
    ConnectFailure,
}

impl Cluster {
    /// Counts an attempt's outcome on endpoint `i`, ejecting it when it crosses a threshold.
    pub fn report(&self, i: usize, outcome: Outcome, metrics: &Metrics) {
        let Some(policy) = &self.policy.outlier else {
            return;
        };
        let Some(ep) = self.endpoints.get(i) else {
            return;
        };
        let s = &ep.state;
        let (is_5xx, is_gateway) = match outcome {
            Outcome::Status(c) => (c >= 500, matches!(c, 502..=504)),
            Outcome::ConnectFailure => (true, true),
        };
        if !is_5xx {
            // Only write when needed: a success should not bounce the cache line.
            if s.consecutive_5xx.load(Ordering::Relaxed) != 0 {
                s.consecutive_5xx.store(0, Ordering::Relaxed);
            }
            if s.consecutive_gateway.load(Ordering::Relaxed) != 0 {
                s.consecutive_gateway.store(0, Ordering::Relaxed);
            }
            return;
        }
        let c5 = s.consecutive_5xx.fetch_add(1, Ordering::AcqRel) + 1;
        let cg = if is_gateway {
            s.consecutive_gateway.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            s.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        let trip = (policy.consecutive_5xx > 0 && c5 >= policy.consecutive_5xx)
            || (policy.consecutive_gateway > 0 && cg >= policy.consecutive_gateway);
        if !trip {
            return;
        }
        let now = now_ms();
        if s.ejected_until_ms.load(Ordering::Acquire) > now {
            return;
        }
        let ejected = self
            .endpoints
            .iter()
            .filter(|e| e.state.ejected_until_ms.load(Ordering::Relaxed) > now)
            .count();
        let n = self.endpoints.len();
        if ejected > 0 && (ejected + 1) * 100 > n * policy.max_ejection_percent as usize {
            return;
        }
        let times = s.ejections.fetch_add(1, Ordering::AcqRel) + 1;
        let until = now + policy.base_ejection.as_millis() as u64 * u64::from(times);
        s.ejected_until_ms.store(until, Ordering::Release);
        s.consecutive_5xx.store(0, Ordering::Relaxed);
        s.consecutive_gateway.store(0, Ordering::Relaxed);
        Metrics::inc(&metrics.server.outlier_ejections_total);
        tracing::info!(cluster = %self.name, endpoint = %ep.addr, times, "outlier ejected");
    }
}
