//! Choosing an endpoint: round robin, least request (power of two choices), random, or a
//! consistent hash (weighted rendezvous hashing: few keys move when endpoints come and go).
//! Ejected endpoints are skipped unless too few are left (`minHealthPercent`).

use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;

use super::{outlier, Cluster, LbPolicy};

impl Cluster {
    /// The endpoint for the next request; `hash` is the consistent-hash key's hash, if the
    /// policy has one and the request carried it. `None`: no endpoint is available.
    pub fn pick(&self, hash: Option<u64>) -> Option<usize> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        // Without outlier detection nothing is ejected; one endpoint is the only choice.
        if self.policy.outlier.is_none() {
            if n == 1 {
                return Some(0);
            }
            return self.pick_among(hash, |_| true);
        }
        let now = outlier::now_ms();
        let healthy = |i: usize| {
            self.endpoints[i]
                .state
                .ejected_until_ms
                .load(Ordering::Relaxed)
                <= now
        };
        let use_all = match &self.policy.outlier {
            Some(o) if o.min_health_percent > 0 => {
                let h = (0..n).filter(|&i| healthy(i)).count();
                h * 100 < n * o.min_health_percent as usize
            }
            _ => false,
        };
        let ok = |i: usize| use_all || healthy(i);
        self.pick_among(hash, ok)
    }

    fn pick_among(&self, hash: Option<u64>, ok: impl Fn(usize) -> bool) -> Option<usize> {
        match (&self.policy.lb, hash) {
            (LbPolicy::ConsistentHash(_), Some(h)) => self.rendezvous(h, ok),
            (LbPolicy::RoundRobin, _) | (LbPolicy::ConsistentHash(_), None) => {
                let w = self.slots();
                let start = self.state.rr.fetch_add(1, Ordering::Relaxed);
                (0..w).map(|k| self.slot((start + k) % w)).find(|&i| ok(i))
            }
            (LbPolicy::Random | LbPolicy::Passthrough, _) => self.sample(&ok),
            (LbPolicy::LeastRequest, _) => {
                let a = self.sample(&ok)?;
                // Two different endpoints when there are: with two, the idle one always wins.
                let b = self.sample(&|i| i != a && ok(i)).unwrap_or(a);
                let load = |i: usize| self.endpoints[i].state.active.load(Ordering::Relaxed);
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }

    /// A weighted random endpoint that passes `ok`; falls back to a scan when few do.
    fn sample(&self, ok: &impl Fn(usize) -> bool) -> Option<usize> {
        let w = self.slots();
        for _ in 0..4 {
            let i = self.slot(fastrand::usize(..w));
            if ok(i) {
                return Some(i);
            }
        }
        let start = fastrand::usize(..w);
        (0..w).map(|k| self.slot((start + k) % w)).find(|&i| ok(i))
    }

    fn rendezvous(&self, key: u64, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let mut best: Option<(f64, usize)> = None;
        for (i, e) in self.endpoints.iter().enumerate() {
            if !ok(i) {
                continue;
            }
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut h);
            e.addr.hash(&mut h);
            // Weighted rendezvous: score = -w / ln(u), u uniform in (0, 1).
            let u = ((h.finish() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = -(e.weight.max(1) as f64) / u.ln();
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, i));
            }
        }
        best.map(|(_, i)| i)
    }
}

/// Hash of a consistent-hash key.
pub fn hash_key(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}
