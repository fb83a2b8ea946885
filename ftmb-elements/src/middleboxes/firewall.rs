//! `Firewall`: a stateful firewall with connection tracking.

use super::{ip_bytes, load, save, tcp, tcp_flags, FlowKey};
use crate::ipfilter::{parse_filter_rule, FilterAction, FilterError, IpExpr};
use ftmb_core::element::element;
use ftmb_core::headers::{FlowId, Ipv4View};
use ftmb_core::shared::{CodecError, Shared, StateCodec};
use ftmb_core::{Args, Built, ConfigError, Ctx, Element, InitCtx, Out, Packet, Ports, Span, Value};
use std::time::Duration;

/// State of a tracked connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// TCP: a SYN was seen, no SYN-ACK yet.
    SynSent,
    /// TCP after the handshake (or picked up mid-stream), or a UDP flow.
    Established,
    /// TCP: a FIN was seen in at least one direction.
    Closing,
    /// TCP: FINs were seen in both directions; the entry lingers for the
    /// close timeout so the last ACKs pass.
    Closed,
}

impl ConnState {
    fn code(self) -> u8 {
        match self {
            ConnState::SynSent => 0,
            ConnState::Established => 1,
            ConnState::Closing => 2,
            ConnState::Closed => 3,
        }
    }
    fn from_code(c: u8) -> Result<ConnState, CodecError> {
        Ok(match c {
            0 => ConnState::SynSent,
            1 => ConnState::Established,
            2 => ConnState::Closing,
            3 => ConnState::Closed,
            _ => return Err(CodecError(format!("bad connection state {c}"))),
        })
    }
}

/// A tracked connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn {
    /// TCP state (`Established` for UDP).
    pub state: ConnState,
    /// FINs seen: bit 0 from the inside, bit 1 from the outside.
    pub fins: u8,
    /// True when an inside packet opened the connection.
    pub inside_initiated: bool,
    /// Time of the last packet, from [`Ctx::now_ns`].
    pub last_ns: u64,
}

impl StateCodec for Conn {
    fn encode(&self, out: &mut Vec<u8>) {
        self.state.code().encode(out);
        self.fins.encode(out);
        self.inside_initiated.encode(out);
        self.last_ns.encode(out);
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        Ok(Conn {
            state: ConnState::from_code(u8::decode(inp)?)?,
            fins: u8::decode(inp)?,
            inside_initiated: bool::decode(inp)?,
            last_ns: u64::decode(inp)?,
        })
    }
}

/// One slot of the connection table: connections keyed by their flow id
/// in the inside-to-outside direction.
pub type ConnTable = ftmb_core::shared::FlowMap<FlowKey, Conn>;

/// `Firewall(RULE, ..., [DEFAULT allow|deny], [TIMEOUT t], [CLOSE_TIMEOUT t],
/// [CAPACITY n], [SLOTS m])`: a stateful firewall with connection tracking.
///
/// # Configuration
/// - `RULE`s: `allow EXPR` or `deny EXPR` (`drop EXPR` too), in the IP
///   filter language of `IPFilter` (see [`crate::ipfilter`]); the first
///   matching rule decides. Rules apply to packets from both sides.
/// - `DEFAULT`: the verdict when no rule matches (default `deny`).
/// - `TIMEOUT`: idle time after which an established connection (or a UDP
///   flow) is forgotten (default 5min).
/// - `CLOSE_TIMEOUT`: the same for half-open (SYN seen) and closing or
///   closed TCP connections (default 30s, at most `TIMEOUT`).
/// - `CAPACITY`: the most connections tracked (default 65536, 1 to
///   67108864, spread over the slots); a new connection that finds its slot
///   full, even after expired entries are purged, is dropped.
/// - `SLOTS`: lock domains of the connection table (default 64, 1 to
///   1048576).
///
/// # Behaviour
/// A packet from the inside (input 0) that belongs to a tracked connection
/// passes; otherwise, when the rules allow it, it opens a tracked connection
/// and passes; otherwise it is dropped (`denied by rule`). A packet from the
/// outside (input 1) passes when it belongs to a tracked connection (its
/// reversed flow id is tracked); otherwise, when the rules explicitly allow
/// it, it passes and is tracked too (so the inside's replies pass);
/// otherwise it is dropped (`no connection`, or `denied by rule` when a
/// `deny` rule matched).
///
/// TCP tracking: a SYN opens a connection in `SynSent`, the SYN-ACK from
/// the other side makes it `Established` (a non-SYN packet opens it
/// established, for connections picked up mid-stream), a FIN makes it
/// `Closing` and FINs from both sides `Closed`; a RST ends the connection at
/// once (the RST itself passes). A RST never opens a connection. UDP flows
/// are tracked by idle timeout only. Other IPv4 packets (ICMP, non-first
/// fragments) are judged by the rules alone. Packets that are not IPv4 are
/// dropped (`not IPv4`).
///
/// # Ports
/// Two inputs (0: inside, 1: outside). Output 0 takes passed inside packets
/// and output 1 passed outside packets; with only output 0 connected, both
/// leave on output 0.
///
/// # Handlers
/// `connections` (entries in the table, including expired ones not yet
/// purged; shared), `allowed`, `denied` (packets passed and dropped, summed
/// over workers).
///
/// # Shared state
/// `conns`: [`ConnTable`] in `SLOTS` slots, a connection's slot picked by
/// the hash of its inside-to-outside flow id, so both directions' lookups
/// hit the same slot. One access per TCP/UDP packet (lookup, create, update
/// or remove in the same access); none for other packets.
pub struct Firewall {
    rules: Vec<(bool, IpExpr)>,
    default_allow: bool,
    timeout_ns: u64,
    close_timeout_ns: u64,
    slot_capacity: usize,
    conns: Shared<ConnTable>,
    allowed: u64,
    denied: u64,
}

/// What the rules say about a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// An `allow` rule matched.
    Allow,
    /// A `deny` rule matched.
    Deny,
    /// No rule matched; `DEFAULT` applies.
    Default(bool),
}

impl Verdict {
    fn allows(self) -> bool {
        matches!(self, Verdict::Allow | Verdict::Default(true))
    }
}

/// What a table access decided.
enum Decision {
    Pass,
    Drop(&'static str),
}

impl Firewall {
    fn verdict(&self, ip: &[u8]) -> Verdict {
        match self.rules.iter().find(|(_, e)| e.matches(ip)) {
            Some((true, _)) => Verdict::Allow,
            Some((false, _)) => Verdict::Deny,
            None => Verdict::Default(self.default_allow),
        }
    }

    fn expired(&self, c: &Conn, now: u64) -> bool {
        let limit = match c.state {
            ConnState::Established => self.timeout_ns,
            _ => self.close_timeout_ns,
        };
        now.saturating_sub(c.last_ns) > limit
    }

    fn pass(&mut self, port: usize, pkt: Packet, out: &mut Out) {
        self.allowed += 1;
        let p = if out.nports() > 1 { port } else { 0 };
        out.push(p, pkt);
    }

    fn deny(&mut self, pkt: Packet, reason: &'static str, out: &mut Out) {
        self.denied += 1;
        out.drop(pkt, reason);
    }
}

/// Advance a tracked connection's TCP state for a packet with `flags` from
/// the inside (`inside`) or the outside. Returns false when the connection
/// ends (RST).
fn track_tcp(c: &mut Conn, flags: u8, inside: bool) -> bool {
    if flags & tcp::RST != 0 {
        return false;
    }
    let from_initiator = inside == c.inside_initiated;
    if c.state == ConnState::SynSent
        && !from_initiator
        && flags & (tcp::SYN | tcp::ACK) == tcp::SYN | tcp::ACK
    {
        c.state = ConnState::Established;
    }
    if flags & tcp::FIN != 0 {
        c.fins |= if inside { 1 } else { 2 };
        c.state = if c.fins == 3 {
            ConnState::Closed
        } else {
            ConnState::Closing
        };
    }
    true
}

/// The state a connection opened by a packet with `flags` starts in.
fn opening_state(flags: Option<u8>) -> ConnState {
    match flags {
        Some(f) if f & tcp::SYN != 0 && f & tcp::ACK == 0 => ConnState::SynSent,
        Some(f) if f & tcp::FIN != 0 => ConnState::Closing,
        _ => ConnState::Established,
    }
}

impl Element for Firewall {
    fn ports(&self) -> Ports {
        Ports {
            inputs: (2, 2),
            outputs: (1, 2),
        }
    }

    fn push(&mut self, ctx: &mut Ctx, port: usize, mut pkt: Packet, out: &mut Out) {
        let inside = port == 0;
        let ip = ip_bytes(&pkt);
        if Ipv4View::new(ip).is_none() {
            return self.deny(pkt, "not IPv4", out);
        }
        let verdict = self.verdict(ip);
        let Some(flow) = FlowId::of_ipv4(ip) else {
            // No ports (ICMP, later fragments): the rules alone decide.
            return match verdict {
                v if v.allows() => self.pass(port, pkt, out),
                Verdict::Deny => self.deny(pkt, "denied by rule", out),
                _ if inside => self.deny(pkt, "denied by rule", out),
                _ => self.deny(pkt, "no connection", out),
            };
        };
        let flags = tcp_flags(ip);
        let key = FlowKey(if inside { flow } else { flow.reverse() });
        let slot = (key.0.hash64() % self.conns.slots() as u64) as usize;
        let now = ctx.now_ns();
        let decision = {
            let this = &*self;
            this.conns.access(ctx, &mut pkt, slot, |table| {
                if let Some(c) = table.get_mut(&key) {
                    if !this.expired(c, now) {
                        c.last_ns = now;
                        let alive = match flags {
                            Some(f) => track_tcp(c, f, inside),
                            None => true,
                        };
                        if !alive {
                            table.remove(&key);
                        }
                        return Decision::Pass;
                    }
                    table.remove(&key);
                }
                if !verdict.allows() {
                    return Decision::Drop(match (verdict, inside) {
                        (Verdict::Deny, _) | (_, true) => "denied by rule",
                        _ => "no connection",
                    });
                }
                if flags.is_some_and(|f| f & tcp::RST != 0) {
                    // A RST is let through but opens nothing.
                    return Decision::Pass;
                }
                if table.len() >= this.slot_capacity {
                    table.retain(|_, c| !this.expired(c, now));
                    if table.len() >= this.slot_capacity {
                        return Decision::Drop("connection table full");
                    }
                }
                let mut c = Conn {
                    state: opening_state(flags),
                    fins: 0,
                    inside_initiated: inside,
                    last_ns: now,
                };
                if flags.is_some_and(|f| f & tcp::FIN != 0) {
                    c.fins = if inside { 1 } else { 2 };
                }
                table.insert(key, c);
                Decision::Pass
            })
        };
        match decision {
            Decision::Pass => self.pass(port, pkt, out),
            Decision::Drop(reason) => self.deny(pkt, reason, out),
        }
    }

    fn stats(&self) -> Vec<(&'static str, Value)> {
        let n: usize = self.conns.inspect(|t| t.len()).into_iter().sum();
        vec![
            ("connections", Value::Shared(n.to_string())),
            ("allowed", Value::Count(self.allowed)),
            ("denied", Value::Count(self.denied)),
        ]
    }

    fn save_state(&self, out: &mut Vec<u8>) {
        save(&(self.allowed, self.denied), out);
    }

    fn load_state(&mut self, buf: &[u8]) -> Result<(), String> {
        (self.allowed, self.denied) = load(buf)?;
        Ok(())
    }
}

fn filter_error(e: FilterError, text: &str, span: Span) -> ConfigError {
    let inner = if span.end - span.start == text.len() {
        let s = e.span.start.min(text.len());
        Span::new(
            span.start + s,
            span.start + e.span.end.min(text.len()).max(s + 1),
        )
    } else {
        span
    };
    ConfigError::new(format!("Firewall: {}", e.message), inner)
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Most connections tracked (`CAPACITY`).
pub const MAX_CAPACITY: usize = 1 << 26;
/// Most lock domains (`SLOTS`).
pub const MAX_SLOTS: usize = 1 << 20;

pub(crate) fn build_firewall(a: &mut Args, ctx: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let default_allow = match a.keyword::<String>("DEFAULT")?.as_deref() {
        None | Some("deny") | Some("drop") => false,
        Some("allow") => true,
        Some(other) => {
            return Err(a
                .error(format!("DEFAULT: `{other}` is not `allow` or `deny`"))
                .with_help("DEFAULT expects allow or deny".to_string()))
        }
    };
    let timeout_ns = duration_ns(a.keyword_or("TIMEOUT", Duration::from_secs(300))?);
    let close_timeout_ns =
        duration_ns(a.keyword_or("CLOSE_TIMEOUT", Duration::from_secs(30))?).min(timeout_ns);
    let capacity = a.keyword_within("CAPACITY", 65536, 1, MAX_CAPACITY)?;
    let slots = a.keyword_within("SLOTS", 64, 1, MAX_SLOTS)?;
    let mut rules = Vec::new();
    for (text, span) in a.rest_raw() {
        let (action, expr) = parse_filter_rule(&text).map_err(|e| filter_error(e, &text, span))?;
        let allow = match action {
            FilterAction::Allow => true,
            FilterAction::Deny => false,
            FilterAction::Port(_) => {
                return Err(ConfigError::new(
                    "Firewall: rules are `allow EXPR` or `deny EXPR`".to_string(),
                    span,
                ))
            }
        };
        rules.push((allow, expr));
    }
    let conns = ctx.shared::<ConnTable>("conns", slots, |_| Default::default());
    element(Firewall {
        rules,
        default_allow,
        timeout_ns,
        close_timeout_ns,
        slot_capacity: capacity.div_ceil(slots),
        conns,
        allowed: 0,
        denied: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use ftmb_core::shared::SharedRegistry;

    const IN: [u8; 4] = [10, 0, 0, 1];
    const OUT: [u8; 4] = [198, 19, 0, 9];

    fn fw(rules: &[&str]) -> Box<dyn Element> {
        build_one("Firewall", build_firewall, rules).unwrap()
    }

    /// Push one packet and report the output port it left on.
    fn send(e: &mut dyn Element, ctx: &mut Ctx, port: usize, p: Packet) -> Option<usize> {
        let mut out = Out::with_ports(2);
        e.push(ctx, port, p, &mut out);
        let r = (0..2).find(|&i| !out.take(i).is_empty());
        assert_eq!(r.is_some(), out.drops().is_empty());
        r
    }

    #[test]
    fn inside_connections_and_replies_pass_unsolicited_do_not() {
        let mut e = fw(&["allow src net 10.0.0.0/8", "TIMEOUT 60s"]);
        let mut ctx = Ctx::new(0, 1, 1);
        let e = e.as_mut();
        assert_eq!(
            send(e, &mut ctx, 0, tcp(IN, 1000, OUT, 80, SYN, b"")),
            Some(0)
        );
        assert_eq!(
            send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1000, SYN | ACK, b"")),
            Some(1)
        );
        assert_eq!(
            send(e, &mut ctx, 0, tcp(IN, 1000, OUT, 80, ACK, b"x")),
            Some(0)
        );
        assert_eq!(
            send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1000, ACK, b"yy")),
            Some(1)
        );
        // Unsolicited: other port, other host, UDP.
        assert_eq!(send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1001, ACK, b"")), None);
        assert_eq!(send(e, &mut ctx, 1, tcp(OUT, 1000, IN, 22, SYN, b"")), None);
        assert_eq!(send(e, &mut ctx, 1, udp(OUT, 53, IN, 5353, b"q")), None);
        assert_eq!(send(e, &mut ctx, 1, icmp(OUT, IN)), None);
        // UDP from inside, then its reply.
        assert_eq!(send(e, &mut ctx, 0, udp(IN, 5353, OUT, 53, b"q")), Some(0));
        assert_eq!(send(e, &mut ctx, 1, udp(OUT, 53, IN, 5353, b"a")), Some(1));
        assert_eq!(stat(e, "connections"), Value::Shared("2".into()));
        assert_eq!(stat(e, "allowed"), Value::Count(6));
        assert_eq!(stat(e, "denied"), Value::Count(4));
    }

    #[test]
    fn inside_packets_denied_by_rules_are_dropped() {
        let mut e = fw(&["allow src net 10.0.0.0/8 and dst port 80"]);
        let mut ctx = Ctx::new(0, 1, 1);
        let e = e.as_mut();
        assert_eq!(send(e, &mut ctx, 0, tcp(IN, 1000, OUT, 25, SYN, b"")), None);
        let mut out = Out::with_ports(2);
        e.push(&mut ctx, 0, tcp(IN, 1000, OUT, 25, SYN, b""), &mut out);
        assert_eq!(out.drops(), &[("denied by rule", 1)]);
        assert_eq!(
            send(e, &mut ctx, 0, tcp(IN, 1000, OUT, 80, SYN, b"")),
            Some(0)
        );
    }

    #[test]
    fn rule_precedence_first_match_wins_and_default() {
        let mut e = fw(&["deny dst port 23", "allow tcp", "DEFAULT deny"]);
        let mut ctx = Ctx::new(0, 1, 1);
        let e = e.as_mut();
        assert_eq!(send(e, &mut ctx, 0, tcp(IN, 1, OUT, 23, SYN, b"")), None);
        assert_eq!(send(e, &mut ctx, 0, tcp(IN, 1, OUT, 24, SYN, b"")), Some(0));
        assert_eq!(send(e, &mut ctx, 0, udp(IN, 1, OUT, 24, b"")), None);
        let mut e = fw(&["allow tcp", "deny dst port 23"]);
        assert_eq!(
            send(e.as_mut(), &mut ctx, 0, tcp(IN, 1, OUT, 23, SYN, b"")),
            Some(0)
        );
        // DEFAULT allow admits anything not denied, from either side.
        let mut e = fw(&["deny udp", "DEFAULT allow"]);
        let e = e.as_mut();
        assert_eq!(send(e, &mut ctx, 1, tcp(OUT, 5, IN, 22, SYN, b"")), Some(1));
        assert_eq!(send(e, &mut ctx, 1, udp(OUT, 5, IN, 22, b"")), None);
        assert_eq!(send(e, &mut ctx, 1, icmp(OUT, IN)), Some(1));
        // Outside packets explicitly allowed are tracked: the inside reply
        // passes though the rules would deny it.
        let mut e = fw(&["allow dst port 22 and dst host 10.0.0.1", "deny all"]);
        let e = e.as_mut();
        assert_eq!(send(e, &mut ctx, 1, tcp(OUT, 5, IN, 22, SYN, b"")), Some(1));
        assert_eq!(
            send(e, &mut ctx, 0, tcp(IN, 22, OUT, 5, SYN | ACK, b"")),
            Some(0)
        );
        assert_eq!(
            send(e, &mut ctx, 0, tcp(IN, 23, OUT, 5, SYN | ACK, b"")),
            None
        );
    }

    #[test]
    fn tcp_close_and_reset_end_connections() {
        let mut e = fw(&["allow src net 10.0.0.0/8", "CLOSE_TIMEOUT 10s"]);
        let mut ctx = Ctx::new(0, 1, 1);
        let e = e.as_mut();
        let sec = 1_000_000_000u64;
        // FIN from both sides: the last ACK still passes within the close
        // timeout, nothing after it.
        send(e, &mut ctx, 0, tcp(IN, 1000, OUT, 80, SYN, b""));
        send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1000, SYN | ACK, b""));
        assert_eq!(
            send(e, &mut ctx, 0, tcp(IN, 1000, OUT, 80, FIN | ACK, b"")),
            Some(0)
        );
        assert_eq!(
            send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1000, FIN | ACK, b"")),
            Some(1)
        );
        ctx.set_now_ns(5 * sec);
        assert_eq!(
            send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1000, ACK, b"")),
            Some(1)
        );
        ctx.set_now_ns(16 * sec);
        assert_eq!(send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1000, ACK, b"")), None);
        // RST from the outside ends the connection at once; the RST passes.
        send(e, &mut ctx, 0, tcp(IN, 2000, OUT, 80, SYN, b""));
        assert_eq!(
            send(e, &mut ctx, 1, tcp(OUT, 80, IN, 2000, RST | ACK, b"")),
            Some(1)
        );
        assert_eq!(send(e, &mut ctx, 1, tcp(OUT, 80, IN, 2000, ACK, b"")), None);
        // A RST from the inside opens nothing.
        assert_eq!(
            send(e, &mut ctx, 0, tcp(IN, 3000, OUT, 80, RST, b"")),
            Some(0)
        );
        assert_eq!(send(e, &mut ctx, 1, tcp(OUT, 80, IN, 3000, ACK, b"")), None);
        assert_eq!(stat(e, "connections"), Value::Shared("0".into()));
    }

    #[test]
    fn idle_connections_expire() {
        let mut e = fw(&[
            "allow src net 10.0.0.0/8",
            "TIMEOUT 60s",
            "CLOSE_TIMEOUT 5s",
        ]);
        let mut ctx = Ctx::new(0, 1, 1);
        let e = e.as_mut();
        let sec = 1_000_000_000u64;
        ctx.set_now_ns(1000 * sec);
        send(e, &mut ctx, 0, tcp(IN, 1000, OUT, 80, SYN, b""));
        send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1000, SYN | ACK, b""));
        ctx.set_now_ns(1059 * sec);
        assert_eq!(
            send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1000, ACK, b"")),
            Some(1)
        );
        ctx.set_now_ns(1118 * sec);
        assert_eq!(
            send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1000, ACK, b"")),
            Some(1)
        );
        ctx.set_now_ns(1179 * sec);
        assert_eq!(send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1000, ACK, b"")), None);
        // A half-open connection expires after the close timeout.
        send(e, &mut ctx, 0, tcp(IN, 1001, OUT, 80, SYN, b""));
        ctx.set_now_ns(1185 * sec);
        assert_eq!(
            send(e, &mut ctx, 1, tcp(OUT, 80, IN, 1001, SYN | ACK, b"")),
            None
        );
        // UDP flows use TIMEOUT.
        send(e, &mut ctx, 0, udp(IN, 7, OUT, 53, b""));
        ctx.set_now_ns(1240 * sec);
        assert_eq!(send(e, &mut ctx, 1, udp(OUT, 53, IN, 7, b"")), Some(1));
        ctx.set_now_ns(1301 * sec);
        assert_eq!(send(e, &mut ctx, 1, udp(OUT, 53, IN, 7, b"")), None);
    }

    #[test]
    fn capacity_bounds_the_table_and_expired_entries_are_purged() {
        let mut e = fw(&[
            "allow src net 10.0.0.0/8",
            "CAPACITY 4",
            "SLOTS 1",
            "TIMEOUT 1s",
        ]);
        let mut ctx = Ctx::new(0, 1, 1);
        let e = e.as_mut();
        for p in 0..4 {
            assert_eq!(
                send(e, &mut ctx, 0, udp(IN, 100 + p, OUT, 53, b"")),
                Some(0)
            );
        }
        let mut out = Out::with_ports(2);
        e.push(&mut ctx, 0, udp(IN, 200, OUT, 53, b""), &mut out);
        assert_eq!(out.drops(), &[("connection table full", 1)]);
        // Existing connections still pass.
        assert_eq!(send(e, &mut ctx, 1, udp(OUT, 53, IN, 101, b"")), Some(1));
        ctx.set_now_ns(2_000_000_000);
        assert_eq!(send(e, &mut ctx, 0, udp(IN, 200, OUT, 53, b"")), Some(0));
        assert_eq!(stat(e, "connections"), Value::Shared("1".into()));
    }

    #[test]
    fn workers_share_the_table() {
        let mut shared = SharedRegistry::new();
        let mut ws = build_workers(
            "Firewall",
            build_firewall,
            &["allow src net 10.0.0.0/8"],
            &mut shared,
            2,
        )
        .unwrap();
        let mut c0 = Ctx::new(0, 2, 1);
        let mut c1 = Ctx::new(1, 2, 2);
        assert_eq!(
            send(ws[0].as_mut(), &mut c0, 0, tcp(IN, 1, OUT, 80, SYN, b"")),
            Some(0)
        );
        assert_eq!(
            send(
                ws[1].as_mut(),
                &mut c1,
                1,
                tcp(OUT, 80, IN, 1, SYN | ACK, b"")
            ),
            Some(1)
        );
        assert_eq!(
            stat(ws[1].as_ref(), "connections"),
            Value::Shared("1".into())
        );
    }

    #[test]
    fn single_output_and_config_errors() {
        let mut e = fw(&["allow all"]);
        let mut ctx = Ctx::new(0, 1, 1);
        let mut out = Out::with_ports(1);
        e.push(&mut ctx, 1, tcp(OUT, 1, IN, 2, SYN, b""), &mut out);
        assert_eq!(out.take(0).len(), 1);
        assert_eq!(
            e.ports(),
            Ports {
                inputs: (2, 2),
                outputs: (1, 2)
            }
        );
        for bad in [
            &["allow hots 1"][..],
            &["3 tcp"],
            &["DEFAULT maybe"],
            &["SLOTS 0"],
            &["TIMEOUT x"],
        ] {
            assert!(
                build_one("Firewall", build_firewall, bad).is_err(),
                "{bad:?}"
            );
        }
        let e = build_one("Firewall", build_firewall, &["allow hots 1"])
            .err()
            .unwrap();
        assert!(e.message.starts_with("Firewall: "), "{}", e.message);
    }

    #[test]
    fn conn_codec_round_trips() {
        let mut t = ConnTable::default();
        let f = FlowId {
            saddr: IN,
            sport: 1,
            daddr: OUT,
            dport: 2,
            proto: 6,
        };
        t.insert(
            FlowKey(f),
            Conn {
                state: ConnState::Closing,
                fins: 2,
                inside_initiated: true,
                last_ns: 77,
            },
        );
        t.insert(
            FlowKey(f.reverse()),
            Conn {
                state: ConnState::Closed,
                fins: 3,
                inside_initiated: false,
                last_ns: 1,
            },
        );
        let mut buf = Vec::new();
        t.encode(&mut buf);
        let mut s = &buf[..];
        assert_eq!(ConnTable::decode(&mut s).unwrap(), t);
        assert!(s.is_empty());
        assert!(ConnTable::decode(&mut &buf[..buf.len() - 1]).is_err());
        let mut bad = Vec::new();
        Conn {
            state: ConnState::SynSent,
            fins: 0,
            inside_initiated: true,
            last_ns: 0,
        }
        .encode(&mut bad);
        bad[0] = 9;
        assert!(Conn::decode(&mut &bad[..]).is_err());
        // Worker-private counters.
        let mut e = fw(&["allow all"]);
        let mut ctx = Ctx::new(0, 1, 1);
        send(e.as_mut(), &mut ctx, 0, udp(IN, 1, OUT, 2, b""));
        let mut st = Vec::new();
        e.save_state(&mut st);
        let mut e2 = fw(&["allow all"]);
        e2.load_state(&st).unwrap();
        assert_eq!(stat(e2.as_ref(), "allowed"), Value::Count(1));
        assert!(e2.load_state(&st[..3]).is_err());
    }

    #[test]
    fn malformed_packets_never_panic() {
        let mut e = fw(&["allow src net 10.0.0.0/8 and tcp opt syn", "allow udp"]);
        let mut ctx = Ctx::new(0, 1, 1);
        for base in [
            tcp(IN, 1, OUT, 2, SYN, b"abc"),
            udp(OUT, 1, IN, 2, b"x"),
            icmp(IN, OUT),
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
