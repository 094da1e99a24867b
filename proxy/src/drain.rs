//! Graceful drain: listeners stop accepting, connections finish what they have in flight
//! (HTTP/1.1 closes after the current response, HTTP/2 sends GOAWAY), and whoever started the
//! drain waits for the last connection or the drain timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

#[derive(Clone)]
pub struct Drain {
    inner: Arc<Inner>,
}

struct Inner {
    signal: watch::Sender<bool>,
    /// Woken once when the drain starts (cheaper to poll, per connection, than the watch).
    started: Notify,
    draining: std::sync::atomic::AtomicBool,
    active: AtomicUsize,
    idle: Notify,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            inner: Arc::new(Inner {
                signal: watch::channel(false).0,
                started: Notify::new(),
                draining: std::sync::atomic::AtomicBool::new(false),
                active: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }
}

/// A connection being served; the drain waits for all of them.
pub struct ConnGuard(Arc<Inner>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    pub fn track(&self) -> ConnGuard {
        self.inner.active.fetch_add(1, Ordering::AcqRel);
        ConnGuard(self.inner.clone())
    }

    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    pub fn is_draining(&self) -> bool {
        *self.inner.signal.borrow()
    }

    /// Resolves once a drain has started.
    pub async fn signaled(&self) {
        let started = self.inner.started.notified();
        tokio::pin!(started);
        started.as_mut().enable();
        if self.inner.draining.load(Ordering::Acquire) {
            return;
        }
        started.await;
    }

    /// Starts the drain and waits until no connection is left, or `timeout`; true if all ended.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.inner.signal.send_replace(true);
        self.inner.draining.store(true, Ordering::Release);
        self.inner.started.notify_waiters();
        let wait = async {
            loop {
                let idle = self.inner.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.active() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}
