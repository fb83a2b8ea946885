//! Packet access logs (PALs) and the per-worker ordered log (docs/design.md, section 3).
//!
//! In record mode every shared-state access appends a [`Pal`] to the
//! worker's [`WorkerLog`], and every clock reading a [`LogRecord::Clock`];
//! each record gets the next worker sequence number (1, 2, ...). In replay
//! mode a [`LoggedAccess`] walks the same worker's logged records and makes
//! each access wait for its logged turn on the variable.

use crate::slot::Slot;
use crate::sync::{Mutex, MutexGuard};
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One logged shared-state access: packet `packet` made the `count`-th
/// access to variable `var`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pal {
    /// Input packet id.
    pub packet: u64,
    /// Variable id (slot of a shared variable).
    pub var: u32,
    /// The variable's access counter after this access (1-based).
    pub count: u64,
}

/// A record of a worker's ordered log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogRecord {
    /// A shared-state access.
    Pal(Pal),
    /// A batch began: its first packet, its size and the clock value all
    /// its packets saw. Replay rebuilds the same batches from these.
    Clock {
        /// First packet id of the batch.
        packet: u64,
        /// Nanoseconds since the Unix epoch.
        ns: u64,
        /// Packets in the batch.
        count: u32,
    },
}

/// A worker's log in memory: records with consecutive sequence numbers,
/// waiting to be shipped.
#[derive(Debug, Default)]
pub struct WorkerLog {
    next_seq: u64,
    pending: Vec<(u64, LogRecord)>,
}

impl WorkerLog {
    /// An empty log whose next record gets sequence `first_seq`.
    pub fn starting_at(first_seq: u64) -> WorkerLog {
        WorkerLog {
            next_seq: first_seq.max(1),
            pending: Vec::new(),
        }
    }

    /// Append a record; returns its sequence number.
    #[inline]
    pub fn append(&mut self, rec: LogRecord) -> u64 {
        if self.next_seq == 0 {
            self.next_seq = 1;
        }
        let s = self.next_seq;
        self.next_seq += 1;
        self.pending.push((s, rec));
        s
    }

    /// Append a PAL; returns its sequence number.
    #[inline]
    pub fn append_pal(&mut self, packet: u64, var: u32, count: u64) -> u64 {
        self.append(LogRecord::Pal(Pal { packet, var, count }))
    }

    /// Sequence number of the last record appended (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// Records not yet shipped.
    pub fn pending(&self) -> &[(u64, LogRecord)] {
        &self.pending
    }

    /// Append the records appended since the last call to `into`. When
    /// `into` is empty the two vectors are swapped, so each keeps its
    /// memory for the next records.
    pub fn take_pending(&mut self, into: &mut Vec<(u64, LogRecord)>) {
        if into.is_empty() {
            std::mem::swap(&mut self.pending, into);
        } else {
            into.append(&mut self.pending);
        }
    }
}

/// Per variable id, the access counts that logged records will take in a
/// replay (sorted), so that an unlogged access knows which counts are free.
#[derive(Debug, Default)]
pub struct LoggedCounts {
    counts: Vec<Vec<u64>>,
    any: bool,
}

impl LoggedCounts {
    /// The counts of every PAL in `logs`, for `nvars` variables.
    pub fn of<'a>(logs: impl IntoIterator<Item = &'a [(u64, LogRecord)]>, nvars: usize) -> Self {
        let mut counts = vec![Vec::new(); nvars];
        for log in logs {
            for (_, r) in log {
                if let LogRecord::Pal(p) = r {
                    if let Some(c) = counts.get_mut(p.var as usize) {
                        c.push(p.count);
                    }
                }
            }
        }
        for c in &mut counts {
            c.sort_unstable();
        }
        let any = counts.iter().any(|c| !c.is_empty());
        LoggedCounts { counts, any }
    }

    /// True when no variable has a logged count (not replaying).
    pub fn is_empty(&self) -> bool {
        !self.any
    }

    /// Whether a logged record will take count `count` of `var`. Once a
    /// replay has cut its logs back past every gap (the replayer's
    /// `trim_to_gap_free`), the claimed counts of a variable are contiguous
    /// from its restored counter, so an unclaimed next count means every
    /// logged access to the variable has been replayed.
    pub fn claimed(&self, var: u32, count: u64) -> bool {
        self.counts
            .get(var as usize)
            .is_some_and(|c| c.binary_search(&count).is_ok())
    }

    /// The counts logged records claim of variable `var`, ascending.
    pub fn counts(&self, var: u32) -> &[u64] {
        self.counts.get(var as usize).map_or(&[], Vec::as_slice)
    }
}

/// A worker's ordered logging state: the log new records go to and, after
/// a failover, the dead master's records still to be replayed.
///
/// While `replay` holds records, each access takes its logged turn: it
/// waits until the variable's counter reaches the logged count minus one,
/// and reuses the logged sequence number. Once the worker has passed its
/// logged prefix, an access to a variable waits until the count it would
/// take is not claimed by any logged record (from any worker; see
/// [`LoggedCounts`]), then is logged as a new record. The replayer first
/// cuts the logs back past every gap (its `trim_to_gap_free`), so that
/// means waiting until every logged access to the variable has been
/// replayed (docs/design.md, section 6); an
/// uncut log with a gap could leave the unlogged access taking a free count
/// meant for another of its worker's accesses, or waiting for ever.
#[derive(Debug, Default)]
pub struct LoggedAccess {
    /// Where new records go (shipped to the output logger).
    pub log: WorkerLog,
    /// Logged records of this worker not yet replayed, in sequence order.
    pub replay: VecDeque<(u64, LogRecord)>,
    /// The counts logged records claim, per variable id, over all workers.
    pub last_logged: Arc<LoggedCounts>,
    /// First divergence from the log found in replay, if any.
    pub divergence: Option<String>,
    /// Shared by all workers of a replay: set on the first divergence, so
    /// that no worker waits forever for an access that will not come.
    pub abort: Arc<AtomicBool>,
}

impl LoggedAccess {
    /// Logging from sequence `first_seq` on, nothing to replay.
    pub fn recording(first_seq: u64) -> LoggedAccess {
        LoggedAccess {
            log: WorkerLog::starting_at(first_seq),
            ..LoggedAccess::default()
        }
    }

    /// Replay `records` (this worker's, in order), then log from the
    /// sequence after the last of them.
    pub fn replaying(
        records: Vec<(u64, LogRecord)>,
        last_logged: Arc<LoggedCounts>,
        first_seq: u64,
        abort: Arc<AtomicBool>,
    ) -> LoggedAccess {
        let next = records
            .last()
            .map_or(first_seq, |(s, _)| s + 1)
            .max(first_seq);
        LoggedAccess {
            log: WorkerLog::starting_at(next),
            replay: records.into(),
            last_logged,
            divergence: None,
            abort,
        }
    }

    /// True while logged records remain to be replayed.
    pub fn replaying_now(&self) -> bool {
        !self.replay.is_empty()
    }

    fn diverged(&mut self, what: String) {
        if self.divergence.is_none() {
            self.divergence = Some(what);
        }
        self.abort.store(true, Ordering::Release);
    }

    /// The clock for a batch of `count` packets starting with packet
    /// `first`: the logged value while replaying, else `now` (logged).
    /// Returns `(ns, seq)`.
    pub fn batch_clock(&mut self, first: u64, count: u32, now: u64) -> (u64, u64) {
        if let Some(&(
            seq,
            LogRecord::Clock {
                packet,
                ns,
                count: c,
            },
        )) = self.replay.front()
        {
            if packet == first && c == count {
                self.replay.pop_front();
                return (ns, seq);
            }
        }
        if let Some(&(_, rec)) = self.replay.front() {
            self.diverged(format!(
                "replay diverged: batch at packet {first} but the log expects {rec:?}"
            ));
            self.replay.clear();
        }
        let seq = self.log.append(LogRecord::Clock {
            packet: first,
            ns: now,
            count,
        });
        (now, seq)
    }

    /// Take `cell`'s lock when it is packet `packet`'s turn on `var`.
    pub(crate) fn lock_in_turn<'a, T>(
        &mut self,
        cell: &'a CachePadded<Mutex<Slot<T>>>,
        var: u32,
        packet: u64,
    ) -> MutexGuard<'a, Slot<T>> {
        let want = match self.replay.front() {
            Some(&(_, LogRecord::Pal(p))) if p.packet == packet && p.var == var => p.count - 1,
            Some(&(_, rec)) => {
                self.diverged(format!(
                    "replay diverged: packet {packet} accessed var {var}, the log expects {rec:?}"
                ));
                self.replay.clear();
                u64::MAX
            }
            None => u64::MAX,
        };
        let mut backoff = crate::sync::Backoff::default();
        loop {
            let g = cell.lock();
            let turn = if want == u64::MAX {
                // Unlogged: the next count must be one no record claims.
                !self.last_logged.claimed(var, g.counter + 1)
            } else {
                g.counter >= want
            };
            if turn {
                return g;
            }
            if self.abort.load(Ordering::Acquire) {
                // Another worker left the log: its logged accesses will
                // not all come. Stop waiting; the replay is reported failed.
                self.replay.clear();
                if self.divergence.is_none() {
                    self.divergence = Some("replay aborted: another worker diverged".into());
                }
                return g;
            }
            drop(g);
            backoff.pause();
        }
    }

    /// Account for an access made under the lock (the counter already
    /// incremented to `count`); returns its sequence number.
    #[inline]
    pub(crate) fn access(&mut self, packet: u64, var: u32, count: u64) -> u64 {
        if let Some(&(seq, LogRecord::Pal(p))) = self.replay.front() {
            if p.packet == packet && p.var == var {
                if p.count != count {
                    self.diverged(format!(
                        "replay diverged: packet {packet} var {var} got count {count}, the log has {}",
                        p.count
                    ));
                }
                self.replay.pop_front();
                return seq;
            }
        }
        self.log.append_pal(packet, var, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pal(seq: u64, packet: u64, var: u32, count: u64) -> (u64, LogRecord) {
        (seq, LogRecord::Pal(Pal { packet, var, count }))
    }

    #[test]
    fn a_lost_record_leaves_a_free_count_for_the_unlogged_access() {
        // Worker 0's records of var 7 at counts 2 and 4 reached the output
        // logger; worker 1's access at count 3 was never shipped.
        let w0 = vec![pal(1, 10, 7, 2), pal(2, 12, 7, 4)];
        let w1: Vec<(u64, LogRecord)> = Vec::new();
        let c = LoggedCounts::of([w0.as_slice(), w1.as_slice()], 8);
        assert!(!c.is_empty());
        assert!(c.claimed(7, 2) && c.claimed(7, 4));
        // Worker 1's unlogged access may take count 3 (the gap) and count
        // 5 (past the log), not 2 or 4.
        assert!(!c.claimed(7, 3) && !c.claimed(7, 5));
        assert!(!c.claimed(6, 1) && !c.claimed(99, 1));
        assert!(LoggedCounts::default().is_empty());
    }
}
