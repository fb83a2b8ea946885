//! The `sync` shim: the primitives of the concurrency that the models
//! (`models.rs`) check — the snapshot round gate, replay turn-taking and
//! copy-on-write capture — are `parking_lot`'s and `std`'s in a normal
//! build (plain re-exports: nothing wraps the workers' path) and loom's
//! under `RUSTFLAGS="--cfg loom"`, so that loom explores the real code's
//! interleavings.
//!
//! Under loom only the models may run: loom's primitives panic outside
//! `loom::model`, so the step runs `cargo test ... loom` (see `.ci/run`).

#[cfg(not(loom))]
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

/// How a waiter pauses between two looks (`crate::spin::Backoff`).
#[cfg(not(loom))]
pub(crate) use crate::spin::Backoff;

/// Normal builds take the primitives themselves, no wrapper: these fail
/// to compile if a shim type ever becomes something other than the
/// original on the workers' path.
#[cfg(not(loom))]
const _: fn(parking_lot::Mutex<u8>) -> Mutex<u8> = |m| m;
#[cfg(not(loom))]
const _: fn(parking_lot::MutexGuard<'_, u8>) -> MutexGuard<'_, u8> = |g| g;
#[cfg(not(loom))]
const _: fn(parking_lot::Condvar) -> Condvar = |c| c;
#[cfg(not(loom))]
const _: fn(std::sync::atomic::AtomicU64) -> AtomicU64 = |a| a;
#[cfg(not(loom))]
const _: fn(crate::spin::Backoff) -> Backoff = |b| b;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

/// A spin phase bounded in time: `going` is true until `limit` has passed
/// since `start`.
#[cfg(not(loom))]
pub(crate) struct SpinFor {
    from: std::time::Instant,
    limit: std::time::Duration,
}

#[cfg(not(loom))]
impl SpinFor {
    #[inline]
    pub(crate) fn start(limit: std::time::Duration) -> SpinFor {
        SpinFor {
            from: std::time::Instant::now(),
            limit,
        }
    }

    /// Whether to look again before sleeping.
    #[inline]
    pub(crate) fn going(&mut self) -> bool {
        self.from.elapsed() < self.limit
    }
}

/// Under loom time does not pass: the spin phase is two looks, enough for
/// loom to try the gate opening before, between and after them.
#[cfg(loom)]
pub(crate) struct SpinFor {
    looks: u32,
}

#[cfg(loom)]
impl SpinFor {
    pub(crate) fn start(_limit: std::time::Duration) -> SpinFor {
        SpinFor { looks: 0 }
    }

    pub(crate) fn going(&mut self) -> bool {
        self.looks += 1;
        self.looks <= 2
    }
}

/// Under loom, as in `crate::spin::Backoff`, the first pauses spin and
/// later ones yield: a yield tells loom to run another thread, and a loom
/// thread that yields is not preempted into again while another can run,
/// so a wait bounded by [`SpinFor`] must not yield (loom would never try
/// the opening between its last look and its sleep), and an unbounded one
/// must (or loom reports a livelock).
#[cfg(loom)]
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    looks: u32,
}

#[cfg(loom)]
impl Backoff {
    pub(crate) fn pause(&mut self) {
        self.looks += 1;
        if self.looks > 2 {
            loom::thread::yield_now();
        }
    }
}

/// `parking_lot::Mutex`'s interface over loom's mutex.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(t: T) -> Mutex<T> {
        Mutex(loom::sync::Mutex::new(t))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

/// `parking_lot::MutexGuard`'s interface over loom's (the option is empty
/// only inside [`Condvar::wait`]).
#[cfg(loom)]
pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

#[cfg(loom)]
impl<T> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_deref().expect("guard held")
    }
}

#[cfg(loom)]
impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_deref_mut().expect("guard held")
    }
}

/// `parking_lot::Condvar`'s interface over loom's.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Condvar(loom::sync::Condvar);

#[cfg(loom)]
impl Condvar {
    pub(crate) fn new() -> Condvar {
        Condvar(loom::sync::Condvar::new())
    }

    pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
        let g = guard.0.take().expect("guard held");
        guard.0 = Some(self.0.wait(g).unwrap_or_else(|e| e.into_inner()));
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}
