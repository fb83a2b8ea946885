//! # ftmb-baselines
//!
//! The systems of the paper's evaluation that FTMB is compared with, run by
//! `ftmb bench --mode snapshot-only|remote-state` in the same in-process
//! harness as FTMB itself:
//!
//! - [`snapshot_only`]: snapshot-only rollback recovery (Remus, COLO, Pico
//!   style): no access logging, every output held until the next snapshot
//!   commits.
//! - [`redis`]: remote state (StatelessNF style): every element's shared
//!   state lives in a Redis server, read and written on every access.
//!
//! Neither is part of the fault-tolerant product: they exist to be measured.

pub mod redis;
pub mod snapshot_only;

pub use redis::{RedisConn, RedisCounters};
pub use snapshot_only::{SnapshotOnlyLink, SnapshotOnlyStats};
