//! A worker's log buffer, shared between the worker thread that appends
//! records and the shipper thread that takes them in batches.
//!
//! The worker calls [`LogBuffer::push`] (one short critical section per
//! record, or [`LogBuffer::push_all`] per packet batch); the shipper calls
//! [`LogBuffer::wait_take`] (blocks until records or close) or
//! [`LogBuffer::take`] (never blocks; use it on the flush timer so a
//! partial batch leaves promptly). A taken [`Batch`] holds consecutive
//! sequence numbers continuing exactly where the previous batch ended: no
//! record is lost, repeated or reordered. This is the property the loom
//! model in `tests` checks.

use crate::sync::{lock, Condvar, Mutex};
use crate::wire::LogBatchMsg;
use ftmb_core::pal::LogRecord;

/// Consecutive records of one worker's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Sequence of the first record.
    pub first_seq: u64,
    /// The records.
    pub records: Vec<LogRecord>,
}

impl Batch {
    /// Sequence of the last record (`first_seq - 1` when empty).
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.records.len() as u64 - 1
    }

    /// The batch as a wire message from `worker`.
    pub fn into_wire(self, worker: u16) -> LogBatchMsg {
        LogBatchMsg {
            worker,
            first_seq: self.first_seq,
            records: self.records,
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// Sequence of `pending[0]`.
    first_seq: u64,
    pending: Vec<LogRecord>,
    closed: bool,
}

/// A worker's pending log records (see the module documentation).
#[derive(Debug)]
pub struct LogBuffer {
    inner: Mutex<Inner>,
    cv: Condvar,
}

impl LogBuffer {
    /// An empty buffer whose first record gets sequence `first_seq`
    /// (at least 1).
    pub fn new(first_seq: u64) -> Self {
        LogBuffer {
            inner: Mutex::new(Inner {
                first_seq: first_seq.max(1),
                pending: Vec::new(),
                closed: false,
            }),
            cv: Condvar::new(),
        }
    }

    /// Append a record; returns its sequence number.
    pub fn push(&self, rec: LogRecord) -> u64 {
        let mut g = lock(&self.inner);
        g.pending.push(rec);
        let s = g.first_seq + g.pending.len() as u64 - 1;
        let wake = g.pending.len() == 1;
        drop(g);
        if wake {
            self.cv.notify_one();
        }
        s
    }

    /// Append records in order; returns the sequence of the last one
    /// (of the previous record when `recs` is empty).
    pub fn push_all(&self, recs: &[LogRecord]) -> u64 {
        let mut g = lock(&self.inner);
        let was_empty = g.pending.is_empty();
        g.pending.extend_from_slice(recs);
        let s = g.first_seq + g.pending.len() as u64 - 1;
        drop(g);
        if was_empty && !recs.is_empty() {
            self.cv.notify_one();
        }
        s
    }

    fn take_locked(g: &mut Inner) -> Option<Batch> {
        if g.pending.is_empty() {
            return None;
        }
        let records = std::mem::take(&mut g.pending);
        let first_seq = g.first_seq;
        g.first_seq += records.len() as u64;
        Some(Batch { first_seq, records })
    }

    /// Take every pending record, if any (never blocks).
    pub fn take(&self) -> Option<Batch> {
        Self::take_locked(&mut lock(&self.inner))
    }

    /// Wait for records and take them; `None` once the buffer is closed
    /// and drained.
    pub fn wait_take(&self) -> Option<Batch> {
        let mut g = lock(&self.inner);
        loop {
            if let Some(b) = Self::take_locked(&mut g) {
                return Some(b);
            }
            if g.closed {
                return None;
            }
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like [`LogBuffer::wait_take`], giving up after `timeout` (the flush
    /// timer: returns `None` on time-out or once closed and drained).
    #[cfg(not(loom))]
    pub fn wait_take_timeout(&self, timeout: std::time::Duration) -> Option<Batch> {
        let deadline = std::time::Instant::now() + timeout;
        let mut g = lock(&self.inner);
        loop {
            if let Some(b) = Self::take_locked(&mut g) {
                return Some(b);
            }
            let now = std::time::Instant::now();
            if g.closed || now >= deadline {
                return None;
            }
            g = self
                .cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// No more records will be pushed: wake the shipper.
    pub fn close(&self) {
        lock(&self.inner).closed = true;
        self.cv.notify_all();
    }

    /// Records pending.
    pub fn pending(&self) -> usize {
        lock(&self.inner).pending.len()
    }
}
