//! Dependency vectors (docs/design.md, section 4).
//!
//! `DV[w]` is the highest sequence number in worker `w`'s log that a packet
//! (or a variable) depends on. An empty vector means "depends on nothing";
//! entries beyond the stored length are zero. Up to [`MIN_ENTRIES`] workers
//! a vector lives inline (no allocation, no pointer to follow on the
//! logged-access path); beyond that it moves to the heap.

/// A vector clock over worker logs.
///
/// Stored in a `SmallVec` with room for [`MIN_ENTRIES`] entries inline:
/// merging a variable's clock into a worker's on every logged access
/// touches no other memory than the two vectors, and an output's or a
/// slot's vector costs no allocation up to that many workers. At least
/// [`MIN_ENTRIES`] entries long once written. Equality and hashing ignore
/// trailing zeros.
#[derive(Clone, Debug, Default)]
pub struct DepVector {
    v: smallvec::SmallVec<[u64; MIN_ENTRIES]>,
}

/// Entries allocated at once (workers covered without regrowing).
pub const MIN_ENTRIES: usize = 4;

impl PartialEq for DepVector {
    fn eq(&self, o: &DepVector) -> bool {
        self.entries() == o.entries()
    }
}
impl Eq for DepVector {}
impl std::hash::Hash for DepVector {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.entries().hash(h);
    }
}

impl DepVector {
    /// A vector from explicit entries.
    pub fn from_entries(v: &[u64]) -> DepVector {
        let mut d = DepVector::default();
        if v.iter().any(|&s| s != 0) {
            d.v.extend_from_slice(v);
        }
        d
    }

    fn vec(&self) -> &[u64] {
        &self.v
    }

    /// The storage, at least `len` entries long.
    fn vec_mut(&mut self, len: usize) -> &mut [u64] {
        if self.v.len() < len {
            let n = len.max(MIN_ENTRIES);
            self.v.reserve_exact(n - self.v.len());
            self.v.resize(n, 0);
        }
        &mut self.v
    }

    /// Entry for worker `w` (zero when absent).
    #[inline]
    pub fn get(&self, w: usize) -> u64 {
        self.vec().get(w).copied().unwrap_or(0)
    }

    /// Set entry `w` to `s`.
    #[inline]
    pub fn set(&mut self, w: usize, s: u64) {
        match self.v.get_mut(w) {
            Some(e) => *e = s,
            None => self.vec_mut(w + 1)[w] = s,
        }
    }

    /// Component-wise maximum with `other`.
    #[inline]
    pub fn merge(&mut self, other: &DepVector) {
        // The common case, both MIN_ENTRIES long: an element-wise max of
        // two fixed-size arrays (see `assign`).
        if let (Ok(d), Ok(s)) = (
            <&mut [u64; MIN_ENTRIES]>::try_from(&mut self.v[..]),
            <&[u64; MIN_ENTRIES]>::try_from(&other.v[..]),
        ) {
            for (a, b) in d.iter_mut().zip(s) {
                *a = (*a).max(*b);
            }
            return;
        }
        let o = other.entries();
        if o.is_empty() {
            return;
        }
        let v = self.vec_mut(o.len());
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

    /// The entries up to the last non-zero one (those beyond are zero).
    #[inline]
    pub fn entries(&self) -> &[u64] {
        let v = self.vec();
        let n = v.iter().rposition(|&s| s != 0).map_or(0, |i| i + 1);
        &v[..n]
    }

    /// True when the vector depends on nothing.
    pub fn is_empty(&self) -> bool {
        self.vec().iter().all(|&s| s == 0)
    }

    /// Make this vector equal to `o`, reusing its allocation when it is
    /// long enough (`clone_from` would allocate).
    #[inline]
    pub fn assign(&mut self, o: &DepVector) {
        let e = o.vec();
        // Up to MIN_ENTRIES workers both vectors are exactly that long once
        // written: a fixed-size copy, two vector moves, where a slice copy
        // of unknown length was a call to memmove on every logged access.
        if let (Ok(d), Ok(s)) = (
            <&mut [u64; MIN_ENTRIES]>::try_from(&mut self.v[..]),
            <&[u64; MIN_ENTRIES]>::try_from(e),
        ) {
            *d = *s;
            return;
        }
        if self.v.len() >= e.len() {
            self.v[..e.len()].copy_from_slice(e);
            self.v[e.len()..].fill(0);
        } else {
            self.v.clear();
            self.v.extend_from_slice(e);
        }
    }

    /// Forget every dependency (reuse the allocation).
    pub fn clear(&mut self) {
        self.v.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_size_and_general_paths_agree() {
        // Vectors of MIN_ENTRIES (the fixed-size paths) and shorter or
        // longer ones (the general paths), merged and assigned every way.
        let shapes: [&[u64]; 5] = [&[], &[3], &[0, 9], &[4, 0, 7, 1], &[1, 2, 3, 4, 5, 6]];
        for a in shapes {
            for b in shapes {
                let (da, db) = (DepVector::from_entries(a), DepVector::from_entries(b));
                let n = a.len().max(b.len());
                let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
                let max: Vec<u64> = (0..n).map(|i| at(a, i).max(at(b, i))).collect();
                let mut m = da.clone();
                m.set(0, at(a, 0));
                m.merge(&db);
                assert_eq!(m, DepVector::from_entries(&max), "{a:?} merge {b:?}");
                let mut c = da.clone();
                c.set(1, 1);
                c.assign(&db);
                assert_eq!(c, db, "{a:?} assign {b:?}");
            }
        }
    }

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
        // Storage length does not matter to equality.
        let mut c = DepVector::default();
        c.set(6, 1);
        c.set(6, 0);
        assert_eq!(c, DepVector::default());
        assert_eq!(c.entries(), &[] as &[u64]);
        c.set(5, 2);
        assert_eq!(c.entries().len(), 6);
        assert_eq!(DepVector::from_entries(&[3, 5, 0]), a);
    }
}
