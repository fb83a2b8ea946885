//! The client's report over all flows: one JSON object on stdout, one
//! human line on stderr.

use super::{ClientArgs, FlowReport};
use ftmb_core::stats::percentile;
use serde_json::{json, Value};

/// Samples sorted ascending, for percentiles.
fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Quantile `q` (0..=1) of sorted samples, 0 when there are none.
fn pct(sorted: &[f64], q: f64) -> f64 {
    percentile(sorted, q).unwrap_or(0.0)
}

/// The largest of sorted samples, 0 when there are none.
fn max(sorted: &[f64]) -> f64 {
    sorted.last().copied().unwrap_or(0.0)
}

/// Print the report of a run that started at `start_ns`, was marked at
/// `marked` (0: never) and killed `killed`.
pub(super) fn print(
    a: &ClientArgs,
    flows: &[FlowReport],
    start_ns: u64,
    marked: u64,
    killed: Option<u32>,
) {
    let report = report(a, flows, start_ns, marked, killed);
    println!("{report}");
    eprintln!("{}", human_line(a, &report));
}

/// The JSON report.
fn report(
    a: &ClientArgs,
    flows: &[FlowReport],
    start_ns: u64,
    marked: u64,
    killed: Option<u32>,
) -> Value {
    let tcp = flows.iter().filter(|r| r.proto == "tcp").count();
    let udp: Vec<&FlowReport> = flows.iter().filter(|r| r.proto == "udp").collect();
    let gaps = sorted(flows.iter().map(|r| r.max_gap_ms).collect());
    let mark_gaps = sorted(flows.iter().filter_map(|r| r.mark_gap_ms).collect());
    let rtt = sorted(
        flows
            .iter()
            .flat_map(|r| r.rtt_us.iter().map(|&u| f64::from(u) / 1e3))
            .collect(),
    );
    let changed = flows.iter().filter(|r| r.endpoints.len() > 1).count();
    let udp_sent: u64 = udp.iter().map(|r| r.sent).sum();
    let udp_echoed: u64 = udp.iter().map(|r| r.echoed).sum();
    let mut eps: Vec<&String> = flows.iter().flat_map(|r| r.endpoints.first()).collect();
    eps.sort();
    eps.dedup();
    json!({
        "start_ns": start_ns,
        "tcp_connections": tcp,
        "udp_flows": udp.len(),
        "interval_ms": a.interval_ms,
        "duration_s": a.duration,
        "messages_sent": flows.iter().map(|r| r.sent).sum::<u64>(),
        "echoes": flows.iter().map(|r| r.echoed).sum::<u64>(),
        "resets": flows.iter().map(|r| r.resets).sum::<u64>(),
        "reconnects": flows.iter().map(|r| r.reconnects).sum::<u64>(),
        "silent_flows": flows.iter().filter(|r| r.echoed == 0).count(),
        "udp_lost": udp_sent.saturating_sub(udp_echoed),
        "unanswered": flows.iter().map(|r| r.sent.saturating_sub(r.echoed)).sum::<u64>(),
        "out_of_order": flows.iter().map(|r| r.out_of_order).sum::<u64>(),
        "mark_ns": (marked != 0).then_some(marked),
        "killed_pid": killed,
        "flows_across_mark": mark_gaps.len(),
        "mark_stall_ms": (marked != 0).then(|| json!({
            "max": max(&mark_gaps),
            "p99": pct(&mark_gaps, 0.99),
            "p50": pct(&mark_gaps, 0.5),
        })),
        "warmup_s": a.warmup,
        "max_stall_ms": max(&gaps),
        "p99_stall_ms": pct(&gaps, 0.99),
        "p50_stall_ms": pct(&gaps, 0.5),
        "rtt_ms": {
            "p50": pct(&rtt, 0.5),
            "p99": pct(&rtt, 0.99),
            "max": max(&rtt),
            "echoes": rtt.len(),
        },
        "distinct_translated_endpoints": eps.len(),
        "endpoint_changes": changed,
        "same_translation": changed == 0,
    })
}

/// The line for a person, from the JSON report.
fn human_line(a: &ClientArgs, report: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let mark_txt = match report["mark_stall_ms"].as_object() {
        Some(m) => format!(
            ", stall across the mark max {:.1} ms p99 {:.1} ms ({} flows)",
            f(&m["max"]),
            f(&m["p99"]),
            report["flows_across_mark"]
        ),
        None => String::new(),
    };
    format!(
        "lab-client: {} tcp + {} udp flows, {} resets, {} reconnects, longest gap between echoes \
         max {:.1} ms p99 {:.1} ms ({} ms interval){mark_txt}, round trip p50 {:.3} ms p99 {:.3} ms, \
         udp lost {}, translated endpoints kept: {}",
        report["tcp_connections"],
        report["udp_flows"],
        report["resets"],
        report["reconnects"],
        f(&report["max_stall_ms"]),
        f(&report["p99_stall_ms"]),
        a.interval_ms,
        f(&report["rtt_ms"]["p50"]),
        f(&report["rtt_ms"]["p99"]),
        report["udp_lost"],
        report["same_translation"]
    )
}
