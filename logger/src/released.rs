//! The outputs an output logger has released since the last committed
//! snapshot's cut, by (packet id, ordinal): what lets it suppress the
//! outputs a replica re-creates, and never send one twice.
//!
//! Packet ids are dense (the input side numbers every packet 1, 2, ...) and
//! outputs arrive close to id order, so the set is a window of one byte per
//! packet id above the floor, a bit per ordinal 0-7: one indexed byte per
//! release instead of a hash-set insert (the commit path's hottest
//! operation: a fifth of the output logger's time at 2.5 Mpps). Ordinals
//! from 8 up, and ids too far above the floor to index (a window of at most
//! [`WINDOW_MAX`] bytes), go to a hash set beside it.
//!
//! Each pair keeps the 64-bit fingerprint of what left under it (sink and
//! bytes, [`fingerprint`]), so that a replayed output with the same key can
//! be compared with the released one (docs/design.md, section 6): ordinal
//! 0's in a window of words beside the bytes (eight bytes more per packet
//! id above the floor), the others in a hash map beside it. Both are
//! forgotten with the pairs, so memory stays bounded by the outputs
//! released since the last committed cut.

use rustc_hash::{FxHashMap, FxHasher};
use std::collections::VecDeque;
use std::hash::Hasher;

/// The window never grows past this many packet ids above the floor.
pub const WINDOW_MAX: u64 = 1 << 26;

/// Ordinals kept as bits of a packet id's byte.
const BITS: u32 = 8;

/// The fingerprint of an output: a 64-bit hash of its sink and bytes.
pub fn fingerprint(sink: u16, data: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write_u16(sink);
    h.write_usize(data.len());
    h.write(data);
    h.finish()
}

/// Released (packet id, ordinal) pairs above a floor, each with the
/// fingerprint of the output released under it.
#[derive(Debug, Default)]
pub struct ReleasedSet {
    /// Packet id of `window[0]` (the floor plus one).
    base: u64,
    /// Bit `o` of `window[i]`: ordinal `o` of packet `base + i` released.
    window: VecDeque<u8>,
    /// `fp0[i]`: the fingerprint of ordinal 0 of packet `base + i`, when
    /// its bit is set (the same length as `window`).
    fp0: VecDeque<u64>,
    /// Fingerprints of the window's pairs of ordinals 1 to 7.
    fps: FxHashMap<(u64, u32), u64>,
    /// Pairs the window does not hold, with their fingerprints.
    other: FxHashMap<(u64, u32), u64>,
    /// Pairs held.
    len: usize,
}

impl ReleasedSet {
    /// An empty set whose floor is packet id 0.
    pub fn new() -> ReleasedSet {
        ReleasedSet {
            base: 1,
            ..ReleasedSet::default()
        }
    }

    /// Where (packet id, ordinal) lives in the window, if it does.
    fn slot(&self, packet_id: u64, ordinal: u32) -> Option<(usize, u8)> {
        let i = packet_id.checked_sub(self.base)?;
        (ordinal < BITS && i < WINDOW_MAX).then(|| (i as usize, 1u8 << ordinal))
    }

    /// Add a pair released with fingerprint `fp`. Returns `None` if it is
    /// new (then remembered), or the fingerprint it was released with
    /// before (then nothing changes). Pairs at or below the floor are not
    /// remembered (see [`ReleasedSet::forget_through`]): the caller checks
    /// them against the floor first.
    pub fn insert(&mut self, packet_id: u64, ordinal: u32, fp: u64) -> Option<u64> {
        let before = match self.slot(packet_id, ordinal) {
            // A pair stored beside the window while it lay beyond it stays
            // there when the floor moves up.
            Some(_) if !self.other.is_empty() && self.other.contains_key(&(packet_id, ordinal)) => {
                self.other.get(&(packet_id, ordinal)).copied()
            }
            Some((i, bit)) => {
                if i >= self.window.len() {
                    self.window.resize(i + 1, 0);
                    self.fp0.resize(i + 1, 0);
                }
                let b = &mut self.window[i];
                if *b & bit != 0 {
                    Some(self.window_fp(i, packet_id, ordinal))
                } else {
                    *b |= bit;
                    if ordinal == 0 {
                        self.fp0[i] = fp;
                    } else {
                        self.fps.insert((packet_id, ordinal), fp);
                    }
                    None
                }
            }
            None => match self.other.entry((packet_id, ordinal)) {
                std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(fp);
                    None
                }
            },
        };
        self.len += usize::from(before.is_none());
        before
    }

    /// The fingerprint of a pair in the window whose bit is set.
    fn window_fp(&self, i: usize, packet_id: u64, ordinal: u32) -> u64 {
        if ordinal == 0 {
            self.fp0.get(i).copied().unwrap_or(0)
        } else {
            self.fps.get(&(packet_id, ordinal)).copied().unwrap_or(0)
        }
    }

    /// Whether the pair is held.
    pub fn contains(&self, packet_id: u64, ordinal: u32) -> bool {
        self.fingerprint(packet_id, ordinal).is_some()
    }

    /// The fingerprint the pair was released with, if it is held.
    pub fn fingerprint(&self, packet_id: u64, ordinal: u32) -> Option<u64> {
        if !self.other.is_empty() {
            if let Some(&fp) = self.other.get(&(packet_id, ordinal)) {
                return Some(fp);
            }
        }
        let (i, bit) = self.slot(packet_id, ordinal)?;
        let b = self.window.get(i)?;
        (b & bit != 0).then(|| self.window_fp(i, packet_id, ordinal))
    }

    /// Forget every pair of packet ids at or below `floor`.
    pub fn forget_through(&mut self, floor: u64) {
        let base = floor.saturating_add(1);
        if base <= self.base {
            return;
        }
        let drop = usize::try_from(base - self.base)
            .unwrap_or(usize::MAX)
            .min(self.window.len());
        let gone: u32 = self.window.drain(..drop).map(u8::count_ones).sum();
        self.fp0.drain(..drop);
        self.len -= gone as usize;
        self.base = base;
        if !self.fps.is_empty() {
            self.fps.retain(|&(p, _), _| p > floor);
        }
        let before = self.other.len();
        self.other.retain(|&(p, _), _| p > floor);
        self.len -= before - self.other.len();
    }

    /// Pairs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no pair is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_as_a_map_of_pairs_to_fingerprints_above_a_floor() {
        // Against a BTreeMap, with ids near the window's base, far past
        // its end, ordinals in and beyond a byte's bits, and the floor
        // moving up: the first fingerprint of a pair is the one kept.
        let mut s = ReleasedSet::new();
        let mut reference: BTreeMap<(u64, u32), u64> = BTreeMap::new();
        let mut floor = 0u64;
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = match x % 10 {
                0 => floor + WINDOW_MAX + x % 1000,
                _ => floor + 1 + (x >> 8) % 3000,
            };
            let ordinal = ((x >> 40) % 11) as u32;
            let fp = x >> 3;
            if x % 3 == 0 {
                assert_eq!(
                    s.fingerprint(id, ordinal),
                    reference.get(&(id, ordinal)).copied()
                );
                assert_eq!(
                    s.contains(id, ordinal),
                    reference.contains_key(&(id, ordinal))
                );
            } else {
                let want = reference.get(&(id, ordinal)).copied();
                if want.is_none() {
                    reference.insert((id, ordinal), fp);
                }
                assert_eq!(s.insert(id, ordinal, fp), want);
            }
            if step % 5_000 == 4_999 {
                floor += (x >> 20) % 2_000;
                s.forget_through(floor);
                reference.retain(|&(p, _), _| p > floor);
            }
            assert_eq!(s.len(), reference.len());
        }
        assert!(!s.is_empty());
    }

    #[test]
    fn a_floor_that_does_not_move_up_forgets_nothing() {
        let mut s = ReleasedSet::new();
        assert_eq!(s.insert(5, 0, 50), None);
        s.forget_through(3);
        s.forget_through(2);
        assert!(s.contains(5, 0));
        assert_eq!(s.insert(5, 0, 51), Some(50));
        s.forget_through(5);
        assert!(s.is_empty());
        assert_eq!(s.insert(6, 9, 69), None);
        assert!(s.contains(6, 9) && !s.contains(6, 0));
        assert_eq!(s.fingerprint(6, 9), Some(69));
    }

    #[test]
    fn fingerprints_tell_sinks_and_bytes_apart() {
        let a = fingerprint(0, b"\x45\x00\x00\x14 some packet");
        assert_eq!(a, fingerprint(0, b"\x45\x00\x00\x14 some packet"));
        assert_ne!(a, fingerprint(1, b"\x45\x00\x00\x14 some packet"));
        assert_ne!(a, fingerprint(0, b"\x45\x00\x00\x14 some packeu"));
        assert_ne!(a, fingerprint(0, b"\x45\x00\x00\x14 some packet\x00"));
    }
}
