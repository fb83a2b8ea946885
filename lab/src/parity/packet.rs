//! A captured frame's headers as the parity tool compares them, read
//! through the core's header views ([`ftmb_core::headers`]).

use ftmb_core::headers::{
    be16, checksum, proto, FlowId, Ipv4View, TcpView, UdpView, ETHERTYPE_IPV4,
};
use ftmb_core::trace::l4_checksum_v4;
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// One header field's value, for comparison and display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum V {
    N(u64),
    Hex(u64),
    Ip([u8; 4]),
    Mac([u8; 6]),
    Bytes(Vec<u8>),
}

impl fmt::Display for V {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V::N(n) => write!(f, "{n}"),
            V::Hex(n) => write!(f, "{n:#x}"),
            V::Ip(a) => write!(f, "{}", Ipv4Addr::from(*a)),
            V::Mac(m) => write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            V::Bytes(b) => write!(f, "{} bytes", b.len()),
        }
    }
}

/// Every field name [`Pkt::fields`] yields, in order.
pub(crate) const FIELD_NAMES: [&str; 27] = [
    "frame.len",
    "eth.dst",
    "eth.src",
    "eth.type",
    "ip.tos",
    "ip.len",
    "ip.id",
    "ip.df",
    "ip.mf",
    "ip.frag",
    "ip.ttl",
    "ip.proto",
    "ip.csum",
    "ip.src",
    "ip.dst",
    "ip.options",
    "l4.sport",
    "l4.dport",
    "tcp.seq",
    "tcp.ack",
    "tcp.hlen",
    "tcp.flags",
    "tcp.window",
    "tcp.urg",
    "tcp.options",
    "udp.len",
    "l4.csum",
];

/// The headers of an Ethernet / IPv4 / TCP-or-UDP frame, and the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pkt {
    pub frame_len: usize,
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub eth_type: u16,
    pub tos: u8,
    pub ip_len: u16,
    pub id: u16,
    pub df: bool,
    pub mf: bool,
    pub frag_offset: u16,
    pub ttl: u8,
    pub ip_csum: u16,
    pub ip_opts: Vec<u8>,
    /// Protocol, addresses and ports.
    pub flow: FlowId,
    pub seq: u32,
    pub ack: u32,
    pub tcp_hlen: u8,
    pub tcp_flags: u16,
    pub window: u16,
    pub urg: u16,
    pub tcp_opts: Vec<u8>,
    pub udp_len: u16,
    pub l4_csum: u16,
    pub payload: Vec<u8>,
    pub ip_ok: bool,
    pub l4_ok: bool,
}

/// What pairs a packet with the trace packet it came from (see
/// [`Pkt::key`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PairKey {
    proto: u8,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: u32,
    tcp_flags: u16,
    payload: Vec<u8>,
}

/// The transport header's fields, as [`Pkt`] keeps them.
struct Transport {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    tcp_hlen: u8,
    tcp_flags: u16,
    window: u16,
    urg: u16,
    tcp_opts: Vec<u8>,
    udp_len: u16,
    l4_csum: u16,
    payload: Vec<u8>,
    l4_ok: bool,
}

impl Transport {
    /// The TCP or UDP header of a segment from `src` to `dst`.
    fn parse(v: &Ipv4View<'_>) -> Result<Transport, String> {
        let seg = v.payload();
        let (src, dst, protocol) = (v.src(), v.dst(), v.protocol());
        match protocol {
            proto::TCP => {
                let Some(t) = TcpView::new(seg) else {
                    return Err(if seg.len() < 20 {
                        "short TCP header".into()
                    } else {
                        "bad TCP header length".into()
                    });
                };
                Ok(Transport {
                    sport: t.src_port(),
                    dport: t.dst_port(),
                    seq: t.seq(),
                    ack: t.ack(),
                    tcp_hlen: t.header_len() as u8,
                    tcp_flags: t.flags(),
                    window: t.window(),
                    urg: t.urgent(),
                    tcp_opts: t.options().to_vec(),
                    udp_len: 0,
                    l4_csum: t.checksum(),
                    payload: t.payload().to_vec(),
                    l4_ok: l4_checksum_v4(src, dst, protocol, seg) == 0,
                })
            }
            proto::UDP => {
                let u = UdpView::new(seg).ok_or("short UDP header")?;
                Ok(Transport {
                    sport: u.src_port(),
                    dport: u.dst_port(),
                    seq: 0,
                    ack: 0,
                    tcp_hlen: 0,
                    tcp_flags: 0,
                    window: 0,
                    urg: 0,
                    tcp_opts: Vec::new(),
                    udp_len: u.length(),
                    l4_csum: u.checksum(),
                    payload: u.payload().to_vec(),
                    l4_ok: u.checksum() == 0 || l4_checksum_v4(src, dst, protocol, seg) == 0,
                })
            }
            p => {
                let what = match p {
                    proto::ICMP => "ICMP".to_string(),
                    n => format!("IP protocol {n}"),
                };
                Err(format!(
                    "{what} {} -> {}",
                    Ipv4Addr::from(src),
                    Ipv4Addr::from(dst)
                ))
            }
        }
    }
}

/// The IPv4 packet of an Ethernet frame, cut to its total length; `Err`
/// says what the frame is instead.
fn ipv4_of(frame: &[u8]) -> Result<Ipv4View<'_>, String> {
    let eth_type = be16(frame, 12).filter(|_| frame.len() >= 14);
    let Some(eth_type) = eth_type else {
        return Err(format!("runt frame ({} bytes)", frame.len()));
    };
    if eth_type != ETHERTYPE_IPV4 {
        return Err(format!("ethertype {eth_type:#06x}"));
    }
    let ip = &frame[14..];
    let bad_lengths = || "bad IPv4 lengths (truncated capture?)".to_string();
    let Some(v) = Ipv4View::new(ip) else {
        return Err(if ip.len() < 20 || ip[0] >> 4 != 4 {
            "not IPv4".into()
        } else {
            bad_lengths()
        });
    };
    let total = usize::from(v.total_len());
    if total < v.header_len() || total > ip.len() {
        return Err(bad_lengths());
    }
    let v = Ipv4View::new(&ip[..total]).ok_or_else(bad_lengths)?;
    if v.is_fragment() {
        return Err("IP fragment".into());
    }
    Ok(v)
}

impl Pkt {
    /// Parses a captured frame; `Err` says what it is instead (for the
    /// report, not a failure of the tool).
    pub fn parse(frame: &[u8]) -> Result<Pkt, String> {
        let v = ipv4_of(frame)?;
        let t = Transport::parse(&v)?;
        let mac = |at: usize| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&frame[at..at + 6]);
            m
        };
        Ok(Pkt {
            frame_len: frame.len(),
            eth_dst: mac(0),
            eth_src: mac(6),
            eth_type: ETHERTYPE_IPV4,
            tos: v.tos(),
            ip_len: v.total_len(),
            id: v.ident(),
            df: v.dont_fragment(),
            mf: v.more_fragments(),
            frag_offset: v.frag_offset(),
            ttl: v.ttl(),
            ip_csum: v.checksum(),
            ip_opts: v.options().to_vec(),
            flow: FlowId {
                saddr: v.src(),
                sport: t.sport,
                daddr: v.dst(),
                dport: t.dport,
                proto: v.protocol(),
            },
            seq: t.seq,
            ack: t.ack,
            tcp_hlen: t.tcp_hlen,
            tcp_flags: t.tcp_flags,
            window: t.window,
            urg: t.urg,
            tcp_opts: t.tcp_opts,
            udp_len: t.udp_len,
            l4_csum: t.l4_csum,
            payload: t.payload,
            ip_ok: checksum(v.header()) == 0,
            l4_ok: t.l4_ok,
        })
    }

    /// Every compared field, named as in [`FIELD_NAMES`].
    pub fn fields(&self) -> [(&'static str, V); 27] {
        let f = &self.flow;
        [
            ("frame.len", V::N(self.frame_len as u64)),
            ("eth.dst", V::Mac(self.eth_dst)),
            ("eth.src", V::Mac(self.eth_src)),
            ("eth.type", V::Hex(self.eth_type.into())),
            ("ip.tos", V::Hex(self.tos.into())),
            ("ip.len", V::N(self.ip_len.into())),
            ("ip.id", V::N(self.id.into())),
            ("ip.df", V::N(self.df.into())),
            ("ip.mf", V::N(self.mf.into())),
            ("ip.frag", V::N(self.frag_offset.into())),
            ("ip.ttl", V::N(self.ttl.into())),
            ("ip.proto", V::N(f.proto.into())),
            ("ip.csum", V::Hex(self.ip_csum.into())),
            ("ip.src", V::Ip(f.saddr)),
            ("ip.dst", V::Ip(f.daddr)),
            ("ip.options", V::Bytes(self.ip_opts.clone())),
            ("l4.sport", V::N(f.sport.into())),
            ("l4.dport", V::N(f.dport.into())),
            ("tcp.seq", V::N(self.seq.into())),
            ("tcp.ack", V::N(self.ack.into())),
            ("tcp.hlen", V::N(self.tcp_hlen.into())),
            ("tcp.flags", V::Hex(self.tcp_flags.into())),
            ("tcp.window", V::N(self.window.into())),
            ("tcp.urg", V::N(self.urg.into())),
            ("tcp.options", V::Bytes(self.tcp_opts.clone())),
            ("udp.len", V::N(self.udp_len.into())),
            ("l4.csum", V::Hex(self.l4_csum.into())),
        ]
    }

    /// The packet a reflector makes of this one (Click's EtherMirror +
    /// IPMirror): addresses, ports and TCP seq/ack swapped.
    pub fn mirrored(&self) -> Pkt {
        let mut m = self.clone();
        std::mem::swap(&mut m.eth_src, &mut m.eth_dst);
        m.flow = m.flow.reverse();
        if m.flow.proto == proto::TCP {
            std::mem::swap(&mut m.seq, &mut m.ack);
        }
        m
    }

    /// What pairs a packet with the trace packet it came from: everything a
    /// NAT leaves alone on the way out (the server side of the flow, the
    /// TCP sequence space and flags, the payload).
    pub fn key(&self) -> PairKey {
        PairKey {
            proto: self.flow.proto,
            dst: self.flow.daddr,
            dport: self.flow.dport,
            seq: self.seq,
            ack: self.ack,
            tcp_flags: self.tcp_flags,
            payload: self.payload.clone(),
        }
    }

    /// Names of the fields that differ from `other`, with both values.
    pub fn diff(&self, other: &Pkt, ignore: &BTreeSet<String>) -> Vec<(&'static str, V, V)> {
        let mut d: Vec<(&'static str, V, V)> = self
            .fields()
            .into_iter()
            .zip(other.fields())
            .filter(|((n, a), (_, b))| a != b && !ignore.contains(*n))
            .map(|((n, a), (_, b))| (n, a, b))
            .collect();
        if self.payload != other.payload && !ignore.contains("payload") {
            d.push((
                "payload",
                V::Bytes(self.payload.clone()),
                V::Bytes(other.payload.clone()),
            ));
        }
        d
    }
}

/// A flow as the report writes it: `tcp 10.0.1.2:4000 -> 10.0.2.9:80`.
pub(crate) fn fmt_flow(f: &FlowId) -> String {
    format!(
        "{} {}:{} -> {}:{}",
        if f.proto == proto::TCP { "tcp" } else { "udp" },
        Ipv4Addr::from(f.saddr),
        f.sport,
        Ipv4Addr::from(f.daddr),
        f.dport
    )
}

/// A flow's place in the report's lists: by protocol (TCP before UDP),
/// then by addresses and ports.
pub(crate) fn report_order(f: &FlowId) -> (u8, FlowId) {
    (f.proto, *f)
}
