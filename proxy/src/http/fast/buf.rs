//! Buffers for the fast path's upstream side, pooled per worker thread: a connection holds one
//! only while a request is in flight, so idle keep-alive connections cost no buffer memory,
//! and a busy worker does not go through the allocator per request.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// The size buffers start with; they may grow for a large response head and are given back
/// to the allocator rather than the pool if they did.
pub const SIZE: usize = 8 * 1024;
/// Buffers kept per worker: enough for the requests of a busy moment; more are allocated and
/// freed, so that a burst does not leave its buffers resident.
const KEPT: usize = 16;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer lent from the thread's pool; back to it on drop.
pub struct Buf(Vec<u8>);

impl Buf {
    pub fn take() -> Buf {
        let v = FREE
            .with(|f| f.borrow_mut().pop())
            .unwrap_or_else(|| Vec::with_capacity(SIZE));
        Buf(v)
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let mut v = std::mem::take(&mut self.0);
        if v.capacity() != SIZE {
            return;
        }
        v.clear();
        // try_with: a buffer dropped while the thread goes away is simply freed.
        let _ = FREE.try_with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < KEPT {
                f.push(v);
            }
        });
    }
}

impl Deref for Buf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_cleared_and_grown_ones_are_not_kept() {
        let mut a = Buf::take();
        a.extend_from_slice(b"leftover");
        let ptr = a.as_ptr();
        drop(a);
        let b = Buf::take();
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr, "the same buffer was lent again");
        drop(b);
        let mut c = Buf::take();
        c.reserve(SIZE * 4);
        drop(c);
        let d = Buf::take();
        assert_eq!(d.capacity(), SIZE);
    }
}
