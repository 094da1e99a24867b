//! glibc malloc settings for a long-running control plane whose memory comes in waves (the
//! first listing of the cluster, a configuration build, a mesh of proxies connecting at once):
//! what a wave freed goes back to the kernel instead of staying in the process as free heap.
//! Elsewhere (musl, macOS) these are no-ops.

/// Call before any other thread starts: two arenas rather than one per thread (each keeps
/// its own free memory), and a fixed mmap threshold, so that large short-lived buffers (a page
/// of a LIST, a serialised model) are unmapped when freed; glibc otherwise raises the
/// threshold after the first such free and keeps them in the heap from then on.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns the free pages of the heap to the kernel (after a wave: a build, a listing).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
