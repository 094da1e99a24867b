//! The operator's Prometheus metrics, in the text exposition format `/metrics` serves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Counters and histograms of reconciles, plus the state `/readyz` reports.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub reconciles: Counter,
    pub reconcile_errors: Counter,
    pub reconcile_duration: Histogram,
    pub leader: Gauge,
    /// Set once the API server answered a request.
    pub apiserver_seen: Arc<AtomicBool>,
    /// Set while the leader-or-standby loop runs.
    pub loop_running: Arc<AtomicBool>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mesh_operator");
        let reconciles = Counter::default();
        let reconcile_errors = Counter::default();
        // 10 ms .. ~82 s
        let reconcile_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "MeshInstall reconciles started",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "MeshInstall reconciles that ended in an error",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one MeshInstall reconcile took",
            reconcile_duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            reconciles,
            reconcile_errors,
            reconcile_duration,
            leader,
            apiserver_seen: Arc::default(),
            loop_running: Arc::default(),
        }
    }

    pub fn observe_reconcile(&self, took: Duration, failed: bool) {
        self.reconciles.inc();
        if failed {
            self.reconcile_errors.inc();
        }
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Ready: the leader-or-standby loop runs and the API server answered once.
    pub fn ready(&self) -> bool {
        self.loop_running.load(Ordering::Relaxed) && self.apiserver_seen.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names() {
        let m = Metrics::new();
        m.observe_reconcile(Duration::from_millis(30), true);
        let text = m.encode();
        assert!(text.contains("mesh_operator_reconciles_total 1"), "{text}");
        assert!(
            text.contains("mesh_operator_reconcile_errors_total 1"),
            "{text}"
        );
        assert!(
            text.contains("mesh_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("# EOF"), "{text}");
    }
}
