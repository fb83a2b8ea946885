//! Consistent snapshots (SPEC section 5).
//!
//! The input side puts a snapshot marker into every worker's stream after
//! the same input packet. Each worker, on reaching it, has processed every
//! earlier packet of its own and none later; the workers wait for each
//! other at a barrier, so no shared variable changes while it is copied.
//! Then each worker encodes its elements' private state, its generator and
//! its log position, one worker encodes every shared variable (value,
//! access counter and vector clock), and all resume. The time between the
//! first worker stopping and the last one resuming is the stall, measured
//! and reported with the snapshot.
//!
//! # Encoding
//!
//! ```text
//! offset size  field
//! 0      4     magic "FTSN"
//! 4      2     version (2), little-endian
//! 6      4     crc32c of the body, little-endian
//! 10     8     body length, little-endian
//! 18     n     body: StateCodec encoding of
//!              id u64, next_packet u64, taken_ns u64, stall_ns u64,
//!              workers: Vec<(last_seq u64, rng [u64; 4] as 4 u64,
//!                            dv Vec<u64>, elements Vec<Vec<u8>>)>,
//!              shared Vec<u8>
//! ```
//! A snapshot whose magic, version, length or checksum does not match is
//! refused with [`SnapshotError`], never restored.

use crate::shared::{take, CodecError, StateCodec};

const MAGIC: &[u8; 4] = b"FTSN";
const VERSION: u16 = 2;

/// One worker's part of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// Sequence number of the worker's last log record before the cut.
    pub last_seq: u64,
    /// The worker's random generator state.
    pub rng: [u64; 4],
    /// The worker's dependency vector (see `context::merge_dv`).
    pub dv: Vec<u64>,
    /// Each element's `save_state` bytes, by element index (empty for
    /// sources and the driver).
    pub elements: Vec<Vec<u8>>,
}

/// A consistent cut of the router's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Snapshot number (1, 2, ...).
    pub id: u64,
    /// First input packet id *not* reflected: the cut.
    pub next_packet: u64,
    /// Wall time it was taken (ns since the epoch).
    pub taken_ns: u64,
    /// How long the workers stood still for it.
    pub stall_ns: u64,
    /// Per worker.
    pub workers: Vec<WorkerSnapshot>,
    /// Every shared variable's `encode_all`, in declaration order.
    pub shared: Vec<u8>,
}

impl Snapshot {
    /// Bytes of state it holds (element state and shared variables).
    pub fn state_bytes(&self) -> usize {
        self.shared.len()
            + self
                .workers
                .iter()
                .flat_map(|w| &w.elements)
                .map(Vec::len)
                .sum::<usize>()
    }
}

/// A snapshot could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot.
    #[error("not a snapshot (bad magic)")]
    BadMagic,
    /// Written by another version.
    #[error("snapshot version {0} is not supported (expected {VERSION})")]
    BadVersion(u16),
    /// Cut short.
    #[error("snapshot truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the header announces.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// The checksum does not match: corrupted.
    #[error("snapshot checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadChecksum {
        /// Stored checksum.
        stored: u32,
        /// Computed checksum.
        computed: u32,
    },
    /// The body does not decode.
    #[error("snapshot body: {0}")]
    Body(#[from] CodecError),
}

impl Snapshot {
    /// Encode with header and checksum.
    pub fn encode(&self) -> Vec<u8> {
        // The header first, its checksum and length filled in at the end:
        // the body is written once, in place.
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Encode with header and checksum into `out` (cleared first): a
    /// caller that keeps `out` from one snapshot to the next writes
    /// megabytes of state without fresh pages each time.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(18 + self.state_bytes() + 1024);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        self.id.encode(out);
        self.next_packet.encode(out);
        self.taken_ns.encode(out);
        self.stall_ns.encode(out);
        (self.workers.len() as u64).encode(out);
        for w in &self.workers {
            w.last_seq.encode(out);
            for x in w.rng {
                x.encode(out);
            }
            w.dv.encode(out);
            (w.elements.len() as u64).encode(out);
            for e in &w.elements {
                e.encode(out);
            }
        }
        self.shared.encode(out);
        let crc = crc32c::crc32c(&out[18..]);
        let len = (out.len() - 18) as u64;
        out[6..10].copy_from_slice(&crc.to_le_bytes());
        out[10..18].copy_from_slice(&len.to_le_bytes());
    }

    /// Decode, checking magic, version, length and checksum first.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        Snapshot::decode_with(bytes, true)
    }

    /// [`Snapshot::decode`] without the state: every check is made and
    /// every field read, but each element's bytes and the shared
    /// variables' are skipped and left empty. For a holder that keeps
    /// the encoded bytes and needs only the cut (the output logger).
    pub fn decode_summary(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        Snapshot::decode_with(bytes, false)
    }

    fn decode_with(bytes: &[u8], state: bool) -> Result<Snapshot, SnapshotError> {
        if bytes.len() < 18 {
            return Err(if bytes.len() >= 4 && &bytes[..4] != MAGIC {
                SnapshotError::BadMagic
            } else {
                SnapshotError::Truncated {
                    need: 18,
                    have: bytes.len(),
                }
            });
        }
        if &bytes[..4] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            return Err(SnapshotError::BadVersion(version));
        }
        let stored = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[10..18]);
        let len = u64::from_le_bytes(len);
        let have = bytes.len() - 18;
        let need = usize::try_from(len).unwrap_or(usize::MAX);
        if need > have {
            return Err(SnapshotError::Truncated {
                need: need.saturating_add(18),
                have: bytes.len(),
            });
        }
        let body = &bytes[18..18 + need];
        let computed = crc32c::crc32c(body);
        if computed != stored {
            return Err(SnapshotError::BadChecksum { stored, computed });
        }
        let mut inp = body;
        let id = u64::decode(&mut inp)?;
        let next_packet = u64::decode(&mut inp)?;
        let taken_ns = u64::decode(&mut inp)?;
        let stall_ns = u64::decode(&mut inp)?;
        let n = u64::decode(&mut inp)? as usize;
        let mut workers = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let last_seq = u64::decode(&mut inp)?;
            let mut rng = [0u64; 4];
            for x in rng.iter_mut() {
                *x = u64::decode(&mut inp)?;
            }
            let dv = Vec::<u64>::decode(&mut inp)?;
            let ne = u64::decode(&mut inp)? as usize;
            let mut elements = Vec::with_capacity(ne.min(4096));
            for _ in 0..ne {
                elements.push(bytes_field(&mut inp, state)?);
            }
            workers.push(WorkerSnapshot {
                last_seq,
                rng,
                dv,
                elements,
            });
        }
        let shared = bytes_field(&mut inp, state)?;
        Ok(Snapshot {
            id,
            next_packet,
            taken_ns,
            stall_ns,
            workers,
            shared,
        })
    }
}

/// A length-prefixed byte string: its copy, or nothing (`keep` false)
/// once its length is checked.
fn bytes_field(inp: &mut &[u8], keep: bool) -> Result<Vec<u8>, CodecError> {
    if keep {
        return Vec::<u8>::decode(inp);
    }
    let n = u64::decode(inp)? as usize;
    take(inp, n)?;
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            id: 3,
            next_packet: 1001,
            taken_ns: 5,
            stall_ns: 77,
            workers: vec![
                WorkerSnapshot {
                    last_seq: 40,
                    rng: [1, 2, 3, 4],
                    dv: vec![40, 7],
                    elements: vec![vec![], vec![9, 9]],
                },
                WorkerSnapshot {
                    last_seq: 41,
                    rng: [5, 6, 7, 8],
                    dv: vec![],
                    elements: vec![vec![1], vec![]],
                },
            ],
            shared: vec![7; 100],
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        assert_eq!(Snapshot::decode(&s.encode()), Ok(s));
    }

    #[test]
    fn every_corruption_and_truncation_is_refused() {
        let bytes = sample().encode();
        for decode in [Snapshot::decode, Snapshot::decode_summary] {
            for n in 0..bytes.len() {
                assert!(decode(&bytes[..n]).is_err(), "prefix {n} accepted");
            }
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0x41;
                assert!(decode(&b).is_err(), "flip at {i} accepted");
            }
        }
    }

    #[test]
    fn a_summary_has_everything_but_the_state() {
        let s = sample();
        let mut buf = vec![1, 2, 3];
        s.encode_into(&mut buf);
        assert_eq!(buf, s.encode());
        let sum = Snapshot::decode_summary(&buf).unwrap();
        let mut expect = s.clone();
        expect.shared.clear();
        expect.workers.iter_mut().for_each(|w| {
            w.elements.iter_mut().for_each(Vec::clear);
        });
        assert_eq!(sum, expect);
    }
}
