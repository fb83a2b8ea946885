//! `ftmb demo`: kill the primary and watch the replica take over.
//!
//! Starts the four roles as processes on this host (input logger, output
//! logger, standby replica, master) around the MazuNAT-shaped NAT config,
//! feeds a generated trace of many flows at a steady rate, SIGKILLs the
//! master part-way, and reports recovery time (detection, restore, replay,
//! total), what was released, lost and duplicated, and whether every
//! released output agrees with one NAT mapping per flow. `--config` runs
//! another configuration the same way (`--trace` another trace).

use anyhow::{bail, Context, Result};
use ftmb_core::clock::wall_ns;
use ftmb_core::config::Source;
use ftmb_core::ft::{FtOptions, MemoryLink};
use ftmb_core::graph::build;
use ftmb_core::headers::FlowId;
use ftmb_core::runtime::{run, RunOptions};
use ftmb_core::trace::{generate, LinkType, PcapWriter, TraceReader, TraceSpec};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The NAT the demo runs.
pub const DEMO_NAT: &str = include_str!("../examples/nat.click");

/// Demo settings.
#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// Worker threads of the master and the replica (1 to 256).
    #[arg(long, default_value_t = 2, value_parser = crate::threads_arg)]
    pub threads: usize,
    /// Packets in the generated trace.
    #[arg(long, default_value_t = 300_000)]
    pub packets: usize,
    /// Flows in the generated trace.
    #[arg(long, default_value_t = 100_000)]
    pub flows: usize,
    /// Input rate, packets per second.
    #[arg(long, default_value_t = 200_000.0)]
    pub pps: f64,
    /// Snapshot interval, milliseconds.
    #[arg(long, default_value_t = 50)]
    pub snapshot_ms: u64,
    /// When to kill the master, milliseconds after traffic starts
    /// (default: 40 % of the run).
    #[arg(long, conflicts_with = "fail_after_released")]
    pub kill_ms: Option<u64>,
    /// Kill (or with `--hang`, hang) the master once the output logger's
    /// sinks hold at least this many released outputs (an event, not a
    /// time: the failure lands mid-run on a loaded machine too). The demo
    /// fails if the master ends first or the outputs never come.
    #[arg(long)]
    pub fail_after_released: Option<u64>,
    /// Failure detector deadline, milliseconds (a killed master is detected
    /// at once by its stream ending; the deadline catches a hung one).
    #[arg(long, default_value_t = 20.0)]
    pub deadline_ms: f64,
    /// Link the roles over TCP on loopback instead of Unix sockets (as
    /// they would be across hosts).
    #[arg(long)]
    pub tcp: bool,
    /// Hang the master (SIGSTOP) instead of killing it: alive, silent, its
    /// sockets open, so only the heartbeat deadline can tell. It stays
    /// stopped until the run is over (then it is killed), unless
    /// `--resume-ms` lets it go on earlier.
    #[arg(long)]
    pub hang: bool,
    /// With `--hang`: let the hung master go on (SIGCONT) this many ms
    /// after it was stopped, while the replica serves: whatever it still
    /// sends must be fenced off.
    #[arg(long, requires = "hang")]
    pub resume_ms: Option<u64>,
    /// A trace to use instead of a generated one (inside net 10.77.0.0/16).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// A Click configuration to run instead of the built-in NAT
    /// (examples/nat.click). It reads its input from `$IN` and writes to
    /// `$OUT` (and `$OUT2`, if it has a second output); `$INSIDE` is set
    /// to 10.77.0.0/16.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `NAME=value`: set `$NAME` in the configuration (repeatable), e.g.
    /// `--var SHARING=2` for examples/monitor.click.
    #[arg(long = "var", value_name = "NAME=value")]
    pub vars: Vec<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Keep the run's files (trace, configuration, sockets, the outputs
    /// and the roles' reports, about 50 MB) in the temporary directory the
    /// report names; by default they are removed when the demo ends.
    #[arg(long)]
    pub keep: bool,
}

/// The demo's directory: private (a fresh, randomly named directory of mode
/// 0700 in the system temp directory, created without following links),
/// removed when the demo ends unless kept.
struct WorkDir {
    path: PathBuf,
    /// `None` once kept: nothing removes it then.
    _dir: Option<tempfile::TempDir>,
}

impl WorkDir {
    fn new(keep: bool) -> Result<WorkDir> {
        let dir = tempfile::Builder::new()
            .prefix("ftmb-demo-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .context("create the demo's private directory")?;
        Ok(if keep {
            let path = dir.keep();
            eprintln!("demo: keeping its files in {}", path.display());
            WorkDir { path, _dir: None }
        } else {
            WorkDir {
                path: dir.path().to_path_buf(),
                _dir: Some(dir),
            }
        })
    }
}

struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(exe: &Path, args: &[String], out: Option<&Path>) -> Result<Child> {
    let mut c = Command::new(exe);
    c.args(args).stdin(Stdio::null());
    if let Some(p) = out {
        c.stdout(std::fs::File::create(p)?);
    }
    c.spawn().with_context(|| format!("start {}", args[0]))
}

/// The first of `n` consecutive loopback TCP ports that are free now.
fn free_ports(n: u16) -> Result<u16> {
    let mut base = 20000 + (std::process::id() % 30000) as u16;
    for _ in 0..200 {
        let free = (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return Ok(base);
        }
        base = 20000 + (base - 20000 + 97) % 40000;
    }
    bail!("no {n} consecutive free TCP ports on 127.0.0.1")
}

/// Wait for the `ready` line on a child's piped stdout.
fn wait_ready(child: &mut Child, limit: Duration) -> Result<()> {
    use std::io::BufRead;
    let out = child.stdout.take().context("master stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(limit) {
        Ok(line) if line.trim() == "ready" => Ok(()),
        Ok(line) => bail!("the master did not start (said {line:?})"),
        Err(_) => bail!("the master did not connect within {limit:?}"),
    }
}

/// Wait up to `limit` for the role `what` to exit; its failure (a
/// non-zero exit) is an error.
fn wait_for(child: &mut Child, what: &str, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            if !st.success() {
                bail!("the {what} failed ({st}; its error is on stderr above)");
            }
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("the {what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the demo runs: its files, the configuration and its variables.
struct Setup {
    work: WorkDir,
    cfg: PathBuf,
    config_name: String,
    /// `NAME=value` settings of the configuration, with the output files.
    vars: Vec<String>,
    /// The input packets' flows, by input id.
    inputs: Vec<Option<FlowId>>,
    /// Connections in the trace (the generated trace's flow count).
    flows: usize,
}

/// The workers' generator seed of every run (the reference and the roles).
const SEED: u64 = 7;

/// The running roles but the master: the input logger, output logger and
/// replica (in that order, killed when dropped), and where they report.
struct Roles {
    kids: Kids,
    ol_out: PathBuf,
    rep_out: PathBuf,
    released: PathBuf,
}

/// How the master was failed, and when.
struct Failure {
    killed_ns: u64,
    after: Duration,
    /// With `--fail-after-released`: the released outputs seen then.
    released_seen: Option<u64>,
}

/// What was released, checked against a run without failure.
struct Outputs {
    released: usize,
    lost: u64,
    duplicated: u64,
    /// Replayed outputs that differ from the ones released under their
    /// keys (the output logger's count).
    divergence: u64,
    consistent: bool,
}

/// The recovery's phases, milliseconds.
struct Recovery {
    detect: f64,
    restore: f64,
    replay: f64,
    total: f64,
    /// The output logger took a live but descheduled master for a dead one
    /// before the failure was injected.
    early_ms: Option<f64>,
}

/// Run the demo: prepare the inputs, work out what a run without failure
/// releases, start the four roles, fail the master, wait for the replica to
/// finish the run, and check and report what was released.
pub fn demo(a: &DemoArgs) -> Result<()> {
    let _role = tracing::error_span!("ftmb", role = "demo").entered();
    let setup = prepare(a)?;
    // What a run without failure releases (same numbering, same seed).
    let reference = reference_outputs(&setup.cfg, &quiet(&setup.vars), a.threads, SEED)?;
    let (mut roles, master) = start_roles(a, &setup)?;
    let failure = fail_master(a, &setup, master, &mut roles.kids)?;
    finish_roles(a, &setup, roles.kids)?;
    tracing::info!("roles done: checking the outputs");
    let olr = read_report(&roles.ol_out, "output logger report")?;
    let rep = read_report(&roles.rep_out, "replica report")?;
    let mut outputs = check_outputs(&roles.released, &reference, &setup.inputs)?;
    let recovery = recovery_times(&failure, &olr, &rep);
    // A replayed output that differs from the one released under its key
    // makes the run inconsistent, whatever the release record says.
    let divergence = olr["divergence"].as_u64().unwrap_or(u64::MAX);
    outputs.divergence = divergence;
    outputs.consistent &= divergence == 0;
    let errors: Vec<serde_json::Value> = [&olr["errors"], &rep["errors"], &rep["divergence"]]
        .into_iter()
        .filter_map(|e| e.as_array())
        .flatten()
        .cloned()
        .collect();
    let mut report = serde_json::json!({
        "recovery_ms": {
            "detect": recovery.detect,
            "restore": recovery.restore,
            "replay": recovery.replay,
            "total": recovery.total,
        },
        "released": outputs.released,
        "lost": outputs.lost,
        "duplicated": outputs.duplicated,
        "consistent": outputs.consistent,
        "divergence": divergence,
        "divergent_outputs": olr["divergent_outputs"],
        "flows": setup.flows,
        "config": setup.config_name,
        "packets": setup.inputs.len(),
        "snapshot_ms": a.snapshot_ms,
        "threads": a.threads,
        "failure": if a.hang { "hang" } else { "kill" },
        "replayed_packets": rep["replayed_packets"],
        "failover_before_kill": recovery.early_ms.is_some(),
        "failed_after_released": failure.released_seen,
        "took_over": olr["detected_ns"].is_u64() && rep["took_over_ns"].is_u64(),
        "snapshots_committed": olr["snapshots"],
        "dropped_on_failover": olr["dropped_on_failover"],
        "suppressed": olr["suppressed"],
        "errors": errors,
    });
    if a.keep {
        report["outputs_in"] = setup.work.path.display().to_string().into();
    }
    if a.json {
        println!("{report}");
    } else {
        print_summary(a, &setup, &failure, &recovery, &outputs, &rep);
    }
    Ok(())
}

/// The work directory, the trace (generated unless given), the
/// configuration (the built-in NAT unless given) and its variables.
fn prepare(a: &DemoArgs) -> Result<Setup> {
    let work = WorkDir::new(a.keep)?;
    let dir = work.path.clone();
    let trace = match &a.trace {
        Some(t) => t.clone(),
        None => {
            let t = dir.join("trace.pcap");
            let spec = TraceSpec {
                flows: a.flows,
                packets: a.packets,
                seed: 42,
                inside_net: ([10, 77, 0, 0], 16),
                outside_net: ([198, 18, 0, 0], 16),
                concurrency: a.flows.min(20_000),
                max_size: 200,
                ..TraceSpec::default()
            };
            let mut w = PcapWriter::create(&t, LinkType::Ethernet, false)?;
            generate(&spec, &mut w)?;
            w.flush()?;
            t
        }
    };
    let cfg = match &a.config {
        Some(c) => {
            std::fs::metadata(c).with_context(|| format!("--config {}", c.display()))?;
            c.clone()
        }
        None => {
            let c = dir.join("nat.click");
            std::fs::write(&c, DEMO_NAT)?;
            c
        }
    };
    for v in &a.vars {
        match v.split_once('=') {
            Some((k, _)) if !k.is_empty() && !["IN", "OUT", "OUT2"].contains(&k) => {}
            Some((k, _)) if !k.is_empty() => bail!("--var {v}: ${k} is set by the demo"),
            _ => bail!("--var {v}: expected NAME=value"),
        }
    }
    let mut vars = vec![
        format!("IN={}", trace.display()),
        format!("OUT={}", dir.join("fwd.pcap").display()),
        format!("OUT2={}", dir.join("rev.pcap").display()),
        "INSIDE=10.77.0.0/16".to_string(),
    ];
    vars.extend(a.vars.iter().cloned());
    let inputs = input_flows(&trace)?;
    let flows = match &a.trace {
        Some(_) => connections(&inputs),
        None => a.flows,
    };
    let config_name = match &a.config {
        Some(c) => c.display().to_string(),
        None => "built-in NAT (examples/nat.click)".to_string(),
    };
    Ok(Setup {
        work,
        cfg,
        config_name,
        vars,
        inputs,
        flows,
    })
}

/// `vars` with the output files pointed at /dev/null, for the reference run
/// in this process (the output logger writes the run's outputs).
fn quiet(vars: &[String]) -> Vec<String> {
    vars.iter()
        .map(|v| match v.split_once('=') {
            Some((k @ ("OUT" | "OUT2"), _)) => format!("{k}=/dev/null"),
            _ => v.clone(),
        })
        .collect()
}

/// The loggers' addresses: Unix sockets in the work directory, or free
/// loopback TCP ports with `--tcp`.
fn logger_addresses(a: &DemoArgs, dir: &Path) -> Result<(String, String)> {
    Ok(if a.tcp {
        let base = free_ports(3)?;
        (
            format!("tcp:127.0.0.1:{base}"),
            format!("tcp:127.0.0.1:{}", base + 1),
        )
    } else {
        (
            dir.join("il.sock").display().to_string(),
            dir.join("ol.sock").display().to_string(),
        )
    })
}

/// Start the input logger, the output logger, the replica and the master
/// (in that order; they connect with retries, in any order), and wait for
/// the master to say it is connected to both loggers.
fn start_roles(a: &DemoArgs, setup: &Setup) -> Result<(Roles, Child)> {
    let dir = &setup.work.path;
    let (il, ol) = logger_addresses(a, dir)?;
    // Every role gets the same variables: only the output logger opens the
    // sinks' files.
    let common = |role: &str| -> Vec<String> {
        let mut v = vec![role.to_string(), setup.cfg.display().to_string()];
        v.extend(setup.vars.iter().cloned());
        v.extend([
            "--threads".into(),
            a.threads.to_string(),
            "--il".into(),
            il.clone(),
            "--ol".into(),
            ol.clone(),
            "--seed".into(),
            SEED.to_string(),
        ]);
        v
    };
    let exe = std::env::current_exe()?;
    let mut kids = Kids(Vec::new());
    let mut il_args = common("input-logger");
    il_args.extend(["--pps".into(), a.pps.to_string()]);
    tracing::info!(dir = %dir.display(), il = %il, ol = %ol, "starting the roles");
    kids.0.push(spawn(&exe, &il_args, None)?);
    let mut ol_args = common("output-logger");
    let released = dir.join("released.txt");
    ol_args.extend([
        "--deadline-ms".into(),
        a.deadline_ms.to_string(),
        "--record".into(),
        released.display().to_string(),
    ]);
    let ol_out = dir.join("ol.json");
    kids.0.push(spawn(&exe, &ol_args, Some(&ol_out))?);
    let mut rep_args = common("replica");
    rep_args.extend(["--snapshot-ms".into(), a.snapshot_ms.to_string()]);
    let rep_out = dir.join("replica.json");
    kids.0.push(spawn(&exe, &rep_args, Some(&rep_out))?);
    let mut m_args = common("master");
    m_args.extend(["--snapshot-ms".into(), a.snapshot_ms.to_string()]);
    let mut master = Command::new(&exe)
        .args(&m_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("start master")?;
    wait_ready(&mut master, Duration::from_secs(30))?;
    tracing::info!("master ready");
    let roles = Roles {
        kids,
        ol_out,
        rep_out,
        released,
    };
    Ok((roles, master))
}

/// The trace's duration at the demo's rate, seconds.
fn run_seconds(a: &DemoArgs, setup: &Setup) -> f64 {
    setup.inputs.len() as f64 / a.pps
}

/// Kill the master (SIGKILL) or hang it (SIGSTOP, and SIGCONT later with
/// `--resume-ms`) part-way through the run.
fn fail_master(a: &DemoArgs, setup: &Setup, mut master: Child, kids: &mut Kids) -> Result<Failure> {
    let run_s = run_seconds(a, setup);
    let start = Instant::now();
    let released_seen = match a.fail_after_released {
        Some(n) => Some(await_released(setup, n, &mut master, run_s)?),
        None => {
            let ms = a.kill_ms.unwrap_or((run_s * 400.0) as u64);
            std::thread::sleep(Duration::from_millis(ms));
            None
        }
    };
    let after = start.elapsed();
    let killed_ns = wall_ns();
    tracing::info!(
        after_ms = after.as_millis() as u64,
        "{} the master",
        if a.hang {
            "stopping (SIGSTOP)"
        } else {
            "killing (SIGKILL)"
        }
    );
    if a.hang {
        signal(&master, libc::SIGSTOP).context("SIGSTOP the master")?;
        // Stopped, or fenced off and running again: killed with the other
        // roles however the demo ends (SIGKILL ends a stopped process too).
        kids.0.push(master);
        if let Some(ms) = a.resume_ms {
            std::thread::sleep(Duration::from_millis(ms));
            if let Some(m) = kids.0.last() {
                tracing::info!("letting the hung master go on (SIGCONT)");
                signal(m, libc::SIGCONT).context("SIGCONT the master")?;
            }
        }
    } else {
        master.kill().context("SIGKILL the master")?;
        let _ = master.wait();
    }
    Ok(Failure {
        killed_ns,
        after,
        released_seen,
    })
}

/// Wait until the output logger's sinks (`$OUT`, `$OUT2`) hold at least
/// `n` released outputs; returns how many they hold then. An error if the
/// master ends first (a failure then would test no takeover) or the
/// outputs do not come within the run's length and a minute.
fn await_released(setup: &Setup, n: u64, master: &mut Child, run_s: f64) -> Result<u64> {
    let mut files = ["fwd.pcap", "rev.pcap"].map(|f| (setup.work.path.join(f), 0u64, 0u64));
    let limit = Duration::from_secs_f64(run_s + 60.0);
    let start = Instant::now();
    loop {
        let mut seen = 0;
        for (path, at, count) in files.iter_mut() {
            *count += pcap_records(path, at)?;
            seen += *count;
        }
        if seen >= n {
            return Ok(seen);
        }
        if let Some(st) = master.try_wait()? {
            bail!("the master ended ({st}) with {seen} outputs released, before {n}");
        }
        if start.elapsed() > limit {
            bail!("only {seen} outputs released within {limit:?}, waiting for {n}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Complete records of the pcap file at `path` past byte `*at` (0: the
/// start; the file is still being written), moving `*at` past them.
fn pcap_records(path: &Path, at: &mut u64) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(0);
    };
    let len = f.metadata()?.len();
    if *at == 0 {
        if len < 24 {
            return Ok(0);
        }
        *at = 24;
    }
    let mut n = 0;
    let mut hdr = [0u8; 16];
    while *at + 16 <= len {
        f.seek(SeekFrom::Start(*at))?;
        f.read_exact(&mut hdr)?;
        let caplen = u64::from(u32::from_le_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]));
        if *at + 16 + caplen > len {
            break;
        }
        *at += 16 + caplen;
        n += 1;
    }
    Ok(n)
}

/// Wait for the output logger to finish the run, and for the replica and
/// the input logger to end after it (each exits on its own at a clean
/// end); a role that fails or does not end is an error. What is left (a
/// hung master) is ended.
fn finish_roles(a: &DemoArgs, setup: &Setup, mut kids: Kids) -> Result<()> {
    let limit = Duration::from_secs_f64(run_seconds(a, setup) * 3.0 + 60.0);
    wait_for(&mut kids.0[1], "output logger", limit)?;
    wait_for(&mut kids.0[2], "replica", Duration::from_secs(10))?;
    wait_for(&mut kids.0[0], "input logger", Duration::from_secs(10))?;
    drop(kids);
    Ok(())
}

/// A role's JSON report (its stdout).
fn read_report(path: &Path, what: &'static str) -> Result<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path)?).context(what)
}

/// Compare the release record with the reference run's outputs: none lost,
/// none released twice, none that the reference does not make, and every
/// flow with one mapping ([`mappings_consistent`]).
fn check_outputs(
    released_path: &Path,
    reference: &HashSet<(u64, u32)>,
    inputs: &[Option<FlowId>],
) -> Result<Outputs> {
    let released = std::fs::read_to_string(released_path)?;
    let mut seen = HashSet::new();
    let mut duplicated = 0u64;
    for line in released.lines() {
        let mut it = line
            .split_whitespace()
            .map(|x| x.parse::<u64>().unwrap_or(0));
        let (id, ord) = (it.next().unwrap_or(0), it.next().unwrap_or(0) as u32);
        if !seen.insert((id, ord)) {
            duplicated += 1;
        }
    }
    let lost = reference.difference(&seen).count() as u64;
    let extra = seen.difference(reference).count() as u64;
    Ok(Outputs {
        released: seen.len() + duplicated as usize,
        lost,
        duplicated,
        divergence: 0,
        consistent: extra == 0 && mappings_consistent(&released, inputs),
    })
}

/// The recovery's phases from the failure time and the output logger's and
/// the replica's reports.
fn recovery_times(f: &Failure, olr: &serde_json::Value, rep: &serde_json::Value) -> Recovery {
    let ms = |ns: u64| ns as f64 / 1e6;
    let detected = olr["detected_ns"].as_u64().unwrap_or(f.killed_ns);
    let run_start = rep["run_start_ns"].as_u64().unwrap_or(detected);
    // `replay_done_ms` is counted from the start of the run.
    let replay = rep["replay_done_ms"].as_f64().unwrap_or(0.0);
    Recovery {
        detect: ms(detected.saturating_sub(f.killed_ns)),
        // From detection to the replica's run: the takeover from the output
        // logger, loading the snapshot and, alongside, fetching the input log.
        restore: ms(run_start.saturating_sub(detected)),
        replay,
        total: ms(run_start.saturating_sub(f.killed_ns.min(detected))) + replay,
        // Detected before the failure: the output logger took a live but
        // descheduled master for a dead one (fencing keeps the outputs
        // right, but the timings then measure that failover, not the kill's).
        early_ms: (detected < f.killed_ns).then(|| ms(f.killed_ns - detected)),
    }
}

/// The demo's report for a terminal.
fn print_summary(
    a: &DemoArgs,
    setup: &Setup,
    f: &Failure,
    r: &Recovery,
    o: &Outputs,
    rep: &serde_json::Value,
) {
    println!(
        "FTMB demo: {}, {} packets, {} flows, {} worker(s), {:.0} pps, snapshots every {} ms",
        setup.config_name,
        setup.inputs.len(),
        setup.flows,
        a.threads,
        a.pps,
        a.snapshot_ms
    );
    if a.hang {
        let resumed = a
            .resume_ms
            .map_or(String::new(), |ms| format!(" (SIGCONT {ms} ms later)"));
        println!("  master SIGSTOPped {} ms in{resumed}", f.after.as_millis());
    } else {
        println!("  master SIGKILLed {} ms in", f.after.as_millis());
    }
    if let Some(early) = r.early_ms {
        println!(
            "  note: the output logger failed over {early:.1} ms before the kill (a live master's heartbeats went unread past --deadline-ms); the timings below are from that failover"
        );
    }
    println!(
        "  recovery: detect {:.1} ms + restore {:.1} ms + replay {:.1} ms = total {:.1} ms ({} packets replayed)",
        r.detect, r.restore, r.replay, r.total, rep["replayed_packets"]
    );
    println!(
        "  outputs: released {}, lost {}, duplicated {}, divergent {}; consistent: {}",
        o.released, o.lost, o.duplicated, o.divergence, o.consistent
    );
    if a.keep {
        println!("  files: {}", setup.work.path.display());
    }
}
/// Send `sig` to `child`.
fn signal(child: &Child, sig: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(child.id()).context("pid")?;
    // SAFETY: kill(2) on our own child's pid, which it cannot outlive
    // unwaited (the Child is not waited for yet).
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// The (input id, ordinal) of every output a run without failure makes.
fn reference_outputs(
    cfg: &Path,
    vars: &[String],
    threads: usize,
    seed: u64,
) -> Result<HashSet<(u64, u32)>> {
    let text = std::fs::read_to_string(cfg)?;
    let source = Source {
        name: cfg.display().to_string(),
        text,
    };
    let vars: BTreeMap<String, String> = vars
        .iter()
        .filter_map(|v| v.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let g = build(&source, &vars, &ftmb_elements::registry(), threads)
        .map_err(|e| anyhow::anyhow!("{}", e.render(false)))?;
    let link = Arc::new(MemoryLink::default());
    let opts = RunOptions {
        seed: Some(seed),
        ft: Some(FtOptions {
            link: link.clone(),
            replay: None,
            restore: None,
            snapshots: None,
        }),
        ..RunOptions::default()
    };
    run(g, &opts, &mut std::io::sink(), &mut |_| {});
    let keys = link.output_keys();
    Ok(keys)
}

/// Each input packet's flow, by input id (ids follow trace order).
fn input_flows(trace: &Path) -> Result<Vec<Option<FlowId>>> {
    let mut r = TraceReader::open(trace)?;
    let mut v = Vec::new();
    while let Some(rec) = r.next_record() {
        let rec = rec?;
        v.push(rec.data.get(14..).and_then(FlowId::of_ipv4));
    }
    Ok(v)
}

/// Connections (a flow and its reverse counted once) among the inputs.
fn connections(inputs: &[Option<FlowId>]) -> usize {
    inputs
        .iter()
        .flatten()
        .map(|f| (*f).min(f.reverse()))
        .collect::<HashSet<_>>()
        .len()
}

/// Every released output agrees with one mapping per original flow and
/// sink (for the NAT: its translation, before and after the failover
/// alike), and at the first sink (the NAT's forward direction) no
/// translated tuple serves two flows. Outputs that are not TCP/UDP over
/// IPv4 are not looked at.
fn mappings_consistent(released: &str, inputs: &[Option<FlowId>]) -> bool {
    let mut mapping: HashMap<(u64, FlowId), FlowId> = HashMap::new();
    let mut owner: HashMap<FlowId, FlowId> = HashMap::new();
    for line in released.lines() {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 8 {
            continue;
        }
        let Some(Some(orig)) = inputs.get((f[0] as usize).wrapping_sub(1)) else {
            return false;
        };
        let tr = FlowId {
            saddr: (f[3] as u32).to_be_bytes(),
            sport: f[4] as u16,
            daddr: (f[5] as u32).to_be_bytes(),
            dport: f[6] as u16,
            proto: f[7] as u8,
        };
        if *mapping.entry((f[2], *orig)).or_insert(tr) != tr {
            return false;
        }
        if f[2] == 0 && *owner.entry(tr).or_insert(*orig) != *orig {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(a: u8, sport: u16, b: u8, dport: u16) -> FlowId {
        FlowId {
            saddr: [10, 77, 0, a],
            sport,
            daddr: [198, 18, 0, b],
            dport,
            proto: 6,
        }
    }

    /// A release record line: input id, ordinal, sink, then the tuple.
    fn line(id: u64, sink: u64, f: FlowId) -> String {
        format!("{id} 0 {sink} {}\n", crate::roles::flow_fields(&f))
    }

    #[test]
    fn a_flow_keeps_one_mapping_per_sink_and_the_first_sink_serves_one_flow_each() {
        let (a, b) = (flow(1, 1000, 1, 80), flow(2, 1000, 1, 80));
        let (ta, tb) = (flow(9, 5000, 1, 80), flow(9, 5001, 1, 80));
        let inputs = vec![Some(a), Some(a), Some(b), None];
        let ok = line(1, 0, ta) + &line(2, 0, ta) + &line(3, 0, tb);
        assert!(mappings_consistent(&ok, &inputs));
        // The same flow translated two ways (at any sink).
        assert!(!mappings_consistent(
            &(line(1, 0, ta) + &line(2, 0, tb)),
            &inputs
        ));
        assert!(!mappings_consistent(
            &(line(1, 1, ta) + &line(2, 1, tb)),
            &inputs
        ));
        // Two flows given one tuple: wrong at the first sink only.
        assert!(!mappings_consistent(
            &(line(1, 0, ta) + &line(3, 0, ta)),
            &inputs
        ));
        assert!(mappings_consistent(
            &(line(1, 1, ta) + &line(3, 1, ta)),
            &inputs
        ));
        // An output claiming an input that was no TCP/UDP flow.
        assert!(!mappings_consistent(&line(4, 0, ta), &inputs));
        // Outputs without a tuple are not looked at.
        assert!(mappings_consistent("4 0 0\n", &inputs));
        assert_eq!(connections(&[Some(a), Some(a.reverse()), Some(b), None]), 2);
    }
}
