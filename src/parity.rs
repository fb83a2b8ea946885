//! `ftmb nat-parity`: do two NATs put out the same packets for the same
//! input? (`scripts/lab.sh --parity`.)
//!
//! Input: the trace that was replayed into the NATs (client -> server
//! packets only, as sent), and for each NAT two captures: *outbound*, what
//! left the NAT towards the servers, and *inbound*, what reached the client
//! after a reflector behind the NAT (`examples/lab-mirror.click`) sent each
//! outbound packet back as its mirror image.
//!
//! Every captured packet is paired with the trace packet it came from by
//! the fields no NAT touches: protocol, server address and port, TCP
//! sequence, acknowledgment and flags, and the payload (for inbound
//! packets, after mirroring them back). Two NATs' copies of one trace
//! packet are then compared header field by header field, all of them
//! except an explicit ignore list: outbound, by default, the TCP/UDP source
//! port (the port the NAT chose) and the TCP/UDP checksum (which covers
//! it). Each capture is also checked on its own: valid checksums, every
//! original flow translated to exactly one public address:port, no two
//! flows sharing a translated 5-tuple, and inbound packets restored to the
//! original client address:port.

use anyhow::{bail, Context, Result};
use ftmb_core::headers::{be16, be32};
use ftmb_core::trace::{ipv4_checksum, l4_checksum_v4, LinkType, TraceReader};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// `ftmb nat-parity` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct ParityArgs {
    /// The trace that was replayed (client -> server packets, as sent).
    #[arg(long)]
    pub trace: PathBuf,
    /// NAT A's outbound capture: what left it towards the servers.
    #[arg(long)]
    pub a_out: PathBuf,
    /// NAT A's inbound capture: the mirrored packets as they reached the
    /// client (optional; give it for both NATs or neither).
    #[arg(long)]
    pub a_in: Option<PathBuf>,
    /// NAT B's outbound capture.
    #[arg(long)]
    pub b_out: PathBuf,
    /// NAT B's inbound capture.
    #[arg(long)]
    pub b_in: Option<PathBuf>,
    /// Name of NAT A in the report.
    #[arg(long, default_value = "a")]
    pub a_name: String,
    /// Name of NAT B in the report.
    #[arg(long, default_value = "b")]
    pub b_name: String,
    /// Also ignore this header field when comparing A with B, as
    /// `DIRECTION:FIELD` (`out:ip.id`, `in:ip.ttl`); repeatable. `--fields`
    /// lists the names. Outbound `l4.sport` and `l4.csum` are always
    /// ignored.
    #[arg(long)]
    pub ignore: Vec<String>,
    /// List the header field names and exit.
    #[arg(long)]
    pub fields: bool,
    /// Print the report as JSON on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Fields never compared outbound: the NAT's own choice.
const ALWAYS_IGNORED_OUT: [&str; 2] = ["l4.sport", "l4.csum"];

/// Examples of differing packets kept per comparison.
const EXAMPLES: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Dir {
    Out,
    In,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Out => "out",
            Dir::In => "in",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Dir::Out => "outbound (client -> NAT -> server)",
            Dir::In => "inbound (mirrored: server -> NAT -> client)",
        }
    }
}

/// One header field's value, for comparison and display.
#[derive(Clone, Debug, PartialEq, Eq)]
enum V {
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
const FIELD_NAMES: [&str; 27] = [
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
struct Pkt {
    frame_len: usize,
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    eth_type: u16,
    tos: u8,
    ip_len: u16,
    id: u16,
    frag: u16,
    ttl: u8,
    proto: u8,
    ip_csum: u16,
    src: [u8; 4],
    dst: [u8; 4],
    ip_opts: Vec<u8>,
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
    ip_ok: bool,
    l4_ok: bool,
}

impl Pkt {
    /// Parses a captured frame; `Err` says what it is instead (for the
    /// report, not a failure of the tool).
    fn parse(frame: &[u8]) -> std::result::Result<Pkt, String> {
        // The lengths are checked below before each header is read; a
        // field past the end is still an error, never a panic.
        let u16_at = |b: &[u8], at| be16(b, at).ok_or_else(|| format!("no 16-bit field at {at}"));
        let u32_at = |b: &[u8], at| be32(b, at).ok_or_else(|| format!("no 32-bit field at {at}"));
        if frame.len() < 14 {
            return Err(format!("runt frame ({} bytes)", frame.len()));
        }
        let eth_type = u16_at(frame, 12)?;
        if eth_type != 0x0800 {
            return Err(format!("ethertype {eth_type:#06x}"));
        }
        let ip = &frame[14..];
        if ip.len() < 20 || ip[0] >> 4 != 4 {
            return Err("not IPv4".into());
        }
        let hl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16_at(ip, 2)?);
        if hl < 20 || total < hl || total > ip.len() {
            return Err("bad IPv4 lengths (truncated capture?)".into());
        }
        let ip = &ip[..total];
        let (proto, frag) = (ip[9], u16_at(ip, 6)?);
        if frag & 0x3fff != 0 {
            return Err("IP fragment".into());
        }
        let (src, dst) = (
            [ip[12], ip[13], ip[14], ip[15]],
            [ip[16], ip[17], ip[18], ip[19]],
        );
        let seg = &ip[hl..];
        let mut p = Pkt {
            frame_len: frame.len(),
            eth_dst: [frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]],
            eth_src: [frame[6], frame[7], frame[8], frame[9], frame[10], frame[11]],
            eth_type,
            tos: ip[1],
            ip_len: u16_at(ip, 2)?,
            id: u16_at(ip, 4)?,
            frag,
            ttl: ip[8],
            proto,
            ip_csum: u16_at(ip, 10)?,
            src,
            dst,
            ip_opts: ip[20..hl].to_vec(),
            sport: 0,
            dport: 0,
            seq: 0,
            ack: 0,
            tcp_hlen: 0,
            tcp_flags: 0,
            window: 0,
            urg: 0,
            tcp_opts: Vec::new(),
            udp_len: 0,
            l4_csum: 0,
            payload: Vec::new(),
            ip_ok: ipv4_checksum(&ip[..hl]) == 0,
            l4_ok: false,
        };
        match proto {
            6 => {
                if seg.len() < 20 {
                    return Err("short TCP header".into());
                }
                let thl = usize::from(seg[12] >> 4) * 4;
                if thl < 20 || thl > seg.len() {
                    return Err("bad TCP header length".into());
                }
                p.sport = u16_at(seg, 0)?;
                p.dport = u16_at(seg, 2)?;
                p.seq = u32_at(seg, 4)?;
                p.ack = u32_at(seg, 8)?;
                p.tcp_hlen = thl as u8;
                p.tcp_flags = u16_at(seg, 12)? & 0x0fff;
                p.window = u16_at(seg, 14)?;
                p.l4_csum = u16_at(seg, 16)?;
                p.urg = u16_at(seg, 18)?;
                p.tcp_opts = seg[20..thl].to_vec();
                p.payload = seg[thl..].to_vec();
                p.l4_ok = l4_checksum_v4(src, dst, proto, seg) == 0;
            }
            17 => {
                if seg.len() < 8 {
                    return Err("short UDP header".into());
                }
                p.sport = u16_at(seg, 0)?;
                p.dport = u16_at(seg, 2)?;
                p.udp_len = u16_at(seg, 4)?;
                p.l4_csum = u16_at(seg, 6)?;
                p.payload = seg[8..].to_vec();
                p.l4_ok = p.l4_csum == 0 || l4_checksum_v4(src, dst, proto, seg) == 0;
            }
            p => {
                let what = match p {
                    1 => "ICMP".to_string(),
                    n => format!("IP protocol {n}"),
                };
                return Err(format!(
                    "{what} {} -> {}",
                    Ipv4Addr::from(src),
                    Ipv4Addr::from(dst)
                ));
            }
        }
        Ok(p)
    }

    /// Every compared field, named as in [`FIELD_NAMES`].
    fn fields(&self) -> [(&'static str, V); 27] {
        [
            ("frame.len", V::N(self.frame_len as u64)),
            ("eth.dst", V::Mac(self.eth_dst)),
            ("eth.src", V::Mac(self.eth_src)),
            ("eth.type", V::Hex(self.eth_type.into())),
            ("ip.tos", V::Hex(self.tos.into())),
            ("ip.len", V::N(self.ip_len.into())),
            ("ip.id", V::N(self.id.into())),
            ("ip.df", V::N(u64::from(self.frag >> 14 & 1))),
            ("ip.mf", V::N(u64::from(self.frag >> 13 & 1))),
            ("ip.frag", V::N(u64::from(self.frag & 0x1fff))),
            ("ip.ttl", V::N(self.ttl.into())),
            ("ip.proto", V::N(self.proto.into())),
            ("ip.csum", V::Hex(self.ip_csum.into())),
            ("ip.src", V::Ip(self.src)),
            ("ip.dst", V::Ip(self.dst)),
            ("ip.options", V::Bytes(self.ip_opts.clone())),
            ("l4.sport", V::N(self.sport.into())),
            ("l4.dport", V::N(self.dport.into())),
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
    fn mirrored(&self) -> Pkt {
        let mut m = self.clone();
        std::mem::swap(&mut m.eth_src, &mut m.eth_dst);
        std::mem::swap(&mut m.src, &mut m.dst);
        std::mem::swap(&mut m.sport, &mut m.dport);
        if m.proto == 6 {
            std::mem::swap(&mut m.seq, &mut m.ack);
        }
        m
    }

    /// What pairs a packet with the trace packet it came from: everything a
    /// NAT leaves alone on the way out (the server side of the flow, the
    /// TCP sequence space and flags, the payload).
    fn key(&self) -> Key {
        (
            self.proto,
            self.dst,
            self.dport,
            self.seq,
            self.ack,
            self.tcp_flags,
            self.payload.clone(),
        )
    }

    fn flow(&self) -> Flow {
        (self.proto, self.src, self.sport, self.dst, self.dport)
    }

    /// Names of the fields that differ from `other`, with both values.
    fn diff(&self, other: &Pkt, ignore: &BTreeSet<String>) -> Vec<(&'static str, V, V)> {
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

type Key = (u8, [u8; 4], u16, u32, u32, u16, Vec<u8>);
/// (protocol, source, source port, destination, destination port).
type Flow = (u8, [u8; 4], u16, [u8; 4], u16);

fn fmt_flow(f: &Flow) -> String {
    format!(
        "{} {}:{} -> {}:{}",
        if f.0 == 6 { "tcp" } else { "udp" },
        Ipv4Addr::from(f.1),
        f.2,
        Ipv4Addr::from(f.3),
        f.4
    )
}

/// Every frame of an Ethernet pcap/pcapng file.
fn read_frames(path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut r =
        TraceReader::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    if r.link_type() != LinkType::Ethernet {
        bail!(
            "{}: link type {:?}, expected Ethernet",
            path.display(),
            r.link_type()
        );
    }
    let mut v = Vec::new();
    while let Some(rec) = r.next_record() {
        let rec = rec.with_context(|| format!("{}: bad record", path.display()))?;
        if rec.data.len() < rec.orig_len as usize {
            bail!(
                "{}: packet {} truncated by the capture ({} of {} bytes); capture with a larger snap length",
                path.display(),
                v.len() + 1,
                rec.data.len(),
                rec.orig_len
            );
        }
        v.push(rec.data.to_vec());
    }
    Ok(v)
}

/// The replayed trace, indexed for pairing.
struct Trace {
    pkts: Vec<Pkt>,
    by_key: HashMap<Key, VecDeque<usize>>,
    flows: BTreeMap<Flow, usize>,
}

impl Trace {
    fn new(frames: &[Vec<u8>], path: &Path) -> Result<Trace> {
        let mut pkts = Vec::with_capacity(frames.len());
        let mut by_key: HashMap<Key, VecDeque<usize>> = HashMap::new();
        let mut flows = BTreeMap::new();
        for (i, f) in frames.iter().enumerate() {
            let p = Pkt::parse(f).map_err(|why| {
                anyhow::anyhow!(
                    "{}: packet {} is not Ethernet/IPv4 TCP or UDP: {why}",
                    path.display(),
                    i + 1
                )
            })?;
            by_key.entry(p.key()).or_default().push_back(i);
            *flows.entry(p.flow()).or_insert(0) += 1;
            pkts.push(p);
        }
        Ok(Trace {
            pkts,
            by_key,
            flows,
        })
    }
}

/// One capture, its packets paired with the trace.
struct Capture {
    name: String,
    dir: Dir,
    pkts: Vec<Pkt>,
    /// Trace index of each packet in `pkts`.
    trace_idx: Vec<usize>,
    /// Capture position of each trace packet seen (the first copy).
    by_trace: HashMap<usize, usize>,
    /// Packets that pair with no trace packet, described.
    extra: Vec<String>,
    in_order: bool,
    bad_ip: usize,
    bad_l4: usize,
}

impl Capture {
    fn new(name: &str, dir: Dir, path: &Path, trace: &Trace) -> Result<Capture> {
        let frames = read_frames(path)?;
        let mut queues = trace.by_key.clone();
        let mut c = Capture {
            name: name.to_string(),
            dir,
            pkts: Vec::new(),
            trace_idx: Vec::new(),
            by_trace: HashMap::new(),
            extra: Vec::new(),
            in_order: true,
            bad_ip: 0,
            bad_l4: 0,
        };
        let mut last = None;
        for (n, f) in frames.iter().enumerate() {
            let p = match Pkt::parse(f) {
                Ok(p) => p,
                Err(why) => {
                    c.extra.push(format!("packet {}: {why}", n + 1));
                    continue;
                }
            };
            let as_sent = match dir {
                Dir::Out => p.clone(),
                Dir::In => p.mirrored(),
            };
            let Some(i) = queues.get_mut(&as_sent.key()).and_then(|q| q.pop_front()) else {
                c.extra.push(format!(
                    "packet {}: {} {}:{} -> {}:{}, {} bytes: no such packet in the trace{}",
                    n + 1,
                    if p.proto == 6 { "tcp" } else { "udp" },
                    Ipv4Addr::from(p.src),
                    p.sport,
                    Ipv4Addr::from(p.dst),
                    p.dport,
                    p.frame_len,
                    if trace.by_key.contains_key(&as_sent.key()) {
                        " (one more copy than it has)"
                    } else {
                        ""
                    }
                ));
                continue;
            };
            c.bad_ip += usize::from(!p.ip_ok);
            c.bad_l4 += usize::from(!p.l4_ok);
            if last.is_some_and(|l| i < l) {
                c.in_order = false;
            }
            last = Some(i);
            c.by_trace.entry(i).or_insert(c.pkts.len());
            c.trace_idx.push(i);
            c.pkts.push(p);
        }
        Ok(c)
    }

    fn missing(&self, trace: &Trace) -> usize {
        trace.pkts.len() - self.by_trace.len()
    }

    /// Per field, how many packets differ from the trace packet they came
    /// from (outbound) or from its mirror image (inbound): what this NAT
    /// changes.
    fn changes(&self, trace: &Trace) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        let none = BTreeSet::new();
        for (p, &i) in self.pkts.iter().zip(&self.trace_idx) {
            let base = match self.dir {
                Dir::Out => trace.pkts[i].clone(),
                Dir::In => trace.pkts[i].mirrored(),
            };
            for (f, _, _) in base.diff(p, &none) {
                *m.entry(f).or_insert(0) += 1;
            }
        }
        m
    }
}

/// How one NAT translated the trace's flows (outbound capture).
#[derive(Default)]
struct Translations {
    flows: usize,
    /// Flows seen with more than one public address:port.
    remapped: Vec<String>,
    /// Translated 5-tuples used by more than one flow.
    shared_tuple: Vec<String>,
    /// Public (address, port) pairs used by more than one flow (towards
    /// different servers): legal, but worth knowing.
    shared_port: usize,
    /// Flows whose source port the NAT kept.
    port_kept: usize,
    public_addrs: BTreeSet<[u8; 4]>,
}

fn translations(c: &Capture, trace: &Trace) -> Translations {
    let mut per_flow: BTreeMap<Flow, BTreeSet<([u8; 4], u16)>> = BTreeMap::new();
    for (p, &i) in c.pkts.iter().zip(&c.trace_idx) {
        per_flow
            .entry(trace.pkts[i].flow())
            .or_default()
            .insert((p.src, p.sport));
    }
    let mut t = Translations {
        flows: per_flow.len(),
        ..Translations::default()
    };
    let mut by_tuple: BTreeMap<Flow, Vec<Flow>> = BTreeMap::new();
    let mut by_port: BTreeMap<(u8, [u8; 4], u16), usize> = BTreeMap::new();
    for (f, pubs) in &per_flow {
        if pubs.len() > 1 {
            let list: Vec<String> = pubs
                .iter()
                .map(|(a, p)| format!("{}:{p}", Ipv4Addr::from(*a)))
                .collect();
            t.remapped
                .push(format!("{} -> {}", fmt_flow(f), list.join(", ")));
        }
        for &(a, p) in pubs {
            t.public_addrs.insert(a);
            by_tuple.entry((f.0, a, p, f.3, f.4)).or_default().push(*f);
            *by_port.entry((f.0, a, p)).or_insert(0) += 1;
            if p == f.2 {
                t.port_kept += 1;
            }
        }
    }
    for (tuple, fs) in &by_tuple {
        if fs.len() > 1 {
            let list: Vec<String> = fs.iter().map(fmt_flow).collect();
            t.shared_tuple.push(format!(
                "{} is used by {}",
                fmt_flow(tuple),
                list.join(" and ")
            ));
        }
    }
    t.shared_port = by_port.values().filter(|&&n| n > 1).count();
    t
}

/// A and B compared in one direction.
struct Comparison {
    ignore: BTreeSet<String>,
    pairs: usize,
    equal: usize,
    field_diffs: BTreeMap<&'static str, usize>,
    examples: Vec<String>,
    only_a: usize,
    only_b: usize,
}

fn compare(a: &Capture, b: &Capture, trace: &Trace, ignore: BTreeSet<String>) -> Comparison {
    let mut c = Comparison {
        ignore,
        pairs: 0,
        equal: 0,
        field_diffs: BTreeMap::new(),
        examples: Vec::new(),
        only_a: 0,
        only_b: 0,
    };
    for i in 0..trace.pkts.len() {
        match (a.by_trace.get(&i), b.by_trace.get(&i)) {
            (Some(&x), Some(&y)) => {
                c.pairs += 1;
                let d = a.pkts[x].diff(&b.pkts[y], &c.ignore);
                if d.is_empty() {
                    c.equal += 1;
                    continue;
                }
                for (f, _, _) in &d {
                    *c.field_diffs.entry(f).or_insert(0) += 1;
                }
                if c.examples.len() < EXAMPLES {
                    let what: Vec<String> = d
                        .iter()
                        .map(|(f, x, y)| format!("{f} {x} vs {y}"))
                        .collect();
                    c.examples.push(format!(
                        "trace packet {} ({}): {}",
                        i + 1,
                        fmt_flow(&trace.pkts[i].flow()),
                        what.join(", ")
                    ));
                }
            }
            (Some(_), None) => c.only_a += 1,
            (None, Some(_)) => c.only_b += 1,
            (None, None) => {}
        }
    }
    c
}

/// Runs `ftmb nat-parity`: prints the report; `Ok(false)` on a mismatch.
pub fn run(a: &ParityArgs) -> Result<bool> {
    if a.fields {
        for f in FIELD_NAMES.iter().chain(["payload"].iter()) {
            crate::print_out(f);
        }
        return Ok(true);
    }
    let mut ignore: BTreeMap<Dir, BTreeSet<String>> = BTreeMap::new();
    ignore.insert(
        Dir::Out,
        ALWAYS_IGNORED_OUT.iter().map(|s| s.to_string()).collect(),
    );
    ignore.insert(Dir::In, BTreeSet::new());
    for i in &a.ignore {
        let (d, f) = match i.split_once(':') {
            Some(("out", f)) => (Dir::Out, f),
            Some(("in", f)) => (Dir::In, f),
            _ => bail!("--ignore {i}: expected out:FIELD or in:FIELD"),
        };
        if !FIELD_NAMES.contains(&f) && f != "payload" {
            bail!("--ignore {i}: no field {f} (see --fields)");
        }
        ignore.entry(d).or_default().insert(f.to_string());
    }
    let mut dirs = vec![(Dir::Out, a.a_out.clone(), a.b_out.clone())];
    match (&a.a_in, &a.b_in) {
        (Some(x), Some(y)) => dirs.push((Dir::In, x.clone(), y.clone())),
        (None, None) => {}
        _ => bail!("give --a-in and --b-in together, or neither"),
    }
    let trace = Trace::new(&read_frames(&a.trace)?, &a.trace)?;
    let report = Report::build(&trace, a, &dirs, &ignore)?;
    if a.json {
        crate::print_out(&serde_json::to_string_pretty(&report.json)?);
    }
    for line in &report.lines {
        if a.json {
            eprintln!("{line}");
        } else {
            crate::print_out(line);
        }
    }
    Ok(report.failures.is_empty())
}

struct Report {
    json: Value,
    lines: Vec<String>,
    failures: Vec<String>,
}

fn join_counts(m: &BTreeMap<&'static str, usize>, total: usize) -> String {
    if m.is_empty() {
        return "nothing".into();
    }
    m.iter()
        .map(|(f, n)| {
            if *n == total {
                f.to_string()
            } else {
                format!("{f} ({n} of {total})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report {
    fn build(
        trace: &Trace,
        a: &ParityArgs,
        dirs: &[(Dir, PathBuf, PathBuf)],
        ignore: &BTreeMap<Dir, BTreeSet<String>>,
    ) -> Result<Report> {
        let mut lines = Vec::new();
        let mut failures = Vec::new();
        let mut jdirs = serde_json::Map::new();
        let tcp = trace.flows.keys().filter(|f| f.0 == 6).count();
        lines.push(format!(
            "nat-parity: {} vs {}; trace {}: {} packets, {} flows ({} tcp, {} udp)",
            a.a_name,
            a.b_name,
            a.trace.display(),
            trace.pkts.len(),
            trace.flows.len(),
            tcp,
            trace.flows.len() - tcp
        ));
        for (dir, pa, pb) in dirs {
            let ca = Capture::new(&a.a_name, *dir, pa, trace)?;
            let cb = Capture::new(&a.b_name, *dir, pb, trace)?;
            let ign = ignore.get(dir).cloned().unwrap_or_default();
            let ign_list: Vec<&str> = ign.iter().map(String::as_str).collect();
            lines.push(format!(
                "{}, ignoring {}:",
                dir.title(),
                if ign_list.is_empty() {
                    "nothing".to_string()
                } else {
                    ign_list.join(", ")
                }
            ));
            let mut jcaps = serde_json::Map::new();
            for c in [&ca, &cb] {
                let missing = c.missing(trace);
                let changes = c.changes(trace);
                lines.push(format!(
                    "  {}: {} packets captured, {} from the trace, {} extra, {} of {} missing; trace order {}; bad checksums: IP {}, TCP/UDP {}",
                    c.name,
                    c.pkts.len() + c.extra.len(),
                    c.pkts.len(),
                    c.extra.len(),
                    missing,
                    trace.pkts.len(),
                    if c.in_order { "kept" } else { "NOT kept" },
                    c.bad_ip,
                    c.bad_l4
                ));
                lines.push(format!(
                    "    changed vs the {}: {}",
                    if *dir == Dir::Out {
                        "trace"
                    } else {
                        "trace's mirror image"
                    },
                    join_counts(&changes, c.pkts.len())
                ));
                for e in c.extra.iter().take(EXAMPLES) {
                    lines.push(format!("    extra: {e}"));
                }
                let pfx = format!("{} {}", dir.name(), c.name);
                if !c.extra.is_empty() {
                    failures.push(format!(
                        "{pfx}: {} packets not from the trace",
                        c.extra.len()
                    ));
                }
                if c.pkts.len() != c.by_trace.len() {
                    failures.push(format!(
                        "{pfx}: {} duplicated packets",
                        c.pkts.len() - c.by_trace.len()
                    ));
                }
                if missing > 0 {
                    failures.push(format!("{pfx}: {missing} trace packets missing"));
                }
                if c.bad_ip + c.bad_l4 > 0 {
                    failures.push(format!(
                        "{pfx}: bad checksums (IP {}, TCP/UDP {})",
                        c.bad_ip, c.bad_l4
                    ));
                }
                let mut jc = json!({
                    "captured": c.pkts.len() + c.extra.len(),
                    "from_trace": c.pkts.len(),
                    "extra": c.extra.len(),
                    "missing": missing,
                    "duplicates": c.pkts.len() - c.by_trace.len(),
                    "in_trace_order": c.in_order,
                    "bad_ip_checksums": c.bad_ip,
                    "bad_l4_checksums": c.bad_l4,
                    "changed_vs_trace": changes,
                    "extra_examples": c.extra.iter().take(EXAMPLES).collect::<Vec<_>>(),
                });
                match dir {
                    Dir::Out => {
                        let t = translations(c, trace);
                        let addrs: Vec<String> = t
                            .public_addrs
                            .iter()
                            .map(|x| Ipv4Addr::from(*x).to_string())
                            .collect();
                        lines.push(format!(
                            "    translations: {} flows from {}; {} with more than one; {} translated 5-tuples shared; source port kept for {} flows; {} public address:port pairs serve several flows (different servers)",
                            t.flows,
                            addrs.join(", "),
                            t.remapped.len(),
                            t.shared_tuple.len(),
                            t.port_kept,
                            t.shared_port
                        ));
                        for e in t.remapped.iter().chain(&t.shared_tuple).take(EXAMPLES) {
                            lines.push(format!("    translation: {e}"));
                        }
                        if !t.remapped.is_empty() {
                            failures.push(format!(
                                "{pfx}: {} flows translated to more than one address:port",
                                t.remapped.len()
                            ));
                        }
                        if !t.shared_tuple.is_empty() {
                            failures.push(format!(
                                "{pfx}: {} translated 5-tuples shared by several flows",
                                t.shared_tuple.len()
                            ));
                        }
                        jc["translations"] = json!({
                            "flows": t.flows,
                            "public_addresses": addrs,
                            "flows_with_several": t.remapped.len(),
                            "shared_5_tuples": t.shared_tuple.len(),
                            "source_port_kept": t.port_kept,
                            "shared_public_ports": t.shared_port,
                        });
                    }
                    Dir::In => {
                        let unrestored = c
                            .pkts
                            .iter()
                            .zip(&c.trace_idx)
                            .filter(|(p, &i)| {
                                p.dst != trace.pkts[i].src || p.dport != trace.pkts[i].sport
                            })
                            .count();
                        lines.push(format!(
                            "    back to the original client address:port: {} of {}",
                            c.pkts.len() - unrestored,
                            c.pkts.len()
                        ));
                        if unrestored > 0 {
                            failures.push(format!(
                                "{pfx}: {unrestored} packets not translated back to the client's address:port"
                            ));
                        }
                        jc["not_restored"] = json!(unrestored);
                    }
                }
                jcaps.insert(c.name.clone(), jc);
            }
            let cmp = compare(&ca, &cb, trace, ign);
            lines.push(format!(
                "  {} vs {}: {} packets in both, {} equal, {} differ; only in {}: {}, only in {}: {}",
                ca.name,
                cb.name,
                cmp.pairs,
                cmp.equal,
                cmp.pairs - cmp.equal,
                ca.name,
                cmp.only_a,
                cb.name,
                cmp.only_b
            ));
            if cmp.pairs > cmp.equal {
                lines.push(format!(
                    "    differing fields: {}",
                    join_counts(&cmp.field_diffs, cmp.pairs)
                ));
                for e in &cmp.examples {
                    lines.push(format!("    e.g. {e}"));
                }
                failures.push(format!(
                    "{}: {} packets differ ({})",
                    dir.name(),
                    cmp.pairs - cmp.equal,
                    cmp.field_diffs
                        .keys()
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if cmp.only_a + cmp.only_b > 0 {
                failures.push(format!(
                    "{}: {} packets only from {}, {} only from {}",
                    dir.name(),
                    cmp.only_a,
                    ca.name,
                    cmp.only_b,
                    cb.name
                ));
            }
            jdirs.insert(
                dir.name().to_string(),
                json!({
                    "ignored_fields": cmp.ignore,
                    "captures": jcaps,
                    "pairs": cmp.pairs,
                    "equal": cmp.equal,
                    "differ": cmp.pairs - cmp.equal,
                    "differing_fields": cmp.field_diffs,
                    "examples": cmp.examples,
                    "only_a": cmp.only_a,
                    "only_b": cmp.only_b,
                }),
            );
        }
        if failures.is_empty() {
            lines.push("parity: ok".into());
        } else {
            for f in &failures {
                lines.push(format!("parity: FAILED: {f}"));
            }
        }
        let json = json!({
            "a": a.a_name,
            "b": a.b_name,
            "trace": {
                "packets": trace.pkts.len(),
                "flows": trace.flows.len(),
                "tcp_flows": tcp,
                "udp_flows": trace.flows.len() - tcp,
            },
            "directions": jdirs,
            "ok": failures.is_empty(),
            "failures": failures,
        });
        Ok(Report {
            json,
            lines,
            failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftmb_core::headers::{checksum_update16, set_ipv4_addr, set_l4_port};
    use ftmb_core::trace::{generate, PcapWriter, TraceSpec};
    use ftmb_elements::ether::EtherMirror;
    use ftmb_elements::ip::IpMirror;

    const PUB: [u8; 4] = [10, 0, 2, 1];

    fn write(path: &Path, frames: &[Vec<u8>]) {
        let mut w = PcapWriter::create(path, LinkType::Ethernet, false).expect("create");
        for (i, f) in frames.iter().enumerate() {
            w.write_packet(1_000_000 * (i as u64 + 1), f)
                .expect("write");
        }
        w.flush().expect("flush");
    }

    /// A lab-like trace: one client, a few servers, TCP and UDP, only the
    /// client's packets.
    fn trace() -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.pcap");
        let spec = TraceSpec {
            packets: 1_500,
            flows: 120,
            seed: 3,
            inside_net: ([10, 0, 1, 2], 32),
            outside_net: ([10, 0, 2, 8], 29),
            reply_fraction: 0.0,
            concurrency: 32,
            ..TraceSpec::default()
        };
        let mut w = PcapWriter::create(&p, LinkType::Ethernet, false).expect("create");
        generate(&spec, &mut w).expect("generate");
        w.flush().expect("flush");
        read_frames(&p)
            .expect("read")
            .into_iter()
            .filter(|f| f[14 + 12..14 + 16] == [10, 0, 1, 2])
            .collect()
    }

    fn dec_ttl(ip: &mut [u8]) {
        let old = u16::from_be_bytes([ip[8], ip[9]]);
        ip[8] -= 1;
        let ck = checksum_update16(
            be16(ip, 10).unwrap(),
            old,
            u16::from_be_bytes([ip[8], ip[9]]),
        );
        ip[10..12].copy_from_slice(&ck.to_be_bytes());
    }

    /// A model NAT: translates each flow to `port(flow number)`, decrements
    /// the TTL; returns (outbound, inbound) as the lab captures them (the
    /// inbound after a mirror).
    fn nat(frames: &[Vec<u8>], port: impl Fn(usize, usize) -> u16) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut flows: HashMap<Flow, usize> = HashMap::new();
        let (mut out, mut inb) = (Vec::new(), Vec::new());
        for (k, f) in frames.iter().enumerate() {
            let p = Pkt::parse(f).expect("parse");
            let n = flows.len();
            let flow = *flows.entry(p.flow()).or_insert(n);
            let mut o = f.clone();
            o[..12].copy_from_slice(&[2, 0, 0, 0, 2, 2, 2, 0, 0, 0, 2, 1]);
            let ip = &mut o[14..];
            assert!(set_ipv4_addr(ip, false, PUB) && set_l4_port(ip, false, port(flow, k)));
            dec_ttl(ip);
            out.push(o.clone());
            assert!(EtherMirror::mirror(&mut o) && IpMirror::mirror(&mut o[14..]));
            o[..12].copy_from_slice(&[2, 0, 0, 0, 1, 2, 2, 0, 0, 0, 1, 1]);
            let ip = &mut o[14..];
            assert!(set_ipv4_addr(ip, true, p.src) && set_l4_port(ip, true, p.sport));
            dec_ttl(ip);
            inb.push(o);
        }
        (out, inb)
    }

    struct Lab {
        _dir: tempfile::TempDir,
        args: ParityArgs,
    }

    /// Writes the trace and both NATs' captures; returns the arguments.
    fn lab(
        t: &[Vec<u8>],
        a: &(Vec<Vec<u8>>, Vec<Vec<u8>>),
        b: &(Vec<Vec<u8>>, Vec<Vec<u8>>),
    ) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| dir.path().join(n);
        write(&p("trace.pcap"), t);
        write(&p("a-out.pcap"), &a.0);
        write(&p("a-in.pcap"), &a.1);
        write(&p("b-out.pcap"), &b.0);
        write(&p("b-in.pcap"), &b.1);
        let args = ParityArgs {
            trace: p("trace.pcap"),
            a_out: p("a-out.pcap"),
            a_in: Some(p("a-in.pcap")),
            b_out: p("b-out.pcap"),
            b_in: Some(p("b-in.pcap")),
            a_name: "ours".into(),
            b_name: "kernel".into(),
            ignore: Vec::new(),
            fields: false,
            json: false,
        };
        Lab { _dir: dir, args }
    }

    fn report(l: &Lab) -> Report {
        let mut ignore: BTreeMap<Dir, BTreeSet<String>> = BTreeMap::new();
        ignore.insert(
            Dir::Out,
            ALWAYS_IGNORED_OUT.iter().map(|s| s.to_string()).collect(),
        );
        for i in &l.args.ignore {
            let (d, f) = i.split_once(':').expect("dir:field");
            let d = if d == "out" { Dir::Out } else { Dir::In };
            ignore.entry(d).or_default().insert(f.to_string());
        }
        let a = &l.args;
        let dirs = vec![
            (Dir::Out, a.a_out.clone(), a.b_out.clone()),
            (
                Dir::In,
                a.a_in.clone().expect("a_in"),
                a.b_in.clone().expect("b_in"),
            ),
        ];
        let trace = Trace::new(&read_frames(&a.trace).expect("trace"), &a.trace).expect("trace");
        Report::build(&trace, a, &dirs, &ignore).expect("report")
    }

    fn ports_kept(frames: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let sports: Vec<u16> = frames.iter().map(|f| be16(f, 34).unwrap()).collect();
        nat(frames, |_, k| sports[k])
    }

    #[test]
    fn nats_that_differ_only_in_the_chosen_port_are_at_parity() {
        let t = trace();
        let ours = nat(&t, |flow, _| 1024 + flow as u16);
        let kernel = ports_kept(&t);
        let r = report(&lab(&t, &ours, &kernel));
        assert!(r.failures.is_empty(), "{:#?}", r.lines);
        let out = &r.json["directions"]["out"];
        assert_eq!(out["pairs"], json!(t.len()));
        assert_eq!(
            out["captures"]["kernel"]["translations"]["source_port_kept"],
            json!(out["captures"]["kernel"]["translations"]["flows"])
        );
        assert_eq!(
            out["captures"]["ours"]["translations"]["source_port_kept"],
            json!(0)
        );
        assert_eq!(r.json["directions"]["in"]["equal"], json!(t.len()));
        let changed = &out["captures"]["ours"]["changed_vs_trace"];
        for f in [
            "eth.dst", "eth.src", "ip.ttl", "ip.csum", "ip.src", "l4.sport", "l4.csum",
        ] {
            assert!(changed.get(f).is_some(), "{f}: {changed}");
        }
        assert!(changed.get("ip.id").is_none());
    }

    #[test]
    fn a_header_difference_is_reported_per_field_and_fails() {
        let t = trace();
        let ours = nat(&t, |flow, _| 2000 + flow as u16);
        let mut kernel = ports_kept(&t);
        // The kernel keeps TTL 64 on one packet each way.
        for v in [&mut kernel.0, &mut kernel.1] {
            let ip = &mut v[7][14..];
            let old = u16::from_be_bytes([ip[8], ip[9]]);
            ip[8] += 1;
            let ck = checksum_update16(
                be16(ip, 10).unwrap(),
                old,
                u16::from_be_bytes([ip[8], ip[9]]),
            );
            ip[10..12].copy_from_slice(&ck.to_be_bytes());
        }
        let l = lab(&t, &ours, &kernel);
        let r = report(&l);
        assert_eq!(r.failures.len(), 2, "{:#?}", r.failures);
        assert!(
            r.failures[0].contains("out: 1 packets differ (ip.csum, ip.ttl)"),
            "{:?}",
            r.failures
        );
        assert_eq!(
            r.json["directions"]["in"]["differing_fields"]["ip.ttl"],
            json!(1)
        );
        // Ignoring the field (and the checksum it changes) makes it pass.
        let mut l = l;
        l.args.ignore = ["out:ip.ttl", "out:ip.csum", "in:ip.ttl", "in:ip.csum"]
            .map(String::from)
            .to_vec();
        assert!(report(&l).failures.is_empty());
    }

    #[test]
    fn lost_extra_and_remapped_packets_fail() {
        let t = trace();
        let ours = nat(&t, |flow, _| 3000 + flow as u16);
        let mut kernel = ports_kept(&t);
        kernel.0.remove(10);
        kernel.1.push(icmp());
        let r = report(&lab(&t, &ours, &kernel));
        let all = r.failures.join("\n");
        assert!(all.contains("out kernel: 1 trace packets missing"), "{all}");
        assert!(
            all.contains("out: 1 packets only from ours, 0 only from kernel"),
            "{all}"
        );
        assert!(
            all.contains("in kernel: 1 packets not from the trace"),
            "{all}"
        );
        assert_eq!(r.json["directions"]["out"]["only_a"], json!(1));

        // A flow that moves to another port half-way, and all flows on one port.
        let remap = nat(&t, |flow, k| {
            if flow == 0 && k > 40 {
                9999
            } else {
                4000 + flow as u16
            }
        });
        let r = report(&lab(&t, &ours, &remap));
        assert!(
            r.failures
                .iter()
                .any(|f| f.contains("out kernel: 1 flows translated to more than one")),
            "{:#?}",
            r.failures
        );
        let one_port = nat(&t, |_, _| 5000);
        let r = report(&lab(&t, &ours, &one_port));
        assert!(
            r.failures
                .iter()
                .any(|f| f.contains("5-tuples shared by several flows")),
            "{:#?}",
            r.failures
        );
        assert!(
            r.json["directions"]["out"]["captures"]["kernel"]["translations"]
                ["shared_public_ports"]
                .as_u64()
                == Some(2)
        );
    }

    #[test]
    fn an_inbound_packet_not_translated_back_fails() {
        let t = trace();
        let ours = nat(&t, |flow, _| 1024 + flow as u16);
        let mut kernel = ports_kept(&t);
        let ip = &mut kernel.1[3][14..];
        assert!(set_l4_port(ip, true, 1));
        let r = report(&lab(&t, &ours, &kernel));
        assert!(
            r.failures
                .iter()
                .any(|f| f.contains("in kernel: 1 packets not translated back")),
            "{:#?}",
            r.failures
        );
    }

    fn icmp() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 28];
        f[12] = 8;
        f[14] = 0x45;
        f[17] = 28;
        f[22] = 64;
        f[23] = 1;
        f[26..30].copy_from_slice(&[10, 0, 2, 1]);
        f[30..34].copy_from_slice(&[10, 0, 1, 2]);
        f
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("junk.pcap");
        std::fs::write(&p, b"not a pcap at all").expect("write");
        assert!(read_frames(&p).is_err());
        // A trace with a packet that is no TCP/UDP.
        write(&p, &[icmp()]);
        let e = Trace::new(&read_frames(&p).expect("read"), &p)
            .err()
            .expect("error");
        assert!(
            e.to_string().contains("is not Ethernet/IPv4 TCP or UDP"),
            "{e}"
        );
        // Truncated headers and lengths anywhere: parse says why.
        let t = trace();
        for f in t.iter().take(50) {
            for cut in 0..f.len().min(80) {
                let _ = Pkt::parse(&f[..cut]);
            }
            let mut g = f.clone();
            g[14] = 0x4f;
            let _ = Pkt::parse(&g);
            g[14 + 20 + 12] = 0xf0;
            let _ = Pkt::parse(&g);
        }
    }
}
