//! How state is encoded for snapshots and digests: the [`StateCodec`]
//! trait, its impls for the types elements keep, and [`FlowMap`], the map
//! flow tables use.

use crate::headers::FlowId;
use std::collections::HashMap;

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
