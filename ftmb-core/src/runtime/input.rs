//! The input thread: polls every source round-robin, gives each packet the
//! next input id, picks its worker by the flow hash ([`crate::steer`]) and
//! hands batches to the [`Dispatcher`]. With fault tolerance it also logs
//! the input, replays first (a replica taking over) and calls the
//! snapshots.
//!
//! One round of the loop: answer the driver's questions to the inline
//! worker, poll each source once ([`InputLoop::poll_source`]), call a
//! snapshot if one is due ([`InputLoop::snapshot_if_due`]), publish the
//! progress, and, when nothing came, wait ([`InputLoop::idle`]).

use super::counters::InputShared;
use super::dispatch::Dispatcher;
use super::msg::Event;
use super::replaying::Replaying;
use super::stats::SourceStats;
use super::worker::Worker;
use crate::clock::wall_ns;
use crate::element::{Backpressure, Source, SourceStatus};
use crate::ft::{FtLink, SnapshotTrigger};
use crate::headers::Framing;
use crate::packet::Packet;
use crate::shared::SharedDyn;
use crate::snapshot::round::{Captures, SnapshotRound, SnapshotStore};
use crossbeam_channel::Sender;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the input side needs for fault tolerance.
pub(super) struct InputFt {
    pub(super) link: Arc<dyn FtLink>,
    /// The same link, where snapshot rounds store their snapshots.
    pub(super) store: Arc<dyn SnapshotStore>,
    /// The replay to feed first, if any.
    pub(super) replay: Option<Arc<Replaying>>,
    pub(super) snapshots: Option<SnapshotTrigger>,
    pub(super) vars: Arc<Vec<Arc<dyn SharedDyn>>>,
    pub(super) captures: Arc<Captures>,
    /// The id of the snapshot restored (0: none): this run's snapshots
    /// are numbered after it, so that a standby or output logger holding
    /// the dead master's snapshots never takes a new one for an old one.
    pub(super) restored_id: u64,
}

/// How the input thread takes packets from the sources.
pub(super) struct InputOpts {
    pub(super) batch: usize,
    pub(super) pace_pps: Option<f64>,
    pub(super) stamp_arrival: bool,
}

/// What the input thread leaves when it stops.
pub(super) struct InputDone {
    pub(super) errors: Vec<String>,
    /// The worker it ran inline, if any.
    pub(super) inline: Option<Worker>,
    /// Each source's counters, by element index.
    pub(super) sources: SourceStats,
}

/// Start the input thread. An external input (an input logger's stream)
/// replaces the sources, which still give their framings.
pub(super) fn spawn(
    sources: Vec<(usize, Box<dyn Source>)>,
    external: Option<Box<dyn Source>>,
    dispatch: Dispatcher,
    events: Sender<Event>,
    shared: Arc<InputShared>,
    opts: InputOpts,
    ft: Option<InputFt>,
) -> JoinHandle<InputDone> {
    std::thread::Builder::new()
        .name("ftmb-input".into())
        .spawn(move || InputLoop::new(sources, external, dispatch, events, shared, opts, ft).run())
        .expect("spawn input thread")
}

/// When the last snapshot was called.
struct SnapshotClock {
    /// Id of the last snapshot called.
    id: u64,
    at: Instant,
    /// The next input id when it was called.
    packet: u64,
}

/// The input thread's state.
struct InputLoop {
    sources: Vec<(usize, Box<dyn Source>)>,
    /// Per source: exhausted.
    done: Vec<bool>,
    framings: Vec<Framing>,
    /// Packets come numbered (from an input logger).
    numbered: bool,
    dispatch: Dispatcher,
    events: Sender<Event>,
    shared: Arc<InputShared>,
    opts: InputOpts,
    ft: Option<InputFt>,
    snapshot: SnapshotClock,
    errors: Vec<String>,
    next_id: u64,
    /// Per worker: the batch being gathered and its source.
    pending: Vec<(u16, Vec<Packet>)>,
    /// What the last poll gave.
    tmp: Vec<Packet>,
    paced_from: Instant,
    /// Packets offered so far (for pacing).
    offered: u64,
    idle_rounds: u32,
}

impl InputLoop {
    fn new(
        mut sources: Vec<(usize, Box<dyn Source>)>,
        external: Option<Box<dyn Source>>,
        dispatch: Dispatcher,
        events: Sender<Event>,
        shared: Arc<InputShared>,
        opts: InputOpts,
        ft: Option<InputFt>,
    ) -> InputLoop {
        let batch = opts.batch;
        let framings = sources.iter().map(|(_, s)| s.framing()).collect();
        let numbered = external.is_some();
        if let Some(ext) = external {
            sources = vec![(usize::MAX, ext)];
        }
        let nworkers = dispatch.nworkers();
        InputLoop {
            done: vec![false; sources.len()],
            sources,
            framings,
            numbered,
            dispatch,
            events,
            shared,
            snapshot: SnapshotClock {
                id: ft.as_ref().map_or(0, |f| f.restored_id),
                at: Instant::now(),
                packet: 1,
            },
            opts,
            ft,
            errors: Vec::new(),
            next_id: 1,
            pending: (0..nworkers)
                .map(|_| (0, Vec::with_capacity(batch)))
                .collect(),
            tmp: Vec::with_capacity(batch),
            paced_from: Instant::now(),
            offered: 0,
            idle_rounds: 0,
        }
    }

    /// Replay first (if any), then poll the sources until they are
    /// exhausted or the driver stops the router.
    fn run(mut self) -> InputDone {
        self.replay_first();
        while !self.shared.stop.load(Ordering::Acquire) {
            self.dispatch.service();
            let mut progressed = false;
            let mut all_done = true;
            for si in 0..self.sources.len() {
                if !self.done[si] {
                    all_done = false;
                    progressed |= self.poll_source(si);
                }
            }
            self.snapshot_if_due();
            self.publish_progress();
            if all_done {
                // Every source is exhausted: once the workers have
                // drained, tell the driver that no stop event will ever
                // come again.
                self.dispatch.barrier(self.events.clone(), Event::Exhausted);
                break;
            }
            self.idle(progressed);
        }
        self.serve_until_stopped();
        InputDone {
            errors: self.errors,
            inline: self.dispatch.inline.map(|(w, _)| *w),
            sources: self
                .sources
                .iter()
                .filter(|(e, _)| *e != usize::MAX)
                .map(|(e, s)| (*e, s.stats()))
                .collect(),
        }
    }

    /// A replica's replay, before any source is polled (see
    /// [`crate::replay`]); then a barrier tells the driver when the workers
    /// have processed it.
    fn replay_first(&mut self) {
        let Some(replay) = self.ft.as_ref().and_then(|f| f.replay.clone()) else {
            return;
        };
        let fed = replay.feed(
            &mut self.dispatch,
            &self.framings,
            self.opts.batch,
            &self.shared,
        );
        match fed {
            Ok(id) => self.next_id = id,
            Err(e) => self.errors.push(e),
        }
        self.dispatch
            .barrier(self.events.clone(), Event::ReplayDone);
        if !replay.then_sources() {
            self.done.iter_mut().for_each(|d| *d = true);
        }
    }

    /// Poll source `si` once and hand what it gave to the workers; true
    /// when it gave packets.
    fn poll_source(&mut self, si: usize) -> bool {
        let want = self.wanted();
        if want == 0 {
            return false;
        }
        self.tmp.clear();
        let src = &mut self.sources[si].1;
        let status = match src.poll(want, &mut self.tmp) {
            Ok(s) => s,
            Err(e) => {
                self.errors.push(e);
                SourceStatus::Done
            }
        };
        let lossy = src.backpressure() == Backpressure::Drop;
        let progressed = !self.tmp.is_empty();
        if progressed {
            self.take_in(si);
            self.distribute(si, lossy);
        }
        if status == SourceStatus::Done {
            self.done[si] = true;
            if self.sources[si].1.stop_when_done() {
                self.dispatch.barrier(self.events.clone(), Event::Stop);
            }
        }
        progressed
    }

    /// Packets to ask a source for: a batch, or with pacing whatever the
    /// rate allows by now, in batches of at most `batch` (one or two at a
    /// time at moderate rates).
    fn wanted(&self) -> usize {
        let batch = self.opts.batch;
        match self.opts.pace_pps {
            Some(pps) => {
                let due = (self.paced_from.elapsed().as_secs_f64() * pps) as u64;
                (due.saturating_sub(self.offered) as usize).min(batch)
            }
            None => batch,
        }
    }

    /// Count, stamp, number and log the packets source `si` just gave.
    fn take_in(&mut self, si: usize) {
        let tmp = &mut self.tmp;
        self.offered += tmp.len() as u64;
        if self.opts.stamp_arrival {
            let now = wall_ns();
            tmp.iter_mut().for_each(|p| p.anno.ts_ns = now);
        }
        self.shared
            .packets
            .fetch_add(tmp.len() as u64, Ordering::Relaxed);
        if self.numbered {
            // Packets from an input logger: ids and sources set.
            for p in tmp.iter() {
                self.next_id = self.next_id.max(p.anno.id + 1);
            }
        } else {
            for p in tmp.iter_mut() {
                p.anno.id = self.next_id;
                p.anno.source = si as u16;
                self.next_id += 1;
            }
        }
        if let Some(f) = &self.ft {
            f.link.log_input(tmp);
        }
    }

    /// Hand the numbered packets to their workers, in batches per worker
    /// and source.
    fn distribute(&mut self, si: usize, lossy: bool) {
        let batch = self.opts.batch;
        let nworkers = self.dispatch.nworkers();
        let shared = &*self.shared;
        if nworkers == 1 && !self.numbered {
            // One worker: hand the whole numbered batch over.
            let b = std::mem::replace(&mut self.tmp, Vec::with_capacity(batch));
            self.dispatch.send(0, si as u16, b, lossy, shared);
        }
        for p in self.tmp.drain(..) {
            let src = p.anno.source;
            let framing = self
                .framings
                .get(src as usize)
                .copied()
                .unwrap_or(Framing::Unknown);
            let w = crate::steer::worker_of(&p, framing, nworkers);
            let (psrc, pw) = &mut self.pending[w];
            if !pw.is_empty() && *psrc != src {
                let b = std::mem::replace(pw, Vec::with_capacity(batch));
                self.dispatch.send(w, *psrc, b, lossy, shared);
            }
            *psrc = src;
            pw.push(p);
            if pw.len() >= batch {
                let b = std::mem::replace(pw, Vec::with_capacity(batch));
                self.dispatch.send(w, src, b, lossy, shared);
            }
        }
        for (w, (psrc, pw)) in self.pending.iter_mut().enumerate() {
            if !pw.is_empty() {
                let b = std::mem::replace(pw, Vec::with_capacity(batch));
                self.dispatch.send(w, *psrc, b, lossy, shared);
            }
        }
    }

    /// Call a snapshot when the trigger says one is due and the last one's
    /// capture is done (cuts at fixed packet counts wait for it).
    fn snapshot_if_due(&mut self) {
        let Some(ft) = &self.ft else {
            return;
        };
        let Some(trigger) = ft.snapshots else {
            return;
        };
        let due = match trigger {
            SnapshotTrigger::Every(k) => self.snapshot.at.elapsed() >= k,
            SnapshotTrigger::EveryPackets(n) => self.next_id >= self.snapshot.packet + n,
        };
        if !due || self.next_id <= self.snapshot.packet {
            return;
        }
        let captures = &ft.captures;
        if matches!(trigger, SnapshotTrigger::EveryPackets(_)) {
            // Cuts at fixed packet counts: wait for the last capture.
            while captures.busy.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
        }
        if captures.busy.load(Ordering::Acquire) {
            return;
        }
        captures.busy.store(true, Ordering::Release);
        self.snapshot = SnapshotClock {
            id: self.snapshot.id + 1,
            at: Instant::now(),
            packet: self.next_id,
        };
        let round = SnapshotRound::new(
            self.snapshot.id,
            self.next_id,
            self.dispatch.sent_through.clone(),
            ft.vars.clone(),
            ft.store.clone(),
            captures.clone(),
        );
        self.dispatch.snapshot(Arc::new(round));
    }

    /// The sources' `(done, total)` progress, for the driver.
    fn publish_progress(&self) {
        let (mut d, mut t) = (0, 0);
        for (_, s) in &self.sources {
            if let Some((a, b)) = s.progress() {
                d += a;
                t += b;
            }
        }
        self.shared.done.store(d, Ordering::Relaxed);
        self.shared.total.store(t, Ordering::Relaxed);
    }

    /// After a round that gave nothing: yield, and after a few such rounds
    /// wait on the live sources' descriptors (or sleep briefly); a paced
    /// input spins on the clock instead.
    fn idle(&mut self, progressed: bool) {
        if progressed {
            self.idle_rounds = 0;
            return;
        }
        self.idle_rounds += 1;
        if self.idle_rounds > 16 && self.opts.pace_pps.is_none() {
            crate::idle::wait_idle(
                self.sources
                    .iter()
                    .zip(&self.done)
                    .filter(|(_, d)| !**d)
                    .map(|((_, s), _)| s.readiness_fd()),
            );
        } else {
            std::thread::yield_now();
        }
    }

    /// With an inline worker: keep answering the driver until it stops the
    /// router.
    fn serve_until_stopped(&mut self) {
        if self.dispatch.inline.is_some() {
            while !self.shared.stop.load(Ordering::Acquire) {
                self.dispatch.service();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
