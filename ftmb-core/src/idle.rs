//! What an input loop does when no source has a packet: wait, briefly and
//! boundedly, instead of spinning.
//!
//! A live source (`FromDevice`) offers a file descriptor that becomes
//! readable when its next poll may produce packets
//! ([`crate::element::Source::readiness_fd`]). When every idle source has
//! one, the loop sleeps in `poll(2)` on all of them at once, so a packet on
//! any device wakes it at once, and no source's wait delays another's
//! packets. When one has none (a paced trace, a stream from another
//! process), the loop sleeps a short fixed time, as before.

use std::time::Duration;

/// The longest sleep when some idle source offers no descriptor.
pub const SHORT_SLEEP: Duration = Duration::from_micros(100);

/// The longest wait in `poll(2)` when every idle source offers one: short
/// enough for the loop's other duties (snapshots, stop requests), long
/// enough to cost nothing on an idle link.
pub const FD_WAIT: Duration = Duration::from_millis(1);

/// Wait until one of the idle sources may have packets, or for a bounded
/// time. `fds` has one entry per idle source: its descriptor, or `None`.
pub fn wait_idle(fds: impl IntoIterator<Item = Option<i32>>) {
    let mut set: Vec<i32> = Vec::new();
    for fd in fds {
        match fd {
            Some(fd) => set.push(fd),
            None => {
                std::thread::sleep(SHORT_SLEEP);
                return;
            }
        }
    }
    if set.is_empty() {
        std::thread::sleep(SHORT_SLEEP);
        return;
    }
    wait_readable(&set, FD_WAIT);
}

/// `poll(2)` for readability on `fds`, at most `timeout`. Returns whether
/// one is readable (errors count as "maybe": the next read reports them).
#[cfg(unix)]
pub fn wait_readable(fds: &[i32], timeout: Duration) -> bool {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().clamp(0, i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs that
    // lives across the call.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    rc != 0
}

/// Without `poll(2)`: sleep the timeout.
#[cfg(not(unix))]
pub fn wait_readable(_fds: &[i32], timeout: Duration) -> bool {
    std::thread::sleep(timeout);
    true
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::time::Instant;

    #[test]
    fn wakes_on_data_and_times_out_without() {
        let (mut a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let t = Instant::now();
        assert!(!wait_readable(&[b.as_raw_fd()], Duration::from_millis(5)));
        assert!(t.elapsed() >= Duration::from_millis(4));
        a.write_all(b"x").expect("write");
        assert!(wait_readable(&[b.as_raw_fd()], Duration::from_secs(10)));
    }
}
