//! Threads of the process roles: named, carrying the diagnostics span of
//! the thread that starts them (so that what they report names the role),
//! and, for the failure detector's, favoured by the scheduler.

use std::thread::JoinHandle;

/// Start a thread called `name` that runs `f` inside the current
/// [`tracing`] span.
pub(crate) fn spawn<F, T>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || span.in_scope(f))
}

/// Run the calling thread under the real-time FIFO policy at the lowest
/// priority, where permitted (root or CAP_SYS_NICE; otherwise nothing
/// changes). For the failure detector's threads only, which sleep between
/// tiny frames: on a machine whose cores the workers keep busy, a
/// heartbeat thread left waiting for the scheduler for longer than the
/// deadline made the output logger fail over from a live master.
pub(crate) fn favour_this_thread() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sched_setscheduler reads `param` and changes only the calling
    // thread's policy (pid 0); an error leaves it unchanged.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
    }
}
