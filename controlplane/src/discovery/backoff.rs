//! How often a failing discovery watch is tried again. kube-runtime's default backoff grows to
//! 30 s with jitter that can double it, so after an API server outage meshd could go on serving
//! a stale mesh for up to a minute after the server was back. Discovery wants the mesh back
//! within seconds, and one attempt per kind every few seconds costs the API server nothing.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use kube::runtime::utils::Backoff;

const FIRST: Duration = Duration::from_millis(200);
/// The longest wait before jitter (which can add as much again).
const CAP: Duration = Duration::from_secs(3);

pub struct WatchBackoff {
    builder: ExponentialBuilder,
    current: backon::ExponentialBackoff,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(FIRST)
            .with_max_delay(CAP)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        WatchBackoff {
            current: builder.build(),
            builder,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.current.next()
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.current = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_a_few_seconds_and_start_again_after_a_reset() {
        let mut b = WatchBackoff::default();
        let waits: Vec<Duration> = (&mut b).take(12).collect();
        assert!(waits[0] < Duration::from_millis(500), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= CAP * 2), "{waits:?}");
        assert!(waits[11] >= CAP, "{waits:?}");
        b.reset();
        assert!(b.next().is_some_and(|w| w < Duration::from_millis(500)));
    }
}
