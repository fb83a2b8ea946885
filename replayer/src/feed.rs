//! Feeding a replay: the plan's packets go to the workers in the master's
//! batches. Each worker's logged clock records give the first packet and
//! the size of each batch it ran ([`LogRecord::Clock`]); past a worker's
//! logged prefix, batches are cut by size. A packet before its worker's
//! cut ([`ReplayPlan::first_packet`]) is skipped: the snapshot reflects it.
//!
//! The master's batches are as small as its input was slow (a packet or
//! two at 200k packets/s); handed over one by one, each would cost a queue
//! operation and often a wake-up of the worker. They go in groups of at
//! least a run's batch of packets, or sooner when the input pauses.

use crate::ReplayPlan;
use ftmb_core::packet::Packet;
use ftmb_core::pal::LogRecord;
use ftmb_core::replay::{BatchGroup, ReplayFeed};
use std::collections::VecDeque;

/// Hand `plan`'s packets to `to`, following `logs` (per worker, the
/// records the replay follows). Returns the next input id, or an error
/// when the input ended before every packet of the plan came.
pub fn feed(
    plan: &ReplayPlan,
    logs: &[Vec<(u64, LogRecord)>],
    to: &mut ReplayFeed<'_>,
) -> Result<u64, String> {
    let mut feeder = Feeder::new(plan, logs, to.nworkers(), to.batch());
    let mut fed = 0u64;
    let mut preloaded = plan.packets.iter().cloned();
    let mut streamed = plan
        .streamed
        .as_ref()
        .map(|(rx, n)| (rx, usize::try_from(*n).unwrap_or(usize::MAX)));
    loop {
        let p = match preloaded.next() {
            Some(p) => p,
            None => match &mut streamed {
                Some((rx, left)) if *left > 0 => {
                    let p = match rx.try_recv() {
                        Ok(p) => Some(p),
                        Err(crossbeam_channel::TryRecvError::Empty) => {
                            // About to wait for the input: what is
                            // gathered goes now.
                            feeder.flush(to);
                            rx.recv().ok()
                        }
                        Err(crossbeam_channel::TryRecvError::Disconnected) => None,
                    };
                    match p {
                        Some(p) => {
                            *left -= 1;
                            p
                        }
                        None => break,
                    }
                }
                _ => break,
            },
        };
        fed += 1;
        feeder.push(p, to);
    }
    feeder.finish(to);
    if fed < plan.len() {
        return Err(format!(
            "replay: the input ended after {fed} of {} packets",
            plan.len()
        ));
    }
    Ok(feeder.next_id)
}

/// The batches being gathered, per worker.
struct Feeder<'p> {
    plan: &'p ReplayPlan,
    batch: usize,
    /// Per worker: the logged batches still to come, `(first packet,
    /// size)`.
    logged: Vec<VecDeque<(u64, u32)>>,
    /// Per worker: the batch being gathered, its source, and the size it
    /// must reach (the logged size, or `batch` past the log).
    pending: Vec<(u16, Vec<Packet>, usize)>,
    /// Per worker: whole batches not yet handed over, and their packets.
    outbox: Vec<(BatchGroup, usize)>,
    next_id: u64,
}

impl<'p> Feeder<'p> {
    fn new(
        plan: &'p ReplayPlan,
        logs: &[Vec<(u64, LogRecord)>],
        n: usize,
        batch: usize,
    ) -> Feeder<'p> {
        Feeder {
            plan,
            batch,
            logged: (0..n).map(|w| logged_batches(logs.get(w))).collect(),
            pending: (0..n).map(|_| (0, Vec::new(), batch)).collect(),
            outbox: (0..n).map(|_| (Vec::new(), 0)).collect(),
            next_id: 1,
        }
    }

    /// Gather packet `p` into its worker's batch; a batch that reaches
    /// its size goes to the worker's outbox.
    fn push(&mut self, p: Packet, to: &mut ReplayFeed<'_>) {
        let (src, id) = (p.anno.source, p.anno.id);
        let w = to.worker_of(&p);
        self.next_id = self.next_id.max(id + 1);
        if id < self.plan.first_packet.get(w).copied().unwrap_or(0) {
            // Its worker had processed it before the snapshot's cut.
            return;
        }
        let (psrc, pb, _) = &mut self.pending[w];
        if !pb.is_empty() && *psrc != src {
            let (s, b) = (*psrc, std::mem::take(pb));
            self.ship(w, s, b, to, false);
        }
        let (psrc, pb, target) = &mut self.pending[w];
        if pb.is_empty() {
            *target = match self.logged[w].front() {
                Some(&(first, count)) if first == id => {
                    self.logged[w].pop_front();
                    count as usize
                }
                _ => self.batch,
            };
        }
        *psrc = src;
        pb.push(p);
        if pb.len() >= *target {
            let b = std::mem::take(pb);
            self.ship(w, src, b, to, false);
        }
    }

    /// Put batch `b` in worker `w`'s outbox; hand the outbox over once it
    /// holds a run's batch of packets (or at once with `force`).
    fn ship(&mut self, w: usize, src: u16, b: Vec<Packet>, to: &mut ReplayFeed<'_>, force: bool) {
        let (group, npkts) = &mut self.outbox[w];
        if !b.is_empty() {
            *npkts += b.len();
            group.push((src, b));
        }
        if !group.is_empty() && (force || *npkts >= self.batch) {
            *npkts = 0;
            to.hand_over(w, std::mem::take(group));
        }
    }

    /// Hand over every outbox (the input pauses).
    fn flush(&mut self, to: &mut ReplayFeed<'_>) {
        for w in 0..self.outbox.len() {
            self.ship(w, 0, Vec::new(), to, true);
        }
    }

    /// Hand over every batch being gathered, whole or not, and every
    /// outbox.
    fn finish(&mut self, to: &mut ReplayFeed<'_>) {
        for w in 0..self.pending.len() {
            let (src, pb, _) = &mut self.pending[w];
            let (src, pb) = (*src, std::mem::take(pb));
            self.ship(w, src, pb, to, true);
        }
    }
}

/// A worker's logged batches, `(first packet, size)`, from its clock
/// records.
fn logged_batches(log: Option<&Vec<(u64, LogRecord)>>) -> VecDeque<(u64, u32)> {
    log.into_iter()
        .flatten()
        .filter_map(|(_, r)| match r {
            LogRecord::Clock { packet, count, .. } => Some((*packet, *count)),
            LogRecord::Pal(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftmb_core::headers::Framing;

    fn packet(id: u64) -> Packet {
        let mut p = Packet::from_bytes(&[0u8; 64]);
        p.anno.id = id;
        p
    }

    fn clock(seq: u64, packet: u64, count: u32) -> (u64, LogRecord) {
        (
            seq,
            LogRecord::Clock {
                packet,
                ns: 0,
                count,
            },
        )
    }

    /// Feed `plan` to one worker with batches of `batch`: the groups
    /// handed over, as lists of batch sizes.
    fn groups(plan: &ReplayPlan, batch: usize) -> (Result<u64, String>, Vec<Vec<usize>>) {
        let mut got = Vec::new();
        let mut hand_over = |w: usize, g: BatchGroup| {
            assert_eq!(w, 0);
            got.push(g.iter().map(|(_, b)| b.len()).collect::<Vec<_>>());
        };
        let framings = [Framing::Unknown];
        let mut to = ReplayFeed::new(1, batch, &framings, &mut hand_over);
        let r = feed(plan, &plan.logs, &mut to);
        (r, got)
    }

    #[test]
    fn packets_go_in_the_logged_batch_sizes_grouped_to_a_batch() {
        // The master ran batches of 1, 2 and 3 packets from packet 1; then
        // its log ends and batches are cut at 4.
        let plan = ReplayPlan {
            packets: (1..=12).map(packet).collect(),
            logs: vec![vec![clock(1, 1, 1), clock(2, 2, 2), clock(3, 4, 3)]],
            ..ReplayPlan::default()
        };
        let (r, got) = groups(&plan, 4);
        assert_eq!(r, Ok(13));
        // Groups reach 4 packets before they go: [1, 2, 3], then [4], the
        // rest at the end.
        assert_eq!(got, vec![vec![1, 2, 3], vec![4], vec![2]]);
    }

    #[test]
    fn packets_before_the_cut_are_skipped_and_a_short_input_is_an_error() {
        let (tx, rx) = crossbeam_channel::unbounded();
        for id in 3..=5 {
            tx.send(packet(id)).unwrap();
        }
        drop(tx);
        let plan = ReplayPlan {
            packets: (1..=2).map(packet).collect(),
            streamed: Some((rx, 5)),
            first_packet: vec![2],
            ..ReplayPlan::default()
        };
        let (r, got) = groups(&plan, 64);
        assert_eq!(
            r.unwrap_err(),
            "replay: the input ended after 5 of 7 packets"
        );
        // Packet 1 is before the cut; 2..=5 go in one batch.
        assert_eq!(got, vec![vec![4]]);
    }
}
