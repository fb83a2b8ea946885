//! The `ftmb` subcommands that run one fault-tolerance role each, as its
//! own process. The mechanisms live in `ftmb_logger::server` (the
//! loggers), `ftmb_logger::client` (the master's link to them) and, for
//! the replica, `ftmb_replayer`; this module builds the configuration's
//! graph for each role and wires it up. Each role's diagnostics carry its
//! name (`role`) and, for the serving roles, their epoch (1 for the master,
//! 2 for the replica once it has taken over), from a span at level error,
//! so that it is on whenever any of the role's events is.

use crate::load;
use anyhow::{anyhow, Context, Result};
use ftmb_core::ft::{FtOptions, SnapshotTrigger};
use ftmb_core::headers::Framing;
use ftmb_core::runtime::{run, RunOptions};
use ftmb_logger::client::{connect, resume, Addr, RemoteInput, SocketLink};
use ftmb_logger::output_logger::OutputLogger;
use ftmb_logger::server::{run_input_logger, run_output_logger};
use ftmb_replayer::{take_over, TakeoverOptions};
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
    /// Worker threads of the master and the replica (must match).
    #[arg(long, short = 't', default_value_t = 1)]
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
}

fn parse_addr(s: &str) -> Result<Addr, String> {
    if s.is_empty() {
        return Err("empty address".into());
    }
    Ok(Addr::parse(s))
}

/// `ftmb input-logger`: read the configuration's sources, number and log
/// every packet, serve the master (then the replica) on `--il`.
pub fn input_logger(a: &RoleArgs, pps: f64) -> Result<()> {
    let _role = tracing::error_span!("ftmb", role = "input-logger").entered();
    tracing::info!(listen = %a.il, "input logger starting");
    let g = load(&a.config, &a.vars, 1)?;
    let sources = g.sources.into_iter().map(|(_, s)| s).collect();
    let never = AtomicBool::new(false);
    run_input_logger(sources, &a.il, pps, &never).context("input logger")?;
    Ok(())
}

/// `ftmb output-logger`: hold outputs until committed, write them to the
/// configuration's sinks, detect the master's failure and hand over to the
/// standby replica.
pub fn output_logger(a: &RoleArgs, deadline_ms: f64, record: Option<PathBuf>) -> Result<()> {
    let _role = tracing::error_span!("ftmb", role = "output-logger").entered();
    tracing::info!(listen = %a.ol, input_logger = %a.il, deadline_ms, "output logger starting");
    let g = load(&a.config, &a.vars, a.threads)?;
    let ol = Arc::new(OutputLogger::new(a.threads, g.sinks.sinks().to_vec()));
    if record.is_some() {
        ol.record_releases();
    }
    let report = run_output_logger(
        ol.clone(),
        &a.ol,
        Some(&a.il),
        Duration::from_secs_f64(deadline_ms / 1e3),
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
    let mut g = load(&a.config, &a.vars, a.threads)?;
    let ol = connect(&a.ol, Duration::from_secs(10)).context("output logger")?;
    let hb = connect(&a.ol.heartbeat()?, Duration::from_secs(10)).context("heartbeats")?;
    let link = Arc::new(SocketLink::new(&ol, &hb, Duration::from_millis(1))?);
    let il = connect(&a.il, Duration::from_secs(10)).context("input logger")?;
    let (_, input) = resume(&il, 1).map_err(|e| anyhow!(e))?;
    g.external_input = Some(Box::new(RemoteInput::start(input, framing_of(&g))?));
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
    link.finish();
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
    let g = load(&a.config, &a.vars, a.threads)?;
    let opts = TakeoverOptions {
        il: a.il.clone(),
        ol: a.ol.clone(),
        threads: a.threads,
        seed: a.seed,
        snapshot_every: Duration::from_millis(snapshot_ms),
        test_diverge_replay: test_diverge(),
    };
    let t = take_over(g, &opts)?;
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
