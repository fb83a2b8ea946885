//! Snapshot rounds: how the workers take one snapshot together (see the
//! [module docs](super)). The input side opens a [`SnapshotRound`] and
//! calls it ([`SnapshotCall`]); each worker records its own part and
//! arrives at the round's [`RoundGate`] ([`SnapshotRound::arrive`]); the
//! last to arrive marks the cut in the shared state and opens the gate,
//! then hands the cut to the [`Captures`] thread, which encodes the shared
//! state and stores the snapshot ([`SnapshotStore`]: the run's link to
//! the output logger).

use crate::element::SavedState;
use crate::shared::SharedDyn;
use crate::snapshot::format::{Snapshot, WorkerSnapshot};
use crossbeam_channel::{unbounded, Sender};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the snapshots of a run go (the run's link to the output logger,
/// [`crate::ft::FtLink`], which the runtime wraps in one).
pub(crate) trait SnapshotStore: Send + Sync {
    /// Store a consistent snapshot (see
    /// [`crate::ft::FtLink::store_snapshot`]).
    fn store_snapshot(&self, snapshot: Snapshot);
    /// A round opened or closed (see [`crate::ft::FtLink::snapshot_round`]).
    fn snapshot_round(&self, open: bool);
}

/// One snapshot being taken: every worker stops at it (see
/// [`crate::snapshot`]).
pub(crate) struct SnapshotRound {
    pub(crate) id: u64,
    /// The input side's next packet id when it called the snapshot.
    next_packet: u64,
    /// Per worker, the highest packet id sent to it by then: a worker that
    /// has processed it has processed all of its packets before
    /// `next_packet`.
    sent_through: Vec<u64>,
    gate: RoundGate,
    first_arrival: parking_lot::Mutex<Option<Instant>>,
    parts: parking_lot::Mutex<Vec<Option<WorkerSnapshot>>>,
    /// Element state the workers copied, to be encoded into their parts.
    deferred: parking_lot::Mutex<Vec<DeferredState>>,
    vars: Arc<Vec<Arc<dyn SharedDyn>>>,
    link: Arc<dyn SnapshotStore>,
    captures: Arc<Captures>,
}

impl SnapshotRound {
    /// Round `id`, called when the input side's next packet id was
    /// `next_packet` and it had sent worker `w` packets up to
    /// `sent_through[w]`.
    pub(crate) fn new(
        id: u64,
        next_packet: u64,
        sent_through: Vec<u64>,
        vars: Arc<Vec<Arc<dyn SharedDyn>>>,
        link: Arc<dyn SnapshotStore>,
        captures: Arc<Captures>,
    ) -> SnapshotRound {
        let nworkers = sent_through.len();
        SnapshotRound {
            id,
            next_packet,
            sent_through,
            gate: RoundGate::new(nworkers),
            first_arrival: parking_lot::Mutex::new(None),
            parts: parking_lot::Mutex::new(vec![None; nworkers]),
            deferred: parking_lot::Mutex::new(Vec::new()),
            vars,
            link,
            captures,
        }
    }

    /// Worker `w` has stopped for this round (or the round is over).
    pub(crate) fn taken_by(&self, w: usize) -> bool {
        self.gate.open.load(Ordering::Acquire)
            || self.parts.lock().get(w).is_some_and(Option::is_some)
    }

    /// The round is being called: tell the store (see
    /// [`SnapshotStore::snapshot_round`]).
    pub(crate) fn calling(&self) {
        self.link.snapshot_round(true);
    }

    /// Where worker `w`'s part of the snapshot cuts: having processed the
    /// last packet sent to it before the call (its packets arrive in id
    /// order), it has processed every one of its own before the call's
    /// cut; otherwise its cut follows the last one it processed (and never
    /// goes back from its last cut, `cut`).
    pub(crate) fn cut_of(&self, w: usize, processed_through: u64, cut: u64) -> u64 {
        let sent = self.sent_through.get(w).copied().unwrap_or(0);
        if processed_through >= sent {
            self.next_packet
        } else {
            cut.max(processed_through + 1)
        }
    }

    /// A worker stops for the round: the stall is measured from the
    /// first one.
    pub(crate) fn stopping(&self) {
        self.first_arrival.lock().get_or_insert_with(Instant::now);
    }

    /// Element `element` of worker `worker` copied its private state at
    /// the cut ([`crate::element::Element::copy_state`]): the capture
    /// thread encodes it into that worker's part.
    pub(crate) fn defer(&self, worker: usize, element: usize, copy: Box<dyn SavedState>) {
        self.deferred.lock().push(DeferredState {
            worker,
            element,
            copy,
        });
    }

    /// Worker `w` hands in its part and waits at the gate for the others.
    /// The last to arrive marks the cut in the shared state while the
    /// others stand still, opens the gate and hands the snapshot to the
    /// capture thread.
    pub(crate) fn arrive(&self, w: usize, part: WorkerSnapshot) {
        if let Some(slot) = self.parts.lock().get_mut(w) {
            *slot = Some(part);
        }
        if !self.gate.arrive() {
            self.gate.wait();
            return;
        }
        // The last to arrive: every other worker stands still, nothing
        // shared changes. Copy on write from here on: the shared state is
        // encoded after the workers resume (see SharedDyn::begin_capture).
        for v in self.vars.iter() {
            v.begin_capture(self.id);
        }
        self.gate.open();
        self.link.snapshot_round(false);
        // The others resume; this one hands the rest to the capture thread.
        let workers: Vec<WorkerSnapshot> = self
            .parts
            .lock()
            .iter_mut()
            .map(|p| p.take().unwrap_or_default())
            .collect();
        let snap = Snapshot {
            id: self.id,
            next_packet: workers
                .iter()
                .map(|w| w.next_packet)
                .min()
                .unwrap_or(self.next_packet),
            taken_ns: crate::clock::wall_ns(),
            stall_ns: self
                .first_arrival
                .lock()
                .map_or(0, |t| t.elapsed().as_nanos() as u64),
            workers,
            shared: Vec::new(),
        };
        self.captures.submit(CaptureJob {
            snap,
            deferred: std::mem::take(&mut *self.deferred.lock()),
            vars: self.vars.clone(),
            link: self.link.clone(),
        });
    }
}

/// Where the workers of a snapshot round wait for each other. Each records
/// its own part before it arrives; the last to arrive marks the cut in the
/// shared state while the others stand still, then opens the gate: one
/// hand-over per round. A worker that waits spins briefly first (the last
/// one is usually a batch away), then sleeps.
///
/// Its primitives come from [`crate::sync`], so that the loom model
/// (`gate_round` in `crate::models`) runs this code.
pub(crate) struct RoundGate {
    workers: usize,
    arrived: crate::sync::AtomicUsize,
    open: crate::sync::AtomicBool,
    /// Sleepers wait on `opened` under it.
    lock: crate::sync::Mutex<()>,
    opened: crate::sync::Condvar,
}

impl RoundGate {
    /// How long a waiting worker spins (yielding the CPU) before it sleeps.
    const SPIN: Duration = Duration::from_micros(200);

    pub(crate) fn new(workers: usize) -> RoundGate {
        RoundGate {
            workers,
            arrived: crate::sync::AtomicUsize::new(0),
            open: crate::sync::AtomicBool::new(false),
            lock: crate::sync::Mutex::new(()),
            opened: crate::sync::Condvar::new(),
        }
    }

    /// Arrive: true for the last worker, which must [`RoundGate::open`] it;
    /// the others must [`RoundGate::wait`].
    pub(crate) fn arrive(&self) -> bool {
        self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.workers
    }

    pub(crate) fn wait(&self) {
        let mut spin = crate::sync::SpinFor::start(Self::SPIN);
        let mut backoff = crate::sync::Backoff::default();
        while spin.going() {
            if self.open.load(Ordering::Acquire) {
                return;
            }
            backoff.pause();
        }
        let mut guard = self.lock.lock();
        while !self.open.load(Ordering::Acquire) {
            self.opened.wait(&mut guard);
        }
    }

    pub(crate) fn open(&self) {
        self.open.store(true, Ordering::Release);
        // Taken so that no sleeper is between its look and its wait.
        let _guard = self.lock.lock();
        self.opened.notify_all();
    }
}

/// The snapshot the input side called last, for the workers to take
/// between two batches: a worker busy with a long queue stops after its
/// current batch instead of after everything queued before the marker.
#[derive(Default)]
pub(crate) struct SnapshotCall {
    /// Id of the round called last (0: none yet).
    pub(crate) id: AtomicU64,
    pub(crate) round: parking_lot::Mutex<Option<Arc<SnapshotRound>>>,
}

/// Snapshots whose shared state is still being encoded after the cut (one
/// at a time: a new snapshot waits until the last one is stored). One
/// thread encodes them all, started with the first: spawning a thread per
/// snapshot cost the worker that hands it over some 50 µs of stall.
#[derive(Default)]
pub(crate) struct Captures {
    pub(crate) busy: AtomicBool,
    /// The capture thread and its queue, once started.
    thread: parking_lot::Mutex<Option<(Sender<CaptureJob>, std::thread::JoinHandle<()>)>>,
    /// Bytes of the last snapshot's shared state.
    last_len: AtomicUsize,
    /// The capture thread's id, once it runs (0 before).
    tid: AtomicI32,
}

/// An element's private state copied at the cut
/// ([`crate::element::Element::copy_state`]),
/// for the capture thread to encode into worker `worker`'s part.
struct DeferredState {
    worker: usize,
    element: usize,
    copy: Box<dyn SavedState>,
}

/// A snapshot cut whose shared state (and copied element state) is still to
/// be encoded.
struct CaptureJob {
    snap: Snapshot,
    deferred: Vec<DeferredState>,
    vars: Arc<Vec<Arc<dyn SharedDyn>>>,
    link: Arc<dyn SnapshotStore>,
}

/// Snapshots whose shared state encodes to this many bytes or more have
/// their capture thread kept off the core of the worker that wakes it.
const AWAY_BYTES: usize = 1 << 20;

impl Captures {
    /// Hand `job` to the capture thread, which encodes the shared state,
    /// stores the snapshot on the link and clears `busy`.
    fn submit(self: &Arc<Self>, job: CaptureJob) {
        let mut t = self.thread.lock();
        if t.is_none() {
            let (tx, rx) = unbounded::<CaptureJob>();
            let me = self.clone();
            let h = std::thread::Builder::new()
                .name("ftmb-snapshot".into())
                .spawn(move || {
                    me.tid
                        .store(crate::placement::this_thread_id(), Ordering::Release);
                    for job in rx {
                        me.capture(job);
                    }
                });
            match h {
                Ok(h) => *t = Some((tx, h)),
                Err(_) => {
                    self.busy.store(false, Ordering::Release);
                    return;
                }
            }
        }
        // A long encoding goes off this worker's core (see
        // crate::placement); a short one (microseconds) may run where
        // Linux puts it, often a core about to idle, and is not worth a
        // system call. The first job may find the thread not started yet.
        let tid = self.tid.load(Ordering::Acquire);
        if tid != 0 && self.last_len.load(Ordering::Relaxed) >= AWAY_BYTES {
            crate::placement::away_from_this_cpu(tid);
        }
        if let Some((tx, _)) = t.as_ref() {
            if tx.send(job).is_err() {
                self.busy.store(false, Ordering::Release);
            }
        }
    }

    fn capture(&self, job: CaptureJob) {
        let CaptureJob {
            mut snap,
            deferred,
            vars,
            link,
        } = job;
        for d in deferred {
            if let Some(b) = snap
                .workers
                .get_mut(d.worker)
                .and_then(|w| w.elements.get_mut(d.element))
            {
                d.copy.save(b);
            }
        }
        // Sized like the last one: no regrowth copies. Its pages are
        // touched here, so that no page fault happens while the encoding
        // holds a slot's lock (see SharedDyn::finish_capture).
        snap.shared
            .reserve(self.last_len.load(Ordering::Relaxed) + (64 << 10));
        for b in snap.shared.spare_capacity_mut().iter_mut().step_by(4096) {
            b.write(0);
        }
        for v in vars.iter() {
            v.finish_capture(snap.id, &mut snap.shared);
        }
        self.last_len.store(snap.shared.len(), Ordering::Relaxed);
        link.store_snapshot(snap);
        self.busy.store(false, Ordering::Release);
    }

    /// Wait until every capture has been stored, and stop the thread.
    pub(crate) fn join(&self) {
        let t = self.thread.lock().take();
        if let Some((tx, h)) = t {
            drop(tx);
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every snapshot stored.
    #[derive(Default)]
    struct Kept {
        snapshots: parking_lot::Mutex<Vec<Snapshot>>,
    }

    impl SnapshotStore for Kept {
        fn store_snapshot(&self, snapshot: Snapshot) {
            self.snapshots.lock().push(snapshot);
        }
        fn snapshot_round(&self, _open: bool) {}
    }

    #[test]
    fn the_last_to_arrive_opens_the_gate_for_the_others() {
        let gate = Arc::new(RoundGate::new(3));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let g = gate.clone();
                std::thread::spawn(move || {
                    let last = g.arrive();
                    if !last {
                        g.wait();
                    }
                    last
                })
            })
            .collect();
        // Let both reach the gate (or sleep there) first.
        while gate.arrived.load(Ordering::Acquire) < 2 {
            std::thread::yield_now();
        }
        std::thread::sleep(RoundGate::SPIN * 2);
        assert!(!gate.open.load(Ordering::Acquire));
        assert!(gate.arrive(), "the third is the last");
        gate.open();
        for w in waiters {
            assert!(!w.join().unwrap());
        }
    }

    #[test]
    fn a_worker_cuts_at_the_call_once_it_processed_what_was_sent_to_it() {
        let link = Arc::new(Kept::default());
        let round = SnapshotRound::new(
            1,
            100,
            vec![90, 95],
            Arc::new(Vec::new()),
            link,
            Arc::default(),
        );
        // Worker 0 processed everything sent to it: the call's cut.
        assert_eq!(round.cut_of(0, 90, 0), 100);
        // Worker 1 is behind: its cut follows the last it processed, and
        // never goes back from its previous cut.
        assert_eq!(round.cut_of(1, 80, 0), 81);
        assert_eq!(round.cut_of(1, 80, 85), 85);
    }

    #[test]
    fn a_round_stores_one_snapshot_cut_at_the_earliest_worker() {
        let link = Arc::new(Kept::default());
        let captures = Arc::new(Captures::default());
        let round = Arc::new(SnapshotRound::new(
            7,
            100,
            vec![0, 0],
            Arc::new(Vec::new()),
            link.clone(),
            captures.clone(),
        ));
        let parts = [(0, 100), (1, 81)];
        let handles: Vec<_> = parts
            .iter()
            .map(|&(w, next_packet)| {
                let r = round.clone();
                std::thread::spawn(move || {
                    r.stopping();
                    r.arrive(
                        w,
                        WorkerSnapshot {
                            next_packet,
                            last_seq: w as u64,
                            ..WorkerSnapshot::default()
                        },
                    );
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        captures.join();
        let snaps = link.snapshots.lock();
        assert_eq!(snaps.len(), 1);
        assert_eq!((snaps[0].id, snaps[0].next_packet), (7, 81));
        let seqs: Vec<u64> = snaps[0].workers.iter().map(|w| w.last_seq).collect();
        assert_eq!(seqs, vec![0, 1]);
        assert!(!captures.busy.load(Ordering::Acquire));
    }
}
