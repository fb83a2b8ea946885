//! `ftmb bench --compare-ft`: the fault-tolerance benchmark. Every
//! repetition runs the configuration without and then with fault tolerance
//! in this one process, on the same trace, and the report sets them side
//! by side: throughput and its ratio, per-packet latency from input to
//! egress (at a fixed offered load, `--pps`), and the snapshot stalls with
//! the state size they copied.

use crate::{run_measured, RunArgs};
use anyhow::Result;
use ftmb_core::ft::{FtLink, OutputBatch, Shipment};
use ftmb_core::pal::LogRecord;
use ftmb_core::snapshot::Snapshot;
use ftmb_core::stats::percentile;
use ftmb_core::Packet;
use ftmb_logger::wire::{LogBatchMsg, HEADER_LEN};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// An [`FtLink`] in front of the output logger that counts the bytes FTMB
/// would put on the wire to its loggers: the input log (every input packet
/// as a `Packet` frame) and the PALs and clock records (as `LogBatch`
/// frames). What the paper calls the log bandwidth.
pub(crate) struct CountingLink {
    inner: Arc<dyn FtLink>,
    input_bytes: AtomicU64,
    pal_bytes: AtomicU64,
    /// Test only: see [`CountingLink::repeat_one_output_diverged`].
    diverge: AtomicBool,
}

/// Payload of a `Packet` frame before the packet bytes (id, ts, source).
const PACKET_FRAME_FIELDS: usize = 8 + 8 + 2;

impl CountingLink {
    pub(crate) fn new(inner: Arc<dyn FtLink>) -> CountingLink {
        CountingLink {
            inner,
            input_bytes: AtomicU64::new(0),
            pal_bytes: AtomicU64::new(0),
            diverge: AtomicBool::new(false),
        }
    }

    /// **Test only** (`FTMB_TEST_DIVERGE=1` with `ftmb run --ft`): ship
    /// the first output once more with its last byte flipped, as a master
    /// or replica that re-sends an output under its key with other bytes
    /// would; the output logger must count a divergence, and the run fail.
    pub(crate) fn repeat_one_output_diverged(&self) {
        self.diverge.store(true, Ordering::Release);
    }

    /// The diverged copy of the first of `outputs`, once (see
    /// [`CountingLink::repeat_one_output_diverged`]).
    fn diverged_copy(&self, outputs: &OutputBatch) -> Option<OutputBatch> {
        if !self.diverge.load(Ordering::Relaxed) {
            return None;
        }
        let o = outputs.iter().next()?.to_owned();
        if !self.diverge.swap(false, Ordering::AcqRel) {
            return None;
        }
        let mut data = o.pkt.data().to_vec();
        *data.last_mut()? ^= 0xff;
        let mut b = OutputBatch::default();
        b.push_parts(
            (o.sink, o.packet_id, o.ordinal, o.pkt.anno.ts_ns),
            o.dv.entries().iter().copied(),
            &data,
        );
        Some(b)
    }

    /// (input log bytes, PAL log bytes) so far.
    pub(crate) fn bytes(&self) -> (u64, u64) {
        (
            self.input_bytes.load(Ordering::Relaxed),
            self.pal_bytes.load(Ordering::Relaxed),
        )
    }

    /// The bytes of the records' `LogBatch` frame, counted without
    /// encoding it (on the workers' path, the counting must not cost).
    fn count_records(&self, records: &[(u64, LogRecord)]) {
        let n = LogBatchMsg::numbered_len(records);
        self.pal_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl FtLink for CountingLink {
    fn log_input(&self, pkts: &[Packet]) {
        let n: usize = pkts
            .iter()
            .map(|p| HEADER_LEN + PACKET_FRAME_FIELDS + p.len())
            .sum();
        self.input_bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.inner.log_input(pkts);
    }
    fn ship_log(&self, worker: usize, records: Vec<(u64, LogRecord)>) {
        self.count_records(&records);
        self.inner.ship_log(worker, records);
    }
    fn ship_outputs(&self, worker: usize, outputs: OutputBatch) {
        let copy = self.diverged_copy(&outputs);
        self.inner.ship_outputs(worker, outputs);
        if let Some(b) = copy {
            self.inner.ship_outputs(worker, b);
        }
    }
    fn store_snapshot(&self, snapshot: Snapshot) {
        self.inner.store_snapshot(snapshot);
    }
    fn ship(&self, worker: usize, shipment: Shipment) {
        self.count_records(&shipment.records);
        let copy = self.diverged_copy(&shipment.outputs);
        self.inner.ship(worker, shipment);
        if let Some(b) = copy {
            self.inner.ship_outputs(worker, b);
        }
    }
    fn spare(&self, worker: usize) -> Option<Shipment> {
        self.inner.spare(worker)
    }
    fn snapshot_round(&self, open: bool) {
        self.inner.snapshot_round(open);
    }
}

/// Percentile `q` (0..=1) of sorted samples, 0 when there are none.
fn pct(sorted: &[u64], q: f64) -> f64 {
    percentile(sorted, q).unwrap_or(0) as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Print one repetition's line and return its rate in Mpps (the run's
/// latency samples are left sorted).
fn report_run(i: usize, label: &str, m: &mut crate::Measured, latency: bool) -> f64 {
    let secs = m.report.elapsed.as_secs_f64();
    let rate = m.report.packets as f64 / secs.max(1e-9) / 1e6;
    m.latency_ns.sort_unstable();
    eprintln!(
        "run {} {label}: {} packets, {rate:.3} Mpps{}",
        i + 1,
        m.report.packets,
        if latency {
            format!(
                ", latency p50 {:.1} us p99 {:.1} us",
                pct(&m.latency_ns, 0.5) / 1e3,
                pct(&m.latency_ns, 0.99) / 1e3
            )
        } else {
            String::new()
        }
    );
    rate
}

/// Snapshot stall percentiles (ms) over `(stall ns, state bytes)` pairs.
fn stall_json(stalls: &[(u64, usize)]) -> serde_json::Value {
    let mut st: Vec<u64> = stalls.iter().map(|s| s.0).collect();
    st.sort_unstable();
    let ms = |q: f64| pct(&st, q) / 1e6;
    serde_json::json!({
        "count": st.len(), "p50": ms(0.5), "p99": ms(0.99), "max": ms(1.0),
    })
}

/// Throughput and latency of one mode over every repetition.
#[derive(Default)]
struct Mode {
    mpps: Vec<f64>,
    latency_ns: Vec<u64>,
}

impl Mode {
    fn json(&mut self) -> serde_json::Value {
        self.latency_ns.sort_unstable();
        let l = &self.latency_ns;
        let us = |q: f64| pct(l, q) / 1e3;
        serde_json::json!({
            "median_mpps": median(&mut self.mpps),
            "best_mpps": self.mpps.iter().copied().fold(0.0, f64::max),
            "latency_us": (!l.is_empty()).then(|| serde_json::json!({
                "p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "max": us(1.0),
                "samples": l.len(),
            })),
        })
    }
}

/// Run the comparison and print one JSON object.
pub fn compare_ft(a: &RunArgs, repeat: usize) -> Result<()> {
    let latency = a.pps.is_some();
    let mut modes = [Mode::default(), Mode::default()];
    let mut stalls: Vec<(u64, usize)> = Vec::new();
    let (mut records, mut packets) = (0u64, 0u64);
    for i in 0..repeat.max(1) {
        for (k, ft) in [false, true].into_iter().enumerate() {
            let mut args = a.clone();
            args.ft = ft;
            args.quiet = true;
            let mut m = run_measured(&args, false, latency)?;
            let label = if ft { "with FT   " } else { "without FT" };
            let mpps = report_run(i, label, &mut m, latency);
            modes[k].mpps.push(mpps);
            modes[k].latency_ns.append(&mut m.latency_ns);
            if ft {
                stalls.extend(m.stalls);
                records += m.records;
                packets += m.report.packets;
            }
        }
    }
    let [mut off, mut on] = modes;
    let (off, on) = (off.json(), on.json());
    let ratio = on["median_mpps"].as_f64().unwrap_or(0.0)
        / off["median_mpps"]
            .as_f64()
            .unwrap_or(1.0)
            .max(f64::MIN_POSITIVE);
    let added = |q: &str| Some(on["latency_us"][q].as_f64()? - off["latency_us"][q].as_f64()?);
    println!(
        "{}",
        serde_json::json!({
            "config": a.config.display().to_string(),
            "threads": a.threads,
            "offered_pps": a.pps,
            "repeat": repeat.max(1),
            "snapshot_ms": a.snapshot_ms,
            "without_ft": off,
            "with_ft": on,
            "throughput_ratio": ratio,
            "latency_added_us": latency.then(|| serde_json::json!({
                "p50": added("p50"), "p99": added("p99"),
            })),
            "snapshot_stall_ms": stall_json(&stalls),
            "snapshot_state_bytes": stalls.iter().map(|s| s.1).max(),
            "log_records_per_packet": records as f64 / packets.max(1) as f64,
        })
    );
    Ok(())
}

/// `ftmb bench --mode M`: run the configuration under one system (FTMB or a
/// baseline) `repeat` times and print one JSON object: throughput, the
/// per-packet latency distribution (with `--pps`: percentiles and a CDF of
/// 101 points plus p99.9), snapshot stalls, and what the mode adds (log
/// bytes for FTMB, outputs held for snapshot-only, Redis calls for remote
/// state).
pub fn mode_bench(a: &RunArgs, repeat: usize) -> Result<()> {
    let latency = a.pps.is_some();
    let mode = a.mode();
    let mut mpps = Vec::new();
    let mut lat: Vec<u64> = Vec::new();
    let mut stalls: Vec<(u64, usize)> = Vec::new();
    let (mut records, mut packets) = (0u64, 0u64);
    let mut extra = serde_json::Map::new();
    let mut elapsed = 0.0;
    for i in 0..repeat.max(1) {
        let mut args = a.clone();
        args.quiet = true;
        let mut m = run_measured(&args, false, latency)?;
        let rate = report_run(i, mode.name(), &mut m, latency);
        mpps.push(rate);
        lat.append(&mut m.latency_ns);
        stalls.extend(m.stalls);
        records += m.records;
        packets += m.report.packets;
        elapsed += m.report.elapsed.as_secs_f64();
        // The last repetition's extras (they are per-run rates and counts).
        extra = m.extra;
    }
    lat.sort_unstable();
    let us = |q: f64| pct(&lat, q) / 1e3;
    let mut out = serde_json::json!({
        "mode": mode.name(),
        "config": a.config.display().to_string(),
        "threads": a.threads,
        "offered_pps": a.pps,
        "repeat": repeat.max(1),
        "snapshot_ms": a.snapshot_ms,
        "packets": packets,
        "elapsed_s": elapsed,
        "median_mpps": median(&mut mpps.clone()),
        "best_mpps": mpps.iter().copied().fold(0.0, f64::max),
        "latency_us": (!lat.is_empty()).then(|| serde_json::json!({
            "p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "p999": us(0.999),
            "max": us(1.0), "samples": lat.len(),
        })),
        "latency_cdf_us": (!lat.is_empty())
            .then(|| (0..=100).map(|i| us(f64::from(i) / 100.0)).collect::<Vec<_>>()),
        "snapshot_stall_ms": stall_json(&stalls),
        "snapshot_state_bytes": stalls.iter().map(|s| s.1).max(),
        "log_records_per_packet": records as f64 / packets.max(1) as f64,
    });
    if let Some(o) = out.as_object_mut() {
        o.extend(extra);
    }
    println!("{out}");
    Ok(())
}
