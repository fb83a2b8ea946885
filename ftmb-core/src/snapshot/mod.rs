//! Consistent snapshots (docs/design.md, section 5).
//!
//! The input side calls a snapshot: it raises a flag that every worker
//! checks between two batches, and puts a marker into every worker's
//! stream after the packets sent so far (to wake a worker asleep on an
//! empty queue). Each worker stops at whichever comes first, between two
//! batches, so none waits for another to drain its queue. The cut is per
//! worker (docs/design.md, section 5): the first input packet id it had not processed
//! (its packets arrive in id order, so every earlier one of its own is
//! reflected and no later one) and its log position. Each worker records
//! that, its elements' private state and its generator, then arrives at a
//! gate; the last to arrive, while the others stand still and no shared
//! variable changes, marks the cut in every shared variable (copy on
//! write: a slot's first change after it saves the slot's old encoding)
//! and opens the gate. A capture thread then encodes every shared variable
//! (value, access counter and vector clock) as it was at the cut. The time
//! between the first worker stopping and the last one resuming is the
//! stall, measured and reported with the snapshot. A worker with replay
//! packets still queued stops only at the marker: another worker may be
//! waiting for one of its logged turns.
//!
//! - [`format`](mod@format): what a snapshot holds and its versioned, checksummed
//!   encoding.
//! - `round` (crate-private): the rounds in which the workers take one (the
//!   gate they meet at, and the capture thread that encodes the shared
//!   state after the cut and stores the snapshot on the link).

pub mod format;
pub(crate) mod round;

pub use format::{Snapshot, SnapshotError, SnapshotState, WorkerSnapshot};
