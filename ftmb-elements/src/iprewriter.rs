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
mod tests;
