//! Header views over raw bytes: IPv4, TCP/UDP ports, flow ids, checksums,
//! and the direction-symmetric flow hash that picks a packet's worker.
//!
//! Every accessor is bounds-checked: a truncated or garbage packet gives
//! `None`, never a panic.

/// IP protocol numbers used by the elements.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
}

/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Ethertype of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// How a source's frames begin, so the dispatcher can find the IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Ethernet II, optionally VLAN-tagged.
    Ethernet,
    /// The frame starts with the IP header.
    RawIp,
    /// Linux cooked capture (16-byte header).
    LinuxSll,
    /// BSD loopback (4-byte family).
    Null,
    /// Unknown: the dispatcher treats packets as non-IP.
    Unknown,
}

/// Offset of the IP header inside a frame with the given framing, if the
/// frame carries IPv4 or IPv6.
pub fn ip_offset(framing: Framing, frame: &[u8]) -> Option<usize> {
    match framing {
        Framing::RawIp => Some(0),
        Framing::Ethernet => {
            let mut off = 12;
            let mut et = be16(frame, off)?;
            while et == ETHERTYPE_VLAN || et == 0x88a8 {
                off += 4;
                et = be16(frame, off)?;
            }
            (et == ETHERTYPE_IPV4 || et == ETHERTYPE_IPV6).then_some(off + 2)
        }
        Framing::LinuxSll => {
            let et = be16(frame, 14)?;
            (et == ETHERTYPE_IPV4 || et == ETHERTYPE_IPV6).then_some(16)
        }
        Framing::Null => (frame.len() >= 4).then_some(4),
        Framing::Unknown => None,
    }
}

/// Big-endian u16 at `off`.
#[inline]
pub fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// Big-endian u32 at `off`.
#[inline]
pub fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// A checked view of an IPv4 header at the start of `bytes`: after
/// [`Ipv4View::new`] succeeds, every fixed-header accessor is in bounds.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4View<'a> {
    b: &'a [u8],
}

impl<'a> Ipv4View<'a> {
    /// A view when `bytes` starts with a version-4 header whose header
    /// length is at least 20 and fits in `bytes`.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Option<Ipv4View<'a>> {
        let first = *bytes.first()?;
        let hl = ((first & 0x0f) as usize) * 4;
        if first >> 4 != 4 || hl < 20 || bytes.len() < hl {
            return None;
        }
        Some(Ipv4View { b: bytes })
    }
    /// Header length in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.b[0] & 0x0f) as usize) * 4
    }
    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        u16::from_be_bytes([self.b[2], self.b[3]])
    }
    /// Protocol field.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.b[9]
    }
    /// TTL field.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.b[8]
    }
    /// Source address.
    #[inline]
    pub fn src(&self) -> [u8; 4] {
        [self.b[12], self.b[13], self.b[14], self.b[15]]
    }
    /// Destination address.
    #[inline]
    pub fn dst(&self) -> [u8; 4] {
        [self.b[16], self.b[17], self.b[18], self.b[19]]
    }
    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        u16::from_be_bytes([self.b[6], self.b[7]]) & 0x1fff
    }
    /// More-fragments flag.
    #[inline]
    pub fn more_fragments(&self) -> bool {
        self.b[6] & 0x20 != 0
    }
    /// True for any fragment (first or later).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.frag_offset() != 0 || self.more_fragments()
    }
    /// Bytes after the header (the transport segment as captured).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.b[self.header_len()..]
    }
    /// Source and destination ports for TCP/UDP first fragments.
    #[inline]
    pub fn ports(&self) -> Option<(u16, u16)> {
        let p = self.protocol();
        if (p != proto::TCP && p != proto::UDP) || self.frag_offset() != 0 {
            return None;
        }
        let l4 = self.payload();
        Some((be16(l4, 0)?, be16(l4, 2)?))
    }
    /// Type-of-service (DSCP and ECN) byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.b[1]
    }
    /// Identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.b[4], self.b[5]])
    }
    /// Don't-fragment flag.
    #[inline]
    pub fn dont_fragment(&self) -> bool {
        self.b[6] & 0x40 != 0
    }
    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b[10], self.b[11]])
    }
    /// The header, options included (verify with [`checksum`]: 0).
    #[inline]
    pub fn header(&self) -> &'a [u8] {
        &self.b[..self.header_len()]
    }
    /// Options (the header past its fixed 20 bytes).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.b[20..self.header_len()]
    }
}

/// A checked view of a TCP header at the start of `bytes` (the IPv4
/// payload): after [`TcpView::new`] succeeds, every accessor is in bounds.
#[derive(Clone, Copy, Debug)]
pub struct TcpView<'a> {
    b: &'a [u8],
}

impl<'a> TcpView<'a> {
    /// A view when `bytes` holds a fixed TCP header and its data offset
    /// (at least 20 bytes) fits in `bytes`.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Option<TcpView<'a>> {
        let hl = usize::from(*bytes.get(12)? >> 4) * 4;
        if bytes.len() < 20 || hl < 20 || hl > bytes.len() {
            return None;
        }
        Some(TcpView { b: bytes })
    }
    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.b[0], self.b[1]])
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.b[2], self.b[3]])
    }
    /// Sequence number.
    #[inline]
    pub fn seq(&self) -> u32 {
        u32::from_be_bytes([self.b[4], self.b[5], self.b[6], self.b[7]])
    }
    /// Acknowledgment number.
    #[inline]
    pub fn ack(&self) -> u32 {
        u32::from_be_bytes([self.b[8], self.b[9], self.b[10], self.b[11]])
    }
    /// Header length in bytes (the data offset), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.b[12] >> 4) * 4
    }
    /// The twelve flag bits (reserved, NS, CWR, ECE, URG, ACK, PSH, RST,
    /// SYN, FIN).
    #[inline]
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.b[12], self.b[13]]) & 0x0fff
    }
    /// Window field.
    #[inline]
    pub fn window(&self) -> u16 {
        u16::from_be_bytes([self.b[14], self.b[15]])
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b[16], self.b[17]])
    }
    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        u16::from_be_bytes([self.b[18], self.b[19]])
    }
    /// Options (the header past its fixed 20 bytes).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.b[20..self.header_len()]
    }
    /// Bytes after the header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.b[self.header_len()..]
    }
}

/// A checked view of a UDP header at the start of `bytes` (the IPv4
/// payload): after [`UdpView::new`] succeeds, every accessor is in bounds.
#[derive(Clone, Copy, Debug)]
pub struct UdpView<'a> {
    b: &'a [u8],
}

impl<'a> UdpView<'a> {
    /// A view when `bytes` holds the 8-byte UDP header.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Option<UdpView<'a>> {
        (bytes.len() >= 8).then_some(UdpView { b: bytes })
    }
    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.b[0], self.b[1]])
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.b[2], self.b[3]])
    }
    /// Length field (header and payload).
    #[inline]
    pub fn length(&self) -> u16 {
        u16::from_be_bytes([self.b[4], self.b[5]])
    }
    /// Checksum field (0: none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b[6], self.b[7]])
    }
    /// Bytes after the header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.b[8..]
    }
}

/// A TCP/UDP flow identifier in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId {
    /// Source address.
    pub saddr: [u8; 4],
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub daddr: [u8; 4],
    /// Destination port.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
}

impl FlowId {
    /// The flow id of an IPv4 TCP/UDP packet (first fragment or whole).
    pub fn of_ipv4(ip: &[u8]) -> Option<FlowId> {
        let v = Ipv4View::new(ip)?;
        let (sport, dport) = v.ports()?;
        Some(FlowId {
            saddr: v.src(),
            sport,
            daddr: v.dst(),
            dport,
            proto: v.protocol(),
        })
    }

    /// Bytes of [`FlowId::to_bytes`].
    pub const BYTES: usize = 13;

    /// Source address, source port, destination address, destination port,
    /// protocol (ports little-endian): the snapshot encoding.
    #[inline]
    pub fn to_bytes(&self) -> [u8; FlowId::BYTES] {
        let mut b = [0u8; FlowId::BYTES];
        b[0..4].copy_from_slice(&self.saddr);
        b[4..6].copy_from_slice(&self.sport.to_le_bytes());
        b[6..10].copy_from_slice(&self.daddr);
        b[10..12].copy_from_slice(&self.dport.to_le_bytes());
        b[12] = self.proto;
        b
    }

    /// A number that orders flow ids as their derived `Ord` does (field by
    /// field, addresses as big-endian numbers): sorting by it is several
    /// times faster than comparing the fields.
    #[inline]
    pub fn order_key(&self) -> u128 {
        (u128::from(u32::from_be_bytes(self.saddr)) << 72)
            | (u128::from(self.sport) << 56)
            | (u128::from(u32::from_be_bytes(self.daddr)) << 24)
            | (u128::from(self.dport) << 8)
            | u128::from(self.proto)
    }

    /// The inverse of [`FlowId::to_bytes`].
    #[inline]
    pub fn from_bytes(b: &[u8; FlowId::BYTES]) -> FlowId {
        FlowId {
            saddr: [b[0], b[1], b[2], b[3]],
            sport: u16::from_le_bytes([b[4], b[5]]),
            daddr: [b[6], b[7], b[8], b[9]],
            dport: u16::from_le_bytes([b[10], b[11]]),
            proto: b[12],
        }
    }

    /// The same flow seen from the other end.
    pub fn reverse(&self) -> FlowId {
        FlowId {
            saddr: self.daddr,
            sport: self.dport,
            daddr: self.saddr,
            dport: self.sport,
            proto: self.proto,
        }
    }

    /// A well-mixed 64-bit hash of this direction of the flow.
    #[inline]
    pub fn hash64(&self) -> u64 {
        let a = u64::from(u32::from_be_bytes(self.saddr)) << 16 | u64::from(self.sport);
        let b = u64::from(u32::from_be_bytes(self.daddr)) << 16 | u64::from(self.dport);
        mix64(a ^ mix64(b ^ (u64::from(self.proto) << 56)))
    }
}

/// A strong 64-bit finalizer (splitmix64's).
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Direction-symmetric flow hash of the IP packet in `ip` (starting at the
/// IP header), used to pick a worker.
///
/// The rule, fixed so that replay picks the same workers:
/// - IPv4 TCP/UDP, unfragmented: the unordered pair of (address, port)
///   endpoints plus the protocol, so both directions of a connection meet.
/// - IPv4 fragments (any of them) and other protocols: the unordered pair
///   of addresses plus the protocol, so all fragments of a datagram meet.
/// - IPv6: the unordered address pair plus the next-header field.
/// - Not IP (or too short to tell): 0, so such packets go to worker 0.
pub fn symmetric_hash(ip: &[u8]) -> u64 {
    if let Some(v) = Ipv4View::new(ip) {
        let a = u32::from_be_bytes(v.src());
        let b = u32::from_be_bytes(v.dst());
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut h = u64::from(lo) << 32 | u64::from(hi);
        h = mix64(h ^ u64::from(v.protocol()));
        if !v.is_fragment() {
            if let Some((sp, dp)) = v.ports() {
                let (pl, ph) = if (a, sp) <= (b, dp) {
                    (sp, dp)
                } else {
                    (dp, sp)
                };
                h = mix64(h ^ (u64::from(pl) << 16 | u64::from(ph)));
            }
        }
        return h;
    }
    if ip.len() >= 40 && ip[0] >> 4 == 6 {
        let (a, b) = (&ip[8..24], &ip[24..40]);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut h = u64::from(ip[6]);
        for chunk in lo.chunks(8).chain(hi.chunks(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            h = mix64(h ^ u64::from_be_bytes(w));
        }
        return h;
    }
    0
}

/// Internet checksum of `data` (RFC 1071): compute over a header whose
/// checksum field is zero, or verify a received header (result 0).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    crate::trace::ipv4_checksum(data)
}

/// Incrementally update checksum `old_ck` for a 16-bit field changing from
/// `old` to `new` (RFC 1624, eqn. 3).
#[inline]
pub fn checksum_update16(old_ck: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!old_ck) + u32::from(!old) + u32::from(new);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Incrementally update a checksum for a 32-bit field (an address).
#[inline]
pub fn checksum_update32(old_ck: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let c = checksum_update16(
        old_ck,
        u16::from_be_bytes([old[0], old[1]]),
        u16::from_be_bytes([new[0], new[1]]),
    );
    checksum_update16(
        c,
        u16::from_be_bytes([old[2], old[3]]),
        u16::from_be_bytes([new[2], new[3]]),
    )
}

/// Offset of the transport checksum inside the L4 header, for protocols
/// that carry one over a pseudo-header.
#[inline]
pub fn l4_checksum_offset(proto: u8) -> Option<usize> {
    match proto {
        proto::TCP => Some(16),
        proto::UDP => Some(6),
        _ => None,
    }
}

/// Rewrite the IPv4 source or destination address of the packet at `ip`,
/// fixing the IP header checksum and the TCP/UDP checksum incrementally.
/// Returns false (and changes nothing) for a packet that is not IPv4.
pub fn set_ipv4_addr(ip: &mut [u8], dst: bool, new: [u8; 4]) -> bool {
    let Some(v) = Ipv4View::new(ip) else {
        return false;
    };
    let (hl, protocol, first) = (v.header_len(), v.protocol(), v.frag_offset() == 0);
    let off = if dst { 16 } else { 12 };
    let old = [ip[off], ip[off + 1], ip[off + 2], ip[off + 3]];
    if old == new {
        return true;
    }
    ip[off..off + 4].copy_from_slice(&new);
    let ck = u16::from_be_bytes([ip[10], ip[11]]);
    ip[10..12].copy_from_slice(&checksum_update32(ck, old, new).to_be_bytes());
    if first {
        update_l4_checksum(ip, hl, protocol, |ck| checksum_update32(ck, old, new));
    }
    true
}

/// Update the TCP or UDP checksum of the IPv4 packet `ip` (header length
/// `hl`) with `update`, incrementally. A zero UDP checksum means "none": it
/// is left alone, and an updated UDP checksum of zero is sent as 0xffff.
/// Nothing happens for other protocols or a packet too short to hold one.
fn update_l4_checksum(ip: &mut [u8], hl: usize, protocol: u8, update: impl FnOnce(u16) -> u16) {
    let Some(co) = l4_checksum_offset(protocol) else {
        return;
    };
    let at = hl + co;
    let Some(s) = ip.get_mut(at..at + 2) else {
        return;
    };
    let old_ck = u16::from_be_bytes([s[0], s[1]]);
    if protocol == proto::UDP && old_ck == 0 {
        return;
    }
    let mut n = update(old_ck);
    if protocol == proto::UDP && n == 0 {
        n = 0xffff;
    }
    s.copy_from_slice(&n.to_be_bytes());
}

/// Rewrite the TCP/UDP source or destination port, fixing the transport
/// checksum incrementally. False when the packet has no ports.
pub fn set_l4_port(ip: &mut [u8], dst: bool, new: u16) -> bool {
    let Some(v) = Ipv4View::new(ip) else {
        return false;
    };
    if v.ports().is_none() {
        return false;
    }
    let (hl, protocol) = (v.header_len(), v.protocol());
    let at = hl + if dst { 2 } else { 0 };
    let old = u16::from_be_bytes([ip[at], ip[at + 1]]);
    if old == new {
        return true;
    }
    ip[at..at + 2].copy_from_slice(&new.to_be_bytes());
    update_l4_checksum(ip, hl, protocol, |ck| checksum_update16(ck, old, new));
    true
}

/// Rewrite the addresses and ports of an IPv4 TCP/UDP packet to `to` in one
/// pass, updating the IP and transport checksums incrementally (RFC 1624)
/// with one combined difference. A zero UDP checksum stays zero. False (and
/// nothing changed) when the packet has no ports.
pub fn rewrite_flow(ip: &mut [u8], to: &FlowId) -> bool {
    let Some(v) = Ipv4View::new(ip) else {
        return false;
    };
    if v.ports().is_none() {
        return false;
    }
    let (hl, protocol) = (v.header_len(), v.protocol());
    // Ones'-complement difference of the address words (shared by the IP
    // header and the pseudo-header) and of the port words.
    let word = |b: &[u8], o: usize| u32::from(u16::from_be_bytes([b[o], b[o + 1]]));
    let mut addr_diff = 0u32;
    for (o, new) in [(12, to.saddr), (16, to.daddr)] {
        addr_diff += (!word(ip, o) & 0xffff) + (!word(ip, o + 2) & 0xffff);
        addr_diff += word(&new, 0) + word(&new, 2);
        ip[o..o + 4].copy_from_slice(&new);
    }
    let mut port_diff = 0u32;
    for (o, new) in [(hl, to.sport), (hl + 2, to.dport)] {
        port_diff += (!word(ip, o) & 0xffff) + u32::from(new);
        ip[o..o + 2].copy_from_slice(&new.to_be_bytes());
    }
    let apply = |ck: u16, diff: u32| {
        let mut sum = u32::from(!ck) + diff;
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    };
    let ck = u16::from_be_bytes([ip[10], ip[11]]);
    ip[10..12].copy_from_slice(&apply(ck, addr_diff).to_be_bytes());
    update_l4_checksum(ip, hl, protocol, |ck| apply(ck, addr_diff + port_diff));
    true
}

/// Format an IPv4 address.
pub fn fmt_ipv4(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn flow_id_bytes_round_trip_and_order_key_agrees_with_ord() {
        let mut ids = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            x = mix64(x);
            // Few distinct values per field, so ties reach every field.
            let b = x.to_le_bytes();
            ids.push(FlowId {
                saddr: [10, 0, b[0] % 3, b[1] % 2],
                sport: u16::from(b[2] % 3) << 8 | u16::from(b[3] % 2),
                daddr: [b[4] % 2, 1, 2, b[5] % 3],
                dport: u16::from(b[6] % 3) * 1000,
                proto: [6, 17][usize::from(b[7] % 2)],
            });
        }
        for a in &ids {
            assert_eq!(FlowId::from_bytes(&a.to_bytes()), *a);
            for b in ids.iter().take(200) {
                assert_eq!(a.order_key().cmp(&b.order_key()), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    /// A minimal IPv4/TCP packet (a SYN) with correct checksums.
    pub fn tcp_packet(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8]) -> Vec<u8> {
        let syn = crate::trace::TcpHeader::new(sp, dp, 0x02);
        crate::trace::Ipv4Header::new(src, dst).tcp(&syn, payload)
    }

    /// The TCP/UDP checksum computed from scratch.
    pub fn l4_full_checksum(ip: &[u8]) -> u16 {
        let v = Ipv4View::new(ip).unwrap();
        let co = l4_checksum_offset(v.protocol()).unwrap();
        let mut s = v.payload().to_vec();
        s[co] = 0;
        s[co + 1] = 0;
        crate::trace::l4_checksum_v4(v.src(), v.dst(), v.protocol(), &s)
    }

    #[test]
    fn transport_views_read_the_fields_and_refuse_short_headers() {
        let p = tcp_packet([10, 0, 0, 1], 1234, [198, 18, 0, 2], 80, b"hi");
        let v = Ipv4View::new(&p).unwrap();
        assert_eq!((v.tos(), v.ident(), v.dont_fragment()), (0, 0, false));
        assert_eq!(checksum(v.header()), 0);
        assert!(v.options().is_empty());
        let t = TcpView::new(v.payload()).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (1234, 80));
        assert_eq!((t.seq(), t.ack(), t.header_len()), (0, 0, 20));
        assert_eq!((t.flags(), t.window(), t.urgent()), (0x002, 0, 0));
        assert_eq!(t.checksum(), l4_full_checksum(&p));
        assert_eq!((t.options(), t.payload()), (&[][..], &b"hi"[..]));
        for cut in 0..20 {
            assert!(TcpView::new(&v.payload()[..cut]).is_none());
        }
        let mut bad = v.payload().to_vec();
        bad[12] = 0x40; // 16-byte header
        assert!(TcpView::new(&bad).is_none());
        bad[12] = 0x60; // 24 bytes, more than there is
        assert!(TcpView::new(&bad).is_none());
        let udp = [0x12, 0x34, 0x00, 0x35, 0x00, 0x0a, 0xab, 0xcd, 7, 8];
        let u = UdpView::new(&udp).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.length()), (0x1234, 53, 10));
        assert_eq!((u.checksum(), u.payload()), (0xabcd, &[7u8, 8][..]));
        assert!(UdpView::new(&udp[..7]).is_none());
    }

    #[test]
    fn incremental_rewrite_matches_full_checksum() {
        let mut p = tcp_packet([10, 0, 0, 1], 1234, [198, 18, 0, 2], 80, b"hello!");
        assert!(set_ipv4_addr(&mut p, false, [198, 18, 0, 1]));
        assert!(set_l4_port(&mut p, false, 40000));
        assert_eq!(checksum(&p[..20]), 0);
        let stored = u16::from_be_bytes([p[36], p[37]]);
        assert_eq!(stored, l4_full_checksum(&p));
        let f = FlowId::of_ipv4(&p).unwrap();
        assert_eq!(f.saddr, [198, 18, 0, 1]);
        assert_eq!(f.sport, 40000);
    }

    #[test]
    fn rewrite_flow_matches_full_checksums() {
        let mut p = tcp_packet([10, 0, 0, 1], 1234, [198, 18, 0, 2], 80, b"hello, world");
        let to = FlowId {
            saddr: [198, 18, 0, 1],
            sport: 40001,
            daddr: [203, 0, 113, 9],
            dport: 8080,
            proto: proto::TCP,
        };
        assert!(rewrite_flow(&mut p, &to));
        assert_eq!(FlowId::of_ipv4(&p), Some(to));
        assert_eq!(checksum(&p[..20]), 0);
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), l4_full_checksum(&p));
        let mut short = p[..22].to_vec();
        assert!(!rewrite_flow(&mut short, &to));
    }

    #[test]
    fn symmetric_hash_is_symmetric() {
        let a = tcp_packet([10, 0, 0, 1], 1234, [198, 18, 0, 2], 80, b"");
        let b = tcp_packet([198, 18, 0, 2], 80, [10, 0, 0, 1], 1234, b"");
        let c = tcp_packet([198, 18, 0, 2], 81, [10, 0, 0, 1], 1234, b"");
        assert_eq!(symmetric_hash(&a), symmetric_hash(&b));
        assert_ne!(symmetric_hash(&a), symmetric_hash(&c));
        assert_eq!(symmetric_hash(&[0x45, 0]), 0);
    }

    #[test]
    fn views_never_panic_on_prefixes() {
        let p = tcp_packet([10, 0, 0, 1], 1, [10, 0, 0, 2], 2, b"xyz");
        for n in 0..=p.len() {
            let mut q = p[..n].to_vec();
            let _ = FlowId::of_ipv4(&q);
            let _ = symmetric_hash(&q);
            let _ = set_ipv4_addr(&mut q, true, [1, 2, 3, 4]);
            let _ = set_l4_port(&mut q, true, 9);
            let _ = ip_offset(Framing::Ethernet, &q);
        }
    }
}
