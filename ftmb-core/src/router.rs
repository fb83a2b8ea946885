//! The multithreaded runtime: an input thread, N workers and the driver.
//!
//! ```text
//!  sources ──> input thread ──(flow hash)──> worker 0 ─┐ element graph,
//!              numbers packets               worker 1 ─┤ run to completion,
//!              (ids in arrival order)        ...       ┘ outputs to sinks
//!  driver (calling thread): runs the DriverManager program, reads handlers
//! ```
//!
//! - The **input thread** polls every source round-robin, gives each packet
//!   the next input id, picks its worker by the direction-symmetric flow hash
//!   ([`crate::headers::symmetric_hash`]) and sends batches over bounded
//!   queues. File sources wait for queue space; live sources drop and count
//!   (before ids are assigned, so a drop never shows in any log).
//! - Each **worker** owns one instance of every packet-processing element and
//!   runs each batch to completion through the graph, depth first. Outputs
//!   handed to sinks are written once per batch.
//! - The **driver** runs the `DriverManager` program. A source with `STOP
//!   true` reaching its end produces a stop event once the workers have
//!   processed every packet it produced, so handlers printed after `wait`
//!   see the whole trace, as in single-threaded Click.

use crate::context::{AccessMode, Ctx};
use crate::driver::Insn;
use crate::element::{Backpressure, Element, Out, SavedState, SourceStatus, Value};
use crate::ft::{FtLink, FtOptions, ReplayPlan, Shipment, SnapshotTrigger};
use crate::graph::{Graph, NodeKind};
use crate::headers::{ip_offset, symmetric_hash};
use crate::packet::Packet;
use crate::pal::{trim_to_gap_free, LogRecord, LoggedAccess, LoggedCounts};
use crate::shared::SharedDyn;
use crate::snapshot::{Snapshot, WorkerSnapshot};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Run-time options.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Packets per batch handed to a worker.
    pub batch: usize,
    /// Batches each worker queue holds.
    pub queue_batches: usize,
    /// Seed of the workers' random generators (`None`: from the clock).
    pub seed: Option<u64>,
    /// Run worker 0 on a thread of its own, fed over a queue like the others
    /// (a pipeline), instead of on the input thread.
    pub pipeline: bool,
    /// Fault tolerance: ordered logging to an output logger (and a replay
    /// plan for a replica taking over).
    pub ft: Option<FtOptions>,
    /// Offer packets at this rate (packets per second) instead of as fast
    /// as the sources give them: a fixed offered load, for latency.
    pub pace_pps: Option<f64>,
    /// Overwrite each packet's timestamp with the wall clock when it is
    /// taken from its source, so egress can measure per-packet latency
    /// (see [`crate::egress::LatencyProbe`]).
    pub stamp_arrival: bool,
    /// With `ft`: ship outputs and take snapshots, but do not log accesses
    /// (the snapshot-only baseline: outputs can only be released once a
    /// snapshot covering them is committed).
    pub ft_unlogged: bool,
    /// Per worker, a remote store for shared state (the remote-state
    /// baseline; see [`crate::context::RemoteState`]).
    pub remote_state: Option<RemoteStateFactory>,
}

/// Makes worker `w`'s connection to a remote state store.
#[derive(Clone)]
pub struct RemoteStateFactory(
    pub Arc<dyn Fn(usize) -> Box<dyn crate::context::RemoteState> + Send + Sync>,
);

impl std::fmt::Debug for RemoteStateFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteStateFactory")
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch: 64,
            queue_batches: 256,
            seed: None,
            pipeline: false,
            ft: None,
            pace_pps: None,
            stamp_arrival: false,
            ft_unlogged: false,
            remote_state: None,
        }
    }
}

/// Progress of a run, reported to a callback about ten times a second.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Packets taken from sources so far.
    pub packets: u64,
    /// Sum of the sources' `(done, total)` progress, when they report it.
    pub done: u64,
    /// See `done`.
    pub total: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    /// Wall time from start until the driver program ended and the sinks
    /// were flushed (before the final state digest, which only a
    /// fault-tolerant run computes).
    pub elapsed: Duration,
    /// When the run started (a caller that waits for more, such as an
    /// output logger releasing the last outputs, measures from it).
    pub started: Instant,
    /// Packets taken from the sources.
    pub packets: u64,
    /// Packets each worker processed.
    pub per_worker: Vec<u64>,
    /// Packets dropped at the worker queues (live sources only).
    pub queue_drops: u64,
    /// Errors from sources and sinks.
    pub errors: Vec<String>,
    /// Every element's counters, as JSON.
    pub stats: serde_json::Value,
    /// With fault tolerance: digest of the final state (every shared
    /// variable with its counters and clocks, every worker's element state
    /// and generator), which a replay must reproduce.
    pub digest: Option<u64>,
    /// With fault tolerance: where replay departed from the log, if it did.
    pub divergence: Vec<String>,
    /// Time to restore the snapshot, when one was restored.
    pub restore_elapsed: Option<Duration>,
    /// Time from the start until the replay plan was processed.
    pub replay_elapsed: Option<Duration>,
}

enum Msg {
    Batch(u16, Vec<Packet>),
    /// Several batches in a row, each run as its own batch (a replay hands
    /// the master's small batches over in groups: see [`feed_replay`]).
    Batches(BatchGroup),
    Barrier(Arc<Barrier>),
    Query(Sender<WorkerStats>),
    Snapshot(Arc<SnapshotRound>),
}

/// Batches in a row, each with its source.
type BatchGroup = Vec<(u16, Vec<Packet>)>;

/// One snapshot being taken: every worker stops at it (see
/// [`crate::snapshot`]).
struct SnapshotRound {
    id: u64,
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
    link: Arc<dyn FtLink>,
    captures: Arc<Captures>,
}

impl SnapshotRound {
    /// Worker `w` has stopped for this round (or the round is over).
    fn taken_by(&self, w: usize) -> bool {
        self.gate.open.load(Ordering::Acquire)
            || self.parts.lock().get(w).is_some_and(Option::is_some)
    }
}

/// Where the workers of a snapshot round wait for each other. Each records
/// its own part before it arrives; the last to arrive marks the cut in the
/// shared state while the others stand still, then opens the gate: one
/// hand-over per round. A worker that waits spins briefly first (the last
/// one is usually a batch away), then sleeps.
struct RoundGate {
    workers: usize,
    arrived: AtomicUsize,
    open: AtomicBool,
    /// Sleepers wait on `opened` under it.
    lock: parking_lot::Mutex<()>,
    opened: parking_lot::Condvar,
}

impl RoundGate {
    /// How long a waiting worker spins (yielding the CPU) before it sleeps.
    const SPIN: Duration = Duration::from_micros(200);

    fn new(workers: usize) -> RoundGate {
        RoundGate {
            workers,
            arrived: AtomicUsize::new(0),
            open: AtomicBool::new(false),
            lock: parking_lot::Mutex::new(()),
            opened: parking_lot::Condvar::new(),
        }
    }

    /// Arrive: true for the last worker, which must [`RoundGate::open`] it;
    /// the others must [`RoundGate::wait`].
    fn arrive(&self) -> bool {
        self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.workers
    }

    fn wait(&self) {
        let from = Instant::now();
        let mut backoff = crate::spin::Backoff::default();
        while from.elapsed() < Self::SPIN {
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

    fn open(&self) {
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
struct SnapshotCall {
    /// Id of the round called last (0: none yet).
    id: AtomicU64,
    round: parking_lot::Mutex<Option<Arc<SnapshotRound>>>,
}

/// Snapshots whose shared state is still being encoded after the cut (one
/// at a time: a new snapshot waits until the last one is stored). One
/// thread encodes them all, started with the first: spawning a thread per
/// snapshot cost the worker that hands it over some 50 µs of stall.
#[derive(Default)]
struct Captures {
    busy: AtomicBool,
    /// The capture thread and its queue, once started.
    thread: parking_lot::Mutex<Option<(Sender<CaptureJob>, std::thread::JoinHandle<()>)>>,
    /// Bytes of the last snapshot's shared state.
    last_len: AtomicUsize,
    /// The capture thread's id, once it runs (0 before).
    tid: AtomicI32,
}

/// An element's private state copied at the cut ([`Element::copy_state`]),
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
    link: Arc<dyn FtLink>,
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
    fn join(&self) {
        let t = self.thread.lock().take();
        if let Some((tx, h)) = t {
            drop(tx);
            let _ = h.join();
        }
    }
}

struct Barrier {
    remaining: AtomicUsize,
    event: Event,
    done: Sender<Event>,
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Stop,
    Exhausted,
    /// Every packet of the replay plan has been processed.
    ReplayDone,
}

type WorkerStats = Vec<(Vec<(&'static str, Value)>, Vec<(&'static str, u64)>)>;

struct Worker {
    elems: Vec<Option<Box<dyn Element>>>,
    outs: Vec<Out>,
    outputs: Arc<Vec<Vec<(usize, usize)>>>,
    entries: Arc<Vec<(usize, usize)>>,
    ctx: Ctx,
    sinks: Vec<Arc<crate::egress::Sink>>,
    spare: Vec<Vec<Packet>>,
    stack: Vec<(usize, usize, Vec<Packet>)>,
    processed: u64,
    ft: Option<Arc<dyn FtLink>>,
    /// Outputs so far per input packet id, within the current batch.
    ordinals: crate::ft::Ordinals,
    /// Records and outputs of batches processed but not yet shipped: while
    /// more batches wait in its queue, a worker ships several together
    /// (see [`Worker::process`]).
    unshipped: Option<Shipment>,
    /// Where the input side calls snapshots (with fault tolerance).
    call: Option<Arc<SnapshotCall>>,
    /// Id of the last snapshot round this worker took part in.
    snapshot_taken: u64,
    /// Highest packet id processed.
    processed_through: u64,
    /// First packet id after this worker's last cut.
    cut: u64,
    /// Replay packets may still be queued for it (until the replay's
    /// barrier reaches it).
    replaying: bool,
}

/// A worker ships what it holds once it holds this many outputs, even with
/// more batches queued.
const SHIP_MAX_OUTPUTS: usize = 1024;

impl Worker {
    /// Run one batch through the graph. With fault tolerance, its log
    /// records and outputs are shipped at once unless `more` says another
    /// batch is already queued for this worker: then they wait (up to
    /// [`SHIP_MAX_OUTPUTS`]) and go with the next batches' in one
    /// shipment. A backlog (a replay, a burst) then costs one hand-over to
    /// the output logger per many batches, not one per batch, while a
    /// worker that keeps up ships every batch as soon as it is done.
    fn process(&mut self, source: u16, batch: Vec<Packet>, now: u64, more: bool) {
        let Some(&(e0, p0)) = self.entries.get(source as usize) else {
            return;
        };
        let first = batch.first().map_or(0, |p| p.anno.id);
        self.ctx.current_id = first;
        let mut batch_seq = 0;
        match &mut self.ctx.mode {
            AccessMode::Logged(l) => {
                let (ns, seq) = l.batch_clock(first, batch.len() as u32, now);
                batch_seq = seq;
                self.ctx.set_now_ns(ns);
            }
            AccessMode::Plain => self.ctx.set_now_ns(now),
        }
        self.processed += batch.len() as u64;
        if let Some(p) = batch.last() {
            self.processed_through = self.processed_through.max(p.anno.id);
        }
        let mut stack = std::mem::take(&mut self.stack);
        stack.push((e0, p0, batch));
        while let Some((e, port, mut b)) = stack.pop() {
            let (Some(Some(el)), Some(out)) = (self.elems.get_mut(e), self.outs.get_mut(e)) else {
                continue;
            };
            el.push_batch(&mut self.ctx, port, &mut b, out);
            b.clear();
            if self.spare.len() < 16 {
                self.spare.push(b);
            }
            for p in (0..out.ports.len()).rev() {
                if !out.ports[p].is_empty() {
                    let fresh = self.spare.pop().unwrap_or_default();
                    let full = std::mem::replace(&mut out.ports[p], fresh);
                    let (to, tp) = self.outputs[e][p];
                    stack.push((to, tp, full));
                }
            }
        }
        self.stack = stack;
        match &self.ft {
            None => self.ctx.sinks.write_to(&self.sinks),
            Some(link) => {
                let w = self.ctx.worker();
                let mut sh = self
                    .unshipped
                    .take()
                    .or_else(|| link.spare(w))
                    .unwrap_or_default();
                if let AccessMode::Logged(l) = &mut self.ctx.mode {
                    l.log.take_pending(&mut sh.records);
                }
                let outs = &mut sh.outputs;
                let ordinals = &mut self.ordinals;
                let dv = &self.ctx.dv;
                self.ctx.sinks.drain(|sink, pkts| {
                    for p in pkts.drain(..) {
                        let ordinal = ordinals.next(p.anno.id);
                        outs.push((sink as u16, ordinal), &p, dv, (w, batch_seq));
                    }
                });
                ordinals.next_batch();
                let full = sh.outputs.len() >= SHIP_MAX_OUTPUTS;
                self.unshipped = Some(sh);
                if !more || full {
                    self.ship_held();
                }
            }
        }
    }

    /// Ship what earlier batches left unshipped.
    fn ship_held(&mut self) {
        if let (Some(sh), Some(link)) = (self.unshipped.take(), &self.ft) {
            if !sh.records.is_empty() || !sh.outputs.is_empty() {
                link.ship(self.ctx.worker(), sh);
            }
        }
    }

    fn stats(&self) -> WorkerStats {
        self.elems
            .iter()
            .zip(&self.outs)
            .map(|(e, o)| {
                (
                    e.as_ref().map(|e| e.stats()).unwrap_or_default(),
                    o.drops.clone(),
                )
            })
            .collect()
    }

    fn run(mut self, rx: Receiver<Msg>) -> Worker {
        while let Ok(msg) = rx.recv() {
            self.snapshot_if_called();
            if !matches!(msg, Msg::Batch(..) | Msg::Batches(..)) {
                self.ship_held();
            }
            match msg {
                Msg::Batch(src, b) => {
                    let more = !rx.is_empty();
                    self.process(src, b, wall_ns(), more)
                }
                Msg::Batches(group) => {
                    let n = group.len();
                    for (i, (src, b)) in group.into_iter().enumerate() {
                        if i > 0 {
                            self.snapshot_if_called();
                        }
                        let more = i + 1 < n || !rx.is_empty();
                        self.process(src, b, wall_ns(), more);
                    }
                }
                Msg::Barrier(bar) => {
                    if matches!(bar.event, Event::ReplayDone) {
                        self.replaying = false;
                    }
                    if bar.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                        let _ = bar.done.send(bar.event);
                    }
                }
                Msg::Query(reply) => {
                    let _ = reply.send(self.stats());
                }
                Msg::Snapshot(round) => {
                    if round.id > self.snapshot_taken {
                        self.snapshot(&round)
                    }
                }
            }
        }
        self.ship_held();
        self
    }

    /// Between two batches: take the snapshot the input side called, if
    /// this worker has not taken it yet. A worker with replay packets still
    /// queued waits for the marker in its queue instead: another worker
    /// may be waiting for one of its logged turns, and stopped early it
    /// would leave its share of the replay for after the others'.
    fn snapshot_if_called(&mut self) {
        let Some(call) = &self.call else {
            return;
        };
        if self.replaying || call.id.load(Ordering::Acquire) <= self.snapshot_taken {
            return;
        }
        if matches!(self.ctx.mode(), AccessMode::Logged(l) if !l.replay.is_empty()) {
            return;
        }
        let round = call.round.lock().clone();
        if let Some(round) = round.filter(|r| r.id > self.snapshot_taken) {
            self.ship_held();
            self.snapshot(&round);
        }
    }

    /// Take this worker's part of a snapshot (see [`crate::snapshot`]).
    fn snapshot(&mut self, round: &SnapshotRound) {
        self.snapshot_taken = round.id;
        round.first_arrival.lock().get_or_insert_with(Instant::now);
        // Its own part first: nothing in it is shared.
        let last_seq = match self.ctx.mode() {
            AccessMode::Logged(l) => match l.replay.front() {
                Some((s, _)) => s - 1,
                None => l.log.last_seq(),
            },
            AccessMode::Plain => 0,
        };
        // Its packets arrive in id order: having processed the last one
        // sent before the call, it has processed every one of its own
        // before the call's cut; otherwise its cut follows the last one it
        // processed.
        let w = self.ctx.worker();
        let sent = round.sent_through.get(w).copied().unwrap_or(0);
        self.cut = if self.processed_through >= sent {
            round.next_packet
        } else {
            self.cut.max(self.processed_through + 1)
        };
        let part = WorkerSnapshot {
            last_seq,
            next_packet: self.cut,
            rng: self.ctx.rng().state(),
            dv: self.ctx.dv.entries().to_vec(),
            elements: self
                .elems
                .iter_mut()
                .enumerate()
                .map(|(i, e)| {
                    let mut b = Vec::new();
                    if let Some(e) = e {
                        match e.copy_state() {
                            Some(copy) => round.deferred.lock().push(DeferredState {
                                worker: w,
                                element: i,
                                copy,
                            }),
                            None => e.save_state(&mut b),
                        }
                    }
                    b
                })
                .collect(),
        };
        if let Some(slot) = round.parts.lock().get_mut(w) {
            *slot = Some(part);
        }
        if !round.gate.arrive() {
            round.gate.wait();
            return;
        }
        // The last to arrive: every other worker stands still, nothing
        // shared changes. Copy on write from here on: the shared state is
        // encoded after the workers resume (see SharedDyn::begin_capture).
        for v in round.vars.iter() {
            v.begin_capture(round.id);
        }
        round.gate.open();
        round.link.snapshot_round(false);
        // The others resume; this one hands the rest to the capture thread.
        let workers: Vec<WorkerSnapshot> = round
            .parts
            .lock()
            .iter_mut()
            .map(|p| p.take().unwrap_or_default())
            .collect();
        let snap = Snapshot {
            id: round.id,
            next_packet: workers
                .iter()
                .map(|w| w.next_packet)
                .min()
                .unwrap_or(round.next_packet),
            taken_ns: wall_ns(),
            stall_ns: round
                .first_arrival
                .lock()
                .map_or(0, |t| t.elapsed().as_nanos() as u64),
            workers,
            shared: Vec::new(),
        };
        round.captures.submit(CaptureJob {
            snap,
            deferred: std::mem::take(&mut *round.deferred.lock()),
            vars: round.vars.clone(),
            link: round.link.clone(),
        });
    }
}

/// Nanoseconds since the Unix epoch.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

struct InputShared {
    stop: AtomicBool,
    packets: AtomicU64,
    done: AtomicU64,
    total: AtomicU64,
    queue_drops: AtomicU64,
}

/// Run `graph` to the end of its driver program, writing `print` output to
/// `out`, and calling `progress` about ten times a second.
pub fn run(
    graph: Graph,
    opts: &RunOptions,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> RunReport {
    let mut graph = graph;
    let restore = opts.ft.as_ref().and_then(|f| f.restore.clone());
    let restore_start = Instant::now();
    if let Some(snap) = restore.as_ref().filter(|s| graph.restored != Some(s.id)) {
        if let Err(e) = graph.restore(snap) {
            return RunReport {
                elapsed: Duration::ZERO,
                started: restore_start,
                packets: 0,
                per_worker: Vec::new(),
                queue_drops: 0,
                errors: vec![e],
                stats: serde_json::Value::Null,
                digest: None,
                divergence: Vec::new(),
                restore_elapsed: None,
                replay_elapsed: None,
            };
        }
    }
    let restore_elapsed = restore.as_ref().map(|_| restore_start.elapsed());
    let Graph {
        names,
        classes,
        kinds,
        outputs,
        workers,
        sources,
        driver,
        shared,
        sinks,
        external_input: external,
        restored: _,
    } = graph;
    let replay = opts.ft.as_ref().and_then(|f| f.replay.clone());
    // The dead master's logs, cut back to what a replay can follow from
    // the restored counters (see pal::trim_to_gap_free).
    let replay_logs: Option<Arc<WorkerLogs>> = replay.as_ref().map(|p| {
        let start: Vec<u64> = shared.vars().iter().flat_map(|v| v.counters()).collect();
        let mut logs = p.logs.clone();
        trim_to_gap_free(&mut logs, &start);
        // Tell the output logger which of its records this replay does not
        // follow: it re-runs their packets and logs them anew.
        if let Some(f) = &opts.ft {
            for (w, (held, kept)) in p.logs.iter().zip(&logs).enumerate() {
                let first = p.first_seq.get(w).copied().unwrap_or(1);
                let after = kept.last().map_or(first.saturating_sub(1), |r| r.0);
                if let Some(&(through, _)) = held.last().filter(|r| r.0 > after) {
                    f.link.void_records(w, after, through);
                }
            }
        }
        Arc::new(logs)
    });
    let abort = Arc::new(AtomicBool::new(false));
    let last_logged = Arc::new(
        replay_logs
            .as_ref()
            .map(|l| LoggedCounts::of(l.iter().map(Vec::as_slice), shared.nvars() as usize))
            .unwrap_or_default(),
    );
    let nworkers = workers.len();
    let start = Instant::now();
    let seed = opts.seed.unwrap_or_else(wall_ns);
    let outputs = Arc::new(outputs);
    let entries: Arc<Vec<(usize, usize)>> = Arc::new(
        sources
            .iter()
            .map(|(e, _)| outputs[*e].first().copied().unwrap_or((usize::MAX, 0)))
            .collect(),
    );
    let sink_list: Vec<_> = sinks.sinks().to_vec();
    let (event_tx, event_rx) = unbounded::<Event>();

    let mut txs = Vec::with_capacity(nworkers);
    let mut queues = Vec::with_capacity(nworkers);
    let mut handles = Vec::with_capacity(nworkers);
    let mut inline = None;
    let call = Arc::new(SnapshotCall::default());
    for (w, elems) in workers.into_iter().enumerate() {
        // Replay needs unbounded queues and no inline worker: a worker may
        // wait for an access of another worker's later packet.
        let (tx, rx) = if replay.is_some() {
            unbounded::<Msg>()
        } else {
            bounded::<Msg>(opts.queue_batches.max(1))
        };
        txs.push(tx.clone());
        let mut ctx = Ctx::new(w, nworkers, crate::headers::mix64(seed ^ w as u64));
        if let Some(ws) = restore.as_ref().and_then(|s| s.workers.get(w)) {
            ctx.set_rng(crate::rng::Rng::from_state(ws.rng));
            ctx.dv = crate::depvec::DepVector::from_entries(&ws.dv);
        }
        if let Some(make) = &opts.remote_state {
            ctx.set_remote((make.0)(w));
        }
        if opts.ft.is_some() && !opts.ft_unlogged {
            let l = match (&replay, &replay_logs) {
                (Some(p), Some(logs)) => {
                    // New records are numbered after every record the
                    // output logger holds, trimmed ones included, so that
                    // none of its sequence numbers is reused.
                    let held_last = p.logs.get(w).and_then(|l| l.last()).map_or(0, |r| r.0);
                    let first_seq = p.first_seq.get(w).copied().unwrap_or(1);
                    let next_seq = p.next_seq.get(w).copied().unwrap_or(0);
                    LoggedAccess::replaying(
                        logs.get(w).cloned().unwrap_or_default(),
                        last_logged.clone(),
                        first_seq.max(held_last + 1).max(next_seq),
                        abort.clone(),
                    )
                }
                _ => LoggedAccess::recording(1),
            };
            ctx.set_mode(AccessMode::Logged(Box::new(l)));
        }
        let outs = outputs.iter().map(|o| Out::with_ports(o.len())).collect();
        let worker = Worker {
            elems,
            outs,
            outputs: outputs.clone(),
            entries: entries.clone(),
            ctx,
            sinks: sink_list.clone(),
            spare: Vec::new(),
            stack: Vec::new(),
            processed: 0,
            ft: opts.ft.as_ref().map(|f| f.link.clone()),
            ordinals: Default::default(),
            unshipped: None,
            call: opts.ft.as_ref().map(|_| call.clone()),
            snapshot_taken: 0,
            processed_through: 0,
            cut: restore
                .as_ref()
                .and_then(|s| s.workers.get(w))
                .map_or(0, |x| x.next_packet),
            replaying: replay.is_some(),
        };
        if w == 0 && !opts.pipeline && replay.is_none() {
            inline = Some((Box::new(worker), rx));
            queues.push(None);
            continue;
        }
        queues.push(Some(tx));
        handles.push(
            std::thread::Builder::new()
                .name(format!("ftmb-worker-{w}"))
                .spawn(move || worker.run(rx))
                .expect("spawn worker thread"),
        );
    }

    let shared_in = Arc::new(InputShared {
        stop: AtomicBool::new(false),
        packets: AtomicU64::new(0),
        done: AtomicU64::new(0),
        total: AtomicU64::new(0),
        queue_drops: AtomicU64::new(0),
    });
    let captures = Arc::new(Captures::default());
    let input = {
        let shared_in = shared_in.clone();
        let dispatch = Dispatcher {
            inline,
            sent_through: vec![0; queues.len()],
            queues,
            call,
        };
        let ft = opts.ft.as_ref().map(|f| InputFt {
            link: f.link.clone(),
            replay: replay.clone().zip(replay_logs.clone()),
            snapshots: f.snapshots,
            vars: Arc::new(shared.vars().to_vec()),
            captures: captures.clone(),
            abort: abort.clone(),
            restored_id: restore.as_ref().map_or(0, |s| s.id),
        });
        let event_tx = event_tx.clone();
        let input = InputOpts {
            batch: opts.batch.max(1),
            pace_pps: opts.pace_pps.filter(|r| *r > 0.0),
            stamp_arrival: opts.stamp_arrival,
        };
        std::thread::Builder::new()
            .name("ftmb-input".into())
            .spawn(move || input_loop(sources, dispatch, event_tx, shared_in, input, ft, external))
            .expect("spawn input thread")
    };
    drop(event_tx);

    // The driver. Handlers are read when the program asks: from live
    // workers through their queues (so the answer reflects every packet
    // dispatched before the question), or, once stopped, from the joined
    // workers.
    let mut query_txs = Some(txs);
    let mut input_handle = Some(input);
    let mut pending_handles = Some(handles);
    let mut finished: Option<Vec<Worker>> = None;
    let mut errors = Vec::new();
    let mut source_stats: SourceStats = Vec::new();
    let mut exhausted = false;
    let mut replay_elapsed = None;
    let mut tick = Instant::now();
    let mut wait_events = |n: u32, deadline: Option<Instant>, exhausted: &mut bool| {
        let mut got = 0;
        while got < n && !*exhausted {
            let mut t = Duration::from_millis(100);
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return;
                }
                t = t.min(d - now);
            }
            match event_rx.recv_timeout(t) {
                Ok(Event::ReplayDone) => replay_elapsed = Some(start.elapsed()),
                Ok(Event::Stop) if deadline.is_some() => return,
                Ok(Event::Stop) => got += 1,
                Ok(Event::Exhausted) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    *exhausted = true
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            }
            if tick.elapsed() >= Duration::from_millis(100) {
                tick = Instant::now();
                progress(Progress {
                    packets: shared_in.packets.load(Ordering::Relaxed),
                    done: shared_in.done.load(Ordering::Relaxed),
                    total: shared_in.total.load(Ordering::Relaxed),
                    elapsed: start.elapsed(),
                });
            }
        }
    };
    for insn in &driver.insns {
        match insn {
            Insn::WaitStop(n) => wait_events(*n, None, &mut exhausted),
            Insn::WaitTime(d) => wait_events(u32::MAX, Some(Instant::now() + *d), &mut exhausted),
            Insn::Stop => break,
            Insn::Print(e, h) | Insn::Read(e, h) => {
                let stats: Vec<WorkerStats> = match (&finished, &query_txs) {
                    (Some(ws), _) => ws.iter().map(|w| w.stats()).collect(),
                    (None, Some(txs)) => txs
                        .iter()
                        .filter_map(|tx| {
                            let (rtx, rrx) = bounded(1);
                            tx.send(Msg::Query(rtx)).ok()?;
                            rrx.recv().ok()
                        })
                        .collect(),
                    (None, None) => Vec::new(),
                };
                let text = handler_value(&names, &classes, &stats, e, h)
                    .unwrap_or_else(|| format!("(no handler {e}.{h})"));
                if matches!(insn, Insn::Read(..)) {
                    eprintln!("{e}.{h}:\n{text}");
                } else {
                    let _ = writeln!(out, "{text}");
                }
            }
            Insn::PrintText(t) => {
                let _ = writeln!(out, "{t}");
            }
        }
        if exhausted && finished.is_none() {
            finished = Some(stop_router(
                &shared_in,
                &mut input_handle,
                &mut query_txs,
                &mut pending_handles,
                &mut errors,
                &mut source_stats,
            ));
        }
    }
    if finished.is_none() {
        finished = Some(stop_router(
            &shared_in,
            &mut input_handle,
            &mut query_txs,
            &mut pending_handles,
            &mut errors,
            &mut source_stats,
        ));
    }
    let ws = finished.unwrap_or_default();
    // Every snapshot taken reaches the link before the run returns.
    captures.join();
    sinks.flush_all();
    for s in sinks.sinks() {
        if let Some(e) = s.error.lock().as_ref() {
            errors.push(format!("{}: {e}", s.element));
        }
    }
    let elapsed = start.elapsed();
    let stats_all: Vec<WorkerStats> = ws.iter().map(|w| w.stats()).collect();
    let stats = stats_json(
        &names,
        &classes,
        &kinds,
        &stats_all,
        &source_stats,
        sinks.sinks(),
    );
    let mut divergence = Vec::new();
    let digest = opts.ft.as_ref().map(|_| {
        let mut bytes = Vec::new();
        for v in shared.vars() {
            v.encode_all(&mut bytes);
        }
        for w in &ws {
            for e in w.elems.iter().flatten() {
                e.save_state(&mut bytes);
            }
            for x in w.ctx.rng().state() {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            if let AccessMode::Logged(l) = w.ctx.mode() {
                divergence.extend(l.divergence.clone());
            }
        }
        crate::ft::digest(&bytes)
    });
    RunReport {
        elapsed,
        started: start,
        packets: shared_in.packets.load(Ordering::Relaxed),
        per_worker: ws.iter().map(|w| w.processed).collect(),
        queue_drops: shared_in.queue_drops.load(Ordering::Relaxed),
        errors,
        stats,
        digest,
        divergence,
        restore_elapsed,
        replay_elapsed,
    }
}

/// Stop the input thread, close the worker queues and join the workers.
fn stop_router(
    shared_in: &InputShared,
    input: &mut Option<std::thread::JoinHandle<InputDone>>,
    query_txs: &mut Option<Vec<Sender<Msg>>>,
    workers: &mut Option<Vec<std::thread::JoinHandle<Worker>>>,
    errors: &mut Vec<String>,
    sources: &mut SourceStats,
) -> Vec<Worker> {
    shared_in.stop.store(true, Ordering::Release);
    let mut ws = Vec::new();
    if let Some(h) = input.take() {
        match h.join() {
            Ok(done) => {
                errors.extend(done.errors);
                ws.extend(done.inline);
                *sources = done.sources;
            }
            Err(_) => errors.push("input thread panicked".into()),
        }
    }
    *query_txs = None;
    for h in workers.take().unwrap_or_default() {
        match h.join() {
            Ok(w) => ws.push(w),
            Err(_) => errors.push("a worker thread panicked".into()),
        }
    }
    ws
}

fn combined(stats: &[WorkerStats], e: usize) -> Vec<(&'static str, Value)> {
    let mut acc: Vec<(&'static str, Value)> = Vec::new();
    for ws in stats {
        if let Some((vals, _)) = ws.get(e) {
            for (k, v) in vals {
                match acc.iter_mut().find(|(n, _)| n == k) {
                    Some((_, a)) => *a = a.clone().combine(v.clone()),
                    None => acc.push((k, v.clone())),
                }
            }
        }
    }
    acc
}

fn combined_drops(stats: &[WorkerStats], e: usize) -> Vec<(&'static str, u64)> {
    let mut acc: Vec<(&'static str, u64)> = Vec::new();
    for ws in stats {
        if let Some((_, drops)) = ws.get(e) {
            for (k, v) in drops {
                match acc.iter_mut().find(|(n, _)| n == k) {
                    Some((_, a)) => *a += v,
                    None => acc.push((k, *v)),
                }
            }
        }
    }
    acc
}

fn handler_value(
    names: &[String],
    classes: &[String],
    stats: &[WorkerStats],
    e: &str,
    h: &str,
) -> Option<String> {
    let i = names.iter().position(|n| n == e)?;
    if let Some((_, v)) = combined(stats, i).into_iter().find(|(k, _)| *k == h) {
        return Some(v.render());
    }
    match h {
        "name" => Some(names[i].clone()),
        "class" => Some(classes[i].clone()),
        "drops" => Some(
            combined_drops(stats, i)
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>()
                .to_string(),
        ),
        _ => None,
    }
}

/// Every node's counters by name: a packet element's summed over the
/// workers (with its drop reasons), a source's own (a device's packets,
/// bytes, kernel drops ...), and under a sink's element its egress
/// counters as `egress`.
fn stats_json(
    names: &[String],
    classes: &[String],
    kinds: &[NodeKind],
    stats: &[WorkerStats],
    sources: &SourceStats,
    sinks: &[Arc<crate::egress::Sink>],
) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (i, name) in names.iter().enumerate() {
        let (vals, drops) = match kinds[i] {
            NodeKind::Element => (combined(stats, i), combined_drops(stats, i)),
            NodeKind::Source(_) => match sources.iter().find(|(e, _)| *e == i) {
                Some((_, v)) => (v.clone(), Vec::new()),
                None => continue,
            },
            NodeKind::Driver => continue,
        };
        let mut o = serde_json::Map::new();
        o.insert("class".into(), serde_json::json!(classes[i]));
        for (k, v) in vals {
            o.insert(k.into(), v.to_json());
        }
        if !drops.is_empty() {
            o.insert("drops".into(), counters_json(drops));
        }
        let egress = sinks
            .iter()
            .find(|s| s.element == *name)
            .map(|s| s.egress.lock().stats())
            .unwrap_or_default();
        if !egress.is_empty() {
            o.insert("egress".into(), counters_json(egress));
        }
        m.insert(name.clone(), serde_json::Value::Object(o));
    }
    serde_json::Value::Object(m)
}

/// Named counters as a JSON object.
fn counters_json(c: Vec<(&'static str, u64)>) -> serde_json::Value {
    serde_json::Value::Object(
        c.into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect(),
    )
}

/// Where the input loop hands batches. Worker 0 runs on the input thread
/// itself unless a pipeline was asked for (no queue, no cross-thread
/// hand-off: its packets are still in cache when processed); the other
/// workers get batches over bounded queues.
struct Dispatcher {
    inline: Option<(Box<Worker>, Receiver<Msg>)>,
    /// Queue per worker (`None` for the inline worker).
    queues: Vec<Option<Sender<Msg>>>,
    /// Per worker, the highest packet id sent to it.
    sent_through: Vec<u64>,
    /// Where snapshots are called.
    call: Arc<SnapshotCall>,
}

impl Dispatcher {
    fn nworkers(&self) -> usize {
        self.queues.len()
    }

    fn send(&mut self, w: usize, src: u16, b: Vec<Packet>, lossy: bool, shared: &InputShared) {
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
    fn send_group(&mut self, w: usize, group: BatchGroup) {
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
    fn barrier(&mut self, done: Sender<Event>, event: Event) {
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
    fn snapshot(&mut self, round: Arc<SnapshotRound>) {
        round.link.snapshot_round(true);
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
    fn service(&mut self) {
        if let Some((worker, control)) = &mut self.inline {
            while let Ok(m) = control.try_recv() {
                if let Msg::Query(reply) = m {
                    let _ = reply.send(worker.stats());
                }
            }
        }
    }
}

/// Per worker, numbered log records in order.
type WorkerLogs = Vec<Vec<(u64, LogRecord)>>;

/// What the input side needs for fault tolerance.
struct InputFt {
    link: Arc<dyn FtLink>,
    /// The plan and its logs as trimmed for replay.
    replay: Option<(Arc<ReplayPlan>, Arc<WorkerLogs>)>,
    snapshots: Option<SnapshotTrigger>,
    vars: Arc<Vec<Arc<dyn SharedDyn>>>,
    captures: Arc<Captures>,
    /// Set when the replay cannot finish: workers stop waiting for turns.
    abort: Arc<AtomicBool>,
    /// The id of the snapshot restored (0: none): this run's snapshots
    /// are numbered after it, so that a standby or output logger holding
    /// the dead master's snapshots never takes a new one for an old one.
    restored_id: u64,
}

/// How the input thread takes packets from the sources.
struct InputOpts {
    batch: usize,
    pace_pps: Option<f64>,
    stamp_arrival: bool,
}

fn input_loop(
    mut sources: Vec<(usize, Box<dyn crate::element::Source>)>,
    mut dispatch: Dispatcher,
    event_tx: Sender<Event>,
    shared: Arc<InputShared>,
    input: InputOpts,
    ft: Option<InputFt>,
    external: Option<Box<dyn crate::element::Source>>,
) -> InputDone {
    let batch = input.batch;
    let paced_from = Instant::now();
    let mut offered: u64 = 0;
    let replay = ft.as_ref().and_then(|f| f.replay.clone());
    let input_log = ft.as_ref().map(|f| f.link.clone());
    let snapshots = ft
        .as_ref()
        .and_then(|f| f.snapshots.map(|t| (t, f.vars.clone())));
    let captures = ft
        .as_ref()
        .map_or_else(Default::default, |f| f.captures.clone());
    let mut snap_id = ft.as_ref().map_or(0, |f| f.restored_id);
    let mut last_snap_at = Instant::now();
    let mut last_snap_packet = 1u64;
    let nworkers = dispatch.nworkers();
    let mut errors = Vec::new();
    let mut next_id: u64 = 1;
    let mut pending: Vec<(u16, Vec<Packet>)> = (0..nworkers)
        .map(|_| (0, Vec::with_capacity(batch)))
        .collect();
    let mut tmp: Vec<Packet> = Vec::with_capacity(batch);
    let mut idle_rounds = 0u32;
    let framings: Vec<_> = sources.iter().map(|(_, s)| s.framing()).collect();
    // An external input (an input logger's stream) replaces the sources;
    // the sources still give their framings.
    let numbered = external.is_some();
    if let Some(ext) = external {
        sources = vec![(usize::MAX, ext)];
    }
    let mut done = vec![false; sources.len()];
    if let Some((plan, logs)) = replay {
        match feed_replay(&plan, &logs, &mut dispatch, &framings, batch, &shared) {
            Ok(id) => next_id = id,
            Err(e) => {
                // Logged accesses of the missing packets will never come.
                errors.push(e);
                if let Some(f) = &ft {
                    f.abort.store(true, Ordering::Release);
                }
            }
        }
        dispatch.barrier(event_tx.clone(), Event::ReplayDone);
        if !plan.then_sources {
            done.iter_mut().for_each(|d| *d = true);
        }
    }
    while !shared.stop.load(Ordering::Acquire) {
        dispatch.service();
        let mut progressed = false;
        let mut all_done = true;
        for (si, (_, src)) in sources.iter_mut().enumerate() {
            if done[si] {
                continue;
            }
            all_done = false;
            tmp.clear();
            let want = match input.pace_pps {
                // Whatever the rate allows by now, in batches of at most
                // `batch` (one or two at a time at moderate rates).
                Some(pps) => {
                    let due = (paced_from.elapsed().as_secs_f64() * pps) as u64;
                    (due.saturating_sub(offered) as usize).min(batch)
                }
                None => batch,
            };
            if want == 0 {
                continue;
            }
            let status = match src.poll(want, &mut tmp) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(e);
                    SourceStatus::Done
                }
            };
            if !tmp.is_empty() {
                progressed = true;
                offered += tmp.len() as u64;
                if input.stamp_arrival {
                    let now = wall_ns();
                    tmp.iter_mut().for_each(|p| p.anno.ts_ns = now);
                }
                let lossy = src.backpressure() == Backpressure::Drop;
                shared
                    .packets
                    .fetch_add(tmp.len() as u64, Ordering::Relaxed);
                if numbered {
                    // Packets from an input logger: ids and sources set.
                    for p in tmp.iter() {
                        next_id = next_id.max(p.anno.id + 1);
                    }
                } else {
                    for p in tmp.iter_mut() {
                        p.anno.id = next_id;
                        p.anno.source = si as u16;
                        next_id += 1;
                    }
                }
                if let Some(link) = &input_log {
                    link.log_input(&tmp);
                }
                if nworkers == 1 && !numbered {
                    // One worker: hand the whole numbered batch over.
                    let b = std::mem::replace(&mut tmp, Vec::with_capacity(batch));
                    dispatch.send(0, si as u16, b, lossy, &shared);
                }
                for p in tmp.drain(..) {
                    let src = p.anno.source;
                    let framing = framings
                        .get(src as usize)
                        .copied()
                        .unwrap_or(crate::headers::Framing::Unknown);
                    let w = worker_of(&p, framing, nworkers);
                    let (psrc, pw) = &mut pending[w];
                    if !pw.is_empty() && *psrc != src {
                        let b = std::mem::replace(pw, Vec::with_capacity(batch));
                        dispatch.send(w, *psrc, b, lossy, &shared);
                    }
                    *psrc = src;
                    pw.push(p);
                    if pw.len() >= batch {
                        let b = std::mem::replace(pw, Vec::with_capacity(batch));
                        dispatch.send(w, src, b, lossy, &shared);
                    }
                }
                for (w, (psrc, pw)) in pending.iter_mut().enumerate() {
                    if !pw.is_empty() {
                        let b = std::mem::replace(pw, Vec::with_capacity(batch));
                        dispatch.send(w, *psrc, b, lossy, &shared);
                    }
                }
            }
            if status == SourceStatus::Done {
                done[si] = true;
                if src.stop_when_done() {
                    dispatch.barrier(event_tx.clone(), Event::Stop);
                }
            }
        }
        if let (Some((trigger, vars)), Some(link)) = (&snapshots, &input_log) {
            let due = match trigger {
                SnapshotTrigger::Every(k) => last_snap_at.elapsed() >= *k,
                SnapshotTrigger::EveryPackets(n) => next_id >= last_snap_packet + n,
            };
            let deterministic = matches!(trigger, SnapshotTrigger::EveryPackets(_));
            if due && next_id > last_snap_packet && deterministic {
                // Cuts at fixed packet counts: wait for the last capture.
                while captures.busy.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
            }
            if due && next_id > last_snap_packet && !captures.busy.load(Ordering::Acquire) {
                captures.busy.store(true, Ordering::Release);
                snap_id += 1;
                last_snap_at = Instant::now();
                last_snap_packet = next_id;
                dispatch.snapshot(Arc::new(SnapshotRound {
                    id: snap_id,
                    next_packet: next_id,
                    sent_through: dispatch.sent_through.clone(),
                    gate: RoundGate::new(nworkers),
                    first_arrival: parking_lot::Mutex::new(None),
                    parts: parking_lot::Mutex::new(vec![None; nworkers]),
                    deferred: parking_lot::Mutex::new(Vec::new()),
                    vars: vars.clone(),
                    link: link.clone(),
                    captures: captures.clone(),
                }));
            }
        }
        let (mut d, mut t) = (0, 0);
        for (_, s) in &sources {
            if let Some((a, b)) = s.progress() {
                d += a;
                t += b;
            }
        }
        shared.done.store(d, Ordering::Relaxed);
        shared.total.store(t, Ordering::Relaxed);
        if all_done {
            // Every source is exhausted: once the workers have drained,
            // tell the driver that no stop event will ever come again.
            dispatch.barrier(event_tx.clone(), Event::Exhausted);
            break;
        }
        if progressed {
            idle_rounds = 0;
        } else {
            idle_rounds += 1;
            if idle_rounds > 16 && input.pace_pps.is_none() {
                // Wait on the live sources' descriptors (or sleep briefly);
                // a paced input spins on the clock instead.
                crate::idle::wait_idle(
                    sources
                        .iter()
                        .zip(&done)
                        .filter(|(_, d)| !**d)
                        .map(|((_, s), _)| s.readiness_fd()),
                );
            } else {
                std::thread::yield_now();
            }
        }
    }
    if dispatch.inline.is_some() {
        // Keep answering the driver until it stops the router.
        while !shared.stop.load(Ordering::Acquire) {
            dispatch.service();
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    InputDone {
        errors,
        inline: dispatch.inline.map(|(w, _)| *w),
        sources: sources
            .iter()
            .filter(|(e, _)| *e != usize::MAX)
            .map(|(e, s)| (*e, s.stats()))
            .collect(),
    }
}

/// What the input thread leaves when it stops.
struct InputDone {
    errors: Vec<String>,
    /// The worker it ran inline, if any.
    inline: Option<Worker>,
    /// Each source's counters, by element index.
    sources: SourceStats,
}

/// Counters of the sources, by element index.
type SourceStats = Vec<(usize, Vec<(&'static str, Value)>)>;

/// The worker a packet goes to: its direction-symmetric flow hash.
fn worker_of(p: &Packet, framing: crate::headers::Framing, nworkers: usize) -> usize {
    if nworkers == 1 {
        return 0;
    }
    let d = p.data();
    let h = match p.anno.net_off {
        Some(o) => symmetric_hash(d.get(o as usize..).unwrap_or(&[])),
        None => ip_offset(framing, d).map_or(0, |o| symmetric_hash(d.get(o..).unwrap_or(&[]))),
    };
    (h % nworkers as u64) as usize
}

/// Hand a replay plan's packets to the workers in the master's batches:
/// each worker's logged clock records give the first packet and the size of
/// each batch it ran. Past a worker's logged prefix, batches are cut by
/// size. A packet before its worker's cut ([`ReplayPlan::first_packet`]) is
/// skipped: the snapshot reflects it. Returns the next input id.
fn feed_replay(
    plan: &ReplayPlan,
    logs: &[Vec<(u64, LogRecord)>],
    dispatch: &mut Dispatcher,
    framings: &[crate::headers::Framing],
    batch: usize,
    shared: &InputShared,
) -> Result<u64, String> {
    let n = dispatch.nworkers();
    let mut logged: Vec<std::collections::VecDeque<(u64, u32)>> = (0..n)
        .map(|w| {
            logs.get(w)
                .into_iter()
                .flatten()
                .filter_map(|(_, r)| match r {
                    LogRecord::Clock { packet, count, .. } => Some((*packet, *count)),
                    LogRecord::Pal(_) => None,
                })
                .collect()
        })
        .collect();
    // Per worker: the batch being gathered, its source, and the size it
    // must reach (the logged size, or `batch` past the log).
    let mut pending: Vec<(u16, Vec<Packet>, usize)> =
        (0..n).map(|_| (0, Vec::new(), batch)).collect();
    // Per worker: whole batches not yet handed over. The master's batches
    // are as small as its input was slow (a packet or two at 200k
    // packets/s); handed over one by one, each would cost a queue
    // operation and often a wake-up of the worker. They go in groups of at
    // least `batch` packets, or sooner when the input pauses.
    let mut outbox: Vec<(BatchGroup, usize)> = (0..n).map(|_| (Vec::new(), 0)).collect();
    let mut next_id = 1;
    let mut fed = 0u64;
    let mut preloaded = plan.packets.iter().cloned();
    let mut streamed = plan
        .streamed
        .as_ref()
        .map(|(rx, n)| (rx, usize::try_from(*n).unwrap_or(usize::MAX)));
    let mut ship = |w: usize, src: u16, b: Vec<Packet>, dispatch: &mut Dispatcher, force: bool| {
        let (group, npkts) = &mut outbox[w];
        if !b.is_empty() {
            *npkts += b.len();
            group.push((src, b));
        }
        if !group.is_empty() && (force || *npkts >= batch) {
            *npkts = 0;
            dispatch.send_group(w, std::mem::take(group));
        }
    };
    loop {
        let p = match preloaded.next() {
            Some(p) => p,
            None => match &mut streamed {
                Some((rx, left)) if *left > 0 => {
                    let p = match rx.try_recv() {
                        Ok(p) => Some(p),
                        Err(crossbeam_channel::TryRecvError::Empty) => {
                            // About to wait for the input: what is gathered
                            // goes now.
                            for w in 0..n {
                                ship(w, 0, Vec::new(), dispatch, true);
                            }
                            rx.recv().ok()
                        }
                        Err(crossbeam_channel::TryRecvError::Disconnected) => None,
                    };
                    match p {
                        Some(p) => {
                            *left -= 1;
                            p
                        }
                        None => break,
                    }
                }
                _ => break,
            },
        };
        let (src, id) = (p.anno.source, p.anno.id);
        let framing = framings
            .get(src as usize)
            .copied()
            .unwrap_or(crate::headers::Framing::Unknown);
        let w = worker_of(&p, framing, n);
        next_id = next_id.max(id + 1);
        fed += 1;
        if id < plan.first_packet.get(w).copied().unwrap_or(0) {
            // Its worker had processed it before the snapshot's cut.
            continue;
        }
        let (psrc, pb, _) = &mut pending[w];
        if !pb.is_empty() && *psrc != src {
            let (s, b) = (*psrc, std::mem::take(pb));
            ship(w, s, b, dispatch, false);
        }
        let (psrc, pb, target) = &mut pending[w];
        if pb.is_empty() {
            *target = match logged[w].front() {
                Some(&(first, count)) if first == p.anno.id => {
                    logged[w].pop_front();
                    count as usize
                }
                _ => batch,
            };
        }
        *psrc = src;
        pb.push(p);
        if pb.len() >= *target {
            let b = std::mem::take(pb);
            ship(w, src, b, dispatch, false);
        }
        shared.packets.fetch_add(1, Ordering::Relaxed);
    }
    for (w, (src, pb, _)) in pending.into_iter().enumerate() {
        ship(w, src, pb, dispatch, true);
    }
    if fed < plan.len() {
        return Err(format!(
            "replay: the input ended after {fed} of {} packets",
            plan.len()
        ));
    }
    Ok(next_id)
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
