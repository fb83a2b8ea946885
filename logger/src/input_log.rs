//! The input logger's log (docs/design.md, section 2), sans I/O, plus a durable
//! variant backed by append-only segment files.
//!
//! [`InputLog`] numbers packets (ids strictly increasing from 1), keeps them
//! from the last committed snapshot cut on ([`InputLog::truncate_through`]),
//! replays them ([`InputLog::iter_after`]) and accounts for its memory
//! ([`InputLog::bytes`]).
//!
//! [`DurableInputLog`] keeps the same log in memory (the tail replay reads)
//! and writes every packet, as a wire [`crate::wire::FrameKind::Packet`]
//! frame with its own checksum, to segment files in a directory.
//! [`DurableInputLog::recover`] rebuilds it, in one of two
//! [`RecoveryMode`]s.
//!
//! # Segment file layout (version 1)
//!
//! A segment is named `{first_id:020}.ilseg` and holds:
//!
//! ```text
//! offset  size  field
//!  0      4     magic     b"FTIL"
//!  4      2     version   u16 = 1
//!  6      2     reserved  u16 = 0
//!  8      8     first_id  u64  (id of the first packet; equals the name)
//! 16      4     crc32c    u32  over bytes 0..16
//! 20      ..    wire frames of kind Packet, ids first_id, first_id + 1, ...
//! ```
//!
//! # Durability contract
//!
//! [`DurableInputLog::append`] buffers; [`DurableInputLog::sync`] writes and
//! `fdatasync`s. An input logger that must survive its own crash syncs
//! before it forwards the packets to the master ("persist, then send").
//!
//! Recovery returns every packet still on disk. Truncation deletes only
//! whole segments, so packets at or below the last truncation point may
//! reappear after recovery; call [`DurableInputLog::truncate_through`] with
//! the last committed cut again.

use crate::wire::{self, PacketMsg, WireError, HEADER_LEN};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Memory charged per logged packet besides its bytes.
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<PacketMsg>();

/// The input log in memory.
#[derive(Debug, Clone)]
pub struct InputLog {
    entries: VecDeque<PacketMsg>,
    next_id: u64,
    bytes: usize,
}

impl Default for InputLog {
    fn default() -> Self {
        Self::new()
    }
}

impl InputLog {
    /// An empty log; the first packet gets id 1.
    pub fn new() -> Self {
        InputLog {
            entries: VecDeque::new(),
            next_id: 1,
            bytes: 0,
        }
    }

    /// Log a packet; returns its id.
    pub fn append(&mut self, ts_ns: u64, source: u16, data: Vec<u8>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.bytes += ENTRY_OVERHEAD + data.len();
        self.entries.push_back(PacketMsg {
            id,
            ts_ns,
            source,
            data,
        });
        id
    }

    /// Re-insert a packet read back from disk: its id must be the next one,
    /// or any id when the log is empty (the log then starts there).
    fn push_recovered(&mut self, p: PacketMsg) -> Result<(), u64> {
        if !self.entries.is_empty() && p.id != self.next_id || p.id == 0 {
            return Err(self.next_id);
        }
        self.next_id = p.id + 1;
        self.bytes += ENTRY_OVERHEAD + p.data.len();
        self.entries.push_back(p);
        Ok(())
    }

    /// Drop every packet with id `<= id` (a committed snapshot's cut);
    /// returns how many were dropped.
    pub fn truncate_through(&mut self, id: u64) -> usize {
        let n = self.entries.partition_point(|p| p.id <= id);
        for p in self.entries.drain(..n) {
            self.bytes -= ENTRY_OVERHEAD + p.data.len();
        }
        n
    }

    /// Packets with id `> id`, in id order (replay to the replica).
    pub fn iter_after(&self, id: u64) -> impl Iterator<Item = &PacketMsg> + '_ {
        let start = self.entries.partition_point(|p| p.id <= id);
        self.entries.range(start..)
    }

    /// Memory held: packet bytes plus [`ENTRY_OVERHEAD`] per packet.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no packet is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The id the next packet gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Id of the oldest packet held.
    pub fn first_id(&self) -> Option<u64> {
        self.entries.front().map(|p| p.id)
    }

    /// Id of the newest packet held.
    pub fn last_id(&self) -> Option<u64> {
        self.entries.back().map(|p| p.id)
    }
}

/// How recovery treats damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Refuse any corruption or truncation inside a frame.
    Strict,
    /// Drop a torn final frame of the last segment (a write cut short by a
    /// crash): a frame that runs past the end of the file, or whose
    /// checksum fails and that ends exactly at the end of the file, in
    /// either case with no valid frame after its start; also a last
    /// segment whose header was cut short. Anything else is refused.
    /// The file is truncated to the last whole frame.
    TolerateTornTail,
}

/// A durable input log failed.
#[derive(Debug, thiserror::Error)]
pub enum InputLogError {
    /// File system error.
    #[error("input log i/o: {0}")]
    Io(#[from] io::Error),
    /// A segment header is damaged or does not match its name.
    #[error("input log segment {path}: bad header: {reason}")]
    BadSegmentHeader {
        /// The segment file.
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
    /// A frame failed to decode.
    #[error("input log segment {path}: corrupt at offset {offset}: {source}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad frame.
        offset: u64,
        /// The decode error.
        source: WireError,
    },
    /// Packet ids do not continue.
    #[error(
        "input log segment {path}: at offset {offset}: expected packet id {expected}, got {got}"
    )]
    NonContiguous {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// The id expected.
        expected: u64,
        /// The id found.
        got: u64,
    },
}

/// What recovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments read.
    pub segments: usize,
    /// Packets recovered.
    pub packets: usize,
    /// Bytes of a torn tail dropped (TolerateTornTail only).
    pub torn_bytes_dropped: u64,
}

/// Options of a durable log.
#[derive(Clone, Copy, Debug)]
pub struct DurableOptions {
    /// Start a new segment once the current one reaches this size.
    pub segment_bytes: u64,
    /// Frame bytes buffered before a write (besides `sync`).
    pub write_batch_bytes: usize,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            segment_bytes: 64 << 20,
            write_batch_bytes: 64 << 10,
        }
    }
}

/// Bytes of a segment header.
pub const SEGMENT_HEADER_LEN: usize = 20;
/// Segment magic.
pub const SEGMENT_MAGIC: [u8; 4] = *b"FTIL";
/// Segment format version.
pub const SEGMENT_VERSION: u16 = 1;
const SEGMENT_EXT: &str = "ilseg";

// Layout beside the module doc: magic | version u16 | reserved u16 |
// first_id u64 | crc32c u32 over the 16 bytes before it.
fn encode_segment_header(first_id: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..6].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&first_id.to_le_bytes());
    let crc = crc32c::crc32c(&h[..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

fn decode_segment_header(h: &[u8]) -> Result<u64, &'static str> {
    if h.len() < SEGMENT_HEADER_LEN {
        return Err("shorter than a header");
    }
    if h[0..4] != SEGMENT_MAGIC {
        return Err("bad magic");
    }
    let mut c = [0u8; 4];
    c.copy_from_slice(&h[16..20]);
    if u32::from_le_bytes(c) != crc32c::crc32c(&h[..16]) {
        return Err("checksum mismatch");
    }
    if u16::from_le_bytes([h[4], h[5]]) != SEGMENT_VERSION {
        return Err("unsupported version");
    }
    if h[6..8] != [0, 0] {
        return Err("reserved bytes set");
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[8..16]);
    Ok(u64::from_le_bytes(id))
}

/// True if a whole valid frame starts anywhere in `bytes`. A torn final
/// frame has nothing valid after its start; a damaged length field in the
/// middle of a segment does (the frames after it), and must not pass for a
/// torn tail. (Packet bytes that embed a frame make recovery refuse, the
/// safe direction.)
fn contains_valid_frame(bytes: &[u8]) -> bool {
    (0..bytes.len().saturating_sub(HEADER_LEN - 1))
        .filter(|&i| bytes[i..].starts_with(&wire::MAGIC))
        .any(|i| wire::FrameView::new_checked(&bytes[i..]).is_ok())
}

#[derive(Debug)]
struct Segment {
    first_id: u64,
    path: PathBuf,
}

/// The input log, backed by segment files.
#[derive(Debug)]
pub struct DurableInputLog {
    dir: PathBuf,
    opts: DurableOptions,
    mem: InputLog,
    /// Closed and active segments, oldest first; the last one is active.
    segments: Vec<Segment>,
    active: Option<wire::FrameWriter<File>>,
    active_len: u64,
}

fn segment_path(dir: &Path, first_id: u64) -> PathBuf {
    dir.join(format!("{first_id:020}.{SEGMENT_EXT}"))
}

impl DurableInputLog {
    /// Open (creating if needed) the log in `dir`, recovering what is on
    /// disk under `mode`.
    pub fn recover(
        dir: impl AsRef<Path>,
        opts: DurableOptions,
        mode: RecoveryMode,
    ) -> Result<(DurableInputLog, RecoveryReport), InputLogError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        let mut found = Vec::new();
        for e in fs::read_dir(&dir)? {
            let path = e?.path();
            if path.extension().and_then(|x| x.to_str()) != Some(SEGMENT_EXT) {
                continue;
            }
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(InputLogError::BadSegmentHeader {
                    path: path.clone(),
                    reason: "file name is not a packet id",
                })?;
            found.push(Segment { first_id: id, path });
        }
        found.sort_by_key(|s| s.first_id);

        let mut mem = InputLog::new();
        let mut report = RecoveryReport::default();
        let mut segments = Vec::new();
        let mut active_len = 0;
        let nseg = found.len();
        let tolerant = mode == RecoveryMode::TolerateTornTail;
        for (i, seg) in found.into_iter().enumerate() {
            let last = i + 1 == nseg;
            let data = fs::read(&seg.path)?;
            if data.len() < SEGMENT_HEADER_LEN && last && tolerant {
                // The header itself was torn: the segment holds nothing.
                report.torn_bytes_dropped += data.len() as u64;
                fs::remove_file(&seg.path)?;
                continue;
            }
            let bad = |reason| InputLogError::BadSegmentHeader {
                path: seg.path.clone(),
                reason,
            };
            let first_id = decode_segment_header(&data).map_err(bad)?;
            if first_id != seg.first_id {
                return Err(bad("first id does not match the file name"));
            }
            if !mem.is_empty() && first_id != mem.next_id() {
                return Err(InputLogError::NonContiguous {
                    path: seg.path.clone(),
                    offset: 0,
                    expected: mem.next_id(),
                    got: first_id,
                });
            }
            let mut off = SEGMENT_HEADER_LEN;
            let mut expected = first_id;
            while off < data.len() {
                let rest = &data[off..];
                let err = match wire::split_frame(rest, wire::DEFAULT_MAX_PAYLOAD) {
                    Ok((v, _)) => {
                        let p =
                            PacketMsg::from_view(&v).map_err(|source| InputLogError::Corrupt {
                                path: seg.path.clone(),
                                offset: off as u64,
                                source,
                            })?;
                        if p.id != expected || mem.push_recovered(p.clone()).is_err() {
                            return Err(InputLogError::NonContiguous {
                                path: seg.path.clone(),
                                offset: off as u64,
                                expected,
                                got: p.id,
                            });
                        }
                        expected += 1;
                        report.packets += 1;
                        off += v.total_len();
                        continue;
                    }
                    Err(e) => e,
                };
                let torn = match &err {
                    WireError::Truncated { .. } => true,
                    WireError::BadChecksum { .. } => {
                        // Length was in range (checked before the checksum).
                        let len = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
                        HEADER_LEN + len as usize == rest.len()
                    }
                    _ => false,
                } && !contains_valid_frame(&rest[1..]);
                if !(torn && last && tolerant) {
                    return Err(InputLogError::Corrupt {
                        path: seg.path.clone(),
                        offset: off as u64,
                        source: err,
                    });
                }
                report.torn_bytes_dropped += rest.len() as u64;
                let f = OpenOptions::new().write(true).open(&seg.path)?;
                f.set_len(off as u64)?;
                f.sync_all()?;
                break;
            }
            if mem.is_empty() && report.packets == 0 {
                // An empty segment still fixes where ids continue.
                mem.next_id = first_id.max(1);
            }
            report.segments += 1;
            if last {
                active_len = off as u64;
            }
            segments.push(seg);
        }
        let active = match segments.last() {
            Some(s) => {
                let f = OpenOptions::new().append(true).open(&s.path)?;
                Some(wire::FrameWriter::with_batch_bytes(
                    f,
                    opts.write_batch_bytes,
                ))
            }
            None => None,
        };
        Ok((
            DurableInputLog {
                dir,
                opts,
                mem,
                segments,
                active,
                active_len,
            },
            report,
        ))
    }

    fn start_segment(&mut self, first_id: u64) -> io::Result<()> {
        if let Some(mut w) = self.active.take() {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        let path = segment_path(&self.dir, first_id);
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        f.write_all(&encode_segment_header(first_id))?;
        f.sync_all()?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all(); // make the new name durable where supported
        }
        self.segments.push(Segment { first_id, path });
        self.active = Some(wire::FrameWriter::with_batch_bytes(
            f,
            self.opts.write_batch_bytes,
        ));
        self.active_len = SEGMENT_HEADER_LEN as u64;
        Ok(())
    }

    /// Log a packet (buffered: see [`DurableInputLog::sync`]); returns its id.
    pub fn append(&mut self, ts_ns: u64, source: u16, data: Vec<u8>) -> Result<u64, InputLogError> {
        let id = self.mem.next_id();
        if self.active.is_none() || self.active_len >= self.opts.segment_bytes {
            self.start_segment(id)?;
        }
        let msg = PacketMsg {
            id,
            ts_ns,
            source,
            data,
        };
        let w = self
            .active
            .as_mut()
            .ok_or_else(|| io::Error::other("no active segment"))?;
        w.send_with(|out| msg.encode(out))?;
        // Frame header plus the packet payload's fixed 18 bytes and data.
        let len = (HEADER_LEN + 18 + msg.data.len()) as u64;
        self.active_len += len;
        let got = self.mem.append(msg.ts_ns, msg.source, msg.data);
        debug_assert_eq!(got, id);
        Ok(id)
    }

    /// Write buffered frames and `fdatasync` the active segment.
    pub fn sync(&mut self) -> Result<(), InputLogError> {
        if let Some(w) = &mut self.active {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// Group commit, in two steps: write the buffered frames (one write),
    /// and return a handle on the active segment whose `sync_data` makes
    /// every packet logged so far durable (segments before it were synced
    /// when closed). The caller syncs it without holding the log, so that
    /// packets go on being logged meanwhile, and are made durable by the
    /// next sync together.
    pub fn write_out(&mut self) -> Result<Option<File>, InputLogError> {
        match &mut self.active {
            Some(w) => {
                w.flush()?;
                Ok(Some(w.get_ref().try_clone()?))
            }
            None => Ok(None),
        }
    }

    /// Drop packets with id `<= id` from memory, and delete every segment
    /// that holds only such packets (never the active one).
    pub fn truncate_through(&mut self, id: u64) -> Result<usize, InputLogError> {
        let n = self.mem.truncate_through(id);
        let mut keep_from = 0;
        for i in 0..self.segments.len().saturating_sub(1) {
            if self.segments[i + 1].first_id <= id.saturating_add(1) {
                fs::remove_file(&self.segments[i].path)?;
                keep_from = i + 1;
            } else {
                break;
            }
        }
        self.segments.drain(..keep_from);
        Ok(n)
    }

    /// The in-memory log (replay reads from it).
    pub fn log(&self) -> &InputLog {
        &self.mem
    }

    /// Packets with id `> id`, in id order.
    pub fn iter_after(&self, id: u64) -> impl Iterator<Item = &PacketMsg> + '_ {
        self.mem.iter_after(id)
    }

    /// Memory held (see [`InputLog::bytes`]).
    pub fn bytes(&self) -> usize {
        self.mem.bytes()
    }

    /// Segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Kind check shared with tests: every frame in a segment is a packet.
#[cfg(test)]
fn frame_kinds(data: &[u8]) -> Vec<wire::FrameKind> {
    let mut r = wire::FrameReader::new(&data[SEGMENT_HEADER_LEN..]);
    let mut v = Vec::new();
    while let Ok(Some(f)) = r.next_frame() {
        v.push(f.kind());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> DurableOptions {
        DurableOptions {
            segment_bytes: 1 << 20,
            write_batch_bytes: 64,
        }
    }

    #[test]
    fn memory_log_ids_truncate_iter_bytes() {
        let mut l = InputLog::new();
        assert_eq!(l.bytes(), 0);
        for i in 1..=10u64 {
            assert_eq!(l.append(i * 100, 0, vec![0; i as usize]), i);
        }
        assert_eq!(l.bytes(), 10 * ENTRY_OVERHEAD + 55);
        let after: Vec<u64> = l.iter_after(7).map(|p| p.id).collect();
        assert_eq!(after, vec![8, 9, 10]);
        assert_eq!(l.truncate_through(4), 4);
        assert_eq!(l.truncate_through(4), 0);
        assert_eq!(l.first_id(), Some(5));
        assert_eq!(l.bytes(), 6 * ENTRY_OVERHEAD + (5..=10).sum::<usize>());
        assert_eq!(l.iter_after(0).count(), 6);
        assert_eq!(l.truncate_through(100), 6);
        assert!(l.is_empty());
        assert_eq!(l.bytes(), 0);
        assert_eq!(l.append(0, 1, vec![]), 11);
        assert_eq!(l.last_id(), Some(11));
    }

    #[test]
    fn durable_roundtrip_segments_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let opts = DurableOptions {
            segment_bytes: 100,
            write_batch_bytes: 1,
        };
        let (mut l, rep) =
            DurableInputLog::recover(dir.path(), opts, RecoveryMode::Strict).unwrap();
        assert_eq!(rep, RecoveryReport::default());
        for i in 1..=20u64 {
            assert_eq!(l.append(i, 3, vec![i as u8; 30]).unwrap(), i);
        }
        l.sync().unwrap();
        let nseg = l.segment_count();
        assert!(nseg > 3, "{nseg}");
        drop(l);
        let (mut l, rep) =
            DurableInputLog::recover(dir.path(), opts, RecoveryMode::Strict).unwrap();
        assert_eq!(rep.packets, 20);
        assert_eq!(rep.segments, nseg);
        let ids: Vec<u64> = l.iter_after(0).map(|p| p.id).collect();
        assert_eq!(ids, (1..=20).collect::<Vec<_>>());
        assert_eq!(l.iter_after(19).next().unwrap().data, vec![20u8; 30]);
        // Appends continue the ids after recovery.
        assert_eq!(l.append(0, 0, vec![1]).unwrap(), 21);
        l.truncate_through(15).unwrap();
        assert!(l.segment_count() < nseg);
        assert_eq!(l.log().first_id(), Some(16));
        l.sync().unwrap();
        drop(l);
        let (l, _) = DurableInputLog::recover(dir.path(), opts, RecoveryMode::Strict).unwrap();
        // Whole segments only: the recovered log starts at or before 16.
        let first = l.log().first_id().unwrap();
        assert!(first <= 16 && first > 1, "{first}");
        assert_eq!(l.log().last_id(), Some(21));
        let data = fs::read(&l.segments[0].path).unwrap();
        assert!(frame_kinds(&data)
            .iter()
            .all(|&k| k == wire::FrameKind::Packet));
    }

    /// Write a 4-packet single-segment log; return its bytes and the end
    /// offset of each frame.
    fn sample() -> (Vec<u8>, Vec<usize>) {
        let dir = tempfile::tempdir().unwrap();
        let (mut l, _) =
            DurableInputLog::recover(dir.path(), small(), RecoveryMode::Strict).unwrap();
        for i in 1..=4u64 {
            l.append(1000 + i, i as u16, vec![0xa0 + i as u8; i as usize * 3])
                .unwrap();
        }
        l.sync().unwrap();
        let data = fs::read(segment_path(dir.path(), 1)).unwrap();
        let mut ends = Vec::new();
        let mut off = SEGMENT_HEADER_LEN;
        for i in 1..=4usize {
            off += HEADER_LEN + 18 + i * 3;
            ends.push(off);
        }
        assert_eq!(*ends.last().unwrap(), data.len());
        (data, ends)
    }

    fn recover_bytes(
        data: &[u8],
        mode: RecoveryMode,
    ) -> Result<(Vec<u64>, RecoveryReport), InputLogError> {
        let dir = tempfile::tempdir().unwrap();
        fs::write(segment_path(dir.path(), 1), data).unwrap();
        let (l, rep) = DurableInputLog::recover(dir.path(), small(), mode)?;
        let ids = l.iter_after(0).map(|p| p.id).collect();
        // A recovered log must accept appends that recover again cleanly.
        drop(l);
        let (mut l, _) = DurableInputLog::recover(dir.path(), small(), mode)?;
        l.append(1, 1, vec![1, 2, 3])?;
        l.sync()?;
        drop(l);
        DurableInputLog::recover(dir.path(), small(), RecoveryMode::Strict)?;
        Ok((ids, rep))
    }

    #[test]
    fn truncation_at_every_offset() {
        let (data, ends) = sample();
        for cut in 0..=data.len() {
            let whole = ends.iter().filter(|&&e| e <= cut).count() as u64;
            let at_boundary = cut == SEGMENT_HEADER_LEN || ends.contains(&cut);
            let strict = recover_bytes(&data[..cut], RecoveryMode::Strict);
            if at_boundary {
                let (ids, _) = strict.unwrap();
                assert_eq!(ids, (1..=whole).collect::<Vec<_>>(), "cut {cut}");
            } else {
                assert!(strict.is_err(), "strict accepted a cut at {cut}");
            }
            let (ids, rep) = recover_bytes(&data[..cut], RecoveryMode::TolerateTornTail)
                .unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            assert_eq!(ids, (1..=whole).collect::<Vec<_>>(), "cut {cut}");
            if !at_boundary && cut > 0 {
                assert!(rep.torn_bytes_dropped > 0, "cut {cut}");
            }
        }
    }

    #[test]
    fn corruption_at_every_offset() {
        let (data, ends) = sample();
        let last_start = ends[ends.len() - 2];
        for at in 0..data.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[at] ^= flip;
                assert!(
                    recover_bytes(&bad, RecoveryMode::Strict).is_err(),
                    "strict missed a flip {flip:#x} at {at}"
                );
                match recover_bytes(&bad, RecoveryMode::TolerateTornTail) {
                    Err(_) => {}
                    Ok((ids, _)) => {
                        // Only damage to the final frame is tolerated, and
                        // only by dropping it.
                        assert!(at >= last_start, "tolerated a flip at {at}");
                        assert_eq!(ids, vec![1, 2, 3], "flip at {at}");
                    }
                }
            }
        }
    }

    #[test]
    fn strict_refuses_gaps_between_segments() {
        let dir = tempfile::tempdir().unwrap();
        let opts = DurableOptions {
            segment_bytes: 40,
            write_batch_bytes: 1,
        };
        let (mut l, _) = DurableInputLog::recover(dir.path(), opts, RecoveryMode::Strict).unwrap();
        for i in 0..6 {
            l.append(i, 0, vec![9; 10]).unwrap();
        }
        l.sync().unwrap();
        assert!(l.segment_count() >= 3);
        let middle = l.segments[1].path.clone();
        drop(l);
        fs::remove_file(middle).unwrap();
        for mode in [RecoveryMode::Strict, RecoveryMode::TolerateTornTail] {
            assert!(matches!(
                DurableInputLog::recover(dir.path(), opts, mode),
                Err(InputLogError::NonContiguous { .. })
            ));
        }
    }
}
