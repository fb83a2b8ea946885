//! The lab's echo messages, client to server and back.
//!
//! A message (client to server, [`MSG`] = 32 bytes): magic `FTLB`, flow id
//! (u32), seq (u64), send time (u64 ns since the epoch), 8 bytes of zero.
//! The echo ([`ECHO`] = 40 bytes) is the message followed by the peer
//! address the server saw: IPv4 (4 bytes), port (u16), two bytes of zero.
//! All big-endian.

use ftmb_core::clock::wall_ns;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// First bytes of every message.
pub const MAGIC: &[u8; 4] = b"FTLB";
/// Bytes of a message.
pub const MSG: usize = 32;
/// Bytes of an echo.
pub const ECHO: usize = 40;

/// Message `seq` of flow `id`, stamped with the time now.
pub fn message(id: u32, seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..4].copy_from_slice(MAGIC);
    m[4..8].copy_from_slice(&id.to_be_bytes());
    m[8..16].copy_from_slice(&seq.to_be_bytes());
    m[16..24].copy_from_slice(&wall_ns().to_be_bytes());
    m
}

/// The echo of `msg` from `peer`; `None` for anything but a lab message
/// from an IPv4 peer.
pub fn echo_of(msg: &[u8], peer: SocketAddr) -> Option<[u8; ECHO]> {
    if msg.len() < MSG || &msg[..4] != MAGIC {
        return None;
    }
    let SocketAddr::V4(p) = peer else { return None };
    let mut e = [0u8; ECHO];
    e[..MSG].copy_from_slice(&msg[..MSG]);
    e[MSG..MSG + 4].copy_from_slice(&p.ip().octets());
    e[MSG + 4..MSG + 6].copy_from_slice(&p.port().to_be_bytes());
    Some(e)
}

/// The sequence number of a whole echo `e` ([`ECHO`] bytes).
pub fn seq_of(e: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&e[8..16]);
    u64::from_be_bytes(b)
}

/// When the message was sent (ns since the epoch), from its whole echo.
pub fn sent_ns_of(e: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&e[16..24]);
    u64::from_be_bytes(b)
}

/// The address:port the server saw, from a whole echo.
pub fn peer_of(e: &[u8]) -> SocketAddrV4 {
    let b = &e[MSG..];
    let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    SocketAddrV4::new(ip, u16::from_be_bytes([b[4], b[5]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_carries_the_message_and_the_peer() {
        let m = message(7, 42);
        let peer = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 1), 40123);
        let e = echo_of(&m, SocketAddr::V4(peer)).expect("echo");
        assert_eq!(seq_of(&e), 42);
        assert_eq!(sent_ns_of(&e), sent_ns_of(&m));
        assert_eq!(peer_of(&e), peer);
        assert!(echo_of(&m[..MSG - 1], SocketAddr::V4(peer)).is_none());
        assert!(echo_of(&[0u8; MSG], SocketAddr::V4(peer)).is_none());
    }
}
