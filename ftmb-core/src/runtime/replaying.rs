//! A replaying run's side of the replay seam ([`crate::replay`]): the
//! plain data its workers start from, and the feeding of the replayed
//! packets on the input thread.

use super::counters::InputShared;
use super::dispatch::Dispatcher;
use crate::ft::FtOptions;
use crate::headers::Framing;
use crate::pal::{LoggedAccess, LoggedCounts};
use crate::replay::{BatchGroup, Replay, ReplayFeed, ReplayStart};
use crate::shared::SharedRegistry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A replay in progress.
pub(super) struct Replaying {
    replay: Arc<dyn Replay>,
    start: ReplayStart,
    /// The counts the followed records claim, per variable, over all
    /// workers.
    claimed: Arc<LoggedCounts>,
    /// Set when the replay cannot finish: workers stop waiting for turns.
    abort: Arc<AtomicBool>,
}

impl Replaying {
    /// Step 1 of the seam: ask the replay for the records to follow (given
    /// the restored counters) and tell the link which stored records it
    /// does not follow. `None` without a replay.
    pub(super) fn start(ft: &FtOptions, shared: &SharedRegistry) -> Option<Replaying> {
        let replay = ft.replay.clone()?;
        let counters: Vec<u64> = shared.vars().iter().flat_map(|v| v.counters()).collect();
        let start = replay.start(&counters);
        // Before anything else reaches the output logger: the records
        // this replay does not follow (their packets run again and are
        // logged anew).
        for &(w, after, through) in &start.void {
            ft.link.void_records(w, after, through);
        }
        let claimed = LoggedCounts::of(
            start.logs.iter().map(Vec::as_slice),
            shared.nvars() as usize,
        );
        Some(Replaying {
            replay,
            start,
            claimed: Arc::new(claimed),
            abort: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Worker `w`'s ordered logging: its records to follow, then new
    /// records numbered from the replay's bound.
    pub(super) fn logged_access(&self, w: usize) -> LoggedAccess {
        LoggedAccess::replaying(
            self.start.logs.get(w).cloned().unwrap_or_default(),
            self.claimed.clone(),
            self.start.next_seq.get(w).copied().unwrap_or(1),
            self.abort.clone(),
        )
    }

    /// After the replay, go on with the sources.
    pub(super) fn then_sources(&self) -> bool {
        self.start.then_sources
    }

    /// Step 2 of the seam, on the input thread: hand every replayed packet
    /// to the workers. Returns the next input id; on an error, the workers
    /// stop waiting for logged turns that will not come.
    pub(super) fn feed(
        &self,
        dispatch: &mut Dispatcher,
        framings: &[Framing],
        batch: usize,
        shared: &InputShared,
    ) -> Result<u64, String> {
        let n = dispatch.nworkers();
        let mut hand_over = |w: usize, group: BatchGroup| {
            let packets: usize = group.iter().map(|(_, b)| b.len()).sum();
            shared.packets.fetch_add(packets as u64, Ordering::Relaxed);
            dispatch.send_group(w, group);
        };
        let mut feed = ReplayFeed::new(n, batch, framings, &mut hand_over);
        let fed = self.replay.feed(&self.start, &mut feed);
        if fed.is_err() {
            // Logged accesses of the missing packets will never come.
            self.abort.store(true, Ordering::Release);
        }
        fed
    }
}
