//! # ftmb-logger
//!
//! The input and output loggers of FTMB (docs/design.md, sections 2 to
//! 6), built as sans-I/O cores that a thin shell feeds from sockets or
//! files, and the process roles' links to them.
//!
//! ## The pieces
//!
//! 1. **Wire format** ([`wire`]): every message that crosses a link between
//!    roles (input logger -> master -> output logger -> replica) is one
//!    versioned, checksummed frame: `magic "FTMB" | version | kind | flags |
//!    len | crc32c | payload`. A zero-copy [`wire::FrameView`] validates a
//!    frame once; plain message structs encode and decode payloads;
//!    [`wire::FrameReader`] and [`wire::FrameWriter`] move frames over
//!    `Read`/`Write` (a clean EOF between frames ends a stream, a torn
//!    frame is [`wire::WireError::Truncated`], never garbage).
//! 2. **Output commit** ([`commit`]): [`commit::CommitCore`] keeps `MAX[w]`
//!    per worker log and releases each output once its dependency vector is
//!    covered, in `O(log N)` per output, with the contract written out as
//!    numbered steps ("persist, then release"). It stores the log records
//!    since the last snapshot cut for the replica and handles failover:
//!    outputs that can never commit are dropped, replayed duplicates of
//!    released outputs are suppressed: it remembers what it released since
//!    the last cut in a [`released::ReleasedSet`], a window of bits by
//!    packet id with a fingerprint of each output's sink and bytes, and a
//!    duplicate whose fingerprint differs is counted as a divergence.
//!    Held outputs live in a slab; the per-worker heaps of outputs waiting
//!    for records and the heap of committed ones hold their keys. The records
//!    are stored per worker in a [`record_log::RecordLog`], in chunks that
//!    a snapshot's cut empties for the records that follow.
//! 3. **Input log** ([`input_log`]): [`input_log::InputLog`] numbers input
//!    packets from 1, keeps them from the last committed cut, replays them;
//!    [`input_log::DurableInputLog`] also writes them to append-only segment
//!    files of wire frames and recovers them under a
//!    [`input_log::RecoveryMode`] (`Strict` or `TolerateTornTail`).
//! 4. **Process roles** ([`server`], [`client`]): the input logger's and the
//!    output logger's servers ([`server::run_input_logger`],
//!    [`server::run_output_logger`], with the failure detector and the
//!    standby feed), and what the master and the replica use to reach them
//!    ([`client::SocketLink`], [`client::RemoteInput`],
//!    [`client::await_takeover`]), over the links of [`transport`]. The
//!    in-process shell around the commit core is
//!    [`output_logger::OutputLogger`].
//!
//! ## Concurrency model
//!
//! The commit frontier is model-checked with loom (`models.rs`, behind the
//! small `sync` shim):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p ftmb-logger --release --target-dir target/loom loom
//! ```
//!
//! Without `--cfg loom` the same model body runs on std threads (many
//! times, plus a seeded stress variant) as part of plain `cargo test`.

pub mod client;
pub mod commit;
pub mod input_log;
pub mod output_logger;
pub mod record_log;
pub mod released;
pub mod server;
mod threads;
pub mod transport;
pub mod wire;

pub use commit::{CommitCore, CommitError, CommitStats, HeldOutput};
pub use input_log::{
    DurableInputLog, DurableOptions, InputLog, InputLogError, RecoveryMode, RecoveryReport,
};
pub use wire::{FrameKind, FrameReader, FrameView, FrameWriter, Message, WireError};

#[cfg(test)]
mod models;
#[cfg(test)]
mod sync;
