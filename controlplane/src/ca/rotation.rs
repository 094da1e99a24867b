//! When a self-signed root is replaced, and when the one it replaced stops being trusted.
//!
//! A rotation makes a new root with a new key and signs with it at once, while the trust bundle
//! holds both roots for an overlap period: certificates the old root signed stay valid, and
//! every proxy renews its certificate (at half its life) under the new root before the old one
//! leaves the bundle.

use std::time::Duration;

use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Rotate once the signing root has less than this left.
    pub grace: Duration,
    /// How long a replaced root stays in the bundle.
    pub overlap: Duration,
}

impl Default for Policy {
    /// A year before a ten-year root ends; two days of overlap, twice the longest workload
    /// certificate meshd issues.
    fn default() -> Self {
        Policy {
            grace: Duration::from_secs(365 * 24 * 3600),
            overlap: Duration::from_secs(2 * 24 * 3600),
        }
    }
}

/// What the CA Secret says, as far as rotation is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub signing_not_after: OffsetDateTime,
    /// Roots in the bundle, the signing root included.
    pub roots: usize,
    /// When the last rotation happened.
    pub rotated_at: Option<OffsetDateTime>,
    /// Someone asked for a rotation now (the Secret's rotate annotation).
    pub requested: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Keep,
    /// Make a new root, keep the old one in the bundle.
    Rotate,
    /// The overlap is over: only the signing root stays in the bundle.
    DropReplaced,
}

pub fn plan(state: &State, now: OffsetDateTime, policy: &Policy) -> Action {
    let secs = |d: Duration| time::Duration::seconds(d.as_secs() as i64);
    if state.requested || state.signing_not_after - now < secs(policy.grace) {
        // Not twice within one overlap: the bundle would lose the root still in use.
        let recent = state
            .rotated_at
            .is_some_and(|at| now - at < secs(policy.overlap));
        if !recent || state.requested {
            return Action::Rotate;
        }
    }
    if state.roots > 1
        && state
            .rotated_at
            .is_none_or(|at| now - at >= secs(policy.overlap))
    {
        return Action::DropReplaced;
    }
    Action::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600;

    fn state(
        days_left: i64,
        roots: usize,
        rotated_days_ago: Option<i64>,
        requested: bool,
    ) -> State {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(10_000);
        State {
            signing_not_after: now + time::Duration::seconds(days_left * DAY),
            roots,
            rotated_at: rotated_days_ago.map(|d| now - time::Duration::seconds(d * DAY)),
            requested,
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::days(10_000)
    }

    #[test]
    fn a_fresh_root_is_kept() {
        assert_eq!(
            plan(&state(3000, 1, None, false), now(), &Policy::default()),
            Action::Keep
        );
    }

    #[test]
    fn a_root_inside_its_grace_period_is_rotated_once() {
        let policy = Policy::default();
        assert_eq!(
            plan(&state(300, 1, None, false), now(), &policy),
            Action::Rotate
        );
        // Just rotated: the new root is fresh, the old one stays for the overlap.
        assert_eq!(
            plan(&state(3650, 2, Some(1), false), now(), &policy),
            Action::Keep
        );
    }

    #[test]
    fn the_replaced_root_leaves_the_bundle_after_the_overlap() {
        let policy = Policy::default();
        assert_eq!(
            plan(&state(3650, 2, Some(3), false), now(), &policy),
            Action::DropReplaced
        );
        assert_eq!(
            plan(&state(3650, 2, None, false), now(), &policy),
            Action::DropReplaced
        );
    }

    #[test]
    fn a_requested_rotation_happens_at_once() {
        assert_eq!(
            plan(&state(3000, 1, None, true), now(), &Policy::default()),
            Action::Rotate
        );
    }
}
