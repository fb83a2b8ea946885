//! The replay plan: what a replica replays (the logged input packets after
//! the snapshot's cut, each worker's logged records), and how it answers
//! the runtime's replay seam ([`Replay`]).

use crate::feed::feed;
use crate::trim::trim_to_gap_free;
use ftmb_core::ft::MemoryLink;
use ftmb_core::packet::Packet;
use ftmb_core::pal::LogRecord;
use ftmb_core::replay::{Replay, ReplayFeed, ReplayStart};
use ftmb_core::snapshot::{Snapshot, WorkerSnapshot};

/// What a replica replays before it takes over: the input packets after the
/// snapshot cut (with their ids) and each worker's logged records.
#[derive(Clone, Debug, Default)]
pub struct ReplayPlan {
    /// Input packets in id order (ids and sources as the input logger gave
    /// them).
    pub packets: Vec<Packet>,
    /// Packets that follow `packets`, still arriving, and how many will: a
    /// replica streams the input log from the input logger while it loads
    /// the snapshot, and replays each packet as it comes.
    pub streamed: Option<(crossbeam_channel::Receiver<Packet>, u64)>,
    /// Per worker: the logged records after the cut, in sequence order.
    pub logs: Vec<Vec<(u64, LogRecord)>>,
    /// Per worker: the first sequence number after the cut.
    pub first_seq: Vec<u64>,
    /// Per worker: the first input packet id after the cut (see
    /// [`WorkerSnapshot::next_packet`]); the worker's
    /// packets before it are skipped. Empty: none skipped.
    pub first_packet: Vec<u64>,
    /// Per worker: the replay numbers its new records from at least this,
    /// the output logger's frontier plus one (it may have received
    /// records it no longer holds, voided by an earlier replica; their
    /// numbers are never reused). Empty: no bound.
    pub next_seq: Vec<u64>,
    /// After the plan, go on with the configuration's own sources (a
    /// replica taking over live traffic) or stop (a replay check).
    pub then_sources: bool,
}

impl ReplayPlan {
    /// Packets to replay, those still arriving included.
    pub fn len(&self) -> u64 {
        self.packets.len() as u64 + self.streamed.as_ref().map_or(0, |s| s.1)
    }

    /// No packet to replay.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Per worker: the first log sequence after snapshot `snap` (1 when
    /// replaying from the start).
    pub fn first_seqs(snap: Option<&Snapshot>, nworkers: usize) -> Vec<u64> {
        Self::per_worker(snap, nworkers, |w| w.last_seq + 1, 1)
    }

    /// Per worker, the first input packet id after `snap`'s cut (0 without
    /// a snapshot).
    pub fn first_packets(snap: Option<&Snapshot>, nworkers: usize) -> Vec<u64> {
        Self::per_worker(snap, nworkers, |w| w.next_packet, 0)
    }

    fn per_worker(
        snap: Option<&Snapshot>,
        nworkers: usize,
        f: impl Fn(&WorkerSnapshot) -> u64,
        none: u64,
    ) -> Vec<u64> {
        (0..nworkers)
            .map(|w| snap.and_then(|s| s.workers.get(w)).map_or(none, &f))
            .collect()
    }
}

impl Replay for ReplayPlan {
    /// The logs cut back to what a replay can follow from the restored
    /// counters ([`trim_to_gap_free`]); the records cut off are voided
    /// (their packets run again and are logged anew). New records are
    /// numbered after every record the output logger holds, trimmed ones
    /// included, so that none of its sequence numbers is reused.
    fn start(&self, restored_counters: &[u64]) -> ReplayStart {
        let mut logs = self.logs.clone();
        trim_to_gap_free(&mut logs, restored_counters);
        let nworkers = self
            .logs
            .len()
            .max(self.first_seq.len())
            .max(self.next_seq.len());
        let mut start = ReplayStart {
            logs: Vec::new(),
            next_seq: Vec::with_capacity(nworkers),
            void: Vec::new(),
            then_sources: self.then_sources,
        };
        for w in 0..nworkers {
            let held = self.logs.get(w).map_or(&[][..], Vec::as_slice);
            let kept = logs.get(w).map_or(&[][..], Vec::as_slice);
            let first = self.first_seq.get(w).copied().unwrap_or(1);
            let after = kept.last().map_or(first.saturating_sub(1), |r| r.0);
            if let Some(&(through, _)) = held.last().filter(|r| r.0 > after) {
                start.void.push((w, after, through));
            }
            let held_last = held.last().map_or(0, |r| r.0);
            let bound = self.next_seq.get(w).copied().unwrap_or(0);
            start.next_seq.push(first.max(held_last + 1).max(bound));
        }
        start.logs = logs;
        start
    }

    fn feed(&self, start: &ReplayStart, to: &mut ReplayFeed<'_>) -> Result<u64, String> {
        feed(self, &start.logs, to)
    }

    fn len(&self) -> u64 {
        ReplayPlan::len(self)
    }
}

/// Replay plans from a link that kept everything it was sent (an in-memory
/// output logger stand-in, for tests and measurements).
pub trait ReplayPlanFrom {
    /// A plan that replays everything this link saw from the start, on
    /// `nworkers` workers.
    fn full_replay_plan(&self, nworkers: usize) -> ReplayPlan;
    /// A plan that replays what follows snapshot `snap` (everything when
    /// `None`): the inputs from its cut on and each worker's records after
    /// its logged position.
    fn replay_plan_after(&self, snap: Option<&Snapshot>, nworkers: usize) -> ReplayPlan;
}

impl ReplayPlanFrom for MemoryLink {
    fn full_replay_plan(&self, nworkers: usize) -> ReplayPlan {
        self.replay_plan_after(None, nworkers)
    }

    fn replay_plan_after(&self, snap: Option<&Snapshot>, nworkers: usize) -> ReplayPlan {
        let cut = snap.map_or(0, |s| s.next_packet);
        let last = |w: usize| {
            snap.and_then(|s| s.workers.get(w))
                .map_or(0, |x| x.last_seq)
        };
        let mut logs = self.logs.lock().clone();
        logs.resize_with(nworkers, Vec::new);
        for (w, log) in logs.iter_mut().enumerate() {
            log.retain(|(seq, _)| *seq > last(w));
        }
        let mut packets: Vec<Packet> = self
            .inputs
            .lock()
            .iter()
            .filter(|p| p.anno.id >= cut)
            .cloned()
            .collect();
        packets.sort_by_key(|p| p.anno.id);
        ReplayPlan {
            packets,
            streamed: None,
            next_seq: Vec::new(),
            logs,
            first_seq: ReplayPlan::first_seqs(snap, nworkers),
            first_packet: ReplayPlan::first_packets(snap, nworkers),
            then_sources: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftmb_core::pal::Pal;

    fn pal(seq: u64, packet: u64, var: u32, count: u64) -> (u64, LogRecord) {
        (seq, LogRecord::Pal(Pal { packet, var, count }))
    }

    #[test]
    fn start_voids_what_it_cuts_and_numbers_new_records_past_all_held() {
        // Worker 0's second record (var 0 at count 3) is past a gap (count
        // 2 was lost): it is cut and voided. Worker 1 holds nothing past
        // its first sequence; the output logger's frontier bounds it.
        let plan = ReplayPlan {
            logs: vec![vec![pal(5, 10, 0, 1), pal(6, 12, 0, 3)], vec![]],
            first_seq: vec![5, 1],
            next_seq: vec![0, 9],
            then_sources: true,
            ..ReplayPlan::default()
        };
        let start = plan.start(&[0]);
        assert_eq!(start.logs, vec![vec![pal(5, 10, 0, 1)], vec![]]);
        assert_eq!(start.void, vec![(0, 5, 6)]);
        assert_eq!(start.next_seq, vec![7, 9]);
        assert!(start.then_sources);
    }
}
