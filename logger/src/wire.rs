//! The versioned wire format of everything that crosses a link between
//! roles: input logger -> master, master -> output logger, output logger ->
//! replica. The durable input log stores the same frames on disk.
//!
//! Two levels, smoltcp style:
//!
//! - [`FrameView`]: a zero-copy view over the bytes of one frame. Its checked
//!   constructor ([`FrameView::new_checked`]) validates magic, version, length
//!   and checksum; after it no accessor can panic. [`LogBatchView`] does the
//!   same for a log batch payload, so the output logger can walk records
//!   without allocating.
//! - Plain structs ([`PacketMsg`], [`LogBatchMsg`], [`OutputMsg`],
//!   [`SnapshotMsg`], [`SnapshotPartMsg`], [`SnapshotCommittedMsg`],
//!   [`HeartbeatMsg`], [`ResumeMsg`], [`VoidMsg`]) and the
//!   [`Message`] enum with `encode(&self, out)` (appends one whole frame) and
//!   `decode(&[u8])` (exactly one whole frame, every error reported).
//!
//! All integers are little-endian.
//!
//! # Frame layout (version 1)
//!
//! ```text
//! offset  size  field
//!  0      4     magic    b"FTMB"
//!  4      2     version  u16 = 1
//!  6      1     kind     u8   (FrameKind)
//!  7      1     flags    u8   (reserved: writers send 0, readers ignore)
//!  8      4     len      u32  payload bytes
//! 12      4     crc32c   u32  over bytes 6..12 (kind, flags, len) ++ payload
//! 16      len   payload
//! ```
//!
//! Every byte of a frame is checked: magic and version directly, a length
//! above the reader's limit is [`WireError::TooLarge`], a length past the end
//! of the data is [`WireError::Truncated`], and kind, flags, length and
//! payload are under the checksum. The checksum is per frame, and a log batch
//! is one frame, so every record batch carries its own checksum.
//!
//! # Stream rules
//!
//! A stream is a sequence of frames. [`FrameReader`] treats EOF exactly
//! between two frames as the clean end of the stream, and EOF inside a frame
//! as [`WireError::Truncated`]: a torn final frame is never returned.

use ftmb_core::pal::{LogRecord, Pal};
use std::io::{self, Read, Write};

/// Frame magic, the first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"FTMB";
/// The wire format version this crate reads and writes.
pub const VERSION: u16 = 1;
/// Bytes of a frame header.
pub const HEADER_LEN: usize = 16;
/// Default largest payload a reader accepts (64 MiB): links that carry
/// packets, records, outputs and snapshots.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 << 20;
/// Largest payload on a link that carries only control frames (heartbeats,
/// `Resume`, `SnapshotCommitted`): 4 KiB. A peer that sends more there is
/// cut off at the header.
pub const MAX_CONTROL_PAYLOAD: usize = 4 << 10;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// An input packet (input logger -> master, input log on disk).
    Packet = 1,
    /// A batch of one worker's log records (master -> output logger).
    LogBatch = 2,
    /// An output packet with its dependency vector (master -> output logger).
    Output = 3,
    /// A snapshot, whole (output logger -> replica, in a takeover when the
    /// standby had not received it whole already).
    Snapshot = 4,
    /// A snapshot was stored and committed (output logger -> input logger).
    SnapshotCommitted = 5,
    /// Liveness (master -> failure detector).
    Heartbeat = 6,
    /// The sender will send nothing more on this link.
    EndOfStream = 7,
    /// Input stream position: a consumer asks the input logger for packets
    /// from an id on; the input logger answers with the id live traffic
    /// starts at (everything before it is replay of its log).
    Resume = 8,
    /// A piece of a snapshot's payload (master -> output logger, so that
    /// an 11 MB snapshot does not hold the link for its whole length; and
    /// forwarded as it arrives, output logger -> standby replica).
    SnapshotPart = 9,
    /// Records a replica could not follow and ran again, logging anew
    /// (replica -> output logger, first on its link; see [`VoidMsg`]).
    Void = 10,
}

impl FrameKind {
    /// The kind for a wire byte, if known.
    pub fn from_u8(b: u8) -> Option<FrameKind> {
        Some(match b {
            1 => FrameKind::Packet,
            2 => FrameKind::LogBatch,
            3 => FrameKind::Output,
            4 => FrameKind::Snapshot,
            5 => FrameKind::SnapshotCommitted,
            6 => FrameKind::Heartbeat,
            7 => FrameKind::EndOfStream,
            8 => FrameKind::Resume,
            9 => FrameKind::SnapshotPart,
            10 => FrameKind::Void,
            _ => return None,
        })
    }
}

/// A frame or a stream of frames did not decode.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The first four bytes are not `b"FTMB"`.
    #[error("bad frame magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// A version this reader does not speak.
    #[error("unsupported wire version {0} (this build speaks {VERSION})")]
    BadVersion(u16),
    /// The stored checksum does not match the bytes.
    #[error("frame checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadChecksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the bytes received.
        computed: u32,
    },
    /// The data ends inside a frame.
    #[error("truncated frame: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the frame needs (header, or header plus payload).
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The payload length is above the reader's limit.
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A kind byte this reader does not know (checksum was valid).
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A frame of another kind than the decoder expected.
    #[error("expected a {want:?} frame, got {got:?}")]
    WrongKind {
        /// The kind the decoder decodes.
        want: FrameKind,
        /// The kind of the frame.
        got: FrameKind,
    },
    /// The checksum was valid but the payload does not follow its layout.
    #[error("malformed {kind:?} payload: {reason}")]
    Malformed {
        /// The frame's kind.
        kind: FrameKind,
        /// What was wrong.
        reason: &'static str,
    },
    /// Reading or writing the underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn frame_crc(header: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[6..12]), payload)
}

/// Validate a header; returns the payload length. Checks magic, version and
/// the length limit (not the checksum, which needs the payload).
fn check_header(h: &[u8], max_payload: usize) -> Result<usize, WireError> {
    if h.len() < HEADER_LEN {
        return Err(WireError::Truncated {
            need: HEADER_LEN,
            have: h.len(),
        });
    }
    if h[0..4] != MAGIC {
        return Err(WireError::BadMagic([h[0], h[1], h[2], h[3]]));
    }
    let version = le_u16(h, 4);
    if version != VERSION {
        return Err(WireError::BadVersion(version));
    }
    let len = le_u32(h, 8) as usize;
    if len > max_payload {
        return Err(WireError::TooLarge {
            len,
            max: max_payload,
        });
    }
    Ok(len)
}

/// A zero-copy view over one whole, validated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameView<'a> {
    buf: &'a [u8],
    kind: FrameKind,
}

impl<'a> FrameView<'a> {
    /// Validate the frame at the start of `buf` (bytes after it are
    /// ignored; see [`FrameView::total_len`]) with the default payload limit.
    pub fn new_checked(buf: &'a [u8]) -> Result<FrameView<'a>, WireError> {
        Self::new_checked_with_limit(buf, DEFAULT_MAX_PAYLOAD)
    }

    /// [`FrameView::new_checked`] with an explicit payload limit.
    pub fn new_checked_with_limit(
        buf: &'a [u8],
        max_payload: usize,
    ) -> Result<FrameView<'a>, WireError> {
        let len = check_header(buf, max_payload)?;
        let total = HEADER_LEN + len;
        if buf.len() < total {
            return Err(WireError::Truncated {
                need: total,
                have: buf.len(),
            });
        }
        let buf = &buf[..total];
        let stored = le_u32(buf, 12);
        let computed = frame_crc(buf, &buf[HEADER_LEN..]);
        if stored != computed {
            return Err(WireError::BadChecksum { stored, computed });
        }
        let kind = FrameKind::from_u8(buf[6]).ok_or(WireError::UnknownKind(buf[6]))?;
        Ok(FrameView { buf, kind })
    }

    /// The frame's kind.
    pub fn kind(&self) -> FrameKind {
        self.kind
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.buf[7]
    }

    /// The payload bytes.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..]
    }

    /// Header plus payload length.
    pub fn total_len(&self) -> usize {
        self.buf.len()
    }

    /// The whole frame's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Decode the payload into a [`Message`].
    pub fn to_message(&self) -> Result<Message, WireError> {
        Message::from_view(self)
    }
}

/// Split the first frame off `buf`: the validated frame and the rest.
pub fn split_frame(buf: &[u8], max_payload: usize) -> Result<(FrameView<'_>, &[u8]), WireError> {
    let f = FrameView::new_checked_with_limit(buf, max_payload)?;
    Ok((f, &buf[f.total_len()..]))
}

/// Start a frame in `out`; returns its start offset for [`end_frame`].
fn begin_frame(out: &mut Vec<u8>, kind: FrameKind) -> usize {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(kind as u8);
    out.push(0); // flags
    out.extend_from_slice(&[0; 8]); // len, crc: filled by end_frame
    start
}

/// Fill in the length and checksum of the frame begun at `start`.
///
/// # Panics
/// If the payload is 4 GiB or larger (the sender's own data).
fn end_frame(out: &mut [u8], start: usize) {
    end_frame_with_tail(out, start, &[]);
}

/// [`end_frame`] for a frame whose payload goes on past `out` with
/// `tail`: length and checksum cover both; the caller writes `tail` right
/// after `out`'s bytes.
///
/// # Panics
/// If the payload is 4 GiB or larger (the sender's own data).
fn end_frame_with_tail(out: &mut [u8], start: usize, tail: &[u8]) {
    let len = out.len() - start - HEADER_LEN + tail.len();
    let len32 = u32::try_from(len).expect("frame payload of 4 GiB or more");
    out[start + 8..start + 12].copy_from_slice(&len32.to_le_bytes());
    let f = &out[start..];
    let crc = crc32c::crc32c_append(frame_crc(f, &f[HEADER_LEN..]), tail);
    out[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
}

/// Send one frame of `kind` on `w`: `head` appends the payload's fields,
/// `tail` (tens of megabytes of snapshot) ends the payload and is written
/// from the caller's memory, not copied into the writer's buffer.
fn write_frame_with_tail<W: Write>(
    w: &mut FrameWriter<W>,
    kind: FrameKind,
    head: impl FnOnce(&mut Vec<u8>),
    tail: &[u8],
) -> io::Result<()> {
    w.send_with_tail(
        |out| {
            let start = begin_frame(out, kind);
            head(out);
            end_frame_with_tail(out, start, tail);
        },
        tail,
    )
}

/// A bounds-checked cursor over a payload.
struct Cur<'a> {
    buf: &'a [u8],
    kind: FrameKind,
}

impl<'a> Cur<'a> {
    fn new(v: &FrameView<'a>, want: FrameKind) -> Result<Cur<'a>, WireError> {
        if v.kind() != want {
            return Err(WireError::WrongKind {
                want,
                got: v.kind(),
            });
        }
        Ok(Cur {
            buf: v.payload(),
            kind: want,
        })
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Malformed {
                kind: self.kind,
                reason: what,
            });
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(le_u16(self.take(2, what)?, 0))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(le_u32(self.take(4, what)?, 0))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let b = self.take(8, what)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed {
                kind: self.kind,
                reason: "trailing bytes after the payload",
            })
        }
    }
}

/// Validate that `frame` is exactly one frame.
fn whole_frame(frame: &[u8]) -> Result<FrameView<'_>, WireError> {
    let v = FrameView::new_checked(frame)?;
    if v.total_len() != frame.len() {
        return Err(WireError::Malformed {
            kind: v.kind(),
            reason: "bytes after the end of the frame",
        });
    }
    Ok(v)
}

macro_rules! frame_codec {
    ($t:ty, $kind:expr) => {
        impl $t {
            /// Append this message as one whole frame.
            pub fn encode(&self, out: &mut Vec<u8>) {
                let start = begin_frame(out, $kind);
                self.encode_payload(out);
                end_frame(out, start);
            }

            /// Decode exactly one whole frame of this kind.
            pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
                Self::from_view(&whole_frame(frame)?)
            }
        }
    };
}

/// An input packet, as the input logger logs it and forwards it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketMsg {
    /// Packet id (strictly increasing from 1).
    pub id: u64,
    /// Arrival time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Source (ingress port) index.
    pub source: u16,
    /// Packet bytes.
    pub data: Vec<u8>,
}

impl PacketMsg {
    // Payload (kind 1, 18 + n bytes):
    //   0   8  id       u64
    //   8   8  ts_ns    u64
    //  16   2  source   u16
    //  18   n  data     (rest of the payload)
    fn encode_payload(&self, out: &mut Vec<u8>) {
        Self::encode_payload_of(self.id, self.ts_ns, self.source, &self.data, out);
    }

    fn encode_payload_of(id: u64, ts_ns: u64, source: u16, data: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&ts_ns.to_le_bytes());
        out.extend_from_slice(&source.to_le_bytes());
        out.extend_from_slice(data);
    }

    /// Append a packet frame from borrowed parts (the bytes of
    /// [`PacketMsg::encode`], without building the message).
    pub fn encode_parts(id: u64, ts_ns: u64, source: u16, data: &[u8], out: &mut Vec<u8>) {
        let start = begin_frame(out, FrameKind::Packet);
        Self::encode_payload_of(id, ts_ns, source, data, out);
        end_frame(out, start);
    }

    /// Decode from a validated frame (layout beside `encode_payload`).
    pub fn from_view(v: &FrameView<'_>) -> Result<Self, WireError> {
        let (id, ts_ns, source, data) = Self::parts(v)?;
        Ok(PacketMsg {
            id,
            ts_ns,
            source,
            data: data.to_vec(),
        })
    }

    /// `(id, ts_ns, source, data)` of a validated frame, the bytes
    /// borrowed from it.
    pub fn parts<'a>(v: &FrameView<'a>) -> Result<(u64, u64, u16, &'a [u8]), WireError> {
        let mut c = Cur::new(v, FrameKind::Packet)?;
        Ok((
            c.u64("packet id")?,
            c.u64("timestamp")?,
            c.u16("source")?,
            c.rest(),
        ))
    }
}
frame_codec!(PacketMsg, FrameKind::Packet);

/// Record tag of a [`LogRecord::Pal`].
pub const TAG_PAL: u8 = 1;
/// Record tag of a [`LogRecord::Clock`].
pub const TAG_CLOCK: u8 = 2;
const PAL_LEN: usize = 1 + 8 + 4 + 8;
const CLOCK_LEN: usize = 1 + 8 + 8 + 4;

/// A batch of one worker's consecutive log records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogBatchMsg {
    /// Worker index.
    pub worker: u16,
    /// Sequence number of the first record (the rest follow consecutively).
    pub first_seq: u64,
    /// The records, in log order.
    pub records: Vec<LogRecord>,
}

/// Append one record.
// Record layouts:
//   Pal   (21 bytes): tag u8 = 1 | packet u64 | var u32 | count u64
//   Clock (21 bytes): tag u8 = 2 | packet u64 | ns u64 | count u32
fn encode_record(r: &LogRecord, out: &mut Vec<u8>) {
    match r {
        LogRecord::Pal(p) => {
            out.push(TAG_PAL);
            out.extend_from_slice(&p.packet.to_le_bytes());
            out.extend_from_slice(&p.var.to_le_bytes());
            out.extend_from_slice(&p.count.to_le_bytes());
        }
        LogRecord::Clock { packet, ns, count } => {
            out.push(TAG_CLOCK);
            out.extend_from_slice(&packet.to_le_bytes());
            out.extend_from_slice(&ns.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
    }
}

impl LogBatchMsg {
    // Payload (kind 2):
    //   0   2  worker     u16
    //   2   8  first_seq  u64
    //  10   4  count      u32
    //  14   .. count records (layouts beside `encode_record`), nothing after
    //
    // # Panics
    // With 2^32 or more records (the sender's own data).
    fn encode_payload(&self, out: &mut Vec<u8>) {
        Self::encode_payload_of(self.worker, self.first_seq, self.records.iter(), out);
    }

    fn encode_payload_of<'a>(
        worker: u16,
        first_seq: u64,
        records: impl ExactSizeIterator<Item = &'a LogRecord>,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(&worker.to_le_bytes());
        out.extend_from_slice(&first_seq.to_le_bytes());
        let n = u32::try_from(records.len()).expect("2^32 or more records in a batch");
        out.extend_from_slice(&n.to_le_bytes());
        for r in records {
            encode_record(r, out);
        }
    }

    /// Append a worker's numbered records (consecutive sequences, as the
    /// worker's log hands them over) as one whole frame, without building a
    /// `LogBatchMsg` (same bytes as [`LogBatchMsg::encode`]). Nothing for
    /// no records.
    pub fn encode_numbered(worker: u16, records: &[(u64, LogRecord)], out: &mut Vec<u8>) {
        let Some(&(first_seq, _)) = records.first() else {
            return;
        };
        let start = begin_frame(out, FrameKind::LogBatch);
        Self::encode_payload_of(worker, first_seq, records.iter().map(|(_, r)| r), out);
        end_frame(out, start);
    }

    /// The length of the frame [`LogBatchMsg::encode_numbered`] makes of
    /// `records` (0 for none), without encoding it.
    pub fn numbered_len(records: &[(u64, LogRecord)]) -> usize {
        if records.is_empty() {
            return 0;
        }
        let body: usize = records
            .iter()
            .map(|(_, r)| match r {
                LogRecord::Pal(_) => PAL_LEN,
                LogRecord::Clock { .. } => CLOCK_LEN,
            })
            .sum();
        HEADER_LEN + 14 + body
    }

    /// Decode from a validated frame.
    pub fn from_view(v: &FrameView<'_>) -> Result<Self, WireError> {
        let b = LogBatchView::new_checked(v)?;
        Ok(LogBatchMsg {
            worker: b.worker(),
            first_seq: b.first_seq(),
            records: b.records().map(|(_, r)| r).collect(),
        })
    }
}
frame_codec!(LogBatchMsg, FrameKind::LogBatch);

/// A zero-copy view over a validated log batch payload; its record iterator
/// cannot fail.
#[derive(Clone, Copy, Debug)]
pub struct LogBatchView<'a> {
    worker: u16,
    first_seq: u64,
    count: u32,
    records: &'a [u8],
}

impl<'a> LogBatchView<'a> {
    /// Validate a log batch frame: header fields, every record's tag and
    /// length, the record count, no trailing bytes, no sequence overflow.
    pub fn new_checked(v: &FrameView<'a>) -> Result<LogBatchView<'a>, WireError> {
        let mut c = Cur::new(v, FrameKind::LogBatch)?;
        let worker = c.u16("worker")?;
        let first_seq = c.u64("first sequence")?;
        let count = c.u32("record count")?;
        let records = c.buf;
        for _ in 0..count {
            let n = match c.u8("record tag (fewer records than the count)")? {
                TAG_PAL => PAL_LEN,
                TAG_CLOCK => CLOCK_LEN,
                _ => {
                    return Err(WireError::Malformed {
                        kind: FrameKind::LogBatch,
                        reason: "unknown record tag",
                    })
                }
            };
            c.take(n - 1, "record shorter than its tag says")?;
        }
        c.finish()?;
        if first_seq == 0 || first_seq.checked_add(u64::from(count)).is_none() {
            return Err(WireError::Malformed {
                kind: FrameKind::LogBatch,
                reason: "sequence numbers out of range",
            });
        }
        Ok(LogBatchView {
            worker,
            first_seq,
            count,
            records,
        })
    }

    /// Worker index.
    pub fn worker(&self) -> u16 {
        self.worker
    }
    /// Sequence number of the first record.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }
    /// Number of records.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The records with their sequence numbers.
    pub fn records(&self) -> impl Iterator<Item = (u64, LogRecord)> + 'a {
        let mut buf = self.records;
        let mut seq = self.first_seq;
        std::iter::from_fn(move || {
            // Validated by new_checked: every access below is in bounds.
            let (&tag, rest) = buf.split_first()?;
            let u64_at = |at: usize| {
                let mut a = [0; 8];
                a.copy_from_slice(&rest[at..at + 8]);
                u64::from_le_bytes(a)
            };
            let rec = if tag == TAG_PAL {
                let r = LogRecord::Pal(Pal {
                    packet: u64_at(0),
                    var: le_u32(rest, 8),
                    count: u64_at(12),
                });
                buf = &rest[PAL_LEN - 1..];
                r
            } else {
                let r = LogRecord::Clock {
                    packet: u64_at(0),
                    ns: u64_at(8),
                    count: le_u32(rest, 16),
                };
                buf = &rest[CLOCK_LEN - 1..];
                r
            };
            let s = seq;
            seq += 1;
            Some((s, rec))
        })
    }
}

/// An output packet on its way to the output logger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputMsg {
    /// Output sink (egress port) index.
    pub sink: u16,
    /// Id of the input packet that produced it.
    pub packet_id: u64,
    /// Its ordinal among that input packet's outputs.
    pub ordinal: u32,
    /// Dependency vector entries (trailing zeros may be omitted).
    pub dv: Vec<u64>,
    /// Emission time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Packet bytes.
    pub data: Vec<u8>,
}

impl OutputMsg {
    // Payload (kind 3):
    //   0        2  sink       u16
    //   2        8  packet_id  u64
    //  10        4  ordinal    u32
    //  14        2  ndv        u16
    //  16    8*ndv  dv         ndv x u64
    //  16+8*ndv  8  ts_ns      u64
    //  24+8*ndv  n  data       (rest of the payload)
    //
    // # Panics
    // With more than 65535 dependency vector entries.
    fn encode_payload(&self, out: &mut Vec<u8>) {
        Self::encode_payload_of(
            out,
            ftmb_core::ft::OutputRef {
                sink: self.sink,
                packet_id: self.packet_id,
                ordinal: self.ordinal,
                ts_ns: self.ts_ns,
                dv: &self.dv,
                data: &self.data,
            },
        );
    }

    fn encode_payload_of(out: &mut Vec<u8>, o: ftmb_core::ft::OutputRef<'_>) {
        out.extend_from_slice(&o.sink.to_le_bytes());
        out.extend_from_slice(&o.packet_id.to_le_bytes());
        out.extend_from_slice(&o.ordinal.to_le_bytes());
        let n = u16::try_from(o.dv.len()).expect("more than 65535 dv entries");
        out.extend_from_slice(&n.to_le_bytes());
        for s in o.dv {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend_from_slice(&o.ts_ns.to_le_bytes());
        out.extend_from_slice(o.data);
    }

    /// Append one output of a worker's batch as a whole frame, without
    /// building an `OutputMsg` (same bytes as [`OutputMsg::encode`]).
    pub fn encode_ref(o: ftmb_core::ft::OutputRef<'_>, out: &mut Vec<u8>) {
        let start = begin_frame(out, FrameKind::Output);
        Self::encode_payload_of(out, o);
        end_frame(out, start);
    }

    /// Decode a validated frame straight into a batch of outputs (no
    /// message built, no per-output allocation).
    pub fn push_into(
        v: &FrameView<'_>,
        batch: &mut ftmb_core::ft::OutputBatch,
    ) -> Result<(), WireError> {
        let mut c = Cur::new(v, FrameKind::Output)?;
        let sink = c.u16("sink")?;
        let packet_id = c.u64("packet id")?;
        let ordinal = c.u32("ordinal")?;
        let n = usize::from(c.u16("dv length")?);
        let dv = c.take(8 * n, "dv entries")?;
        let ts_ns = c.u64("timestamp")?;
        let dv = dv.chunks_exact(8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        });
        batch.push_parts((sink, packet_id, ordinal, ts_ns), dv, c.rest());
        Ok(())
    }

    /// Decode from a validated frame.
    pub fn from_view(v: &FrameView<'_>) -> Result<Self, WireError> {
        let mut c = Cur::new(v, FrameKind::Output)?;
        let sink = c.u16("sink")?;
        let packet_id = c.u64("packet id")?;
        let ordinal = c.u32("ordinal")?;
        let n = c.u16("dv length")?;
        let mut dv = Vec::with_capacity(usize::from(n).min(c.buf.len() / 8));
        for _ in 0..n {
            dv.push(c.u64("dv entries")?);
        }
        Ok(OutputMsg {
            sink,
            packet_id,
            ordinal,
            dv,
            ts_ns: c.u64("timestamp")?,
            data: c.rest().to_vec(),
        })
    }
}
frame_codec!(OutputMsg, FrameKind::Output);

/// A snapshot frame's id, cut and borrowed payload ([`SnapshotMsg::parts`]).
pub type SnapshotFrameParts<'a> = (u64, Vec<(u64, u64)>, &'a [u8]);

/// A snapshot with its cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMsg {
    /// Snapshot id.
    pub id: u64,
    /// Per worker: (last packet id processed, last log sequence).
    pub cut: Vec<(u64, u64)>,
    /// The encoded state (opaque here; it carries its own checksum too).
    pub payload: Vec<u8>,
}

impl SnapshotMsg {
    // Payload (kind 4):
    //   0         8  id        u64
    //   8         2  nworkers  u16
    //  10   16*nw    cut       nworkers x (last_packet u64, last_seq u64)
    //  10+16*nw  n   payload   (rest of the payload)
    //
    // # Panics
    // With more than 65535 workers.
    fn encode_payload(&self, out: &mut Vec<u8>) {
        Self::encode_payload_of(self.id, &self.cut, &self.payload, out);
    }

    fn encode_payload_of(id: u64, cut: &[(u64, u64)], payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&id.to_le_bytes());
        let n = u16::try_from(cut.len()).expect("more than 65535 workers");
        out.extend_from_slice(&n.to_le_bytes());
        for (p, s) in cut {
            out.extend_from_slice(&p.to_le_bytes());
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend_from_slice(payload);
    }

    /// Append a snapshot frame from borrowed parts (same bytes as
    /// [`SnapshotMsg::encode`]; no copy of the payload into a message).
    pub fn encode_parts(id: u64, cut: &[(u64, u64)], payload: &[u8], out: &mut Vec<u8>) {
        let start = begin_frame(out, FrameKind::Snapshot);
        Self::encode_payload_of(id, cut, payload, out);
        end_frame(out, start);
    }

    /// Send a snapshot frame from borrowed parts on `w` without copying
    /// `payload` into the writer's buffer (tens of megabytes): the same
    /// bytes as [`SnapshotMsg::encode_parts`], written in two pieces.
    pub fn write_parts<W: Write>(
        id: u64,
        cut: &[(u64, u64)],
        payload: &[u8],
        w: &mut FrameWriter<W>,
    ) -> io::Result<()> {
        write_frame_with_tail(
            w,
            FrameKind::Snapshot,
            |out| Self::encode_payload_of(id, cut, &[], out),
            payload,
        )
    }

    /// Decode from a validated frame.
    pub fn from_view(v: &FrameView<'_>) -> Result<Self, WireError> {
        let (id, cut, payload) = Self::parts(v)?;
        Ok(SnapshotMsg {
            id,
            cut,
            payload: payload.to_vec(),
        })
    }

    /// `(id, cut, payload)` of a validated frame, the payload borrowed
    /// from it (megabytes: the caller copies it where it wants).
    pub fn parts<'a>(v: &FrameView<'a>) -> Result<SnapshotFrameParts<'a>, WireError> {
        let mut c = Cur::new(v, FrameKind::Snapshot)?;
        let id = c.u64("snapshot id")?;
        let n = c.u16("worker count")?;
        let mut cut = Vec::with_capacity(usize::from(n).min(c.buf.len() / 16));
        for _ in 0..n {
            cut.push((c.u64("cut packet id")?, c.u64("cut sequence")?));
        }
        Ok((id, cut, c.rest()))
    }
}
frame_codec!(SnapshotMsg, FrameKind::Snapshot);

/// A piece of an encoded snapshot (what [`SnapshotMsg::payload`] carries;
/// the cut is inside it). The pieces of one snapshot are sent in order,
/// other frames may come between them; [`SnapshotParts`] puts them back
/// together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPartMsg {
    /// Snapshot id.
    pub id: u64,
    /// Bytes of the whole encoded snapshot.
    pub total: u64,
    /// Where this piece starts in it.
    pub offset: u64,
    /// The piece.
    pub data: Vec<u8>,
}

impl SnapshotPartMsg {
    // Payload (kind 9):
    //   0   8  id      u64
    //   8   8  total   u64  bytes of the whole encoded snapshot
    //  16   8  offset  u64  of this piece
    //  24   n  data    (rest of the payload)
    fn encode_payload(&self, out: &mut Vec<u8>) {
        Self::encode_payload_of(self.id, self.total, self.offset, &self.data, out);
    }

    fn encode_payload_of(id: u64, total: u64, offset: u64, data: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(data);
    }

    /// Append one piece frame from borrowed parts.
    pub fn encode_parts(id: u64, total: u64, offset: u64, data: &[u8], out: &mut Vec<u8>) {
        let start = begin_frame(out, FrameKind::SnapshotPart);
        Self::encode_payload_of(id, total, offset, data, out);
        end_frame(out, start);
    }

    /// Send one piece on `w`, `data` written from the caller's memory (the
    /// bytes of [`SnapshotPartMsg::encode_parts`]).
    pub fn write_parts<W: Write>(
        id: u64,
        total: u64,
        offset: u64,
        data: &[u8],
        w: &mut FrameWriter<W>,
    ) -> io::Result<()> {
        write_frame_with_tail(
            w,
            FrameKind::SnapshotPart,
            |out| Self::encode_payload_of(id, total, offset, &[], out),
            data,
        )
    }

    /// `(id, total, offset, data)` of a validated frame, without copying.
    pub fn parts<'a>(v: &FrameView<'a>) -> Result<(u64, u64, u64, &'a [u8]), WireError> {
        let mut c = Cur::new(v, FrameKind::SnapshotPart)?;
        let id = c.u64("snapshot id")?;
        let total = c.u64("snapshot length")?;
        let offset = c.u64("part offset")?;
        let data = c.rest();
        if offset
            .checked_add(data.len() as u64)
            .map_or(true, |end| end > total)
        {
            return Err(WireError::Malformed {
                kind: FrameKind::SnapshotPart,
                reason: "part runs past the snapshot's length",
            });
        }
        Ok((id, total, offset, data))
    }

    /// Decode from a validated frame.
    pub fn from_view(v: &FrameView<'_>) -> Result<Self, WireError> {
        let (id, total, offset, data) = Self::parts(v)?;
        Ok(SnapshotPartMsg {
            id,
            total,
            offset,
            data: data.to_vec(),
        })
    }
}
frame_codec!(SnapshotPartMsg, FrameKind::SnapshotPart);

/// Default largest snapshot a [`SnapshotParts`] assembles (1 GiB).
pub const DEFAULT_MAX_SNAPSHOT: u64 = 1 << 30;

/// Most bytes reserved for a snapshot when its first piece arrives (16
/// MiB); beyond, the buffer grows as pieces arrive. A recycled buffer
/// (see [`SnapshotParts::recycle`]) makes that growth a one-off.
const SNAPSHOT_RESERVE: u64 = 16 << 20;

/// Reassembles [`SnapshotPartMsg`] pieces into the encoded snapshot they
/// were cut from.
///
/// The length a peer declares is checked against a maximum
/// ([`SnapshotParts::with_limit`], [`DEFAULT_MAX_SNAPSHOT`] by default)
/// before anything is reserved, and the reservation itself is bounded: a
/// peer that declares a large snapshot and sends one piece costs at most
/// 16 MiB.
#[derive(Debug)]
pub struct SnapshotParts {
    id: u64,
    total: u64,
    buf: Vec<u8>,
    /// A buffer handed back for the next snapshot (see `recycle`).
    spare: Vec<u8>,
    /// Largest declared length accepted.
    max_total: u64,
}

impl Default for SnapshotParts {
    fn default() -> Self {
        SnapshotParts::with_limit(DEFAULT_MAX_SNAPSHOT)
    }
}

impl SnapshotParts {
    /// An assembler that refuses snapshots declared longer than
    /// `max_total` bytes.
    pub fn with_limit(max_total: u64) -> Self {
        SnapshotParts {
            id: 0,
            total: 0,
            buf: Vec::new(),
            spare: Vec::new(),
            max_total,
        }
    }

    /// Give back the bytes of an earlier snapshot once nothing else holds
    /// them: the next snapshot is gathered in them instead of in fresh
    /// memory (megabytes of page faults every snapshot interval).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if buf.capacity() > self.spare.capacity() {
            self.spare = buf;
        }
    }

    /// Add the piece in frame `v`. Returns `(id, encoded snapshot)` once
    /// its last piece is in. A piece that does not continue the snapshot
    /// being assembled (another id, or a gap) drops what was gathered and
    /// is an error unless it starts a new snapshot.
    pub fn add(&mut self, v: &FrameView<'_>) -> Result<Option<(u64, Vec<u8>)>, WireError> {
        let (id, total, offset, data) = SnapshotPartMsg::parts(v)?;
        if total > self.max_total {
            self.buf.clear();
            self.total = 0;
            return Err(WireError::TooLarge {
                len: usize::try_from(total).unwrap_or(usize::MAX),
                max: usize::try_from(self.max_total).unwrap_or(usize::MAX),
            });
        }
        if offset == 0 {
            self.id = id;
            self.total = total;
            if self.buf.capacity() < self.spare.capacity() {
                std::mem::swap(&mut self.buf, &mut self.spare);
            }
            self.buf.clear();
            self.buf.reserve(total.min(SNAPSHOT_RESERVE) as usize);
        } else if id != self.id || total != self.total || offset != self.buf.len() as u64 {
            self.buf.clear();
            return Err(WireError::Malformed {
                kind: FrameKind::SnapshotPart,
                reason: "snapshot part out of order",
            });
        }
        self.buf.extend_from_slice(data);
        if (self.buf.len() as u64) < self.total {
            return Ok(None);
        }
        Ok(Some((self.id, std::mem::take(&mut self.buf))))
    }
}

/// A snapshot is stored: its cut's predecessors may be discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotCommittedMsg {
    /// Snapshot id.
    pub id: u64,
}

impl SnapshotCommittedMsg {
    // Payload (kind 5, 8 bytes):
    //   0   8  id  u64
    fn encode_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
    }

    /// Decode from a validated frame.
    pub fn from_view(v: &FrameView<'_>) -> Result<Self, WireError> {
        let mut c = Cur::new(v, FrameKind::SnapshotCommitted)?;
        let id = c.u64("snapshot id")?;
        c.finish()?;
        Ok(SnapshotCommittedMsg { id })
    }
}
frame_codec!(SnapshotCommittedMsg, FrameKind::SnapshotCommitted);

/// One worker's stored records with sequence numbers in `after+1..=through`
/// are void: a replica cut its replay there (past a record the dead master
/// never shipped) and re-ran those packets, logging its own records after
/// `through`. A later replica must not follow the void ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoidMsg {
    /// Worker.
    pub worker: u16,
    /// Last sequence number kept.
    pub after: u64,
    /// Last sequence number voided.
    pub through: u64,
}

impl VoidMsg {
    // Payload (kind 10, 18 bytes):
    //   0   2  worker   u16
    //   2   8  after    u64
    //  10   8  through  u64
    fn encode_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.worker.to_le_bytes());
        out.extend_from_slice(&self.after.to_le_bytes());
        out.extend_from_slice(&self.through.to_le_bytes());
    }

    /// Decode from a validated frame.
    pub fn from_view(v: &FrameView<'_>) -> Result<Self, WireError> {
        let mut c = Cur::new(v, FrameKind::Void)?;
        let worker = c.u16("worker")?;
        let after = c.u64("last kept sequence")?;
        let through = c.u64("last void sequence")?;
        c.finish()?;
        Ok(VoidMsg {
            worker,
            after,
            through,
        })
    }
}
frame_codec!(VoidMsg, FrameKind::Void);

/// Liveness from the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatMsg {
    /// Heartbeat sequence number.
    pub seq: u64,
    /// Sender's time, nanoseconds.
    pub ns: u64,
}

impl HeartbeatMsg {
    // Payload (kind 6, 16 bytes):
    //   0   8  seq  u64
    //   8   8  ns   u64
    fn encode_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.ns.to_le_bytes());
    }

    /// Decode from a validated frame.
    pub fn from_view(v: &FrameView<'_>) -> Result<Self, WireError> {
        let mut c = Cur::new(v, FrameKind::Heartbeat)?;
        let seq = c.u64("sequence")?;
        let ns = c.u64("time")?;
        c.finish()?;
        Ok(HeartbeatMsg { seq, ns })
    }
}
frame_codec!(HeartbeatMsg, FrameKind::Heartbeat);

/// An input stream position (see [`FrameKind::Resume`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumeMsg {
    /// Packet id.
    pub packet: u64,
}

impl ResumeMsg {
    // Payload (kind 8, 8 bytes):
    //   0   8  packet  u64
    fn encode_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.packet.to_le_bytes());
    }

    /// Decode from a validated frame.
    pub fn from_view(v: &FrameView<'_>) -> Result<Self, WireError> {
        let mut c = Cur::new(v, FrameKind::Resume)?;
        let packet = c.u64("packet id")?;
        c.finish()?;
        Ok(ResumeMsg { packet })
    }
}
frame_codec!(ResumeMsg, FrameKind::Resume);

/// Any frame's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// See [`PacketMsg`].
    Packet(PacketMsg),
    /// See [`LogBatchMsg`].
    LogBatch(LogBatchMsg),
    /// See [`OutputMsg`].
    Output(OutputMsg),
    /// See [`SnapshotMsg`].
    Snapshot(SnapshotMsg),
    /// See [`SnapshotCommittedMsg`].
    SnapshotCommitted(SnapshotCommittedMsg),
    /// See [`HeartbeatMsg`].
    Heartbeat(HeartbeatMsg),
    /// End of stream (kind 7, empty payload).
    EndOfStream,
    /// See [`ResumeMsg`].
    Resume(ResumeMsg),
    /// See [`SnapshotPartMsg`].
    SnapshotPart(SnapshotPartMsg),
    /// See [`VoidMsg`].
    Void(VoidMsg),
}

impl Message {
    /// The frame kind this message is sent as.
    pub fn kind(&self) -> FrameKind {
        match self {
            Message::Packet(_) => FrameKind::Packet,
            Message::LogBatch(_) => FrameKind::LogBatch,
            Message::Output(_) => FrameKind::Output,
            Message::Snapshot(_) => FrameKind::Snapshot,
            Message::SnapshotCommitted(_) => FrameKind::SnapshotCommitted,
            Message::Heartbeat(_) => FrameKind::Heartbeat,
            Message::EndOfStream => FrameKind::EndOfStream,
            Message::Resume(_) => FrameKind::Resume,
            Message::SnapshotPart(_) => FrameKind::SnapshotPart,
            Message::Void(_) => FrameKind::Void,
        }
    }

    /// Append this message as one whole frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Packet(m) => m.encode(out),
            Message::LogBatch(m) => m.encode(out),
            Message::Output(m) => m.encode(out),
            Message::Snapshot(m) => m.encode(out),
            Message::SnapshotCommitted(m) => m.encode(out),
            Message::Heartbeat(m) => m.encode(out),
            Message::Resume(m) => m.encode(out),
            Message::SnapshotPart(m) => m.encode(out),
            Message::Void(m) => m.encode(out),
            Message::EndOfStream => {
                // Payload (kind 7): empty.
                let start = begin_frame(out, FrameKind::EndOfStream);
                end_frame(out, start);
            }
        }
    }

    /// Decode exactly one whole frame.
    pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
        Message::from_view(&whole_frame(frame)?)
    }

    /// Decode a validated frame.
    pub fn from_view(v: &FrameView<'_>) -> Result<Message, WireError> {
        Ok(match v.kind() {
            FrameKind::Packet => Message::Packet(PacketMsg::from_view(v)?),
            FrameKind::LogBatch => Message::LogBatch(LogBatchMsg::from_view(v)?),
            FrameKind::Output => Message::Output(OutputMsg::from_view(v)?),
            FrameKind::Snapshot => Message::Snapshot(SnapshotMsg::from_view(v)?),
            FrameKind::SnapshotCommitted => {
                Message::SnapshotCommitted(SnapshotCommittedMsg::from_view(v)?)
            }
            FrameKind::Heartbeat => Message::Heartbeat(HeartbeatMsg::from_view(v)?),
            FrameKind::Resume => Message::Resume(ResumeMsg::from_view(v)?),
            FrameKind::SnapshotPart => Message::SnapshotPart(SnapshotPartMsg::from_view(v)?),
            FrameKind::Void => Message::Void(VoidMsg::from_view(v)?),
            FrameKind::EndOfStream => {
                if !v.payload().is_empty() {
                    return Err(WireError::Malformed {
                        kind: FrameKind::EndOfStream,
                        reason: "trailing bytes after the payload",
                    });
                }
                Message::EndOfStream
            }
        })
    }
}

/// Reads whole frames from a byte stream (`&[u8]` is a `Read` too).
///
/// `next_frame` returns `Ok(None)` at EOF exactly between frames, and
/// [`WireError::Truncated`] at EOF inside one. After an error the stream
/// cannot be resynchronized: stop reading.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    max_payload: usize,
    offset: u64,
}

/// How far ahead of the bytes received a [`FrameReader`] reserves memory
/// for a frame's payload (1 MiB).
pub const GROW_STEP: usize = 1 << 20;

/// Read until `buf` is full or EOF; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> FrameReader<R> {
    /// A reader with the default payload limit.
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, DEFAULT_MAX_PAYLOAD)
    }

    /// A reader that refuses payloads above `max_payload` bytes.
    pub fn with_limit(inner: R, max_payload: usize) -> Self {
        FrameReader {
            inner,
            buf: Vec::with_capacity(HEADER_LEN + 2048),
            max_payload,
            offset: 0,
        }
    }

    /// Bytes of whole, valid frames read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The underlying reader (to ask a `BufReader` whether more bytes are
    /// already buffered).
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Exchange the buffer holding the last frame read for `other`, whose
    /// memory the next frames are read into: a caller keeps a large frame
    /// (a snapshot) without copying it.
    pub fn swap_buffer(&mut self, other: &mut Vec<u8>) {
        std::mem::swap(&mut self.buf, other);
    }

    /// The next whole, validated frame; `None` at a clean end of stream.
    pub fn next_frame(&mut self) -> Result<Option<FrameView<'_>>, WireError> {
        self.buf.resize(HEADER_LEN, 0);
        let got = read_full(&mut self.inner, &mut self.buf[..HEADER_LEN])?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_LEN {
            return Err(WireError::Truncated {
                need: HEADER_LEN,
                have: got,
            });
        }
        let len = check_header(&self.buf, self.max_payload)?;
        // Appended as read, not into zeroed space: a snapshot frame is tens
        // of megabytes, and zeroing it first cost as long as reading it.
        // Nor reserved whole from the header's word: a peer that claims 64
        // MiB and sends nothing more must not commit 64 MiB per
        // connection. Memory grows by at most GROW_STEP ahead of the bytes
        // that arrived (doubling as a Vec does, so a large frame still
        // costs a few copies at most).
        let mut got = 0;
        while got < len {
            let step = (len - got).min(GROW_STEP);
            self.buf.reserve(step);
            let n = (&mut self.inner)
                .take(step as u64)
                .read_to_end(&mut self.buf)?;
            got += n;
            if n < step {
                break;
            }
        }
        if got < len {
            return Err(WireError::Truncated {
                need: HEADER_LEN + len,
                have: HEADER_LEN + got,
            });
        }
        let v = FrameView::new_checked_with_limit(&self.buf, self.max_payload)?;
        self.offset += v.total_len() as u64;
        Ok(Some(v))
    }

    /// The next frame decoded; `None` at a clean end of stream.
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        match self.next_frame()? {
            None => Ok(None),
            Some(v) => Message::from_view(&v).map(Some),
        }
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Batches frames into a [`Write`]: frames are encoded into a buffer and
/// written when it reaches the batch size, or on [`FrameWriter::flush`].
/// Dropping the writer does not flush (a frame is sent only when the caller
/// says so).
#[derive(Debug)]
pub struct FrameWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    batch_bytes: usize,
    frames: u64,
}

impl<W: Write> FrameWriter<W> {
    /// A writer that writes whenever 64 KiB of frames are buffered.
    pub fn new(inner: W) -> Self {
        Self::with_batch_bytes(inner, 64 << 10)
    }

    /// A writer that writes whenever `batch_bytes` of frames are buffered.
    pub fn with_batch_bytes(inner: W, batch_bytes: usize) -> Self {
        FrameWriter {
            inner,
            buf: Vec::with_capacity(batch_bytes.min(1 << 20)),
            batch_bytes,
            frames: 0,
        }
    }

    /// Queue one message; writes the batch once it is large enough.
    pub fn send(&mut self, msg: &Message) -> io::Result<()> {
        msg.encode(&mut self.buf);
        self.queued()
    }

    /// Queue an already encoded frame (the caller encoded it with one of the
    /// `encode` methods).
    pub fn send_encoded(&mut self, frame: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(frame);
        self.queued()
    }

    /// Encode straight into the batch buffer: `f` must append whole frames.
    pub fn send_with(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        f(&mut self.buf);
        self.queued()
    }

    /// Queue the start of a frame (`f` appends it) whose last bytes are
    /// `tail`, then write both, `tail` straight from the caller's memory.
    pub fn send_with_tail(&mut self, f: impl FnOnce(&mut Vec<u8>), tail: &[u8]) -> io::Result<()> {
        f(&mut self.buf);
        self.frames += 1;
        self.write_buf()?;
        self.inner.write_all(tail)
    }

    fn queued(&mut self) -> io::Result<()> {
        self.frames += 1;
        if self.buf.len() >= self.batch_bytes {
            self.write_buf()?;
        }
        Ok(())
    }

    fn write_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Write every queued frame and flush the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_buf()?;
        self.inner.flush()
    }

    /// Bytes queued, not yet written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Frames queued since creation.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying writer (writing to it directly interleaves badly with
    /// queued frames: flush first).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Flush and return the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.inner)
    }
}
