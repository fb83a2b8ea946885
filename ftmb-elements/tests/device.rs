//! `FromDevice` / `ToDevice` over a veth pair in a network namespace this
//! test creates and always deletes (a Drop guard), and `EtherRewrite` over a
//! trace. The device tests need root (creating namespaces, raw sockets):
//! unprivileged they fail saying so (CI runs them as root); the check of
//! what an unprivileged user is told runs as `nobody` when run as root.

use ftmb_core::config::Source as ConfigSource;
use ftmb_core::element::{Source, SourceStatus};
use ftmb_core::graph::{build, Graph};
use ftmb_core::{Packet, Value};
use ftmb_testkit::{read_packets, run_config, udp_frame, write_trace, Scratch};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Our frames carry this (IEEE local experimental) EtherType, so anything
/// else the kernel puts on the link is told apart.
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

fn graph(config: &str) -> Graph {
    let src = ConfigSource::new("device-test.click", config);
    match build(&src, &BTreeMap::new(), &ftmb_elements::registry(), 1) {
        Ok(g) => g,
        Err(e) => panic!("config error:\n{}", e.render(false)),
    }
}

fn count_of(stats: &[(&'static str, Value)], name: &str) -> u64 {
    match stats.iter().find(|(k, _)| *k == name) {
        Some((_, Value::Count(n))) => *n,
        other => panic!("no count {name}: {other:?}"),
    }
}

fn egress_stat(g: &Graph, sink: usize, name: &str) -> u64 {
    let s = &g.sinks.sinks()[sink];
    let st = s.egress.lock().stats();
    st.iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no egress stat {name}"))
}

// ---------------------------------------------------------------- namespaces

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace with a veth pair `a` <-> `b` inside, both up and
/// without IPv6 (so the kernel puts nothing of its own on the link).
/// Deleted on drop, which deletes the pair with it.
struct Netns {
    name: String,
    a: String,
    b: String,
}

impl Netns {
    fn create() -> Result<Netns, String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Netns {
            name: format!("ftmb-dev-test-{id}"),
            a: format!("fta{id}"),
            b: format!("ftb{id}"),
        };
        sh(&["ip", "netns", "add", &ns.name])?;
        // From here on, Drop cleans up whatever fails.
        let x = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", ns.name.as_str()];
            v.extend_from_slice(args);
            sh(&v)
        };
        x(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
        x(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
        x(&[
            "ip", "link", "add", &ns.a, "type", "veth", "peer", "name", &ns.b,
        ])?;
        x(&["ip", "link", "set", &ns.a, "up"])?;
        x(&["ip", "link", "set", &ns.b, "up"])?;
        // `ip link set up` returns before the pair has carrier; a frame sent
        // before then is dropped. Wait (bounded) until both ends say UP.
        let start = Instant::now();
        while !(ns.is_up(&ns.a) && ns.is_up(&ns.b)) {
            if start.elapsed() > Duration::from_secs(10) {
                return Err("the veth pair did not come up within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(ns)
    }

    fn is_up(&self, dev: &str) -> bool {
        Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", dev])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("state UP"))
            .unwrap_or(false)
    }

    /// Run `f` on a thread inside the namespace (sockets it opens stay in
    /// the namespace).
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).expect("open netns");
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a valid namespace descriptor; it only
                // moves this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("netns thread panicked")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

/// A fresh namespace with a veth pair, or a failure saying what `test`
/// needs: a missing prerequisite must not pass for a passing test.
fn netns(test: &str) -> Netns {
    assert!(
        is_root(),
        "{test} needs root (network namespaces, raw sockets): run the tests as \
         root, as .ci/run does"
    );
    Netns::create().unwrap_or_else(|e| panic!("{test} needs network namespaces (`ip netns`): {e}"))
}

// ---------------------------------------------------------------- helpers

fn test_frame(i: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&ETHERTYPE);
    f[14..18].copy_from_slice(&i.to_be_bytes());
    for (k, b) in f[18..].iter_mut().enumerate() {
        *b = (k as u32).wrapping_mul(31).wrapping_add(i) as u8;
    }
    f
}

fn ours(p: &Packet) -> bool {
    p.data().get(12..14) == Some(&ETHERTYPE[..])
}

/// Poll `src` until it has given `n` of our frames, waiting on its socket
/// between polls; at most `limit`.
fn receive(src: &mut dyn Source, n: usize, limit: Duration) -> Vec<Packet> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = Vec::new();
    while got.len() < n && start.elapsed() < limit {
        buf.clear();
        let st = src.poll(64, &mut buf).expect("poll");
        assert_ne!(st, SourceStatus::Done, "a device never finishes");
        got.extend(buf.drain(..).filter(ours));
        if st == SourceStatus::Idle {
            let fd = src.readiness_fd().expect("an open device has a descriptor");
            ftmb_core::idle::wait_readable(&[fd], Duration::from_millis(50));
        }
    }
    got
}

// ---------------------------------------------------------------- tests

#[test]
fn frames_cross_a_veth_pair_byte_identical() {
    let ns = netns("frames_cross_a_veth_pair_byte_identical");
    // Building opens nothing (the roles all build the whole graph); the
    // sockets open at the first poll and the first write, in the namespace.
    let mut g = graph(&format!(
        "rx :: FromDevice({b}, PROMISC true, BURST 16); rx -> Discard;\n\
         lp :: FromDevice({a}); lp -> ToDevice({a}, BURST 8);\n",
        a = ns.a,
        b = ns.b
    ));
    let sizes = [60usize, 64, 128, 1000, 1514];
    let frames: Vec<Vec<u8>> = (0..200u32)
        .map(|i| test_frame(i, sizes[i as usize % sizes.len()]))
        .collect();
    let (rx_packets, loop_packets, rx_stats) = ns.run(|| {
        let (mut rx, mut lp) = {
            let mut it = g.sources.drain(..).map(|(_, s)| s);
            (it.next().expect("rx"), it.next().expect("loop"))
        };
        // Open both receivers (lazily, by a first poll) before sending.
        let mut scratch = Vec::new();
        assert_eq!(rx.poll(64, &mut scratch), Ok(SourceStatus::Idle));
        let _ = lp.poll(64, &mut scratch);
        let pkts: Vec<Packet> = frames.iter().map(|f| Packet::from_bytes(f)).collect();
        g.sinks.sinks()[0]
            .egress
            .lock()
            .write(&pkts)
            .expect("ToDevice write");
        let got = receive(rx.as_mut(), frames.len(), Duration::from_secs(10));
        // Everything ToDevice sent has passed a's taps by now: a receiver
        // on the sending interface must not have seen its own frames.
        scratch.clear();
        let _ = lp.poll(1024, &mut scratch);
        let looped: Vec<Packet> = scratch.into_iter().filter(ours).collect();
        (got, looped, rx.stats())
    });
    let got: Vec<Vec<u8>> = rx_packets.iter().map(|p| p.data().to_vec()).collect();
    assert_eq!(got.len(), frames.len(), "every frame arrives");
    assert_eq!(got, frames, "byte-identical, in order");
    assert!(loop_packets.is_empty(), "outgoing frames are not received");
    assert!(rx_packets.iter().all(|p| p.anno.ts_ns > 0));
    assert!(count_of(&rx_stats, "count") >= frames.len() as u64);
    assert!(count_of(&rx_stats, "bytes") >= frames.iter().map(|f| f.len() as u64).sum::<u64>());
    assert_eq!(count_of(&rx_stats, "kernel_drops"), 0);
    assert_eq!(count_of(&rx_stats, "truncated"), 0);
    assert_eq!(egress_stat(&g, 0, "packets"), frames.len() as u64);
    assert_eq!(egress_stat(&g, 0, "errors"), 0);
}

#[test]
fn oversized_frame_is_an_error_not_a_crash() {
    let ns = netns("oversized_frame_is_an_error_not_a_crash");
    let mut g = graph(&format!(
        "rx :: FromDevice({b}); rx -> ToDevice({a});",
        a = ns.a,
        b = ns.b
    ));
    let frames = [test_frame(1, 100), test_frame(2, 3000), test_frame(3, 200)];
    let got = ns.run(|| {
        let (_, mut rx) = g.sources.remove(0);
        let mut scratch = Vec::new();
        let _ = rx.poll(1, &mut scratch);
        let pkts: Vec<Packet> = frames.iter().map(|f| Packet::from_bytes(f)).collect();
        g.sinks.sinks()[0]
            .egress
            .lock()
            .write(&pkts)
            .expect("a frame too big is counted, not an error of the write");
        receive(rx.as_mut(), 2, Duration::from_secs(10))
    });
    let got: Vec<Vec<u8>> = got.iter().map(|p| p.data().to_vec()).collect();
    assert_eq!(got, vec![frames[0].clone(), frames[2].clone()]);
    assert_eq!(egress_stat(&g, 0, "packets"), 2);
    assert_eq!(egress_stat(&g, 0, "errors"), 1);
    assert_eq!(egress_stat(&g, 0, "too_big"), 1);
}

#[test]
fn missing_interface_is_a_clear_error() {
    // No privilege needed: the name is looked up before any socket.
    let mut g = graph(
        "rx :: FromDevice(ftmb-nosuch0); rx -> Discard;\n\
         tx :: FromDevice(ftmb-nosuch1); tx -> ToDevice(ftmb-nosuch1);",
    );
    let (_, mut rx) = g.sources.remove(0);
    let mut v = Vec::new();
    let e = rx.poll(8, &mut v).expect_err("no such interface");
    assert_eq!(e, "FromDevice(ftmb-nosuch0): no such interface");
    let e = g.sinks.sinks()[0]
        .egress
        .lock()
        .write(&[Packet::from_bytes(&test_frame(0, 60))])
        .expect_err("no such interface");
    assert_eq!(e.to_string(), "ToDevice(ftmb-nosuch1): no such interface");
    assert_eq!(egress_stat(&g, 0, "errors"), 1);
}

#[test]
fn unprivileged_open_says_cap_net_raw() {
    if is_root() {
        // Root may open raw sockets: run this very test again as `nobody`
        // with no capabilities (util-linux's setpriv), and require that it
        // ran and passed there.
        let exe = std::env::current_exe().expect("the test binary");
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ])
            .arg(&exe)
            .args([
                "--exact",
                "unprivileged_open_says_cap_net_raw",
                "--test-threads=1",
            ])
            .output()
            .expect("run setpriv (util-linux), needed to drop root for this test");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("1 passed"),
            "as nobody: {}\n{said}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let mut g = graph("rx :: FromDevice(lo); rx -> Discard;");
    let (_, mut rx) = g.sources.remove(0);
    let e = rx.poll(8, &mut Vec::new()).expect_err("needs CAP_NET_RAW");
    assert!(e.starts_with("FromDevice(lo): needs CAP_NET_RAW"), "{e}");
}

#[test]
fn bad_arguments_are_config_errors() {
    let e = ftmb_testkit::config_error("FromDevice(eth0, BURST 0) -> Discard;", &[]);
    assert!(e.contains("BURST 0 is out of range"), "{e}");
    let e = ftmb_testkit::config_error("FromDevice(a/b) -> Discard;", &[]);
    assert!(e.contains("not a valid interface name"), "{e}");
    let e = ftmb_testkit::config_error("d :: FromDevice(eth0, METHOD PCAP) -> Discard;", &[]);
    assert!(e.contains("unknown METHOD"), "{e}");
    let e = ftmb_testkit::config_error(
        "FromDevice(eth0) -> EtherRewrite(02:00:00:00:00:01, 02:00:00) -> Discard;",
        &[],
    );
    assert!(e.contains("not an Ethernet address"), "{e}");
}

#[test]
fn ether_rewrite_sets_both_addresses() {
    let s = Scratch::new();
    let input = s.path("in.pcap");
    let frames = [
        udp_frame([10, 0, 0, 1], 1000, [10, 0, 0, 2], 2000, 64, b"hello"),
        udp_frame([10, 0, 0, 3], 1001, [10, 0, 0, 4], 2001, 64, b"world!"),
    ];
    write_trace(&input, |w| {
        for f in &frames {
            w.write_packet(1, f).expect("write");
        }
    });
    let cfg = "FromDump($IN, STOP true) -> EtherRewrite(02:aa:bb:cc:dd:01, 02-AA-BB-CC-DD-02) \
               -> ToDump($OUT);";
    run_config(
        cfg,
        &[("IN", &s.s("in.pcap")), ("OUT", &s.s("out.pcap"))],
        1,
    );
    let out = read_packets(&s.s("out.pcap"));
    assert_eq!(out.len(), 2);
    for (o, f) in out.iter().zip(&frames) {
        assert_eq!(&o[..6], &[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x02]);
        assert_eq!(&o[6..12], &[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01]);
        assert_eq!(&o[12..], &f[12..]);
    }
}
