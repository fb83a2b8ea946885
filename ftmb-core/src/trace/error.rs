//! Error type for trace reading.

use std::path::PathBuf;

/// Errors produced while opening or decoding a pcap / pcapng trace.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened, mapped or read.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// Path of the file being accessed.
        path: PathBuf,
        /// Underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// The first bytes are neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file (starts with 0x{found})")]
    NotPcap {
        /// Hex dump of the first (up to 4) bytes of the file.
        found: String,
    },
    /// The file (or section) header is cut short.
    #[error("truncated {what} header: need {need} bytes, only {have} available")]
    TruncatedHeader {
        /// Which header (e.g. "pcap global", "pcapng section").
        what: &'static str,
        /// Bytes required.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A record (pcap) or block (pcapng) extends past the end of the file.
    #[error(
        "truncated record at byte offset {offset} (record {index}): need {need} bytes, only {have} available"
    )]
    TruncatedRecord {
        /// Byte offset of the record / block header.
        offset: usize,
        /// Zero-based index of the packet record being read.
        index: u64,
        /// Bytes required from `offset`.
        need: usize,
        /// Bytes available from `offset`.
        have: usize,
    },
    /// A record claims a captured length beyond any sane limit.
    #[error(
        "captured length {caplen} of record {index} at byte offset {offset} is absurdly large (limit {limit})"
    )]
    CaplenTooLarge {
        /// Byte offset of the record / block header.
        offset: usize,
        /// Zero-based index of the packet record.
        index: u64,
        /// Captured length claimed by the record.
        caplen: u64,
        /// Maximum accepted captured length.
        limit: u64,
    },
    /// A structurally invalid pcapng block.
    #[error("malformed pcapng block at byte offset {offset}: {reason}")]
    Malformed {
        /// Byte offset of the block.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
}
