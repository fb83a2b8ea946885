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

use rustc_hash::FxHashSet;
use std::collections::VecDeque;

/// The window never grows past this many packet ids above the floor.
pub const WINDOW_MAX: u64 = 1 << 26;

/// Ordinals kept as bits of a packet id's byte.
const BITS: u32 = 8;

/// Released (packet id, ordinal) pairs above a floor.
#[derive(Debug, Default)]
pub struct ReleasedSet {
    /// Packet id of `window[0]` (the floor plus one).
    base: u64,
    /// Bit `o` of `window[i]`: ordinal `o` of packet `base + i` released.
    window: VecDeque<u8>,
    /// Pairs the window does not hold.
    other: FxHashSet<(u64, u32)>,
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

    /// Add a pair; false if it was there already. Pairs at or below the
    /// floor are not remembered (see [`ReleasedSet::forget_through`]):
    /// the caller checks them against the floor first.
    pub fn insert(&mut self, packet_id: u64, ordinal: u32) -> bool {
        let new = match self.slot(packet_id, ordinal) {
            // A pair stored beside the window while it lay beyond it stays
            // there when the floor moves up.
            Some(_) if !self.other.is_empty() && self.other.contains(&(packet_id, ordinal)) => {
                false
            }
            Some((i, bit)) => {
                if i >= self.window.len() {
                    self.window.resize(i + 1, 0);
                }
                let b = &mut self.window[i];
                let new = *b & bit == 0;
                *b |= bit;
                new
            }
            None => self.other.insert((packet_id, ordinal)),
        };
        self.len += usize::from(new);
        new
    }

    /// Whether the pair is held.
    pub fn contains(&self, packet_id: u64, ordinal: u32) -> bool {
        let in_window = self
            .slot(packet_id, ordinal)
            .is_some_and(|(i, bit)| self.window.get(i).is_some_and(|b| b & bit != 0));
        in_window || (!self.other.is_empty() && self.other.contains(&(packet_id, ordinal)))
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
        self.len -= gone as usize;
        self.base = base;
        let before = self.other.len();
        self.other.retain(|&(p, _)| p > floor);
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
    use std::collections::BTreeSet;

    #[test]
    fn behaves_as_a_set_of_pairs_above_a_floor() {
        // Against a BTreeSet, with ids near the window's base, far past
        // its end, ordinals in and beyond a byte's bits, and the floor
        // moving up.
        let mut s = ReleasedSet::new();
        let mut reference = BTreeSet::new();
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
            if x % 3 == 0 {
                assert_eq!(s.contains(id, ordinal), reference.contains(&(id, ordinal)));
            } else {
                assert_eq!(s.insert(id, ordinal), reference.insert((id, ordinal)));
            }
            if step % 5_000 == 4_999 {
                floor += (x >> 20) % 2_000;
                s.forget_through(floor);
                reference.retain(|&(p, _)| p > floor);
            }
            assert_eq!(s.len(), reference.len());
        }
        assert!(!s.is_empty());
    }

    #[test]
    fn a_floor_that_does_not_move_up_forgets_nothing() {
        let mut s = ReleasedSet::new();
        assert!(s.insert(5, 0));
        s.forget_through(3);
        s.forget_through(2);
        assert!(s.contains(5, 0));
        assert!(!s.insert(5, 0));
        s.forget_through(5);
        assert!(s.is_empty());
        assert!(s.insert(6, 9));
        assert!(s.contains(6, 9) && !s.contains(6, 0));
    }
}
