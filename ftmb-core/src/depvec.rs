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
    /// Boxed on purpose: every packet carries a vector, and one pointer
    /// (null until the first logged access) is a third of an empty `Vec`.
    #[allow(clippy::box_collection)]
    v: Option<Box<Vec<u64>>>,
}

static EMPTY: Vec<u64> = Vec::new();

impl DepVector {
    /// A vector from explicit entries.
    pub fn from_entries(v: Vec<u64>) -> DepVector {
        DepVector {
            v: (!v.is_empty()).then(|| Box::new(v)),
        }
    }

    fn vec(&self) -> &Vec<u64> {
        self.v.as_deref().unwrap_or(&EMPTY)
    }

    fn vec_mut(&mut self) -> &mut Vec<u64> {
        self.v.get_or_insert_with(Default::default)
    }

    /// Entry for worker `w` (zero when absent).
    #[inline]
    pub fn get(&self, w: usize) -> u64 {
        self.vec().get(w).copied().unwrap_or(0)
    }

    /// Set entry `w` to `s`.
    #[inline]
    pub fn set(&mut self, w: usize, s: u64) {
        let v = self.vec_mut();
        if v.len() <= w {
            v.resize(w + 1, 0);
        }
        v[w] = s;
    }

    /// Component-wise maximum with `other`.
    #[inline]
    pub fn merge(&mut self, other: &DepVector) {
        let o = other.vec();
        if o.is_empty() {
            return;
        }
        let v = self.vec_mut();
        if v.len() < o.len() {
            v.resize(o.len(), 0);
        }
        for (a, b) in v.iter_mut().zip(o) {
            if *b > *a {
                *a = *b;
            }
        }
    }

    /// True when every entry is `<=` the matching entry of `frontier`.
    #[inline]
    pub fn covered_by(&self, frontier: &[u64]) -> bool {
        self.vec()
            .iter()
            .enumerate()
            .all(|(w, &s)| s == 0 || frontier.get(w).is_some_and(|&m| s <= m))
    }

    /// The stored entries (trailing entries may be omitted, meaning zero).
    pub fn entries(&self) -> &[u64] {
        self.vec()
    }

    /// True when the vector depends on nothing.
    pub fn is_empty(&self) -> bool {
        self.vec().iter().all(|&s| s == 0)
    }

    /// Forget every dependency (reuse the allocation).
    pub fn clear(&mut self) {
        if let Some(v) = &mut self.v {
            v.clear();
        }
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
