//! The `sync` shim: std's primitives normally, loom's under `--cfg loom`,
//! so the concurrency models (`models.rs`) run as written under both.

#[cfg(loom)]
pub use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(loom)]
pub use loom::thread;

#[cfg(not(loom))]
pub use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub use std::thread;

/// Lock, ignoring poisoning: the protected data stays consistent because
/// every critical section of this crate completes its update before it can
/// panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run a concurrency model: every interleaving under loom, else `runs`
/// times on std threads.
pub fn model<F>(runs: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    #[cfg(loom)]
    {
        let _ = runs;
        loom::model(f);
    }
    #[cfg(not(loom))]
    for _ in 0..runs {
        f();
    }
}
