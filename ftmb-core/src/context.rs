//! The per-worker runtime context: the only door from an element to the
//! world outside its packet and its own fields.
//!
//! # The state access contract
//!
//! Fault tolerance logs and replays exactly what passes through this door,
//! so elements must keep to it:
//!
//! 1. **Shared state** (anything two workers can touch) lives in
//!    [`crate::shared::Shared`] variables declared at initialize; every
//!    access goes through [`crate::shared::Shared::access`] with the packet
//!    on whose behalf it is made. No statics, no `Arc<Mutex<_>>` smuggled
//!    into an element, no state captured in closures.
//! 2. **Time** comes from [`Ctx::now_ns`]; elements never read the system
//!    clock. The runtime reads the clock once per batch and logs it.
//! 3. **Randomness** comes from [`Ctx::random`]; elements never seed their
//!    own generators from the environment. The per-worker generator's seed
//!    is logged and its state is part of the snapshot.
//! 4. **Outputs that leave the system** go through [`Ctx::emit`] to a sink
//!    declared at initialize, so the output logger can hold them until they
//!    are committed.
//! 5. Everything else an element keeps in its own fields is worker-private
//!    and is rebuilt by replaying the worker's packets in order.

use crate::depvec::DepVector;
use crate::egress::{SinkHandle, SinkOutputs};
use crate::packet::Packet;
pub use crate::rng::Rng;
use crate::slot::Slot;
use crate::sync::{Mutex, MutexGuard};
use crossbeam_utils::CachePadded;

/// How shared-state accesses and nondeterministic reads are treated.
#[derive(Debug, Default)]
pub enum AccessMode {
    /// No fault tolerance: take the lock, nothing more.
    #[default]
    Plain,
    /// Ordered logging (and, after a failover, replay of the logged prefix
    /// first): count, log a PAL, merge dependency vectors.
    Logged(Box<crate::pal::LoggedAccess>),
}

/// The context a worker passes to its elements.
pub struct Ctx {
    worker: usize,
    nworkers: usize,
    now_ns: u64,
    rng: Rng,
    pub(crate) mode: AccessMode,
    pub(crate) sinks: SinkOutputs,
    /// The id of the packet whose batch is being processed (for logging
    /// nondeterministic reads).
    pub(crate) current_id: u64,
    /// Remote state (the StatelessNF-style baseline): when set, every
    /// shared-state access reads the slot from this store first and writes
    /// it back after.
    remote: Option<Box<dyn RemoteState>>,
    /// The worker's dependency vector: every logged access it has made,
    /// and what those accesses depended on (see `merge_dv`).
    pub(crate) dv: DepVector,
}

/// A remote key-value store that holds the shared state (the remote-state
/// baseline of the paper's evaluation): each shared-state access fetches
/// the slot's encoding by its variable id and stores it back afterwards,
/// two round trips per access.
pub trait RemoteState: Send {
    /// The bytes stored under `key` into `out` (cleared first); false when
    /// there are none (or the store failed: the local value is used then).
    fn get(&mut self, key: u32, out: &mut Vec<u8>) -> bool;
    /// Store `val` under `key`.
    fn set(&mut self, key: u32, val: &[u8]);
}

impl Ctx {
    /// A context for worker `worker` of `nworkers`, with the given seed.
    pub fn new(worker: usize, nworkers: usize, seed: u64) -> Ctx {
        Ctx {
            worker,
            nworkers,
            now_ns: 0,
            rng: Rng::new(seed),
            mode: AccessMode::Plain,
            sinks: SinkOutputs::default(),
            current_id: 0,
            remote: None,
            dv: DepVector::default(),
        }
    }

    /// Keep shared state in a remote store (see [`RemoteState`]).
    pub fn set_remote(&mut self, remote: Box<dyn RemoteState>) {
        self.remote = Some(remote);
    }

    /// With a remote store: load `value` from it (key `var_id`), run `f`,
    /// and store the result back. Without one: just `f`.
    #[inline]
    pub(crate) fn remote_access<T: crate::codec::StateCodec, R>(
        &mut self,
        var_id: u32,
        value: &mut T,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let Some(store) = self.remote.as_mut() else {
            return f(value);
        };
        let mut buf = Vec::new();
        if store.get(var_id, &mut buf) {
            if let Ok(v) = T::decode(&mut buf.as_slice()) {
                *value = v;
            }
        }
        let r = f(value);
        buf.clear();
        value.encode(&mut buf);
        store.set(var_id, &buf);
        r
    }

    /// This worker's index.
    #[inline]
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Number of workers.
    #[inline]
    pub fn nworkers(&self) -> usize {
        self.nworkers
    }

    /// The current time in nanoseconds since the Unix epoch, as the runtime
    /// read (or, in replay, logged) it for the current batch.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Set the clock (the runtime does this once per batch).
    pub fn set_now_ns(&mut self, t: u64) {
        self.now_ns = t;
    }

    /// 64 random bits from the worker's logged generator.
    #[inline]
    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A random number in `0..n` (`n > 0`; 0 when `n == 0`).
    #[inline]
    pub fn random_below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    /// The worker's generator (for snapshots).
    pub fn rng(&self) -> &Rng {
        &self.rng
    }

    /// Replace the worker's generator (snapshot restore).
    pub fn set_rng(&mut self, rng: Rng) {
        self.rng = rng;
    }

    /// Hand `pkt` to the sink `sink` (an output that leaves the system).
    #[inline]
    pub fn emit(&mut self, sink: &SinkHandle, pkt: Packet) {
        self.sinks.push(sink, pkt);
    }

    /// Hand every packet of `batch` to `sink`, leaving `batch` empty.
    #[inline]
    pub fn emit_all(&mut self, sink: &SinkHandle, batch: &mut Vec<Packet>) {
        self.sinks.push_all(sink, batch);
    }

    /// The access mode (plain, record or replay).
    pub fn mode(&self) -> &AccessMode {
        &self.mode
    }

    /// Set the access mode.
    pub fn set_mode(&mut self, mode: AccessMode) {
        self.mode = mode;
    }

    /// Take the lock of a shared slot for `pkt`. In replay mode, first wait
    /// for the access's logged turn.
    #[inline]
    pub(crate) fn lock_for_access<'a, T>(
        &mut self,
        cell: &'a CachePadded<Mutex<Slot<T>>>,
        var_id: u32,
        pkt: &Packet,
    ) -> MutexGuard<'a, Slot<T>> {
        match &mut self.mode {
            AccessMode::Logged(l) if l.replaying_now() || !l.last_logged.is_empty() => {
                l.lock_in_turn(cell, var_id, pkt.anno.id)
            }
            _ => cell.lock(),
        }
    }

    /// Count, log and merge for an access under the lock.
    #[inline]
    pub(crate) fn record_access<T>(&mut self, slot: &mut Slot<T>, var_id: u32, pkt: &mut Packet) {
        slot.counter += 1;
        if let AccessMode::Logged(l) = &mut self.mode {
            let seq = l.access(pkt.anno.id, var_id, slot.counter);
            merge_dv(&mut self.dv, &mut slot.clock, self.worker, seq);
        }
    }
}

/// docs/design.md, section 4: `p.DV = max(p.DV, v.clock); p.DV[w] = s; v.clock = p.DV`,
/// with the worker's vector standing for every packet's.
///
/// A per-packet vector misses what a packet owes to the packets its worker
/// processed before it: their effect on the worker's private state, and the
/// order of the worker's log. If an earlier packet's logged access followed
/// a record the dead master never shipped, the replay cannot follow the log
/// past it (`pal::trim_to_gap_free` cuts it there), so no later output of
/// that worker may have been released either. With the worker's vector,
/// every output depends on everything its worker has done so far.
#[inline]
fn merge_dv(pdv: &mut DepVector, clock: &mut DepVector, worker: usize, seq: u64) {
    pdv.merge(clock);
    pdv.set(worker, seq);
    clock.assign(pdv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_seeded_and_restorable() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let saved = a.state();
        let x = a.next_u64();
        let mut c = Rng::from_state(saved);
        assert_eq!(c.next_u64(), x);
        let mut ctx = Ctx::new(0, 1, 3);
        for _ in 0..1000 {
            assert!(ctx.random_below(10) < 10);
        }
        assert_eq!(ctx.random_below(0), 0);
    }
}
