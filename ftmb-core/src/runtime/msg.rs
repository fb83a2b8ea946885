//! What goes down a worker's queue, and the events the driver hears.

use crate::element::Value;
use crate::packet::Packet;
use crate::replay::BatchGroup;
use crate::snapshot::round::SnapshotRound;
use crossbeam_channel::Sender;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// What a worker is told, in its queue's order.
pub(super) enum Msg {
    Batch(u16, Vec<Packet>),
    /// Several batches in a row, each run as its own batch (a replay hands
    /// the master's small batches over in groups: see [`crate::replay`]).
    Batches(BatchGroup),
    Barrier(Arc<Barrier>),
    Query(Sender<WorkerStats>),
    Snapshot(Arc<SnapshotRound>),
}

/// Counted down by every worker queue it is sent to; the last worker to
/// reach it sends `event` on `done`.
pub(super) struct Barrier {
    pub(super) remaining: AtomicUsize,
    pub(super) event: Event,
    pub(super) done: Sender<Event>,
}

/// What the driver hears from the input thread and the workers.
#[derive(Clone, Copy, Debug)]
pub(super) enum Event {
    Stop,
    Exhausted,
    /// Every packet of the replay plan has been processed.
    ReplayDone,
}

/// Per element: its counters and its output ports' drop counters.
pub(super) type WorkerStats = Vec<(Vec<(&'static str, Value)>, Vec<(&'static str, u64)>)>;
