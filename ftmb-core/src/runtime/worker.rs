//! The workers: each runs every batch it is handed to completion through
//! its own instance of the element graph, depth first; with fault
//! tolerance it ships its log records and outputs to the link and takes
//! its part of each snapshot between two batches.

use super::msg::{Event, Msg, WorkerStats};
use crate::clock::wall_ns;
use crate::context::{AccessMode, Ctx};
use crate::element::{Element, Out};
use crate::ft::{FtLink, FtOptions, Shipment};
use crate::packet::Packet;
use crate::snapshot::round::SnapshotCall as Call;
use crate::snapshot::round::{SnapshotCall, SnapshotRound};
use crate::snapshot::{Snapshot, WorkerSnapshot};
use crossbeam_channel::Receiver;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What every worker of a run shares.
pub(super) struct WorkerShared {
    pub(super) outputs: Arc<Vec<Vec<(usize, usize)>>>,
    pub(super) entries: Arc<Vec<(usize, usize)>>,
    pub(super) sinks: Vec<Arc<crate::egress::Sink>>,
    pub(super) call: Arc<Call>,
}

/// One worker: an instance of every packet-processing element, its
/// context, and (with fault tolerance) what it ships and its snapshot
/// state.
pub(super) struct Worker {
    pub(super) elems: Vec<Option<Box<dyn Element>>>,
    outs: Vec<Out>,
    outputs: Arc<Vec<Vec<(usize, usize)>>>,
    entries: Arc<Vec<(usize, usize)>>,
    pub(super) ctx: Ctx,
    sinks: Vec<Arc<crate::egress::Sink>>,
    spare: Vec<Vec<Packet>>,
    stack: Vec<(usize, usize, Vec<Packet>)>,
    pub(super) processed: u64,
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
    /// Test only (`RunOptions::test_diverge_replay`): corrupt the outputs
    /// of replayed packets.
    pub(super) diverge_replayed: bool,
}

/// A worker ships what it holds once it holds this many outputs, even with
/// more batches queued.
const SHIP_MAX_OUTPUTS: usize = 1024;

impl Worker {
    /// A worker running `elems` with context `ctx`.
    pub(super) fn new(
        elems: Vec<Option<Box<dyn Element>>>,
        ctx: Ctx,
        common: &WorkerShared,
        ft: Option<&FtOptions>,
        restore: Option<&Snapshot>,
        replaying: bool,
    ) -> Worker {
        let w = ctx.worker();
        Worker {
            outs: common
                .outputs
                .iter()
                .map(|o| Out::with_ports(o.len()))
                .collect(),
            elems,
            outputs: common.outputs.clone(),
            entries: common.entries.clone(),
            ctx,
            sinks: common.sinks.clone(),
            spare: Vec::new(),
            stack: Vec::new(),
            processed: 0,
            ft: ft.map(|f| f.link.clone()),
            ordinals: Default::default(),
            unshipped: None,
            call: ft.map(|_| common.call.clone()),
            snapshot_taken: 0,
            processed_through: 0,
            cut: restore
                .and_then(|s| s.workers.get(w))
                .map_or(0, |x| x.next_packet),
            replaying,
            diverge_replayed: false,
        }
    }

    /// Run one batch through the graph. With fault tolerance, its log
    /// records and outputs are shipped at once unless `more` says another
    /// batch is already queued for this worker: then they wait (up to
    /// [`SHIP_MAX_OUTPUTS`]) and go with the next batches' in one
    /// shipment. A backlog (a replay, a burst) then costs one hand-over to
    /// the output logger per many batches, not one per batch, while a
    /// worker that keeps up ships every batch as soon as it is done.
    pub(super) fn process(&mut self, source: u16, batch: Vec<Packet>, now: u64, more: bool) {
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
                // Replay packets all come before the replay's barrier.
                let diverge = self.diverge_replayed && self.replaying;
                self.ctx.sinks.drain(|sink, pkts| {
                    for mut p in pkts.drain(..) {
                        let ordinal = ordinals.next(p.anno.id);
                        if diverge {
                            if let Some(b) = p.data_mut().last_mut() {
                                *b ^= 0xff;
                            }
                        }
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

    pub(super) fn stats(&self) -> WorkerStats {
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

    pub(super) fn run(mut self, rx: Receiver<Msg>) -> Worker {
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

    /// Take this worker's part of a snapshot (see [`crate::snapshot`]):
    /// its cut, log position, generator, dependency vector and elements'
    /// private state; then wait at the round's gate for the others.
    pub(super) fn snapshot(&mut self, round: &SnapshotRound) {
        self.snapshot_taken = round.id;
        round.stopping();
        // Its own part first: nothing in it is shared.
        let last_seq = match self.ctx.mode() {
            AccessMode::Logged(l) => match l.replay.front() {
                Some((s, _)) => s - 1,
                None => l.log.last_seq(),
            },
            AccessMode::Plain => 0,
        };
        let w = self.ctx.worker();
        self.cut = round.cut_of(w, self.processed_through, self.cut);
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
                            Some(copy) => round.defer(w, i, copy),
                            None => e.save_state(&mut b),
                        }
                    }
                    b
                })
                .collect(),
        };
        round.arrive(w, part);
    }
}
