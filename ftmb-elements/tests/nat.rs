//! The NAT config, unchanged, over the real echo trace (when
//! `../shared/traces` is beside the checkout) and over generated traces:
//! counts per direction, every reverse-translated packet identical to the
//! original, forward packets consistently translated with valid checksums,
//! and the same output with 1 and 2 workers.

use ftmb_core::headers::{FlowId, Ipv4View};
use ftmb_testkit::*;
use std::collections::{HashMap, HashSet};

const NAT: &str = include_str!("../../examples/nat.click");
const NAT_IP: [u8; 4] = [198, 18, 0, 1];

fn inside(a: [u8; 4], net: ([u8; 4], u8)) -> bool {
    let m = u32::MAX << (32 - u32::from(net.1));
    u32::from_be_bytes(a) & m == u32::from_be_bytes(net.0) & m
}

fn is_tcp_udp(ip: &[u8]) -> bool {
    Ipv4View::new(ip).is_some_and(|v| v.protocol() == 6 || v.protocol() == 17)
}

struct NatRun {
    lines: Vec<String>,
    fwd: Vec<Vec<u8>>,
    rev: Vec<Vec<u8>>,
}

fn run_nat(s: &Scratch, trace: &str, net: &str, threads: usize) -> NatRun {
    let fwd = s.s(&format!("fwd{threads}.pcap"));
    let rev = s.s(&format!("rev{threads}.pcap"));
    let (lines, _) = run_config(
        NAT,
        &[
            ("IN", trace),
            ("OUT", &fwd),
            ("OUT2", &rev),
            ("INSIDE", net),
        ],
        threads,
    );
    NatRun {
        lines,
        fwd: read_packets(&fwd),
        rev: read_packets(&rev),
    }
}

/// Check one run against the input trace; returns the forward mapping.
fn check_nat(input: &[Vec<u8>], net: ([u8; 4], u8), r: &NatRun, ordered: bool) {
    let exp_fwd: Vec<&Vec<u8>> = input
        .iter()
        .filter(|p| is_tcp_udp(&p[14..]) && inside(Ipv4View::new(&p[14..]).unwrap().src(), net))
        .collect();
    let exp_rev: Vec<Vec<u8>> = input
        .iter()
        .filter(|p| is_tcp_udp(&p[14..]) && inside(Ipv4View::new(&p[14..]).unwrap().dst(), net))
        .cloned()
        .collect();
    assert_eq!(r.lines[0], exp_fwd.len().to_string(), "forward count");
    assert_eq!(r.lines[1], exp_rev.len().to_string(), "reverse count");
    assert_eq!(r.fwd.len(), exp_fwd.len());
    // Every reverse-translated packet is identical to the original.
    if ordered {
        assert!(
            r.rev == exp_rev,
            "reverse packets differ from the originals"
        );
    } else {
        assert!(
            sorted(r.rev.clone()) == sorted(exp_rev),
            "reverse multiset differs"
        );
    }
    // Forward packets: translated source, valid checksums; each original
    // flow gets one translated tuple and no tuple serves two flows.
    let mask = |p: &[u8]| {
        let mut q = p.to_vec();
        q[24..30].fill(0); // IP checksum and source address
        q[34..36].fill(0); // source port
        let ck = if q[23] == 6 { 50 } else { 40 };
        q[ck..ck + 2].fill(0);
        q
    };
    let originals: HashMap<Vec<u8>, FlowId> = exp_fwd
        .iter()
        .map(|p| (mask(p), FlowId::of_ipv4(&p[14..]).unwrap()))
        .collect();
    let mut mapping: HashMap<FlowId, FlowId> = HashMap::new();
    let mut owner: HashMap<FlowId, FlowId> = HashMap::new();
    for p in &r.fwd {
        let ip = &p[14..];
        let v = Ipv4View::new(ip).expect("ipv4");
        assert_eq!(v.src(), NAT_IP);
        assert_eq!(ftmb_core::headers::checksum(&ip[..v.header_len()]), 0);
        assert_eq!(
            ftmb_core::trace::l4_checksum_v4(v.src(), v.dst(), v.protocol(), v.payload()),
            0,
            "transport checksum verifies"
        );
        let orig = *originals
            .get(&mask(p))
            .expect("output comes from an input packet");
        let translated = FlowId::of_ipv4(ip).unwrap();
        assert_eq!(
            *mapping.entry(orig).or_insert(translated),
            translated,
            "mapping changed"
        );
        assert_eq!(
            *owner.entry(translated).or_insert(orig),
            orig,
            "tuple given to two flows"
        );
    }
    let flows: HashSet<FlowId> = originals.values().copied().collect();
    assert_eq!(mapping.len(), flows.len());
    assert_eq!(r.lines[3], flows.len().to_string(), "rw.nmappings");
}

/// The echo trace of `../shared/traces` (beside the checkout; CI has
/// it): a test that needs it fails when it is missing, never passes.
fn echo_trace() -> String {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces/echo-500.pcap");
    assert!(
        p.exists(),
        "{} is missing: this test needs the echo trace from ../shared/traces \
         beside the checkout",
        p.display()
    );
    p.display().to_string()
}

#[test]
fn nat_on_the_echo_trace_matches_click() {
    let trace = echo_trace();
    let s = Scratch::new();
    let input = read_packets(&trace);
    let net = ([10, 77, 0, 0], 24);
    let one = run_nat(&s, &trace, "10.77.0.0/24", 1);
    assert_eq!(one.lines, vec!["53939", "28643", "0", "500"]);
    check_nat(&input, net, &one, true);
    let two = run_nat(&s, &trace, "10.77.0.0/24", 2);
    check_nat(&input, net, &two, false);
    // One client host: every source port is free, so the outputs agree
    // exactly with Click's (source port kept), as multisets across thread
    // counts.
    assert!(sorted(one.fwd.clone()) == sorted(two.fwd.clone()));
    for p in &one.fwd {
        let f = FlowId::of_ipv4(&p[14..]).unwrap();
        assert!(f.sport >= 1024);
    }
}

#[test]
fn nat_on_generated_traces_with_one_and_two_workers() {
    let s = Scratch::new();
    let trace = gen_trace(&s, "gen.pcap", 30_000, 2_000, 21);
    let input = read_packets(&trace);
    let net = ([10, 77, 0, 0], 16);
    for threads in [1, 2] {
        let r = run_nat(&s, &trace, "10.77.0.0/16", threads);
        check_nat(&input, net, &r, threads == 1);
    }
}
