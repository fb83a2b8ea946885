//! The standby feed: snapshots forwarded by the output logger's server to
//! the standby replica piece by piece, as they arrive from the master.

use crate::threads::spawn;
use crate::transport::{writer, Stream, Writer};
use crate::wire::SnapshotPartMsg;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Snapshots forwarded to the standby replica piece by piece as they
/// arrive from the master, by a thread of its own, so that the standby
/// holds each one about when the output logger commits it, and a takeover
/// has only the logs to send. (Pushed whole after each commit, a 5 MB
/// snapshot reached the standby and was loaded some 9 ms later: a master
/// killed in that window left the takeover waiting for the push.) A
/// snapshot whose pieces stop short (its master died sending it) is
/// dropped by the standby; one the output logger does not commit is never
/// asked for.
#[derive(Default)]
pub(super) struct StandbyFeed {
    queue: Mutex<FeedQueue>,
    ready: Condvar,
    stop: AtomicBool,
}

/// The thread forwarding to an attached standby (see
/// [`StandbyFeed::attach`]).
pub(super) type Feeder = std::thread::JoinHandle<(Writer, u64)>;

/// Pieces waiting to be forwarded.
#[derive(Default)]
struct FeedQueue {
    pieces: std::collections::VecDeque<SnapshotPartMsg>,
    bytes: usize,
    /// Pieces are being dropped until the next snapshot's first one: no
    /// standby yet, it just attached, or it fell too far behind.
    skipping: bool,
    /// A standby is attached.
    attached: bool,
}

impl FeedQueue {
    /// Forward nothing of what is queued.
    fn drop_all(&mut self) {
        self.pieces.clear();
        self.bytes = 0;
    }
}

/// Bytes of pieces the feed holds at most before it drops what it holds
/// (the standby then misses those snapshots, and picks up at the next).
const FEED_MAX_BYTES: usize = 64 << 20;

impl StandbyFeed {
    /// Start forwarding to the standby on `s`, from the next snapshot's
    /// first piece. Returns `s` and the forwarding thread, which returns,
    /// once stopped, the writer and the id of the last snapshot it
    /// forwarded whole (0: none).
    pub(super) fn attach(self: &Arc<Self>, s: Stream) -> std::io::Result<(Stream, Feeder)> {
        let mut w = writer(&s)?;
        {
            let mut q = self.queue.lock();
            q.attached = true;
            q.skipping = true;
        }
        let f = self.clone();
        let h = spawn("ftmb-ol-feed", move || {
            let mut whole = 0;
            loop {
                let next = {
                    let mut q = f.queue.lock();
                    while q.pieces.is_empty() && !f.stop.load(Ordering::Acquire) {
                        f.ready.wait(&mut q);
                    }
                    let next = q.pieces.pop_front();
                    if let Some(p) = &next {
                        q.bytes -= p.data.len();
                    }
                    next
                };
                // Stopped: what was queued has gone (the master is gone,
                // nothing more comes).
                let Some(p) = next else { break };
                let r = SnapshotPartMsg::write_parts(p.id, p.total, p.offset, &p.data, &mut w)
                    .and_then(|_| w.flush());
                if r.is_err() {
                    // The standby is gone: queue nothing more for it.
                    tracing::warn!("the standby's link failed: snapshots are no longer forwarded");
                    let mut q = f.queue.lock();
                    q.attached = false;
                    q.drop_all();
                    break;
                }
                if p.offset + p.data.len() as u64 == p.total {
                    whole = p.id;
                }
            }
            (w, whole)
        })?;
        Ok((s, h))
    }

    /// Whether a standby is attached to forward to.
    pub(super) fn forwarding(&self) -> bool {
        self.queue.lock().attached
    }

    /// A piece of a snapshot arrived from the master: forward it next.
    pub(super) fn offer(&self, piece: SnapshotPartMsg) {
        let mut q = self.queue.lock();
        if piece.offset == 0 {
            q.skipping = false;
        }
        if q.skipping || !q.attached {
            return;
        }
        if q.bytes + piece.data.len() > FEED_MAX_BYTES {
            tracing::warn!(
                queued_bytes = q.bytes,
                "the standby fell behind: queued snapshot pieces dropped"
            );
            q.drop_all();
            q.skipping = true;
            return;
        }
        q.bytes += piece.data.len();
        q.pieces.push_back(piece);
        self.ready.notify_one();
    }

    /// Stop once the pieces of snapshot `keep` (the one a takeover
    /// restores) still queued are forwarded; pieces of any other (the dead
    /// master's last snapshot, cut short) are dropped: draining a few
    /// megabytes of them held a takeover back for 9 ms.
    pub(super) fn stop(&self, keep: u64) {
        let mut q = self.queue.lock();
        q.pieces.retain(|p| p.id == keep);
        q.bytes = q.pieces.iter().map(|p| p.data.len()).sum();
        self.stop.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

/// Read a master's frames into the output logger; returns whether the
#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn piece(id: u64, offset: u64, total: u64) -> SnapshotPartMsg {
        SnapshotPartMsg {
            id,
            total,
            offset,
            data: vec![7; 4096],
        }
    }

    #[test]
    fn a_feed_stops_queueing_for_a_standby_that_went_away() {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let feed = Arc::new(StandbyFeed::default());
        // Nothing is queued before a standby is attached.
        assert!(!feed.forwarding());
        feed.offer(piece(1, 0, 8192));
        assert!(feed.queue.lock().pieces.is_empty());
        let (_s, feeder) = feed.attach(Stream::Unix(ours)).expect("attach");
        assert!(feed.forwarding());
        // The standby dies; the next write fails and the feed lets go.
        drop(theirs);
        let mut id = 1;
        while feed.forwarding() {
            id += 1;
            assert!(id < 10_000, "the feed still forwards to a closed socket");
            feed.offer(piece(id, 0, 8192));
            feed.offer(piece(id, 4096, 8192));
        }
        assert!(feed.queue.lock().pieces.is_empty());
        let (_, whole) = feeder.join().expect("feed thread");
        assert_eq!(whole, 0, "nothing reached a dead standby whole");
    }
}
