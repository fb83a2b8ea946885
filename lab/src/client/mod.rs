//! `ftmb-lab client`: many long-lived TCP connections and UDP flows through
//! a middlebox to `ftmb-lab server`, each echoing at a steady rate; part-way
//! it can mark the run and SIGKILL the master. Reports per flow the longest
//! gap between echoes, the gap across the mark (the stall the failover
//! caused), round trips, resets, reconnects and whether the flow kept its
//! translated address:port; then one JSON object on stdout and a line on
//! stderr.
//! `scripts/lab.sh` runs it across a NAT in network namespaces.

mod flow;
mod summary;

pub use flow::FlowReport;

use anyhow::{Context, Result};
use flow::{tcp_flow, udp_flow, FlowPlan};
use ftmb_core::clock::wall_ns;
use std::io::Write;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `ftmb-lab client` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientArgs {
    /// The server (TCP and UDP, same port).
    #[arg(long)]
    pub server: SocketAddrV4,
    /// Long-lived TCP connections.
    #[arg(long, default_value_t = 100)]
    pub tcp: usize,
    /// UDP flows.
    #[arg(long, default_value_t = 10)]
    pub udp: usize,
    /// Milliseconds between a flow's messages.
    #[arg(long, default_value_t = 20)]
    pub interval_ms: u64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Write one JSON line per flow here.
    #[arg(long)]
    pub detail: Option<std::path::PathBuf>,
    /// Seconds into the run to mark (and, with `--kill-pid`, to SIGKILL
    /// that process: the master). Each flow reports the gap between its
    /// last echo before the mark and its first echo after it.
    #[arg(long)]
    pub kill_after: Option<f64>,
    /// The process to SIGKILL at `--kill-after`.
    #[arg(long)]
    pub kill_pid: Option<u32>,
    /// Seconds at the start whose gaps do not count towards the longest
    /// gap (opening the connections and starting the threads).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
}

/// Run the flows, then print one JSON object (stdout) and a human line
/// (stderr).
pub fn client(a: &ClientArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mark = Arc::new(AtomicU64::new(0));
    let start_ns = wall_ns();
    let handles = spawn_flows(a, &stop, &mark, start_ns)?;
    let t0 = Instant::now();
    let killed = mark_and_kill(a, &mark)?;
    std::thread::sleep(Duration::from_secs_f64(a.duration).saturating_sub(t0.elapsed()));
    stop.store(true, Ordering::Release);
    let flows: Vec<FlowReport> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .collect();
    if let Some(p) = &a.detail {
        write_detail(p, &flows)?;
    }
    let marked = mark.load(Ordering::Acquire);
    summary::print(a, &flows, start_ns, marked, killed);
    Ok(())
}

/// Start one thread per flow, TCP first, their send times spread over one
/// interval.
fn spawn_flows(
    a: &ClientArgs,
    stop: &Arc<AtomicBool>,
    mark: &Arc<AtomicU64>,
    start_ns: u64,
) -> Result<Vec<JoinHandle<FlowReport>>> {
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let n = a.tcp + a.udp;
    let mut handles = Vec::with_capacity(n);
    let counted_from = start_ns + (a.warmup.max(0.0) * 1e9) as u64;
    for i in 0..n {
        let plan = FlowPlan {
            id: i as u32,
            server: a.server,
            interval,
            // Spread the flows' send times over one interval.
            phase: interval.mul_f64(i as f64 / n.max(1) as f64),
            stop: stop.clone(),
            mark: mark.clone(),
            counted_from,
        };
        let tcp = i < a.tcp;
        handles.push(
            std::thread::Builder::new()
                .name(format!("lab-flow-{i}"))
                .stack_size(256 << 10)
                .spawn(move || if tcp { tcp_flow(plan) } else { udp_flow(plan) })?,
        );
        if tcp {
            // Do not open a hundred connections in one burst.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(handles)
}

/// At `--kill-after` (when it falls inside the run): set the mark, and
/// SIGKILL `--kill-pid` if given. Returns the pid killed.
fn mark_and_kill(a: &ClientArgs, mark: &AtomicU64) -> Result<Option<u32>> {
    let Some(k) = a.kill_after.filter(|k| *k < a.duration) else {
        return Ok(None);
    };
    std::thread::sleep(Duration::from_secs_f64(k));
    mark.store(wall_ns(), Ordering::Release);
    let Some(pid) = a.kill_pid else {
        return Ok(None);
    };
    let st = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .context("run kill")?;
    if !st.success() {
        anyhow::bail!("could not SIGKILL pid {pid}");
    }
    eprintln!("lab-client: SIGKILLed pid {pid} at {k} s");
    Ok(Some(pid))
}

/// One JSON line per flow.
fn write_detail(path: &std::path::Path, flows: &[FlowReport]) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in flows {
        writeln!(f, "{}", serde_json::to_string(r)?)?;
    }
    f.flush()?;
    Ok(())
}
