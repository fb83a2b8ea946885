//! Test harness: run a configuration over a trace with the real runtime and
//! read back what it wrote.

#![allow(dead_code)]

use ftmb_core::config::Source;
use ftmb_core::graph::build;
use ftmb_core::runtime::{run, RunOptions, RunReport};
use ftmb_core::trace::{generate, LinkType, PcapWriter, TraceReader, TraceSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A scratch directory removed when dropped.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// Write a seeded synthetic trace (inside 10.77.0.0/16, outside
/// 198.18.0.0/16) and return its path.
pub fn gen_trace(s: &Scratch, name: &str, packets: usize, flows: usize, seed: u64) -> String {
    let spec = TraceSpec {
        packets,
        flows,
        seed,
        inside_net: ([10, 77, 0, 0], 16),
        outside_net: ([198, 18, 0, 0], 16),
        concurrency: flows.clamp(1, 256),
        ..TraceSpec::default()
    };
    write_trace(&s.path(name), |w| {
        generate(&spec, w).expect("generate");
    });
    s.s(name)
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
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let graph = match build(&source, &vars, &ftmb_elements::registry(), threads) {
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
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match build(&source, &vars, &ftmb_elements::registry(), 1) {
        Ok(_) => panic!("expected a configuration error"),
        Err(e) => e.render(false),
    }
}

/// Sorted copy, for multiset comparison.
pub fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// Ethernet + IPv4 + UDP frame with correct checksums.
pub fn udp_frame(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12] = 0x08;
    let total = 28 + payload.len();
    let mut ip = vec![0u8; total];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = ttl;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let ck = ftmb_core::headers::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    ip[20..22].copy_from_slice(&sp.to_be_bytes());
    ip[22..24].copy_from_slice(&dp.to_be_bytes());
    ip[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    ip[28..].copy_from_slice(payload);
    let l4 = ftmb_core::trace::l4_checksum_v4(src, dst, 17, &ip[20..]);
    ip[26..28].copy_from_slice(&l4.to_be_bytes());
    f.extend_from_slice(&ip);
    f
}

/// True when the IPv4 header checksum of the frame (Ethernet) verifies.
pub fn ip_checksum_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..];
    let hl = ((ip[0] & 0x0f) as usize) * 4;
    ftmb_core::headers::checksum(&ip[..hl]) == 0
}
