//! Where the input thread hands batches: the workers' queues, or the
//! worker it runs inline; barriers and snapshot calls go the same way.

use super::counters::InputShared;
use super::msg::{Barrier, Event, Msg};
use super::worker::Worker;
use crate::clock::wall_ns;
use crate::packet::Packet;
use crate::replay::BatchGroup;
use crate::snapshot::round::{SnapshotCall, SnapshotRound};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Where the input loop hands batches. Worker 0 runs on the input thread
/// itself unless a pipeline was asked for (no queue, no cross-thread
/// hand-off: its packets are still in cache when processed); the other
/// workers get batches over bounded queues.
pub(super) struct Dispatcher {
    pub(super) inline: Option<(Box<Worker>, Receiver<Msg>)>,
    /// Queue per worker (`None` for the inline worker).
    queues: Vec<Option<Sender<Msg>>>,
    /// Per worker, the highest packet id sent to it.
    pub(super) sent_through: Vec<u64>,
    /// Where snapshots are called.
    call: Arc<SnapshotCall>,
}

impl Dispatcher {
    pub(super) fn new(
        inline: Option<(Box<Worker>, Receiver<Msg>)>,
        queues: Vec<Option<Sender<Msg>>>,
        call: Arc<SnapshotCall>,
    ) -> Dispatcher {
        Dispatcher {
            inline,
            sent_through: vec![0; queues.len()],
            queues,
            call,
        }
    }

    pub(super) fn nworkers(&self) -> usize {
        self.queues.len()
    }

    pub(super) fn send(
        &mut self,
        w: usize,
        src: u16,
        b: Vec<Packet>,
        lossy: bool,
        shared: &InputShared,
    ) {
        let last = b.last().map(|p| p.anno.id);
        let delivered = match (&mut self.inline, self.queues.get(w)) {
            (_, Some(Some(tx))) => send(tx, src, b, lossy, shared),
            (Some((worker, _)), _) => {
                worker.process(src, b, wall_ns(), false);
                true
            }
            (None, _) => false,
        };
        if let (true, Some(id)) = (delivered, last) {
            self.note_sent(w, id);
        }
    }

    /// Hand worker `w` several batches at once (never lossy).
    pub(super) fn send_group(&mut self, w: usize, group: BatchGroup) {
        if let Some(p) = group.last().and_then(|(_, b)| b.last()) {
            self.note_sent(w, p.anno.id);
        }
        match (&mut self.inline, self.queues.get(w)) {
            (_, Some(Some(tx))) => {
                let _ = tx.send(Msg::Batches(group));
            }
            (Some((worker, _)), _) => {
                for (src, b) in group {
                    worker.process(src, b, wall_ns(), false);
                }
            }
            (None, _) => {}
        }
    }

    /// Deliver `event` on `done` once every packet sent so far is processed.
    pub(super) fn barrier(&mut self, done: Sender<Event>, event: Event) {
        let queued: Vec<&Sender<Msg>> = self.queues.iter().flatten().collect();
        if queued.is_empty() {
            let _ = done.send(event);
            return;
        }
        let bar = Arc::new(Barrier {
            remaining: AtomicUsize::new(queued.len()),
            event,
            done,
        });
        for tx in queued {
            let _ = tx.send(Msg::Barrier(bar.clone()));
        }
    }

    /// Worker `w` was handed packets up to id `last` (a batch's ids ascend;
    /// a batch a lossy source dropped does not count).
    fn note_sent(&mut self, w: usize, last: u64) {
        if let Some(t) = self.sent_through.get_mut(w) {
            *t = (*t).max(last);
        }
    }

    /// Call a snapshot: every worker takes it after its current batch (see
    /// [`crate::snapshot`]). A marker after everything sent so far wakes a
    /// worker asleep on its queue, and is where a replaying worker (or one
    /// that missed the call) takes it. A worker that took the call needs
    /// no marker: waiting for room in its full queue would deadlock with
    /// it waiting at the gate for the inline worker (this thread).
    pub(super) fn snapshot(&mut self, round: Arc<SnapshotRound>) {
        round.calling();
        *self.call.round.lock() = Some(round.clone());
        self.call.id.store(round.id, Ordering::Release);
        for (w, tx) in self.queues.iter().enumerate() {
            let Some(tx) = tx else { continue };
            let mut marker = Msg::Snapshot(round.clone());
            while let Err(crossbeam_channel::TrySendError::Full(m)) = tx.try_send(marker) {
                if round.taken_by(w) {
                    break;
                }
                marker = m;
                std::thread::yield_now();
            }
        }
        if let Some((worker, _)) = &mut self.inline {
            worker.snapshot(&round);
        }
    }

    /// Answer the driver's questions to the inline worker.
    pub(super) fn service(&mut self) {
        if let Some((worker, control)) = &mut self.inline {
            while let Ok(m) = control.try_recv() {
                if let Msg::Query(reply) = m {
                    let _ = reply.send(worker.stats());
                }
            }
        }
    }
}

/// Queue a batch for a worker; false when a lossy source's batch found the
/// queue full and was dropped (and counted).
fn send(tx: &Sender<Msg>, src: u16, b: Vec<Packet>, lossy: bool, shared: &InputShared) -> bool {
    if lossy {
        if let Err(e) = tx.try_send(Msg::Batch(src, b)) {
            if let Msg::Batch(_, b) = e.into_inner() {
                shared
                    .queue_drops
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            return false;
        }
        true
    } else {
        tx.send(Msg::Batch(src, b)).is_ok()
    }
}
