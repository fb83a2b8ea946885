//! Packet access logs (PALs) and the per-worker ordered log (SPEC section 3).
//!
//! In record mode every shared-state access appends a [`Pal`] to the
//! worker's [`WorkerLog`], and every clock reading a [`LogRecord::Clock`];
//! each record gets the next worker sequence number (1, 2, ...). In replay
//! mode a [`ReplayCursor`] walks the same worker's logged records and makes
//! each access wait for its logged turn on the variable.

use crate::shared::Slot;
use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, MutexGuard};
use std::collections::VecDeque;
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
    /// The clock value used from packet `packet` on (until the next one).
    Clock {
        /// First packet id the value applies to.
        packet: u64,
        /// Nanoseconds since the Unix epoch.
        ns: u64,
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

    /// Take the records not yet shipped.
    pub fn take_pending(&mut self) -> Vec<(u64, LogRecord)> {
        std::mem::take(&mut self.pending)
    }
}

/// Replay of one worker's logged accesses.
#[derive(Debug)]
pub struct ReplayCursor {
    pals: VecDeque<(u64, Pal)>,
    /// Highest logged counter per variable, over all workers: an access past
    /// a worker's logged prefix waits until the variable has reached it.
    last_logged: Arc<Vec<u64>>,
    /// Sequence numbers continue after the log (for new records).
    next_seq: u64,
    /// First divergence found, if any.
    pub divergence: Option<String>,
}

impl ReplayCursor {
    /// A cursor over this worker's PALs (in log order) and the per-variable
    /// maximum logged counters.
    pub fn new(pals: Vec<(u64, Pal)>, last_logged: Arc<Vec<u64>>) -> ReplayCursor {
        let next_seq = pals.last().map_or(1, |(s, _)| s + 1);
        ReplayCursor {
            pals: pals.into(),
            last_logged,
            next_seq,
            divergence: None,
        }
    }

    /// Logged accesses not yet replayed.
    pub fn remaining(&self) -> usize {
        self.pals.len()
    }

    /// Take `cell`'s lock when it is packet `packet`'s turn on `var`.
    pub(crate) fn lock_in_turn<'a, T>(
        &mut self,
        cell: &'a CachePadded<Mutex<Slot<T>>>,
        var: u32,
        packet: u64,
    ) -> MutexGuard<'a, Slot<T>> {
        let want = match self.pals.front() {
            Some((_, p)) if p.packet == packet && p.var == var => p.count - 1,
            Some((_, p)) => {
                if self.divergence.is_none() {
                    self.divergence = Some(format!(
                        "replay diverged: packet {packet} accessed var {var}, log expects packet {} var {}",
                        p.packet, p.var
                    ));
                }
                0
            }
            None => self.last_logged.get(var as usize).copied().unwrap_or(0),
        };
        let mut spins = 0u32;
        loop {
            let g = cell.lock();
            if g.counter >= want {
                return g;
            }
            drop(g);
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Account for an access made under the lock; returns its sequence.
    pub(crate) fn replayed_access(&mut self, packet: u64, var: u32, count: u64) -> u64 {
        match self.pals.front() {
            Some((s, p)) if p.packet == packet && p.var == var => {
                if p.count != count && self.divergence.is_none() {
                    self.divergence = Some(format!(
                        "replay diverged: packet {packet} var {var} got count {count}, log has {}",
                        p.count
                    ));
                }
                let s = *s;
                self.pals.pop_front();
                s
            }
            _ => {
                let s = self.next_seq;
                self.next_seq += 1;
                s
            }
        }
    }
}
