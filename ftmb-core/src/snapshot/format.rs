//! The snapshot format.
//!
//! # Encoding
//!
//! ```text
//! offset size  field
//! 0      4     magic "FTSN"
//! 4      2     version (4), little-endian
//! 6      4     crc32c of the body, little-endian
//! 10     8     body length, little-endian
//! 18     n     body: the rkyv archive of `Snapshot` (unaligned,
//!              little-endian, 64-bit relative pointers; root at the end):
//!              id, next_packet, taken_ns, stall_ns, workers (last_seq,
//!              next_packet, rng, dv, elements: each element's
//!              `save_state` bytes),
//!              shared (every shared variable's `StateCodec` encoding)
//! ```
//! A snapshot whose magic, version, length or checksum does not match, or
//! whose archive does not pass rkyv's validation (bytecheck), is refused
//! with [`SnapshotError`], never restored. The state inside stays in each
//! element's and variable's own encoding (fixed-size records for a NAT
//! table); the archive is the container, read in place: checking it and
//! reading the cut costs nothing per byte of state.

use crate::codec::CodecError;
use rkyv::rancor;

const MAGIC: &[u8; 4] = b"FTSN";
const VERSION: u16 = 4;
const HEADER: usize = 18;

/// One worker's part of a snapshot.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct WorkerSnapshot {
    /// Sequence number of the worker's last log record before the cut.
    pub last_seq: u64,
    /// First input packet id the worker had not processed: of the packets
    /// that go to this worker, those before it are reflected, none after.
    pub next_packet: u64,
    /// The worker's random generator state.
    pub rng: [u64; 4],
    /// The worker's dependency vector (see `context::merge_dv`).
    pub dv: Vec<u64>,
    /// Each element's `save_state` bytes, by element index (empty for
    /// sources and the driver).
    pub elements: Vec<Vec<u8>>,
}

/// A consistent cut of the router's state.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Snapshot {
    /// Snapshot number (1, 2, ...).
    pub id: u64,
    /// First input packet id not reflected by every worker: the lowest of
    /// the workers' cuts ([`WorkerSnapshot::next_packet`]). The input and
    /// output loggers keep what follows it.
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

/// A snapshot's state, wherever it lies (decoded, or in place in its
/// encoding): what loading it into a router reads.
pub struct SnapshotState<'a> {
    /// Per worker, each element's `save_state` bytes.
    pub elements: Vec<Vec<&'a [u8]>>,
    /// Every shared variable's encoding, in declaration order.
    pub shared: &'a [u8],
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
        let mut buf = std::mem::take(out);
        buf.clear();
        buf.reserve(HEADER + self.state_bytes() + 1024);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&[0; 12]);
        // The archive is written in place after the header (its pointers
        // are relative, so where the body starts does not matter).
        let mut buf = match rkyv::api::high::to_bytes_in::<_, rancor::Error>(self, buf) {
            Ok(b) => b,
            // Writing into a Vec with 64-bit pointers fails only when
            // memory does.
            Err(e) => panic!("snapshot archive: {e}"),
        };
        let crc = crc32c::crc32c(&buf[HEADER..]);
        let len = (buf.len() - HEADER) as u64;
        buf[6..10].copy_from_slice(&crc.to_le_bytes());
        buf[10..18].copy_from_slice(&len.to_le_bytes());
        *out = buf;
    }

    /// Decode, checking magic, version, length, checksum and the archive.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let a = Snapshot::access(bytes)?;
        rkyv::deserialize::<Snapshot, rancor::Error>(a)
            .map_err(|e| SnapshotError::Body(CodecError(e.to_string())))
    }

    /// [`Snapshot::decode`] without the state: every check is made and
    /// every field read, but each element's bytes and the shared
    /// variables' are left empty. For a holder that keeps the encoded
    /// bytes and needs only the cut (the output logger).
    pub fn decode_summary(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        Ok(Snapshot::summary_of(Snapshot::access(bytes)?))
    }

    fn summary_of(a: &ArchivedSnapshot) -> Snapshot {
        Snapshot {
            id: a.id.to_native(),
            next_packet: a.next_packet.to_native(),
            taken_ns: a.taken_ns.to_native(),
            stall_ns: a.stall_ns.to_native(),
            workers: a
                .workers
                .iter()
                .map(|w| WorkerSnapshot {
                    last_seq: w.last_seq.to_native(),
                    next_packet: w.next_packet.to_native(),
                    rng: w.rng.map(|x| x.to_native()),
                    dv: w.dv.iter().map(|x| x.to_native()).collect(),
                    elements: vec![Vec::new(); w.elements.len()],
                })
                .collect(),
            shared: Vec::new(),
        }
    }

    /// [`Snapshot::decode_summary`], with the state left where it lies in
    /// `bytes`: for loading it into a router without copying it.
    pub fn decode_in_place(bytes: &[u8]) -> Result<(Snapshot, SnapshotState<'_>), SnapshotError> {
        let a = Snapshot::access(bytes)?;
        let state = SnapshotState {
            elements: a
                .workers
                .iter()
                .map(|w| w.elements.iter().map(|e| e.as_slice()).collect())
                .collect(),
            shared: a.shared.as_slice(),
        };
        Ok((Snapshot::summary_of(a), state))
    }

    /// Its element and shared state, borrowed.
    pub fn state(&self) -> SnapshotState<'_> {
        SnapshotState {
            elements: self
                .workers
                .iter()
                .map(|w| w.elements.iter().map(Vec::as_slice).collect())
                .collect(),
            shared: &self.shared,
        }
    }

    /// The archived snapshot in `bytes`, after every check.
    fn access(bytes: &[u8]) -> Result<&ArchivedSnapshot, SnapshotError> {
        if bytes.len() < HEADER {
            return Err(if bytes.len() >= 4 && &bytes[..4] != MAGIC {
                SnapshotError::BadMagic
            } else {
                SnapshotError::Truncated {
                    need: HEADER,
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
        let have = bytes.len() - HEADER;
        let need = usize::try_from(len).unwrap_or(usize::MAX);
        if need > have {
            return Err(SnapshotError::Truncated {
                need: need.saturating_add(HEADER),
                have: bytes.len(),
            });
        }
        let body = &bytes[HEADER..HEADER + need];
        let computed = crc32c::crc32c(body);
        if computed != stored {
            return Err(SnapshotError::BadChecksum { stored, computed });
        }
        rkyv::access::<ArchivedSnapshot, rancor::Error>(body)
            .map_err(|e| SnapshotError::Body(CodecError(e.to_string())))
    }
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
                    next_packet: 1001,
                    rng: [1, 2, 3, 4],
                    dv: vec![40, 7],
                    elements: vec![vec![], vec![9, 9]],
                },
                WorkerSnapshot {
                    last_seq: 41,
                    next_packet: 1003,
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
    fn state_read_in_place_is_the_decoded_state() {
        let s = sample();
        let bytes = s.encode();
        let Ok((summary, state)) = Snapshot::decode_in_place(&bytes) else {
            panic!("does not decode in place");
        };
        assert_eq!(Ok(summary), Snapshot::decode_summary(&bytes));
        let owned = s.state();
        assert_eq!(state.shared, owned.shared);
        assert_eq!(state.elements, owned.elements);
        assert!(Snapshot::decode_in_place(&bytes[..bytes.len() - 1]).is_err());
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
    fn a_body_that_is_no_valid_archive_is_refused_even_with_its_checksum() {
        let mut bytes = sample().encode();
        // The root lies at the end; its last field is `shared` (relative
        // pointer, length): point it out of the archive, then fix the
        // checksum so that only the archive's validation can object.
        let n = bytes.len();
        bytes[n - 16..].fill(0xff);
        let crc = crc32c::crc32c(&bytes[HEADER..]);
        bytes[6..10].copy_from_slice(&crc.to_le_bytes());
        for decode in [Snapshot::decode, Snapshot::decode_summary] {
            assert!(matches!(decode(&bytes), Err(SnapshotError::Body(_))));
        }
    }

    #[test]
    fn decodes_wherever_it_lies_in_memory() {
        let enc = sample().encode();
        for off in 1..8 {
            let mut b = vec![0u8; off];
            b.extend_from_slice(&enc);
            assert_eq!(Snapshot::decode(&b[off..]), Ok(sample()));
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
