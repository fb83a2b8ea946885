//! The snapshot-only baseline (Remus, COLO, Pico style rollback recovery,
//! the paper's main point of comparison): workers log no state accesses,
//! the master still takes a snapshot every k ms, and because nothing but a
//! snapshot can recreate the state an output depends on, every output is
//! held until a snapshot whose cut lies past the output's input packet has
//! been committed. Its per-packet latency is therefore up to the snapshot
//! interval plus the snapshot's own cost, which is what the paper's latency
//! CDF shows for it.
//!
//! It implements [`FtLink`] so the same in-process harness runs it: run the
//! router with fault tolerance (snapshots on) and
//! [`ftmb_core::runtime::RunOptions::ft_unlogged`] set.

use ftmb_core::egress::Sink;
use ftmb_core::ft::{FtLink, OutputBatch, Shipment};
use ftmb_core::pal::LogRecord;
use ftmb_core::snapshot::Snapshot;
use ftmb_core::Packet;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

/// Counters of a [`SnapshotOnlyLink`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotOnlyStats {
    /// Outputs written to sinks.
    pub released: u64,
    /// Outputs held right now.
    pub held: usize,
    /// Most outputs held at once.
    pub max_held: usize,
    /// Snapshots committed.
    pub snapshots: u64,
    /// Outputs released by [`SnapshotOnlyLink::finish`] (the end of the
    /// run stands for a last snapshot).
    pub released_at_finish: u64,
    /// Log records received (must stay 0: nothing is logged).
    pub records: u64,
}

impl SnapshotOnlyStats {
    /// The counters as the `snapshot_only` object of `ftmb bench --mode
    /// snapshot-only`'s report.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "released": self.released, "max_held": self.max_held,
            "snapshots": self.snapshots, "released_at_finish": self.released_at_finish,
            "log_records": self.records,
        })
    }
}

#[derive(Default)]
struct State {
    held: VecDeque<OutputBatch>,
    held_count: usize,
    stats: SnapshotOnlyStats,
    /// Per committed snapshot: (stall in ns, state bytes).
    stalls: Vec<(u64, usize)>,
    staging: Vec<Packet>,
}

/// The snapshot-only output path: holds outputs until a snapshot covering
/// them commits.
pub struct SnapshotOnlyLink {
    sinks: Vec<Arc<Sink>>,
    state: Mutex<State>,
}

impl SnapshotOnlyLink {
    /// A link writing released outputs to `sinks`.
    pub fn new(sinks: Vec<Arc<Sink>>) -> SnapshotOnlyLink {
        SnapshotOnlyLink {
            sinks,
            state: Mutex::new(State::default()),
        }
    }

    /// Release every output still held (the end of the run: the last
    /// snapshot), and flush the sinks.
    pub fn finish(&self) {
        let mut st = self.state.lock();
        let before = st.stats.released;
        self.release_before(&mut st, u64::MAX);
        st.stats.released_at_finish += st.stats.released - before;
        for s in &self.sinks {
            if let Err(e) = s.egress.lock().flush() {
                s.error.lock().get_or_insert_with(|| e.to_string());
            }
        }
    }

    /// Counters.
    pub fn stats(&self) -> SnapshotOnlyStats {
        let st = self.state.lock();
        SnapshotOnlyStats {
            held: st.held_count,
            ..st.stats.clone()
        }
    }

    /// Per committed snapshot: the workers' stall (ns) and the state bytes.
    pub fn snapshot_stalls(&self) -> Vec<(u64, usize)> {
        self.state.lock().stalls.clone()
    }

    /// Write every held output whose input packet id is below `cut`, in
    /// arrival order; keep the rest.
    fn release_before(&self, st: &mut State, cut: u64) {
        let mut keep = VecDeque::with_capacity(st.held.len());
        let mut staging = std::mem::take(&mut st.staging);
        while let Some(batch) = st.held.pop_front() {
            let mut rest = OutputBatch::default();
            let mut sink_of_staged = None;
            for o in batch.iter() {
                if o.packet_id >= cut {
                    rest.push_parts(
                        (o.sink, o.packet_id, o.ordinal, o.ts_ns),
                        o.dv.iter().copied(),
                        o.data,
                    );
                    continue;
                }
                if sink_of_staged.is_some_and(|s| s != o.sink) {
                    self.write(sink_of_staged, &mut staging);
                }
                sink_of_staged = Some(o.sink);
                let mut p = Packet::from_bytes(o.data);
                p.anno.id = o.packet_id;
                p.anno.ts_ns = o.ts_ns;
                staging.push(p);
                st.stats.released += 1;
                st.held_count -= 1;
            }
            self.write(sink_of_staged, &mut staging);
            if !rest.is_empty() {
                keep.push_back(rest);
            }
        }
        st.held = keep;
        st.staging = staging;
    }

    fn write(&self, sink: Option<u16>, staging: &mut Vec<Packet>) {
        if staging.is_empty() {
            return;
        }
        if let Some(s) = sink.and_then(|s| self.sinks.get(s as usize)) {
            if let Err(e) = s.egress.lock().write(staging) {
                s.error.lock().get_or_insert_with(|| e.to_string());
            }
        }
        staging.clear();
    }
}

impl FtLink for SnapshotOnlyLink {
    fn ship_log(&self, _worker: usize, records: Vec<(u64, LogRecord)>) {
        self.state.lock().stats.records += records.len() as u64;
    }
    fn ship_outputs(&self, _worker: usize, outputs: OutputBatch) {
        let mut st = self.state.lock();
        st.held_count += outputs.len();
        st.stats.max_held = st.stats.max_held.max(st.held_count);
        st.held.push_back(outputs);
    }
    /// Committed at once (stored in this process, as the in-process FTMB
    /// output logger stores its snapshots): every output of an input packet
    /// before the cut may now leave.
    fn store_snapshot(&self, snapshot: Snapshot) {
        let mut st = self.state.lock();
        st.stalls.push((snapshot.stall_ns, snapshot.state_bytes()));
        st.stats.snapshots += 1;
        self.release_before(&mut st, snapshot.next_packet);
    }
    fn ship(&self, worker: usize, shipment: Shipment) {
        if !shipment.records.is_empty() {
            self.ship_log(worker, shipment.records);
        }
        if !shipment.outputs.is_empty() {
            self.ship_outputs(worker, shipment.outputs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftmb_core::egress::Egress;

    struct Collect(Arc<Mutex<Vec<u64>>>);
    impl Egress for Collect {
        fn write(&mut self, pkts: &[Packet]) -> std::io::Result<()> {
            self.0.lock().extend(pkts.iter().map(|p| p.anno.id));
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn batch(ids: &[u64]) -> OutputBatch {
        let mut b = OutputBatch::default();
        for &id in ids {
            b.push_parts((0, id, 0, 0), [], &[0u8; 20]);
        }
        b
    }

    #[test]
    fn outputs_wait_for_a_snapshot_past_their_packet() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::new(Sink {
            element: "out".into(),
            egress: Mutex::new(Box::new(Collect(seen.clone()))),
            error: Mutex::new(None),
        });
        let link = SnapshotOnlyLink::new(vec![sink]);
        link.ship_outputs(0, batch(&[0, 1, 2]));
        link.ship_outputs(1, batch(&[3, 4]));
        assert!(seen.lock().is_empty(), "nothing leaves before a snapshot");
        let snap = Snapshot {
            next_packet: 4,
            ..Snapshot::default()
        };
        link.store_snapshot(snap);
        assert_eq!(*seen.lock(), vec![0, 1, 2, 3]);
        assert_eq!(link.stats().held, 1);
        link.finish();
        assert_eq!(*seen.lock(), vec![0, 1, 2, 3, 4]);
        let st = link.stats();
        assert_eq!((st.released, st.held, st.snapshots), (5, 0, 1));
        assert_eq!(st.released_at_finish, 1);
    }
}
