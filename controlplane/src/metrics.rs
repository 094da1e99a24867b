//! meshd's Prometheus metrics, with Istio's names where istiod has the same one.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::webhook::admission::Response;

#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    injection_requests: Counter,
    injection_success: Counter,
    injection_skip: Counter,
    injection_failure: Counter,
    validation_passed: Counter,
    validation_failed: Counter,
    csr_received: Counter,
    authentication_failures: Counter,
    csr_refused: Counter,
    certificates_issued: Counter,
    pushes: Family<TypeLabel, Counter>,
    rejects: Counter,
    connected: Gauge,
    convergence: Histogram,
    problems: Gauge,
    watch_failing: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let injection_requests = counter(
            &mut registry,
            "sidecar_injection_requests",
            "Pods sent to the injection webhook",
        );
        let injection_success = counter(
            &mut registry,
            "sidecar_injection_success",
            "Pods that got the sidecar",
        );
        let injection_skip = counter(
            &mut registry,
            "sidecar_injection_skip",
            "Pods left alone (opted out, hostNetwork, already injected)",
        );
        let injection_failure = counter(
            &mut registry,
            "sidecar_injection_failure",
            "Pods refused because they could not be injected",
        );
        let validation_passed = counter(
            &mut registry,
            "galley_validation_passed",
            "Istio API objects the validation webhook accepted",
        );
        let validation_failed = counter(
            &mut registry,
            "galley_validation_failed",
            "Istio API objects the validation webhook refused",
        );
        let csr_received = counter(
            &mut registry,
            "citadel_server_csr_count",
            "Certificate signing requests received",
        );
        let authentication_failures = counter(
            &mut registry,
            "citadel_server_authentication_failure_count",
            "Certificate requests whose token was not accepted",
        );
        let csr_refused = counter(
            &mut registry,
            "citadel_server_csr_sign_err_count",
            "Certificate requests refused (wrong identity, bad CSR)",
        );
        let certificates_issued = counter(
            &mut registry,
            "citadel_server_success_cert_issuance_count",
            "Workload certificates issued",
        );
        let pushes = Family::<TypeLabel, Counter>::default();
        registry.register(
            "pilot_xds_pushes",
            "Pushes sent to proxies, by resource type",
            pushes.clone(),
        );
        let rejects = counter(
            &mut registry,
            "pilot_total_xds_rejects",
            "Pushes the proxies refused (NACK)",
        );
        let connected = Gauge::default();
        registry.register(
            "pilot_xds",
            "Proxies connected to this meshd",
            connected.clone(),
        );
        let convergence = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        registry.register(
            "pilot_proxy_convergence_time",
            "Seconds from sending a push to the proxy acknowledging it",
            convergence.clone(),
        );
        let problems = Gauge::default();
        registry.register(
            "meshd_config_problems",
            "Istio objects skipped or sent without some fields",
            problems.clone(),
        );
        let watch_failing = Gauge::default();
        registry.register(
            "meshd_watch_failing_kinds",
            "Kinds whose watch of the API server is failing (the last known state is served)",
            watch_failing.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            injection_requests,
            injection_success,
            injection_skip,
            injection_failure,
            validation_passed,
            validation_failed,
            csr_received,
            authentication_failures,
            csr_refused,
            certificates_issued,
            pushes,
            rejects,
            connected,
            convergence,
            problems,
            watch_failing,
        }))
    }

    pub fn injection(&self, response: &Response) {
        self.0.injection_requests.inc();
        if !response.allowed {
            self.0.injection_failure.inc();
        } else if response.patch.is_some() {
            self.0.injection_success.inc();
        } else {
            self.0.injection_skip.inc();
        }
    }

    pub fn validation(&self, response: &Response) {
        if response.allowed {
            self.0.validation_passed.inc();
        } else {
            self.0.validation_failed.inc();
        }
    }

    pub fn csr_received(&self) {
        self.0.csr_received.inc();
    }

    pub fn authentication_failed(&self) {
        self.0.authentication_failures.inc();
    }

    pub fn csr_refused(&self) {
        self.0.csr_refused.inc();
    }

    pub fn certificate_issued(&self) {
        self.0.certificates_issued.inc();
    }

    pub fn push_sent(&self, type_url: &str) {
        self.0
            .pushes
            .get_or_create(&TypeLabel {
                r#type: type_url.to_owned(),
            })
            .inc();
    }

    pub fn push_acknowledged(&self, took: std::time::Duration) {
        self.0.convergence.observe(took.as_secs_f64());
    }

    pub fn push_rejected(&self) {
        self.0.rejects.inc();
    }

    pub fn proxy_connected(&self) {
        self.0.connected.inc();
    }

    pub fn proxy_disconnected(&self) {
        self.0.connected.dec();
    }

    pub fn config_problems(&self, count: usize) {
        self.0.problems.set(count as i64);
    }

    pub fn watch_failing(&self, kinds: usize) {
        self.0.watch_failing.set(kinds as i64);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.0.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_kind() {
        let metrics = Metrics::new();
        let mut injected = Response::allow("a");
        injected.patch = Some(serde_json::json!([]));
        metrics.injection(&injected);
        metrics.injection(&Response::allow("b"));
        metrics.injection(&Response::deny("c", "no".to_owned()));
        metrics.validation(&Response::deny("d", "no".to_owned()));
        let text = metrics.encode();
        for line in [
            "sidecar_injection_requests_total 3",
            "sidecar_injection_success_total 1",
            "sidecar_injection_skip_total 1",
            "sidecar_injection_failure_total 1",
            "galley_validation_failed_total 1",
            "galley_validation_passed_total 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
