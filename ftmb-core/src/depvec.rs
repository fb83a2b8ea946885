//! Dependency vectors (SPEC section 4).
//!
//! `DV[w]` is the highest sequence number in worker `w`'s log that a packet
//! (or a variable) depends on. An empty vector means "depends on nothing";
//! entries beyond the stored length are zero. Vectors allocate only once a
//! packet makes its first logged access, so runs without fault tolerance
//! never pay for them.

/// A vector clock over worker logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DepVector {
    v: Vec<u64>,
}

impl DepVector {
    /// A vector from explicit entries.
    pub fn from_entries(v: Vec<u64>) -> DepVector {
        DepVector { v }
    }

    /// Entry for worker `w` (zero when absent).
    #[inline]
    pub fn get(&self, w: usize) -> u64 {
        self.v.get(w).copied().unwrap_or(0)
    }

    /// Set entry `w` to `s`.
    #[inline]
    pub fn set(&mut self, w: usize, s: u64) {
        if self.v.len() <= w {
            self.v.resize(w + 1, 0);
        }
        self.v[w] = s;
    }

    /// Component-wise maximum with `other`.
    #[inline]
    pub fn merge(&mut self, other: &DepVector) {
        if self.v.len() < other.v.len() {
            self.v.resize(other.v.len(), 0);
        }
        for (a, b) in self.v.iter_mut().zip(&other.v) {
            if *b > *a {
                *a = *b;
            }
        }
    }

    /// True when every entry is `<=` the matching entry of `frontier`.
    #[inline]
    pub fn covered_by(&self, frontier: &[u64]) -> bool {
        self.v
            .iter()
            .enumerate()
            .all(|(w, &s)| s == 0 || frontier.get(w).is_some_and(|&m| s <= m))
    }

    /// The stored entries (trailing entries may be omitted, meaning zero).
    pub fn entries(&self) -> &[u64] {
        &self.v
    }

    /// True when the vector depends on nothing.
    pub fn is_empty(&self) -> bool {
        self.v.iter().all(|&s| s == 0)
    }

    /// Forget every dependency (reuse the allocation).
    pub fn clear(&mut self) {
        self.v.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_cover() {
        let mut a = DepVector::default();
        a.set(1, 5);
        let mut b = DepVector::default();
        b.set(0, 3);
        b.set(1, 2);
        a.merge(&b);
        assert_eq!(a.entries(), &[3, 5]);
        assert!(a.covered_by(&[3, 5]));
        assert!(!a.covered_by(&[2, 9]));
        assert!(!a.covered_by(&[3]));
        assert!(DepVector::default().covered_by(&[]));
    }
}
