//! The servers of the process roles: the input logger ([`input`]) and the
//! output logger ([`output`], with the standby feed that forwards
//! snapshots to the standby replica). The master and the replica reach
//! them through [`crate::client`]. The four roles run as separate
//! processes joined by Unix sockets or TCP (docs/design.md, section 2):
//! input logger, master, output logger, replica. Every link
//! carries [`crate::wire`] frames; a peer's death shows up as end of stream
//! or a torn frame, never as garbage.
//!
//! ```text
//!  input logger (il.sock) ──Packet──> master ──LogBatch/Output/SnapshotPart/Heartbeat──> output logger (ol.sock)
//!        ^  Resume{from}                                                                  │ sinks (pcap)
//!        └── SnapshotCommitted{cut} ─────────────────────────────────────────────────────┤
//!                 replica (standby on ol.sock) <── SnapshotPart as they come, takeover ──┘
//! ```
//!
//! Failover: the output logger sees no frame from the master for the
//! deadline (or its stream ends without `EndOfStream`), drops the outputs
//! that can never commit, and sends the standby replica the last committed
//! snapshot (unless it was forwarded whole already), the log records after its
//! cut, a `Void` per worker whose frontier is past the records it holds
//! (the standby numbers its own records after it) and a `Resume{cut}`
//! marker. The replica asks the input logger for the packets from the cut
//! on, which answers with `Resume{live}`: packets before `live` are replay
//! of its log, replayed as they stream in while the snapshot loads. The
//! replica restores, replays in the master's batches under the logged
//! access order, then runs live traffic and ships to the output logger on
//! the same connection, which suppresses outputs that already left. The
//! first frame it ships is a `Void` for the records it could not follow
//! (past one the dead master never shipped): the output logger forgets
//! them, so that a replica after it does not follow them either.

pub mod input;
pub mod output;
mod standby_feed;

pub use input::run_input_logger;
pub use output::{run_output_logger, OutputLoggerReport};
