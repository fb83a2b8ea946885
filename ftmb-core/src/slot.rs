//! One lock domain of a shared variable ([`crate::shared::Shared`]): its
//! value, its access counter and its vector clock, and the copy a snapshot
//! keeps when a worker writes the slot before the capture reaches it. The
//! context ([`crate::context::Ctx`]) and the replay's turn-taking
//! ([`crate::pal::LoggedAccess`]) lock slots; the shared variable owns them.

use crate::codec::{encode_seq, StateCodec};
use crate::depvec::DepVector;

/// One lock domain of a shared variable.
pub struct Slot<T> {
    pub(crate) value: T,
    /// Number of accesses so far (the PAL sequence of this variable).
    pub(crate) counter: u64,
    /// Vector clock of the accesses that shaped the value.
    pub(crate) clock: DepVector,
    /// The last snapshot epoch this slot was captured for.
    pub(crate) captured: u64,
    /// Its state for that snapshot (counter, clock, value), when a worker
    /// wrote it before the snapshot's capture reached it: a copy, which
    /// the capture thread encodes. Copying a bucket of a flow table runs
    /// at memory speed; encoding it on the worker's path, as before, took
    /// 6 % of a NAT worker's samples with 100k flows (it writes nearly
    /// every slot before the capture thread gets to it); the copy, half
    /// that.
    pub(crate) pending: Option<(u64, DepVector, T)>,
}

/// Counter, clock, then the value: canonically for digests
/// (`canonical`), in any order for snapshots.
pub(crate) fn encode_slot<T: StateCodec>(
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
    pub(crate) fn encode(&self, out: &mut Vec<u8>, canonical: bool) {
        encode_slot(self.counter, &self.clock, &self.value, out, canonical);
    }

    /// Before the first change after snapshot `epoch`'s cut: keep the
    /// slot's state at the cut (copy on write, per slot).
    #[inline]
    pub(crate) fn capture_before_write(&mut self, epoch: u64) {
        if self.captured < epoch {
            self.pending = Some((self.counter, self.clock.clone(), self.value.clone()));
            self.captured = epoch;
        }
    }
}
