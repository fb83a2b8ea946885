//! The master's side of fault tolerance: what a worker hands to the output
//! logger, the run's fault-tolerance options, and the state digest that
//! checks replay (the replay itself comes through [`crate::replay`]).
//!
//! With [`FtOptions`] in the run options, every worker logs (see
//! [`crate::pal::LoggedAccess`]): a clock record at the start of each batch
//! (which also marks the batch boundary, so replay rebuilds the same
//! batches), a PAL for every shared-state access, and it tags every output
//! with its input packet id, an ordinal and its dependency vector. After
//! each batch the worker ships its new log records, then its outputs,
//! through an [`FtLink`]; nothing is written to a sink directly, the output
//! logger does that once an output is committed.

use crate::depvec::DepVector;
use crate::packet::Packet;
use crate::pal::LogRecord;
use crate::replay::Replay;
use crate::snapshot::Snapshot;
use std::sync::Arc;

/// An output waiting for commit, owned (as a test link keeps it).
#[derive(Clone, Debug)]
pub struct TaggedOutput {
    /// The sink (index in the router's sink table) it leaves through.
    pub sink: u16,
    /// Input packet id it derives from.
    pub packet_id: u64,
    /// Its rank among the outputs of that input packet (0, 1, ...).
    pub ordinal: u32,
    /// What it depends on.
    pub dv: DepVector,
    /// The packet.
    pub pkt: Packet,
}

/// One output of an [`OutputBatch`], borrowed.
#[derive(Clone, Copy, Debug)]
pub struct OutputRef<'a> {
    /// The sink (index in the router's sink table) it leaves through.
    pub sink: u16,
    /// Input packet id it derives from.
    pub packet_id: u64,
    /// Its rank among the outputs of that input packet (0, 1, ...).
    pub ordinal: u32,
    /// Emission time, nanoseconds.
    pub ts_ns: u64,
    /// Dependency vector entries (worker index order).
    pub dv: &'a [u64],
    /// The packet's bytes.
    pub data: &'a [u8],
}

impl OutputRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> TaggedOutput {
        self.to_owned_in(Packet::from_bytes(&[]))
    }

    /// An owned copy whose bytes go into `pkt`'s buffer (a packet an
    /// earlier copy left behind), so that holding outputs one after another
    /// allocates nothing.
    pub fn to_owned_in(&self, mut pkt: Packet) -> TaggedOutput {
        pkt.reset_from(self.data);
        pkt.anno.id = self.packet_id;
        pkt.anno.ts_ns = self.ts_ns;
        TaggedOutput {
            sink: self.sink,
            packet_id: self.packet_id,
            ordinal: self.ordinal,
            dv: DepVector::from_entries(self.dv),
            pkt,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct OutputMeta {
    sink: u16,
    ordinal: u32,
    packet_id: u64,
    ts_ns: u64,
    data_end: u32,
    dv_end: u32,
}

/// The outputs of one worker batch, packed: every output's bytes in one
/// buffer, the dependency vectors in another, the tags in a third. The
/// worker copies each output in (a hundred bytes or so) and frees its
/// packets itself, so handing a batch to the output logger costs three
/// allocations, not several per packet, and no packet memory is freed on
/// another thread.
#[derive(Clone, Debug, Default)]
pub struct OutputBatch {
    meta: Vec<OutputMeta>,
    bytes: Vec<u8>,
    dvs: Vec<u64>,
}

impl OutputBatch {
    /// Add an output of `pkt` tagged with dependency vector `dv`, with
    /// entry `w` raised to at least `seq`: every output of a batch depends
    /// on the batch's clock record.
    pub fn push(
        &mut self,
        (sink, ordinal): (u16, u32),
        pkt: &Packet,
        dv: &DepVector,
        (w, seq): (usize, u64),
    ) {
        let start = self.dvs.len();
        self.dvs.extend_from_slice(dv.entries());
        if seq > 0 {
            if self.dvs.len() <= start + w {
                self.dvs.resize(start + w + 1, 0);
            }
            let e = &mut self.dvs[start + w];
            *e = (*e).max(seq);
        }
        self.finish(sink, pkt.anno.id, ordinal, pkt.anno.ts_ns, pkt.data());
    }

    /// Add an output from its parts (as a decoder finds them).
    pub fn push_parts(
        &mut self,
        (sink, packet_id, ordinal, ts_ns): (u16, u64, u32, u64),
        dv: impl IntoIterator<Item = u64>,
        data: &[u8],
    ) {
        self.dvs.extend(dv);
        self.finish(sink, packet_id, ordinal, ts_ns, data);
    }

    fn finish(&mut self, sink: u16, packet_id: u64, ordinal: u32, ts_ns: u64, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        self.meta.push(OutputMeta {
            sink,
            ordinal,
            packet_id,
            ts_ns,
            data_end: self.bytes.len() as u32,
            dv_end: self.dvs.len() as u32,
        });
    }

    /// Empty it, keeping its memory.
    pub fn clear(&mut self) {
        self.meta.clear();
        self.bytes.clear();
        self.dvs.clear();
    }

    /// Outputs in the batch.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// True when the batch holds no output.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// The outputs, in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = OutputRef<'_>> + '_ {
        let mut data_start = 0usize;
        let mut dv_start = 0usize;
        self.meta.iter().map(move |m| {
            let (d0, v0) = (data_start, dv_start);
            data_start = m.data_end as usize;
            dv_start = m.dv_end as usize;
            OutputRef {
                sink: m.sink,
                packet_id: m.packet_id,
                ordinal: m.ordinal,
                ts_ns: m.ts_ns,
                dv: &self.dvs[v0..dv_start],
                data: &self.bytes[d0..data_start],
            }
        })
    }
}

/// Per input packet id, how many outputs it has made so far in the batch
/// being shipped: the next output's ordinal. Most packets make one output,
/// so ids sit in a direct-mapped table (an index and a compare per
/// output); two ids of one batch that share a table slot fall back to a
/// hash map. [`Ordinals::next_batch`] forgets everything in O(1).
#[derive(Debug)]
pub(crate) struct Ordinals {
    /// (packet id, outputs so far, batch generation) by `id % len`.
    direct: Box<[(u64, u32, u64)]>,
    /// Ids whose table slot another id of the batch holds.
    spill: crate::codec::FlowMap<u64, u32>,
    generation: u64,
}

/// Slots of the direct-mapped table (a power of two).
const ORDINAL_SLOTS: usize = 1024;

impl Default for Ordinals {
    fn default() -> Ordinals {
        Ordinals {
            direct: vec![(0, 0, 0); ORDINAL_SLOTS].into_boxed_slice(),
            spill: Default::default(),
            generation: 1,
        }
    }
}

impl Ordinals {
    /// The ordinal of packet `id`'s next output.
    #[inline]
    pub(crate) fn next(&mut self, id: u64) -> u32 {
        let g = self.generation;
        let slot = &mut self.direct[(id as usize) & (ORDINAL_SLOTS - 1)];
        if slot.2 != g {
            *slot = (id, 1, g);
            return 0;
        }
        if slot.0 == id {
            slot.1 += 1;
            return slot.1 - 1;
        }
        let n = self.spill.entry(id).or_insert(0);
        *n += 1;
        *n - 1
    }

    /// Start counting afresh.
    #[inline]
    pub(crate) fn next_batch(&mut self) {
        self.generation += 1;
        if !self.spill.is_empty() {
            self.spill.clear();
        }
    }
}

/// What a worker hands over after a batch: its new log records, then its
/// outputs (in that order: an output may depend on the batch's records).
#[derive(Clone, Debug, Default)]
pub struct Shipment {
    /// Log records, `(sequence, record)`, consecutive.
    pub records: Vec<(u64, LogRecord)>,
    /// Outputs.
    pub outputs: OutputBatch,
}

impl Shipment {
    /// Empty it, keeping its memory.
    pub fn clear(&mut self) {
        self.records.clear();
        self.outputs.clear();
    }
}

/// Where workers send their logs and outputs (the output logger, in process
/// or across a socket).
pub trait FtLink: Send + Sync {
    /// Input packets as the input side numbered them, before any worker
    /// sees them (the input logger's log). Default: not kept.
    fn log_input(&self, _pkts: &[Packet]) {}
    /// Worker `worker`'s new log records, in sequence order, contiguous with
    /// what it shipped before.
    fn ship_log(&self, worker: usize, records: Vec<(u64, LogRecord)>);
    /// Worker `worker`'s outputs of one batch, shipped after its records.
    fn ship_outputs(&self, worker: usize, outputs: OutputBatch);
    /// A consistent snapshot, to be stored (and, once stored, committed:
    /// logs before its cut may then be dropped).
    fn store_snapshot(&self, snapshot: Snapshot);
    /// A batch's records and outputs at once. Default: `ship_log`, then
    /// `ship_outputs`.
    fn ship(&self, worker: usize, shipment: Shipment) {
        if !shipment.records.is_empty() {
            self.ship_log(worker, shipment.records);
        }
        if !shipment.outputs.is_empty() {
            self.ship_outputs(worker, shipment.outputs);
        }
    }
    /// An emptied shipment of worker `worker`'s to fill next, if the link
    /// hands them back (so a worker reuses memory instead of allocating per
    /// batch: its own shipments, already grown to the size it fills).
    /// Default: none.
    fn spare(&self, _worker: usize) -> Option<Shipment> {
        None
    }
    /// A replica cut worker `worker`'s replay after sequence `after`: the
    /// stored records `after+1..=through` (the dead master's, past a
    /// record it never shipped) were not followed, their packets ran again
    /// and are logged anew after `through`. Sent before anything else, so
    /// that a later replica does not follow them. Default: nothing kept.
    fn void_records(&self, _worker: usize, _after: u64, _through: u64) {}
    /// A snapshot round opened (`true`: the workers are stopping at their
    /// cuts, and the first to arrive waits for the others) or closed. A
    /// logger thread that shares the workers' cores lets them have the CPU
    /// meanwhile. Default: nothing.
    fn snapshot_round(&self, _open: bool) {}
}

/// When the master takes snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotTrigger {
    /// Every so often (the paper's k ms).
    Every(std::time::Duration),
    /// Every so many input packets (deterministic, for tests).
    EveryPackets(u64),
}

/// Fault-tolerance settings of a run.
#[derive(Clone)]
pub struct FtOptions {
    /// Where logs and outputs go.
    pub link: Arc<dyn FtLink>,
    /// Replay this first (a replica taking over; see [`crate::replay`]).
    pub replay: Option<Arc<dyn Replay>>,
    /// Restore this snapshot before replaying.
    pub restore: Option<Arc<Snapshot>>,
    /// Take snapshots.
    pub snapshots: Option<SnapshotTrigger>,
}

/// An in-memory output logger stand-in: keeps everything it is sent. For
/// tests and measurements of the master side alone.
#[derive(Default)]
pub struct MemoryLink {
    /// Input packets, in id order.
    pub inputs: parking_lot::Mutex<Vec<Packet>>,
    /// Per worker: every record shipped, in order.
    pub logs: parking_lot::Mutex<Vec<Vec<(u64, LogRecord)>>>,
    /// Every output shipped, with the worker that shipped it.
    pub outputs: parking_lot::Mutex<Vec<(usize, TaggedOutput)>>,
    /// Every snapshot stored.
    pub snapshots: parking_lot::Mutex<Vec<Snapshot>>,
}

impl FtLink for MemoryLink {
    fn log_input(&self, pkts: &[Packet]) {
        self.inputs.lock().extend_from_slice(pkts);
    }
    fn ship_log(&self, worker: usize, records: Vec<(u64, LogRecord)>) {
        let mut logs = self.logs.lock();
        if logs.len() <= worker {
            logs.resize_with(worker + 1, Vec::new);
        }
        logs[worker].extend(records);
    }
    fn ship_outputs(&self, worker: usize, outputs: OutputBatch) {
        self.outputs
            .lock()
            .extend(outputs.iter().map(|o| (worker, o.to_owned())));
    }
    fn store_snapshot(&self, snapshot: Snapshot) {
        self.snapshots.lock().push(snapshot);
    }
}

impl MemoryLink {
    /// The (input id, ordinal) of every output shipped.
    pub fn output_keys(&self) -> std::collections::HashSet<(u64, u32)> {
        self.outputs
            .lock()
            .iter()
            .map(|(_, o)| (o.packet_id, o.ordinal))
            .collect()
    }
}

/// FNV-1a over a byte string: the state digest compared by replay tests.
pub fn digest(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl std::fmt::Debug for FtOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtOptions")
            .field("replay_packets", &self.replay.as_ref().map(|p| p.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_count_per_packet_and_start_afresh_each_batch() {
        let mut o = Ordinals::default();
        let n = ORDINAL_SLOTS as u64;
        // 7 and 7 + n share a slot: the second spills.
        for (id, want) in [
            (7, 0),
            (7, 1),
            (7 + n, 0),
            (9, 0),
            (7 + n, 1),
            (7, 2),
            (9, 1),
        ] {
            assert_eq!(o.next(id), want, "id {id}");
        }
        o.next_batch();
        for (id, want) in [(7 + n, 0), (7, 0), (7 + n, 1), (7, 1)] {
            assert_eq!(o.next(id), want, "id {id}");
        }
    }

    /// `OutputBatch::push` against the rule written out: the output's
    /// vector is the worker's, with the worker's own entry raised to the
    /// batch's clock record (never lowered; untouched without one), and
    /// every output keeps its own vector, tags and bytes.
    #[test]
    fn push_tags_each_output_with_the_worker_vector_and_its_clock_record() {
        let mut rng = crate::rng::Rng::new(11);
        let mut b = OutputBatch::default();
        let mut want = Vec::new();
        for i in 0..500u64 {
            let n = 1 + rng.below(5) as usize;
            let len = rng.below(n as u64 + 1) as usize;
            let entries: Vec<u64> = (0..len).map(|_| rng.below(20)).collect();
            let dv = DepVector::from_entries(&entries);
            let w = rng.below(n as u64) as usize;
            let seq = if rng.below(4) == 0 { 0 } else { rng.below(25) };
            let mut pkt = Packet::from_bytes(&i.to_be_bytes()[..1 + (i % 8) as usize]);
            pkt.anno.id = i + 1;
            pkt.anno.ts_ns = 3 * i;
            let tags = ((i % 3) as u16, (i % 5) as u32);
            b.push(tags, &pkt, &dv, (w, seq));
            // The rule, entry by entry, over the worker count.
            let mut e: Vec<u64> = (0..n)
                .map(|x| dv.entries().get(x).copied().unwrap_or(0))
                .collect();
            if seq > 0 {
                e[w] = e[w].max(seq);
            }
            want.push((tags, i + 1, 3 * i, e, pkt.data().to_vec()));
        }
        assert_eq!(b.len(), want.len());
        for (o, (tags, id, ts, e, data)) in b.iter().zip(&want) {
            let mut got = o.dv.to_vec();
            got.resize(e.len().max(got.len()), 0);
            assert!(got[e.len()..].iter().all(|&x| x == 0), "{got:?}");
            got.truncate(e.len());
            assert_eq!(&got, e, "output of packet {id}");
            assert_eq!((o.sink, o.ordinal), *tags);
            assert_eq!((o.packet_id, o.ts_ns), (*id, *ts));
            assert_eq!(o.data, &data[..]);
        }
    }
}
