//! `LoadBalancer`: spread connections to a virtual address over backends.

use super::{ip_bytes, ip_bytes_mut, load, save, tcp, tcp_flags, FlowKey};
use ftmb_core::element::element;
use ftmb_core::headers::{fmt_ipv4, set_ipv4_addr, FlowId};
use ftmb_core::shared::{CodecError, Shared, StateCodec};
use ftmb_core::{Args, Built, ConfigError, Ctx, Element, InitCtx, Out, Packet, Ports, Value};
#[cfg(test)]
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// How a new connection's backend is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Backends in turn.
    RoundRobin,
    /// A backend drawn from [`Ctx::random_below`].
    Random,
    /// The backend with the fewest active connections (ties broken in
    /// round-robin order).
    LeastConn,
}

/// A connection's backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Index of the backend in `BACKENDS`.
    pub backend: u16,
    /// FINs seen: bit 0 from the client, bit 1 from the backend.
    pub fins: u8,
    /// True once the connection closed (FINs both ways or a RST): it no
    /// longer counts as active and lingers for `CLOSE_TIMEOUT`.
    pub closed: bool,
    /// Time of the last packet, from [`Ctx::now_ns`].
    pub last_ns: u64,
}

impl StateCodec for Mapping {
    fn encode(&self, out: &mut Vec<u8>) {
        self.backend.encode(out);
        self.fins.encode(out);
        self.closed.encode(out);
        self.last_ns.encode(out);
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        Ok(Mapping {
            backend: u16::decode(inp)?,
            fins: u8::decode(inp)?,
            closed: bool::decode(inp)?,
            last_ns: u64::decode(inp)?,
        })
    }
}

/// One slot of the connection table, keyed by the client's flow id
/// (client address and port to VIP and port).
pub type MappingTable = ftmb_core::shared::FlowMap<FlowKey, Mapping>;

/// The backends' load, shared by every worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendLoad {
    /// Round-robin cursor (also the leastconn tie-breaker).
    pub next: u64,
    /// Active connections per backend.
    pub active: Vec<u64>,
    /// Connections ever assigned per backend.
    pub total: Vec<u64>,
}

impl StateCodec for BackendLoad {
    fn encode(&self, out: &mut Vec<u8>) {
        self.next.encode(out);
        self.active.encode(out);
        self.total.encode(out);
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        Ok(BackendLoad {
            next: u64::decode(inp)?,
            active: Vec::decode(inp)?,
            total: Vec::decode(inp)?,
        })
    }
}

impl BackendLoad {
    fn release(&mut self, backends: &[u16]) {
        for &b in backends {
            if let Some(a) = self.active.get_mut(b as usize) {
                *a = a.saturating_sub(1);
            }
        }
    }

    /// Choose a backend for a new connection and count it.
    fn choose(&mut self, policy: Policy, random: u64) -> u16 {
        let n = self.active.len().max(1);
        let b = match policy {
            Policy::RoundRobin => (self.next % n as u64) as usize,
            Policy::Random => (random % n as u64) as usize,
            Policy::LeastConn => {
                let start = (self.next % n as u64) as usize;
                (0..n)
                    .map(|i| (start + i) % n)
                    .min_by_key(|&i| self.active.get(i).copied().unwrap_or(0))
                    .unwrap_or(0)
            }
        };
        self.next = self.next.wrapping_add(1);
        if let Some(a) = self.active.get_mut(b) {
            *a += 1;
        }
        if let Some(t) = self.total.get_mut(b) {
            *t += 1;
        }
        b as u16
    }
}

/// `LoadBalancer(VIP ADDR, BACKENDS ADDR ADDR ..., [PORT p], [POLICY
/// roundrobin|random|leastconn], [TIMEOUT t], [CLOSE_TIMEOUT t], [CAPACITY n],
/// [SLOTS m])`: a layer-4 load balancer with connection affinity.
///
/// # Configuration
/// - `VIP`: the virtual address clients connect to.
/// - `BACKENDS`: the backends' addresses, separated by spaces (at most
///   65535).
/// - `PORT`: balance only TCP/UDP packets to this destination port (default:
///   any port).
/// - `POLICY`: `roundrobin` (default), `random` (from the logged random
///   generator) or `leastconn` (fewest active connections).
/// - `TIMEOUT`: idle time after which a connection is forgotten (default
///   5min); `CLOSE_TIMEOUT`: how long a closed TCP connection's mapping
///   lingers for the last ACKs (default 10s, at most `TIMEOUT`).
/// - `CAPACITY`: connections tracked (default 65536, 1 to 67108864, spread
///   over the slots); a slot that is full even after purging expired
///   mappings evicts its least recently used one.
/// - `SLOTS`: lock domains of the mapping table (default 64, 1 to
///   1048576).
///
/// # Behaviour
/// A TCP/UDP packet from a client (input 0) to `VIP[:PORT]` gets its
/// destination rewritten to its connection's backend (a new connection gets
/// one by the policy; every later packet of the connection goes to the same
/// backend) and leaves on output 0. A reply from a backend (input 1) whose
/// connection is mapped to that backend gets its source rewritten to the
/// VIP and leaves on output 1; an unmapped reply is dropped (`no
/// connection`). IP and TCP/UDP checksums are updated incrementally. Other
/// packets (not for the VIP, not from a backend, not TCP/UDP) pass
/// unchanged on the output of their input. A TCP connection closes on FINs
/// from both sides or a RST; a SYN on a closed connection reopens it on the
/// same backend.
///
/// # Ports
/// Two inputs (0: from clients, 1: from backends), two outputs (0: to
/// backends, 1: to clients); with only output 0 connected both directions
/// leave there.
///
/// # Handlers
/// `connections` (active connections), `backends` (connections ever
/// assigned, per backend: `10.0.0.1:12 10.0.0.2:11`), `active` (active
/// connections per backend, same format): all shared. `balanced`,
/// `replies` (packets rewritten each way) summed over workers.
///
/// # Shared state
/// - `map`: [`MappingTable`] in `SLOTS` slots, a connection's slot picked by
///   the hash of its client flow id (which a reply rebuilds from the VIP).
///   One access per packet of a known connection.
/// - `load`: [`BackendLoad`], one slot. A new connection costs three
///   accesses (map lookup, load choose, map insert); a packet that closes a
///   connection, or finds expired mappings to purge, adds one load access
///   to release them.
pub struct LoadBalancer {
    vip: [u8; 4],
    backends: Vec<[u8; 4]>,
    port: Option<u16>,
    policy: Policy,
    timeout_ns: u64,
    close_timeout_ns: u64,
    slot_capacity: usize,
    map: Shared<MappingTable>,
    load: Shared<BackendLoad>,
    balanced: u64,
    replies: u64,
}

/// Result of the first map access for a client packet.
enum Lookup {
    /// Known connection: its backend.
    Hit(u16),
    /// Unknown (or expired) connection.
    Miss,
}

impl LoadBalancer {
    fn expired(&self, m: &Mapping, now: u64) -> bool {
        let limit = if m.closed {
            self.close_timeout_ns
        } else {
            self.timeout_ns
        };
        now.saturating_sub(m.last_ns) > limit
    }

    /// Update a mapping for a packet with TCP `flags` from the client
    /// (`client`) or the backend; returns the backend to release when the
    /// packet closed the connection.
    fn track(m: &mut Mapping, flags: Option<u8>, client: bool, now: u64) -> Option<u16> {
        m.last_ns = now;
        let f = flags?;
        if m.closed {
            return None;
        }
        if f & tcp::FIN != 0 {
            m.fins |= if client { 1 } else { 2 };
        }
        if f & tcp::RST != 0 || m.fins == 3 {
            m.closed = true;
            return Some(m.backend);
        }
        None
    }

    fn send(&self, port: usize, pkt: Packet, out: &mut Out) {
        let p = if out.nports() > 1 { port } else { 0 };
        out.push(p, pkt);
    }

    fn slot_of(&self, key: &FlowKey) -> usize {
        (key.0.hash64() % self.map.slots() as u64) as usize
    }

    fn release(&self, ctx: &mut Ctx, pkt: &mut Packet, backends: &[u16]) {
        if !backends.is_empty() {
            self.load.access(ctx, pkt, 0, |l| l.release(backends));
        }
    }

    fn on_client(&mut self, ctx: &mut Ctx, mut pkt: Packet, out: &mut Out) {
        let ip = ip_bytes(&pkt);
        let flow = match FlowId::of_ipv4(ip) {
            Some(f) if f.daddr == self.vip && !matches!(self.port, Some(p) if p != f.dport) => f,
            _ => return self.send(0, pkt, out),
        };
        let flags = tcp_flags(ip);
        let key = FlowKey(flow);
        let slot = self.slot_of(&key);
        let now = ctx.now_ns();
        let mut released = Vec::new();
        let this = &*self;
        let found = this.map.access(ctx, &mut pkt, slot, |t| {
            if let Some(m) = t.get_mut(&key) {
                if !this.expired(m, now) {
                    if m.closed && flags.is_some_and(|f| f & tcp::SYN != 0 && f & tcp::ACK == 0) {
                        // Reopened: same backend, active again.
                        return (Lookup::Miss, Some(m.backend));
                    }
                    released.extend(Self::track(m, flags, true, now));
                    return (Lookup::Hit(m.backend), None);
                }
                if !m.closed {
                    released.push(m.backend);
                }
                t.remove(&key);
            }
            if t.len() >= this.slot_capacity {
                t.retain(|_, m| {
                    let keep = !this.expired(m, now);
                    if !keep && !m.closed {
                        released.push(m.backend);
                    }
                    keep
                });
            }
            (Lookup::Miss, None)
        });
        let backend = match found {
            (Lookup::Hit(b), _) => {
                this.release(ctx, &mut pkt, &released);
                b
            }
            (Lookup::Miss, reopen) => {
                let random = if this.policy == Policy::Random {
                    ctx.random()
                } else {
                    0
                };
                let policy = this.policy;
                let b = this.load.access(ctx, &mut pkt, 0, |l| {
                    l.release(&released);
                    match reopen {
                        Some(b) => {
                            if let Some(a) = l.active.get_mut(b as usize) {
                                *a += 1;
                            }
                            b
                        }
                        None => l.choose(policy, random),
                    }
                });
                released.clear();
                let mut m = Mapping {
                    backend: b,
                    fins: 0,
                    closed: false,
                    last_ns: now,
                };
                let _ = Self::track(&mut m, flags, true, now);
                let closes_now = m.closed;
                let winner = this.map.access(ctx, &mut pkt, slot, |t| {
                    if let Some(old) = t.get(&key) {
                        if !old.closed && !this.expired(old, now) {
                            // Mapped meanwhile: keep it, give ours back.
                            released.push(b);
                            return old.backend;
                        }
                    }
                    if t.len() >= this.slot_capacity && !t.contains_key(&key) {
                        let victim = t
                            .iter()
                            .min_by_key(|(k, m)| (m.last_ns, **k))
                            .map(|(k, m)| (*k, *m));
                        if let Some((k, v)) = victim {
                            t.remove(&k);
                            if !v.closed && !this.expired(&v, now) {
                                released.push(v.backend);
                            }
                        }
                    }
                    if closes_now {
                        released.push(b);
                    }
                    t.insert(key, m);
                    b
                });
                this.release(ctx, &mut pkt, &released);
                winner
            }
        };
        let Some(addr) = self.backends.get(backend as usize).copied() else {
            return out.drop(pkt, "bad backend index");
        };
        if ip_bytes_mut(&mut pkt).is_some_and(|ip| set_ipv4_addr(ip, true, addr)) {
            self.balanced += 1;
            self.send(0, pkt, out);
        } else {
            out.drop(pkt, "not IPv4");
        }
    }

    fn on_backend(&mut self, ctx: &mut Ctx, mut pkt: Packet, out: &mut Out) {
        let ip = ip_bytes(&pkt);
        let (flow, backend) = match FlowId::of_ipv4(ip) {
            Some(f) if !matches!(self.port, Some(p) if p != f.sport) => {
                match self.backends.iter().position(|b| *b == f.saddr) {
                    Some(i) => (f, i as u16),
                    None => return self.send(1, pkt, out),
                }
            }
            _ => return self.send(1, pkt, out),
        };
        let flags = tcp_flags(ip);
        let key = FlowKey(FlowId {
            saddr: flow.daddr,
            sport: flow.dport,
            daddr: self.vip,
            dport: flow.sport,
            proto: flow.proto,
        });
        let slot = self.slot_of(&key);
        let now = ctx.now_ns();
        let this = &*self;
        let res = this
            .map
            .access(ctx, &mut pkt, slot, |t| match t.get_mut(&key) {
                Some(m) if m.backend == backend && !this.expired(m, now) => {
                    Ok(Self::track(m, flags, false, now))
                }
                _ => Err(()),
            });
        match res {
            Ok(release) => {
                if let Some(b) = release {
                    this.release(ctx, &mut pkt, &[b]);
                }
                let vip = self.vip;
                if ip_bytes_mut(&mut pkt).is_some_and(|ip| set_ipv4_addr(ip, false, vip)) {
                    self.replies += 1;
                    self.send(1, pkt, out);
                } else {
                    out.drop(pkt, "not IPv4");
                }
            }
            Err(()) => out.drop(pkt, "no connection"),
        }
    }

    fn per_backend(&self, f: impl Fn(&BackendLoad, usize) -> u64) -> String {
        let load = self.load.inspect(|l| {
            (0..self.backends.len())
                .map(|i| f(l, i))
                .collect::<Vec<u64>>()
        });
        let counts = load.into_iter().next().unwrap_or_default();
        self.backends
            .iter()
            .zip(counts)
            .map(|(a, n)| format!("{}:{n}", fmt_ipv4(*a)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Element for LoadBalancer {
    fn ports(&self) -> Ports {
        Ports {
            inputs: (2, 2),
            outputs: (1, 2),
        }
    }

    fn push(&mut self, ctx: &mut Ctx, port: usize, pkt: Packet, out: &mut Out) {
        if port == 0 {
            self.on_client(ctx, pkt, out)
        } else {
            self.on_backend(ctx, pkt, out)
        }
    }

    fn stats(&self) -> Vec<(&'static str, Value)> {
        let active: u64 = self
            .load
            .inspect(|l| l.active.iter().sum::<u64>())
            .into_iter()
            .sum();
        vec![
            ("connections", Value::Shared(active.to_string())),
            (
                "backends",
                Value::Shared(self.per_backend(|l, i| l.total.get(i).copied().unwrap_or(0))),
            ),
            (
                "active",
                Value::Shared(self.per_backend(|l, i| l.active.get(i).copied().unwrap_or(0))),
            ),
            ("balanced", Value::Count(self.balanced)),
            ("replies", Value::Count(self.replies)),
        ]
    }

    fn save_state(&self, out: &mut Vec<u8>) {
        save(&(self.balanced, self.replies), out);
    }

    fn load_state(&mut self, buf: &[u8]) -> Result<(), String> {
        (self.balanced, self.replies) = load(buf)?;
        Ok(())
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Most connections tracked (`CAPACITY`).
pub const MAX_CAPACITY: usize = 1 << 26;
/// Most lock domains (`SLOTS`).
pub const MAX_SLOTS: usize = 1 << 20;

pub(crate) fn build_load_balancer(
    a: &mut Args,
    ctx: &mut InitCtx<'_>,
) -> Result<Built, ConfigError> {
    let vip: Ipv4Addr = a.required("VIP")?;
    let list: String = a.required("BACKENDS")?;
    let mut backends = Vec::new();
    for w in list.split_whitespace() {
        let ip: Ipv4Addr = w
            .parse()
            .map_err(|_| a.error(format!("BACKENDS: `{w}` is not an IPv4 address")))?;
        backends.push(ip.octets());
    }
    if backends.is_empty() {
        return Err(a.error("BACKENDS: needs at least one backend address"));
    }
    if backends.len() > usize::from(u16::MAX) {
        return Err(a.error("BACKENDS: at most 65535 backends"));
    }
    let port: Option<u16> = a.keyword("PORT")?;
    let policy = match a.keyword::<String>("POLICY")?.as_deref() {
        None | Some("roundrobin") | Some("rr") => Policy::RoundRobin,
        Some("random") => Policy::Random,
        Some("leastconn") | Some("lc") => Policy::LeastConn,
        Some(p) => {
            return Err(a
                .error(format!("POLICY: unknown policy `{p}`"))
                .with_help("POLICY expects roundrobin, random or leastconn".to_string()))
        }
    };
    let timeout_ns = duration_ns(a.keyword_or("TIMEOUT", Duration::from_secs(300))?);
    let close_timeout_ns =
        duration_ns(a.keyword_or("CLOSE_TIMEOUT", Duration::from_secs(10))?).min(timeout_ns);
    let capacity = a.keyword_within("CAPACITY", 65536, 1, MAX_CAPACITY)?;
    let slots = a.keyword_within("SLOTS", 64, 1, MAX_SLOTS)?;
    let n = backends.len();
    let map = ctx.shared::<MappingTable>("map", slots, |_| Default::default());
    let load = ctx.shared::<BackendLoad>("load", 1, |_| BackendLoad {
        next: 0,
        active: vec![0; n],
        total: vec![0; n],
    });
    element(LoadBalancer {
        vip: vip.octets(),
        backends,
        port,
        policy,
        timeout_ns,
        close_timeout_ns,
        slot_capacity: capacity.div_ceil(slots),
        map,
        load,
        balanced: 0,
        replies: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use ftmb_core::shared::SharedRegistry;

    const VIP: [u8; 4] = [192, 0, 2, 1];
    const B1: [u8; 4] = [10, 1, 0, 1];
    const B2: [u8; 4] = [10, 1, 0, 2];
    const B3: [u8; 4] = [10, 1, 0, 3];

    fn client(i: u8) -> [u8; 4] {
        [198, 51, 100, i]
    }

    fn lb(extra: &[&str]) -> Box<dyn Element> {
        let mut a = vec![
            "VIP 192.0.2.1",
            "BACKENDS 10.1.0.1 10.1.0.2 10.1.0.3",
            "PORT 80",
        ];
        a.extend_from_slice(extra);
        build_one("LoadBalancer", build_load_balancer, &a).unwrap()
    }

    /// Push one packet; the packet that came out and its port.
    fn send(e: &mut dyn Element, ctx: &mut Ctx, port: usize, p: Packet) -> Option<(usize, Packet)> {
        let mut out = Out::with_ports(2);
        e.push(ctx, port, p, &mut out);
        (0..2).find_map(|i| out.take(i).pop().map(|p| (i, p)))
    }

    #[test]
    fn affinity_and_both_directions_rewritten_with_valid_checksums() {
        let mut e = lb(&[]);
        let e = e.as_mut();
        let mut ctx = Ctx::new(0, 1, 1);
        let mut chosen = HashMap::new();
        for round in 0..20u16 {
            for c in 0..10u8 {
                let flags = if round == 0 { SYN } else { ACK };
                let sp = 40000 + u16::from(c);
                let (port, p) =
                    send(e, &mut ctx, 0, tcp(client(c), sp, VIP, 80, flags, b"data")).unwrap();
                assert_eq!(port, 0);
                assert!(checksums_ok(&p));
                let (src, dst) = addrs(&p);
                assert_eq!(src, client(c));
                assert!([B1, B2, B3].contains(&dst));
                assert_eq!(*chosen.entry(c).or_insert(dst), dst, "affinity");
                // The backend's reply goes back from the VIP.
                let (port, r) =
                    send(e, &mut ctx, 1, tcp(dst, 80, client(c), sp, ACK, b"reply")).unwrap();
                assert_eq!(port, 1);
                assert!(checksums_ok(&r));
                assert_eq!(addrs(&r), (VIP, client(c)));
            }
        }
        assert_eq!(stat(e, "connections"), Value::Shared("10".into()));
        assert_eq!(
            stat(e, "backends"),
            Value::Shared("10.1.0.1:4 10.1.0.2:3 10.1.0.3:3".into())
        );
        assert_eq!(stat(e, "balanced"), Value::Count(200));
        assert_eq!(stat(e, "replies"), Value::Count(200));
        // A reply from the wrong backend, or for no connection, is dropped.
        let wrong = if chosen[&0] == B1 { B2 } else { B1 };
        assert!(send(e, &mut ctx, 1, tcp(wrong, 80, client(0), 40000, ACK, b"")).is_none());
        assert!(send(e, &mut ctx, 1, tcp(B1, 80, client(99), 1, ACK, b"")).is_none());
        // UDP is balanced too, and its checksum stays valid.
        let (_, p) = send(e, &mut ctx, 0, udp(client(1), 53, VIP, 80, b"udp")).unwrap();
        assert!(checksums_ok(&p));
    }

    #[test]
    fn other_traffic_passes_unchanged() {
        let mut e = lb(&[]);
        let e = e.as_mut();
        let mut ctx = Ctx::new(0, 1, 1);
        for (port, p) in [
            (0, tcp(client(1), 1, VIP, 81, SYN, b"")),
            (0, tcp(client(1), 1, B1, 80, SYN, b"")),
            (0, icmp(client(1), VIP)),
            (1, tcp(B1, 81, client(1), 1, ACK, b"")),
            (1, tcp(client(2), 80, client(1), 1, ACK, b"")),
        ] {
            let before = p.data().to_vec();
            let (op, q) = send(e, &mut ctx, port, p).unwrap();
            assert_eq!(op, port);
            assert_eq!(q.data(), &before[..]);
        }
        assert_eq!(stat(e, "connections"), Value::Shared("0".into()));
    }

    fn distribution(policy: &str, conns: u16) -> Vec<u64> {
        let mut e = lb(&[policy]);
        let mut ctx = Ctx::new(0, 1, 9);
        let mut counts = vec![0u64; 3];
        for c in 0..conns {
            let (_, p) = send(
                e.as_mut(),
                &mut ctx,
                0,
                tcp(client(1), 1000 + c, VIP, 80, SYN, b""),
            )
            .unwrap();
            let (_, dst) = addrs(&p);
            counts[usize::from(dst[3] - 1)] += 1;
        }
        counts
    }

    #[test]
    fn policies_distribute() {
        assert_eq!(distribution("POLICY roundrobin", 300), vec![100, 100, 100]);
        assert_eq!(distribution("POLICY leastconn", 300), vec![100, 100, 100]);
        let r = distribution("POLICY random", 3000);
        assert!(r.iter().all(|&n| (800..1200).contains(&n)), "{r:?}");
        assert_eq!(r, distribution("POLICY random", 3000), "random is seeded");
    }

    #[test]
    fn leastconn_prefers_idle_backends_and_close_releases() {
        let mut e = lb(&["POLICY leastconn"]);
        let e = e.as_mut();
        let mut ctx = Ctx::new(0, 1, 1);
        let mut dsts = Vec::new();
        for c in 0..3u16 {
            let (_, p) = send(e, &mut ctx, 0, tcp(client(1), 1000 + c, VIP, 80, SYN, b"")).unwrap();
            dsts.push(addrs(&p).1);
        }
        // Close connection 1: FIN both ways.
        send(
            e,
            &mut ctx,
            0,
            tcp(client(1), 1001, VIP, 80, FIN | ACK, b""),
        )
        .unwrap();
        send(
            e,
            &mut ctx,
            1,
            tcp(dsts[1], 80, client(1), 1001, FIN | ACK, b""),
        )
        .unwrap();
        assert_eq!(stat(e, "connections"), Value::Shared("2".into()));
        // The last ACK still goes to the same backend.
        let (_, p) = send(e, &mut ctx, 0, tcp(client(1), 1001, VIP, 80, ACK, b"")).unwrap();
        assert_eq!(addrs(&p).1, dsts[1]);
        // A new connection goes to the now idle backend.
        let (_, p) = send(e, &mut ctx, 0, tcp(client(1), 2000, VIP, 80, SYN, b"")).unwrap();
        assert_eq!(addrs(&p).1, dsts[1]);
        // RST closes too.
        send(e, &mut ctx, 1, tcp(dsts[0], 80, client(1), 1000, RST, b"")).unwrap();
        assert_eq!(stat(e, "connections"), Value::Shared("2".into()));
        // Idle expiry releases the backend on the next lookup.
        ctx.set_now_ns(400_000_000_000);
        let (_, p) = send(e, &mut ctx, 0, tcp(client(1), 1002, VIP, 80, ACK, b"")).unwrap();
        assert_eq!(addrs(&p).1, B3, "expired: rebalanced to the least loaded");
        assert_eq!(
            stat(e, "active"),
            Value::Shared("10.1.0.1:0 10.1.0.2:1 10.1.0.3:1".into())
        );
        assert_eq!(dsts, vec![B1, B2, B3]);
    }

    #[test]
    fn two_workers_share_the_mapping() {
        let mut shared = SharedRegistry::new();
        let texts = ["VIP 192.0.2.1", "BACKENDS 10.1.0.1 10.1.0.2"];
        let mut ws =
            build_workers("LoadBalancer", build_load_balancer, &texts, &mut shared, 2).unwrap();
        let mut c0 = Ctx::new(0, 2, 1);
        let mut c1 = Ctx::new(1, 2, 2);
        let mut first = Vec::new();
        for c in 0..8u16 {
            let (_, p) = send(
                ws[0].as_mut(),
                &mut c0,
                0,
                tcp(client(3), 500 + c, VIP, 443, SYN, b""),
            )
            .unwrap();
            first.push(addrs(&p).1);
        }
        for c in 0..8u16 {
            // Later packets of the connection, and its replies, on worker 1.
            let (_, p) = send(
                ws[1].as_mut(),
                &mut c1,
                0,
                tcp(client(3), 500 + c, VIP, 443, ACK, b""),
            )
            .unwrap();
            assert_eq!(addrs(&p).1, first[c as usize]);
            let (_, r) = send(
                ws[1].as_mut(),
                &mut c1,
                1,
                tcp(first[c as usize], 443, client(3), 500 + c, ACK, b""),
            )
            .unwrap();
            assert_eq!(addrs(&r).0, VIP);
        }
        // Round robin over the shared cursor alternates.
        assert_eq!(first.iter().filter(|a| **a == B1).count(), 4);
        assert_eq!(
            stat(ws[0].as_ref(), "connections"),
            Value::Shared("8".into())
        );
        assert_eq!(
            stat(ws[1].as_ref(), "backends"),
            Value::Shared("10.1.0.1:4 10.1.0.2:4".into())
        );
        let total = ws
            .iter()
            .map(|w| stat(w.as_ref(), "balanced"))
            .reduce(Value::combine)
            .unwrap();
        assert_eq!(total, Value::Count(16));
    }

    #[test]
    fn capacity_evicts_least_recently_used() {
        let mut e = lb(&["SLOTS 1", "CAPACITY 2"]);
        let e = e.as_mut();
        let mut ctx = Ctx::new(0, 1, 1);
        for c in 0..3u16 {
            ctx.set_now_ns(u64::from(c));
            send(e, &mut ctx, 0, tcp(client(1), 1000 + c, VIP, 80, SYN, b"")).unwrap();
        }
        assert_eq!(stat(e, "connections"), Value::Shared("2".into()));
        assert!(send(e, &mut ctx, 1, tcp(B1, 80, client(1), 1000, ACK, b"")).is_none());
        assert!(send(e, &mut ctx, 1, tcp(B3, 80, client(1), 1002, ACK, b"")).is_some());
    }

    #[test]
    fn codecs_round_trip_and_config_errors() {
        let l = BackendLoad {
            next: 7,
            active: vec![1, 2],
            total: vec![3, 4],
        };
        let mut buf = Vec::new();
        l.encode(&mut buf);
        assert_eq!(BackendLoad::decode(&mut &buf[..]).unwrap(), l);
        let mut t = MappingTable::default();
        let f = FlowId {
            saddr: client(1),
            sport: 9,
            daddr: VIP,
            dport: 80,
            proto: 6,
        };
        t.insert(
            FlowKey(f),
            Mapping {
                backend: 2,
                fins: 1,
                closed: false,
                last_ns: 5,
            },
        );
        let mut buf = Vec::new();
        t.encode(&mut buf);
        let mut s = &buf[..];
        assert_eq!(MappingTable::decode(&mut s).unwrap(), t);
        assert!(s.is_empty());
        assert!(MappingTable::decode(&mut &buf[..buf.len() - 2]).is_err());
        let mut e = lb(&[]);
        let mut ctx = Ctx::new(0, 1, 1);
        send(
            e.as_mut(),
            &mut ctx,
            0,
            tcp(client(1), 1, VIP, 80, SYN, b""),
        )
        .unwrap();
        let mut st = Vec::new();
        e.save_state(&mut st);
        let mut e2 = lb(&[]);
        e2.load_state(&st).unwrap();
        assert_eq!(stat(e2.as_ref(), "balanced"), Value::Count(1));
        for bad in [
            &["VIP 1.2.3.4"][..],
            &["VIP x", "BACKENDS 1.1.1.1"],
            &["VIP 1.2.3.4", "BACKENDS 1.1.1.1 zz"],
            &["VIP 1.2.3.4", "BACKENDS "],
            &["VIP 1.2.3.4", "BACKENDS 1.1.1.1", "POLICY fastest"],
            &["VIP 1.2.3.4", "BACKENDS 1.1.1.1", "SLOTS 0"],
        ] {
            assert!(
                build_one("LoadBalancer", build_load_balancer, bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_packets_never_panic() {
        let mut e = lb(&[]);
        let mut ctx = Ctx::new(0, 1, 1);
        for base in [
            tcp(client(1), 1, VIP, 80, SYN, b"abc"),
            udp(B1, 80, client(1), 1, b"x"),
            icmp(client(1), VIP),
        ] {
            for p in mangled(&base) {
                for port in 0..2 {
                    let mut out = Out::with_ports(2);
                    e.push(&mut ctx, port, p.clone(), &mut out);
                }
            }
        }
    }
}
