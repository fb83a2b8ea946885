//! IP header elements: `CheckIPHeader`, `DecIPTTL`, `StoreIPAddress`.

use ftmb_core::args::Ipv4Prefix;
use ftmb_core::element::element;
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

impl Element for DecIpTtl {
    fn ports(&self) -> Ports {
        Ports::ONE_ONE_OR_TWO
    }
    fn push(&mut self, _ctx: &mut Ctx, _port: usize, mut pkt: Packet, out: &mut Out) {
        let Some(ip) = pkt.ip_mut().filter(|ip| Ipv4View::new(ip).is_some()) else {
            out.drop(pkt, "not IPv4 (no CheckIPHeader before?)");
            return;
        };
        if ip[8] <= 1 {
            self.drops += 1;
            if out.nports() > 1 {
                out.push(1, pkt);
            } else {
                out.drop(pkt, "TTL expired");
            }
            return;
        }
        let old = u16::from_be_bytes([ip[8], ip[9]]);
        ip[8] -= 1;
        let new = u16::from_be_bytes([ip[8], ip[9]]);
        let ck = checksum_update16(u16::from_be_bytes([ip[10], ip[11]]), old, new);
        ip[10..12].copy_from_slice(&ck.to_be_bytes());
        out.push(0, pkt);
    }
    fn stats(&self) -> Vec<(&'static str, Value)> {
        vec![("drops", Value::Count(self.drops))]
    }
    fn save_state(&self, out: &mut Vec<u8>) {
        self.drops.encode(out);
    }
    fn load_state(&mut self, mut buf: &[u8]) -> Result<(), String> {
        self.drops = u64::decode(&mut buf).map_err(|e| e.to_string())?;
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

impl Element for StoreIpAddress {
    fn ports(&self) -> Ports {
        Ports::ONE_ONE_OR_TWO
    }
    fn push(&mut self, _ctx: &mut Ctx, _port: usize, mut pkt: Packet, out: &mut Out) {
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
            out.push(0, pkt);
        } else if out.nports() > 1 {
            out.push(1, pkt);
        } else {
            out.drop(pkt, "no IP header to store into");
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
