//! Hand-built packets: one IPv4 packet of a chosen shape with valid
//! checksums, for tests and tools that need a particular packet rather
//! than a generated trace (see [`super::generate`] for whole traces).
//!
//! ```
//! use ftmb_core::trace::{ethernet_frame, Ipv4Header, TcpHeader};
//! let ip = Ipv4Header::new([10, 0, 0, 1], [198, 18, 0, 2]);
//! let syn = ip.tcp(&TcpHeader::new(40000, 80, 0x02), b"");
//! assert_eq!(syn.len(), 40);
//! assert_eq!(ethernet_frame(&syn).len(), 54);
//! ```

use super::{ipv4_checksum, l4_checksum_v4};

const TCP: u8 = 6;
const UDP: u8 = 17;

/// The IPv4 header fields a hand-built packet chooses; the rest (version,
/// header length 20, total length, checksum) follow from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Time to live (default 64).
    pub ttl: u8,
    /// Identification (default 0).
    pub ident: u16,
    /// The don't-fragment flag (default clear).
    pub dont_fragment: bool,
}

impl Ipv4Header {
    /// From `src` to `dst`, TTL 64, identification 0, fragmentable.
    pub fn new(src: [u8; 4], dst: [u8; 4]) -> Ipv4Header {
        Ipv4Header {
            src,
            dst,
            ttl: 64,
            ident: 0,
            dont_fragment: false,
        }
    }

    /// An IPv4 packet of `protocol` whose payload is `l4` (a transport
    /// header and its payload), with a valid header checksum. For TCP and
    /// UDP the transport checksum is filled in as well (a UDP sum of zero
    /// is sent as 0xffff), unless `l4` is too short to hold one.
    pub fn packet(&self, protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = self.header(protocol, l4.len());
        let start = p.len();
        p.extend_from_slice(l4);
        let at = match protocol {
            TCP => Some(16),
            UDP => Some(6),
            _ => None,
        };
        if let Some(at) = at.filter(|at| at + 2 <= l4.len()) {
            let seg = &mut p[start..];
            seg[at..at + 2].copy_from_slice(&[0, 0]);
            let mut ck = l4_checksum_v4(self.src, self.dst, protocol, seg);
            if protocol == UDP && ck == 0 {
                ck = 0xffff;
            }
            seg[at..at + 2].copy_from_slice(&ck.to_be_bytes());
        }
        p
    }

    /// An IPv4 packet of `protocol` carrying `l4` as it is (no transport
    /// checksum computed): for a UDP datagram without one, or a segment a
    /// test wants as written.
    pub fn packet_as_is(&self, protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = self.header(protocol, l4.len());
        p.extend_from_slice(l4);
        p
    }

    /// A TCP segment in an IPv4 packet, both checksums valid.
    pub fn tcp(&self, tcp: &TcpHeader, payload: &[u8]) -> Vec<u8> {
        self.packet(TCP, &tcp.segment(payload))
    }

    /// A UDP datagram in an IPv4 packet, both checksums valid.
    pub fn udp(&self, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        self.packet(UDP, &udp_datagram(sport, dport, payload))
    }

    /// The 20-byte header of a packet with `l4_len` payload bytes.
    fn header(&self, protocol: u8, l4_len: usize) -> Vec<u8> {
        let total = (20 + l4_len) as u16;
        let mut h = Vec::with_capacity(20 + l4_len);
        h.extend_from_slice(&[0x45, 0]);
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&self.ident.to_be_bytes());
        h.extend_from_slice(&[if self.dont_fragment { 0x40 } else { 0 }, 0]);
        h.extend_from_slice(&[self.ttl, protocol, 0, 0]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        let ck = ipv4_checksum(&h);
        h[10..12].copy_from_slice(&ck.to_be_bytes());
        h
    }
}

/// The TCP header fields a hand-built segment chooses (data offset 5, no
/// options; the checksum is the packet's business).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpHeader {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number (default 0).
    pub seq: u32,
    /// Acknowledgement number (default 0).
    pub ack: u32,
    /// Flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
    pub flags: u8,
    /// Receive window (default 0).
    pub window: u16,
}

impl TcpHeader {
    /// From `sport` to `dport` with `flags`; sequence, acknowledgement and
    /// window 0.
    pub fn new(sport: u16, dport: u16, flags: u8) -> TcpHeader {
        TcpHeader {
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags,
            window: 0,
        }
    }

    /// The header followed by `payload`, checksum field zero.
    pub fn segment(&self, payload: &[u8]) -> Vec<u8> {
        let mut s = Vec::with_capacity(20 + payload.len());
        s.extend_from_slice(&self.sport.to_be_bytes());
        s.extend_from_slice(&self.dport.to_be_bytes());
        s.extend_from_slice(&self.seq.to_be_bytes());
        s.extend_from_slice(&self.ack.to_be_bytes());
        s.extend_from_slice(&[0x50, self.flags]);
        s.extend_from_slice(&self.window.to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 0]);
        s.extend_from_slice(payload);
        s
    }
}

/// A UDP header (length filled in, checksum zero) followed by `payload`.
pub fn udp_datagram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    s
}

/// `ip` behind an Ethernet header (both addresses zero, type IPv4).
pub fn ethernet_frame(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(ip);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_verify() {
        let ip = Ipv4Header {
            ttl: 9,
            ident: 0x1234,
            dont_fragment: true,
            ..Ipv4Header::new([10, 0, 0, 1], [198, 18, 7, 9])
        };
        for p in [
            ip.tcp(&TcpHeader::new(1, 2, 0x18), b"odd"),
            ip.udp(3, 4, b"even"),
        ] {
            assert_eq!(ipv4_checksum(&p[..20]), 0);
            assert_eq!(l4_checksum_v4(ip.src, ip.dst, p[9], &p[20..]), 0);
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
            assert_eq!((p[4], p[5], p[6], p[8]), (0x12, 0x34, 0x40, 9));
        }
        let raw = ip.packet_as_is(UDP, &udp_datagram(3, 4, b"x"));
        assert_eq!(&raw[26..28], &[0, 0]);
        assert_eq!(ethernet_frame(&raw)[12..14], [0x08, 0x00]);
    }
}
