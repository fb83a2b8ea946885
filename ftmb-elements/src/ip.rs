//! IP header elements: `CheckIPHeader`, `DecIPTTL`, `StoreIPAddress`,
//! `IPMirror`.

use ftmb_core::args::Ipv4Prefix;
use ftmb_core::element::{element, Filter, Verdict};
use ftmb_core::headers::{checksum, checksum_update16, set_ipv4_addr, Ipv4View};
use ftmb_core::shared::StateCodec;
use ftmb_core::{Args, Built, ConfigError, Ctx, Element, InitCtx, Out, Packet, Ports, Value};
use std::net::Ipv4Addr;

/// `CheckIPHeader([OFFSET], ...)`: check the IPv4 header at OFFSET and set
/// the network-header annotation, as Click does.
///
/// # Configuration
/// `OFFSET` (positional, default 0), `CHECKSUM` (default true), `VERBOSE`
/// (default false: report only the first bad packet), `BADSRC` (addresses
/// whose packets are bad), `INTERFACES` (prefixes whose broadcast addresses
/// are bad sources).
///
/// Checks, in Click's order: at least 20 bytes ("tiny packet"), version 4,
/// header length at least 20, total length within the packet and at least
/// the header length, header checksum, source address. A good packet is
/// truncated to its IP total length (dropping Ethernet padding) and gets
/// its network-header and destination-address annotations.
///
/// # Ports
/// One input; output 0 for good packets; bad packets go unchanged to output
/// 1 when connected, else are dropped (counted per reason).
///
/// # Handlers
/// `drops` (bad packets), `count` (good packets).
///
/// # Shared state
/// None.
pub struct CheckIpHeader {
    offset: usize,
    checksum: bool,
    verbose: bool,
    bad_src: Vec<[u8; 4]>,
    drops: u64,
    count: u64,
    reported: bool,
    name: String,
}

impl CheckIpHeader {
    /// Annotate a good packet and cut it to its IP length.
    #[inline]
    fn accept(&self, pkt: &mut Packet, len: usize) {
        pkt.truncate(self.offset + len);
        pkt.anno.net_off = u16::try_from(self.offset).ok();
        let ip = &pkt.data()[self.offset..];
        pkt.anno.dst_ip = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    }

    fn check(&self, pkt: &Packet) -> Result<(usize, usize), &'static str> {
        let d = pkt.data();
        let ip = d.get(self.offset..).unwrap_or(&[]);
        if ip.len() < 20 {
            return Err("tiny packet");
        }
        if ip[0] >> 4 != 4 {
            return Err("bad IP version");
        }
        let hl = ((ip[0] & 0x0f) as usize) * 4;
        if hl < 20 {
            return Err("bad IP header length");
        }
        let len = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        if len > ip.len() || len < hl {
            return Err("bad IP length");
        }
        if self.checksum && checksum(&ip[..hl]) != 0 {
            return Err("bad IP checksum");
        }
        let src = [ip[12], ip[13], ip[14], ip[15]];
        if self.bad_src.contains(&src) {
            return Err("bad source address");
        }
        Ok((hl, len))
    }
}

impl Element for CheckIpHeader {
    fn ports(&self) -> Ports {
        Ports::ONE_ONE_OR_TWO
    }
    fn push_batch(&mut self, ctx: &mut Ctx, port: usize, batch: &mut Vec<Packet>, out: &mut Out) {
        // Common case: every packet is good, annotated in place and the
        // batch forwarded whole.
        let mut all_good = true;
        for p in batch.iter_mut() {
            match self.check(p) {
                Ok((_, len)) => self.accept(p, len),
                Err(_) => {
                    all_good = false;
                    break;
                }
            }
        }
        if all_good {
            self.count += batch.len() as u64;
            out.push_all(0, batch);
            return;
        }
        // Rare case: route one by one (re-checking is idempotent on the
        // packets already accepted).
        for p in batch.drain(..) {
            self.push(ctx, port, p, out);
        }
    }

    fn push(&mut self, _ctx: &mut Ctx, _port: usize, mut pkt: Packet, out: &mut Out) {
        match self.check(&pkt) {
            Ok((_hl, len)) => {
                self.count += 1;
                self.accept(&mut pkt, len);
                out.push(0, pkt);
            }
            Err(reason) => {
                if self.verbose || !self.reported {
                    eprintln!("{}: IP header check failed: {reason}", self.name);
                    self.reported = true;
                }
                self.drops += 1;
                if out.nports() > 1 {
                    out.count_drop(reason);
                    out.push(1, pkt);
                } else {
                    out.drop(pkt, reason);
                }
            }
        }
    }
    fn stats(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("count", Value::Count(self.count)),
            ("drops", Value::Count(self.drops)),
        ]
    }
    fn save_state(&self, out: &mut Vec<u8>) {
        (self.count, self.drops).encode(out);
    }
    fn load_state(&mut self, mut buf: &[u8]) -> Result<(), String> {
        (self.count, self.drops) = StateCodec::decode(&mut buf).map_err(|e| e.to_string())?;
        Ok(())
    }
}

pub(crate) fn build_check_ip_header(
    a: &mut Args,
    ctx: &mut InitCtx<'_>,
) -> Result<Built, ConfigError> {
    let offset = a.positional("OFFSET")?.unwrap_or(0usize);
    let checksum = a.keyword_or("CHECKSUM", true)?;
    let verbose = a.keyword_or("VERBOSE", false)?;
    let _details: bool = a.keyword_or("DETAILS", false)?;
    let mut bad_src = Vec::new();
    if let Some(list) = a.keyword::<String>("BADSRC")? {
        for w in list.split_whitespace() {
            let ip: Ipv4Addr = w
                .parse()
                .map_err(|_| a.error(format!("BADSRC: `{w}` is not an IPv4 address")))?;
            bad_src.push(ip.octets());
        }
    }
    if let Some(list) = a.keyword::<String>("INTERFACES")? {
        for w in list.split_whitespace() {
            let p: Ipv4Prefix = ftmb_core::FromArg::from_arg(w)
                .map_err(|e: String| a.error(format!("INTERFACES: {e}")))?;
            bad_src.push((p.addr | !p.mask()).to_be_bytes());
        }
        bad_src.push([0, 0, 0, 0]);
        bad_src.push([255, 255, 255, 255]);
    }
    element(CheckIpHeader {
        offset,
        checksum,
        verbose,
        bad_src,
        drops: 0,
        count: 0,
        reported: false,
        name: ctx.element_name().to_string(),
    })
}

/// `DecIPTTL`: decrement the IP TTL, updating the checksum incrementally
/// (RFC 1624).
///
/// # Ports
/// One input; output 0 for forwarded packets; packets whose TTL is 1 or
/// less go unchanged to output 1 when connected, else are dropped.
///
/// # Handlers
/// `drops` (expired packets).
///
/// # Shared state
/// None.
#[derive(Default)]
pub struct DecIpTtl {
    drops: u64,
}

impl Filter for DecIpTtl {
    fn ports(&self) -> Ports {
        Ports::ONE_ONE_OR_TWO
    }
    fn action(&mut self, _ctx: &mut Ctx, pkt: &mut Packet) -> Verdict {
        let Some(ip) = pkt.ip_mut().filter(|ip| Ipv4View::new(ip).is_some()) else {
            return Verdict::Drop("not IPv4 (no CheckIPHeader before?)");
        };
        if ip[8] <= 1 {
            self.drops += 1;
            return Verdict::Reject("TTL expired");
        }
        let old = u16::from_be_bytes([ip[8], ip[9]]);
        ip[8] -= 1;
        let new = u16::from_be_bytes([ip[8], ip[9]]);
        let ck = checksum_update16(u16::from_be_bytes([ip[10], ip[11]]), old, new);
        ip[10..12].copy_from_slice(&ck.to_be_bytes());
        Verdict::Pass
    }
    fn stats(&self) -> Vec<(&'static str, Value)> {
        vec![("drops", Value::Count(self.drops))]
    }
    fn save_state(&self, out: &mut Vec<u8>) {
        self.drops.encode(out);
    }
    fn load_state(&mut self, buf: &[u8]) -> Result<(), String> {
        self.drops = crate::util::decode_state(buf)?;
        Ok(())
    }
}

pub(crate) fn build_dec_ip_ttl(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let _active: bool = a.keyword_or("ACTIVE", true)?;
    let _multicast: bool = a.keyword_or("MULTICAST", true)?;
    element(DecIpTtl::default())
}

#[derive(Clone, Copy)]
enum StoreTarget {
    /// Raw bytes at an offset from the packet start, no checksum fix.
    Offset(usize),
    /// The IP source (false) or destination (true), checksums fixed.
    Field(bool),
}

/// `StoreIPAddress([ADDR,] OFFSET)`: write an address into the packet.
///
/// # Configuration
/// `ADDR` (default: the destination-address annotation) and `OFFSET`: a
/// byte offset from the packet start (raw write, no checksum update, as in
/// Click) or `src` / `dst` (the IP header field, with the IP, TCP and UDP
/// checksums updated incrementally).
///
/// # Ports
/// One input; output 0; packets the address cannot be stored in go to
/// output 1 when connected, else are dropped.
///
/// # Shared state
/// None.
pub struct StoreIpAddress {
    addr: Option<[u8; 4]>,
    target: StoreTarget,
}

impl Filter for StoreIpAddress {
    fn ports(&self) -> Ports {
        Ports::ONE_ONE_OR_TWO
    }
    fn action(&mut self, _ctx: &mut Ctx, pkt: &mut Packet) -> Verdict {
        let addr = self.addr.unwrap_or(pkt.anno.dst_ip.to_be_bytes());
        let ok = match self.target {
            StoreTarget::Offset(off) => match pkt.data_mut().get_mut(off..off + 4) {
                Some(s) if self.addr.is_some() || addr != [0; 4] => {
                    s.copy_from_slice(&addr);
                    true
                }
                _ => false,
            },
            StoreTarget::Field(dst) => pkt.ip_mut().is_some_and(|ip| set_ipv4_addr(ip, dst, addr)),
        };
        if ok {
            Verdict::Pass
        } else {
            Verdict::Reject("no IP header to store into")
        }
    }
}

pub(crate) fn build_store_ip_address(
    a: &mut Args,
    _: &mut InitCtx<'_>,
) -> Result<Built, ConfigError> {
    let items = a.rest();
    let (addr, off) = match items.as_slice() {
        [(off, s)] => (None, (off, *s)),
        [(addr, s0), (off, s)] => {
            let ip: Ipv4Addr = addr.parse().map_err(|_| {
                ConfigError::new(
                    format!("StoreIPAddress: `{addr}` is not an IPv4 address"),
                    *s0,
                )
            })?;
            (Some(ip.octets()), (off, *s))
        }
        _ => {
            return Err(a
                .error("expected ([ADDR,] OFFSET)")
                .with_help("OFFSET is a byte offset, `src` or `dst`".to_string()))
        }
    };
    let target = match off.0.as_str() {
        "src" => StoreTarget::Field(false),
        "dst" => StoreTarget::Field(true),
        t => StoreTarget::Offset(t.parse().map_err(|_| {
            ConfigError::new(
                format!("StoreIPAddress: OFFSET `{t}` is not a number, `src` or `dst`"),
                off.1,
            )
        })?),
    };
    element(StoreIpAddress { addr, target })
}

/// `IPMirror([DST_ANNO])`: turn a packet a->b into b->a (Click's element of
/// that name). Swaps the IP source and destination addresses; for TCP and
/// UDP (protocol 6 or 17, first fragments only) also the source and
/// destination ports, and for TCP the sequence and acknowledgment numbers.
///
/// No checksum changes: each swap exchanges whole 16-bit words that are all
/// in the same ones'-complement sum (the IP header's, or the pseudo-header
/// and segment's), and a sum does not depend on the order of its terms.
///
/// # Configuration
/// `DST_ANNO` (default true): set the destination-address annotation to
/// the new destination.
///
/// # Ports
/// One input, one output. The IP header is where `CheckIPHeader` put the
/// annotation, else at the start of the packet. A packet with no valid
/// IPv4 header there is dropped, counted as `not IPv4`; a TCP or UDP
/// packet too short for its ports goes out with only the addresses
/// swapped, as in Click.
///
/// # Shared state
/// None.
pub struct IpMirror {
    dst_anno: bool,
}

impl IpMirror {
    /// Mirrors the IPv4 packet `ip` in place; false when it is no IPv4
    /// packet (too short, another version, a bad header length).
    pub fn mirror(ip: &mut [u8]) -> bool {
        let Some(v) = Ipv4View::new(ip) else {
            return false;
        };
        let (hl, total, proto, first) = (
            v.header_len(),
            usize::from(v.total_len()),
            v.protocol(),
            v.frag_offset() == 0,
        );
        let (src, dst) = ip[12..20].split_at_mut(4);
        src.swap_with_slice(dst);
        if !first || (proto != 6 && proto != 17) {
            return true;
        }
        // The transport header ends where the IP packet does (not at any
        // Ethernet padding after it).
        let end = total.clamp(hl, ip.len());
        let l4 = &mut ip[hl..end];
        if l4.len() >= 4 {
            let (sp, dp) = l4[..4].split_at_mut(2);
            sp.swap_with_slice(dp);
        }
        if proto == 6 && l4.len() >= 12 {
            let (seq, ack) = l4[4..12].split_at_mut(4);
            seq.swap_with_slice(ack);
        }
        true
    }
}

impl Filter for IpMirror {
    fn action(&mut self, _ctx: &mut Ctx, pkt: &mut Packet) -> Verdict {
        let off = pkt.anno.net_off.map_or(0, usize::from);
        let Some(ip) = pkt.data_mut().get_mut(off..) else {
            return Verdict::Drop("not IPv4");
        };
        if !IpMirror::mirror(ip) {
            return Verdict::Drop("not IPv4");
        }
        if self.dst_anno {
            pkt.anno.dst_ip = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
        }
        Verdict::Pass
    }
}

pub(crate) fn build_ip_mirror(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let dst_anno = a.positional("DST_ANNO")?.unwrap_or(true);
    element(IpMirror { dst_anno })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftmb_core::headers::checksum;
    use ftmb_core::trace::{l4_checksum_v4, udp_datagram, Ipv4Header, TcpHeader};

    /// IPv4 + TCP (or UDP) with correct checksums.
    fn packet(proto: u8, payload: &[u8]) -> Vec<u8> {
        let ip = Ipv4Header {
            ident: 0x1234,
            dont_fragment: true,
            ..Ipv4Header::new([10, 0, 1, 2], [198, 18, 7, 9])
        };
        if proto == 6 {
            let tcp = TcpHeader {
                seq: 0xdead_beef,
                ack: 0x0102_0304,
                ..TcpHeader::new(40001, 443, 0x18)
            };
            ip.tcp(&tcp, payload)
        } else {
            ip.packet(proto, &udp_datagram(40001, 443, payload))
        }
    }

    /// Both checksums of an IPv4 TCP/UDP packet verify.
    fn checksums_ok(p: &[u8]) -> bool {
        let v = Ipv4View::new(p).expect("ipv4");
        let mut l4 = v.payload().to_vec();
        let at = if v.protocol() == 6 { 16 } else { 6 };
        let stored = u16::from_be_bytes([l4[at], l4[at + 1]]);
        l4[at..at + 2].copy_from_slice(&[0, 0]);
        checksum(&p[..20]) == 0 && l4_checksum_v4(v.src(), v.dst(), v.protocol(), &l4) == stored
    }

    #[test]
    fn ip_mirror_swaps_tcp_addresses_ports_seq_ack_and_keeps_checksums() {
        // Odd payload length: the final byte is padded in the sum.
        let orig = packet(6, b"hello, mirror");
        assert!(checksums_ok(&orig));
        let mut p = orig.clone();
        assert!(IpMirror::mirror(&mut p));
        assert_eq!(&p[12..16], &[198, 18, 7, 9]);
        assert_eq!(&p[16..20], &[10, 0, 1, 2]);
        assert_eq!(&p[20..24], &[1, 187, 0x9c, 0x41], "ports 443 -> 40001");
        assert_eq!(&p[24..28], &[1, 2, 3, 4], "seq <- ack");
        assert_eq!(&p[28..32], &[0xde, 0xad, 0xbe, 0xef], "ack <- seq");
        assert_eq!(p[..12], orig[..12], "ID, flags, TTL, checksum unchanged");
        assert_eq!(
            p[32..],
            orig[32..],
            "flags, window, checksum, data unchanged"
        );
        assert!(checksums_ok(&p), "checksums still valid");
        assert!(IpMirror::mirror(&mut p));
        assert_eq!(p, orig, "twice is the identity");
    }

    #[test]
    fn ip_mirror_swaps_udp_ports_only() {
        let orig = packet(17, b"abc");
        let mut p = orig.clone();
        assert!(IpMirror::mirror(&mut p));
        assert_eq!(&p[20..24], &[1, 187, 0x9c, 0x41]);
        assert_eq!(p[24..], orig[24..], "length, checksum, data unchanged");
        assert!(checksums_ok(&p));
    }

    #[test]
    fn ip_mirror_leaves_ports_of_later_fragments_and_other_protocols() {
        let mut frag = packet(17, b"abcdefgh");
        frag[6..8].copy_from_slice(&0x0003u16.to_be_bytes()); // offset 24 bytes
        let before = frag.clone();
        assert!(IpMirror::mirror(&mut frag));
        assert_eq!(&frag[12..16], &before[16..20]);
        assert_eq!(frag[20..], before[20..], "no L4 header in a later fragment");
        let mut icmp = packet(17, b"abcd");
        icmp[9] = 1;
        let before = icmp.clone();
        assert!(IpMirror::mirror(&mut icmp));
        assert_eq!(icmp[20..], before[20..]);
    }

    #[test]
    fn ip_mirror_rejects_what_is_not_ipv4() {
        assert!(!IpMirror::mirror(&mut [0x45; 19]));
        let mut v6 = packet(17, b"x");
        v6[0] = 0x65;
        assert!(!IpMirror::mirror(&mut v6));
        // Truncated TCP: addresses swapped, too short for ports.
        let mut short = packet(6, b"");
        short.truncate(22);
        assert!(IpMirror::mirror(&mut short));
        assert_eq!(&short[20..22], &[0x9c, 0x41]);
    }
}
