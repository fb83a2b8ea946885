//! The output logger's commit core (docs/design.md, sections 4 and 6), sans I/O.
//!
//! Inputs are `handle_*` calls, outputs are `poll_*` calls; the core never
//! reads a clock or touches a socket, so the same code runs in the live
//! output logger, in simulation and in tests.
//!
//! # The output commit contract
//!
//! No output leaves the output logger before every log record that
//! determines it is stored there. The shell around [`CommitCore`] keeps it
//! in these steps:
//!
//! 1. **Receive** a worker's log batch and **persist** it (append it to the
//!    output logger's PAL store; `fsync` too if the store must survive the
//!    output logger's own crash).
//! 2. Only then call [`CommitCore::handle_log`]. It checks that the batch
//!    continues the worker's log (a gap or an overlap is an error: the link
//!    lost or repeated data, and nothing may be released on its strength),
//!    keeps the records for replay and advances `MAX[w]`.
//! 3. Hand every output from the master to [`CommitCore::handle_output`]
//!    (outputs may arrive before or after the log records they depend on).
//! 4. Drain [`CommitCore::poll_release`] and **send** each returned output to
//!    egress. An output is returned only once `DV <= MAX` component-wise,
//!    each output on its own (no epochs, no global flush), so it is returned
//!    only after step 1 completed for every record it depends on.
//! 5. When a snapshot is stored, call
//!    [`CommitCore::handle_snapshot_committed`] with its cut: log records at
//!    or below the cut are dropped (the snapshot subsumes them) and
//!    `MAX[w]` is raised to the cut if it was below.
//! 6. On failover: call [`CommitCore::begin_failover`], which drops every
//!    output still waiting for records that the dead master never shipped
//!    (they can never commit; the replica re-creates them). Outputs already
//!    committed but not yet polled stay and are released. Then feed the
//!    replica's outputs through [`CommitCore::handle_replayed_output`]:
//!    those already released (or already committed and queued) are
//!    suppressed, the rest are held and released as usual. A suppressed
//!    output is compared with the one released (or queued) under its key
//!    by sink and bytes (a 64-bit fingerprint): a difference is a
//!    **divergence**, counted ([`CommitStats::divergence`]) and its key
//!    kept ([`CommitCore::diverged`]); the output that left stays the only
//!    one sent. The replica
//!    ships only log records past the stored prefix (`MAX[w] + 1` onwards).
//!
//! # Cost
//!
//! A waiting output is indexed under its *first unsatisfied* dependency
//! `(w, DV[w])`, in a per-worker min-heap. A log batch that moves `MAX[w]`
//! from `a` to `b` pops exactly the outputs indexed at `(w, a+1..=b)` and
//! re-indexes each under its next unsatisfied entry (or moves it to the
//! ready queue). Each output moves at most once per worker it depends on, so
//! holding `N` outputs costs `O(W log N)` per output, never an `O(N)` scan
//! per batch.

use crate::record_log::RecordLog;
use crate::released::{fingerprint, ReleasedSet};
use ftmb_core::depvec::DepVector;
use ftmb_core::pal::LogRecord;
use ftmb_core::Packet;
use slab::Slab;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A committed output in the ready queue, ordered by (packet id, ordinal,
/// arrival): the last is its key in [`CommitCore::held`].
type Ready = (u64, u32, u64, usize);

/// A waiting output in its worker's heap: (the sequence it waits for, uid,
/// key in the held slab), lowest sequence first.
type Waiting = (u64, u64, usize);

/// An output packet held by the output logger until it commits. The packet
/// is moved, not copied, from the worker to the sink; its timestamp is
/// `pkt.anno.ts_ns`.
#[derive(Clone, Debug)]
pub struct HeldOutput {
    /// Output sink (egress port) index.
    pub sink: u16,
    /// Id of the input packet that produced it.
    pub packet_id: u64,
    /// Its ordinal among that input packet's outputs.
    pub ordinal: u32,
    /// What it depends on.
    pub dv: DepVector,
    /// The packet.
    pub pkt: Packet,
}

impl PartialEq for HeldOutput {
    fn eq(&self, o: &HeldOutput) -> bool {
        (self.sink, self.packet_id, self.ordinal, self.pkt.anno.ts_ns)
            == (o.sink, o.packet_id, o.ordinal, o.pkt.anno.ts_ns)
            && self.dv == o.dv
            && self.pkt.data() == o.pkt.data()
    }
}
impl Eq for HeldOutput {}

impl From<ftmb_core::ft::TaggedOutput> for HeldOutput {
    fn from(t: ftmb_core::ft::TaggedOutput) -> HeldOutput {
        HeldOutput {
            sink: t.sink,
            packet_id: t.packet_id,
            ordinal: t.ordinal,
            dv: t.dv,
            pkt: t.pkt,
        }
    }
}

impl From<ftmb_core::ft::OutputRef<'_>> for HeldOutput {
    fn from(o: ftmb_core::ft::OutputRef<'_>) -> HeldOutput {
        o.to_owned().into()
    }
}

/// A log batch or output the core refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// A worker index at or above the worker count.
    #[error("worker {worker} out of range (the core has {nworkers} workers)")]
    UnknownWorker {
        /// The index given.
        worker: usize,
        /// Workers the core was built for.
        nworkers: usize,
    },
    /// Records are missing before this batch.
    #[error("gap in worker {worker}'s log: expected sequence {expected}, got {got}")]
    Gap {
        /// The worker.
        worker: usize,
        /// The next sequence the core expected.
        expected: u64,
        /// The batch's first sequence.
        got: u64,
    },
    /// The batch repeats records already received.
    #[error("overlap in worker {worker}'s log: expected sequence {expected}, got {got}")]
    Overlap {
        /// The worker.
        worker: usize,
        /// The next sequence the core expected.
        expected: u64,
        /// The batch's first sequence.
        got: u64,
    },
    /// Sequence numbers would overflow `u64`.
    #[error("sequence overflow in worker {worker}'s log")]
    SeqOverflow {
        /// The worker.
        worker: usize,
    },
    /// An output depends on a worker the core does not know: it could
    /// never commit.
    #[error("output ({packet_id}, {ordinal}) depends on worker {worker}, out of range")]
    DvOutOfRange {
        /// The output's input packet id.
        packet_id: u64,
        /// The output's ordinal.
        ordinal: u32,
        /// The offending worker index.
        worker: usize,
    },
}

/// Counters for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Log records accepted.
    pub records: u64,
    /// Outputs handed in (live and replayed).
    pub outputs: u64,
    /// Outputs released.
    pub released: u64,
    /// Outputs dropped by `begin_failover`.
    pub dropped_on_failover: u64,
    /// Replayed or repeated outputs suppressed as duplicates.
    pub suppressed: u64,
    /// Outputs refused as unsatisfiable (see [`CommitError::DvOutOfRange`]).
    pub unsatisfiable: u64,
    /// Outputs suppressed as duplicates whose sink or bytes differ from
    /// the output released (or queued) under the same key: a replay that
    /// departed from what the master sent. Never zero after a correct
    /// failover is a failure.
    pub divergence: u64,
}

/// Keys of divergent outputs kept for reports (the first ones).
pub const DIVERGED_KEPT: usize = 8;

/// The output logger's commit state. See the module documentation for the
/// contract and the call order.
#[derive(Debug)]
pub struct CommitCore {
    /// MAX[w]: highest sequence received (or subsumed by a snapshot).
    max: Vec<u64>,
    /// Each worker's last committed snapshot cut sequence.
    floor: Vec<u64>,
    /// Log records above the cut, for the replica.
    logs: Vec<RecordLog>,
    /// Every output held, waiting or ready. The indexes below hold its key
    /// here, not the output: re-indexing and the ready queue's reordering
    /// move a few words per output, not the packet and its vector.
    held: Slab<HeldOutput>,
    /// Waiting outputs, indexed by first unsatisfied (seq, uid) per worker.
    waiting: Vec<BinaryHeap<Reverse<Waiting>>>,
    n_waiting: usize,
    /// Committed outputs not yet polled, lowest (packet id, ordinal) first.
    /// The shell drains it after every call, so it stays small.
    ready: BinaryHeap<Reverse<Ready>>,
    /// Released outputs above `released_floor` (one insert per output:
    /// see [`ReleasedSet`]; snapshots prune it).
    released: ReleasedSet,
    /// Outputs of packets at or below this id are no longer remembered:
    /// every worker's cut is past them, so no replay re-creates them.
    released_floor: u64,
    /// The first [`DIVERGED_KEPT`] divergent (packet id, ordinal) keys.
    diverged: Vec<(u64, u32)>,
    next_uid: u64,
    stats: CommitStats,
}

impl CommitCore {
    /// A core for `nworkers` worker logs, all empty.
    pub fn new(nworkers: usize) -> Self {
        CommitCore {
            max: vec![0; nworkers],
            floor: vec![0; nworkers],
            logs: (0..nworkers).map(|_| RecordLog::default()).collect(),
            held: Slab::new(),
            waiting: (0..nworkers).map(|_| BinaryHeap::new()).collect(),
            n_waiting: 0,
            ready: BinaryHeap::new(),
            released: ReleasedSet::new(),
            released_floor: 0,
            diverged: Vec::new(),
            next_uid: 0,
            stats: CommitStats::default(),
        }
    }

    /// Number of worker logs.
    pub fn nworkers(&self) -> usize {
        self.max.len()
    }

    /// Accept worker `worker`'s records `first_seq, first_seq + 1, ...`
    /// (step 2 of the contract: call only after persisting them).
    ///
    /// The batch must start at `MAX[w] + 1`; an empty batch is a no-op. The
    /// one tolerated overlap is with records a committed snapshot already
    /// subsumed (they are skipped).
    pub fn handle_log(
        &mut self,
        worker: usize,
        first_seq: u64,
        records: &[LogRecord],
    ) -> Result<(), CommitError> {
        self.handle_records(worker, first_seq, records.len(), |log, skip| {
            log.extend(
                records
                    .iter()
                    .enumerate()
                    .skip(skip)
                    .map(|(i, &r)| (first_seq + i as u64, r)),
            )
        })
    }

    /// [`CommitCore::handle_log`] for records as a worker numbered them:
    /// `(sequence, record)` pairs with consecutive sequences, the batch
    /// starting at the first pair's.
    pub fn handle_log_numbered(
        &mut self,
        worker: usize,
        records: &[(u64, LogRecord)],
    ) -> Result<(), CommitError> {
        let first = records.first().map_or(0, |&(s, _)| s);
        self.handle_records(worker, first, records.len(), |log, skip| {
            log.extend_from_slice(&records[skip..])
        })
    }

    /// Check that `n` records from `first_seq` follow what `worker` sent
    /// before, have `store` append them to its log less the first `skip`
    /// (records a snapshot already subsumed), and raise its MAX.
    fn handle_records(
        &mut self,
        worker: usize,
        first_seq: u64,
        n: usize,
        store: impl FnOnce(&mut RecordLog, usize),
    ) -> Result<(), CommitError> {
        let nworkers = self.nworkers();
        if worker >= nworkers {
            return Err(CommitError::UnknownWorker { worker, nworkers });
        }
        if n == 0 {
            return Ok(());
        }
        let expected = self.max[worker] + 1;
        let last = first_seq
            .checked_add(n as u64 - 1)
            .filter(|_| first_seq > 0)
            .ok_or(CommitError::SeqOverflow { worker })?;
        let skip = if first_seq > expected {
            return Err(CommitError::Gap {
                worker,
                expected,
                got: first_seq,
            });
        } else if first_seq < expected {
            // Only records a snapshot subsumed (MAX raised to the cut by
            // handle_snapshot_committed) may be repeated.
            if self.max[worker] != self.floor[worker] {
                return Err(CommitError::Overlap {
                    worker,
                    expected,
                    got: first_seq,
                });
            }
            if last < expected {
                return Ok(());
            }
            (expected - first_seq) as usize
        } else {
            0
        };
        store(&mut self.logs[worker], skip);
        self.stats.records += (n - skip) as u64;
        self.advance(worker, last);
        Ok(())
    }

    /// Raise MAX[w] to `to` and re-index the outputs waiting on it.
    fn advance(&mut self, w: usize, to: u64) {
        if to <= self.max[w] {
            return;
        }
        self.max[w] = to;
        // Re-placing an output never indexes it under (w, <= to) again.
        while let Some(&Reverse((s, uid, key))) = self.waiting[w].peek() {
            if s > to {
                break;
            }
            self.waiting[w].pop();
            self.n_waiting -= 1;
            self.place(uid, key);
        }
    }

    /// First (worker, seq) of `dv` not covered by MAX.
    fn first_unsatisfied(&self, dv: &DepVector) -> Result<Option<(usize, u64)>, usize> {
        self.first_unsatisfied_in(dv.entries())
    }

    fn first_unsatisfied_in(&self, dv: &[u64]) -> Result<Option<(usize, u64)>, usize> {
        for (w, &s) in dv.iter().enumerate() {
            if s == 0 {
                continue;
            }
            match self.max.get(w) {
                None => return Err(w),
                Some(&m) if s > m => return Ok(Some((w, s))),
                Some(_) => {}
            }
        }
        Ok(None)
    }

    /// Index `out` under its first unsatisfied dependency, or queue it.
    fn place(&mut self, uid: u64, key: usize) {
        let Some(out) = self.held.get(key) else {
            return;
        };
        match self.first_unsatisfied(&out.dv) {
            Ok(Some((w, s))) => {
                self.waiting[w].push(Reverse((s, uid, key)));
                self.n_waiting += 1;
            }
            // Out-of-range entries were refused on entry.
            Ok(None) | Err(_) => {
                let r: Ready = (out.packet_id, out.ordinal, uid, key);
                self.ready.push(Reverse(r));
            }
        }
    }

    /// Hold an output until it commits (step 3). An output that depends on
    /// a worker index out of range could never commit: it is refused and
    /// counted (see [`CommitCore::try_handle_output`] to get the error).
    pub fn handle_output(&mut self, out: HeldOutput) {
        let _ = self.try_handle_output(out);
    }

    /// [`CommitCore::handle_output`], reporting a refused output.
    pub fn try_handle_output(&mut self, out: HeldOutput) -> Result<(), CommitError> {
        self.stats.outputs += 1;
        if let Err(worker) = self.first_unsatisfied(&out.dv) {
            self.stats.unsatisfiable += 1;
            return Err(CommitError::DvOutOfRange {
                packet_id: out.packet_id,
                ordinal: out.ordinal,
                worker,
            });
        }
        let uid = self.next_uid;
        self.next_uid += 1;
        let key = self.held.insert(out);
        self.place(uid, key);
        Ok(())
    }

    /// The fast path of steps 3 and 4 for an output that arrives already
    /// committed (its records came first, as a master ships them): if
    /// nothing is queued and `dv` is covered by MAX, count the output as
    /// handed in and released without holding it, and return true when it
    /// must be sent (false: a duplicate, suppressed, and compared with
    /// the output released under its key). `sink` and `data` are the
    /// output's. Returns `None` when the output does not qualify; hand it
    /// to [`CommitCore::try_handle_output`] then. Release order differs
    /// from the held path only in that such outputs leave in arrival order.
    pub fn release_at_once(
        &mut self,
        (sink, packet_id, ordinal): (u16, u64, u32),
        dv: &[u64],
        data: &[u8],
    ) -> Option<bool> {
        if !self.ready.is_empty() || !matches!(self.first_unsatisfied_in(dv), Ok(None)) {
            return None;
        }
        self.stats.outputs += 1;
        Some(self.first_release(packet_id, ordinal, fingerprint(sink, data)))
    }

    /// Whether (packet id, ordinal) is released for the first time now
    /// (remembered with its fingerprint `fp`, counted as released) or was
    /// released already (counted as suppressed, and as a divergence if
    /// `fp` differs). Outputs at or below the released floor are not
    /// remembered: no replay re-creates them.
    fn first_release(&mut self, packet_id: u64, ordinal: u32, fp: u64) -> bool {
        if packet_id > self.released_floor {
            if let Some(was) = self.released.insert(packet_id, ordinal, fp) {
                self.stats.suppressed += 1;
                self.compare(packet_id, ordinal, was, fp);
                return false;
            }
        }
        self.stats.released += 1;
        true
    }

    /// Count a divergence if an output's fingerprint `fp` differs from
    /// `was`, the one that left (or is queued) under the same key.
    fn compare(&mut self, packet_id: u64, ordinal: u32, was: u64, fp: u64) {
        if was != fp {
            self.stats.divergence += 1;
            if self.diverged.len() < DIVERGED_KEPT {
                self.diverged.push((packet_id, ordinal));
            }
        }
    }

    /// The first [`DIVERGED_KEPT`] keys (packet id, ordinal) of divergent
    /// outputs (see [`CommitStats::divergence`]).
    pub fn diverged(&self) -> &[(u64, u32)] {
        &self.diverged
    }

    /// The next committed output to send (step 4), lowest (packet id,
    /// ordinal) first among the committed ones. An output with the same
    /// (packet id, ordinal) as one already released is never returned twice.
    pub fn poll_release(&mut self) -> Option<HeldOutput> {
        while let Some(Reverse((packet_id, ordinal, _, key))) = self.ready.pop() {
            let Some(out) = self.held.try_remove(key) else {
                continue;
            };
            let fp = fingerprint(out.sink, out.pkt.data());
            if self.first_release(packet_id, ordinal, fp) {
                return Some(out);
            }
        }
        None
    }

    /// MAX: per worker, the highest sequence stored (or subsumed by a
    /// committed snapshot).
    pub fn frontier(&self) -> &[u64] {
        &self.max
    }

    /// Outputs held: waiting for log records or committed and not polled.
    pub fn held(&self) -> usize {
        self.n_waiting + self.ready.len()
    }

    /// Committed outputs waiting to be polled.
    pub fn ready(&self) -> usize {
        self.ready.len()
    }

    /// Counters.
    pub fn stats(&self) -> CommitStats {
        self.stats
    }

    /// Log records stored over all workers.
    pub fn stored_records(&self) -> usize {
        self.logs.iter().map(RecordLog::len).sum()
    }

    /// Released outputs remembered for duplicate suppression.
    pub fn remembered_releases(&self) -> usize {
        self.released.len()
    }

    /// A snapshot with this cut is stored (step 5): `cut[w]` is worker
    /// `w`'s (last packet id, last sequence). Drops stored records at or
    /// below each cut sequence, raises MAX to the cut, and forgets released
    /// outputs of packets at or below the smallest cut packet id (every
    /// worker has processed past them, so no replay re-creates them; a
    /// master should report an idle worker's last packet id as the last id
    /// it dispatched, or this bound does not move). Entries beyond the
    /// worker count are ignored.
    pub fn handle_snapshot_committed(&mut self, cut: &[(u64, u64)]) {
        for (w, &(_, seq)) in cut.iter().enumerate().take(self.nworkers()) {
            if seq > self.floor[w] {
                self.floor[w] = seq;
            }
            self.logs[w].drop_through(seq);
            self.advance(w, seq);
        }
        if cut.len() >= self.nworkers() && !cut.is_empty() {
            let min_pid = cut[..self.nworkers()]
                .iter()
                .map(|&(p, _)| p)
                .min()
                .unwrap_or(0);
            if min_pid > self.released_floor {
                self.released_floor = min_pid;
                self.released.forget_through(min_pid);
            }
        }
    }

    /// Worker `worker`'s stored records after the last committed cut, in
    /// order, for the replica (empty for an unknown worker).
    pub fn logs_since_cut(&self, worker: usize) -> impl Iterator<Item = (u64, LogRecord)> + '_ {
        self.logs
            .get(worker)
            .into_iter()
            .flat_map(|l| l.iter().copied())
    }

    /// The master died (step 6): drop every output still waiting for log
    /// records; returns how many. Committed outputs not yet polled stay.
    pub fn begin_failover(&mut self) -> usize {
        let n = self.n_waiting;
        for m in &mut self.waiting {
            for Reverse((_, _, key)) in m.drain() {
                self.held.try_remove(key);
            }
        }
        self.n_waiting = 0;
        self.stats.dropped_on_failover += n as u64;
        n
    }

    /// Forget worker `worker`'s stored records with sequence numbers in
    /// `after+1..=through`: a replica did not follow them (see
    /// `FtLink::void_records`). `MAX` stays: they were received, and the
    /// replica numbers its own records after them. Returns how many went.
    pub fn void_records(&mut self, worker: usize, after: u64, through: u64) -> usize {
        let Some(log) = self.logs.get_mut(worker) else {
            return 0;
        };
        let before = log.len();
        log.retain(|(seq, _)| *seq <= after || *seq > through);
        before - log.len()
    }

    /// True if output (packet id, ordinal) was released, or belongs to a
    /// packet at or below the last cut's smallest packet id (those are no
    /// longer remembered and can never be replayed).
    pub fn is_released(&self, packet_id: u64, ordinal: u32) -> bool {
        packet_id <= self.released_floor || self.released.contains(packet_id, ordinal)
    }

    /// The fingerprint of the committed output queued under (packet id,
    /// ordinal), if one is.
    fn queued(&self, packet_id: u64, ordinal: u32) -> Option<u64> {
        // Only at failover, and the ready queue is drained after every call.
        self.ready
            .iter()
            .find(|Reverse(r)| (r.0, r.1) == (packet_id, ordinal))
            .and_then(|Reverse(r)| self.held.get(r.3))
            .map(|o| fingerprint(o.sink, o.pkt.data()))
    }

    /// An output re-created by the replica (step 6): suppressed if already
    /// released or committed and queued, and then compared with that
    /// output by sink and bytes (a difference is a divergence); else held
    /// and released as usual (and compared when it is polled, should the
    /// dead master's output with its key have left meanwhile). Outputs at
    /// or below the released floor are suppressed without a comparison:
    /// they are no longer remembered, and no replay re-creates them.
    pub fn handle_replayed_output(&mut self, out: HeldOutput) {
        let (p, o) = (out.packet_id, out.ordinal);
        let was = if p <= self.released_floor {
            Some(None)
        } else {
            self.released
                .fingerprint(p, o)
                .or_else(|| self.queued(p, o))
                .map(Some)
        };
        if let Some(was) = was {
            self.stats.outputs += 1;
            self.stats.suppressed += 1;
            if let Some(was) = was {
                self.compare(p, o, was, fingerprint(out.sink, out.pkt.data()));
            }
            return;
        }
        self.handle_output(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftmb_core::pal::Pal;
    use ftmb_core::rng::Rng;

    fn out(p: u64, o: u32, dv: &[u64]) -> HeldOutput {
        HeldOutput {
            sink: 0,
            packet_id: p,
            ordinal: o,
            dv: DepVector::from_entries(dv),
            pkt: {
                let mut k = Packet::from_bytes(&[p as u8, o as u8]);
                k.anno.ts_ns = p * 10;
                k
            },
        }
    }

    fn recs(n: usize) -> Vec<LogRecord> {
        (0..n)
            .map(|i| {
                LogRecord::Pal(Pal {
                    packet: i as u64 + 1,
                    var: 0,
                    count: i as u64 + 1,
                })
            })
            .collect()
    }

    fn drain(c: &mut CommitCore) -> Vec<(u64, u32)> {
        std::iter::from_fn(|| c.poll_release())
            .map(|o| (o.packet_id, o.ordinal))
            .collect()
    }

    #[test]
    fn empty_dv_releases_at_once() {
        let mut c = CommitCore::new(2);
        c.handle_output(out(1, 0, &[]));
        c.handle_output(out(2, 0, &[0, 0]));
        assert_eq!(c.held(), 2);
        assert_eq!(drain(&mut c), vec![(1, 0), (2, 0)]);
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn releases_exactly_when_covered() {
        let mut c = CommitCore::new(3);
        c.handle_output(out(5, 0, &[2, 0, 1]));
        c.handle_output(out(5, 1, &[1]));
        c.handle_log(0, 1, &recs(1)).unwrap();
        assert_eq!(drain(&mut c), vec![(5, 1)]);
        c.handle_log(2, 1, &recs(1)).unwrap();
        assert_eq!(drain(&mut c), vec![]);
        c.handle_log(0, 2, &recs(1)).unwrap();
        assert_eq!(drain(&mut c), vec![(5, 0)]);
        assert_eq!(c.frontier(), &[2, 0, 1]);
    }

    #[test]
    fn transitive_dv_waits_for_every_worker() {
        // q on worker 0 wrote v after reading u (from worker 1); p on worker
        // 2 reads v: p's DV carries worker 0's and worker 1's entries.
        let mut a = DepVector::default();
        a.set(1, 4); // u's clock
        let mut q = DepVector::default();
        q.merge(&a);
        q.set(0, 7);
        let mut p = DepVector::default();
        p.merge(&q);
        p.set(2, 3);
        let mut c = CommitCore::new(3);
        let mut o = out(9, 0, &[]);
        o.dv = p;
        c.handle_output(o);
        c.handle_log(2, 1, &recs(3)).unwrap();
        c.handle_log(0, 1, &recs(7)).unwrap();
        assert!(c.poll_release().is_none());
        c.handle_log(1, 1, &recs(3)).unwrap();
        assert!(c.poll_release().is_none());
        c.handle_log(1, 4, &recs(1)).unwrap();
        assert_eq!(drain(&mut c), vec![(9, 0)]);
    }

    #[test]
    fn out_of_order_across_workers() {
        let mut c = CommitCore::new(2);
        c.handle_log(1, 1, &recs(5)).unwrap();
        c.handle_output(out(1, 0, &[3, 5]));
        c.handle_output(out(2, 0, &[0, 5]));
        c.handle_output(out(3, 0, &[1, 6]));
        assert_eq!(drain(&mut c), vec![(2, 0)]);
        c.handle_log(0, 1, &recs(2)).unwrap();
        c.handle_log(1, 6, &recs(1)).unwrap();
        assert_eq!(drain(&mut c), vec![(3, 0)]);
        c.handle_log(0, 3, &recs(1)).unwrap();
        assert_eq!(drain(&mut c), vec![(1, 0)]);
    }

    #[test]
    fn gap_overlap_and_bad_worker() {
        let mut c = CommitCore::new(2);
        c.handle_log(0, 1, &recs(3)).unwrap();
        assert_eq!(
            c.handle_log(0, 5, &recs(1)),
            Err(CommitError::Gap {
                worker: 0,
                expected: 4,
                got: 5
            })
        );
        assert_eq!(
            c.handle_log(0, 3, &recs(2)),
            Err(CommitError::Overlap {
                worker: 0,
                expected: 4,
                got: 3
            })
        );
        assert_eq!(
            c.handle_log(2, 1, &recs(1)),
            Err(CommitError::UnknownWorker {
                worker: 2,
                nworkers: 2
            })
        );
        assert_eq!(
            c.handle_log(1, 0, &recs(1)),
            Err(CommitError::SeqOverflow { worker: 1 })
        );
        assert_eq!(
            c.handle_log(1, u64::MAX, &recs(2)),
            Err(CommitError::SeqOverflow { worker: 1 })
        );
        // Nothing moved on the refused batches.
        assert_eq!(c.frontier(), &[3, 0]);
        assert_eq!(c.stored_records(), 3);
        c.handle_log(0, 7, &[]).unwrap(); // empty: no-op
        assert_eq!(
            c.try_handle_output(out(1, 0, &[0, 0, 1])),
            Err(CommitError::DvOutOfRange {
                packet_id: 1,
                ordinal: 0,
                worker: 2
            })
        );
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn snapshot_gc_bounds_memory() {
        let mut c = CommitCore::new(2);
        let mut seq = [1u64, 1];
        let mut pid = 0;
        for round in 0..50u64 {
            for (w, s) in seq.iter_mut().enumerate() {
                c.handle_log(w, *s, &recs(10)).unwrap();
                *s += 10;
            }
            for _ in 0..10 {
                pid += 1;
                c.handle_output(out(pid, 0, &[seq[0] - 1, seq[1] - 1]));
            }
            assert_eq!(drain(&mut c).len(), 10);
            // Snapshot covering everything but the last 3 records per worker.
            c.handle_snapshot_committed(&[(pid - 2, seq[0] - 4), (pid - 1, seq[1] - 4)]);
            assert_eq!(c.stored_records(), 6, "round {round}");
            assert!(c.remembered_releases() <= 2);
            let tail: Vec<u64> = c.logs_since_cut(0).map(|(s, _)| s).collect();
            assert_eq!(tail, vec![seq[0] - 3, seq[0] - 2, seq[0] - 1]);
        }
        assert!(c.is_released(pid, 0));
        assert!(c.is_released(1, 0));
        assert_eq!(c.logs_since_cut(7).count(), 0);
    }

    #[test]
    fn snapshot_subsumes_missing_records() {
        let mut c = CommitCore::new(1);
        c.handle_output(out(1, 0, &[5]));
        c.handle_log(0, 1, &recs(2)).unwrap();
        c.handle_snapshot_committed(&[(1, 5)]);
        assert_eq!(c.frontier(), &[5]);
        assert_eq!(drain(&mut c), vec![(1, 0)]);
        // The late batch 3..=7 overlaps the subsumed part only: trimmed.
        c.handle_log(0, 3, &recs(5)).unwrap();
        assert_eq!(c.frontier(), &[7]);
        let seqs: Vec<u64> = c.logs_since_cut(0).map(|(s, _)| s).collect();
        assert_eq!(seqs, vec![6, 7]);
        // Now a real overlap is an error again.
        assert!(matches!(
            c.handle_log(0, 7, &recs(1)),
            Err(CommitError::Overlap { .. })
        ));
    }

    #[test]
    fn records_repeated_after_a_cut_store_exactly_the_new_ones_and_count_them() {
        let mut c = CommitCore::new(1);
        c.handle_log(0, 1, &recs(2)).unwrap();
        assert_eq!(c.stats().records, 2);
        c.handle_snapshot_committed(&[(1, 5)]);
        assert_eq!(c.frontier(), &[5]);
        // Wholly subsumed, well below the frontier or ending on it:
        // nothing stored, nothing counted.
        c.handle_log(0, 2, &recs(2)).unwrap();
        c.handle_log(0, 3, &recs(3)).unwrap();
        assert_eq!(c.frontier(), &[5]);
        assert_eq!(c.logs_since_cut(0).count(), 0);
        assert_eq!(c.stats().records, 2);
        // Ending one past the frontier: exactly that record is new.
        c.handle_log(0, 4, &recs(3)).unwrap();
        assert_eq!(c.frontier(), &[6]);
        let seqs: Vec<u64> = c.logs_since_cut(0).map(|(s, _)| s).collect();
        assert_eq!(seqs, vec![6]);
        assert_eq!(c.stats().records, 3);
    }

    #[test]
    fn a_failover_counts_what_it_drops_and_nothing_unreleased_reads_as_released() {
        let mut c = CommitCore::new(1);
        c.handle_output(out(1, 0, &[1]));
        c.handle_output(out(2, 0, &[2]));
        c.handle_output(out(3, 0, &[3]));
        c.handle_log(0, 1, &recs(1)).unwrap();
        assert_eq!(drain(&mut c), vec![(1, 0)]);
        assert!(c.is_released(1, 0));
        assert!(!c.is_released(2, 0), "held, not released");
        assert!(!c.is_released(1, 1), "another ordinal of a released packet");
        assert!(!c.is_released(9, 0), "never seen");
        assert_eq!(c.begin_failover(), 2);
        assert_eq!(c.stats().dropped_on_failover, 2);
        assert!(!c.is_released(2, 0), "dropped, not released");
    }

    #[test]
    fn failover_drops_held_and_suppresses_duplicates() {
        let mut c = CommitCore::new(2);
        c.handle_log(0, 1, &recs(2)).unwrap();
        c.handle_output(out(1, 0, &[1])); // committed
        c.handle_output(out(1, 1, &[2])); // committed, not polled
        c.handle_output(out(2, 0, &[2, 1])); // waits on worker 1
        c.handle_output(out(3, 0, &[3])); // waits on worker 0
        assert_eq!(
            c.poll_release().map(|o| (o.packet_id, o.ordinal)),
            Some((1, 0))
        );
        assert_eq!(c.begin_failover(), 2);
        assert_eq!(c.held(), 1);
        // The replica re-creates everything after the cut.
        for o in [
            out(1, 0, &[1]),
            out(1, 1, &[2]),
            out(2, 0, &[2, 1]),
            out(3, 0, &[3]),
        ] {
            c.handle_replayed_output(o);
        }
        assert_eq!(c.stats().suppressed, 2);
        assert_eq!(drain(&mut c), vec![(1, 1)]);
        // The replica's log continues where the stored prefix ended.
        c.handle_log(1, 1, &recs(1)).unwrap();
        c.handle_log(0, 3, &recs(1)).unwrap();
        assert_eq!(drain(&mut c), vec![(2, 0), (3, 0)]);
        assert!(c.is_released(3, 0));
        c.handle_replayed_output(out(3, 0, &[3]));
        assert_eq!(drain(&mut c), vec![]);
        assert_eq!(c.stats().released, 4);
        // The replica re-created the same bytes: no divergence.
        assert_eq!(c.stats().divergence, 0);
        assert!(c.diverged().is_empty());
    }

    /// `out` with its bytes or its sink changed.
    fn changed(mut o: HeldOutput, sink: bool) -> HeldOutput {
        if sink {
            o.sink += 1;
        } else if let Some(b) = o.pkt.data_mut().last_mut() {
            *b ^= 0x5a;
        }
        o
    }

    #[test]
    fn a_replayed_output_that_differs_from_the_released_one_is_a_divergence() {
        let mut c = CommitCore::new(1);
        c.handle_log(0, 1, &recs(4)).unwrap();
        c.handle_output(out(1, 0, &[1]));
        c.handle_output(out(2, 0, &[1]));
        c.handle_output(out(3, 0, &[1]));
        assert_eq!(drain(&mut c), vec![(1, 0), (2, 0), (3, 0)]);
        c.handle_output(out(4, 0, &[2])); // committed, still queued
        c.handle_output(out(5, 0, &[9])); // never commits
        assert_eq!(c.begin_failover(), 1);
        // Same key: the same bytes are a plain duplicate; other bytes, or
        // another sink, are divergences, against what left or is queued.
        c.handle_replayed_output(out(1, 0, &[1]));
        assert_eq!(c.stats().divergence, 0);
        c.handle_replayed_output(changed(out(2, 0, &[1]), false));
        c.handle_replayed_output(changed(out(3, 0, &[1]), true));
        c.handle_replayed_output(changed(out(4, 0, &[2]), false));
        // An output the dead master never released is not compared.
        c.handle_replayed_output(changed(out(5, 0, &[1]), false));
        assert_eq!(c.stats().divergence, 3);
        assert_eq!(c.diverged(), &[(2, 0), (3, 0), (4, 0)]);
        // Nothing went twice, and what left under each key is the first.
        let polled: Vec<HeldOutput> = std::iter::from_fn(|| c.poll_release()).collect();
        assert_eq!(polled.len(), 2);
        assert_eq!(polled[0], out(4, 0, &[2]));
        assert_eq!((polled[1].packet_id, polled[1].ordinal), (5, 0));
        assert_eq!(c.stats().suppressed, 4);
    }

    #[test]
    fn a_repeated_output_with_other_bytes_is_a_divergence_and_keys_are_bounded() {
        let mut c = CommitCore::new(1);
        c.handle_log(0, 1, &recs(1)).unwrap();
        for p in 1..=20u64 {
            assert_eq!(c.release_at_once((0, p, 0), &[1], b"abc"), Some(true));
        }
        assert_eq!(c.release_at_once((0, 1, 0), &[1], b"abc"), Some(false));
        assert_eq!(c.stats().divergence, 0);
        for p in 1..=20u64 {
            assert_eq!(c.release_at_once((0, p, 0), &[1], b"abd"), Some(false));
        }
        assert_eq!(c.release_at_once((1, 1, 0), &[1], b"abc"), Some(false));
        assert_eq!(c.stats().divergence, 21);
        assert_eq!(c.diverged().len(), DIVERGED_KEPT);
        // A cut past them forgets their fingerprints with their keys.
        c.handle_snapshot_committed(&[(20, 1)]);
        assert_eq!(c.remembered_releases(), 0);
    }

    #[test]
    fn release_at_once_only_when_committed_and_nothing_queued() {
        let mut c = CommitCore::new(2);
        c.handle_log(0, 1, &recs(2)).unwrap();
        // Not covered: held as usual.
        assert_eq!(c.release_at_once((0, 1, 0), &[3], b"x"), None);
        assert_eq!(c.release_at_once((0, 1, 0), &[0, 0, 1], b"x"), None);
        // Covered and nothing queued: sent at once, remembered.
        assert_eq!(c.release_at_once((0, 2, 0), &[2, 0], b"x"), Some(true));
        assert!(c.is_released(2, 0));
        assert_eq!(c.release_at_once((0, 2, 0), &[1], b"x"), Some(false));
        // Something committed but not polled: keep the held order.
        c.handle_output(out(3, 0, &[1]));
        assert_eq!(c.release_at_once((0, 4, 0), &[1], b"x"), None);
        assert_eq!(drain(&mut c), vec![(3, 0)]);
        assert_eq!(c.release_at_once((0, 4, 0), &[1], b"x"), Some(true));
        let st = c.stats();
        assert_eq!((st.outputs, st.released, st.suppressed), (4, 3, 1));
    }

    #[test]
    fn repeated_output_never_released_twice() {
        let mut c = CommitCore::new(1);
        c.handle_output(out(4, 0, &[]));
        c.handle_output(out(4, 0, &[]));
        assert_eq!(drain(&mut c), vec![(4, 0)]);
        assert_eq!(c.stats().suppressed, 1);
    }

    /// The obvious O(N) implementation.
    struct Naive {
        max: Vec<u64>,
        held: Vec<HeldOutput>,
        released: std::collections::BTreeSet<(u64, u32)>,
    }

    impl Naive {
        fn poll(&mut self) -> Option<HeldOutput> {
            loop {
                let i = (0..self.held.len())
                    .filter(|&i| self.held[i].dv.covered_by(&self.max))
                    .min_by_key(|&i| (self.held[i].packet_id, self.held[i].ordinal))?;
                let o = self.held.swap_remove(i);
                if self.released.insert((o.packet_id, o.ordinal)) {
                    return Some(o);
                }
            }
        }
    }

    #[test]
    fn randomized_against_naive_reference() {
        for seed in 0..40u64 {
            let mut rng = Rng::new(seed);
            let nw = 1 + (rng.next_u64() % 5) as usize;
            let mut c = CommitCore::new(nw);
            let mut n = Naive {
                max: vec![0; nw],
                held: Vec::new(),
                released: std::collections::BTreeSet::new(),
            };
            let mut pid = 0u64;
            let mut released = 0usize;
            for step in 0..2000 {
                match rng.next_u64() % 10 {
                    0..=3 => {
                        let w = (rng.next_u64() % nw as u64) as usize;
                        let k = (rng.next_u64() % 4) as usize;
                        let first = n.max[w] + 1;
                        c.handle_log(w, first, &recs(k)).unwrap();
                        n.max[w] += k as u64;
                    }
                    4..=7 => {
                        pid += 1;
                        let dv: Vec<u64> = (0..nw)
                            .map(|w| match rng.next_u64() % 3 {
                                0 => 0,
                                1 => n.max[w].saturating_sub(rng.next_u64() % 3),
                                _ => n.max[w] + rng.next_u64() % 8,
                            })
                            .collect();
                        let len = (rng.next_u64() % (nw as u64 + 1)) as usize;
                        let o = out(pid, (rng.next_u64() % 2) as u32, &dv[..len]);
                        n.held.push(o.clone());
                        c.handle_output(o);
                    }
                    _ => {
                        let a = c.poll_release();
                        let b = n.poll();
                        assert_eq!(a, b, "seed {seed} step {step}");
                        released += usize::from(a.is_some());
                    }
                }
                assert_eq!(c.frontier(), &n.max[..]);
                assert_eq!(c.held(), n.held.len(), "seed {seed} step {step}");
            }
            loop {
                let a = c.poll_release();
                assert_eq!(a, n.poll());
                if a.is_none() {
                    break;
                }
                released += 1;
            }
            assert!(released > 0);
        }
    }
}
