//! What a run is asked to do and what it reports.

use crate::ft::FtOptions;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run-time options.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Packets per batch handed to a worker.
    pub batch: usize,
    /// Batches each worker queue holds.
    pub queue_batches: usize,
    /// Seed of the workers' random generators (`None`: from the clock).
    pub seed: Option<u64>,
    /// Run worker 0 on a thread of its own, fed over a queue like the others
    /// (a pipeline), instead of on the input thread.
    pub pipeline: bool,
    /// Fault tolerance: ordered logging to an output logger (and a replay
    /// plan for a replica taking over).
    pub ft: Option<FtOptions>,
    /// Offer packets at this rate (packets per second) instead of as fast
    /// as the sources give them: a fixed offered load, for latency.
    pub pace_pps: Option<f64>,
    /// Overwrite each packet's timestamp with the wall clock when it is
    /// taken from its source, so egress can measure per-packet latency
    /// (see [`crate::egress::LatencyProbe`]).
    pub stamp_arrival: bool,
    /// With `ft`: ship outputs and take snapshots, but do not log accesses
    /// (the snapshot-only baseline: outputs can only be released once a
    /// snapshot covering them is committed).
    pub ft_unlogged: bool,
    /// Per worker, a remote store for shared state (the remote-state
    /// baseline; see [`crate::context::RemoteState`]).
    pub remote_state: Option<RemoteStateFactory>,
    /// **Test only**: in a replaying run, flip the last byte of every
    /// output of every replayed packet, so that the replica's outputs
    /// differ from what the master released under the same keys and the
    /// output logger's divergence check has something to catch. Off by
    /// default; only tests, and a replica started with
    /// `FTMB_TEST_DIVERGE=1` in its environment, set it.
    pub test_diverge_replay: bool,
}

/// Makes worker `w`'s connection to a remote state store.
#[derive(Clone)]
pub struct RemoteStateFactory(
    pub Arc<dyn Fn(usize) -> Box<dyn crate::context::RemoteState> + Send + Sync>,
);

impl std::fmt::Debug for RemoteStateFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteStateFactory")
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch: 64,
            queue_batches: 256,
            seed: None,
            pipeline: false,
            ft: None,
            pace_pps: None,
            stamp_arrival: false,
            ft_unlogged: false,
            remote_state: None,
            test_diverge_replay: false,
        }
    }
}

/// Progress of a run, reported to a callback about ten times a second.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Packets taken from sources so far.
    pub packets: u64,
    /// Sum of the sources' `(done, total)` progress, when they report it.
    pub done: u64,
    /// See `done`.
    pub total: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    /// Wall time from start until the driver program ended and the sinks
    /// were flushed (before the final state digest, which only a
    /// fault-tolerant run computes).
    pub elapsed: Duration,
    /// When the run started (a caller that waits for more, such as an
    /// output logger releasing the last outputs, measures from it).
    pub started: Instant,
    /// Packets taken from the sources.
    pub packets: u64,
    /// Packets each worker processed.
    pub per_worker: Vec<u64>,
    /// Packets dropped at the worker queues (live sources only).
    pub queue_drops: u64,
    /// Errors from sources and sinks.
    pub errors: Vec<String>,
    /// Every element's counters, as JSON.
    pub stats: serde_json::Value,
    /// With fault tolerance: digest of the final state (every shared
    /// variable with its counters and clocks, every worker's element state
    /// and generator), which a replay must reproduce.
    pub digest: Option<u64>,
    /// With fault tolerance: where replay departed from the log, if it did.
    pub divergence: Vec<String>,
    /// Time to restore the snapshot, when one was restored.
    pub restore_elapsed: Option<Duration>,
    /// Time from the start until the replay plan was processed.
    pub replay_elapsed: Option<Duration>,
}

impl RunReport {
    /// A run that could not start.
    pub(super) fn failed(started: Instant, error: String) -> RunReport {
        RunReport {
            elapsed: Duration::ZERO,
            started,
            packets: 0,
            per_worker: Vec::new(),
            queue_drops: 0,
            errors: vec![error],
            stats: serde_json::Value::Null,
            digest: None,
            divergence: Vec::new(),
            restore_elapsed: None,
            replay_elapsed: None,
        }
    }
}
