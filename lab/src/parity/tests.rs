use super::packet::Pkt;
use super::*;
use ftmb_core::headers::{be16, checksum_update16, set_ipv4_addr, set_l4_port, FlowId};
use ftmb_core::trace::{generate, LinkType, PcapWriter, TraceSpec};
use ftmb_elements::ether::EtherMirror;
use ftmb_elements::ip::IpMirror;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

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
    let mut flows: HashMap<FlowId, usize> = HashMap::new();
    let (mut out, mut inb) = (Vec::new(), Vec::new());
    for (k, f) in frames.iter().enumerate() {
        let p = Pkt::parse(f).expect("parse");
        let n = flows.len();
        let flow = *flows.entry(p.flow).or_insert(n);
        let mut o = f.clone();
        o[..12].copy_from_slice(&[2, 0, 0, 0, 2, 2, 2, 0, 0, 0, 2, 1]);
        let ip = &mut o[14..];
        assert!(set_ipv4_addr(ip, false, PUB) && set_l4_port(ip, false, port(flow, k)));
        dec_ttl(ip);
        out.push(o.clone());
        assert!(EtherMirror::mirror(&mut o) && IpMirror::mirror(&mut o[14..]));
        o[..12].copy_from_slice(&[2, 0, 0, 0, 1, 2, 2, 0, 0, 0, 1, 1]);
        let ip = &mut o[14..];
        assert!(set_ipv4_addr(ip, true, p.flow.saddr) && set_l4_port(ip, true, p.flow.sport));
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
fn lab(t: &[Vec<u8>], a: &(Vec<Vec<u8>>, Vec<Vec<u8>>), b: &(Vec<Vec<u8>>, Vec<Vec<u8>>)) -> Lab {
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
        r.json["directions"]["out"]["captures"]["kernel"]["translations"]["shared_public_ports"]
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
