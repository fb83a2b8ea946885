//! Unit tests with hand-built packets, plus a randomized comparison of the
//! compiled matcher against a naive interpreter of the expression tree.

use super::ast::{Base, Cmp, Leaf, Node, ProtoReq};
use super::*;

// ---------------------------------------------------------------- fixtures

#[derive(Clone)]
struct Ip {
    version: u8,
    tos: u8,
    id: u16,
    /// Flags and fragment offset, as in the header.
    frag: u16,
    ttl: u8,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    /// IP options (length must be a multiple of 4).
    opts: Vec<u8>,
}

impl Ip {
    fn new(proto: u8, src: [u8; 4], dst: [u8; 4]) -> Ip {
        Ip {
            version: 4,
            tos: 0,
            id: 0x1234,
            frag: 0,
            ttl: 64,
            proto,
            src,
            dst,
            opts: Vec::new(),
        }
    }

    fn build(&self, payload: &[u8]) -> Vec<u8> {
        let hl = 20 + self.opts.len();
        let total = (hl + payload.len()) as u16;
        let mut v = vec![(self.version << 4) | (hl / 4) as u8, self.tos];
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&self.id.to_be_bytes());
        v.extend_from_slice(&self.frag.to_be_bytes());
        v.push(self.ttl);
        v.push(self.proto);
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&self.src);
        v.extend_from_slice(&self.dst);
        v.extend_from_slice(&self.opts);
        v.extend_from_slice(payload);
        v
    }
}

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

fn tcp_hdr(sport: u16, dport: u16, flags: u8, win: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags]);
    v.extend_from_slice(&win.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v
}

fn udp_hdr(sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&[0, 8, 0, 0]);
    v
}

fn icmp_hdr(ty: u8, code: u8) -> Vec<u8> {
    vec![ty, code, 0, 0, 0, 1, 0, 1]
}

fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    Ip::new(6, src, dst).build(&tcp_hdr(sport, dport, flags, 1024))
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    Ip::new(17, src, dst).build(&udp_hdr(sport, dport))
}

fn icmp(src: [u8; 4], dst: [u8; 4], ty: u8, code: u8) -> Vec<u8> {
    Ip::new(1, src, dst).build(&icmp_hdr(ty, code))
}

const A: [u8; 4] = [10, 77, 0, 5];
const B: [u8; 4] = [192, 168, 1, 1];
const H: [u8; 4] = [1, 2, 3, 4];

fn expr(s: &str) -> IpExpr {
    parse_expr(s).unwrap_or_else(|e| panic!("`{s}` failed to parse: {e}"))
}

/// Asserts `expr` gives `want` on `pkt`, both compiled and interpreted.
#[track_caller]
fn check(s: &str, pkt: &[u8], want: bool) {
    let e = expr(s);
    assert_eq!(e.matches(pkt), want, "`{s}` on {pkt:02x?}");
    assert_eq!(naive(&e.node, pkt), want, "naive `{s}` on {pkt:02x?}");
}

#[track_caller]
fn parse_err(s: &str) -> FilterError {
    match parse_expr(s) {
        Ok(e) => panic!("`{s}` unexpectedly parsed: {:?}", e.node),
        Err(e) => e,
    }
}

#[track_caller]
fn check_err(s: &str, msg_part: &str, span: std::ops::Range<usize>) {
    let e = parse_err(s);
    assert!(
        e.message.contains(msg_part),
        "`{s}`: message {:?} lacks {msg_part:?}",
        e.message
    );
    assert_eq!(e.span, span, "`{s}`: span for {:?}", e.message);
    assert!(e.span.end <= s.len());
}

// ------------------------------------------------------- naive interpreter

fn naive(node: &Node, p: &[u8]) -> bool {
    match node {
        Node::True => true,
        Node::False => false,
        Node::Not(n) => !naive(n, p),
        Node::And(v) => v.iter().all(|n| naive(n, p)),
        Node::Or(v) => v.iter().any(|n| naive(n, p)),
        Node::Leaf(l) => naive_leaf(l, p),
    }
}

fn naive_leaf(l: &Leaf, p: &[u8]) -> bool {
    let version = p.first().map(|b| b >> 4);
    let base = match l.base {
        Base::Raw => Some(0),
        Base::Ip => (version == Some(4)).then_some(0),
        Base::Transp => {
            if version != Some(4) || p.len() < 10 {
                None
            } else {
                let hl = usize::from(p[0] & 15) * 4;
                let fragoff = (usize::from(p[6] & 0x1f) << 8) | usize::from(p[7]);
                let proto_ok = match l.proto {
                    ProtoReq::Any => true,
                    ProtoReq::Is(x) => p[9] == x,
                    ProtoReq::TcpUdp => p[9] == 6 || p[9] == 17,
                };
                (hl >= 20 && fragoff == 0 && proto_ok).then_some(hl)
            }
        }
    };
    let Some(b) = base else {
        return false;
    };
    let start = b + usize::from(l.off);
    let end = start + usize::from(l.width);
    if end > p.len() {
        return false;
    }
    let mut v: u64 = 0;
    for &x in &p[start..end] {
        v = v * 256 + u64::from(x);
    }
    let v = (v >> l.shift) as u32 & l.mask;
    match l.cmp {
        Cmp::Eq(x) => v == x,
        Cmp::Ne(x) => x != v,
        Cmp::Lt(x) => x > v,
        Cmp::Le(x) => x >= v,
        Cmp::Gt(x) => x < v,
        Cmp::Ge(x) => x <= v,
        Cmp::In(a, b) => (a..=b).contains(&v),
        Cmp::NotIn(a, b) => !(a..=b).contains(&v),
    }
}

// ---------------------------------------------------- required expressions

#[test]
fn src_net_and_tcp_or_udp() {
    let s = "src net 10.77.0.0/24 and (tcp or udp)";
    check(s, &tcp(A, B, 1000, 80, SYN), true);
    check(s, &udp([10, 77, 0, 200], B, 1000, 53), true);
    check(s, &icmp(A, B, 8, 0), false);
    check(s, &tcp([10, 77, 1, 5], B, 1000, 80, SYN), false);
    check(s, &tcp(B, A, 1000, 80, SYN), false);
}

#[test]
fn dst_net_and_tcp_or_udp() {
    let s = "dst net 10.77.0.0/24 and (tcp or udp)";
    check(s, &tcp(B, A, 1000, 80, SYN), true);
    check(s, &udp(B, [10, 77, 0, 255], 1000, 53), true);
    check(s, &icmp(B, A, 8, 0), false);
    check(s, &tcp(A, B, 1000, 80, SYN), false);
    // GRE is neither TCP nor UDP.
    check(s, &Ip::new(47, B, A).build(&[0; 8]), false);
}

#[test]
fn dash_matches_everything() {
    let e = expr("-");
    assert!(e.is_always_true());
    assert_eq!(e.program_len(), 0);
    for p in [
        &[][..],
        &[0xff][..],
        &tcp(A, B, 1, 2, 0)[..],
        &[0x60; 40][..],
    ] {
        assert!(e.matches(p));
    }
    for s in ["true", "any", "all", "not false", "- or tcp"] {
        assert!(expr(s).matches(&[]), "{s}");
    }
    assert!(expr("false").is_always_false());
    assert!(!expr("false").matches(&tcp(A, B, 1, 2, 0)));
}

#[test]
fn tcp_dst_port_80_or_443() {
    let s = "tcp dst port 80 or 443";
    check(s, &tcp(A, B, 1000, 80, SYN), true);
    check(s, &tcp(A, B, 1000, 443, SYN), true);
    check(s, &udp(A, B, 1000, 443), false);
    check(s, &tcp(A, B, 443, 1000, SYN), false);
    check(s, &tcp(A, B, 1000, 8080, SYN), false);
    // Equivalent to the fully spelled-out expression.
    assert_eq!(expr(s), expr("tcp dst port 80 or tcp dst port 443"));
}

#[test]
fn not_src_host_or_icmp() {
    let s = "not (src host 1.2.3.4 or icmp)";
    check(s, &tcp(H, B, 1000, 80, SYN), false);
    check(s, &icmp(B, A, 8, 0), false);
    check(s, &udp(B, H, 1, 2), true);
    check(s, &tcp(B, H, 1000, 80, SYN), true);
}

#[test]
fn ip_frag_and_unfrag() {
    let mut ip = Ip::new(6, A, B);
    let payload = tcp_hdr(1000, 80, SYN, 1);
    let plain = ip.build(&payload);
    ip.frag = 0x4000; // DF only
    let df = ip.build(&payload);
    ip.frag = 0x2000; // MF, offset 0: first fragment
    let first = ip.build(&payload);
    ip.frag = 0x000a; // offset 10, last fragment
    let later = ip.build(&payload);
    check("ip frag", &plain, false);
    check("ip frag", &df, false);
    check("ip frag", &first, true);
    check("ip frag", &later, true);
    check("ip unfrag", &plain, true);
    check("ip unfrag", &df, true);
    check("ip unfrag", &first, false);
    check("ip unfrag", &later, false);
}

#[test]
fn syn_and_not_ack() {
    let s = "tcp opt syn and not tcp opt ack";
    check(s, &tcp(A, B, 1000, 80, SYN), true);
    check(s, &tcp(A, B, 1000, 80, SYN | ACK), false);
    check(s, &tcp(A, B, 1000, 80, ACK), false);
    check(s, &tcp(A, B, 1000, 80, FIN | RST), false);
    check(s, &udp(A, B, 1000, 80), false);
    // Click's short forms.
    assert_eq!(expr(s), expr("syn && !ack"));
    check("tcp syn", &tcp(A, B, 1, 2, SYN | ACK), true);
}

#[test]
fn transport_tests_false_on_later_fragments() {
    let mut ip = Ip::new(6, A, B);
    let payload = tcp_hdr(1000, 80, SYN, 1);
    ip.frag = 0x2000;
    let first = ip.build(&payload);
    ip.frag = 0x2005;
    let middle = ip.build(&payload);
    for (s, want_first, want_middle) in [
        ("tcp port 80", true, false),
        ("dst port 80", true, false),
        ("tcp", true, true),
        ("tcp opt syn", true, false),
        ("tcp[2:2] 80", true, false),
        ("transp[2:2] == 80", true, false),
        ("ip[22:2] 80", true, true),
        ("not tcp port 80", false, true),
        ("src host 10.77.0.5", true, true),
    ] {
        check(s, &first, want_first);
        check(s, &middle, want_middle);
    }
    let mut ip = Ip::new(1, A, B);
    ip.frag = 0x0001;
    check("icmp type echo", &ip.build(&icmp_hdr(8, 0)), false);
    ip.frag = 0;
    check("icmp type echo", &ip.build(&icmp_hdr(8, 0)), true);
}

#[test]
fn truncated_packets_never_panic() {
    let mut opt = Ip::new(6, A, B);
    opt.opts = vec![1, 1, 1, 0];
    let packets = [
        tcp(A, B, 1000, 80, SYN),
        udp(H, A, 53, 53),
        icmp(A, H, 8, 0),
        opt.build(&tcp_hdr(22, 2222, ACK, 5)),
    ];
    let exprs: Vec<IpExpr> = PRIMS.iter().map(|s| expr(s)).collect();
    for p in &packets {
        for n in 0..=p.len() {
            let prefix = &p[..n];
            for e in &exprs {
                assert_eq!(e.matches(prefix), naive(&e.node, prefix));
            }
        }
    }
    // Needed bytes decide the outcome.
    let p = tcp(A, B, 1000, 80, SYN);
    let port = expr("tcp dst port 80");
    let host = expr("dst host 192.168.1.1");
    for n in 0..=p.len() {
        assert_eq!(port.matches(&p[..n]), n >= 24, "port, len {n}");
        assert_eq!(host.matches(&p[..n]), n >= 20, "host, len {n}");
    }
    // Header length field pointing past the end, or below 5 words.
    let mut bad = p.clone();
    bad[0] = 0x4f;
    check("tcp port 80", &bad, false);
    bad[0] = 0x42;
    check("tcp port 80", &bad, false);
    check("tcp", &bad, true);
}

#[test]
fn non_ipv4_packets() {
    let mut v6 = vec![0u8; 60];
    v6[0] = 0x60;
    v6[6] = 6; // IPv6 next header = TCP (not interpreted)
    for (s, want) in [
        ("-", true),
        ("true", true),
        ("ip vers 6", true),
        ("ip vers 4", false),
        ("tcp", false),
        ("host 0.0.0.0", false),
        ("ip ttl 0", false),
        ("port 0", false),
        ("ip unfrag", false),
        ("not tcp", true),
    ] {
        check(s, &v6, want);
    }
}

// ------------------------------------------------------ Click semantics

#[test]
fn omitted_keywords_repeat_previous_primitive() {
    let s = "src host 10.0.0.1 or 10.0.0.2";
    check(s, &tcp([10, 0, 0, 2], B, 1, 2, 0), true);
    check(s, &tcp(B, [10, 0, 0, 2], 1, 2, 0), false);
    let s = "port 80 or 443";
    check(s, &udp(A, B, 1000, 443), true);
    check(s, &tcp(A, B, 443, 1000, 0), true);
    check(s, &icmp(A, B, 8, 0), false);
    let s = "tcp port 80 or 443";
    check(s, &udp(A, B, 1000, 443), false);
    check(s, &tcp(A, B, 1000, 443, 0), true);
    check("ip ttl 1 or 2 or 64", &tcp(A, B, 1, 2, 0), true);
    check("ip ttl 1 or 2", &tcp(A, B, 1, 2, 0), false);
    check("ip proto 1 or 6", &tcp(A, B, 1, 2, 0), true);
    check("ip[9] 1 or 17", &udp(A, B, 1, 2), true);
    check("ip[9] 1 or 17", &tcp(A, B, 1, 2, 0), false);
    // Qualifiers reset the carried state: `udp` is a new primitive.
    check("tcp port 80 or udp", &udp(A, B, 1, 2), true);
    // Parentheses do not reset it (as in Click).
    check("dst port 22 or (23)", &tcp(A, B, 1, 23, 0), true);
    check("dst port 22 or (23)", &tcp(A, B, 23, 1, 0), false);
    check("dst 10.77.0.5 or 1.2.3.4", &tcp(B, H, 1, 2, 0), true);
    check("dst 10.77.0.5 or 1.2.3.4", &tcp(H, B, 1, 2, 0), false);
    check(
        "10.0.0.0/24 and syn",
        &tcp([10, 0, 0, 9], B, 1, 2, SYN),
        true,
    );
    check(
        "10.0.0.0/24 and fin ack",
        &tcp(B, [10, 0, 0, 9], 1, 2, FIN | ACK),
        true,
    );
    check(
        "10.0.0.0/24 and fin ack",
        &tcp(B, [10, 0, 0, 9], 1, 2, FIN),
        false,
    );
    check("dst tcp port > 1023", &tcp(A, B, 1, 1024, 0), true);
    check("dst tcp port > 1023", &tcp(A, B, 5000, 1023, 0), false);
}

#[test]
fn hosts_and_nets() {
    let p = tcp(A, H, 1, 2, 0);
    for (s, want) in [
        ("host 1.2.3.4", true),
        ("src host 1.2.3.4", false),
        ("dst host 1.2.3.4", true),
        ("src or dst host 10.77.0.5", true),
        ("src and dst host 10.77.0.5", false),
        ("1.2.3.4", true),
        ("src 10.77.0.5", true),
        ("dest 10.77.0.5", false),
        ("ip src host 10.77.0.5", true),
        ("net 10.0.0.0/8", true),
        ("net 10/8", true),
        ("src net 10.77.0.0 mask 255.255.0.0", true),
        ("dst net 10.77.0.0 mask 255.255.0.0", false),
        ("net 10.77.0.0/255.255.255.0", true),
        ("src net 10.77.0.9/24", true),
        ("dst net 1.2.0.0/16", true),
        ("net 0.0.0.0/0", true),
        ("host != 1.2.3.4", true),
        ("dst host != 1.2.3.4", false),
        ("src host 10.77.0.5 and dst host 1.2.3.4", true),
        ("src host 10.77.0.5 && dst host 1.2.3.5", false),
    ] {
        check(s, &p, want);
    }
    check(
        "src and dst host 7.7.7.7",
        &tcp([7; 4], [7; 4], 1, 2, 0),
        true,
    );
}

#[test]
fn ports_and_protocols() {
    let t = tcp(A, B, 1234, 80, SYN);
    let u = udp(A, B, 5353, 53);
    let i = icmp(A, B, 8, 0);
    for (s, p, want) in [
        ("port http", &t, true),
        ("http", &t, true),
        ("tcp port www", &t, true),
        ("udp port 80", &t, false),
        ("src port 1234", &t, true),
        ("src port 1000-2000", &t, true),
        ("dst port 1000-2000", &t, false),
        ("port 81-90", &t, false),
        ("port != 80", &t, true),
        ("dst port != 80", &t, false),
        ("dst port >= 80", &t, true),
        ("dst port <= 79", &t, false),
        ("dst port < 81", &t, true),
        ("src port > 1234", &t, false),
        ("port 0x50", &t, true),
        ("udp dst port 53", &u, true),
        ("udp dst port domain", &u, true),
        ("port dns", &u, true),
        ("src port dns", &u, false),
        ("tcp port 53", &u, false),
        ("port 80", &i, false),
        ("ip proto 6", &t, true),
        ("ip proto tcp", &t, true),
        ("ip proto udp", &t, false),
        ("ip proto 0x11", &u, true),
        ("ip proto icmp", &i, true),
        ("ip proto > 6", &u, true),
        ("proto 17", &u, true),
        ("tcp", &t, true),
        ("udp", &t, false),
        ("icmp", &i, true),
        ("tcp or udp", &u, true),
        ("tcp || icmp", &u, false),
        ("tcp && udp", &t, false),
        ("!tcp", &u, true),
        ("! tcp", &t, false),
        ("not not tcp", &t, true),
        ("icmp type echo", &i, true),
        ("icmp type echo-reply", &i, false),
        ("icmp echo", &i, true),
        ("icmp type 8", &i, true),
        ("icmp type 8 or 0", &i, true),
        ("icmp type unreachable", &i, false),
        ("icmp code 0", &i, true),
        ("icmp type > 3", &i, true),
        ("icmp type echo", &t, false),
    ] {
        check(s, p, want);
    }
}

#[test]
fn ip_header_fields() {
    let mut ip = Ip::new(6, A, B);
    ip.tos = 0xb9; // DSCP 46, ECN 1
    ip.ttl = 64;
    ip.id = 0xbeef;
    ip.opts = vec![1, 1, 1, 0];
    let p = ip.build(&tcp_hdr(1, 2, SYN, 512));
    let len = p.len();
    for (s, want) in [
        ("ip vers 4", true),
        ("ip hl 6", true),
        ("ip hl > 5", true),
        ("ip hl 5", false),
        ("ip tos 0xb9", true),
        ("ip tos = 185", true),
        ("ip dscp 46", true),
        ("ip dscp 45", false),
        ("ip dscp > 40", true),
        ("ip ect", true),
        ("ip ect 1", true),
        ("ip ect 2", false),
        ("ip ce", false),
        ("ip ttl 64", true),
        ("ip ttl == 64", true),
        ("ip ttl != 64", false),
        ("ip ttl < 64", false),
        ("ip ttl <= 64", true),
        ("ip ttl > 63", true),
        ("ip ttl >= 65", false),
        ("ip ttl 0x40", true),
        ("ip ttl 60-70", true),
        ("ip ttl != 60-70", false),
        ("ip id 0xbeef", true),
        ("ip id 48879", true),
        ("ip tos & 0x03 == 1", true),
        ("ip[1] & 0xfc == 0xb8", true),
        ("ip[0] 0x46", true),
        ("ip[12:4] 0x0a4d0005", true),
        ("ip[12,15] 0x0a4d0005", true),
        ("tcp[13] & 0x12 == 0x02", true),
        ("tcp[13] & 0x12 == 0x12", false),
        ("tcp win 512", true),
        ("win 512", true),
        ("tcp flags == 0x02", true),
        ("tcp flags syn", true),
        ("tcp flags ack", false),
        ("tcp opt 0x12", false),
        ("transp[0:2] 1", true),
        ("udp[0:2] 1", false),
    ] {
        check(s, &p, want);
    }
    check(&format!("ip len {len}"), &p, true);
    check(&format!("ip len > {len}"), &p, false);
    let mut ce = Ip::new(17, A, B);
    ce.tos = 0x03;
    let ce = ce.build(&udp_hdr(1, 2));
    check("ip ce", &ce, true);
    check("ip ect", &ce, true);
    check("ip ect", &udp(A, B, 1, 2), false);
}

#[test]
fn precedence_and_grouping() {
    let t = tcp(A, B, 1, 80, 0);
    let u = udp(A, B, 1, 80);
    // and binds tighter than or.
    check("udp or tcp and port 81", &u, true);
    check("udp or tcp and port 81", &t, false);
    check("(udp or tcp) and port 81", &u, false);
    check("tcp port 80 and not udp", &t, true);
    check("not tcp or udp", &t, false);
    check("not (tcp or udp)", &u, false);
    check("((tcp))", &t, true);
    // Juxtaposition means and.
    check("tcp dst port 80 src port 1", &t, true);
    check("tcp dst port 80 src port 2", &t, false);
}

#[test]
fn equivalent_spellings() {
    for (a, b) in [
        ("tcp and udp", "tcp && udp"),
        ("tcp or udp", "tcp || udp"),
        ("not tcp", "!tcp"),
        ("ip ttl = 5", "ip ttl == 5"),
        ("ip ttl 5", "ip ttl = 5"),
        ("syn", "tcp opt syn"),
        ("10.0.0.1", "src or dst host 10.0.0.1"),
        ("port 80", "src or dst port 80"),
        ("tcp syn", "tcp tcp opt syn"),
    ] {
        assert_eq!(expr(a), expr(b), "`{a}` vs `{b}`");
    }
    assert_eq!("tcp".parse::<IpExpr>(), parse_expr("tcp"));
}

// ------------------------------------------------------------------ errors

#[test]
fn error_spans() {
    check_err("hots 1.2.3.4", "unknown keyword `hots`", 0..4);
    check_err("tcp and hots", "unknown keyword `hots`", 8..12);
    check_err("host", "expected address after `host`", 0..4);
    check_err("host 1.2.3", "expected address after `host`", 5..10);
    check_err("src host hots", "expected address after `host`", 9..13);
    check_err("net", "expected network address after `net`", 0..3);
    check_err("(tcp", "unbalanced parenthesis", 0..1);
    check_err("(tcp or (udp)", "unbalanced parenthesis", 0..1);
    check_err("tcp)", "unbalanced parenthesis", 3..4);
    check_err(") tcp", "unbalanced parenthesis", 0..1);
    check_err("()", "empty parentheses", 0..2);
    check_err("tcp and", "expected expression after `and`", 4..7);
    check_err("tcp or", "expected expression after `or`", 4..6);
    check_err("not", "expected expression after `not`", 0..3);
    check_err("port 70000", "out of range", 5..10);
    check_err("ip ttl 256", "out of range", 7..10);
    check_err("ip vers 16", "out of range", 8..10);
    check_err("ip ttl >", "expected value after `>`", 7..8);
    check_err("ip ttl", "expected value after `ttl`", 3..6);
    check_err("tcp $ udp", "unexpected character `$`", 4..5);
    check_err("tcp | udp", "unexpected `|`", 4..5);
    check_err("tcp é", "unexpected character `é`", 4..6);
    check_err("80", "specify a header field or `port`", 0..2);
    check_err("", "empty expression", 0..0);
    check_err("   ", "empty expression", 0..3);
    check_err("udp opt syn", "transport protocol specified twice", 4..7);
    check_err("icmp port 80", "`port` needs protocol", 0..12);
    check_err("echo", "ambiguous", 0..4);
    check_err("ip[0:7] 1", "LEN", 2..7);
    check_err("ip[0:1", "missing `]`", 2..3);
    check_err("host host 1.2.3.4", "type specified twice", 5..9);
    check_err("src dst host 1.2.3.4", "specified twice", 4..7);
    check_err("host 1.2.3.4 > 5", "specify a header field", 15..16);
    check_err("host > 1.2.3.4", "relational", 0..14);
    check_err("ip ttl & 0 == 1", "nonzero", 7..8);
    check_err("ip frag 1", "takes no value", 8..9);
    check_err("ip ttl http", "meaningless", 7..11);
    check_err("src", "incomplete primitive", 0..3);
    check_err("port 2000-1000", "expected port after `port`", 5..14);
    check_err("net 1.2.3.4 mask 300.0.0.0", "netmask", 17..26);
    check_err("tcp opt > 2", "relational", 0..11);
    let e = parse_err("hots");
    assert_eq!(e.to_string(), "unknown keyword `hots` (at bytes 0..4)");
}

// ---------------------------------------------------------- IPFilter rules

#[test]
fn filter_rules() {
    let t = tcp(H, B, 1, 80, 0);
    let (a, e) = parse_filter_rule("allow src host 1.2.3.4").expect("rule");
    assert_eq!(a, FilterAction::Allow);
    assert!(e.matches(&t));
    let (a, e) = parse_filter_rule("deny all").expect("rule");
    assert_eq!(a, FilterAction::Deny);
    assert!(e.is_always_true());
    let (a, e) = parse_filter_rule("drop udp").expect("rule");
    assert_eq!(a, FilterAction::Deny);
    assert!(!e.matches(&t));
    let (a, e) = parse_filter_rule("2 tcp dst port 80 or 443").expect("rule");
    assert_eq!(a, FilterAction::Port(2));
    assert!(e.matches(&t));
    let (a, e) = parse_filter_rule("allow").expect("rule");
    assert_eq!(a, FilterAction::Allow);
    assert!(e.matches(&[]));
    let (_, e) = parse_filter_rule("deny -").expect("rule");
    assert!(e.is_always_true());
    let err = parse_filter_rule("bogus tcp").expect_err("bad action");
    assert_eq!(err.span, 0..5);
    assert!(err.message.contains("unknown action `bogus`"));
    let err = parse_filter_rule("allow hots").expect_err("bad expr");
    assert_eq!(err.span, 6..10);
    assert!(parse_filter_rule("").is_err());
    assert!(parse_filter_rule("(tcp)").is_err());
}

// ------------------------------------------------------------- Classifier

fn ether(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 6];
    v.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[track_caller]
fn cls(s: &str) -> ClassifierPattern {
    parse_classifier(s).unwrap_or_else(|e| panic!("`{s}`: {e}"))
}

#[test]
fn classifier_patterns() {
    let ip = ether(0x0800, &tcp(A, B, 1, 80, SYN | ACK));
    let arp = ether(0x0806, &[0, 1, 8, 0, 6, 4, 0, 1]);
    assert!(cls("12/0800").matches(&ip));
    assert!(!cls("12/0800").matches(&arp));
    assert!(cls("12/0806 20/0001").matches(&arp));
    assert!(!cls("12/0806 20/0002").matches(&arp));
    assert!(cls("12/0800 23/06").matches(&ip));
    assert!(!cls("12/0800 23/11").matches(&ip));
    // TCP flags at 14 + 20 + 13 = 47: SYN|ACK = 0x12.
    assert!(cls("47/02%02").matches(&ip));
    assert!(cls("47/12%12").matches(&ip));
    assert!(!cls("47/10%10 47/00%02").matches(&ip));
    assert!(cls("33/02%12").matches(&[0; 33].iter().chain(&[0x03]).copied().collect::<Vec<_>>()));
    assert!(cls("!12/0800").matches(&arp));
    assert!(!cls("!12/0800").matches(&ip));
    assert!(cls("! 12/0800").matches(&arp));
    assert!(cls("-").matches(&[]));
    assert!(cls("-").is_always_true());
    assert!(cls("12/08??").matches(&arp));
    assert!(cls("12/0?00").matches(&ip));
    assert!(!cls("12/0?00").matches(&arp));
    assert!(cls("12/08AA%FF00").matches(&ip));
    assert!(cls("0/ffffffffffff").matches(&ip));
}

#[test]
fn classifier_out_of_range() {
    let short = [0u8; 13];
    assert!(!cls("12/0800").matches(&short));
    assert!(!cls("12/0000").matches(&short));
    assert!(cls("12/00").matches(&short));
    // A negated clause on missing bytes is satisfied, as in Click.
    assert!(cls("!12/0800").matches(&short));
    assert!(!cls("18446744073709551615/00").matches(&short));
    let p = ether(0x0800, &[]);
    for n in 0..=p.len() {
        let _ = cls("12/0800 13/00%ff !0/ff").matches(&p[..n]);
    }
}

#[test]
fn classifier_errors() {
    for (s, span) in [
        ("12/080", 3..6),
        ("12/0800%ff", 8..10),
        ("x/08", 0..1),
        ("12/zz", 3..4),
        ("12/08 13/0g", 10..11),
        ("", 0..0),
        ("- 12/0800", 0..1),
        ("12:0800", 0..7),
        ("12/", 3..3),
        ("12/0800 !", 8..9),
        ("99999999999999999999999/00", 0..23),
        ("12/0800%0?00", 9..10),
    ] {
        let e = parse_classifier(s).expect_err(s);
        assert_eq!(e.span, span, "`{s}`: {}", e.message);
    }
}

// ------------------------------------------------------- randomized check

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
}

/// Self-contained primitives (no reliance on the previous primitive).
const PRIMS: &[&str] = &[
    "-",
    "tcp",
    "udp",
    "icmp",
    "ip proto 47",
    "host 10.77.0.5",
    "src host 1.2.3.4",
    "dst host 10.77.0.5",
    "src and dst host 1.2.3.4",
    "src net 10.77.0.0/24",
    "dst net 10.0.0.0/8",
    "net 192.168.0.0 mask 255.255.0.0",
    "port 80",
    "tcp dst port 80 or 443",
    "udp src port 53",
    "src or dst port 1000-2000",
    "dst port > 1023",
    "port != 22",
    "tcp opt syn",
    "tcp opt ack",
    "fin ack",
    "tcp flags == 0x12",
    "tcp win < 1000",
    "icmp type echo",
    "icmp type echo-reply",
    "icmp code > 0",
    "ip frag",
    "ip unfrag",
    "ip ect",
    "ip ce",
    "ip vers 4",
    "ip vers 6",
    "ip hl > 5",
    "ip tos 0x10",
    "ip dscp 46",
    "ip ttl < 10",
    "ip ttl >= 64",
    "ip id 7",
    "ip len < 60",
    "ip[9] 17",
    "tcp[13] & 0x12 == 0x12",
    "transp[0:2] 80",
    "udp[2:2] 53",
    "ip[12:3] 0x0a4d00",
];

fn random_expr(r: &mut XorShift, depth: u32) -> String {
    if depth == 0 || r.below(3) == 0 {
        return r.pick(PRIMS).to_string();
    }
    let a = random_expr(r, depth - 1);
    let b = random_expr(r, depth - 1);
    match r.below(6) {
        0 => format!("({a}) and ({b})"),
        1 => format!("({a}) or ({b})"),
        2 => format!("not ({a})"),
        3 => format!("({a}) ({b})"),
        4 => format!("!({a}) || ({b})"),
        _ => format!("({a}) && !({b})"),
    }
}

fn random_packet(r: &mut XorShift) -> Vec<u8> {
    if r.below(10) == 0 {
        let n = r.below(80);
        return (0..n).map(|_| r.next() as u8).collect();
    }
    let addrs = [A, B, H, [10, 77, 0, 200], [10, 1, 2, 3], [192, 168, 9, 9]];
    let ports = [80, 443, 53, 22, 1000, 1500, 2000, 8080, 65535, 0];
    let protos = [6, 6, 17, 17, 1, 47, 0];
    let mut ip = Ip::new(r.pick(&protos), r.pick(&addrs), r.pick(&addrs));
    let rnd_tos = r.next() as u8;
    ip.tos = r.pick(&[0, 0x10, 0xb8, 0xb9, 0x03, rnd_tos]);
    ip.ttl = r.pick(&[1, 5, 64, 128, 255]);
    ip.id = r.pick(&[7, 0, 0xffff]);
    ip.frag = r.pick(&[0, 0, 0x4000, 0x2000, 0x2003, 0x0010]);
    if r.below(4) == 0 {
        ip.opts = vec![1; 4 * (1 + r.below(3))];
    }
    if r.below(20) == 0 {
        ip.version = r.pick(&[6, 0, 15]);
    }
    let payload = match ip.proto {
        6 => {
            let rnd = r.next() as u8;
            let flags = r.pick(&[SYN, SYN | ACK, ACK, FIN | ACK, RST, rnd]);
            tcp_hdr(r.pick(&ports), r.pick(&ports), flags, r.pick(&[512, 5000]))
        }
        17 => udp_hdr(r.pick(&ports), r.pick(&ports)),
        1 => icmp_hdr(r.pick(&[0, 3, 8, 11]), r.pick(&[0, 1])),
        _ => (0..8).map(|_| r.next() as u8).collect(),
    };
    let mut p = ip.build(&payload);
    if r.below(4) == 0 {
        p[0] = (p[0] & 0xf0) | r.below(16) as u8;
    }
    if r.below(4) == 0 {
        let n = r.below(p.len() + 1);
        p.truncate(n);
    }
    p
}

#[test]
fn compiled_matches_naive_interpreter() {
    let mut r = XorShift(0x9e37_79b9_7f4a_7c15);
    let packets: Vec<Vec<u8>> = (0..400).map(|_| random_packet(&mut r)).collect();
    let mut hits = 0usize;
    let mut total = 0usize;
    for _ in 0..300 {
        let s = random_expr(&mut r, 3);
        let e = expr(&s);
        for p in &packets {
            let got = e.matches(p);
            assert_eq!(got, naive(&e.node, p), "`{s}` on {p:02x?}");
            hits += usize::from(got);
            total += 1;
        }
    }
    // The generator must exercise both outcomes substantially.
    assert!(hits > total / 10 && hits < total * 9 / 10, "{hits}/{total}");
}

#[test]
fn every_primitive_hits_and_misses() {
    let mut r = XorShift(12345);
    let packets: Vec<Vec<u8>> = (0..2000).map(|_| random_packet(&mut r)).collect();
    for s in PRIMS.iter().filter(|s| **s != "-") {
        let e = expr(s);
        let n = packets.iter().filter(|p| e.matches(p)).count();
        assert!(n > 0 && n < packets.len(), "`{s}` matched {n} packets");
    }
}

#[test]
fn parser_survives_token_soup() {
    let vocab = [
        "tcp",
        "udp",
        "icmp",
        "host",
        "net",
        "port",
        "src",
        "dst",
        "or",
        "and",
        "not",
        "(",
        ")",
        "[",
        "]",
        "!",
        "&&",
        "||",
        "&",
        "==",
        "!=",
        "<",
        ">=",
        "1.2.3.4",
        "10.0.0.0/8",
        "80",
        "0x50",
        "1000-2000",
        "mask",
        "255.0.0.0",
        "ip",
        "proto",
        "ttl",
        "opt",
        "syn",
        "echo",
        "type",
        "http",
        "-",
        "true",
        "false",
        "frag",
        "ect",
        "ce",
        "vers",
        ":",
        ",",
        "transp",
        "é",
        "$",
        "|",
        "hl",
        "1",
    ];
    let mut r = XorShift(0xdead_beef);
    let mut ok = 0;
    for _ in 0..20_000 {
        let n = 1 + r.below(8);
        let s: Vec<&str> = (0..n).map(|_| r.pick(&vocab)).collect();
        let s = s.join(if r.below(2) == 0 { " " } else { "" });
        match parse_expr(&s) {
            Ok(e) => {
                ok += 1;
                let p = tcp(A, H, 80, 1000, SYN);
                assert_eq!(e.matches(&p), naive(&e.node, &p), "`{s}`");
            }
            Err(e) => {
                assert!(
                    e.span.start <= e.span.end && e.span.end <= s.len(),
                    "`{s}`: {e}"
                );
                assert!(s.is_char_boundary(e.span.start) && s.is_char_boundary(e.span.end));
            }
        }
        let _ = parse_filter_rule(&s);
        let _ = parse_classifier(&s);
    }
    assert!(ok > 100, "only {ok} parsed");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}tcp{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(parse_err(&deep).message.contains("too deeply"));
    let nots = format!("{}tcp", "! ".repeat(100_000));
    assert!(parse_err(&nots).message.contains("too deeply"));
    let ok = format!("{}tcp{}", "(".repeat(50), ")".repeat(50));
    assert!(expr(&ok).matches(&tcp(A, B, 1, 2, 0)));
    // Long flat expressions are fine.
    let long = vec!["tcp port 1"; 5000].join(" or ");
    assert!(!expr(&long).matches(&tcp(A, B, 2, 3, 0)));
}
