//! Deterministic synthetic traffic generator (Ethernet / IPv4 / TCP+UDP).
//!
//! Flows are created with a fixed packet budget each (budgets sum to exactly
//! `TraceSpec::packets`, heavy-tailed sizes), about `concurrency` of them are
//! active at once and packets of active flows are interleaved at random; a
//! finished flow is replaced by the next one. TCP flows open with
//! SYN / SYN-ACK / ACK, exchange PSH+ACK data with consistent sequence and
//! acknowledgement numbers, and close with FIN+ACK / FIN+ACK / ACK when their
//! budget allows (>= 6 packets); smaller budgets give truncated flows. UDP
//! flows are request / response exchanges. All checksums are valid.

use super::checksum::{fold, sum_bytes};
use super::PcapWriter;
pub use crate::rng::Rng;
use std::collections::HashSet;
use std::io::{self, Write};

/// Parameters of a synthetic trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSpec {
    /// Number of flows (each gets at least one packet; capped by `packets`).
    pub flows: usize,
    /// Exact number of packets to write.
    pub packets: usize,
    /// PRNG seed; equal specs give byte-identical output.
    pub seed: u64,
    /// Share of flows that are TCP (the rest are UDP).
    pub tcp_fraction: f64,
    /// Minimum frame size of data packets, including the Ethernet header.
    pub min_size: usize,
    /// Maximum frame size of data packets, including the Ethernet header.
    pub max_size: usize,
    /// Client (inside) network, default 10.0.0.0/8.
    pub inside_net: ([u8; 4], u8),
    /// Server (outside) network, default 198.19.0.0/16. A /32 puts every
    /// server on one address (see [`TraceSpec::to_service`]).
    pub outside_net: ([u8; 4], u8),
    /// Every flow's server port; `None` (the default) draws one per flow
    /// from common service ports of its protocol.
    pub server_port: Option<u16>,
    /// Share of data packets sent server -> client, default 0.4.
    pub reply_fraction: f64,
    /// Number of flows active at once.
    pub concurrency: usize,
    /// Packet rate used to space timestamps evenly.
    pub pps: f64,
}

impl Default for TraceSpec {
    fn default() -> Self {
        TraceSpec {
            flows: 1000,
            packets: 100_000,
            seed: 1,
            tcp_fraction: 0.8,
            min_size: 64,
            max_size: 1514,
            inside_net: ([10, 0, 0, 0], 8),
            outside_net: ([198, 19, 0, 0], 16),
            server_port: None,
            reply_fraction: 0.4,
            concurrency: 64,
            pps: 1_000_000.0,
        }
    }
}

impl TraceSpec {
    /// The address plan of the example configurations (`examples/*.click`)
    /// and of the demo: clients inside 10.77.0.0/16, servers outside in
    /// 198.18.0.0/16; `packets` packets over `flows` flows from `seed`, the
    /// rest as [`TraceSpec::default`].
    pub fn example_nets(packets: usize, flows: usize, seed: u64) -> TraceSpec {
        TraceSpec {
            packets,
            flows,
            seed,
            inside_net: ([10, 77, 0, 0], 16),
            outside_net: ([198, 18, 0, 0], 16),
            ..TraceSpec::default()
        }
    }

    /// This spec with every flow addressed to one service, `addr:port`
    /// (say a load balancer's virtual address, `examples/loadbalancer.click`
    /// balances 192.0.2.1:80): clients as before, each flow from its own
    /// client address and port.
    pub fn to_service(self, addr: [u8; 4], port: u16) -> TraceSpec {
        TraceSpec {
            outside_net: (addr, 32),
            server_port: Some(port),
            ..self
        }
    }
}

/// Generate the trace of `spec` into a new Ethernet pcap file at `path`
/// (microsecond timestamps), flushed.
pub fn write_generated(spec: &TraceSpec, path: &std::path::Path) -> io::Result<GenStats> {
    let mut w = PcapWriter::create(path, super::LinkType::Ethernet, false)?;
    let stats = generate(spec, &mut w)?;
    w.flush()?;
    Ok(stats)
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Packets written.
    pub packets: usize,
    /// Flows started (distinct 5-tuples).
    pub flows: usize,
    /// TCP flows among `flows`.
    pub tcp_flows: usize,
    /// UDP flows among `flows`.
    pub udp_flows: usize,
    /// Sum of frame lengths.
    pub bytes: u64,
}

const MAC_CLIENT: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const MAC_SERVER: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const TCP_PORTS: [u16; 10] = [80, 443, 443, 443, 8080, 22, 25, 993, 8443, 3306];
const UDP_PORTS: [u16; 8] = [53, 53, 123, 443, 5060, 4500, 1194, 3478];
const ETH: usize = 14;
const IP: usize = 20;
const TCP_HDR: usize = 20;
const UDP_HDR: usize = 8;
const PATTERN_LEN: usize = 4096;
/// Base timestamp: 2023-11-14T22:13:20Z.
const BASE_NS: u64 = 1_700_000_000 * 1_000_000_000;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

#[derive(Debug)]
struct Flow {
    tcp: bool,
    client: [u8; 4],
    server: [u8; 4],
    cport: u16,
    sport: u16,
    budget: u32,
    sent: u32,
    c_seq: u32,
    s_seq: u32,
    last_from_server: bool,
    c_ipid: u16,
    s_ipid: u16,
}

/// Random host address inside `net`, avoiding network/broadcast addresses
/// when the prefix leaves room for that.
fn rand_addr(rng: &mut Rng, net: ([u8; 4], u8)) -> [u8; 4] {
    let prefix = u32::from(net.1.min(32));
    let host_bits = 32 - prefix;
    let mask = if host_bits == 32 {
        0
    } else {
        u32::MAX << host_bits
    };
    let base = u32::from_be_bytes(net.0) & mask;
    let host = match host_bits {
        0 => 0,
        1 => rng.below(2) as u32,
        _ => {
            let span = (1u64 << host_bits) - 2;
            1 + rng.below(span) as u32
        }
    };
    (base | host).to_be_bytes()
}

/// Splits `packets` over `n` flows: `min_per` each plus a heavy-tailed share.
fn budgets(rng: &mut Rng, n: usize, packets: usize) -> Vec<u32> {
    if n == 0 {
        return Vec::new();
    }
    let min_per = (packets / n).clamp(1, 6);
    let extra = packets - n * min_per;
    let weights: Vec<f64> = (0..n)
        .map(|_| {
            let u = 1.0 - rng.f64(); // (0, 1]
            let l = -u.ln();
            l * l + 1e-3
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut alloc: Vec<usize> = weights
        .iter()
        .map(|w| (extra as f64 * w / total) as usize)
        .collect();
    let mut sum: usize = alloc.iter().sum();
    let mut i = 0;
    while sum > extra {
        if alloc[i % n] > 0 {
            alloc[i % n] -= 1;
            sum -= 1;
        }
        i += 1;
    }
    let mut i = 0;
    while sum < extra {
        alloc[i % n] += 1;
        sum += 1;
        i += 1;
    }
    alloc
        .into_iter()
        .map(|a| u32::try_from(a + min_per).unwrap_or(u32::MAX))
        .collect()
}

/// Canonical (lower endpoint first) address pair, port pair, is-TCP.
type FlowKey = ([u8; 4], [u8; 4], u16, u16, bool);

struct Gen<'s> {
    spec: &'s TraceSpec,
    rng: Rng,
    seen: HashSet<FlowKey>,
    pattern: Vec<u8>,
    buf: Vec<u8>,
    /// Markov chain for data direction: P(server | last client), P(server | last server).
    p_sc: f64,
    p_ss: f64,
}

impl Gen<'_> {
    fn new_flow(&mut self, budget: u32) -> io::Result<Flow> {
        let tcp = self.rng.f64() < self.spec.tcp_fraction;
        for _ in 0..10_000 {
            let client = rand_addr(&mut self.rng, self.spec.inside_net);
            let server = rand_addr(&mut self.rng, self.spec.outside_net);
            let cport = 32768 + self.rng.below(28232) as u16;
            let sport = if let Some(p) = self.spec.server_port {
                p
            } else if tcp {
                TCP_PORTS[self.rng.below(TCP_PORTS.len() as u64) as usize]
            } else {
                UDP_PORTS[self.rng.below(UDP_PORTS.len() as u64) as usize]
            };
            // Canonical key so a reversed tuple also counts as a duplicate.
            let key = if (client, cport) <= (server, sport) {
                (client, server, cport, sport, tcp)
            } else {
                (server, client, sport, cport, tcp)
            };
            if self.seen.insert(key) {
                return Ok(Flow {
                    tcp,
                    client,
                    server,
                    cport,
                    sport,
                    budget,
                    sent: 0,
                    c_seq: self.rng.next_u64() as u32,
                    s_seq: self.rng.next_u64() as u32,
                    last_from_server: false,
                    c_ipid: self.rng.next_u64() as u16,
                    s_ipid: self.rng.next_u64() as u16,
                });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "address/port space too small for the requested number of unique flows",
        ))
    }

    /// Frame size of a data packet (at least the headers).
    fn data_frame_len(&mut self, hdrs: usize) -> usize {
        let lo = self.spec.min_size.max(hdrs);
        let hi = self.spec.max_size.max(lo).min(ETH + 65535);
        lo + self.rng.below((hi - lo + 1) as u64) as usize
    }

    fn next_is_server(&mut self, last_from_server: bool) -> bool {
        let p = if last_from_server {
            self.p_ss
        } else {
            self.p_sc
        };
        self.rng.f64() < p
    }

    /// Builds the flow's next packet into `self.buf`, returning its length.
    fn next_packet(&mut self, f: &mut Flow) -> usize {
        let k = f.sent;
        let b = f.budget;
        f.sent += 1;
        let hdrs = ETH + IP + if f.tcp { TCP_HDR } else { UDP_HDR };
        let (from_server, flags, payload) = if f.tcp {
            let full = b >= 6;
            match k {
                0 => (false, SYN, 0),
                1 => (true, SYN | ACK, 0),
                2 => (false, ACK, 0),
                _ if full && k == b - 3 => (false, FIN | ACK, 0),
                _ if full && k == b - 2 => (true, FIN | ACK, 0),
                _ if full && k == b - 1 => (false, ACK, 0),
                _ => {
                    let s = self.next_is_server(f.last_from_server);
                    (s, PSH | ACK, self.data_frame_len(hdrs) - hdrs)
                }
            }
        } else {
            let s = k > 0 && self.next_is_server(f.last_from_server);
            (s, 0, self.data_frame_len(hdrs) - hdrs)
        };
        f.last_from_server = from_server;
        let len = hdrs + payload;
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let (src, dst, sport, dport, smac, dmac, ttl, ipid) = if from_server {
            f.s_ipid = f.s_ipid.wrapping_add(1);
            (
                f.server, f.client, f.sport, f.cport, MAC_SERVER, MAC_CLIENT, 54, f.s_ipid,
            )
        } else {
            f.c_ipid = f.c_ipid.wrapping_add(1);
            (
                f.client, f.server, f.cport, f.sport, MAC_CLIENT, MAC_SERVER, 64, f.c_ipid,
            )
        };
        let p = &mut self.buf[..len];
        // Ethernet
        p[0..6].copy_from_slice(&dmac);
        p[6..12].copy_from_slice(&smac);
        p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        // IPv4
        let ip = &mut p[ETH..ETH + IP];
        ip[0] = 0x45;
        ip[1] = 0;
        ip[2..4].copy_from_slice(&((len - ETH) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&ipid.to_be_bytes());
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
        ip[8] = ttl;
        ip[9] = if f.tcp { 6 } else { 17 };
        ip[10..12].copy_from_slice(&[0, 0]);
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let c = fold(sum_bytes(0, ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        // Payload
        let l4 = ETH + IP;
        let data_at = hdrs;
        let mut filled = 0;
        while filled < payload {
            let n = (payload - filled).min(PATTERN_LEN / 2);
            let off = self.rng.below((PATTERN_LEN - n + 1) as u64) as usize;
            p[data_at + filled..data_at + filled + n].copy_from_slice(&self.pattern[off..off + n]);
            filled += n;
        }
        // L4 header
        let seg_len = len - l4;
        if f.tcp {
            let (seq, ack) = if from_server {
                (f.s_seq, if flags & ACK != 0 { f.c_seq } else { 0 })
            } else {
                (f.c_seq, if flags & ACK != 0 { f.s_seq } else { 0 })
            };
            let t = &mut p[l4..l4 + TCP_HDR];
            t[0..2].copy_from_slice(&sport.to_be_bytes());
            t[2..4].copy_from_slice(&dport.to_be_bytes());
            t[4..8].copy_from_slice(&seq.to_be_bytes());
            t[8..12].copy_from_slice(&ack.to_be_bytes());
            t[12] = 5 << 4;
            t[13] = flags;
            t[14..16].copy_from_slice(&64240u16.to_be_bytes());
            t[16..20].copy_from_slice(&[0, 0, 0, 0]);
            // SYN and FIN consume one sequence number, data its length.
            let adv = payload as u32 + u32::from(flags & (SYN | FIN) != 0);
            if from_server {
                f.s_seq = f.s_seq.wrapping_add(adv);
            } else {
                f.c_seq = f.c_seq.wrapping_add(adv);
            }
        } else {
            let u = &mut p[l4..l4 + UDP_HDR];
            u[0..2].copy_from_slice(&sport.to_be_bytes());
            u[2..4].copy_from_slice(&dport.to_be_bytes());
            u[4..6].copy_from_slice(&(seg_len as u16).to_be_bytes());
            u[6..8].copy_from_slice(&[0, 0]);
        }
        let mut acc = u64::from(u32::from_be_bytes(src)) + u64::from(u32::from_be_bytes(dst));
        acc += u64::from(if f.tcp { 6u8 } else { 17 }) + seg_len as u64;
        let mut c = fold(sum_bytes(acc, &p[l4..len]));
        let at = if f.tcp { l4 + 16 } else { l4 + 6 };
        if !f.tcp && c == 0 {
            c = 0xffff;
        }
        p[at..at + 2].copy_from_slice(&c.to_be_bytes());
        len
    }
}

/// Writes a synthetic trace described by `spec` to `out` and flushes it.
///
/// Exactly `spec.packets` packets are written, spread over
/// `min(spec.flows, spec.packets)` flows with unique 5-tuples. Fails with
/// `InvalidInput` if `flows == 0` while `packets > 0`, or if the address
/// space cannot hold enough unique flows. `out` should use
/// [`LinkType::Ethernet`](super::LinkType::Ethernet).
pub fn generate<W: Write>(spec: &TraceSpec, out: &mut PcapWriter<W>) -> io::Result<GenStats> {
    let mut stats = GenStats::default();
    if spec.packets == 0 {
        return Ok(stats);
    }
    if spec.flows == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "flows must be > 0 when packets > 0",
        ));
    }
    let mut rng = Rng::new(spec.seed);
    let n_flows = spec.flows.min(spec.packets);
    let budget = budgets(&mut rng, n_flows, spec.packets);
    let pattern: Vec<u8> = (0..PATTERN_LEN).map(|_| rng.next_u64() as u8).collect();
    let r = spec.reply_fraction.clamp(0.0, 1.0);
    let (p_sc, p_ss) = if r <= 0.5 {
        (r / (1.0 - r), 0.0)
    } else {
        (1.0, (2.0 * r - 1.0) / r)
    };
    let mut g = Gen {
        spec,
        rng,
        seen: HashSet::with_capacity(n_flows),
        pattern,
        buf: vec![0u8; 2048],
        p_sc,
        p_ss,
    };
    let interval = if spec.pps.is_finite() && spec.pps > 0.0 {
        1e9 / spec.pps
    } else {
        1000.0
    };
    let conc = spec.concurrency.max(1);
    let mut next = 0usize;
    let mut active: Vec<Flow> = Vec::with_capacity(conc);
    let start_flow = |g: &mut Gen, stats: &mut GenStats, next: &mut usize| {
        let f = g.new_flow(budget[*next])?;
        *next += 1;
        stats.flows += 1;
        if f.tcp {
            stats.tcp_flows += 1;
        } else {
            stats.udp_flows += 1;
        }
        io::Result::Ok(f)
    };
    while active.len() < conc && next < n_flows {
        active.push(start_flow(&mut g, &mut stats, &mut next)?);
    }
    while stats.packets < spec.packets && !active.is_empty() {
        let i = g.rng.below(active.len() as u64) as usize;
        let len = g.next_packet(&mut active[i]);
        let ts = BASE_NS + (stats.packets as f64 * interval) as u64;
        out.write_packet(ts, &g.buf[..len])?;
        stats.packets += 1;
        stats.bytes += len as u64;
        if active[i].sent >= active[i].budget {
            if next < n_flows {
                active[i] = start_flow(&mut g, &mut stats, &mut next)?;
            } else {
                active.swap_remove(i);
            }
        }
    }
    out.flush()?;
    Ok(stats)
}
