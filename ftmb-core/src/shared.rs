//! Shared state: the only way elements may share mutable state between
//! workers (docs/design.md, section 3).
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

pub use crate::codec::{CodecError, FlowMap, StateCodec};
use crate::context::Ctx;
use crate::depvec::DepVector;
use crate::packet::Packet;
use crate::slot::{encode_slot, Slot};
use crate::sync::Mutex;
use crossbeam_utils::CachePadded;
use std::any::Any;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
/// The variable behind a [`Shared`] handle.
pub struct SharedVar<T> {
    name: String,
    base_id: u32,
    slots: Box<[CachePadded<Mutex<Slot<T>>>]>,
    /// The snapshot being captured (0: none yet); see
    /// [`SharedDyn::begin_capture`].
    epoch: crate::sync::AtomicU64,
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
            epoch: crate::sync::AtomicU64::new(0),
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

    /// A store in memory that counts its calls.
    #[derive(Default)]
    struct MapStore(
        std::sync::Arc<parking_lot::Mutex<std::collections::HashMap<u32, Vec<u8>>>>,
        std::sync::Arc<std::sync::atomic::AtomicU64>,
    );

    impl crate::context::RemoteState for MapStore {
        fn get(&mut self, key: u32, out: &mut Vec<u8>) -> bool {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            out.clear();
            match self.0.lock().get(&key) {
                Some(v) => {
                    out.extend_from_slice(v);
                    true
                }
                None => false,
            }
        }
        fn set(&mut self, key: u32, val: &[u8]) {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.lock().insert(key, val.to_vec());
        }
    }

    #[test]
    fn remote_state_round_trips_every_access() {
        let mut reg = SharedRegistry::new();
        let v = reg.declare::<u64>("x.count", 2, |_| 0);
        let store = MapStore::default();
        let (map, calls) = (store.0.clone(), store.1.clone());
        let mut ctx = crate::context::Ctx::new(0, 1, 1);
        ctx.set_remote(Box::new(store));
        let mut pkt = crate::packet::Packet::from_bytes(&[0u8; 20]);
        for _ in 0..3 {
            v.access(&mut ctx, &mut pkt, 1, |c| *c += 1);
        }
        // The store holds the value; the slot's own copy follows it.
        let mut b = Vec::new();
        3u64.encode(&mut b);
        assert_eq!(map.lock().get(&v.var_id(1)), Some(&b));
        // Another worker's writes to the store are what the next access sees.
        let mut b = Vec::new();
        10u64.encode(&mut b);
        map.lock().insert(v.var_id(1), b);
        assert_eq!(v.access(&mut ctx, &mut pkt, 1, |c| *c), 10);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 8);
    }
}
