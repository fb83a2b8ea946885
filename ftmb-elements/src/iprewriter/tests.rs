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
            stored == want || (stored == 0xffff && want == 0) || (stored == 0 && want == 0xffff),
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
