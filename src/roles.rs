//! The `ftmb` subcommands that run one fault-tolerance role each, as its
//! own process. The mechanisms live in `ftmb_logger::server` (the
//! loggers), `ftmb_logger::client` (the master's link to them) and, for
//! the replica, `ftmb_replayer`; this module builds the configuration's
//! graph for each role and wires it up. Each role's diagnostics carry its
//! name (`role`) and, for the serving roles, their epoch (1 for the master,
//! 2 for the replica once it has taken over), from a span at level error,
//! so that it is on whenever any of the role's events is.

use crate::load;
use anyhow::{anyhow, bail, Context, Result};
use ftmb_core::egress::SinkMode;
use ftmb_core::ft::{FtOptions, SnapshotTrigger};
use ftmb_core::headers::Framing;
use ftmb_core::runtime::{run, RunOptions};
use ftmb_logger::client::{
    connect, resume, Addr, InputWatch, PeerFailure, RemoteInput, SocketLink,
};
use ftmb_logger::input_log::{DurableInputLog, DurableOptions, RecoveryMode};
use ftmb_logger::output_logger::OutputLogger;
use ftmb_logger::server::{run_input_logger, run_output_logger};
use ftmb_replayer::{take_over, TakeoverError, TakeoverOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Options every role shares.
#[derive(clap::Args, Clone)]
pub struct RoleArgs {
    /// Click configuration file.
    pub config: PathBuf,
    /// `NAME=value` settings.
    pub vars: Vec<String>,
    /// Worker threads of the master and the replica (must match; 1 to 256).
    #[arg(long, short = 't', default_value_t = 1, value_parser = crate::threads_arg)]
    pub threads: usize,
    /// Input logger address: a Unix socket path (same host) or
    /// `tcp:HOST:PORT` (the input logger listens there).
    #[arg(long, value_parser = parse_addr)]
    pub il: Addr,
    /// Output logger address: a Unix socket path or `tcp:HOST:PORT`; its
    /// heartbeats use `PATH.hb` or `PORT + 1`.
    #[arg(long, value_parser = parse_addr)]
    pub ol: Addr,
    /// Seed of the workers' generators (master and replica must match).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long the master, the replica and the output logger wait for the
    /// input logger once its stream ends without end of input, before they
    /// exit with its death (milliseconds).
    #[arg(long, default_value_t = 1000)]
    pub il_grace_ms: u64,
}

impl RoleArgs {
    fn il_grace(&self) -> Duration {
        Duration::from_millis(self.il_grace_ms)
    }
}

fn parse_addr(s: &str) -> Result<Addr, String> {
    if s.is_empty() {
        return Err("empty address".into());
    }
    Ok(Addr::parse(s))
}

/// `ftmb input-logger`: read the configuration's sources, number and log
/// every packet, serve the master (then the replica) on `--il`. With
/// `log_dir`, the log is durable: recovered from the directory first (what
/// was recovered is printed as one JSON line), persisted before it is
/// forwarded.
pub fn input_logger(
    a: &RoleArgs,
    pps: f64,
    log_dir: Option<&std::path::Path>,
    segment_kb: u64,
) -> Result<()> {
    let _role = tracing::error_span!("ftmb", role = "input-logger").entered();
    tracing::info!(listen = %a.il, "input logger starting");
    let g = load(&a.config, &a.vars, 1, SinkMode::Unopened)?;
    let sources = g.sources.into_iter().map(|(_, s)| s).collect();
    let durable = match log_dir {
        Some(dir) => Some(recover_input_log(dir, segment_kb)?),
        None => None,
    };
    let never = AtomicBool::new(false);
    let packets = run_input_logger(sources, &a.il, pps, durable, &never)
        .map_err(|e| anyhow!("input logger: {e}"))?;
    tracing::info!(packets, "the run ended: input logger done");
    Ok(())
}

/// Open the durable input log in `dir` (segments of `segment_kb` KiB),
/// recovering what is there; a torn last packet is dropped and counted.
/// Prints what was recovered as one JSON line.
fn recover_input_log(dir: &std::path::Path, segment_kb: u64) -> Result<DurableInputLog> {
    let opts = DurableOptions {
        segment_bytes: segment_kb.max(1) << 10,
        ..DurableOptions::default()
    };
    let (log, rep) = DurableInputLog::recover(dir, opts, RecoveryMode::TolerateTornTail)
        .with_context(|| format!("input log in {}", dir.display()))?;
    // A torn tail is at most one packet: the last, cut short.
    let torn_packets = u64::from(rep.torn_bytes_dropped > 0);
    if torn_packets > 0 {
        tracing::warn!(
            bytes = rep.torn_bytes_dropped,
            "input log: a torn last packet dropped"
        );
    }
    tracing::info!(
        segments = rep.segments,
        packets = rep.packets,
        next_id = log.log().next_id(),
        "input log recovered"
    );
    println!(
        "{}",
        serde_json::json!({
            "recovered": {
                "segments": rep.segments,
                "packets": rep.packets,
                "first_id": log.log().first_id(),
                "next_id": log.log().next_id(),
                "torn_packets": torn_packets,
                "torn_bytes_dropped": rep.torn_bytes_dropped,
            }
        })
    );
    std::io::stdout().flush()?;
    Ok(log)
}

/// `ftmb output-logger`: hold outputs until committed, write them to the
/// configuration's sinks, detect the master's failure and hand over to the
/// standby replica.
pub fn output_logger(
    a: &RoleArgs,
    deadline_ms: f64,
    record: Option<PathBuf>,
    max_snapshot_mib: u64,
) -> Result<()> {
    let _role = tracing::error_span!("ftmb", role = "output-logger").entered();
    tracing::info!(listen = %a.ol, input_logger = %a.il, deadline_ms, "output logger starting");
    // The only role that opens the sinks (creating or truncating their files).
    let g = load(&a.config, &a.vars, a.threads, SinkMode::Open)?;
    let ol = Arc::new(OutputLogger::new(a.threads, g.sinks.sinks().to_vec()));
    ol.set_max_snapshot(max_snapshot_mib.saturating_mul(1 << 20));
    if record.is_some() {
        ol.record_releases();
    }
    let report = run_output_logger(
        ol.clone(),
        &a.ol,
        Some(&a.il),
        Duration::from_secs_f64(deadline_ms / 1e3),
        a.il_grace(),
    )
    .context("output logger")?;
    if let Some(path) = record {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        // One line per released output: input id, ordinal, sink, and the
        // flow it carries (for checking NAT mappings), `-` when not TCP/UDP.
        for r in ol.take_releases() {
            let flow = r
                .data
                .get(14..)
                .and_then(ftmb_core::headers::FlowId::of_ipv4)
                .map_or("-".to_string(), |f| flow_fields(&f));
            writeln!(f, "{} {} {} {flow}", r.packet_id, r.ordinal, r.sink)?;
        }
        f.flush()?;
    }
    println!("{}", serde_json::to_string(&report)?);
    if let Some(why) = &report.failure {
        bail!("output logger: {why}");
    }
    Ok(())
}

fn framing_of(g: &ftmb_core::graph::Graph) -> Framing {
    g.sources
        .first()
        .map_or(Framing::Unknown, |(_, s)| s.framing())
}

/// `ftmb master`: run the configuration on the input logger's stream with
/// ordered logging, shipping to the output logger.
pub fn master(a: &RoleArgs, snapshot_ms: u64) -> Result<()> {
    let _role = tracing::error_span!("ftmb", role = "master", epoch = 1).entered();
    let mut g = load(&a.config, &a.vars, a.threads, SinkMode::Unopened)?;
    let ol = connect(&a.ol, Duration::from_secs(10)).context("output logger")?;
    let hb = connect(&a.ol.heartbeat()?, Duration::from_secs(10)).context("heartbeats")?;
    let failure = PeerFailure::default();
    let link = Arc::new(SocketLink::with_failure(
        &ol,
        &hb,
        Duration::from_millis(1),
        failure.clone(),
    )?);
    let il = connect(&a.il, Duration::from_secs(10)).context("input logger")?;
    let (_, input) = resume(&il, 1).map_err(|e| anyhow!(e))?;
    let watch = InputWatch {
        grace: a.il_grace(),
        failure: failure.clone(),
    };
    g.external_input = Some(Box::new(RemoteInput::start(input, framing_of(&g), watch)?));
    // Connected to both loggers: tell whoever started us (the demo starts
    // its kill timer on this line).
    println!("ready");
    std::io::stdout().flush()?;
    tracing::info!(
        threads = a.threads,
        snapshot_ms,
        "master connected to both loggers: running"
    );
    let opts = RunOptions {
        seed: Some(a.seed),
        ft: Some(FtOptions {
            link: link.clone(),
            replay: None,
            restore: None,
            snapshots: Some(SnapshotTrigger::Every(Duration::from_millis(snapshot_ms))),
        }),
        ..RunOptions::default()
    };
    let r = run(g, &opts, &mut std::io::sink(), &mut |_| {});
    // What was shipped stands (the output logger releases what commits),
    // whether the input ended or its logger died.
    link.finish();
    if let Some(why) = failure.get() {
        bail!("master: {why}");
    }
    for e in &r.errors {
        tracing::error!("{e}");
    }
    Ok(())
}

/// `ftmb replica`: stand by on the output logger; on takeover restore the
/// snapshot, replay the input logger's log from its cut under the logged
/// records, then carry on as the master ([`ftmb_replayer::take_over`]).
/// Prints its timings as JSON.
pub fn replica(a: &RoleArgs, snapshot_ms: u64) -> Result<()> {
    // The epoch is the serving role's: the replica has one once it serves.
    let role = tracing::error_span!("ftmb", role = "replica", epoch = tracing::field::Empty);
    let _role = role.enter();
    // The graph is built while standing by, and each snapshot the output
    // logger forwards is loaded into it as it comes.
    let g = load(&a.config, &a.vars, a.threads, SinkMode::Unopened)?;
    let opts = TakeoverOptions {
        il: a.il.clone(),
        ol: a.ol.clone(),
        threads: a.threads,
        seed: a.seed,
        snapshot_every: Duration::from_millis(snapshot_ms),
        il_grace: a.il_grace(),
        test_diverge_replay: test_diverge(),
    };
    let t = match take_over(g, &opts) {
        Ok(t) => t,
        Err(TakeoverError::RunEnded) => {
            tracing::info!("the run ended without a takeover");
            return Ok(());
        }
        Err(e) => {
            tracing::error!("{e}");
            bail!("replica: {e}");
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "took_over_ns": t.took_over_ns,
            "takeover_received_ns": t.takeover_received_ns,
            "input_resumed_ns": t.input_resumed_ns,
            "loaded_ns": t.loaded_ns,
            "run_start_ns": t.run_start_ns,
            "cut": t.cut,
            "live_from": t.live_from,
            "replayed_packets": t.replayed_packets,
            "restore_ms": t.restore_ms,
            "replay_done_ms": t.run.replay_elapsed.map(|d| d.as_secs_f64() * 1e3),
            "divergence": t.run.divergence,
            "errors": t.run.errors,
            "test_diverge": opts.test_diverge_replay,
        })
    );
    if let Some(why) = &t.peer_failure {
        bail!("replica: {why}");
    }
    Ok(())
}

/// The test-only hook `FTMB_TEST_DIVERGE=1` (read once, by the replica
/// role): the replica corrupts every output it replays, so that the
/// output logger must report a divergence. Any other value, or none,
/// leaves it off; when on, it says so loudly.
fn test_diverge() -> bool {
    let on = std::env::var_os("FTMB_TEST_DIVERGE").is_some_and(|v| v == "1");
    if on {
        tracing::warn!(
            "FTMB_TEST_DIVERGE=1: TEST HOOK ON, replayed outputs are corrupted on purpose"
        );
    }
    on
}

/// A flow as a release record writes it: source address (as a number),
/// source port, destination address, destination port, protocol.
pub(crate) fn flow_fields(f: &ftmb_core::headers::FlowId) -> String {
    format!(
        "{} {} {} {} {}",
        u32::from_be_bytes(f.saddr),
        f.sport,
        u32::from_be_bytes(f.daddr),
        f.dport,
        f.proto
    )
}
