//! Keeping a helper thread off the core of the worker that wakes it.
//!
//! Linux runs a woken thread on the waker's core when it can ("wake
//! affine"): good for a consumer that reads what the waker just wrote,
//! bad for the snapshot's capture thread, which a worker wakes at each
//! cut and which then encodes megabytes of state for milliseconds on that
//! worker's core while the worker wants it back, evicting the worker's
//! cache as it reads the whole table. Measured with `perf record
//! --sample-cpu` (NAT over 100k flows, 1 worker, two cores): three
//! quarters of the capture thread's samples were on the input thread's
//! core, while the output logger's thread had the other to itself.
//!
//! [`away_from_this_cpu`] lets the waking thread restrict the helper to
//! every allowed core but its own, before it wakes it; with one core
//! allowed, nothing changes.

/// Restrict thread `tid` to the cores the calling thread may use, except
/// the one it runs on now (if that leaves any). Returns whether the
/// restriction was set.
#[cfg(target_os = "linux")]
pub fn away_from_this_cpu(tid: i32) -> bool {
    // SAFETY: `set` is a plain bit set that the calls below fill and read
    // within its size; sched_getcpu has no preconditions.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut set) != 0 {
            return false;
        }
        let here = libc::sched_getcpu();
        let in_set = usize::try_from(here)
            .is_ok_and(|c| c < libc::CPU_SETSIZE as usize && libc::CPU_ISSET(c, &set));
        if !in_set || libc::CPU_COUNT(&set) < 2 {
            return false;
        }
        libc::CPU_CLR(here as usize, &mut set);
        libc::sched_setaffinity(tid, size, &set) == 0
    }
}

/// Elsewhere: nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn away_from_this_cpu(_tid: i32) -> bool {
    false
}

/// The calling thread's id, for [`away_from_this_cpu`] (0 where there is
/// none).
pub fn this_thread_id() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions and cannot fail.
        unsafe { libc::gettid() }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_helper_is_kept_off_the_waker_core_when_there_is_another() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel::<i32>();
        let h = std::thread::spawn(move || {
            let _ = tid_tx.send(this_thread_id());
            let _ = rx.recv();
        });
        let tid = tid_rx.recv().expect("the helper says its id");
        let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut allowed) }, 0);
        let cores = unsafe { libc::CPU_COUNT(&allowed) };
        let here = unsafe { libc::sched_getcpu() };
        let set = away_from_this_cpu(tid);
        if cores >= 2 {
            assert!(set, "restricted with {cores} cores");
            let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::sched_getaffinity(tid, size, &mut mask) }, 0);
            assert!(!unsafe { libc::CPU_ISSET(here as usize, &mask) });
            assert!(unsafe { libc::CPU_COUNT(&mask) } >= 1);
        } else {
            assert!(!set, "one core: nothing to move to");
        }
        drop(tx);
        let _ = h.join();
    }
}
