//! `ftmb`: the command-line front end. Thin by design: parse flags, call
//! the libraries.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use ftmb_baselines::{redis, RedisCounters, SnapshotOnlyLink};
use ftmb_core::config::Source;
use ftmb_core::egress::SinkMode;
use ftmb_core::ft::{FtLink, FtOptions, SnapshotTrigger};
use ftmb_core::graph::{build_with, Graph};
use ftmb_core::runtime::{run, Progress, RunOptions, RunReport};
use ftmb_core::trace::{generate, LinkType, PcapWriter, TraceSpec};
use ftmb_logger::output_logger::{OutputLogger, ThreadedOutputLogger};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod bench;
mod demo;
mod roles;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ftmb",
    version,
    about = "FTMB: a fault-tolerant, Click-compatible middlebox runtime"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum StatsFormat {
    Json,
}

/// Which system runs a configuration: FTMB or one of the baselines of the
/// paper's evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// No fault tolerance.
    None,
    /// FTMB: ordered logging, parallel release, snapshots (as `--ft`).
    Ftmb,
    /// Snapshot-only rollback recovery (Remus/COLO/Pico style): no access
    /// logging, every output held until the next snapshot commits.
    SnapshotOnly,
    /// Remote state (StatelessNF style): shared state lives in a Redis
    /// server (`--redis`), read and written on every access.
    RemoteState,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Ftmb => "ftmb",
            Mode::SnapshotOnly => "snapshot-only",
            Mode::RemoteState => "remote-state",
        }
    }
}

#[derive(clap::Args, Clone)]
pub(crate) struct RunArgs {
    /// Click configuration file.
    config: PathBuf,
    /// `NAME=value` settings for `$NAME` in the configuration.
    vars: Vec<String>,
    /// Worker threads (1 to 256).
    #[arg(long, short = 't', default_value_t = 1, value_parser = threads_arg)]
    threads: usize,
    /// Print every element's counters on stdout after the run.
    #[arg(long)]
    stats: Option<StatsFormat>,
    /// Seed of the workers' random generators (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Packets per batch handed to a worker (1 to 65536).
    #[arg(long, default_value_t = 64, value_parser = batch_arg)]
    batch: usize,
    /// No progress line on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Run worker 0 on its own thread (a pipeline) instead of on the thread
    /// that reads the sources.
    #[arg(long)]
    pipeline: bool,
    /// Fault tolerance in one process: ordered logging, an output logger
    /// that releases each output once its dependencies are logged, and
    /// snapshots.
    #[arg(long)]
    ft: bool,
    /// Snapshot interval with --ft, in milliseconds.
    #[arg(long, default_value_t = 50)]
    snapshot_ms: u64,
    /// With --ft: the output logger thread polls its queue this long, in
    /// microseconds, before it sleeps (0: sleeps at once). Polling keeps a
    /// core busy while the workers have work; a sleeping thread takes 13 µs
    /// or more to wake on a VM, which every output then waits at low load.
    #[arg(long, default_value_t = 1000)]
    logger_poll_us: u64,
    /// Offer packets at this rate (packets per second) instead of as fast
    /// as the sources give them.
    #[arg(long)]
    pps: Option<f64>,
    /// Which system runs it (default: `ftmb` with --ft, else `none`).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Redis server (`HOST:PORT`) that holds the shared state with
    /// `--mode remote-state`.
    #[arg(long)]
    redis: Option<String>,
}

impl RunArgs {
    /// The system this run uses.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
            .unwrap_or(if self.ft { Mode::Ftmb } else { Mode::None })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a configuration.
    Run(RunArgs),
    /// Validate a configuration without running it. Sources are read (a
    /// trace must exist and parse); sinks are not opened: no output file is
    /// created or truncated, no device or socket touched.
    Check {
        /// Click configuration file.
        config: PathBuf,
        /// `NAME=value` settings.
        vars: Vec<String>,
    },
    /// List the element classes.
    Elements,
    /// Write a synthetic pcap trace.
    GenTrace(GenArgs),
    /// Measure throughput: run a configuration several times and report Mpps.
    Bench {
        #[command(flatten)]
        run: RunArgs,
        /// Repetitions (the best and the median are reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Run each repetition without and with fault tolerance, side by
        /// side, and report the throughput ratio, the per-packet latency
        /// (input to egress) of both, and the snapshot stalls.
        #[arg(long)]
        compare_ft: bool,
    },
    /// The main demo with built-in defaults: start the four roles as
    /// processes, kill the master with SIGKILL part-way, let the replica
    /// take over, and report recovery time and output correctness.
    Demo(demo::DemoArgs),
    /// Fault-tolerance role: the input logger.
    InputLogger {
        #[command(flatten)]
        role: roles::RoleArgs,
        /// Input rate, packets per second (0: as fast as possible).
        #[arg(long, default_value_t = 0.0)]
        pps: f64,
        /// Keep the input log in segment files in this directory: every
        /// packet is made durable before it is forwarded, segments behind
        /// each committed snapshot are deleted, and a restarted input
        /// logger recovers the log from it (a torn last packet dropped and
        /// counted).
        #[arg(long)]
        log_dir: Option<PathBuf>,
        /// Start a new segment file once the current one holds this many
        /// KiB (with `--log-dir`).
        #[arg(long, default_value_t = 65536)]
        log_segment_kb: u64,
    },
    /// Fault-tolerance role: the output logger (and failure detector).
    OutputLogger {
        #[command(flatten)]
        role: roles::RoleArgs,
        /// Failure detector deadline, milliseconds (a master that is killed
        /// is detected at once by its stream ending; the deadline catches a
        /// master that hangs).
        #[arg(long, default_value_t = 20.0)]
        deadline_ms: f64,
        /// Write one line per released output to this file.
        #[arg(long)]
        record: Option<PathBuf>,
        /// Largest snapshot a master may send, in MiB: one announced
        /// larger is refused before any memory is reserved for it.
        #[arg(long, default_value_t = 1024)]
        max_snapshot_mib: u64,
    },
    /// Fault-tolerance role: the master.
    Master {
        #[command(flatten)]
        role: roles::RoleArgs,
        /// Snapshot interval, milliseconds.
        #[arg(long, default_value_t = 50)]
        snapshot_ms: u64,
    },
    /// Fault-tolerance role: the standby replica.
    Replica {
        #[command(flatten)]
        role: roles::RoleArgs,
        /// Snapshot interval once it has taken over, milliseconds.
        #[arg(long, default_value_t = 50)]
        snapshot_ms: u64,
    },
}

#[derive(clap::Args)]
struct GenArgs {
    /// Output pcap file.
    out: PathBuf,
    /// Number of flows.
    #[arg(long, default_value_t = 1000)]
    flows: usize,
    /// Number of packets.
    #[arg(long, default_value_t = 100_000)]
    packets: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of flows that are TCP (the rest UDP).
    #[arg(long, default_value_t = 0.8)]
    tcp_fraction: f64,
    /// Smallest frame in bytes (Ethernet included).
    #[arg(long, default_value_t = 64)]
    min_size: usize,
    /// Largest frame in bytes.
    #[arg(long, default_value_t = 1514)]
    max_size: usize,
    /// Client (inside) network.
    #[arg(long, default_value = "10.0.0.0/8")]
    inside: String,
    /// Server (outside) network.
    #[arg(long, default_value = "198.19.0.0/16")]
    outside: String,
    /// Share of packets from server to client.
    #[arg(long, default_value_t = 0.4)]
    reply_fraction: f64,
    /// Flows active at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

fn parse_vars(vars: &[String]) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for v in vars {
        let Some((k, val)) = v.split_once('=') else {
            bail!("`{v}` is not NAME=value");
        };
        m.insert(k.trim_start_matches('$').to_string(), val.to_string());
    }
    Ok(m)
}

/// Most worker threads (`--threads`): a worker is a thread with its own
/// instance of every element, and a dependency vector entry in every output.
pub(crate) const MAX_THREADS: usize = 256;

/// `--threads`: a number from 1 to [`MAX_THREADS`].
pub(crate) fn threads_arg(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of threads"))?;
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(format!("{n} threads: from 1 to {MAX_THREADS}"));
    }
    Ok(n)
}

/// Most packets per batch (`--batch`): each worker's queue holds batches
/// allocated at this size.
pub(crate) const MAX_BATCH: usize = 1 << 16;

/// `--batch`: a number from 1 to [`MAX_BATCH`].
fn batch_arg(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of packets"))?;
    if !(1..=MAX_BATCH).contains(&n) {
        return Err(format!("{n} packets per batch: from 1 to {MAX_BATCH}"));
    }
    Ok(n)
}

/// Read and build `config` with `vars` for `threads` workers; its sinks
/// are opened only with [`SinkMode::Open`] (`ftmb run`, the output logger).
/// A configuration error is printed (file:line:column) and exits with 1.
pub(crate) fn load(
    config: &Path,
    vars: &[String],
    threads: usize,
    sinks: SinkMode,
) -> Result<Graph> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let source = Source {
        name: config.display().to_string(),
        text,
    };
    let vars = parse_vars(vars)?;
    match build_with(&source, &vars, &ftmb_elements::registry(), threads, sinks) {
        Ok(g) => Ok(g),
        Err(e) => {
            eprint!("{}", e.render(std::io::stderr().is_terminal()));
            std::process::exit(1);
        }
    }
}

/// A run and what was measured in it.
pub(crate) struct Measured {
    pub report: RunReport,
    /// Per output packet: nanoseconds from input to egress (when measured).
    pub latency_ns: Vec<u64>,
    /// With --ft: per committed snapshot, (stall ns, state bytes).
    pub stalls: Vec<(u64, usize)>,
    /// With --ft: log records shipped to the output logger.
    pub records: u64,
    /// What the run's mode adds (log bytes, outputs held, Redis calls).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn run_once(a: &RunArgs, print: bool) -> Result<RunReport> {
    Ok(run_measured(a, print, false)?.report)
}

pub(crate) fn run_measured(a: &RunArgs, print: bool, latency: bool) -> Result<Measured> {
    let graph = load(&a.config, &a.vars, a.threads.max(1), SinkMode::Open)?;
    let probes: Vec<_> = if latency {
        graph
            .sinks
            .sinks()
            .iter()
            .map(|s| ftmb_core::egress::LatencyProbe::install(s))
            .collect()
    } else {
        Vec::new()
    };
    let mode = a.mode();
    let ol = (mode == Mode::Ftmb).then(|| {
        Arc::new(ThreadedOutputLogger::start(
            Arc::new(OutputLogger::new(
                a.threads.max(1),
                graph.sinks.sinks().to_vec(),
            )),
            std::time::Duration::from_micros(a.logger_poll_us),
        ))
    });
    let counting = ol.as_ref().map(|ol| {
        let c = bench::CountingLink::new(ol.clone());
        // Test only: one output repeated with other bytes (see
        // docs/design.md, section 6), which the output logger must catch.
        if std::env::var_os("FTMB_TEST_DIVERGE").is_some_and(|v| v == "1") {
            tracing::warn!(
                "FTMB_TEST_DIVERGE=1: TEST HOOK ON, one output is repeated with other bytes on purpose"
            );
            c.repeat_one_output_diverged();
        }
        Arc::new(c)
    });
    let snap_only = (mode == Mode::SnapshotOnly)
        .then(|| Arc::new(SnapshotOnlyLink::new(graph.sinks.sinks().to_vec())));
    let link: Option<Arc<dyn FtLink>> = match (&counting, &snap_only) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(s)) => Some(s.clone()),
        (None, None) => None,
    };
    let redis_counters = Arc::new(RedisCounters::default());
    let remote_state = if mode == Mode::RemoteState {
        let addr = a
            .redis
            .as_deref()
            .context("--mode remote-state needs --redis HOST:PORT")?;
        Some(
            redis::remote_state(addr, redis_counters.clone())
                .with_context(|| format!("cannot reach Redis at {addr}"))?,
        )
    } else {
        None
    };
    let opts = RunOptions {
        batch: a.batch,
        seed: a.seed,
        pipeline: a.pipeline,
        ft: link.map(|link| FtOptions {
            link,
            replay: None,
            restore: None,
            snapshots: Some(SnapshotTrigger::Every(Duration::from_millis(a.snapshot_ms))),
        }),
        pace_pps: a.pps,
        stamp_arrival: latency,
        ft_unlogged: mode == Mode::SnapshotOnly,
        remote_state,
        ..RunOptions::default()
    };
    let bar = (!a.quiet).then(progress_bar);
    let mut progress = |p: Progress| {
        if let Some(b) = &bar {
            if p.elapsed >= Duration::from_secs(1) {
                b.set_length(p.total.max(1));
                b.set_position(p.done);
                b.set_message(format!("{} packets", p.packets));
            }
        }
    };
    let mut stdout = std::io::stdout();
    let mut sink = std::io::sink();
    let out: &mut dyn std::io::Write = if print { &mut stdout } else { &mut sink };
    let report = run(graph, &opts, out, &mut progress);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    let mut m = Measured {
        report,
        latency_ns: Vec::new(),
        stalls: Vec::new(),
        records: 0,
        extra: serde_json::Map::new(),
    };
    if let Some(ol) = ol {
        collect_ftmb(ol, a.quiet, &mut m);
    }
    if let Some(c) = &counting {
        collect_log_bytes(c, &mut m);
    }
    if let Some(s) = &snap_only {
        collect_snapshot_only(s, a.quiet, &mut m);
    }
    if mode == Mode::RemoteState {
        m.extra
            .insert("redis".into(), redis_counters.json(m.report.packets));
    }
    for p in probes {
        m.latency_ns.append(&mut p.lock());
    }
    Ok(m)
}

/// The progress line on stderr.
fn progress_bar() -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {percent}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// With FTMB: stop the output logger and take its figures.
fn collect_ftmb(ol: Arc<ThreadedOutputLogger>, quiet: bool, m: &mut Measured) {
    let ol = ol.finish();
    ol.flush();
    // The run is over when its last output has left: with FT that is
    // the output logger's last release, which may come after the
    // workers stopped.
    if let Some(t) = ol.last_release() {
        let until = t.saturating_duration_since(m.report.started);
        m.report.elapsed = m.report.elapsed.max(until);
    }
    m.stalls = ol.snapshot_stalls();
    m.records = ol.records();
    let st = ol.stats();
    if !quiet {
        eprintln!(
            "ft: {} outputs released, {} held, {} snapshots, {} log records stored, {} divergent",
            st.released, st.held, st.snapshots, st.stored_records, st.divergence
        );
    }
    // An output repeated under a released key with other bytes: a failure
    // of the run (it exits with status 2).
    if st.divergence > 0 {
        let e = format!(
            "output logger: {} outputs diverged from the ones released under their keys (first: {:?})",
            st.divergence,
            ol.diverged()
        );
        eprintln!("error: {e}");
        m.report.errors.push(e);
    }
    m.extra.insert("divergence".into(), st.divergence.into());
    for e in ol.errors() {
        eprintln!("error: output logger: {e}");
    }
}

/// With FTMB: the bytes its input and PAL logs would put on the wire.
fn collect_log_bytes(c: &bench::CountingLink, m: &mut Measured) {
    let secs = m.report.elapsed.as_secs_f64().max(1e-9);
    let (input, pal) = c.bytes();
    m.extra.insert("input_log_bytes".into(), input.into());
    m.extra.insert("pal_log_bytes".into(), pal.into());
    m.extra
        .insert("input_log_bytes_per_s".into(), (input as f64 / secs).into());
    m.extra
        .insert("pal_log_bytes_per_s".into(), (pal as f64 / secs).into());
}

/// With snapshot-only: release what is held and take its figures.
fn collect_snapshot_only(s: &SnapshotOnlyLink, quiet: bool, m: &mut Measured) {
    // Its held outputs leave at the end-of-run snapshot: the run lasts
    // until they have, as an FT run lasts until its last release.
    s.finish();
    let until = m.report.started.elapsed();
    m.report.elapsed = m.report.elapsed.max(until);
    m.stalls = s.snapshot_stalls();
    let st = s.stats();
    m.extra.insert("snapshot_only".into(), st.json());
    if !quiet {
        eprintln!(
            "snapshot-only: {} outputs released ({} at the end), at most {} held, {} snapshots",
            st.released, st.released_at_finish, st.max_held, st.snapshots
        );
    }
}

/// Turn transparent huge pages off for this process (every role, run and
/// bench), unless `FTMB_KEEP_THP` is set. The allocator asks for huge pages
/// (madvise) where the kernel offers them, and the first touch of a huge
/// page zeroes 2 MB at once: on this VM a worker growing a shipment buffer
/// stood still for 2-10 ms in one such fault (perf: `clear_page_erms` under
/// `do_huge_pmd_anonymous_page` under `OutputBatch::push`), a snapshot
/// round waited for it, and FT runs, which allocate more, lost throughput.
/// A 4 KB fault costs microseconds.
#[cfg(target_os = "linux")]
fn no_huge_page_faults() {
    if std::env::var_os("FTMB_KEEP_THP").is_some() {
        return;
    }
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integer arguments only and
    // changes only this process's page policy; an error leaves it as it was.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(not(target_os = "linux"))]
fn no_huge_page_faults() {}

fn main() -> Result<()> {
    no_huge_page_faults();
    let cli = Cli::parse();
    init_diagnostics();
    match cli.cmd {
        Cmd::Run(a) => {
            let report = run_once(&a, true)?;
            if let Some(StatsFormat::Json) = a.stats {
                let j = serde_json::json!({
                    "elements": report.stats,
                    "packets": report.packets,
                    "per_worker": report.per_worker,
                    "queue_drops": report.queue_drops,
                    "elapsed_s": report.elapsed.as_secs_f64(),
                    "errors": report.errors,
                });
                print_out(&serde_json::to_string_pretty(&j)?);
            }
            if !report.errors.is_empty() {
                std::process::exit(2);
            }
        }
        Cmd::Check { config, vars } => {
            // Never opens (creates, truncates) a sink's file.
            let g = load(&config, &vars, 1, SinkMode::Unopened)?;
            println!(
                "{}: ok ({} elements, {} sources)",
                config.display(),
                g.names.len(),
                g.sources.len()
            );
        }
        Cmd::Elements => {
            for c in ftmb_elements::registry().classes() {
                print_out(&format!("{:<16} {}", c.name, c.summary));
            }
        }
        Cmd::GenTrace(g) => {
            let spec = TraceSpec {
                flows: g.flows,
                packets: g.packets,
                seed: g.seed,
                tcp_fraction: g.tcp_fraction,
                min_size: g.min_size,
                max_size: g.max_size,
                inside_net: parse_net(&g.inside)?,
                outside_net: parse_net(&g.outside)?,
                reply_fraction: g.reply_fraction,
                concurrency: g.concurrency,
                ..TraceSpec::default()
            };
            let mut w = PcapWriter::create(&g.out, LinkType::Ethernet, false)
                .with_context(|| format!("cannot create {}", g.out.display()))?;
            let st = generate(&spec, &mut w)?;
            w.flush()?;
            eprintln!(
                "wrote {}: {} packets, {} flows ({} tcp, {} udp), {} bytes",
                g.out.display(),
                st.packets,
                st.flows,
                st.tcp_flows,
                st.udp_flows,
                st.bytes
            );
        }
        Cmd::Bench {
            run: a,
            repeat,
            compare_ft: true,
        } => bench::compare_ft(&a, repeat)?,
        Cmd::Bench {
            run: a,
            repeat,
            compare_ft: false,
        } if a.mode.is_some() => bench::mode_bench(&a, repeat)?,
        Cmd::Bench {
            run: a,
            repeat,
            compare_ft: false,
        } => {
            let mut rates = Vec::new();
            for i in 0..repeat.max(1) {
                let r = run_once(&a, false)?;
                let mpps = r.packets as f64 / r.elapsed.as_secs_f64() / 1e6;
                eprintln!(
                    "run {}: {} packets in {:.3} s = {mpps:.3} Mpps",
                    i + 1,
                    r.packets,
                    r.elapsed.as_secs_f64()
                );
                rates.push(mpps);
            }
            rates.sort_by(f64::total_cmp);
            println!(
                "{}",
                serde_json::json!({
                    "config": a.config.display().to_string(),
                    "threads": a.threads,
                    "best_mpps": rates.last(),
                    "median_mpps": rates[rates.len() / 2],
                    "runs": rates.len(),
                })
            );
        }
        Cmd::Demo(d) => demo::demo(&d)?,
        Cmd::InputLogger {
            role,
            pps,
            log_dir,
            log_segment_kb,
        } => roles::input_logger(&role, pps, log_dir.as_deref(), log_segment_kb)?,
        Cmd::OutputLogger {
            role,
            deadline_ms,
            record,
            max_snapshot_mib,
        } => roles::output_logger(&role, deadline_ms, record, max_snapshot_mib)?,
        Cmd::Master { role, snapshot_ms } => roles::master(&role, snapshot_ms)?,
        Cmd::Replica { role, snapshot_ms } => roles::replica(&role, snapshot_ms)?,
    }
    Ok(())
}

/// The diagnostics target of the replica's "took over at N ns" line
/// ([`ftmb_replayer::TAKEOVER_TARGET`]).
use ftmb_replayer::TAKEOVER_TARGET as TAKEOVER;

/// Diagnostics (`tracing`) of the role processes and the demo: on stderr
/// only (stdout carries the roles' JSON reports and the master's `ready`
/// line), with timestamps, filtered by `RUST_LOG`. The default shows
/// warnings, errors and the replica's takeover line ([`TAKEOVER`]), so that
/// a demo shows what it showed before its report; `RUST_LOG=info` adds
/// each role's start and every takeover step, `debug` the per-snapshot
/// detail.
fn init_diagnostics() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,{TAKEOVER}=info")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Print a line to stdout; a closed pipe (`| head`) ends the output
/// quietly instead of panicking.
pub(crate) fn print_out(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn parse_net(s: &str) -> Result<([u8; 4], u8)> {
    let p: ftmb_core::Ipv4Prefix =
        ftmb_core::FromArg::from_arg(s).map_err(|e: String| anyhow::anyhow!("{s}: {e}"))?;
    Ok((p.addr.to_be_bytes(), p.len))
}
