//! A worker's log records as the output logger stores them until a
//! snapshot's cut makes them obsolete: appended at the back, dropped from
//! the front, read in order by a replica.
//!
//! Stored in fixed-size chunks, not one growing buffer. A buffer that
//! doubles copies everything it holds each time, into memory the kernel
//! must first zero; at a few million records a second (Gen on two workers)
//! that was a third of the output logger thread's time in a short run.
//! Chunks emptied by a snapshot's cut are kept for the records that follow,
//! so a logger in its steady state stores records in memory it already
//! has.

use ftmb_core::pal::LogRecord;
use std::collections::VecDeque;

/// Records per chunk (160 KB).
const CHUNK: usize = 4096;

/// Emptied chunks kept for reuse at most (40 MB); more are freed.
const SPARE_MAX: usize = 256;

/// One worker's stored records, in sequence order.
#[derive(Debug, Default)]
pub struct RecordLog {
    /// Full chunks, then the one being filled; each in sequence order.
    chunks: VecDeque<Vec<(u64, LogRecord)>>,
    /// Records of the front chunk already dropped.
    head: usize,
    len: usize,
    spare: Vec<Vec<(u64, LogRecord)>>,
}

impl RecordLog {
    /// Records stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no record is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append records (their sequence numbers must follow the last one's).
    pub fn extend(&mut self, records: impl IntoIterator<Item = (u64, LogRecord)>) {
        for r in records {
            if self.chunks.back().map_or(true, |c| c.len() == CHUNK) {
                self.open_chunk();
            }
            if let Some(c) = self.chunks.back_mut() {
                c.push(r);
                self.len += 1;
            }
        }
    }

    /// Append records already in order (their sequence numbers must follow
    /// the last one's), a chunk's worth of copying at a time.
    pub fn extend_from_slice(&mut self, mut records: &[(u64, LogRecord)]) {
        while !records.is_empty() {
            let room = self.chunks.back().map_or(0, |c| CHUNK - c.len());
            if room == 0 {
                self.open_chunk();
                continue;
            }
            let (now, rest) = records.split_at(room.min(records.len()));
            if let Some(c) = self.chunks.back_mut() {
                c.extend_from_slice(now);
                self.len += now.len();
            }
            records = rest;
        }
    }

    /// Start a new chunk at the back, in spare memory if there is some.
    fn open_chunk(&mut self) {
        let chunk = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK));
        self.chunks.push_back(chunk);
    }

    /// Keep a chunk no longer used, emptied, for the records that follow
    /// (up to [`SPARE_MAX`]; beyond, it is freed).
    fn keep_spare(&mut self, mut chunk: Vec<(u64, LogRecord)>) {
        if self.spare.len() < SPARE_MAX {
            chunk.clear();
            self.spare.push(chunk);
        }
    }

    /// Drop the records with sequence numbers at or below `seq`.
    pub fn drop_through(&mut self, seq: u64) {
        while let Some(front) = self.chunks.front() {
            let live = &front[self.head..];
            if live.last().is_some_and(|&(s, _)| s <= seq) {
                self.len -= live.len();
                self.head = 0;
                if let Some(c) = self.chunks.pop_front() {
                    self.keep_spare(c);
                }
                continue;
            }
            // Some records of this chunk stay (chunks are never empty).
            let n = live.partition_point(|&(s, _)| s <= seq);
            self.head += n;
            self.len -= n;
            return;
        }
    }

    /// The records in order.
    pub fn iter(&self) -> impl Iterator<Item = &(u64, LogRecord)> + '_ {
        let head = self.head;
        self.chunks
            .iter()
            .enumerate()
            .flat_map(move |(i, c)| &c[if i == 0 { head } else { 0 }..])
    }

    /// Keep only the records `keep` says to (rare: a replica voiding the
    /// records it did not follow).
    pub fn retain(&mut self, mut keep: impl FnMut(&(u64, LogRecord)) -> bool) {
        let kept: Vec<(u64, LogRecord)> = self.iter().copied().filter(|r| keep(r)).collect();
        while let Some(c) = self.chunks.pop_front() {
            self.keep_spare(c);
        }
        self.head = 0;
        self.len = 0;
        self.extend_from_slice(&kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(seq: u64) -> (u64, LogRecord) {
        (
            seq,
            LogRecord::Clock {
                packet: seq,
                ns: 0,
                count: 1,
            },
        )
    }

    fn seqs(l: &RecordLog) -> Vec<u64> {
        l.iter().map(|r| r.0).collect()
    }

    #[test]
    fn records_come_back_in_order_across_chunks_and_cuts() {
        let mut l = RecordLog::default();
        let n = 3 * CHUNK as u64 + 10;
        l.extend((1..=n).map(clock));
        assert_eq!(l.len(), n as usize);
        assert_eq!(seqs(&l), (1..=n).collect::<Vec<_>>());
        // A cut inside the first chunk, then one past two whole chunks.
        l.drop_through(5);
        assert_eq!(l.len(), n as usize - 5);
        assert_eq!(l.iter().next().map(|r| r.0), Some(6));
        l.drop_through(2 * CHUNK as u64 + 3);
        assert_eq!(seqs(&l), (2 * CHUNK as u64 + 4..=n).collect::<Vec<_>>());
        assert_eq!(l.spare.len(), 2);
        // Records appended after a cut go to reused chunks.
        l.extend((n + 1..=n + CHUNK as u64).map(clock));
        assert_eq!(l.spare.len(), 1);
        assert_eq!(l.len(), (n + CHUNK as u64 - 2 * CHUNK as u64 - 3) as usize);
        // Everything dropped; a cut below what is stored changes nothing.
        l.drop_through(3);
        assert_eq!(l.iter().next().map(|r| r.0), Some(2 * CHUNK as u64 + 4));
        l.drop_through(u64::MAX);
        assert!(l.is_empty() && l.iter().next().is_none());
        l.extend([clock(9_999_999)]);
        assert_eq!(seqs(&l), vec![9_999_999]);
    }

    #[test]
    fn slices_fill_chunks_as_single_records_do() {
        let recs: Vec<(u64, LogRecord)> = (1..=2 * CHUNK as u64 + 7).map(clock).collect();
        let mut a = RecordLog::default();
        let mut b = RecordLog::default();
        a.extend(recs.iter().copied());
        // Uneven slices: some end exactly at a chunk's end, some cross one.
        for part in [
            &recs[..1],
            &recs[1..CHUNK],
            &recs[CHUNK..CHUNK + 5],
            &recs[CHUNK + 5..],
        ] {
            b.extend_from_slice(part);
        }
        b.extend_from_slice(&[]);
        assert_eq!(b.len(), recs.len());
        assert_eq!(b.chunks.len(), a.chunks.len());
        assert!(b.chunks.iter().all(|c| c.len() <= CHUNK));
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), recs);
        // Reused chunks after a cut take slices too.
        b.drop_through(CHUNK as u64);
        b.extend_from_slice(&[clock(2 * CHUNK as u64 + 8)]);
        assert_eq!(b.len(), CHUNK + 8);
    }

    #[test]
    fn retain_keeps_the_order_of_what_stays() {
        let mut l = RecordLog::default();
        l.extend((1..=CHUNK as u64 + 100).map(clock));
        l.drop_through(50);
        l.retain(|&(s, _)| !(100..=CHUNK as u64 + 50).contains(&s));
        let want: Vec<u64> = (51..100)
            .chain(CHUNK as u64 + 51..=CHUNK as u64 + 100)
            .collect();
        assert_eq!(seqs(&l), want);
        assert_eq!(l.len(), want.len());
    }
}
