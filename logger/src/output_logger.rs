//! The output logger's shell around [`CommitCore`]: it takes the master's
//! log batches, outputs and snapshots, writes every committed output to its
//! sink (the same `ToDump`/`ToDevice` egress the configuration declares),
//! keeps the last committed snapshot and the logs since its cut for a
//! replica, and can record what it released for checking.
//!
//! It implements [`FtLink`], so a master in the same process can use it
//! directly; the process roles feed it from their sockets.

use crate::commit::{CommitCore, HeldOutput};
use ftmb_core::egress::Sink;
use ftmb_core::ft::{FtLink, OutputBatch, Shipment};
use ftmb_core::pal::LogRecord;
use ftmb_core::snapshot::Snapshot;
use ftmb_core::Packet;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One released output, as the release record keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    /// Sink index.
    pub sink: u16,
    /// Input packet id.
    pub packet_id: u64,
    /// Ordinal among that packet's outputs.
    pub ordinal: u32,
    /// The bytes that left.
    pub data: Vec<u8>,
}

/// What a replica needs to take over.
#[derive(Clone, Debug, Default)]
pub struct Takeover {
    /// The last committed snapshot (`None`: start from the initial state).
    pub snapshot: Option<Arc<Snapshot>>,
    /// The same snapshot as the master encoded it, when it came encoded
    /// (a replica is sent these bytes, not a re-encoding).
    pub encoded: Option<Arc<Vec<u8>>>,
    /// Per worker: the records after the snapshot's cut, in order.
    pub logs: Vec<Vec<(u64, LogRecord)>>,
    /// Outputs of the dead master dropped because they could never commit.
    pub dropped: usize,
    /// Per worker: the highest sequence number received (`MAX`); a replica
    /// numbers its records after it (see `ReplayPlan::next_seq`).
    pub frontier: Vec<u64>,
}

impl Takeover {
    /// Per worker: where a replica numbers its new records from
    /// (`ReplayPlan::next_seq`): after the frontier.
    pub fn next_seq(&self) -> Vec<u64> {
        self.frontier.iter().map(|m| m + 1).collect()
    }
}

/// Counters of an output logger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputLoggerStats {
    /// Outputs written to sinks.
    pub released: u64,
    /// Outputs held right now.
    pub held: usize,
    /// Replayed outputs suppressed because they had left already.
    pub suppressed: u64,
    /// Snapshots committed.
    pub snapshots: u64,
    /// Log records stored now (since the last cut).
    pub stored_records: usize,
    /// Protocol errors (a gap in a worker's log, an impossible output).
    pub errors: u64,
    /// Duplicates whose sink or bytes differ from the output that left
    /// under their key (see `CommitStats::divergence`): a failure.
    pub divergence: u64,
}

struct State {
    core: CommitCore,
    sinks: Vec<Arc<Sink>>,
    snapshot: Option<Arc<Snapshot>>,
    encoded: Option<Arc<Vec<u8>>>,
    snapshots: u64,
    /// Per committed snapshot: (stall in ns, state bytes).
    snapshot_stalls: Vec<(u64, usize)>,
    released: u64,
    after_failover: bool,
    record: Option<Vec<Released>>,
    errors: Vec<String>,
    /// Released packets on their way to sink `staged_sink`: the first
    /// `staged` of `staging` (the packets are kept to reuse their memory).
    staging: Vec<Packet>,
    staged: usize,
    staged_sink: u16,
    /// Packets of released outputs, kept for outputs to be held next.
    spare_packets: Vec<Packet>,
    /// When outputs were last written to a sink.
    last_release: Option<Instant>,
}

/// Messages the logger thread's queue holds before a worker shipping to
/// it waits.
const QUEUE: usize = 256;

/// Packets of released outputs kept for reuse at most.
const SPARE_PACKETS: usize = 4096;

/// The output logger.
pub struct OutputLogger {
    state: Mutex<State>,
    /// Largest snapshot (encoded bytes) a master may announce.
    max_snapshot: std::sync::atomic::AtomicU64,
}

impl OutputLogger {
    /// An output logger for `nworkers` workers writing to `sinks`.
    pub fn new(nworkers: usize, sinks: Vec<Arc<Sink>>) -> OutputLogger {
        OutputLogger {
            state: Mutex::new(State {
                core: CommitCore::new(nworkers),
                sinks,
                snapshot: None,
                encoded: None,
                snapshots: 0,
                snapshot_stalls: Vec::new(),
                released: 0,
                after_failover: false,
                record: None,
                errors: Vec::new(),
                staging: Vec::new(),
                spare_packets: Vec::new(),
                last_release: None,
                staged: 0,
                staged_sink: 0,
            }),
            max_snapshot: std::sync::atomic::AtomicU64::new(crate::wire::DEFAULT_MAX_SNAPSHOT),
        }
    }

    /// Refuse snapshots whose declared length is over `bytes` (the
    /// default is [`crate::wire::DEFAULT_MAX_SNAPSHOT`]): a serving role
    /// that announces more is a protocol error, and nothing is reserved
    /// for it.
    pub fn set_max_snapshot(&self, bytes: u64) {
        self.max_snapshot
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// The largest snapshot accepted, in bytes.
    pub fn max_snapshot(&self) -> u64 {
        self.max_snapshot.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keep a record of every released output (for checks).
    pub fn record_releases(&self) {
        self.state.lock().record = Some(Vec::new());
    }

    /// When outputs were last written to a sink (`None`: never).
    pub fn last_release(&self) -> Option<Instant> {
        self.state.lock().last_release
    }

    /// Take the release record.
    pub fn take_releases(&self) -> Vec<Released> {
        self.state
            .lock()
            .record
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// A worker's batch of outputs. Outputs that arrive committed (their
    /// log records came first) go straight to their sink; the others are
    /// held by the commit core until they commit.
    pub fn handle_batch(&self, outs: &OutputBatch) {
        let mut st = self.state.lock();
        st.outputs(outs);
        st.release();
    }

    /// A worker's records and outputs of one batch, under one lock.
    pub fn handle_shipment(&self, worker: usize, sh: &Shipment) {
        let mut st = self.state.lock();
        st.log_numbered(worker, &sh.records);
        st.outputs(&sh.outputs);
        st.release();
    }

    /// A snapshot from the master: stored, then committed (logs before its
    /// cut are dropped). Returns the cut (first packet id not reflected), for
    /// the input logger.
    pub fn handle_snapshot(&self, snap: Snapshot) -> u64 {
        self.store(snap, None)
    }

    /// [`OutputLogger::handle_snapshot`] for a snapshot that arrived
    /// encoded: the bytes are kept to hand to a replica as they are, so
    /// `snap` may be a summary without its state
    /// ([`Snapshot::decode_summary`]).
    pub fn handle_snapshot_encoded(&self, snap: Snapshot, encoded: Arc<Vec<u8>>) -> u64 {
        self.store(snap, Some(encoded))
    }

    fn store(&self, snap: Snapshot, encoded: Option<Arc<Vec<u8>>>) -> u64 {
        let mut st = self.state.lock();
        let cut: Vec<(u64, u64)> = snap
            .workers
            .iter()
            .map(|w| (w.next_packet.saturating_sub(1), w.last_seq))
            .collect();
        st.core.handle_snapshot_committed(&cut);
        let next = snap.next_packet;
        let bytes = encoded.as_ref().map_or(snap.state_bytes(), |e| e.len());
        st.snapshot_stalls.push((snap.stall_ns, bytes));
        st.snapshot = Some(Arc::new(snap));
        st.encoded = encoded;
        st.snapshots += 1;
        st.release();
        next
    }

    /// The master died: drop what can never commit and hand out what a
    /// replica needs. Outputs arriving afterwards are checked against what
    /// already left.
    pub fn begin_failover(&self) -> Takeover {
        let mut st = self.state.lock();
        let dropped = st.core.begin_failover();
        st.after_failover = true;
        let n = st.core.nworkers();
        Takeover {
            snapshot: st.snapshot.clone(),
            encoded: st.encoded.clone(),
            logs: (0..n)
                .map(|w| st.core.logs_since_cut(w).collect())
                .collect(),
            dropped,
            frontier: st.core.frontier().to_vec(),
        }
    }

    /// Flush every sink.
    pub fn flush(&self) {
        let st = self.state.lock();
        for s in &st.sinks {
            if let Err(e) = s.egress.lock().flush() {
                s.error.lock().get_or_insert_with(|| e.to_string());
            }
        }
    }

    /// Counters.
    pub fn stats(&self) -> OutputLoggerStats {
        let st = self.state.lock();
        let cs = st.core.stats();
        OutputLoggerStats {
            released: st.released,
            held: st.core.held(),
            suppressed: cs.suppressed,
            snapshots: st.snapshots,
            stored_records: st.core.stored_records(),
            errors: st.errors.len() as u64,
            divergence: cs.divergence,
        }
    }

    /// The first keys (packet id, ordinal) of divergent outputs (see
    /// [`OutputLoggerStats::divergence`]).
    pub fn diverged(&self) -> Vec<(u64, u32)> {
        self.state.lock().core.diverged().to_vec()
    }

    /// Per committed snapshot: how long the workers stalled for it (ns)
    /// and how many bytes of state it holds.
    pub fn snapshot_stalls(&self) -> Vec<(u64, usize)> {
        self.state.lock().snapshot_stalls.clone()
    }

    /// Log records accepted so far.
    pub fn records(&self) -> u64 {
        self.state.lock().core.stats().records
    }

    /// Protocol errors seen.
    pub fn errors(&self) -> Vec<String> {
        self.state.lock().errors.clone()
    }
}

/// Packets staged for one sink before an egress call.
const STAGE_MAX: usize = 256;

impl State {
    /// A worker's numbered records; a protocol error is kept.
    fn log_numbered(&mut self, worker: usize, records: &[(u64, LogRecord)]) {
        if let Err(e) = self.core.handle_log_numbered(worker, records) {
            self.errors.push(e.to_string());
        }
    }

    /// Hand a batch of outputs to the core (or straight to egress).
    fn outputs(&mut self, outs: &OutputBatch) {
        // Outputs the records just handed in committed go first: with
        // none left ready, the core lets a new output that is already
        // committed go at once instead of holding it behind them.
        self.stage_ready();
        for o in outs.iter() {
            if !self.after_failover {
                let key = (o.sink, o.packet_id, o.ordinal);
                if let Some(send) = self.core.release_at_once(key, o.dv, o.data) {
                    if send {
                        self.stage(o.sink, o.packet_id, o.ordinal, o.ts_ns, o.data);
                    }
                    continue;
                }
            }
            let o = HeldOutput::from(
                o.to_owned_in(
                    self.spare_packets
                        .pop()
                        .unwrap_or_else(|| Packet::from_bytes(&[])),
                ),
            );
            if self.after_failover {
                self.core.handle_replayed_output(o);
            } else if let Err(e) = self.core.try_handle_output(o) {
                self.errors.push(e.to_string());
            }
        }
    }

    /// Write every output the core lets go, in release order, then flush
    /// the staged packets to their sink.
    fn release(&mut self) {
        self.stage_ready();
        self.flush_staged();
    }

    /// Stage every output the core lets go, in release order.
    fn stage_ready(&mut self) {
        while let Some(mut o) = self.core.poll_release() {
            // The held packet takes the staging slot's place, and the
            // slot's packet is kept for an output to be held later.
            let i = self.stage_slot(o.sink, o.packet_id, o.ordinal, o.pkt.data());
            std::mem::swap(&mut self.staging[i], &mut o.pkt);
            if self.spare_packets.len() < SPARE_PACKETS {
                self.spare_packets.push(o.pkt);
            }
        }
    }

    /// Queue one released output for its sink (one egress call per run of
    /// outputs to the same sink).
    fn stage(&mut self, sink: u16, packet_id: u64, ordinal: u32, ts_ns: u64, data: &[u8]) {
        let i = self.stage_slot(sink, packet_id, ordinal, data);
        let p = &mut self.staging[i];
        p.reset_from(data);
        p.anno.id = packet_id;
        p.anno.ts_ns = ts_ns;
    }

    /// Count (and record, if asked) one released output and give it the
    /// next staging slot, flushing the staged packets first if they go to
    /// another sink or fill the stage. Returns the slot.
    fn stage_slot(&mut self, sink: u16, packet_id: u64, ordinal: u32, data: &[u8]) -> usize {
        self.released += 1;
        if let Some(r) = &mut self.record {
            r.push(Released {
                sink,
                packet_id,
                ordinal,
                data: data.to_vec(),
            });
        }
        if self.staged > 0 && (sink != self.staged_sink || self.staged >= STAGE_MAX) {
            self.flush_staged();
        }
        self.staged_sink = sink;
        if self.staged == self.staging.len() {
            self.staging.push(Packet::from_bytes(&[]));
        }
        self.staged += 1;
        self.staged - 1
    }

    fn flush_staged(&mut self) {
        if self.staged == 0 {
            return;
        }
        if let Some(sink) = self.sinks.get(self.staged_sink as usize) {
            if let Err(e) = sink.egress.lock().write(&self.staging[..self.staged]) {
                sink.error.lock().get_or_insert_with(|| e.to_string());
            }
            self.last_release = Some(Instant::now());
        }
        self.staged = 0;
    }
}

impl FtLink for OutputLogger {
    fn void_records(&self, worker: usize, after: u64, through: u64) {
        self.state.lock().core.void_records(worker, after, through);
    }
    fn ship_log(&self, worker: usize, records: Vec<(u64, LogRecord)>) {
        let mut st = self.state.lock();
        st.log_numbered(worker, &records);
        st.release();
    }
    fn ship_outputs(&self, _worker: usize, outputs: OutputBatch) {
        self.handle_batch(&outputs);
    }
    fn store_snapshot(&self, snapshot: Snapshot) {
        self.handle_snapshot(snapshot);
    }
    fn ship(&self, worker: usize, sh: Shipment) {
        self.handle_shipment(worker, &sh);
    }
}

enum LinkMsg {
    Ship(usize, Shipment),
    Log(usize, Vec<(u64, LogRecord)>),
    Outputs(OutputBatch),
    Snapshot(Snapshot),
}

/// An [`OutputLogger`] on a thread of its own: workers hand their records,
/// outputs and snapshots over a channel and go on, as they would to an
/// output logger in another process; commit, release and sink writes
/// happen on the logger's thread, in arrival order.
pub struct ThreadedOutputLogger {
    tx: parking_lot::Mutex<Option<crossbeam_channel::Sender<LinkMsg>>>,
    /// Emptied shipments on their way back to the workers.
    spares: Vec<crossbeam_channel::Receiver<Shipment>>,
    handle: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    ol: Arc<OutputLogger>,
    /// A snapshot round is open (see [`FtLink::snapshot_round`]).
    round_open: Arc<AtomicBool>,
}

impl ThreadedOutputLogger {
    /// Start the logger thread around `ol`. When its queue is empty it
    /// polls it for `poll` (yielding the CPU between looks) before it
    /// sleeps: waking a sleeping thread costs 13 µs or more on a VM, which
    /// at low load every output would wait for (see `recv_polling`).
    pub fn start(ol: Arc<OutputLogger>, poll: Duration) -> ThreadedOutputLogger {
        // Bounded: a worker that gets ahead of the logger waits (backpressure)
        // instead of growing a backlog that costs memory and fresh pages.
        let (tx, rx) = crossbeam_channel::bounded::<LinkMsg>(QUEUE);
        let nworkers = ol.state.lock().core.nworkers();
        // Every shipment in flight fits back (none is freed only to be
        // allocated again), each in the pool of the worker that filled it.
        let (spare_txs, spares): (Vec<_>, Vec<_>) = (0..nworkers)
            .map(|_| crossbeam_channel::bounded::<Shipment>(QUEUE + 64))
            .unzip();
        let inner = ol.clone();
        let round_open = Arc::new(AtomicBool::new(false));
        let round = round_open.clone();
        let handle = std::thread::Builder::new()
            .name("ftmb-output-logger".into())
            .spawn(move || {
                while let Some(m) = recv_polling(&rx, poll) {
                    // During a snapshot round, a worker this thread took the
                    // core from may be the one the others wait for at the
                    // gate: it gets the core back between two messages.
                    if round.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                    match m {
                        LinkMsg::Ship(w, mut sh) => {
                            inner.handle_shipment(w, &sh);
                            sh.clear();
                            if let Some(tx) = spare_txs.get(w) {
                                let _ = tx.try_send(sh);
                            }
                        }
                        LinkMsg::Log(w, recs) => inner.ship_log(w, recs),
                        LinkMsg::Outputs(outs) => inner.ship_outputs(0, outs),
                        LinkMsg::Snapshot(s) => inner.store_snapshot(s),
                    }
                }
            })
            .expect("spawn output logger thread");
        ThreadedOutputLogger {
            tx: parking_lot::Mutex::new(Some(tx)),
            spares,
            handle: parking_lot::Mutex::new(Some(handle)),
            ol,
            round_open,
        }
    }

    /// Wait until everything sent so far is handled, and stop the thread.
    pub fn finish(&self) -> Arc<OutputLogger> {
        self.tx.lock().take();
        if let Some(h) = self.handle.lock().take() {
            let _ = h.join();
        }
        self.ol.clone()
    }

    fn send(&self, m: LinkMsg) {
        if let Some(tx) = self.tx.lock().as_ref() {
            let _ = tx.send(m);
        }
    }
}

/// The next message of `rx` (`None` once every sender is gone): taken at
/// once if queued, else looked for during `poll` (spinning a little, then
/// yielding the CPU to any other thread that wants it), else waited for
/// asleep.
fn recv_polling<T>(rx: &crossbeam_channel::Receiver<T>, poll: Duration) -> Option<T> {
    use crossbeam_channel::TryRecvError;
    let from = std::time::Instant::now();
    let mut backoff = ftmb_core::spin::Backoff::default();
    loop {
        match rx.try_recv() {
            Ok(m) => return Some(m),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if from.elapsed() < poll => backoff.pause(),
            Err(TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

impl FtLink for ThreadedOutputLogger {
    fn ship_log(&self, worker: usize, records: Vec<(u64, LogRecord)>) {
        self.send(LinkMsg::Log(worker, records));
    }
    fn ship_outputs(&self, _worker: usize, outputs: OutputBatch) {
        self.send(LinkMsg::Outputs(outputs));
    }
    fn store_snapshot(&self, snapshot: Snapshot) {
        self.send(LinkMsg::Snapshot(snapshot));
    }
    fn ship(&self, worker: usize, shipment: Shipment) {
        self.send(LinkMsg::Ship(worker, shipment));
    }
    fn spare(&self, worker: usize) -> Option<Shipment> {
        self.spares.get(worker)?.try_recv().ok()
    }
    fn snapshot_round(&self, open: bool) {
        self.round_open.store(open, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftmb_core::depvec::DepVector;
    use ftmb_core::egress::Egress;
    use ftmb_core::pal::Pal;

    /// What a [`Keep`] egress was given: (packet id, bytes).
    type Kept = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

    /// An egress that keeps what it is given.
    struct Keep(Kept);

    impl Egress for Keep {
        fn write(&mut self, pkts: &[Packet]) -> std::io::Result<()> {
            let mut k = self.0.lock();
            k.extend(pkts.iter().map(|p| (p.anno.id, p.data().to_vec())));
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn kept_sink() -> (Arc<Sink>, Kept) {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::new(Sink {
            element: "out".into(),
            egress: Mutex::new(Box::new(Keep(kept.clone()))),
            error: Mutex::new(None),
        });
        (sink, kept)
    }

    fn pal(packet: u64, count: u64) -> LogRecord {
        LogRecord::Pal(Pal {
            packet,
            var: 0,
            count,
        })
    }

    /// A shipment of worker `w`: its records from `first_seq`, then one
    /// output per (packet id, dependency vector, bytes).
    fn shipment(
        w: usize,
        first_seq: u64,
        records: &[LogRecord],
        outs: &[(u64, &[u64], &[u8])],
    ) -> Shipment {
        let mut sh = Shipment {
            records: (first_seq..).zip(records.iter().copied()).collect(),
            outputs: OutputBatch::default(),
        };
        for &(id, dv, data) in outs {
            let mut p = Packet::from_bytes(data);
            p.anno.id = id;
            sh.outputs
                .push((0, 0), &p, &DepVector::from_entries(dv), (w, 0));
        }
        sh
    }

    /// Held outputs reuse the packets of released ones, and outputs a
    /// shipment's records commit leave before that shipment's own: each
    /// leaves once, with its own bytes, whatever length they had before.
    #[test]
    fn held_outputs_leave_with_their_own_bytes_in_commit_order() {
        let (sink, kept) = kept_sink();
        let ol = OutputLogger::new(2, vec![sink]);
        assert!(ol.last_release().is_none());
        let before = Instant::now();
        let mut want = Vec::new();
        for round in 0..50u64 {
            let (a, b) = (2 * round + 1, 2 * round + 2);
            let bytes_a = vec![a as u8; 20 + (round as usize * 37) % 90];
            let bytes_b = vec![b as u8; 10 + (round as usize * 53) % 120];
            // Worker 1's output of packet `b` depends on worker 0's record
            // `round + 1`, not shipped yet: held.
            ol.handle_shipment(
                1,
                &shipment(
                    1,
                    round + 1,
                    &[pal(b, 2 * round + 2)],
                    &[(b, &[round + 1, round + 1], &bytes_b)],
                ),
            );
            // Worker 0 ships that record with its own output of packet
            // `a` (a lower id), committed on arrival.
            ol.handle_shipment(
                0,
                &shipment(
                    0,
                    round + 1,
                    &[pal(a, 2 * round + 1)],
                    &[(a, &[round + 1], &bytes_a)],
                ),
            );
            want.push((b, bytes_b));
            want.push((a, bytes_a));
        }
        assert_eq!(*kept.lock(), want);
        assert!(ol.last_release().is_some_and(|t| t >= before));
        assert_eq!(ol.stats().held, 0);
        assert!(ol.errors().is_empty(), "{:?}", ol.errors());
    }

    /// After a failover, a replica's output under a released key leaves
    /// no second time; with the same bytes it is a plain duplicate, with
    /// other bytes a divergence, counted and its key kept, and the sink
    /// still has only the master's bytes. The same holds before a
    /// failover, for an output re-sent on the fast path.
    #[test]
    fn a_replayed_output_with_other_bytes_is_counted_as_a_divergence() {
        let (sink, kept) = kept_sink();
        let ol = OutputLogger::new(1, vec![sink]);
        ol.handle_shipment(
            0,
            &shipment(
                0,
                1,
                &[pal(1, 1), pal(2, 2)],
                &[(1, &[1], b"one"), (2, &[2], b"two"), (3, &[2], b"three")],
            ),
        );
        // Re-sent with other bytes before any failover.
        ol.handle_shipment(0, &shipment(0, 3, &[], &[(3, &[2], b"thrEe")]));
        assert_eq!(ol.stats().divergence, 1);
        let take = ol.begin_failover();
        assert_eq!(take.frontier, vec![2]);
        // The replica: packet 1 as the master made it, packet 2 not, and
        // packet 4 new.
        ol.handle_shipment(
            0,
            &shipment(
                0,
                3,
                &[pal(4, 3)],
                &[(1, &[1], b"one"), (2, &[2], b"twO"), (4, &[3], b"four")],
            ),
        );
        let st = ol.stats();
        assert_eq!((st.released, st.suppressed, st.divergence), (4, 3, 2));
        assert_eq!(ol.diverged(), vec![(3, 0), (2, 0)]);
        let ids: Vec<(u64, Vec<u8>)> = kept.lock().clone();
        assert_eq!(
            ids,
            vec![
                (1, b"one".to_vec()),
                (2, b"two".to_vec()),
                (3, b"three".to_vec()),
                (4, b"four".to_vec())
            ]
        );
        assert!(ol.errors().is_empty(), "{:?}", ol.errors());
    }

    /// The logger thread hands each emptied shipment back to the worker
    /// that filled it, with the memory it had grown.
    #[test]
    fn shipments_go_back_to_the_worker_that_filled_them() {
        let (sink, kept) = kept_sink();
        let link =
            ThreadedOutputLogger::start(Arc::new(OutputLogger::new(2, vec![sink])), Duration::ZERO);
        let records: Vec<LogRecord> = (1..=500).map(|s| pal(s, s)).collect();
        link.ship(1, shipment(1, 1, &records, &[(7, &[0, 500], &[1, 2, 3])]));
        link.ship(0, shipment(0, 1, &records[..1], &[]));
        link.finish();
        let back = link.spare(1).expect("worker 1's shipment back");
        assert!(back.records.is_empty() && back.outputs.is_empty());
        assert!(back.records.capacity() >= 500);
        assert!(link.spare(1).is_none());
        assert!(link.spare(0).is_some_and(|s| s.records.is_empty()));
        assert!(link.spare(2).is_none());
        assert_eq!(kept.lock().len(), 1);
    }

    /// docs/design.md, section 4, the output commit invariant, checked
    /// after every single shipment: the outputs that have left are exactly
    /// those whose dependency vector names only records already stored
    /// (`DV <= MAX`), each once. An output released one record early, or
    /// held one record late, fails it. Workers ship records alone, outputs
    /// alone, or records then outputs (as a worker's batch does); outputs
    /// may name records that have not arrived yet, or none at all.
    #[test]
    fn outputs_leave_exactly_when_every_record_their_vector_names_has_arrived() {
        use ftmb_core::rng::Rng;
        use std::collections::BTreeSet;
        for seed in 0..40u64 {
            let mut rng = Rng::new(seed);
            let nw = 1 + rng.below(4) as usize;
            let (sink, kept) = kept_sink();
            let ol = OutputLogger::new(nw, vec![sink]);
            // Records stored per worker (MAX[w]), as this test counts them.
            let mut stored = vec![0u64; nw];
            // Every output handed over: (packet id, dependency vector).
            let mut given: Vec<(u64, Vec<u64>)> = Vec::new();
            let mut id = 0u64;
            let mut released_some = 0usize;
            let mut held_some = 0usize;
            for step in 0..400 {
                let w = rng.below(nw as u64) as usize;
                let k = match rng.below(3) {
                    0 => 0,
                    _ => 1 + rng.below(3),
                };
                let with_output = k == 0 || rng.below(2) == 0;
                let records: Vec<LogRecord> =
                    (0..k).map(|i| pal(id + 1, stored[w] + i + 1)).collect();
                let mut outs = Vec::new();
                if with_output {
                    id += 1;
                    // Each entry: nothing, a record stored (or stored by
                    // this very shipment), or one a few records ahead.
                    let dv: Vec<u64> = (0..nw)
                        .map(|x| {
                            let have = stored[x] + if x == w { k } else { 0 };
                            match rng.below(4) {
                                0 => 0,
                                1 => have.saturating_sub(rng.below(3)),
                                2 => have + 1,
                                _ => have + 1 + rng.below(4),
                            }
                        })
                        .collect();
                    let len = rng.below(nw as u64 + 1) as usize;
                    let dv = dv[..len.max(dv.iter().rposition(|&e| e > 0).map_or(0, |p| p + 1))]
                        .to_vec();
                    given.push((id, dv));
                    outs.push(id);
                }
                let bytes = [seed as u8, step as u8];
                let out_refs: Vec<(u64, &[u64], &[u8])> = outs
                    .iter()
                    .map(|&i| (i, given.last().map_or(&[][..], |g| &g.1[..]), &bytes[..]))
                    .collect();
                ol.handle_shipment(w, &shipment(w, stored[w] + 1, &records, &out_refs));
                stored[w] += k;
                // What must have left by now: every output whose vector the
                // stored records cover, and nothing else, each once.
                let want: BTreeSet<u64> = given
                    .iter()
                    .filter(|(_, dv)| dv.iter().enumerate().all(|(x, &e)| e <= stored[x]))
                    .map(|(i, _)| *i)
                    .collect();
                let left: Vec<u64> = kept.lock().iter().map(|(i, _)| *i).collect();
                let left_set: BTreeSet<u64> = left.iter().copied().collect();
                assert_eq!(left.len(), left_set.len(), "seed {seed} step {step}: twice");
                let early: Vec<_> = left_set.difference(&want).collect();
                let late: Vec<_> = want.difference(&left_set).collect();
                assert!(
                    early.is_empty() && late.is_empty(),
                    "seed {seed} step {step}: released early {early:?}, held late {late:?}, \
                     stored {stored:?}"
                );
                released_some = left.len();
                held_some += given.len() - want.len();
            }
            // Every case happened: some left, some were still held.
            assert!(released_some > 0, "seed {seed}: nothing released");
            assert!(held_some > 0, "seed {seed}: nothing ever held");
            assert!(ol.errors().is_empty(), "{:?}", ol.errors());
        }
    }
}
