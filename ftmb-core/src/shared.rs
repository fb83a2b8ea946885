//! Shared state: the only way elements may share mutable state between
//! workers (SPEC section 3).
//!
//! An element declares a shared variable at initialize with
//! [`crate::element::InitCtx::shared`], giving a name and a number of
//! *slots* (lock domains: a large table is split into buckets, and each
//! bucket is one logged variable). Every worker's instance of the element
//! gets a handle to the same variable. Each slot has a lock, an access
//! counter and a vector clock; every access goes through
//! [`Shared::access`], which takes the lock and lets the runtime log the
//! access (its packet id, the variable id and the counter value) and merge
//! dependency vectors. Variable ids are assigned in declaration order, which
//! is deterministic from the configuration, so a replica rebuilds the same
//! ids.

use crate::context::Ctx;
use crate::depvec::DepVector;
use crate::headers::FlowId;
use crate::packet::Packet;
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use std::any::Any;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// Encoding of state for snapshots. Every shared value and every element's
/// private state implements it, so a snapshot can capture and restore it.
pub trait StateCodec: Sized + Send + 'static {
    /// Append the encoding of `self`: canonical, equal values encode to
    /// equal bytes (state digests compare it).
    fn encode(&self, out: &mut Vec<u8>);
    /// Append an encoding that [`StateCodec::decode`] reads back as the
    /// same value, but with the entries of unordered containers (hash
    /// maps) in whatever order is cheapest: what snapshots use, where
    /// sorting a flow table of 100k flows took half the encoding time.
    fn encode_any_order(&self, out: &mut Vec<u8>) {
        self.encode(out)
    }
    /// Decode a value, advancing `inp`.
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError>;
    /// Advance `inp` past one encoded value without building it (a snapshot
    /// load finds where each slot lies first, then decodes slots on
    /// several threads). By default the value is decoded and dropped; a
    /// type whose encoding says its own length skips it for nothing.
    fn skip(inp: &mut &[u8]) -> Result<(), CodecError> {
        Self::decode(inp).map(drop)
    }
}

/// A snapshot's state did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state decode error: {0}")]
pub struct CodecError(pub String);

/// The next `n` bytes of `inp`, advancing it; an error when fewer are left.
fn take<'a>(inp: &mut &'a [u8], n: usize) -> Result<&'a [u8], CodecError> {
    if inp.len() < n {
        return Err(CodecError(format!(
            "truncated: need {n} bytes, have {}",
            inp.len()
        )));
    }
    let (a, b) = inp.split_at(n);
    *inp = b;
    Ok(a)
}

macro_rules! codec_int {
    ($($t:ty),*) => {$(
        impl StateCodec for $t {
            fn encode(&self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_le_bytes()); }
            fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
                let b = take(inp, std::mem::size_of::<$t>())?;
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                Ok(<$t>::from_le_bytes(a))
            }
        }
    )*};
}
codec_int!(u8, u16, u32, u64, i64, f64);

impl StateCodec for usize {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u64).encode(out)
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        usize::try_from(u64::decode(inp)?).map_err(|_| CodecError("usize overflow".into()))
    }
}

impl StateCodec for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self))
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        Ok(u8::decode(inp)? != 0)
    }
}

impl<const N: usize> StateCodec for [u8; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self)
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(take(inp, N)?);
        Ok(a)
    }
}

impl<T: StateCodec> StateCodec for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        // A byte string (possibly megabytes) in one copy.
        if let Some(bytes) = (self as &dyn std::any::Any).downcast_ref::<Vec<u8>>() {
            (bytes.len() as u64).encode(out);
            out.extend_from_slice(bytes);
            return;
        }
        encode_seq(self, out);
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        let n = u64::decode(inp)? as usize;
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<u8>() {
            let bytes: Box<dyn std::any::Any> = Box::new(take(inp, n)?.to_vec());
            if let Ok(v) = bytes.downcast::<Vec<T>>() {
                return Ok(*v);
            }
        }
        let mut v = Vec::with_capacity(n.min(inp.len()));
        for _ in 0..n {
            v.push(T::decode(inp)?);
        }
        Ok(v)
    }
}

/// A sequence as `Vec<T>` encodes it (length, then each item), from a
/// slice: no `Vec` needed to write one.
pub(crate) fn encode_seq<T: StateCodec>(xs: &[T], out: &mut Vec<u8>) {
    (xs.len() as u64).encode(out);
    for x in xs {
        x.encode(out);
    }
}

impl<T: StateCodec> StateCodec for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(x) => {
                out.push(1);
                x.encode(out)
            }
        }
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        match u8::decode(inp)? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(inp)?)),
            t => Err(CodecError(format!("bad option tag {t}"))),
        }
    }
}

impl<A: StateCodec, B: StateCodec> StateCodec for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        Ok((A::decode(inp)?, B::decode(inp)?))
    }
}

impl<K, V, S> StateCodec for HashMap<K, V, S>
where
    K: StateCodec + Eq + std::hash::Hash + Ord + Clone,
    V: StateCodec,
    S: std::hash::BuildHasher + Default + Send + 'static,
{
    /// Encoded in key order, so equal maps encode to equal bytes (state
    /// digests compare encodings).
    fn encode(&self, out: &mut Vec<u8>) {
        encode_map(self.len(), self.iter(), true, out);
    }
    /// In the map's own order (snapshots): the same entries, unsorted.
    fn encode_any_order(&self, out: &mut Vec<u8>) {
        encode_map(self.len(), self.iter(), false, out);
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        let n = u64::decode(inp)? as usize;
        let mut m = HashMap::with_capacity_and_hasher(n.min(inp.len()), S::default());
        for _ in 0..n {
            let k = K::decode(inp)?;
            let v = V::decode(inp)?;
            m.insert(k, v);
        }
        Ok(m)
    }
}

/// A map of `len` entries as [`HashMap`]'s [`StateCodec`] writes it: the
/// count, then each key and value, in key order when `sorted` (canonical,
/// for digests), else in the order given.
pub(crate) fn encode_map<'a, K, V>(
    len: usize,
    entries: impl Iterator<Item = (&'a K, &'a V)>,
    sorted: bool,
    out: &mut Vec<u8>,
) where
    K: StateCodec + Ord + 'a,
    V: StateCodec + 'a,
{
    (len as u64).encode(out);
    let mut write = |(k, v): (&K, &V)| {
        k.encode(out);
        v.encode(out);
    };
    if sorted {
        let mut all: Vec<(&K, &V)> = entries.collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter().for_each(&mut write);
    } else {
        entries.for_each(write);
    }
}

/// The hash map elements use for flow tables: FxHash, several times
/// faster than SipHash on small keys (flow ids are not attacker-chosen
/// hash-flooding material here: a slot holds a bounded number of flows).
pub type FlowMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

/// A flow id in 13 bytes ([`FlowId::to_bytes`]).
impl StateCodec for FlowId {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        Ok(FlowId::from_bytes(&<[u8; FlowId::BYTES]>::decode(inp)?))
    }
}

/// One lock domain of a shared variable.
pub struct Slot<T> {
    pub(crate) value: T,
    /// Number of accesses so far (the PAL sequence of this variable).
    pub(crate) counter: u64,
    /// Vector clock of the accesses that shaped the value.
    pub(crate) clock: DepVector,
    /// The last snapshot epoch this slot was captured for.
    captured: u64,
    /// Its state for that snapshot (counter, clock, value), when a worker
    /// wrote it before the snapshot's capture reached it: a copy, which
    /// the capture thread encodes. Copying a bucket of a flow table runs
    /// at memory speed; encoding it on the worker's path, as before, took
    /// 6 % of a NAT worker's samples with 100k flows (it writes nearly
    /// every slot before the capture thread gets to it); the copy, half
    /// that.
    pending: Option<(u64, DepVector, T)>,
}

/// Counter, clock, then the value: canonically for digests
/// (`canonical`), in any order for snapshots.
fn encode_slot<T: StateCodec>(
    counter: u64,
    clock: &DepVector,
    value: &T,
    out: &mut Vec<u8>,
    canonical: bool,
) {
    counter.encode(out);
    encode_seq(clock.entries(), out);
    if canonical {
        value.encode(out);
    } else {
        value.encode_any_order(out);
    }
}

impl<T: StateCodec + Clone> Slot<T> {
    fn encode(&self, out: &mut Vec<u8>, canonical: bool) {
        encode_slot(self.counter, &self.clock, &self.value, out, canonical);
    }

    /// Before the first change after snapshot `epoch`'s cut: keep the
    /// slot's state at the cut (copy on write, per slot).
    #[inline]
    fn capture_before_write(&mut self, epoch: u64) {
        if self.captured < epoch {
            self.pending = Some((self.counter, self.clock.clone(), self.value.clone()));
            self.captured = epoch;
        }
    }
}

/// The variable behind a [`Shared`] handle.
pub struct SharedVar<T> {
    name: String,
    base_id: u32,
    slots: Box<[CachePadded<Mutex<Slot<T>>>]>,
    /// The snapshot being captured (0: none yet); see
    /// [`SharedDyn::begin_capture`].
    epoch: std::sync::atomic::AtomicU64,
}

/// A handle to a shared variable (cheap to clone; all clones and all
/// workers' handles refer to one variable).
pub struct Shared<T> {
    var: Arc<SharedVar<T>>,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            var: self.var.clone(),
        }
    }
}

impl<T: StateCodec + Clone> Shared<T> {
    /// Number of slots (lock domains).
    #[inline]
    pub fn slots(&self) -> usize {
        self.var.slots.len()
    }

    /// The variable id of `slot` (deterministic from the configuration).
    #[inline]
    pub fn var_id(&self, slot: usize) -> u32 {
        self.var.base_id + slot as u32
    }

    /// Access slot `slot` on behalf of packet `pkt`: takes the slot's lock,
    /// lets the runtime log the access and merge dependency vectors, then
    /// runs `f` on the value. `slot` is reduced modulo the slot count.
    #[inline]
    pub fn access<R>(
        &self,
        ctx: &mut Ctx,
        pkt: &mut Packet,
        slot: usize,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let slot = slot % self.var.slots.len();
        let var_id = self.var_id(slot);
        let cell = &self.var.slots[slot];
        let mut g = ctx.lock_for_access(cell, var_id, pkt);
        g.capture_before_write(self.var.epoch.load(std::sync::atomic::Ordering::Acquire));
        ctx.record_access(&mut g, var_id, pkt);
        // Remote-state baseline: a round trip to the store around `f`
        // (just `f` when the context has no store).
        ctx.remote_access(var_id, &mut g.value, f)
    }

    /// Read every slot without logging, for handlers and statistics (never
    /// from the packet path).
    pub fn inspect<R>(&self, mut f: impl FnMut(&T) -> R) -> Vec<R> {
        self.var.slots.iter().map(|s| f(&s.lock().value)).collect()
    }
}

/// Type-erased view of a shared variable, for snapshots and digests.
pub trait SharedDyn: Send + Sync {
    /// The variable's name (`element.state`).
    fn name(&self) -> &str;
    /// First variable id.
    fn base_id(&self) -> u32;
    /// Number of slots.
    fn slots(&self) -> usize;
    /// Encode every slot's value, counter and clock.
    fn encode_all(&self, out: &mut Vec<u8>);
    /// Start capturing snapshot `epoch` (increasing, from 1), with every
    /// worker stopped at the cut: from now on the first access to each slot
    /// keeps the slot's state at the cut before changing it, so the
    /// snapshot can be encoded while the workers run on.
    fn begin_capture(&self, epoch: u64);
    /// Encode snapshot `epoch` as [`SharedDyn::encode_all`] would have at
    /// the cut: slots no worker has touched since are encoded now, the
    /// others from what the workers kept. Each slot is encoded under its
    /// lock: `out` should have room with its pages touched, or a page
    /// fault stops every worker that needs the slot meanwhile.
    fn finish_capture(&self, epoch: u64, out: &mut Vec<u8>);
    /// Restore what `encode_all` wrote.
    fn decode_all(&self, inp: &mut &[u8]) -> Result<(), CodecError>;
    /// Access counters of every slot.
    fn counters(&self) -> Vec<u64>;
}

impl<T: StateCodec + Clone> SharedDyn for SharedVar<T> {
    fn name(&self) -> &str {
        &self.name
    }
    fn base_id(&self) -> u32 {
        self.base_id
    }
    fn slots(&self) -> usize {
        self.slots.len()
    }
    fn encode_all(&self, out: &mut Vec<u8>) {
        (self.slots.len() as u64).encode(out);
        for s in self.slots.iter() {
            s.lock().encode(out, true);
        }
    }
    fn begin_capture(&self, epoch: u64) {
        self.epoch
            .store(epoch, std::sync::atomic::Ordering::Release);
    }
    fn finish_capture(&self, epoch: u64, out: &mut Vec<u8>) {
        (self.slots.len() as u64).encode(out);
        for s in self.slots.iter() {
            let mut g = s.lock();
            if g.captured < epoch {
                g.encode(out, false);
                g.captured = epoch;
            } else if let Some((counter, clock, value)) = g.pending.take() {
                // The copy is this thread's: encoded (and freed) after
                // the slot's lock is let go.
                drop(g);
                encode_slot(counter, &clock, &value, out, false);
            }
        }
    }
    fn decode_all(&self, inp: &mut &[u8]) -> Result<(), CodecError> {
        let n = u64::decode(inp)? as usize;
        if n != self.slots.len() {
            return Err(CodecError(format!(
                "{}: snapshot has {n} slots, configuration has {}",
                self.name,
                self.slots.len()
            )));
        }
        // Where each slot's encoding lies, then the slots decoded on as
        // many threads as the state is worth (building a 100k-flow table's
        // hash maps is most of a replica's restore).
        let whole = *inp;
        let mut ranges = Vec::with_capacity(n);
        for _ in 0..n {
            let start = whole.len() - inp.len();
            u64::decode(inp)?;
            Vec::<u64>::skip(inp)?;
            T::skip(inp)?;
            ranges.push(start..whole.len() - inp.len());
        }
        let bytes = whole.len() - inp.len();
        let threads = decode_threads(bytes).min(n.max(1));
        let per = n.div_ceil(threads);
        let load = |slots: &[CachePadded<Mutex<Slot<T>>>], ranges: &[Range<usize>]| {
            for (s, r) in slots.iter().zip(ranges) {
                let mut b = whole.get(r.clone()).unwrap_or_default();
                let counter = u64::decode(&mut b)?;
                let clock = DepVector::from_entries(&Vec::<u64>::decode(&mut b)?);
                let value = T::decode(&mut b)?;
                let mut g = s.lock();
                g.counter = counter;
                g.clock = clock;
                g.value = value;
            }
            Ok::<(), CodecError>(())
        };
        if threads <= 1 {
            return load(&self.slots, &ranges);
        }
        std::thread::scope(|scope| {
            let parts: Vec<_> = self
                .slots
                .chunks(per)
                .zip(ranges.chunks(per))
                .skip(1)
                .map(|(slots, ranges)| scope.spawn(move || load(slots, ranges)))
                .collect();
            let first = load(&self.slots[..per.min(n)], &ranges[..per.min(n)]);
            parts.into_iter().fold(first, |acc, h| {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(CodecError("a decoding thread panicked".into())));
                acc.and(r)
            })
        })
    }
    fn counters(&self) -> Vec<u64> {
        self.slots.iter().map(|s| s.lock().counter).collect()
    }
}

/// Threads to decode `bytes` of one variable's snapshot with: one below
/// 1 MB (a thread's start costs tens of microseconds), else one per core,
/// at most four.
fn decode_threads(bytes: usize) -> usize {
    if bytes < DECODE_SPLIT_BYTES {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// See [`decode_threads`].
const DECODE_SPLIT_BYTES: usize = 1 << 20;

/// Every shared variable of a router, by name, in declaration order.
#[derive(Default)]
pub struct SharedRegistry {
    vars: Vec<Arc<dyn SharedDyn>>,
    typed: Vec<Arc<dyn Any + Send + Sync>>,
    by_name: HashMap<String, usize>,
    next_id: u32,
}

impl SharedRegistry {
    /// An empty registry.
    pub fn new() -> SharedRegistry {
        SharedRegistry::default()
    }

    /// Declare `name` with `slots` slots, or return the existing variable.
    ///
    /// # Panics
    /// When `name` was declared before with another type: that is a bug in
    /// the element, not a property of the input.
    pub fn declare<T: StateCodec + Clone>(
        &mut self,
        name: &str,
        slots: usize,
        mut init: impl FnMut(usize) -> T,
    ) -> Shared<T> {
        if let Some(&i) = self.by_name.get(name) {
            let var = self.typed[i]
                .clone()
                .downcast::<SharedVar<T>>()
                .unwrap_or_else(|_| panic!("shared variable {name} redeclared with another type"));
            return Shared { var };
        }
        let slots = slots.max(1);
        let var = Arc::new(SharedVar {
            name: name.to_string(),
            base_id: self.next_id,
            slots: (0..slots)
                .map(|i| {
                    CachePadded::new(Mutex::new(Slot {
                        value: init(i),
                        counter: 0,
                        clock: DepVector::default(),
                        captured: 0,
                        pending: None,
                    }))
                })
                .collect(),
            epoch: std::sync::atomic::AtomicU64::new(0),
        });
        self.next_id += slots as u32;
        self.by_name.insert(name.to_string(), self.vars.len());
        self.vars.push(var.clone());
        self.typed.push(var.clone());
        Shared { var }
    }

    /// Every variable in declaration order.
    pub fn vars(&self) -> &[Arc<dyn SharedDyn>] {
        &self.vars
    }

    /// Total number of variable ids (slots over all variables).
    pub fn nvars(&self) -> u32 {
        self.next_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_in_any_order_reads_back_as_the_same_map() {
        let m: FlowMap<u64, (u64, bool)> = (0..5000u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15), (i, i % 3 == 0)))
            .collect();
        let (mut sorted, mut any) = (Vec::new(), Vec::new());
        m.encode(&mut sorted);
        m.encode_any_order(&mut any);
        assert_eq!(any.len(), sorted.len());
        // Unsorted: the hash table's order, not the keys'.
        assert!(any != sorted, "the any-order encoding sorted the keys");
        let back = FlowMap::<u64, (u64, bool)>::decode(&mut &any[..]).expect("decodes");
        assert_eq!(back, m);
        let mut again = Vec::new();
        back.encode(&mut again);
        assert!(again == sorted);
        assert!(FlowMap::<u64, (u64, bool)>::decode(&mut &any[..any.len() - 1]).is_err());
    }

    #[test]
    fn a_large_variable_loads_on_several_threads_to_the_same_state() {
        let mut reg = SharedRegistry::new();
        let v: Shared<Vec<u8>> = reg.declare("t.cells", 64, |i| vec![i as u8; 32 << 10]);
        let dynv = reg.vars()[0].clone();
        let mut ctx = Ctx::new(0, 1, 1);
        let mut pkt = Packet::from_bytes(&[0]);
        for s in 0..64 {
            v.access(&mut ctx, &mut pkt, s, |c| c[s] = 7);
        }
        let mut saved = Vec::new();
        dynv.encode_all(&mut saved);
        assert!(saved.len() > DECODE_SPLIT_BYTES);
        for s in 0..64 {
            v.access(&mut ctx, &mut pkt, s, |c| c.truncate(s));
        }
        let mut inp = &saved[..];
        dynv.decode_all(&mut inp).expect("loads");
        assert!(inp.is_empty());
        let mut again = Vec::new();
        dynv.encode_all(&mut again);
        assert!(again == saved, "the loaded state differs");
        // Cut short: an error, found before any slot is loaded.
        let mut cut = &saved[..saved.len() - 1];
        assert!(dynv.decode_all(&mut cut).is_err());
    }

    #[test]
    fn capture_keeps_the_state_at_the_cut_while_workers_write() {
        let mut reg = SharedRegistry::new();
        let v: Shared<u64> = reg.declare("t.v", 8, |i| i as u64);
        let dynv = reg.vars()[0].clone();
        let mut ctx = Ctx::new(0, 1, 1);
        let mut pkt = Packet::from_bytes(&[0]);
        for s in 0..8 {
            v.access(&mut ctx, &mut pkt, s, |x| *x += 10);
        }
        let mut at_cut = Vec::new();
        dynv.encode_all(&mut at_cut);
        dynv.begin_capture(1);
        // Writes after the cut, some slots twice, some not at all.
        for s in [0, 3, 3, 7] {
            v.access(&mut ctx, &mut pkt, s, |x| *x += 100);
        }
        let mut captured = Vec::new();
        dynv.finish_capture(1, &mut captured);
        assert_eq!(captured, at_cut);
        // The next snapshot sees the writes.
        let mut now = Vec::new();
        dynv.encode_all(&mut now);
        dynv.begin_capture(2);
        let mut second = Vec::new();
        dynv.finish_capture(2, &mut second);
        assert_eq!(second, now);
        assert_ne!(second, at_cut);
    }
}
