//! Click's `IPRewriter`: TCP/UDP network address and port translation with
//! a flow table shared by every worker.

use ftmb_core::config::Span;
use ftmb_core::element::element;
use ftmb_core::headers::{proto, rewrite_flow, FlowId, Ipv4View};
use ftmb_core::shared::FlowMap;
use ftmb_core::shared::{CodecError, Shared, StateCodec};
use ftmb_core::{Args, Built, ConfigError, Ctx, Element, InitCtx, Out, Packet, Ports, Value};
use std::collections::hash_map::Entry as Slot;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Number of lock domains (slots) the flow table is split into.
pub const NSLOTS: usize = 1024;

/// At most this many expired entries are reaped per packet (the rest wait
/// for the next packet that touches the bucket).
const MAX_REAP_PER_PACKET: usize = 32;

/// Slots scanned (forcibly reaped) when the table is at capacity.
const CAPACITY_REAP_SLOTS: usize = 4;

const CLASS: &str = "IPRewriter";

const TCP_DONE: u8 = 1;
const TCP_DATA: u8 = 2;
const TCP_RST: u8 = 4;

const NS: u64 = 1_000_000_000;

/// One direction of a mapping, stored under the flow id its packets arrive
/// with. A mapping has two entries: the forward entry (keyed by the
/// original flow) and the reply entry (keyed by the reverse of the rewritten
/// flow); each names the other as `peer`. A packet that hits an entry is
/// rewritten to `peer.reverse()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Key of the other direction's entry.
    pub peer: FlowId,
    /// Mapping id (the same in both entries; tells a mapping from a later
    /// one with the same keys).
    pub id: u64,
    /// True for the reply entry.
    pub reply: bool,
    /// Output port for packets of this direction.
    pub output: u16,
    /// Input port whose spec created the mapping.
    pub input: u16,
    /// Last packet time in this direction (ns; creation time at first).
    pub last: u64,
    /// This direction's state: TCP FIN/data/RST flags, or for UDP the
    /// packet count (saturating at 3).
    pub state: u8,
    /// Last known `last` of the peer entry (refreshed by the reaper).
    pub peer_last: u64,
    /// Last known `state` of the peer entry.
    pub peer_state: u8,
}

/// One slot of the flow table: its entries and when it was last reaped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Entries by the flow id packets arrive with (protocol included).
    pub map: FlowMap<FlowId, Entry>,
    /// Time (ns) of the last reap of this bucket.
    pub last_reap: u64,
}

impl Entry {
    /// Bytes of one encoded entry.
    const BYTES: usize = FlowId::BYTES + 8 + 1 + 2 + 2 + 8 + 1 + 8 + 1;

    /// The snapshot encoding, fields in declaration order, little-endian.
    #[inline]
    fn to_bytes(&self) -> [u8; Entry::BYTES] {
        let mut b = [0u8; Entry::BYTES];
        b[..13].copy_from_slice(&self.peer.to_bytes());
        b[13..21].copy_from_slice(&self.id.to_le_bytes());
        b[21] = u8::from(self.reply);
        b[22..24].copy_from_slice(&self.output.to_le_bytes());
        b[24..26].copy_from_slice(&self.input.to_le_bytes());
        b[26..34].copy_from_slice(&self.last.to_le_bytes());
        b[34] = self.state;
        b[35..43].copy_from_slice(&self.peer_last.to_le_bytes());
        b[43] = self.peer_state;
        b
    }

    /// The inverse of [`Entry::to_bytes`].
    #[inline]
    fn from_bytes(b: &[u8; Entry::BYTES]) -> Entry {
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let mut peer = [0u8; FlowId::BYTES];
        peer.copy_from_slice(&b[..13]);
        Entry {
            peer: FlowId::from_bytes(&peer),
            id: u64_at(13),
            reply: b[21] != 0,
            output: u16::from_le_bytes([b[22], b[23]]),
            input: u16::from_le_bytes([b[24], b[25]]),
            last: u64_at(26),
            state: b[34],
            peer_last: u64_at(35),
            peer_state: b[43],
        }
    }
}

/// Bytes of one table record: the key, then its entry.
const RECORD: usize = FlowId::BYTES + Entry::BYTES;

impl Bucket {
    /// Header, then one fixed-size record per entry (a snapshot encodes
    /// and loads a table of 100k flows: this is the hot loop of both).
    fn encode_entries<'a>(
        &self,
        out: &mut Vec<u8>,
        entries: impl Iterator<Item = (&'a FlowId, &'a Entry)>,
    ) {
        self.last_reap.encode(out);
        (self.map.len() as u64).encode(out);
        out.reserve(self.map.len() * RECORD);
        for (k, e) in entries {
            out.extend_from_slice(&k.to_bytes());
            out.extend_from_slice(&e.to_bytes());
        }
    }

    /// The entry count, then that many records: the records' bytes,
    /// advancing `inp` past them.
    fn records<'a>(inp: &mut &'a [u8]) -> Result<&'a [u8], CodecError> {
        let n = u64::decode(inp)?;
        let bytes = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(RECORD))
            .filter(|&b| b <= inp.len())
            .ok_or_else(|| {
                CodecError(format!(
                    "{CLASS} bucket: {n} entries, {} bytes left",
                    inp.len()
                ))
            })?;
        let (records, rest) = inp.split_at(bytes);
        *inp = rest;
        Ok(records)
    }
}

impl StateCodec for Bucket {
    /// Entries in key order, so equal buckets encode to equal bytes.
    fn encode(&self, out: &mut Vec<u8>) {
        let mut entries: Vec<(u128, &FlowId, &Entry)> = self
            .map
            .iter()
            .map(|(k, e)| (k.order_key(), k, e))
            .collect();
        entries.sort_unstable_by_key(|&(o, _, _)| o);
        self.encode_entries(out, entries.into_iter().map(|(_, k, e)| (k, e)));
    }
    /// Entries in the map's own order.
    fn encode_any_order(&self, out: &mut Vec<u8>) {
        self.encode_entries(out, self.map.iter());
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        let last_reap = u64::decode(inp)?;
        let records = Self::records(inp)?;
        let mut map = FlowMap::with_capacity_and_hasher(records.len() / RECORD, Default::default());
        for r in records.chunks_exact(RECORD) {
            let (k, e) = r.split_at(FlowId::BYTES);
            let (Ok(k), Ok(e)) = (k.try_into(), e.try_into()) else {
                unreachable!("chunks of exactly RECORD bytes split at FlowId::BYTES");
            };
            map.insert(FlowId::from_bytes(k), Entry::from_bytes(e));
        }
        Ok(Bucket { map, last_reap })
    }
    fn skip(inp: &mut &[u8]) -> Result<(), CodecError> {
        u64::decode(inp)?;
        Self::records(inp).map(drop)
    }
}

/// Timeouts in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timeouts {
    tcp_data: u64,
    tcp_nodata: u64,
    tcp_done: u64,
    tcp_guarantee: u64,
    udp: u64,
    udp_streaming: u64,
    udp_guarantee: u64,
    reap_interval: u64,
}

impl Timeouts {
    /// The idle timeout of a mapping whose forward entry has state `f` and
    /// reply entry state `r` (Click's `tcp_flow_timeout` /
    /// `udp_flow_timeout`), never below the guarantee.
    fn idle(&self, protocol: u8, f: u8, r: u8) -> u64 {
        if protocol == proto::TCP {
            let done = (f | r) & TCP_RST != 0 || (f & TCP_DONE != 0 && r & TCP_DONE != 0);
            let t = if done {
                self.tcp_done
            } else if f & TCP_DATA != 0 && r & TCP_DATA != 0 {
                self.tcp_data
            } else {
                self.tcp_nodata
            };
            t.max(self.tcp_guarantee)
        } else {
            let streaming = f + r >= 3 && r >= 1;
            let t = if streaming {
                self.udp_streaming
            } else {
                self.udp
            };
            t.max(self.udp_guarantee)
        }
    }

    /// True when the mapping (forward state `f`, reply state `r`, last
    /// packet at `last`) is expired at `now` (Click: `!(now < expiry)`).
    fn expired(&self, protocol: u8, f: u8, r: u8, last: u64, now: u64) -> bool {
        now >= last.saturating_add(self.idle(protocol, f, r))
    }

    /// The shortest idle timeout a mapping of `protocol` can have, whatever
    /// state its other direction is in.
    fn min_idle(&self, protocol: u8) -> u64 {
        if protocol == proto::TCP {
            self.tcp_done
                .min(self.tcp_data)
                .min(self.tcp_nodata)
                .max(self.tcp_guarantee)
        } else {
            self.udp.min(self.udp_streaming).max(self.udp_guarantee)
        }
    }

    /// Whether an entry may be expired, by what it knows: its last known
    /// packet time in either direction plus the shortest timeout (its copy
    /// of the peer's state may be stale, so the reaper checks the peer).
    fn entry_may_be_expired(&self, key: &FlowId, e: &Entry, now: u64) -> bool {
        now >= e
            .last
            .max(e.peer_last)
            .saturating_add(self.min_idle(key.proto))
    }
}

impl Bucket {
    /// When a reap is due (or `force`), the entries that look expired by
    /// their own knowledge, in key order, at most [`MAX_REAP_PER_PACKET`].
    fn reap_candidates(&mut self, t: &Timeouts, now: u64, force: bool) -> Vec<(FlowId, Entry)> {
        if !force && now < self.last_reap.saturating_add(t.reap_interval) {
            return Vec::new();
        }
        let mut c: Vec<(FlowId, Entry)> = self
            .map
            .iter()
            .filter(|(k, e)| t.entry_may_be_expired(k, e, now))
            .map(|(k, e)| (*k, e.clone()))
            .collect();
        c.sort_by_key(|a| a.0);
        if c.len() > MAX_REAP_PER_PACKET {
            // Leave last_reap alone: the next packet here goes on reaping.
            c.truncate(MAX_REAP_PER_PACKET);
        } else {
            self.last_reap = now;
        }
        c
    }
}

/// Where a spec's variation (a source port or address range) applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VarKind {
    Port,
    Addr,
}

/// A range of source ports or addresses to choose from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Variation {
    kind: VarKind,
    base: u32,
    top: u32,
    sequential: bool,
    same_first: bool,
}

impl Variation {
    /// `base` with variation `val` applied (before reversing into the
    /// reply key).
    fn apply(&self, mut base: FlowId, val: u32) -> FlowId {
        match self.kind {
            VarKind::Port => base.sport = (self.base + val) as u16,
            VarKind::Addr => base.saddr = self.base.wrapping_add(val).to_be_bytes(),
        }
        base
    }
}

/// `SADDR SPORT DADDR DPORT`, `None` fields unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    saddr: Option<[u8; 4]>,
    sport: Option<u16>,
    daddr: Option<[u8; 4]>,
    dport: Option<u16>,
    variation: Option<Variation>,
}

impl Pattern {
    /// `flow` with the pattern's fixed fields written over it.
    fn apply(&self, mut flow: FlowId) -> FlowId {
        if let Some(a) = self.saddr {
            flow.saddr = a;
        }
        if let Some(sp) = self.sport {
            flow.sport = sp;
        }
        if let Some(a) = self.daddr {
            flow.daddr = a;
        }
        if let Some(dp) = self.dport {
            flow.dport = dp;
        }
        flow
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum InputSpec {
    Drop,
    Pass(usize),
    Keep(usize, usize),
    Pattern(Pattern, usize, usize),
}

impl InputSpec {
    fn max_output(&self) -> usize {
        match self {
            InputSpec::Drop => 0,
            InputSpec::Pass(n) => *n,
            InputSpec::Keep(f, r) | InputSpec::Pattern(_, f, r) => (*f).max(*r),
        }
    }
}

fn spec_err(span: Span, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("{CLASS}: {}", msg.into()), span)
}

fn parse_output(w: &str, span: Span) -> Result<usize, ConfigError> {
    w.parse::<u16>()
        .map(usize::from)
        .map_err(|_| spec_err(span, format!("`{w}` is not an output port number")))
}

fn parse_addr(w: &str, span: Span) -> Result<[u8; 4], ConfigError> {
    w.parse::<Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|_| spec_err(span, format!("`{w}` is not an IPv4 address")))
}

/// Strip a `#` (sequential) or `?` (random, not same-first) suffix.
fn variation_flags(w: &str) -> (&str, bool, bool) {
    if let Some(x) = w.strip_suffix('#') {
        (x, true, false)
    } else if let Some(x) = w.strip_suffix('?') {
        (x, false, false)
    } else {
        (w, false, true)
    }
}

fn parse_pattern(words: &[&str], span: Span) -> Result<Pattern, ConfigError> {
    let (sa, sp, da, dp) = match words {
        [sa, sp, da, dp] => (*sa, Some(*sp), *da, Some(*dp)),
        [sa, da] => (*sa, None, *da, None),
        [_] => {
            return Err(spec_err(
                span,
                "named patterns (IPRewriterPatterns) are not supported",
            )
            .with_help("write the pattern out: pattern SADDR SPORT DADDR DPORT FOUTPUT ROUTPUT"))
        }
        _ => {
            return Err(spec_err(
                span,
                "expected `pattern SADDR SPORT DADDR DPORT FOUTPUT ROUTPUT`",
            ))
        }
    };
    let mut variation = None;
    let mut saddr = None;
    if sa != "-" {
        let (w, sequential, same_first) = variation_flags(sa);
        if let Some((a, b)) = w.split_once('-') {
            let (a, b) = (parse_addr(a, span)?, parse_addr(b, span)?);
            let (a, b) = (u32::from_be_bytes(a), u32::from_be_bytes(b));
            if a > b {
                return Err(spec_err(span, format!("bad address range `{sa}`")));
            }
            saddr = Some(a.to_be_bytes());
            variation = Some(Variation {
                kind: VarKind::Addr,
                base: a,
                top: b - a,
                sequential,
                same_first,
            });
        } else if let Some((a, l)) = w.split_once('/') {
            let a = u32::from_be_bytes(parse_addr(a, span)?);
            let len = l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= 32)
                .ok_or_else(|| spec_err(span, format!("bad prefix length in `{sa}`")))?;
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let (base, top) = if len >= 31 {
                (a & mask, !mask)
            } else {
                ((a & mask) | 1, !mask - 2)
            };
            saddr = Some(base.to_be_bytes());
            variation = Some(Variation {
                kind: VarKind::Addr,
                base,
                top,
                sequential,
                same_first,
            });
        } else {
            if w.len() != sa.len() {
                return Err(spec_err(span, format!("`{sa}`: `#`/`?` need a range")));
            }
            saddr = Some(parse_addr(w, span)?);
        }
    }
    let mut sport = None;
    if let Some(sp) = sp.filter(|w| *w != "-") {
        let (w, sequential, same_first) = variation_flags(sp);
        let bad = || spec_err(span, format!("bad source port `{sp}`"));
        if let Some((l, h)) = w.split_once('-') {
            let l = l.parse::<u16>().map_err(|_| bad())?;
            let h = h.parse::<u16>().map_err(|_| bad())?;
            if l > h {
                return Err(bad());
            }
            if variation.is_some() {
                return Err(spec_err(
                    span,
                    "only one of the source address and port may vary",
                ));
            }
            sport = Some(l);
            variation = Some(Variation {
                kind: VarKind::Port,
                base: u32::from(l),
                top: u32::from(h - l),
                sequential,
                same_first,
            });
        } else {
            if w.len() != sp.len() {
                return Err(spec_err(span, format!("`{sp}`: `#`/`?` need a range")));
            }
            let p = w.parse::<u16>().map_err(|_| bad())?;
            if p == 0 {
                return Err(bad().with_help("a single source port must be 1 to 65535"));
            }
            sport = Some(p);
        }
    }
    let daddr = if da == "-" {
        None
    } else {
        Some(parse_addr(da, span)?)
    };
    let dport = match dp.filter(|w| *w != "-") {
        None => None,
        Some(w) => match w.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => return Err(spec_err(span, format!("bad destination port `{w}`"))),
        },
    };
    Ok(Pattern {
        saddr,
        sport,
        daddr,
        dport,
        variation,
    })
}

fn parse_spec(text: &str, span: Span) -> Result<InputSpec, ConfigError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some((&kw, rest)) = words.split_first() else {
        return Err(spec_err(span, "empty input spec"));
    };
    match kw {
        "pass" | "passthrough" | "nochange" => match rest {
            [] => Ok(InputSpec::Pass(0)),
            [n] => Ok(InputSpec::Pass(parse_output(n, span)?)),
            _ => Err(spec_err(span, "expected `pass [OUTPUT]`")),
        },
        "drop" | "discard" => {
            if rest.is_empty() {
                Ok(InputSpec::Drop)
            } else {
                Err(spec_err(span, format!("`{kw}` takes no arguments")))
            }
        }
        "keep" => match rest {
            [f, r] => Ok(InputSpec::Keep(
                parse_output(f, span)?,
                parse_output(r, span)?,
            )),
            _ => Err(spec_err(span, "expected `keep FOUTPUT ROUTPUT`")),
        },
        "pattern" | "xpattern" => {
            if rest.len() < 3 {
                return Err(spec_err(
                    span,
                    "expected `pattern SADDR SPORT DADDR DPORT FOUTPUT ROUTPUT`",
                ));
            }
            let (pw, outs) = rest.split_at(rest.len() - 2);
            let p = parse_pattern(pw, span)?;
            Ok(InputSpec::Pattern(
                p,
                parse_output(outs[0], span)?,
                parse_output(outs[1], span)?,
            ))
        }
        _ => Err(spec_err(span, format!("unknown input specification `{kw}`"))
            .with_help("expected pass [N], drop, keep FOUT ROUT or pattern SADDR SPORT DADDR DPORT FOUT ROUT")),
    }
}

/// What the rewriter needs from a TCP/UDP first fragment.
#[derive(Clone, Copy, Debug)]
struct PktInfo {
    flow: FlowId,
    tcp_flags: u8,
    payload: bool,
}

/// The flow of a TCP/UDP packet the rewriter handles: IPv4, TCP or UDP,
/// first fragment, at least 8 transport bytes; else `None`.
fn classify(ip: &[u8]) -> Option<PktInfo> {
    let v = Ipv4View::new(ip)?;
    let protocol = v.protocol();
    if (protocol != proto::TCP && protocol != proto::UDP) || v.frag_offset() != 0 {
        return None;
    }
    let l4 = v.payload();
    if l4.len() < 8 {
        return None;
    }
    let flow = FlowId::of_ipv4(ip)?;
    let (tcp_flags, payload) = if protocol == proto::TCP {
        let flags = l4.get(13).copied().unwrap_or(0);
        let off = l4.get(12).map_or(0, |b| usize::from(b >> 4) * 4);
        (flags, v.header_len() + off < usize::from(v.total_len()))
    } else {
        (0, false)
    };
    Some(PktInfo {
        flow,
        tcp_flags,
        payload,
    })
}

/// Update a direction's state for one packet (Click's `TCPFlow::apply` /
/// `UDPFlow::apply`, split by direction).
fn apply_state(state: u8, info: &PktInfo) -> u8 {
    if info.flow.proto != proto::TCP {
        return (state + 1).min(3);
    }
    let mut s = state;
    if info.tcp_flags & 0x04 != 0 {
        s |= TCP_RST;
    } else if info.tcp_flags & 0x01 != 0 {
        s |= TCP_DONE;
    } else if info.tcp_flags & 0x02 != 0 || info.payload {
        s &= !(TCP_DONE | TCP_RST);
    }
    if info.payload {
        s |= TCP_DATA;
    }
    s
}

fn slot_of(f: &FlowId) -> usize {
    (f.hash64() % NSLOTS as u64) as usize
}

/// The IP header of `pkt`: at the network-header annotation, or the packet
/// data when the annotation is unset.
fn ip_of(pkt: &Packet) -> &[u8] {
    pkt.ip_or_data()
}

fn ip_of_mut(pkt: &mut Packet) -> Option<&mut [u8]> {
    match pkt.anno.net_off {
        Some(_) => pkt.ip_mut(),
        None => Some(pkt.data_mut()),
    }
}

/// What a hit on an entry tells the packet path.
#[derive(Clone, Copy, Debug)]
struct Hit {
    to: FlowId,
    output: usize,
}

enum ReapPeer {
    Alive(u64, u8),
    Removed,
    Gone,
}

/// `IPRewriter(INPUTSPEC0, ..., [KEYWORDS])`: rewrite TCP and UDP flows'
/// addresses and ports (NAT/NAPT), as Click's `IPRewriter`.
///
/// # Configuration
/// One input spec per input port:
/// - `drop` / `discard`: packets without a mapping are dropped.
/// - `pass [N]` (also `passthrough`, `nochange`): packets without a mapping
///   leave unchanged on output N (default 0); no mapping is made.
/// - `keep FOUTPUT ROUTPUT`: make an identity mapping.
/// - `pattern SADDR SPORT DADDR DPORT FOUTPUT ROUTPUT` (also `xpattern`;
///   or `pattern SADDR DADDR FOUTPUT ROUTPUT`): make a mapping that
///   rewrites the flow's fields; `-` leaves a field unchanged. SPORT may be
///   a range `L-H` and SADDR a range `A-B` or prefix `A/LEN` (only one may
///   vary). Without suffix the packet's own source port is tried first when
///   inside the range, then a random point in the range, stepping up with
///   wraparound; suffix `?` skips the own-port try; suffix `#` allocates
///   sequentially (per worker). A candidate is free when the reverse of the
///   rewritten flow is not in the table (so the choice is per destination).
///
/// Keywords (times in seconds or with a unit): `TCP_TIMEOUT` / `TIMEOUT`
/// (24 h, both directions saw data), `TCP_NODATA_TIMEOUT` (5 min),
/// `TCP_DONE_TIMEOUT` (4 min, after FIN both ways or RST),
/// `TCP_GUARANTEE` / `GUARANTEE` (5 s), `UDP_TIMEOUT` (5 min),
/// `UDP_STREAMING_TIMEOUT` (= UDP_TIMEOUT; 3+ packets, some in reply),
/// `UDP_GUARANTEE` (5 s), `REAP_INTERVAL` / `REAP_TIME` (15 min),
/// `MAPPING_CAPACITY` / `CAPACITY` (mappings; default unlimited),
/// `DST_ANNO` (true: set the destination annotation after rewriting).
///
/// The flow table is consulted first for every TCP/UDP first fragment on
/// any input: a hit is rewritten (forward or reply direction) and leaves on
/// the mapping's FOUTPUT or ROUTPUT; only a miss uses the input's spec.
/// Other packets (non-TCP/UDP, later fragments, under 8 transport bytes)
/// skip the table: they leave on the `pass` output if their input is
/// `pass N`, else are dropped. Checksums are updated incrementally; a zero
/// UDP checksum stays zero.
///
/// Expiry follows Click: a mapping's idle timeout counts from its last
/// packet in either direction; expired mappings stay usable until reaped.
/// Each bucket is reaped lazily when a packet touches it, at most every
/// `REAP_INTERVAL`. At `MAPPING_CAPACITY`, a few random buckets are reaped
/// at once; if the table is still full the new flow fails (counted in
/// `mapping_failures`). Unexpired flows are never evicted.
///
/// # Ports
/// As many inputs as specs; outputs 0 to the highest output any spec
/// names.
///
/// # Handlers
/// `nmappings`, `table_size` (live mappings, one per connection, TCP and
/// UDP; includes expired ones not yet reaped), `capacity`,
/// `mapping_failures` (no free port, or table full).
///
/// # Shared state
/// `table`: [`NSLOTS`] buckets ([`Bucket`]) keyed by flow id, slot by
/// [`FlowId::hash64`]. A hit costs one access; a new mapping costs the
/// lookup, one access per port candidate probed (usually one: the reply
/// key is checked and inserted atomically in its slot) and one to insert
/// the forward key. Reaping an expired mapping costs two or three more.
/// `count` (one slot, only with `MAPPING_CAPACITY`): the number of
/// mappings, one access per mapping made or freed.
pub struct IpRewriter {
    specs: Vec<InputSpec>,
    noutputs: usize,
    timeouts: Timeouts,
    capacity: Option<u64>,
    dst_anno: bool,
    table: Shared<Bucket>,
    count: Option<Shared<u64>>,
    /// Worker-private: the next sequential variation, per input (`#`).
    next_variation: Vec<u32>,
    /// Worker-private: mapping failures.
    failures: u64,
}

impl IpRewriter {
    /// Rewrite `pkt` by `hit` and send it out.
    fn emit(&self, mut pkt: Packet, hit: Hit, out: &mut Out) {
        if let Some(ip) = ip_of_mut(&mut pkt) {
            rewrite_flow(ip, &hit.to);
        }
        if self.dst_anno {
            pkt.anno.dst_ip = u32::from_be_bytes(hit.to.daddr);
        }
        out.push(hit.output, pkt);
    }

    /// Remove entry `key` if it still belongs to mapping `id` (a later
    /// mapping may have taken the key); true when removed.
    fn remove_owned(&self, ctx: &mut Ctx, pkt: &mut Packet, key: FlowId, id: u64) -> bool {
        self.table.access(ctx, pkt, slot_of(&key), |b| {
            if b.map.get(&key).is_some_and(|r| r.id == id) {
                b.map.remove(&key);
                true
            } else {
                false
            }
        })
    }

    /// Reap the candidates a bucket gave out.
    fn reap(&self, ctx: &mut Ctx, pkt: &mut Packet, cands: Vec<(FlowId, Entry)>) {
        let t = self.timeouts;
        let now = ctx.now_ns();
        for (key, e) in cands {
            let freed = if e.reply {
                // Decide at the forward entry, remove it first, then us.
                let kr = key;
                let kf = e.peer;
                let res = self
                    .table
                    .access(ctx, pkt, slot_of(&kf), |b| match b.map.get(&kf) {
                        Some(f) if f.id == e.id && !f.reply && f.peer == kr => {
                            let last = f.last.max(e.last);
                            if t.expired(kf.proto, f.state, e.state, last, now) {
                                b.map.remove(&kf);
                                ReapPeer::Removed
                            } else {
                                ReapPeer::Alive(f.last, f.state)
                            }
                        }
                        _ => ReapPeer::Gone,
                    });
                self.table.access(ctx, pkt, slot_of(&kr), |b| {
                    match (b.map.get_mut(&kr), res) {
                        (Some(r), ReapPeer::Alive(l, s)) if r.id == e.id => {
                            r.peer_last = l;
                            r.peer_state = s;
                            false
                        }
                        (Some(r), _) if r.id == e.id => {
                            b.map.remove(&kr);
                            true
                        }
                        _ => false,
                    }
                })
            } else {
                let kf = key;
                let kr = e.peer;
                let rinfo = self.table.access(ctx, pkt, slot_of(&kr), |b| {
                    b.map
                        .get(&kr)
                        .filter(|r| r.id == e.id && r.reply && r.peer == kf)
                        .map(|r| (r.last, r.state))
                });
                let remove_r = self.table.access(ctx, pkt, slot_of(&kf), |b| {
                    let Some(f) = b.map.get_mut(&kf).filter(|f| f.id == e.id) else {
                        return false;
                    };
                    match rinfo {
                        None => {
                            b.map.remove(&kf);
                            false
                        }
                        Some((rl, rs)) => {
                            if t.expired(kf.proto, f.state, rs, f.last.max(rl), now) {
                                b.map.remove(&kf);
                                true
                            } else {
                                f.peer_last = rl;
                                f.peer_state = rs;
                                false
                            }
                        }
                    }
                });
                remove_r && self.remove_owned(ctx, pkt, kr, e.id)
            };
            if freed {
                self.release(ctx, pkt);
            }
        }
    }

    fn release(&self, ctx: &mut Ctx, pkt: &mut Packet) {
        if let Some(c) = &self.count {
            c.access(ctx, pkt, 0, |n| *n = n.saturating_sub(1));
        }
    }

    /// Reserve room for one mapping; at capacity, reap a few random
    /// buckets and try once more.
    fn reserve(&self, ctx: &mut Ctx, pkt: &mut Packet) -> bool {
        let (Some(c), Some(cap)) = (&self.count, self.capacity) else {
            return true;
        };
        let try_once = |ctx: &mut Ctx, pkt: &mut Packet| {
            c.access(ctx, pkt, 0, |n| {
                if *n < cap {
                    *n += 1;
                    true
                } else {
                    false
                }
            })
        };
        if try_once(ctx, pkt) {
            return true;
        }
        let t = self.timeouts;
        let now = ctx.now_ns();
        for _ in 0..CAPACITY_REAP_SLOTS {
            let s = ctx.random_below(NSLOTS as u64) as usize;
            let cands = self
                .table
                .access(ctx, pkt, s, |b| b.reap_candidates(&t, now, true));
            self.reap(ctx, pkt, cands);
        }
        try_once(ctx, pkt)
    }

    /// A miss on a `keep` or `pattern` input: make the mapping and return
    /// how to rewrite the packet, or `None` (counted as a failure). Steps:
    /// reserve capacity, claim a reply key (the pattern's, or a free one of
    /// its variation), then insert the forward entry, unless another
    /// worker mapped the flow meanwhile (then its mapping wins and the
    /// claimed key is given back).
    fn create(
        &mut self,
        ctx: &mut Ctx,
        pkt: &mut Packet,
        port: usize,
        info: &PktInfo,
        pat: Option<&Pattern>,
        (fout, rout): (usize, usize),
    ) -> Option<Hit> {
        let key = info.flow;
        let base = pat.map_or(key, |p| p.apply(key));
        if !self.reserve(ctx, pkt) {
            return None;
        }
        let now = ctx.now_ns();
        let id = ctx.random();
        let state = apply_state(0, info);
        let reply_entry = Entry {
            peer: key,
            id,
            reply: true,
            output: rout as u16,
            input: port as u16,
            last: now,
            state: 0,
            peer_last: now,
            peer_state: state,
        };
        let chosen = match pat.and_then(|p| p.variation) {
            None => self.claim_reply_key(ctx, pkt, key, base, reply_entry),
            Some(v) => self.claim_varied_reply_key(ctx, pkt, port, (key, base), &v, reply_entry),
        };
        let Some((kr, val)) = chosen else {
            self.release(ctx, pkt);
            return None;
        };
        if let Some(n) = self.next_variation.get_mut(port) {
            *n = val.wrapping_add(1);
        }
        let fwd = Entry {
            peer: kr,
            id,
            reply: false,
            output: fout as u16,
            input: port as u16,
            last: now,
            state,
            peer_last: now,
            peer_state: 0,
        };
        if let Some(hit) = self.insert_forward(ctx, pkt, key, fwd, info) {
            let freed = self.remove_owned(ctx, pkt, kr, id);
            if freed {
                self.release(ctx, pkt);
            }
            return Some(hit);
        }
        Some(Hit {
            to: kr.reverse(),
            output: fout,
        })
    }

    /// Claim the reply key of `base` (a pattern without variation), as
    /// Click's `store_flow`: an old mapping with this reply key is
    /// destroyed. `None` when the reply key is the flow's own key.
    fn claim_reply_key(
        &mut self,
        ctx: &mut Ctx,
        pkt: &mut Packet,
        key: FlowId,
        base: FlowId,
        reply_entry: Entry,
    ) -> Option<(FlowId, u32)> {
        let kr = base.reverse();
        if kr == key {
            return None;
        }
        let old = self
            .table
            .access(ctx, pkt, slot_of(&kr), |b| b.map.insert(kr, reply_entry));
        if let Some(old) = old {
            let kf = old.peer;
            self.table.access(ctx, pkt, slot_of(&kf), |b| {
                if b.map.get(&kf).is_some_and(|f| f.id == old.id) {
                    b.map.remove(&kf);
                }
            });
            self.release(ctx, pkt);
        }
        Some((kr, 0))
    }

    /// Claim a free reply key among `v`'s variations of `base`: the
    /// flow's own source port first when `same_first` asks, then from the
    /// input's next variation (sequential) or a random one, wrapping
    /// around; each probe is an atomic check-and-insert within its slot.
    /// Returns the key and the variation value it took; `key` is the
    /// flow's, `base` the pattern's fixed fields over it.
    fn claim_varied_reply_key(
        &mut self,
        ctx: &mut Ctx,
        pkt: &mut Packet,
        port: usize,
        (key, base): (FlowId, FlowId),
        v: &Variation,
        reply_entry: Entry,
    ) -> Option<(FlowId, u32)> {
        let probe = |ctx: &mut Ctx, pkt: &mut Packet, val: u32| -> Option<FlowId> {
            let kr = v.apply(base, val).reverse();
            if kr == key {
                return None;
            }
            let e = reply_entry.clone();
            let free = self
                .table
                .access(ctx, pkt, slot_of(&kr), |b| match b.map.entry(kr) {
                    Slot::Occupied(_) => false,
                    Slot::Vacant(v) => {
                        v.insert(e);
                        true
                    }
                });
            free.then_some(kr)
        };
        let own = u32::from(key.sport).wrapping_sub(v.base);
        if v.same_first && v.kind == VarKind::Port && own <= v.top {
            if let Some(k) = probe(ctx, pkt, own) {
                return Some((k, own));
            }
        }
        let mut val = if v.sequential {
            let n = self.next_variation.get(port).copied().unwrap_or(0);
            if n > v.top {
                0
            } else {
                n
            }
        } else {
            ctx.random_below(u64::from(v.top) + 1) as u32
        };
        for _ in 0..=u64::from(v.top) {
            if let Some(k) = probe(ctx, pkt, val) {
                return Some((k, val));
            }
            val = if val == v.top { 0 } else { val + 1 };
        }
        None
    }

    /// Insert the forward entry `fwd` under `key`, unless another worker
    /// made a mapping for this flow meanwhile: then that one is refreshed
    /// and returned.
    fn insert_forward(
        &mut self,
        ctx: &mut Ctx,
        pkt: &mut Packet,
        key: FlowId,
        fwd: Entry,
        info: &PktInfo,
    ) -> Option<Hit> {
        let now = fwd.last;
        self.table.access(ctx, pkt, slot_of(&key), |b| {
            if let Some(e) = b.map.get_mut(&key) {
                e.last = now;
                e.state = apply_state(e.state, info);
                Some(Hit {
                    to: e.peer.reverse(),
                    output: usize::from(e.output),
                })
            } else {
                b.map.insert(key, fwd);
                None
            }
        })
    }

    fn nmappings(&self) -> u64 {
        self.table
            .inspect(|b| b.map.values().filter(|e| e.reply).count() as u64)
            .into_iter()
            .sum()
    }
}

impl Element for IpRewriter {
    fn ports(&self) -> Ports {
        Ports::fixed(self.specs.len(), self.noutputs)
    }

    fn push(&mut self, ctx: &mut Ctx, port: usize, mut pkt: Packet, out: &mut Out) {
        let Some(spec) = self.specs.get(port) else {
            out.drop(pkt, "no such input port");
            return;
        };
        let Some(info) = classify(ip_of(&pkt)) else {
            match *spec {
                InputSpec::Pass(n) => out.push(n, pkt),
                _ => out.drop(pkt, "not a TCP/UDP first fragment"),
            }
            return;
        };
        let key = info.flow;
        let now = ctx.now_ns();
        let t = self.timeouts;
        let (hit, cands) = self.table.access(ctx, &mut pkt, slot_of(&key), |b| {
            let hit = b.map.get_mut(&key).map(|e| {
                e.last = now;
                e.state = apply_state(e.state, &info);
                Hit {
                    to: e.peer.reverse(),
                    output: usize::from(e.output),
                }
            });
            (hit, b.reap_candidates(&t, now, false))
        });
        if !cands.is_empty() {
            self.reap(ctx, &mut pkt, cands);
        }
        if let Some(hit) = hit {
            self.emit(pkt, hit, out);
            return;
        }
        let made = match &self.specs[port].clone() {
            InputSpec::Drop => {
                out.drop(pkt, "no mapping (drop input)");
                return;
            }
            InputSpec::Pass(n) => {
                out.push(*n, pkt);
                return;
            }
            InputSpec::Keep(f, r) => self.create(ctx, &mut pkt, port, &info, None, (*f, *r)),
            InputSpec::Pattern(p, f, r) => {
                self.create(ctx, &mut pkt, port, &info, Some(p), (*f, *r))
            }
        };
        match made {
            Some(hit) => self.emit(pkt, hit, out),
            None => {
                self.failures += 1;
                out.drop(pkt, "mapping failure");
            }
        }
    }

    fn stats(&self) -> Vec<(&'static str, Value)> {
        let n = self.nmappings().to_string();
        vec![
            ("nmappings", Value::Shared(n.clone())),
            ("table_size", Value::Shared(n)),
            (
                "capacity",
                Value::Shared(self.capacity.unwrap_or(0x7FFF_FFFF).to_string()),
            ),
            ("mapping_failures", Value::Count(self.failures)),
        ]
    }

    fn save_state(&self, out: &mut Vec<u8>) {
        self.failures.encode(out);
        self.next_variation.encode(out);
    }

    fn load_state(&mut self, mut buf: &[u8]) -> Result<(), String> {
        let failures = u64::decode(&mut buf).map_err(|e| e.to_string())?;
        let nv = Vec::<u32>::decode(&mut buf).map_err(|e| e.to_string())?;
        if nv.len() != self.specs.len() {
            return Err(format!(
                "{CLASS}: state has {} inputs, configuration has {}",
                nv.len(),
                self.specs.len()
            ));
        }
        self.failures = failures;
        self.next_variation = nv;
        Ok(())
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn time_kw(a: &mut Args, keys: &[&str], default_s: u64) -> Result<u64, ConfigError> {
    // Every synonym is consumed; the first in `keys` that is given wins.
    let mut found = None;
    for k in keys {
        let v = a.keyword::<Duration>(k)?;
        if found.is_none() {
            found = v;
        }
    }
    Ok(found.map_or(default_s * NS, ns))
}

pub(crate) fn build_ip_rewriter(a: &mut Args, ctx: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let tcp_data = time_kw(a, &["TCP_TIMEOUT", "TIMEOUT"], 86_400)?;
    let tcp_nodata = time_kw(a, &["TCP_NODATA_TIMEOUT"], 300)?;
    let tcp_done = time_kw(a, &["TCP_DONE_TIMEOUT"], 240)?;
    let tcp_guarantee = time_kw(a, &["TCP_GUARANTEE", "GUARANTEE"], 5)?;
    let udp = time_kw(a, &["UDP_TIMEOUT"], 300)?;
    let udp_streaming = a
        .keyword::<Duration>("UDP_STREAMING_TIMEOUT")?
        .map_or(udp, ns);
    let udp_guarantee = time_kw(a, &["UDP_GUARANTEE"], 5)?;
    let reap_interval = time_kw(a, &["REAP_INTERVAL", "REAP_TIME"], 15 * 60)?;
    let mut capacity = None;
    for k in ["MAPPING_CAPACITY", "CAPACITY"] {
        if let Some(c) = a.keyword::<u64>(k)? {
            capacity.get_or_insert(c);
        }
    }
    let dst_anno = a.keyword_or("DST_ANNO", true)?;
    let mut specs = Vec::new();
    for (text, span) in a.rest() {
        specs.push(parse_spec(&text, span)?);
    }
    if specs.is_empty() {
        return Err(a
            .error("need one input spec per input port")
            .with_help("e.g. IPRewriter(pattern 1.0.0.1 1024-65535 - - 0 1, drop)"));
    }
    let noutputs = specs.iter().map(InputSpec::max_output).max().unwrap_or(0) + 1;
    let table = ctx.shared::<Bucket>("table", NSLOTS, |_| Bucket::default());
    let count = capacity.map(|_| ctx.shared::<u64>("count", 1, |_| 0));
    let n = specs.len();
    element(IpRewriter {
        specs,
        noutputs,
        timeouts: Timeouts {
            tcp_data,
            tcp_nodata,
            tcp_done,
            tcp_guarantee,
            udp,
            udp_streaming,
            udp_guarantee,
            reap_interval,
        },
        capacity,
        dst_anno,
        table,
        count,
        next_variation: vec![0; n],
        failures: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftmb_core::egress::SinkRegistry;
    use ftmb_core::headers::checksum;
    use ftmb_core::shared::SharedRegistry;
    use ftmb_core::trace::{udp_datagram, Ipv4Header, TcpHeader};

    const IN: [u8; 4] = [10, 0, 0, 1];
    const IN2: [u8; 4] = [10, 0, 0, 2];
    const NAT: [u8; 4] = [1, 0, 0, 1];
    const SRV: [u8; 4] = [2, 0, 0, 2];
    const SEC: u64 = NS;

    fn build_n(conf: &[&str], nworkers: usize) -> Result<Vec<Box<dyn Element>>, ConfigError> {
        let reg = crate::registry();
        let class = reg.get("IPRewriter").unwrap();
        let mut shared = SharedRegistry::new();
        let mut sinks = SinkRegistry::new();
        let text = conf.join(", ");
        let args = ftmb_core::config::split_args(&text, 0);
        let off = text.len();
        let mut v = Vec::new();
        for w in 0..nworkers {
            let mut a = Args::new("IPRewriter", &args, Span { start: 0, end: off });
            let mut ictx = InitCtx::new("rw", w, nworkers, &mut shared, &mut sinks);
            match (class.build)(&mut a, &mut ictx)? {
                Built::Element(e) => v.push(e),
                _ => panic!("not an element"),
            }
            a.finish()?;
        }
        Ok(v)
    }

    fn build(conf: &[&str]) -> Box<dyn Element> {
        build_n(conf, 1).unwrap().pop().unwrap()
    }

    fn l4_ck(p: &[u8]) -> u16 {
        let v = Ipv4View::new(p).unwrap();
        let seg = v.payload();
        let co = if v.protocol() == proto::TCP { 16 } else { 6 };
        let mut s = seg.to_vec();
        s[co] = 0;
        s[co + 1] = 0;
        ftmb_core::trace::l4_checksum_v4(v.src(), v.dst(), v.protocol(), &s)
    }

    fn tcp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let tcp = TcpHeader {
            seq: 0x0102_0304,
            window: 0x2000,
            ..TcpHeader::new(sp, dp, flags)
        };
        Ipv4Header::new(src, dst).tcp(&tcp, payload)
    }

    fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8], with_ck: bool) -> Vec<u8> {
        let ip = Ipv4Header::new(src, dst);
        if with_ck {
            ip.udp(sp, dp, payload)
        } else {
            ip.packet_as_is(proto::UDP, &udp_datagram(sp, dp, payload))
        }
    }

    /// Push one packet; returns every (output, bytes) and the drop reasons.
    fn push(
        e: &mut Box<dyn Element>,
        ctx: &mut Ctx,
        port: usize,
        bytes: &[u8],
    ) -> (Vec<(usize, Vec<u8>)>, Vec<&'static str>) {
        let mut out = Out::with_ports(e.ports().outputs.1);
        let mut p = Packet::from_bytes(bytes);
        p.anno.net_off = Some(0);
        e.push(ctx, port, p, &mut out);
        let mut v = Vec::new();
        for o in 0..out.nports() {
            for p in out.take(o) {
                v.push((o, p.data().to_vec()));
            }
        }
        let d = out.drops().iter().map(|(r, _)| *r).collect();
        (v, d)
    }

    fn one(e: &mut Box<dyn Element>, ctx: &mut Ctx, port: usize, bytes: &[u8]) -> (usize, Vec<u8>) {
        let (v, d) = push(e, ctx, port, bytes);
        assert_eq!(v.len(), 1, "expected one packet out, drops {d:?}");
        v.into_iter().next().unwrap()
    }

    fn flow(b: &[u8]) -> FlowId {
        FlowId::of_ipv4(b).unwrap()
    }

    fn valid(b: &[u8]) {
        assert_eq!(checksum(&b[..20]), 0, "IP checksum");
        let v = Ipv4View::new(b).unwrap();
        let co = if v.protocol() == proto::TCP { 36 } else { 26 };
        let stored = u16::from_be_bytes([b[co], b[co + 1]]);
        if !(v.protocol() == proto::UDP && stored == 0) {
            let want = l4_ck(b);
            assert!(
                stored == want
                    || (stored == 0xffff && want == 0)
                    || (stored == 0 && want == 0xffff),
                "L4 checksum {stored:#x} != {want:#x}"
            );
        }
    }

    fn stat(e: &dyn Element, name: &str) -> String {
        e.stats()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.render())
            .unwrap()
    }

    const NAPT: [&str; 2] = ["pattern 1.0.0.1 1024-65535 - - 0 1", "drop"];

    #[test]
    fn forward_keeps_sport_then_picks_another_and_replies_reverse() {
        let mut e = build(&NAPT);
        assert_eq!(e.ports(), Ports::fixed(2, 2));
        let mut ctx = Ctx::new(0, 1, 1);
        let a = tcp(IN, 5000, SRV, 80, 0x02, b"");
        let (o, b) = one(&mut e, &mut ctx, 0, &a);
        assert_eq!(o, 0);
        assert_eq!(
            flow(&b),
            FlowId {
                saddr: NAT,
                ..flow(&a)
            }
        );
        valid(&b);
        // Same sport and destination from another host: another port.
        let a2 = tcp(IN2, 5000, SRV, 80, 0x02, b"");
        let (_, b2) = one(&mut e, &mut ctx, 0, &a2);
        let f2 = flow(&b2);
        assert_eq!(f2.saddr, NAT);
        assert!(f2.sport >= 1024 && f2.sport != 5000);
        valid(&b2);
        // To another destination the same port is free again.
        let a3 = tcp([10, 0, 0, 3], 5000, [3, 3, 3, 3], 80, 0x02, b"");
        let (_, b3) = one(&mut e, &mut ctx, 0, &a3);
        assert_eq!(flow(&b3).sport, 5000);
        // Forward again: same mapping.
        let (_, b1) = one(&mut e, &mut ctx, 0, &tcp(IN, 5000, SRV, 80, 0x10, b"data"));
        assert_eq!(flow(&b1).sport, 5000);
        valid(&b1);
        // Replies come back exactly as the server's packet to the host.
        for (host, ext) in [(IN, 5000), (IN2, f2.sport)] {
            let r = tcp(SRV, 80, NAT, ext, 0x12, b"reply!");
            let (o, rb) = one(&mut e, &mut ctx, 1, &r);
            assert_eq!(o, 1);
            assert_eq!(rb, tcp(SRV, 80, host, 5000, 0x12, b"reply!"));
        }
        assert_eq!(stat(&*e, "nmappings"), "3");
        assert_eq!(stat(&*e, "table_size"), "3");
        assert_eq!(stat(&*e, "mapping_failures"), "0");
    }

    #[test]
    fn reply_on_any_input_and_on_another_worker() {
        let mut ws = build_n(&NAPT, 2).unwrap();
        let mut c0 = Ctx::new(0, 2, 1);
        let mut c1 = Ctx::new(1, 2, 2);
        let mut w1 = ws.pop().unwrap();
        let mut w0 = ws.pop().unwrap();
        for sp in [1000u16, 5000, 40000, 65535] {
            let (_, b) = one(&mut w0, &mut c0, 0, &tcp(IN, sp, SRV, 443, 0x02, b"x"));
            let ext = flow(&b).sport;
            let r = tcp(SRV, 443, NAT, ext, 0x12, b"yz");
            let (o, rb) = one(&mut w1, &mut c1, 1, &r);
            assert_eq!(o, 1);
            assert_eq!(rb, tcp(SRV, 443, IN, sp, 0x12, b"yz"));
            // The reply also matches when it arrives on input 0.
            let (o, rb) = one(&mut w1, &mut c1, 0, &r);
            assert_eq!((o, rb), (1, tcp(SRV, 443, IN, sp, 0x12, b"yz")));
        }
        assert_eq!(stat(&*w1, "nmappings"), "4");
    }

    #[test]
    fn drop_input_drops_unknown_and_pass_passes() {
        let mut e = build(&NAPT);
        let mut ctx = Ctx::new(0, 1, 1);
        let (v, d) = push(&mut e, &mut ctx, 1, &tcp(SRV, 80, NAT, 7777, 0x12, b""));
        assert!(v.is_empty());
        assert_eq!(d, vec!["no mapping (drop input)"]);
        let icmp =
            Ipv4Header::new(IN, SRV).packet_as_is(proto::ICMP, &tcp(IN, 1, SRV, 2, 0, b"")[20..]);
        let (v, d) = push(&mut e, &mut ctx, 0, &icmp);
        assert!(v.is_empty() && d == vec!["not a TCP/UDP first fragment"]);

        let mut e = build(&["pass 2", "pattern 1.0.0.1 1024-65535 - - 0 1"]);
        assert_eq!(e.ports(), Ports::fixed(2, 3));
        let p = tcp(SRV, 80, NAT, 7777, 0x12, b"");
        assert_eq!(one(&mut e, &mut ctx, 0, &p), (2, p.clone()));
        assert_eq!(one(&mut e, &mut ctx, 0, &icmp), (2, icmp.clone()));
        // Non-first fragment skips the table even with a mapping.
        let (_, b) = one(&mut e, &mut ctx, 1, &tcp(IN, 5000, SRV, 80, 2, b""));
        assert_eq!(flow(&b).saddr, NAT);
        let mut frag = tcp(IN, 5000, SRV, 80, 2, b"");
        frag[6..8].copy_from_slice(&1u16.to_be_bytes());
        let (v, _) = push(&mut e, &mut ctx, 1, &frag);
        assert!(v.is_empty());
        assert_eq!(one(&mut e, &mut ctx, 0, &frag), (2, frag.clone()));
        // A reply arriving on the pass input is still translated.
        let (o, rb) = one(&mut e, &mut ctx, 0, &tcp(SRV, 80, NAT, 5000, 0x12, b""));
        assert_eq!((o, rb), (1, tcp(SRV, 80, IN, 5000, 0x12, b"")));
        assert_eq!(stat(&*e, "nmappings"), "1");
    }

    #[test]
    fn keep_and_sequential_and_fixed() {
        let mut e = build(&["keep 0 1", "pattern - 6000-6010# 9.9.9.9 - 1 0"]);
        let mut ctx = Ctx::new(0, 1, 9);
        let a = tcp(IN, 5000, SRV, 80, 2, b"");
        assert_eq!(one(&mut e, &mut ctx, 0, &a), (0, a.clone()));
        let r = tcp(SRV, 80, IN, 5000, 0x12, b"");
        assert_eq!(one(&mut e, &mut ctx, 0, &r), (1, r.clone()));
        for (i, host) in [IN2, [10, 0, 0, 3], [10, 0, 0, 4]].into_iter().enumerate() {
            let (o, b) = one(&mut e, &mut ctx, 1, &udp(host, 6005, SRV, 53, b"q", true));
            assert_eq!(o, 1);
            let f = flow(&b);
            assert_eq!(
                (f.saddr, f.sport, f.daddr),
                (host, 6000 + i as u16, [9, 9, 9, 9])
            );
            valid(&b);
            let back = udp([9, 9, 9, 9], 53, host, 6000 + i as u16, b"ans", true);
            assert_eq!(
                one(&mut e, &mut ctx, 0, &back),
                (0, udp(SRV, 53, host, 6005, b"ans", true))
            );
        }
        // A fixed pattern replaces an older mapping with the same reply key.
        let mut e = build(&["pattern 1.0.0.1 4000 - - 0 1", "drop"]);
        one(&mut e, &mut ctx, 0, &tcp(IN, 1, SRV, 80, 2, b""));
        one(&mut e, &mut ctx, 0, &tcp(IN2, 1, SRV, 80, 2, b""));
        assert_eq!(stat(&*e, "nmappings"), "1");
        let (_, rb) = one(&mut e, &mut ctx, 1, &tcp(SRV, 80, NAT, 4000, 0x12, b""));
        assert_eq!(flow(&rb).daddr, IN2);
    }

    #[test]
    fn exhaustion_and_capacity_count_failures() {
        let mut e = build(&["pattern 1.0.0.1 5000-5001 - - 0 1", "drop"]);
        let mut ctx = Ctx::new(0, 1, 3);
        let mut ports = Vec::new();
        for h in 1..=2u8 {
            let (_, b) = one(
                &mut e,
                &mut ctx,
                0,
                &tcp([10, 0, 0, h], 5000, SRV, 80, 2, b""),
            );
            ports.push(flow(&b).sport);
        }
        ports.sort();
        assert_eq!(ports, vec![5000, 5001]);
        let (v, d) = push(
            &mut e,
            &mut ctx,
            0,
            &tcp([10, 0, 0, 3], 5000, SRV, 80, 2, b""),
        );
        assert!(v.is_empty() && d == vec!["mapping failure"]);
        assert_eq!(stat(&*e, "mapping_failures"), "1");
        // Another destination still has both ports.
        one(
            &mut e,
            &mut ctx,
            0,
            &tcp([10, 0, 0, 3], 5000, SRV, 81, 2, b""),
        );

        let mut e = build(&[
            "pattern 1.0.0.1 1024-65535 - - 0 1",
            "drop",
            "MAPPING_CAPACITY 2",
        ]);
        let (_, b) = one(&mut e, &mut ctx, 0, &tcp(IN, 1, SRV, 80, 2, b""));
        let ext = flow(&b).sport;
        one(&mut e, &mut ctx, 0, &udp(IN, 1, SRV, 80, b"", true));
        let (v, _) = push(&mut e, &mut ctx, 0, &tcp(IN2, 1, SRV, 80, 2, b""));
        assert!(v.is_empty());
        assert_eq!(stat(&*e, "mapping_failures"), "1");
        assert_eq!(stat(&*e, "capacity"), "2");
        // Existing mappings still work.
        let (o, rb) = one(&mut e, &mut ctx, 1, &tcp(SRV, 80, NAT, ext, 0x12, b""));
        assert_eq!((o, rb), (1, tcp(SRV, 80, IN, 1, 0x12, b"")));
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut e = build(&NAPT);
        let mut ctx = Ctx::new(0, 1, 1);
        let (_, b) = one(&mut e, &mut ctx, 0, &udp(IN, 3000, SRV, 53, b"abc", false));
        assert_eq!(&b[26..28], &[0, 0]);
        assert_eq!(flow(&b).saddr, NAT);
        assert_eq!(checksum(&b[..20]), 0);
        let (_, b) = one(&mut e, &mut ctx, 0, &udp(IN2, 3001, SRV, 53, b"abcd", true));
        valid(&b);
        let ext = flow(&b).sport;
        let (_, r) = one(&mut e, &mut ctx, 1, &udp(SRV, 53, NAT, ext, b"x", false));
        assert_eq!(r, udp(SRV, 53, IN2, 3001, b"x", false));
    }

    /// A flow whose key lands in the same slot as `f` (to touch its bucket).
    fn same_slot(f: &FlowId, protocol: u8) -> Vec<u8> {
        for sp in 1..u16::MAX {
            let g = FlowId {
                saddr: [10, 9, 9, 9],
                sport: sp,
                daddr: [8, 8, 8, 8],
                dport: 9,
                proto: protocol,
            };
            if slot_of(&g) == slot_of(f) {
                return tcp(g.saddr, sp, g.daddr, 9, 0x10, b"");
            }
        }
        unreachable!()
    }

    #[test]
    fn timeouts_and_lazy_reaping() {
        let conf = [
            "pattern 1.0.0.1 1024-65535 - - 0 1",
            "drop",
            "REAP_INTERVAL 1",
            "UDP_TIMEOUT 10",
        ];
        let mut e = build(&conf);
        let mut ctx = Ctx::new(0, 1, 1);
        let t0 = 1_700_000_000 * SEC;
        ctx.set_now_ns(t0);
        // UDP: expires 10 s (guarantee 5 s) after the last packet.
        let (_, b) = one(&mut e, &mut ctx, 0, &udp(IN, 3000, SRV, 53, b"q", true));
        let ext = flow(&b).sport;
        let fkey = flow(&udp(IN, 3000, SRV, 53, b"", true));
        let rkey = flow(&udp(SRV, 53, NAT, ext, b"", true));
        ctx.set_now_ns(t0 + 8 * SEC);
        one(&mut e, &mut ctx, 1, &udp(SRV, 53, NAT, ext, b"a", true));
        // 15 s: expired from the forward view, but the reply refreshed it.
        ctx.set_now_ns(t0 + 15 * SEC);
        push(&mut e, &mut ctx, 1, &same_slot(&fkey, proto::TCP));
        assert_eq!(stat(&*e, "nmappings"), "1");
        // 30 s: expired; still usable until reaped (Click)...
        ctx.set_now_ns(t0 + 30 * SEC);
        // ...the forward bucket is reaped by an unrelated packet.
        push(&mut e, &mut ctx, 1, &same_slot(&fkey, proto::TCP));
        assert_eq!(stat(&*e, "nmappings"), "0");
        let (v, _) = push(&mut e, &mut ctx, 1, &udp(SRV, 53, NAT, ext, b"a", true));
        assert!(v.is_empty());

        // Reaping from the reply side, and expired-but-unreaped use.
        let mut e = build(&conf);
        ctx.set_now_ns(t0);
        let (_, b) = one(&mut e, &mut ctx, 0, &udp(IN, 3000, SRV, 53, b"q", true));
        let ext = flow(&b).sport;
        assert_eq!(flow(&udp(SRV, 53, NAT, ext, b"", true)), {
            let mut r = rkey;
            r.dport = ext;
            r
        });
        ctx.set_now_ns(t0 + 60 * SEC);
        // Expired, not yet reaped: the reply still translates.
        let (o, _) = one(&mut e, &mut ctx, 1, &udp(SRV, 53, NAT, ext, b"a", true));
        assert_eq!(o, 1);
        ctx.set_now_ns(t0 + 120 * SEC);
        let rk = flow(&udp(SRV, 53, NAT, ext, b"", true));
        push(&mut e, &mut ctx, 1, &same_slot(&rk, proto::TCP));
        assert_eq!(stat(&*e, "nmappings"), "0");

        // TCP: FIN both ways gives TCP_DONE_TIMEOUT (240 s); data both
        // ways gives 24 h.
        let mut e = build(&[
            "pattern 1.0.0.1 1024-65535 - - 0 1",
            "drop",
            "REAP_INTERVAL 0",
        ]);
        ctx.set_now_ns(t0);
        let a = |sp: u16, fl: u8, d: &[u8]| tcp(IN, sp, SRV, 80, fl, d);
        let r = |dp: u16, fl: u8, d: &[u8]| tcp(SRV, 80, NAT, dp, fl, d);
        for sp in [7001u16, 7002] {
            one(&mut e, &mut ctx, 0, &a(sp, 0x02, b""));
            one(&mut e, &mut ctx, 1, &r(sp, 0x12, b""));
            one(&mut e, &mut ctx, 0, &a(sp, 0x10, b"get"));
            one(&mut e, &mut ctx, 1, &r(sp, 0x10, b"page"));
        }
        one(&mut e, &mut ctx, 0, &a(7001, 0x11, b""));
        one(&mut e, &mut ctx, 1, &r(7001, 0x11, b""));
        ctx.set_now_ns(t0 + 250 * SEC);
        for sp in [7001u16, 7002] {
            push(
                &mut e,
                &mut ctx,
                1,
                &same_slot(&flow(&a(sp, 0, b"")), proto::TCP),
            );
        }
        assert_eq!(stat(&*e, "nmappings"), "1");
        // No-data TCP flows (SYN only) time out after 5 minutes.
        one(&mut e, &mut ctx, 0, &a(7003, 0x02, b""));
        ctx.set_now_ns(t0 + 250 * SEC + 301 * SEC);
        push(
            &mut e,
            &mut ctx,
            1,
            &same_slot(&flow(&a(7003, 0, b"")), proto::TCP),
        );
        push(
            &mut e,
            &mut ctx,
            1,
            &same_slot(&flow(&a(7002, 0, b"")), proto::TCP),
        );
        assert_eq!(stat(&*e, "nmappings"), "1");
        let (o, _) = one(&mut e, &mut ctx, 1, &r(7002, 0x10, b""));
        assert_eq!(o, 1);
    }

    #[test]
    fn bucket_codec_round_trip() {
        let mut b = Bucket {
            last_reap: 77,
            ..Default::default()
        };
        for i in 0..5u16 {
            let k = FlowId {
                saddr: [1, 2, 3, 4],
                sport: i,
                daddr: [5, 6, 7, 8],
                dport: 80,
                proto: if i % 2 == 0 { proto::TCP } else { proto::UDP },
            };
            b.map.insert(
                k,
                Entry {
                    peer: k.reverse(),
                    id: u64::from(i) << 40 | 5,
                    reply: i % 2 == 1,
                    output: i,
                    input: 1,
                    last: 123_456_789 * u64::from(i),
                    state: 3,
                    peer_last: 9,
                    peer_state: 6,
                },
            );
        }
        let mut buf = Vec::new();
        b.encode(&mut buf);
        let mut inp = buf.as_slice();
        let c = Bucket::decode(&mut inp).unwrap();
        assert!(inp.is_empty());
        assert_eq!(b, c);
        let mut buf2 = Vec::new();
        c.encode(&mut buf2);
        assert_eq!(buf, buf2);
        for n in 0..buf.len() {
            assert!(Bucket::decode(&mut &buf[..n]).is_err());
        }
        // The snapshot encoding (map order) reads back as the same bucket;
        // the canonical one does not depend on insertion order.
        let mut fast = Vec::new();
        b.encode_any_order(&mut fast);
        assert_eq!(fast.len(), buf.len());
        assert_eq!(Bucket::decode(&mut fast.as_slice()).unwrap(), b);
        let mut rev = Bucket {
            last_reap: b.last_reap,
            ..Default::default()
        };
        let mut entries: Vec<_> = b.map.iter().collect();
        entries.reverse();
        rev.map
            .extend(entries.into_iter().map(|(k, e)| (*k, e.clone())));
        let mut buf3 = Vec::new();
        rev.encode(&mut buf3);
        assert_eq!(buf, buf3);
        // Worker-private state.
        let mut e = build(&NAPT);
        let mut s = Vec::new();
        e.save_state(&mut s);
        e.load_state(&s).unwrap();
        assert!(e.load_state(&s[..3]).is_err());
    }

    #[test]
    fn malformed_prefixes_never_panic() {
        let mut e = build(&["pattern 1.0.0.1 1024-65535 - - 0 1", "pass 1", "keep 0 1"]);
        let mut ctx = Ctx::new(0, 1, 1);
        let pkts = [
            tcp(IN, 5000, SRV, 80, 0x02, b"hello"),
            udp(IN, 5000, SRV, 53, b"hi", true),
            tcp(SRV, 80, NAT, 5000, 0x12, b""),
        ];
        for p in &pkts {
            for n in 0..=p.len() {
                for port in 0..3 {
                    for anno in [None, Some(0u16), Some(3), Some(200)] {
                        let mut out = Out::with_ports(2);
                        let mut q = Packet::from_bytes(&p[..n]);
                        q.anno.net_off = anno;
                        e.push(&mut ctx, port, q, &mut out);
                    }
                }
            }
        }
        // A header claiming more than captured, and IHL past the end.
        let mut p = tcp(IN, 1, SRV, 2, 0, b"");
        p[0] = 0x4f;
        push(&mut e, &mut ctx, 0, &p);
        push(&mut e, &mut ctx, 7, &p);
    }

    #[test]
    fn config_errors() {
        let err = |c: &[&str]| build_n(c, 1).err().expect("error").message;
        assert!(err(&[]).contains("one input spec per input port"));
        assert!(err(&["bogus 1"]).contains("unknown input specification"));
        assert!(err(&["pattern 1.0.0.1 0 - - 0 1"]).contains("bad source port"));
        assert!(err(&["pattern 1.0.0.1 9-3 - - 0 1"]).contains("bad source port"));
        assert!(err(&["pattern 1.0.0.300 9 - - 0 1"]).contains("not an IPv4 address"));
        assert!(err(&["pattern 1.0.0.1 9 - 0 0 1"]).contains("bad destination port"));
        assert!(err(&["pattern 1.0.0.0/24 1-9 - - 0 1"]).contains("only one"));
        assert!(err(&["drop 1"]).contains("takes no arguments"));
        assert!(err(&["keep 1"]).contains("expected `keep"));
        assert!(err(&["pass x"]).contains("not an output port"));
        assert!(err(&["pattern NAME 0 1"]).contains("named patterns"));
        assert!(err(&["drop", "TCP_TIMEOUT soon"]).contains("TCP_TIMEOUT"));
        assert!(err(&["drop", "BOGUS 1"]).contains("unknown keyword"));
        let e = build_n(
            &[
                "pattern 1.0.0.0/24 - - - 0 3",
                "pass",
                "TIMEOUT 1h",
                "GUARANTEE 0",
            ],
            1,
        )
        .unwrap();
        assert_eq!(e[0].ports(), Ports::fixed(2, 4));
        // Address variation: .1 to .254, the own address is not tried first.
        let mut e = build(&["pattern 1.0.0.0/30 - - - 0 1"]);
        let mut ctx = Ctx::new(0, 1, 5);
        let mut got = Vec::new();
        for h in 1..=3u8 {
            let (v, _) = push(&mut e, &mut ctx, 0, &tcp([10, 0, 0, h], 1, SRV, 80, 2, b""));
            got.extend(v.into_iter().map(|(_, b)| flow(&b).saddr));
        }
        got.sort();
        assert_eq!(got, vec![[1, 0, 0, 1], [1, 0, 0, 2]]);
    }
}
