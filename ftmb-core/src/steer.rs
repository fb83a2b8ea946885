//! Which worker a packet goes to: its direction-symmetric flow hash, so
//! both directions of a flow meet the same worker (on the master and in a
//! replay alike).

use crate::headers::{ip_offset, symmetric_hash, Framing};
use crate::packet::Packet;

/// The worker a packet goes to: its direction-symmetric flow hash
/// ([`symmetric_hash`]) modulo `nworkers`.
#[inline]
pub fn worker_of(p: &Packet, framing: Framing, nworkers: usize) -> usize {
    if nworkers == 1 {
        return 0;
    }
    let d = p.data();
    let h = match p.anno.net_off {
        Some(o) => symmetric_hash(d.get(o as usize..).unwrap_or(&[])),
        None => ip_offset(framing, d).map_or(0, |o| symmetric_hash(d.get(o..).unwrap_or(&[]))),
    };
    (h % nworkers as u64) as usize
}
