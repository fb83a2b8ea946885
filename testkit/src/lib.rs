//! Fixtures shared by the tests and benchmarks of every crate: scratch
//! directories, the synthetic trace of the example configurations,
//! hand-built frames, reading a pcap back, and running a configuration over
//! a trace with the real runtime.
//!
//! The packet builders themselves live in the core
//! ([`ftmb_core::trace::Ipv4Header`] and friends, re-exported here), so
//! that the core's own unit tests use the same ones without a dependency
//! cycle.

use ftmb_core::config::Source;
use ftmb_core::graph::build;
use ftmb_core::runtime::{run, RunOptions, RunReport};
use ftmb_core::trace::{generate, write_generated, LinkType, PcapWriter, TraceReader};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use ftmb_core::headers::checksum;
pub use ftmb_core::trace::{ethernet_frame, udp_datagram, Ipv4Header, TcpHeader, TraceSpec};

/// The inside network of the example configurations (their `INSIDE`
/// variable), the one [`TraceSpec::example_nets`] puts the clients in.
pub const EXAMPLE_INSIDE: &str = "10.77.0.0/16";

/// A scratch directory removed when dropped.
pub struct Scratch {
    /// The directory.
    pub dir: tempfile::TempDir,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Scratch {
    /// A fresh, empty directory.
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    /// The path of `name` inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// The path of `name` inside it, as a string (for config variables).
    pub fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// Seeded xorshift64: reproducible randomness for tests.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Write the trace of `spec` to `path`.
pub fn write_spec(spec: &TraceSpec, path: &Path) {
    write_generated(spec, path).expect("generate trace");
}

/// Write a seeded synthetic trace of the example networks
/// ([`TraceSpec::example_nets`], up to 256 flows at once) into `s` and
/// return its path.
pub fn gen_trace(s: &Scratch, name: &str, packets: usize, flows: usize, seed: u64) -> String {
    let spec = TraceSpec {
        concurrency: flows.clamp(1, 256),
        ..TraceSpec::example_nets(packets, flows, seed)
    };
    write_spec(&spec, &s.path(name));
    s.s(name)
}

/// The load balancer's virtual address in `examples/loadbalancer.click`,
/// and the port it balances.
pub const LB_VIP: ([u8; 4], u16) = ([192, 0, 2, 1], 80);

/// [`gen_trace`] with every connection addressed to the load balancer's
/// virtual address ([`LB_VIP`]), so that `examples/loadbalancer.click`
/// balances every one of them (a trace of the example networks never
/// reaches it).
pub fn gen_vip_trace(s: &Scratch, name: &str, packets: usize, flows: usize, seed: u64) -> String {
    let spec = TraceSpec {
        concurrency: flows.clamp(1, 256),
        ..TraceSpec::example_nets(packets, flows, seed)
    }
    .to_service(LB_VIP.0, LB_VIP.1);
    write_spec(&spec, &s.path(name));
    s.s(name)
}

/// Every frame of the trace of `spec`, generated in memory.
pub fn generated_frames(spec: &TraceSpec) -> Vec<Vec<u8>> {
    let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, false).expect("writer");
    generate(spec, &mut w).expect("generate");
    let bytes = w.into_inner().expect("flush");
    let mut r = TraceReader::from_bytes(bytes).expect("reader");
    let mut v = Vec::with_capacity(spec.packets);
    while let Some(rec) = r.next_record() {
        v.push(rec.expect("record").data.to_vec());
    }
    v
}

/// Write a pcap with `f`.
pub fn write_trace(
    path: &Path,
    f: impl FnOnce(&mut PcapWriter<std::io::BufWriter<std::fs::File>>),
) {
    let mut w = PcapWriter::create(path, LinkType::Ethernet, false).expect("create pcap");
    f(&mut w);
    w.flush().expect("flush");
}

/// Every packet of a pcap file.
pub fn read_packets(path: &str) -> Vec<Vec<u8>> {
    let mut r = TraceReader::open(Path::new(path)).expect("open output");
    let mut v = Vec::new();
    while let Some(rec) = r.next_record() {
        v.push(rec.expect("record").data.to_vec());
    }
    v
}

/// Sorted copy, for multiset comparison.
pub fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// The path of `examples/NAME` in the workspace.
pub fn example_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// The text of `examples/NAME`.
pub fn example_config(name: &str) -> String {
    let path = example_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The variables every example configuration takes: input trace `trace`,
/// outputs `out` and `out2`, inside network [`EXAMPLE_INSIDE`].
pub fn example_vars(trace: &str, out: &str, out2: &str) -> BTreeMap<String, String> {
    [
        ("IN", trace),
        ("OUT", out),
        ("OUT2", out2),
        ("INSIDE", EXAMPLE_INSIDE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Owned configuration variables from `(name, value)` pairs.
pub fn vars_of(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Run `config` with `vars` on `threads` workers; return the printed lines
/// and the report.
pub fn run_config(config: &str, vars: &[(&str, &str)], threads: usize) -> (Vec<String>, RunReport) {
    run_config_with(config, vars, threads, false)
}

/// As [`run_config`]; `pipeline` puts a single worker's input on its own
/// thread.
pub fn run_config_with(
    config: &str,
    vars: &[(&str, &str)],
    threads: usize,
    pipeline: bool,
) -> (Vec<String>, RunReport) {
    let source = Source {
        name: "test.click".into(),
        text: config.into(),
    };
    let graph = match build(&source, &vars_of(vars), &ftmb_elements::registry(), threads) {
        Ok(g) => g,
        Err(e) => panic!("config error:\n{}", e.render(false)),
    };
    let mut out = Vec::new();
    let report = run(
        graph,
        &RunOptions {
            seed: Some(7),
            pipeline,
            ..RunOptions::default()
        },
        &mut out,
        &mut |_| {},
    );
    assert!(report.errors.is_empty(), "run errors: {:?}", report.errors);
    let text = String::from_utf8(out).expect("utf8");
    (text.lines().map(str::to_string).collect(), report)
}

/// The error a configuration gives at build, rendered.
pub fn config_error(config: &str, vars: &[(&str, &str)]) -> String {
    let source = Source {
        name: "bad.click".into(),
        text: config.into(),
    };
    match build(&source, &vars_of(vars), &ftmb_elements::registry(), 1) {
        Ok(_) => panic!("expected a configuration error"),
        Err(e) => e.render(false),
    }
}

/// Ethernet + IPv4 + UDP frame with correct checksums (identification 0,
/// fragmentable, TTL `ttl`).
pub fn udp_frame(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let ip = Ipv4Header {
        ttl,
        ..Ipv4Header::new(src, dst)
    };
    ethernet_frame(&ip.udp(sp, dp, payload))
}

/// True when the IPv4 header checksum of the (Ethernet) frame verifies.
pub fn ip_checksum_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..];
    let hl = ((ip[0] & 0x0f) as usize) * 4;
    checksum(&ip[..hl]) == 0
}
