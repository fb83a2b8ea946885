//! Whole-config tests: a trace in, packets and handler values out, through
//! the real runtime with 1 and 2 workers.

use ftmb_testkit::*;

#[test]
fn counter_by_protocol_adds_up_and_matches_across_thread_counts() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 20_000, 500, 3);
    let cfg = "src :: FromDump($IN, STOP true, FORCE_IP true);
        cl :: IPClassifier(tcp, udp, -);
        src -> Strip(14) -> CheckIPHeader -> cl;
        cl[0] -> tcp :: Counter -> Discard;
        cl[1] -> udp :: Counter -> Discard;
        cl[2] -> other :: Counter -> Discard;
        DriverManager(wait, print tcp.count, print udp.count, print other.count, stop);";
    let (one, r1) = run_config(cfg, &[("IN", &t)], 1);
    let (two, r2) = run_config(cfg, &[("IN", &t)], 2);
    let (piped, _) = run_config_with(cfg, &[("IN", &t)], 1, true);
    assert_eq!(one, two);
    assert_eq!(one, piped);
    let n: Vec<u64> = one.iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(n.iter().sum::<u64>(), 20_000);
    assert!(n[0] > 0 && n[1] > 0, "{n:?}");
    assert_eq!(n[2], 0);
    assert_eq!(r1.packets, 20_000);
    assert_eq!(r2.per_worker.iter().sum::<u64>(), 20_000);
    assert!(r2.per_worker.iter().all(|&c| c > 0), "{:?}", r2.per_worker);
}

#[test]
fn strip_unstrip_todump_round_trip_is_identity() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 3_000, 50, 5);
    let out = s.s("out.pcap");
    let cfg =
        "FromDump($IN, STOP true) -> Strip(14) -> Unstrip(14) -> c :: Counter -> ToDump($OUT);
        DriverManager(wait, print c.count, print c.byte_count)";
    for threads in [1, 2] {
        let (lines, r) = run_config(cfg, &[("IN", &t), ("OUT", &out)], threads);
        let inp = read_packets(&t);
        let got = read_packets(&out);
        assert_eq!(lines[0], "3000");
        let bytes: usize = inp.iter().map(|p| p.len()).sum();
        assert_eq!(lines[1], bytes.to_string());
        // The source's and the sink's own counters are in the statistics.
        let els = r.stats.as_object().expect("stats by element");
        let src = els.get("FromDump@1").expect("source entry");
        assert_eq!(src["class"], "FromDump");
        assert_eq!(src["count"], 3000);
        let sink = els.get("ToDump@5").expect("sink entry");
        assert_eq!(sink["egress"]["packets"], 3000);
        assert_eq!(sink["egress"]["bytes"], bytes as u64);
        if threads == 1 {
            assert_eq!(got, inp, "one worker keeps trace order");
        } else {
            assert_eq!(sorted(got), sorted(inp));
        }
    }
}

#[test]
fn check_ip_header_drops_bad_packets_and_trims_padding() {
    let s = Scratch::new();
    let good = udp_frame([10, 0, 0, 1], 1000, [10, 0, 0, 2], 53, 64, b"hello");
    let mut padded = good.clone();
    padded.extend_from_slice(&[0u8; 6]);
    let mut bad_ck = good.clone();
    bad_ck[24] ^= 0xff;
    let mut bad_ver = good.clone();
    bad_ver[14] = 0x65;
    let tiny = good[..20].to_vec();
    let mut bad_len = good.clone();
    bad_len[16] = 0x40;
    let t = s.path("in.pcap");
    write_trace(&t, |w| {
        for (i, f) in [&good, &padded, &bad_ck, &bad_ver, &tiny, &bad_len]
            .iter()
            .enumerate()
        {
            w.write_packet(1_000_000 * (i as u64 + 1), f).unwrap();
        }
    });
    let out = s.s("out.pcap");
    let bad = s.s("bad.pcap");
    let cfg = "src :: FromDump($IN, STOP true);
        src -> Strip(14) -> chk :: CheckIPHeader;
        chk[0] -> Unstrip(14) -> ToDump($OUT);
        chk[1] -> Unstrip(14) -> ToDump($BAD);
        DriverManager(wait, print chk.count, print chk.drops)";
    let (lines, _) = run_config(
        cfg,
        &[("IN", t.to_str().unwrap()), ("OUT", &out), ("BAD", &bad)],
        1,
    );
    assert_eq!(lines, vec!["2", "4"]);
    let got = read_packets(&out);
    assert_eq!(got, vec![good.clone(), good.clone()], "padding trimmed");
    assert_eq!(read_packets(&bad), vec![bad_ck, bad_ver, tiny, bad_len]);
}

#[test]
fn dec_ip_ttl_updates_checksum_and_diverts_expired() {
    let s = Scratch::new();
    let t = s.path("in.pcap");
    let frames: Vec<Vec<u8>> = (0..5u8)
        .map(|ttl| udp_frame([10, 0, 0, 1], 1, [10, 0, 0, 2], 2, ttl, b"x"))
        .collect();
    write_trace(&t, |w| {
        for f in &frames {
            w.write_packet(1, f).unwrap();
        }
    });
    let out = s.s("out.pcap");
    let cfg = "FromDump($IN, STOP true) -> Strip(14) -> CheckIPHeader -> d :: DecIPTTL;
        d[0] -> Unstrip(14) -> ToDump($OUT);
        d[1] -> exp :: Counter -> Discard;
        DriverManager(wait, print exp.count, print d.drops)";
    let (lines, _) = run_config(cfg, &[("IN", t.to_str().unwrap()), ("OUT", &out)], 1);
    assert_eq!(lines, vec!["2", "2"]);
    let got = read_packets(&out);
    assert_eq!(got.len(), 3);
    for (g, ttl) in got.iter().zip(2u8..) {
        assert_eq!(g[14 + 8], ttl - 1);
        assert!(ip_checksum_ok(g));
    }
}

#[test]
fn classifier_ipfilter_tee_paint() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 5_000, 100, 9);
    let cfg = "src :: FromDump($IN, STOP true, FORCE_IP true);
        src -> c :: Classifier(12/0800, -);
        c[0] -> Strip(14) -> CheckIPHeader -> f :: IPFilter(allow tcp, 1 udp, deny all);
        c[1] -> nonip :: Counter -> Discard;
        f[0] -> Paint(1) -> t :: Tee(2);
        f[1] -> Paint(0) -> ps :: PaintSwitch;
        t[0] -> tcp1 :: Counter -> Discard;
        t[1] -> tcp2 :: Counter -> Discard;
        ps[0] -> udp :: Counter -> Discard;
        ps[1] -> never :: Counter -> Discard;
        cnt :: Counter;
        DriverManager(wait, print tcp1.count, print tcp2.count, print udp.count, print never.count, print nonip.count)";
    // `cnt` is declared but unconnected: its input must be reported.
    let err = config_error(cfg, &[("IN", &t)]);
    assert!(err.contains("of `cnt` (Counter) is not connected"), "{err}");
    let cfg = cfg.replace("cnt :: Counter;", "");
    let (lines, _) = run_config(&cfg, &[("IN", &t)], 2);
    let n: Vec<u64> = lines.iter().map(|l| l.parse().unwrap()).collect();
    // The trace's own TCP and UDP packets, read from the file: `allow tcp`
    // sends exactly the TCP ones to output 0, `1 udp` exactly the UDP
    // ones to output 1 (a filter that ignored the output number, or the
    // rule, would move or drop them).
    let proto = |p: u8| -> u64 {
        read_packets(&t)
            .iter()
            .filter(|f| f.get(23) == Some(&p))
            .count() as u64
    };
    let (tcp, udp) = (proto(6), proto(17));
    assert!(tcp > 0 && udp > 0, "trace: {tcp} TCP, {udp} UDP packets");
    assert_eq!(tcp + udp, 5_000);
    assert_eq!(n[0], tcp, "allow tcp: output 0");
    assert_eq!(n[1], tcp, "Tee copies to both outputs");
    assert_eq!(n[2], udp, "1 udp: output 1, painted 0");
    assert_eq!(n[3], 0);
    assert_eq!(n[4], 0);
}

#[test]
fn store_ip_address_rewrites_with_valid_checksums() {
    let s = Scratch::new();
    let t = s.path("in.pcap");
    let f = udp_frame([10, 0, 0, 1], 1000, [10, 0, 0, 2], 53, 64, b"payload");
    write_trace(&t, |w| w.write_packet(1, &f).unwrap());
    let out = s.s("out.pcap");
    let cfg = "FromDump($IN, STOP true) -> Strip(14) -> CheckIPHeader
        -> StoreIPAddress(192.0.2.9, dst) -> Unstrip(14) -> ToDump($OUT)";
    run_config(cfg, &[("IN", t.to_str().unwrap()), ("OUT", &out)], 1);
    let got = read_packets(&out);
    assert_eq!(&got[0][30..34], &[192, 0, 2, 9]);
    assert!(ip_checksum_ok(&got[0]));
    let ip = &got[0][14..];
    assert_eq!(
        ftmb_core::trace::l4_checksum_v4([10, 0, 0, 1], [192, 0, 2, 9], 17, &ip[20..]),
        0,
        "UDP checksum verifies"
    );
}

#[test]
fn config_errors_name_file_line_column() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 10, 2, 1);
    let cases = [
        (
            "src :: FromDump($IN);\nsrc -> Countr -> Discard;",
            "bad.click:2:8",
            "did you mean `Counter`?",
        ),
        (
            "src :: FromDump($IN);\nsrc -> c :: Counter;\nc[0] -> Discard;\nc[1] -> Discard;",
            "bad.click:4:1",
            "output 1 does not exist",
        ),
        (
            "src :: FromDump($IN);\nsrc -> Strip -> Discard;",
            "bad.click:2:",
            "missing required argument LENGTH",
        ),
        (
            "src :: FromDump($INN);\nsrc -> Discard;",
            "bad.click:1:17",
            "unknown variable `$INN`",
        ),
        (
            "src :: FromDump($IN, STOP maybe) -> Discard;",
            "bad.click:1:",
            "not a boolean",
        ),
        (
            "src :: FromDump(/nonexistent.pcap) -> Discard;",
            "bad.click:1:",
            "cannot read",
        ),
    ];
    for (cfg, loc, msg) in cases {
        let e = config_error(cfg, &[("IN", &t)]);
        assert!(e.contains(loc), "want {loc} in:\n{e}");
        assert!(e.contains(msg), "want {msg} in:\n{e}");
        assert!(e.lines().count() < 25, "one screen:\n{e}");
    }
}

#[test]
fn not_a_pcap_is_a_clear_error() {
    let s = Scratch::new();
    let p = s.path("x.pcap");
    std::fs::write(&p, b"this is not a capture file at all").unwrap();
    let e = config_error("FromDump($IN) -> Discard;", &[("IN", p.to_str().unwrap())]);
    assert!(e.contains("not a pcap or pcapng file"), "{e}");
}

#[test]
fn garbage_packets_never_panic_a_worker() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 4_000, 200, 13);
    let frames = read_packets(&t);
    let bad = s.path("bad.pcap");
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    write_trace(&bad, |w| {
        for f in &frames {
            let mut g = f.clone();
            match xorshift(&mut rng) % 4 {
                0 => {
                    let n = (xorshift(&mut rng) as usize) % (g.len() + 1);
                    g.truncate(n);
                }
                1 => {
                    for _ in 0..4 {
                        let i = (xorshift(&mut rng) as usize) % g.len();
                        g[i] = xorshift(&mut rng) as u8;
                    }
                }
                2 => {
                    // Header fields that steer parsing.
                    let i = [12, 13, 14, 16, 17, 20, 21, 23, 46][(xorshift(&mut rng) % 9) as usize];
                    if i < g.len() {
                        g[i] = xorshift(&mut rng) as u8;
                    }
                }
                _ => {}
            }
            w.write_packet(1, &g).unwrap();
        }
    });
    let bad = bad.to_str().unwrap();
    let out = s.s("out.pcap");
    let out2 = s.s("out2.pcap");
    for ex in [
        "nat.click",
        "firewall.click",
        "loadbalancer.click",
        "monitor.click",
        "gen.click",
        "mazu-nat.click",
    ] {
        let cfg = example_config(ex);
        for threads in [1, 2] {
            let (_, r) = run_config(
                &cfg,
                &[
                    ("IN", bad),
                    ("OUT", &out),
                    ("OUT2", &out2),
                    ("INSIDE", EXAMPLE_INSIDE),
                ],
                threads,
            );
            // FORCE_IP sources drop what is not IP before numbering it.
            assert!(r.packets > frames.len() as u64 / 2, "{ex}: {}", r.packets);
            assert!(r.packets <= frames.len() as u64, "{ex}");
            assert_eq!(
                r.per_worker.iter().sum::<u64>(),
                r.packets,
                "{ex}: all processed"
            );
        }
    }
}

#[test]
fn truncated_trace_is_reported_not_replayed_silently() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 100, 10, 2);
    let bytes = std::fs::read(&t).unwrap();
    let cut = s.path("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let source = ftmb_core::config::Source {
        name: "t.click".into(),
        text: "FromDump($IN, STOP true) -> c :: Counter -> Discard; DriverManager(wait, print c.count)"
            .into(),
    };
    let vars = [("IN".to_string(), cut.display().to_string())]
        .into_iter()
        .collect();
    let g = ftmb_core::graph::build(&source, &vars, &ftmb_elements::registry(), 1).unwrap();
    let mut out = Vec::new();
    let r = ftmb_core::runtime::run(g, &Default::default(), &mut out, &mut |_| {});
    assert_eq!(String::from_utf8(out).unwrap(), "99\n");
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].contains("truncated record"), "{:?}", r.errors);
}

#[test]
fn live_handler_reads_and_timing() {
    let s = Scratch::new();
    let t = s.path("paced.pcap");
    let f = udp_frame([10, 0, 0, 1], 1000, [10, 0, 0, 2], 53, 64, b"x");
    // 100 packets 2 ms apart: TIMING keeps the gaps, so the run lasts
    // about 0.2 s and a read at 20 ms sees only part of the trace.
    write_trace(&t, |w| {
        for i in 0..100u64 {
            w.write_packet(1_000_000_000 + i * 2_000_000, &f).unwrap();
        }
    });
    let cfg = "FromDump($IN, STOP true, TIMING true) -> c :: Counter -> Discard;
        DriverManager(wait 20ms, print c.count, wait, print c.count)";
    for threads in [1, 2] {
        let (lines, r) = run_config(cfg, &[("IN", t.to_str().unwrap())], threads);
        let early: u64 = lines[0].parse().unwrap();
        assert!(early < 100, "read while running: {early}");
        assert_eq!(lines[1], "100");
        assert!(r.elapsed.as_millis() >= 190, "paced: {:?}", r.elapsed);
    }
}

/// Packets that arrive already numbered, as from an input logger.
struct Numbered(std::collections::VecDeque<ftmb_core::Packet>);

impl ftmb_core::Source for Numbered {
    fn framing(&self) -> ftmb_core::headers::Framing {
        ftmb_core::headers::Framing::Ethernet
    }
    fn poll(
        &mut self,
        max: usize,
        out: &mut Vec<ftmb_core::Packet>,
    ) -> Result<ftmb_core::element::SourceStatus, String> {
        for _ in 0..max {
            match self.0.pop_front() {
                Some(p) => out.push(p),
                None => return Ok(ftmb_core::element::SourceStatus::Done),
            }
        }
        Ok(ftmb_core::element::SourceStatus::Ready)
    }
    fn stop_when_done(&self) -> bool {
        true
    }
}

#[test]
fn an_external_numbered_input_replaces_the_sources() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 3_000, 100, 23);
    let cfg = "src :: FromDump($IN, STOP true);
        src -> Strip(14) -> CheckIPHeader -> c :: Counter -> Discard;
        DriverManager(wait, print c.count, print c.byte_count)";
    let (want, _) = run_config(cfg, &[("IN", &t)], 2);
    let packets: std::collections::VecDeque<ftmb_core::Packet> = read_packets(&t)
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut p = ftmb_core::Packet::from_bytes(d);
            p.anno.id = 1000 + i as u64;
            p
        })
        .collect();
    let source = ftmb_core::config::Source {
        name: "ext.click".into(),
        text: cfg.into(),
    };
    let vars = [("IN".to_string(), t.clone())].into_iter().collect();
    let mut g = ftmb_core::graph::build(&source, &vars, &ftmb_elements::registry(), 2).unwrap();
    g.external_input = Some(Box::new(Numbered(packets)));
    let mut out = Vec::new();
    let r = ftmb_core::runtime::run(g, &Default::default(), &mut out, &mut |_| {});
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let got: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn ether_and_ip_mirror_reflect_every_packet_with_valid_checksums() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 2_000, 100, 11);
    let out = s.s("out.pcap");
    let cfg = "FromDump($IN, STOP true) -> EtherMirror -> Strip(14) -> CheckIPHeader
          -> IPMirror -> Unstrip(14) -> c :: Counter -> ToDump($OUT);
        DriverManager(wait, print c.count)";
    let (lines, _) = run_config(cfg, &[("IN", &t), ("OUT", &out)], 1);
    assert_eq!(lines, vec!["2000"]);
    let inp = read_packets(&t);
    let got = read_packets(&out);
    assert_eq!(got.len(), inp.len());
    let (mut tcp, mut udp) = (0, 0);
    for (i, g) in inp.iter().zip(&got) {
        assert_eq!(&g[..6], &i[6..12], "dst MAC <- src MAC");
        assert_eq!(&g[6..12], &i[..6], "src MAC <- dst MAC");
        let (ip, gip) = (&i[14..], &g[14..]);
        assert_eq!(&gip[12..16], &ip[16..20]);
        assert_eq!(&gip[16..20], &ip[12..16]);
        assert_eq!(&gip[20..22], &ip[22..24]);
        assert_eq!(&gip[22..24], &ip[20..22]);
        match ip[9] {
            6 => {
                tcp += 1;
                assert_eq!(&gip[24..28], &ip[28..32], "seq <- ack");
                assert_eq!(&gip[28..32], &ip[24..28], "ack <- seq");
                assert_eq!(&gip[32..], &ip[32..]);
            }
            _ => {
                udp += 1;
                assert_eq!(&gip[24..], &ip[24..]);
            }
        }
        assert_eq!(&gip[..12], &ip[..12], "IP checksum and the rest unchanged");
        assert!(ip_checksum_ok(g));
        let l4 = &gip[20..];
        let at = if ip[9] == 6 { 16 } else { 6 };
        let mut zeroed = l4.to_vec();
        zeroed[at..at + 2].copy_from_slice(&[0, 0]);
        let want = ftmb_core::trace::l4_checksum_v4(
            [gip[12], gip[13], gip[14], gip[15]],
            [gip[16], gip[17], gip[18], gip[19]],
            ip[9],
            &zeroed,
        );
        assert_eq!(
            u16::from_be_bytes([l4[at], l4[at + 1]]),
            want,
            "L4 checksum valid"
        );
    }
    assert!(tcp > 0 && udp > 0, "{tcp} tcp, {udp} udp");
}
