//! Packet trace I/O for ftmb: a zero-copy pcap / pcapng reader, a classic
//! pcap writer, a deterministic synthetic traffic generator, hand-built
//! packets and Internet checksum helpers.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use ftmb_core::trace::TraceReader;
//! let mut r = TraceReader::open(Path::new("in.pcap"))?;
//! while let Some(rec) = r.next_record() {
//!     let rec = rec?;
//!     println!("{} {} bytes", rec.ts_ns, rec.data.len());
//! }
//! # Ok(())
//! # }
//! ```

mod checksum;
mod craft;
mod error;
pub mod r#gen;
mod link;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use checksum::{ipv4_checksum, l4_checksum_v4};
pub use craft::{ethernet_frame, udp_datagram, Ipv4Header, TcpHeader};
pub use error::TraceError;
pub use link::LinkType;
pub use r#gen::{generate, write_generated, GenStats, TraceSpec};
pub use reader::{Record, TraceFormat, TraceReader, MAX_CAPLEN};
pub use writer::{PcapWriter, PCAP_MAGIC_MICROS, PCAP_MAGIC_NANOS, WRITER_SNAPLEN};
