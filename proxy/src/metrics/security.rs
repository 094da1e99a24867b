//! Counters of the security and telemetry layers, served beside the Istio metrics with a
//! `mesh_proxy_` prefix (Istio has no standard names for them).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct SecurityStats {
    pub cert_loads: AtomicU64,
    pub cert_reload_errors: AtomicU64,
    /// Unix seconds when the workload certificate in force expires; 0: none loaded.
    cert_not_after: AtomicI64,
    /// By (side, reason).
    handshake_errors: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Plaintext connections refused by STRICT mTLS.
    pub plaintext_refused: AtomicU64,
    pub rbac_denied: AtomicU64,
    pub rbac_allowed: AtomicU64,
    pub rbac_audited: AtomicU64,
    pub rate_limited: AtomicU64,
    pub spans_exported: AtomicU64,
    pub spans_dropped: AtomicU64,
    pub span_export_errors: AtomicU64,
    pub access_logs_dropped: AtomicU64,
}

impl SecurityStats {
    pub fn cert_loaded(&self, not_after: i64) {
        self.cert_loads.fetch_add(1, Ordering::Relaxed);
        self.cert_not_after.store(not_after, Ordering::Relaxed);
    }

    pub fn handshake_failed(&self, side: &'static str, reason: &'static str) {
        let mut m = self
            .handshake_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *m.entry((side, reason)).or_default() += 1;
    }

    pub fn handshake_errors(&self, side: &str, reason: &str) -> u64 {
        let m = self
            .handshake_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter(|((s, r), _)| *s == side && *r == reason)
            .map(|(_, n)| *n)
            .sum()
    }

    pub(super) fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let not_after = self.cert_not_after.load(Ordering::Relaxed);
        let counters: [(&str, &str, u64); 11] = [
            (
                "mesh_proxy_cert_loads_total",
                "Workload certificates loaded.",
                get(&self.cert_loads),
            ),
            (
                "mesh_proxy_cert_reload_errors_total",
                "Certificate files that could not be loaded (the previous ones stayed).",
                get(&self.cert_reload_errors),
            ),
            (
                "mesh_proxy_inbound_plaintext_refused_total",
                "Plaintext connections refused by STRICT mTLS.",
                get(&self.plaintext_refused),
            ),
            (
                "mesh_proxy_rbac_denied_total",
                "Requests and connections denied by authorization.",
                get(&self.rbac_denied),
            ),
            (
                "mesh_proxy_rbac_allowed_total",
                "Requests and connections authorization allowed.",
                get(&self.rbac_allowed),
            ),
            (
                "mesh_proxy_rbac_audited_total",
                "Requests and connections an AUDIT policy matched.",
                get(&self.rbac_audited),
            ),
            (
                "mesh_proxy_rate_limited_total",
                "Requests and connections refused by a local rate limit.",
                get(&self.rate_limited),
            ),
            (
                "mesh_proxy_spans_exported_total",
                "Spans sent to the trace collector.",
                get(&self.spans_exported),
            ),
            (
                "mesh_proxy_spans_dropped_total",
                "Spans dropped (queue full or collector failing).",
                get(&self.spans_dropped),
            ),
            (
                "mesh_proxy_span_export_errors_total",
                "Span batches the collector did not take.",
                get(&self.span_export_errors),
            ),
            (
                "mesh_proxy_access_logs_dropped_total",
                "Access log lines dropped because stdout did not keep up.",
                get(&self.access_logs_dropped),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP mesh_proxy_cert_expiry_timestamp_seconds When the workload certificate in force expires (0: none loaded).\n# TYPE mesh_proxy_cert_expiry_timestamp_seconds gauge\nmesh_proxy_cert_expiry_timestamp_seconds {not_after}"
        );
        if not_after > 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let _ = writeln!(
                out,
                "# HELP mesh_proxy_cert_expiry_seconds Seconds until the workload certificate expires (negative: expired).\n# TYPE mesh_proxy_cert_expiry_seconds gauge\nmesh_proxy_cert_expiry_seconds {}",
                not_after - now
            );
        }
        let m = self
            .handshake_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP mesh_proxy_tls_handshake_errors_total TLS handshakes that failed, by side and reason.\n# TYPE mesh_proxy_tls_handshake_errors_total counter\n");
        for ((side, reason), n) in m.iter() {
            let _ = writeln!(
                out,
                "mesh_proxy_tls_handshake_errors_total{{side=\"{side}\",reason=\"{reason}\"}} {n}"
            );
        }
    }
}
