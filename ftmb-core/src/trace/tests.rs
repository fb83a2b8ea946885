//! Cross-module tests: byte-level fixtures, round trips, generator checks.

use super::r#gen::Rng;
use super::*;
use std::collections::HashMap;
use std::path::PathBuf;

/// Owned copy of a record: timestamp, data, original length, link type.
type Owned = (u64, Vec<u8>, u32, LinkType);

fn read_all(r: &mut TraceReader) -> Result<Vec<Owned>, TraceError> {
    let mut v = Vec::new();
    while let Some(rec) = r.next_record() {
        let rec = rec?;
        v.push((rec.ts_ns, rec.data.to_vec(), rec.orig_len, rec.link));
    }
    Ok(v)
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ftmb-trace-test-{}-{name}", std::process::id()))
}

fn sample_packets() -> Vec<(u64, Vec<u8>)> {
    vec![
        (1_700_000_000_123_456_789, vec![1, 2, 3, 4, 5]),
        (1_700_000_001_000_000_001, vec![]),
        (1_700_000_002_999_999_999, (0..=255u8).collect()),
    ]
}

#[test]
fn pcap_roundtrip_both_magics() {
    for nanos in [false, true] {
        let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, nanos).unwrap();
        for (ts, d) in sample_packets() {
            w.write_packet(ts, &d).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let magic = if nanos {
            PCAP_MAGIC_NANOS
        } else {
            PCAP_MAGIC_MICROS
        };
        assert_eq!(bytes[..4], magic.to_le_bytes());
        let mut r = TraceReader::from_bytes(bytes).unwrap();
        assert_eq!(r.link_type(), LinkType::Ethernet);
        assert!(matches!(r.format(), TraceFormat::Pcap { nanos: n, .. } if n == nanos));
        assert_eq!(r.records_hint(), Some(3));
        let got = read_all(&mut r).unwrap();
        assert_eq!(got.len(), 3);
        for ((ts, d), (gts, gd, olen, link)) in sample_packets().iter().zip(&got) {
            let want_ts = if nanos { *ts } else { ts / 1000 * 1000 };
            assert_eq!(*gts, want_ts);
            assert_eq!(gd, d);
            assert_eq!(*olen as usize, d.len());
            assert_eq!(*link, LinkType::Ethernet);
        }
        assert_eq!(r.position(), r.len_bytes());
        assert!(r.next_record().is_none());
    }
}

#[test]
fn writer_truncates_to_snaplen() {
    let mut w = PcapWriter::new(Vec::new(), LinkType::RawIp, false).unwrap();
    let big = vec![7u8; WRITER_SNAPLEN as usize + 10];
    w.write_packet(5, &big).unwrap();
    let mut r = TraceReader::from_bytes(w.into_inner().unwrap()).unwrap();
    let rec = r.next_record().unwrap().unwrap();
    assert_eq!(rec.data.len(), WRITER_SNAPLEN as usize);
    assert_eq!(rec.orig_len as usize, big.len());
    assert_eq!(rec.link, LinkType::RawIp);
}

#[test]
fn big_endian_pcap_by_hand() {
    #[rustfmt::skip]
    let micros: Vec<u8> = vec![
        0xa1, 0xb2, 0xc3, 0xd4, // magic, big-endian
        0x00, 0x02, 0x00, 0x04, // version 2.4
        0, 0, 0, 0, 0, 0, 0, 0, // thiszone, sigfigs
        0x00, 0x00, 0xff, 0xff, // snaplen
        0x00, 0x00, 0x00, 0x65, // linktype 101 (raw IP)
        0x00, 0x00, 0x00, 0x01, // ts_sec 1
        0x00, 0x00, 0x00, 0x02, // ts_usec 2
        0x00, 0x00, 0x00, 0x04, // incl_len 4
        0x00, 0x00, 0x00, 0x08, // orig_len 8
        0xde, 0xad, 0xbe, 0xef,
    ];
    let mut r = TraceReader::from_bytes(micros.clone()).unwrap();
    assert_eq!(r.link_type(), LinkType::RawIp);
    let rec = r.next_record().unwrap().unwrap();
    assert_eq!(rec.ts_ns, 1_000_002_000);
    assert_eq!(rec.data, &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(rec.orig_len, 8);
    assert!(r.next_record().is_none());

    let mut nanos = micros;
    nanos[2] = 0x3c;
    nanos[3] = 0x4d;
    let mut r = TraceReader::from_bytes(nanos).unwrap();
    assert!(matches!(r.format(), TraceFormat::Pcap { nanos: true, .. }));
    assert_eq!(r.next_record().unwrap().unwrap().ts_ns, 1_000_000_002);
}

/// Minimal pcapng builder for fixtures.
struct Ng {
    le: bool,
    bytes: Vec<u8>,
    /// Offsets just after each block (clean cut points).
    bounds: Vec<usize>,
}

impl Ng {
    fn new(le: bool) -> Ng {
        let mut n = Ng {
            le,
            bytes: Vec::new(),
            bounds: Vec::new(),
        };
        n.shb();
        n
    }
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.le {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.le {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    }
    fn block(&mut self, btype: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = 12 + body.len() as u32;
        let (t, l) = (self.u32(btype), self.u32(len));
        self.bytes.extend_from_slice(&t);
        self.bytes.extend_from_slice(&l);
        self.bytes.extend_from_slice(&body);
        self.bytes.extend_from_slice(&l);
        self.bounds.push(self.bytes.len());
    }
    fn shb(&mut self) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u32(0x1a2b_3c4d));
        b.extend_from_slice(&self.u16(1));
        b.extend_from_slice(&self.u16(0));
        b.extend_from_slice(&[0xff; 8]); // section length -1
        self.block(0x0a0d_0d0a, &b);
    }
    fn idb(&mut self, link: u16, tsresol: Option<u8>) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u16(link));
        b.extend_from_slice(&self.u16(0));
        b.extend_from_slice(&self.u32(0));
        // An unrelated option first (if_name, 3 bytes + padding).
        b.extend_from_slice(&self.u16(2));
        b.extend_from_slice(&self.u16(3));
        b.extend_from_slice(b"eth\0");
        if let Some(r) = tsresol {
            b.extend_from_slice(&self.u16(9));
            b.extend_from_slice(&self.u16(1));
            b.extend_from_slice(&[r, 0, 0, 0]);
        }
        b.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        self.block(1, &b);
    }
    fn epb(&mut self, iface: u32, ts: u64, data: &[u8], orig: u32) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u32(iface));
        b.extend_from_slice(&self.u32((ts >> 32) as u32));
        b.extend_from_slice(&self.u32(ts as u32));
        b.extend_from_slice(&self.u32(data.len() as u32));
        b.extend_from_slice(&self.u32(orig));
        b.extend_from_slice(data);
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        self.block(6, &b);
    }
    fn opb(&mut self, iface: u16, ts: u64, data: &[u8]) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u16(iface));
        b.extend_from_slice(&self.u16(0));
        b.extend_from_slice(&self.u32((ts >> 32) as u32));
        b.extend_from_slice(&self.u32(ts as u32));
        b.extend_from_slice(&self.u32(data.len() as u32));
        b.extend_from_slice(&self.u32(data.len() as u32));
        b.extend_from_slice(data);
        self.block(2, &b);
    }
    fn spb(&mut self, data: &[u8], orig: u32) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u32(orig));
        b.extend_from_slice(data);
        self.block(3, &b);
    }
}

fn ng_fixture(le: bool) -> Ng {
    let mut n = Ng::new(le);
    n.idb(1, None); // Ethernet, µs
    n.idb(101, Some(9)); // raw IP, ns
    n.block(0x0bad, &[1, 2, 3, 4, 5]); // unknown block: skipped
    n.epb(0, 1_500_000, &[0xaa; 5], 60);
    n.epb(1, 1_234_567_891, &[0x45, 0, 0, 20], 20);
    n.spb(&[9, 9, 9], 3);
    n.opb(1, 42, &[1, 2]);
    n.idb(113, Some(0x80 | 10)); // Linux SLL, 1/1024 s
    n.epb(2, 3 * 1024 + 512, &[7], 1);
    // Second section: interfaces reset, opposite byte order allowed.
    let mut n2 = Ng::new(!le);
    n2.idb(0, Some(3)); // BSD loopback, ms
    n2.epb(0, 2500, &[2, 0, 0, 0], 4);
    let base = n.bytes.len();
    n.bytes.extend_from_slice(&n2.bytes);
    n.bounds.extend(n2.bounds.iter().map(|b| b + base));
    n
}

#[test]
fn pcapng_two_interfaces_both_orders() {
    for le in [true, false] {
        let n = ng_fixture(le);
        let mut r = TraceReader::from_bytes(n.bytes.clone()).unwrap();
        assert_eq!(r.format(), TraceFormat::PcapNg);
        assert_eq!(r.link_type(), LinkType::Ethernet);
        assert_eq!(r.records_hint(), Some(6));
        let got = read_all(&mut r).unwrap();
        let want: Vec<Owned> = vec![
            (1_500_000_000, vec![0xaa; 5], 60, LinkType::Ethernet),
            (1_234_567_891, vec![0x45, 0, 0, 20], 20, LinkType::RawIp),
            (0, vec![9, 9, 9], 3, LinkType::Ethernet),
            (42, vec![1, 2], 2, LinkType::RawIp),
            (3_500_000_000, vec![7], 1, LinkType::LinuxSll),
            (2_500_000_000, vec![2, 0, 0, 0], 4, LinkType::Null),
        ];
        assert_eq!(got, want, "little-endian first section: {le}");
    }
}

#[test]
fn pcapng_undefined_interface_is_error() {
    let mut n = Ng::new(true);
    n.idb(1, None);
    n.epb(3, 0, &[1], 1);
    let mut r = TraceReader::from_bytes(n.bytes).unwrap();
    let e = r.next_record().unwrap().unwrap_err();
    assert!(matches!(e, TraceError::Malformed { .. }), "{e}");
    assert!(r.next_record().is_none());
}

/// Cuts `bytes` at every length; clean ends only at `bounds`.
fn check_truncations(bytes: &[u8], bounds: &[usize], min_ok: usize) {
    for cut in 0..=bytes.len() {
        let mut saw_err = false;
        let mut count = 0;
        match TraceReader::from_bytes(bytes[..cut].to_vec()) {
            Err(_) => saw_err = true,
            Ok(mut r) => {
                while let Some(rec) = r.next_record() {
                    match rec {
                        Ok(rec) => {
                            count += 1;
                            assert!(rec.data.len() <= cut);
                        }
                        Err(e) => {
                            saw_err = true;
                            let _ = e.to_string();
                        }
                    }
                }
                assert!(r.position() <= cut);
            }
        }
        let clean = bounds.contains(&cut);
        assert_eq!(saw_err, !clean, "cut at {cut}, {count} records");
        if cut < min_ok {
            assert!(saw_err, "cut {cut}");
        }
    }
}

#[test]
fn truncation_never_panics_pcap() {
    let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, true).unwrap();
    let mut bounds = vec![24];
    let mut at = 24;
    for (ts, d) in sample_packets() {
        w.write_packet(ts, &d).unwrap();
        at += 16 + d.len();
        bounds.push(at);
    }
    let bytes = w.into_inner().unwrap();
    check_truncations(&bytes, &bounds, 24);
}

#[test]
fn truncation_never_panics_pcapng() {
    for le in [true, false] {
        let n = ng_fixture(le);
        check_truncations(&n.bytes, &n.bounds, 28);
    }
}

#[test]
fn truncated_final_record_reports_offset() {
    let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, false).unwrap();
    w.write_packet(1, &[1; 10]).unwrap();
    w.write_packet(2, &[2; 10]).unwrap();
    let mut bytes = w.into_inner().unwrap();
    bytes.truncate(bytes.len() - 3);
    let mut r = TraceReader::from_bytes(bytes).unwrap();
    assert!(r.next_record().unwrap().is_ok());
    let e = r.next_record().unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            TraceError::TruncatedRecord {
                offset: 50,
                index: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("byte offset 50 (record 1)"), "{e}");
    assert!(r.next_record().is_none());
}

#[test]
fn absurd_caplen() {
    let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, false).unwrap();
    w.write_packet(1, &[1; 10]).unwrap();
    let mut bytes = w.into_inner().unwrap();
    bytes[32..36].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let mut r = TraceReader::from_bytes(bytes).unwrap();
    let e = r.next_record().unwrap().unwrap_err();
    assert!(matches!(e, TraceError::CaplenTooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("absurdly large"));
}

#[test]
fn not_a_pcap() {
    let e = TraceReader::from_bytes(b"\x7fELF\x02\x01\x01\0".to_vec()).unwrap_err();
    assert!(matches!(e, TraceError::NotPcap { .. }));
    assert_eq!(
        e.to_string(),
        "not a pcap or pcapng file (starts with 0x7f454c46)"
    );
    let e = TraceReader::from_bytes(Vec::new()).unwrap_err();
    assert!(matches!(e, TraceError::TruncatedHeader { .. }), "{e:?}");
    let e = TraceReader::from_bytes(vec![0xd4, 0xc3, 0xb2, 0xa1, 0, 2]).unwrap_err();
    assert!(e.to_string().contains("pcap global"), "{e}");
}

#[test]
fn open_files() {
    let p = temp_path("open.pcap");
    {
        let mut w = PcapWriter::create(&p, LinkType::Ethernet, false).unwrap();
        for (ts, d) in sample_packets() {
            w.write_packet(ts, &d).unwrap();
        }
        w.flush().unwrap();
    }
    let mut r = TraceReader::open(&p).unwrap();
    assert_eq!(read_all(&mut r).unwrap().len(), 3);
    drop(r);

    std::fs::write(&p, b"hello world, not a trace").unwrap();
    let e = TraceReader::open(&p).unwrap_err();
    assert!(e.to_string().contains("0x68656c6c"), "{e}");

    std::fs::write(&p, b"").unwrap();
    let e = TraceReader::open(&p).unwrap_err();
    assert!(matches!(e, TraceError::TruncatedHeader { .. }), "{e:?}");
    std::fs::remove_file(&p).unwrap();

    let missing = temp_path("does-not-exist.pcap");
    let e = TraceReader::open(&missing).unwrap_err();
    assert!(matches!(e, TraceError::Io { .. }));
    assert!(e.to_string().contains("does-not-exist.pcap"), "{e}");
}

/// A trace another process truncates while it is being read: the reader
/// replays what it read when it opened the file; it never dies of SIGBUS
/// (a memory-mapped reader touched pages past the new end of the file).
#[test]
fn a_trace_truncated_while_read_does_not_kill_the_reader() {
    let p = temp_path("shrinks.pcap");
    let frame = vec![0xabu8; 1400];
    let n = 200; // about 280 KiB: many pages past the new end
    {
        let mut w = PcapWriter::create(&p, LinkType::Ethernet, false).unwrap();
        for i in 0..n {
            w.write_packet(i as u64 * 1000, &frame).unwrap();
        }
        w.flush().unwrap();
    }
    let mut r = TraceReader::open(&p).unwrap();
    let first = r.next_record().expect("a record").expect("valid");
    assert_eq!(first.data.len(), frame.len());
    // Cut the file to its global header, as `> file` or a rotating writer
    // would, then read on.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(24)
        .unwrap();
    let rest = read_all(&mut r).expect("the rest as it was read");
    assert_eq!(rest.len(), n - 1);
    assert!(rest.iter().all(|(_, d, _, _)| d == &frame));
    // Opened now, the file is what is left of it: no packets.
    let mut again = TraceReader::open(&p).unwrap();
    assert!(read_all(&mut again).unwrap().is_empty());
    // Cut inside a record: a truncated trace, reported as an error.
    {
        let mut w = PcapWriter::create(&p, LinkType::Ethernet, false).unwrap();
        w.write_packet(0, &frame).unwrap();
        w.flush().unwrap();
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(24 + 16 + 100)
        .unwrap();
    let mut cut = TraceReader::open(&p).unwrap();
    assert!(
        read_all(&mut cut).is_err(),
        "a record cut short is an error"
    );
    std::fs::remove_file(&p).unwrap();
}

// ---------------------------------------------------------------- generator

fn gen_bytes(spec: &TraceSpec) -> (Vec<u8>, GenStats) {
    let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, true).unwrap();
    let stats = generate(spec, &mut w).unwrap();
    (w.into_inner().unwrap(), stats)
}

fn small_spec() -> TraceSpec {
    TraceSpec {
        flows: 300,
        packets: 20_000,
        seed: 7,
        concurrency: 32,
        ..TraceSpec::default()
    }
}

#[test]
fn rng_is_deterministic() {
    let mut a = Rng::new(1);
    let mut b = Rng::new(1);
    let mut c = Rng::new(2);
    let va: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
    let vb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
    let vc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
    assert_eq!(va, vb);
    assert_ne!(va, vc);
    for _ in 0..1000 {
        assert!(a.below(10) < 10);
        let f = a.f64();
        assert!((0.0..1.0).contains(&f));
    }
}

#[test]
fn generator_deterministic() {
    let spec = small_spec();
    let (a, sa) = gen_bytes(&spec);
    let (b, sb) = gen_bytes(&spec);
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    let (c, _) = gen_bytes(&TraceSpec { seed: 8, ..spec });
    assert_ne!(a, c);
}

/// Canonical 5-tuple, protocol, TCP flags (0 for UDP), is-client->server.
type Key = ([u8; 4], [u8; 4], u16, u16, u8);

struct Parsed {
    key: Key,
    from_client: bool,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: usize,
}

fn parse_and_verify(d: &[u8], spec: &TraceSpec) -> Parsed {
    assert_eq!(&d[12..14], &[0x08, 0x00]);
    let ip = &d[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(ipv4_checksum(ip), 0, "IPv4 header checksum");
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    assert_eq!(total + 14, d.len());
    let proto = ip[9];
    let src: [u8; 4] = ip[12..16].try_into().unwrap();
    let dst: [u8; 4] = ip[16..20].try_into().unwrap();
    let seg = &d[34..];
    assert_eq!(l4_checksum_v4(src, dst, proto, seg), 0, "L4 checksum");
    let sp = u16::from_be_bytes([seg[0], seg[1]]);
    let dp = u16::from_be_bytes([seg[2], seg[3]]);
    let in_net = |a: [u8; 4], net: ([u8; 4], u8)| {
        let m = u32::MAX << (32 - net.1);
        u32::from_be_bytes(a) & m == u32::from_be_bytes(net.0) & m
    };
    let from_client = in_net(src, spec.inside_net);
    assert!(from_client != in_net(dst, spec.inside_net));
    assert!(in_net(
        if from_client { dst } else { src },
        spec.outside_net
    ));
    let key = if from_client {
        (src, dst, sp, dp, proto)
    } else {
        (dst, src, dp, sp, proto)
    };
    let (flags, seq, ack, hl) = match proto {
        6 => (
            seg[13],
            u32::from_be_bytes(seg[4..8].try_into().unwrap()),
            u32::from_be_bytes(seg[8..12].try_into().unwrap()),
            20,
        ),
        17 => {
            assert_eq!(u16::from_be_bytes([seg[4], seg[5]]) as usize, seg.len());
            (0, 0, 0, 8)
        }
        p => panic!("unexpected protocol {p}"),
    };
    let mac = if from_client { 1 } else { 2 };
    assert_eq!(d[11], mac);
    Parsed {
        key,
        from_client,
        flags,
        seq,
        ack,
        payload: seg.len() - hl,
    }
}

#[test]
fn generator_counts_checksums_and_flows() {
    let spec = small_spec();
    let (bytes, stats) = gen_bytes(&spec);
    assert_eq!(stats.packets, spec.packets);
    assert_eq!(stats.flows, spec.flows);
    assert_eq!(stats.tcp_flows + stats.udp_flows, stats.flows);
    assert!(stats.tcp_flows > stats.udp_flows);

    let mut r = TraceReader::from_bytes(bytes).unwrap();
    // Per flow: (packet count, next client seq, next server seq).
    let mut flows: HashMap<Key, (usize, u32, u32)> = HashMap::new();
    let mut tcp_flows = 0;
    let mut n = 0;
    let mut bytes_total = 0u64;
    let mut last_ts = 0;
    let mut server_pkts = 0usize;
    let mut fins = 0;
    while let Some(rec) = r.next_record() {
        let rec = rec.unwrap();
        assert!(rec.ts_ns >= last_ts);
        last_ts = rec.ts_ns;
        n += 1;
        bytes_total += rec.data.len() as u64;
        assert!(rec.data.len() <= spec.max_size);
        let p = parse_and_verify(rec.data, &spec);
        if !p.from_client {
            server_pkts += 1;
        }
        let e = flows.entry(p.key).or_insert((0, 0, 0));
        if p.key.4 == 6 {
            if e.0 == 0 {
                assert_eq!(p.flags, 0x02, "first TCP packet must be a SYN");
                tcp_flows += 1;
                e.1 = p.seq;
            } else if e.0 == 1 {
                assert_eq!(p.flags, 0x12, "second TCP packet must be a SYN-ACK");
                assert_eq!(p.ack, e.1.wrapping_add(1));
                e.1 = e.1.wrapping_add(1);
                e.2 = p.seq.wrapping_add(1);
            } else {
                let (mine, theirs) = if p.from_client {
                    (e.1, e.2)
                } else {
                    (e.2, e.1)
                };
                assert_eq!(p.seq, mine, "seq continuity");
                assert_eq!(p.ack, theirs, "ack continuity");
                let adv = p.payload as u32 + u32::from(p.flags & 0x01);
                fins += usize::from(p.flags & 0x01);
                if p.from_client {
                    e.1 = e.1.wrapping_add(adv);
                } else {
                    e.2 = e.2.wrapping_add(adv);
                }
            }
        } else if e.0 == 0 {
            assert!(p.from_client, "UDP flows start with the request");
        }
        e.0 += 1;
    }
    assert_eq!(n, spec.packets);
    assert_eq!(bytes_total, stats.bytes);
    assert_eq!(flows.len(), spec.flows);
    assert_eq!(tcp_flows, stats.tcp_flows);
    assert!(fins > 0);
    let share = server_pkts as f64 / n as f64;
    assert!((0.3..0.5).contains(&share), "server share {share}");
}

#[test]
fn generator_edge_cases() {
    // Fewer packets than flows: one packet per flow, counts still exact.
    let spec = TraceSpec {
        flows: 50,
        packets: 20,
        ..TraceSpec::default()
    };
    let (_, s) = gen_bytes(&spec);
    assert_eq!((s.packets, s.flows), (20, 20));
    // No flows requested.
    let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, false).unwrap();
    let spec = TraceSpec {
        flows: 0,
        ..TraceSpec::default()
    };
    assert!(generate(&spec, &mut w).is_err());
    // Tiny address space (1 client, 1 server, 28232 ports x 8 services):
    // error, not a hang.
    let spec = TraceSpec {
        flows: 300_000,
        packets: 300_000,
        inside_net: ([10, 0, 0, 1], 32),
        outside_net: ([198, 19, 0, 1], 32),
        tcp_fraction: 1.0,
        ..TraceSpec::default()
    };
    let mut w = PcapWriter::new(std::io::sink(), LinkType::Ethernet, false).unwrap();
    assert!(generate(&spec, &mut w).is_err());
    // Fixed frame size and all-reply traffic.
    let spec = TraceSpec {
        flows: 10,
        packets: 500,
        min_size: 100,
        max_size: 100,
        reply_fraction: 0.9,
        tcp_fraction: 0.0,
        ..TraceSpec::default()
    };
    let (b, s) = gen_bytes(&spec);
    assert_eq!(s.udp_flows, 10);
    let mut r = TraceReader::from_bytes(b).unwrap();
    while let Some(rec) = r.next_record() {
        let rec = rec.unwrap();
        assert_eq!(rec.data.len(), 100);
        parse_and_verify(rec.data, &spec);
    }
}

/// A prerequisite program for a test, or a failure saying what to
/// install: a missing tool must not pass for a passing test.
fn require_program(name: &str) {
    let found = std::process::Command::new(name)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{name} is needed by this test and is not installed: install Wireshark's \
         command-line tools (Debian: `DEBIAN_FRONTEND=noninteractive apt-get install -y \
         tshark`; .ci/run does)"
    );
}

/// Validates a generated file with an independent parser, tshark, and
/// cross-checks the pcapng reader on a file written by editcap.
#[test]
fn tshark_parses_generated_trace() {
    require_program("tshark");
    require_program("editcap");
    let p = temp_path("tshark.pcap");
    let mut w = PcapWriter::create(&p, LinkType::Ethernet, false).unwrap();
    generate(&small_spec(), &mut w).unwrap();
    drop(w);
    let out = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&p)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
        ])
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-Y",
            // Application payloads are random, so only look at checksums,
            // lengths and TCP sequence analysis.
            "ip.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\" \
             || udp.checksum.status == \"Bad\" || tcp.analysis.flags \
             || ip.len != frame.len - 14",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = String::from_utf8_lossy(&out.stdout);
    assert!(bad.trim().is_empty(), "tshark reported errors:\n{bad}");

    // Cross-check the pcapng parser on a file written by Wireshark's editcap.
    let ng = temp_path("tshark.pcapng");
    let st = std::process::Command::new("editcap")
        .args(["-F", "pcapng"])
        .arg(&p)
        .arg(&ng)
        .status()
        .expect("run editcap");
    assert!(st.success());
    let mut a = TraceReader::open(&p).unwrap();
    let mut b = TraceReader::open(&ng).unwrap();
    assert_eq!(b.format(), TraceFormat::PcapNg);
    assert_eq!(b.link_type(), LinkType::Ethernet);
    let (ra, rb) = (read_all(&mut a).unwrap(), read_all(&mut b).unwrap());
    assert_eq!(ra.len(), small_spec().packets);
    assert_eq!(ra, rb);
    std::fs::remove_file(&p).unwrap();
    std::fs::remove_file(&ng).unwrap();
}

#[test]
fn a_service_trace_addresses_every_flow_to_the_service() {
    // Every client packet goes to 192.0.2.1:80 and every server packet
    // comes from it; the flows stay distinct (client address and port),
    // and the default spec is unchanged by the option's existence.
    let base = TraceSpec {
        flows: 200,
        packets: 3_000,
        seed: 3,
        ..TraceSpec::default()
    };
    let spec = base.clone().to_service([192, 0, 2, 1], 80);
    let (b, s) = gen_bytes(&spec);
    assert_eq!((s.packets, s.flows), (3_000, 200));
    let mut r = TraceReader::from_bytes(b).unwrap();
    let mut clients = std::collections::HashSet::new();
    let (mut to, mut from) = (0, 0);
    while let Some(rec) = r.next_record() {
        let d = rec.unwrap().data.to_vec();
        let (src, dst) = (&d[26..30], &d[30..34]);
        let (sport, dport) = (
            u16::from_be_bytes([d[34], d[35]]),
            u16::from_be_bytes([d[36], d[37]]),
        );
        if dst == [192, 0, 2, 1] {
            assert_eq!(dport, 80);
            clients.insert((src.to_vec(), sport, d[23]));
            to += 1;
        } else {
            assert_eq!(src, [192, 0, 2, 1]);
            assert_eq!(sport, 80);
            from += 1;
        }
    }
    assert!(to > 0 && from > 0, "{to} to the service, {from} from it");
    assert_eq!(clients.len(), 200, "one client endpoint per flow");
    let (d1, _) = gen_bytes(&base);
    let (d2, _) = gen_bytes(&TraceSpec {
        server_port: None,
        ..base
    });
    assert_eq!(d1, d2);
}
