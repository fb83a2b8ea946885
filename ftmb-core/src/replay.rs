//! The seam between the runtime and a replay (a replica taking over from
//! a dead master): the runtime keeps the mechanism, the replayer crate
//! (`ftmb-replayer`) decides what is replayed.
//!
//! The mechanism in the core: every worker follows its share of the dead
//! master's log ([`crate::pal::LoggedAccess`]: each shared-state access
//! waits for its logged turn, each batch takes its logged clock), the
//! input thread hands the replayed packets to the workers, and the run goes
//! live once they have all been processed. What is replayed (which
//! records, cut back how, which packets, in which batches) comes through
//! one trait, [`Replay`], set in [`crate::ft::FtOptions::replay`].
//!
//! # Call order
//!
//! [`crate::runtime::run`] calls a [`Replay`]:
//!
//! 1. [`Replay::start`], once, after the snapshot (if any) is restored and
//!    before any worker starts, with every shared variable's restored
//!    access counter (in variable id order). It returns the plain data the
//!    workers start from ([`ReplayStart`]): per worker the records to
//!    follow and the first sequence number of its new records, and the
//!    stored records the replay will not follow, which the runtime reports
//!    to the link ([`crate::ft::FtLink::void_records`]) before anything
//!    else is shipped.
//! 2. [`Replay::feed`], once, on the input thread, before any source is
//!    polled: it hands every packet to replay to the workers through a
//!    [`ReplayFeed`] (in groups of whole batches, each batch as the master
//!    ran it) and returns the next input id, or an error when the input
//!    ended early (the workers then stop waiting for logged turns that
//!    will not come, and the run reports the replay failed).
//! 3. The runtime waits until every worker has processed what it was fed
//!    (reported as [`crate::runtime::RunReport::replay_elapsed`]), then goes
//!    on with the configuration's sources if [`ReplayStart::then_sources`],
//!    or ends.

use crate::headers::Framing;
use crate::packet::Packet;
use crate::pal::LogRecord;

/// Batches in a row for one worker, each with its source: the unit a
/// replay hands over (one queue operation per group, not per batch).
pub type BatchGroup = Vec<(u16, Vec<Packet>)>;

/// Per worker, numbered log records in sequence order.
pub type WorkerLogs = Vec<Vec<(u64, LogRecord)>>;

/// What the workers of a replaying run start from.
#[derive(Clone, Debug, Default)]
pub struct ReplayStart {
    /// Per worker: the logged records it follows, in sequence order (a
    /// prefix of what the dead master logged after the snapshot's cut).
    pub logs: WorkerLogs,
    /// Per worker: the least sequence number its new records may take
    /// (they also follow its last followed record).
    pub next_seq: Vec<u64>,
    /// Stored records the replay does not follow, `(worker, after,
    /// through)`: their packets run again and are logged anew (see
    /// [`crate::ft::FtLink::void_records`]).
    pub void: Vec<(usize, u64, u64)>,
    /// After the replay, go on with the configuration's own sources (a
    /// replica taking over live traffic) or end the run (a replay check).
    pub then_sources: bool,
}

/// A replay, as the runtime drives it (see the [module docs](self) for the
/// call order).
pub trait Replay: Send + Sync {
    /// Step 1: the records each worker follows, given the restored access
    /// counters of every shared variable (variable id order).
    fn start(&self, restored_counters: &[u64]) -> ReplayStart;
    /// Step 2: hand every packet to replay to `feed`; `start` is what
    /// step 1 returned. Returns the next input id.
    fn feed(&self, start: &ReplayStart, feed: &mut ReplayFeed<'_>) -> Result<u64, String>;
    /// Packets to replay (for reports).
    fn len(&self) -> u64;
    /// No packet to replay.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a [`Replay`] hands its packets: the runtime's workers. Packets go
/// to the worker [`ReplayFeed::worker_of`] names (the master's flow hash),
/// in whole batches, grouped by [`ReplayFeed::hand_over`].
pub struct ReplayFeed<'a> {
    nworkers: usize,
    batch: usize,
    framings: &'a [Framing],
    hand_over: &'a mut dyn FnMut(usize, BatchGroup),
}

impl<'a> ReplayFeed<'a> {
    /// A feed to `nworkers` workers whose sources have `framings`, with
    /// batches of `batch` packets; `hand_over` gives worker `w` a group.
    pub fn new(
        nworkers: usize,
        batch: usize,
        framings: &'a [Framing],
        hand_over: &'a mut dyn FnMut(usize, BatchGroup),
    ) -> ReplayFeed<'a> {
        ReplayFeed {
            nworkers,
            batch: batch.max(1),
            framings,
            hand_over,
        }
    }

    /// Number of workers.
    pub fn nworkers(&self) -> usize {
        self.nworkers
    }

    /// The run's batch size: a batch past a worker's logged prefix has at
    /// most this many packets, and a group at least this many (unless the
    /// input pauses).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The worker packet `p` goes to, as on the master.
    #[inline]
    pub fn worker_of(&self, p: &Packet) -> usize {
        let framing = self
            .framings
            .get(p.anno.source as usize)
            .copied()
            .unwrap_or(Framing::Unknown);
        crate::steer::worker_of(p, framing, self.nworkers)
    }

    /// Give worker `w` the batches of `group`, in order (each runs as its
    /// own batch, as the master ran it).
    pub fn hand_over(&mut self, w: usize, group: BatchGroup) {
        if !group.is_empty() {
            (self.hand_over)(w, group);
        }
    }
}
