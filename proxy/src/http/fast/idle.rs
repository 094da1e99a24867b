//! The clock of the fast path's header read timeout: one tick a second for every connection,
//! rather than a timer each. A timer per connection sits in the worker's timer wheel, which
//! the runtime then walks, and arms the kernel's timeout of `epoll_wait`, on every wakeup; with
//! no timers in the wheel a worker sleeps without either. The ticks come from the control
//! thread ([`crate::run`]); a connection checks its idle time when one arrives, so a slow
//! client is cut off between the timeout and a second after it.

use tokio::sync::Notify;

static TICK: Notify = Notify::const_new();

/// Wakes every connection waiting for a request head, to check its idle time.
pub fn tick() {
    TICK.notify_waiters();
}

/// Resolves at the next tick (once polled, or enabled, it does not miss one).
pub fn next_tick() -> tokio::sync::futures::Notified<'static> {
    TICK.notified()
}
