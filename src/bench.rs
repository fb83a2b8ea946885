//! `ftmb bench --compare-ft`: the fault-tolerance benchmark. Every
//! repetition runs the configuration without and then with fault tolerance
//! in this one process, on the same trace, and the report sets them side
//! by side: throughput and its ratio, per-packet latency from input to
//! egress (at a fixed offered load, `--pps`), and the snapshot stalls with
//! the state size they copied.

use crate::{run_measured, RunArgs};
use anyhow::Result;

/// Percentile `q` (0..=1) of sorted samples.
fn pct(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
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
            let mpps = m.report.packets as f64 / m.report.elapsed.as_secs_f64() / 1e6;
            m.latency_ns.sort_unstable();
            eprintln!(
                "run {} {}: {} packets, {mpps:.3} Mpps{}",
                i + 1,
                if ft { "with FT   " } else { "without FT" },
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
    let mut st: Vec<u64> = stalls.iter().map(|s| s.0).collect();
    st.sort_unstable();
    let ms = |q: f64| pct(&st, q) / 1e6;
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
            "snapshot_stall_ms": serde_json::json!({
                "count": st.len(), "p50": ms(0.5), "p99": ms(0.99), "max": ms(1.0),
            }),
            "snapshot_state_bytes": stalls.iter().map(|s| s.1).max(),
            "log_records_per_packet": records as f64 / packets.max(1) as f64,
        })
    );
    Ok(())
}
