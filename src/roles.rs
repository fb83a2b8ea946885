//! The `ftmb` subcommands that run one fault-tolerance role each, as its
//! own process. The mechanisms live in `ftmb_logger::server` (the
//! loggers) and `ftmb_logger::client` (the master's and the replica's
//! links to them); this module builds the configuration's graph for each
//! role and wires it up. Each role's diagnostics carry its name (`role`)
//! and, for the serving roles, their epoch (1 for the master, 2 for the
//! replica once it has taken over), from a span at level error, so that
//! it is on whenever any of the role's events is.

use crate::load;
use anyhow::{anyhow, Context, Result};
use ftmb_core::ft::{FtOptions, ReplayPlan, SnapshotTrigger};
use ftmb_core::headers::Framing;
use ftmb_core::router::{run, wall_ns, RunOptions};
use ftmb_logger::client::{await_takeover, connect, resume, Addr, RemoteInput, SocketLink};
use ftmb_logger::output_logger::OutputLogger;
use ftmb_logger::server::{run_input_logger, run_output_logger};
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
/// records, then carry on as the master. Prints its timings as JSON.
pub fn replica(a: &RoleArgs, snapshot_ms: u64) -> Result<()> {
    // The epoch is the serving role's: the replica has one once it serves.
    let role = tracing::error_span!("ftmb", role = "replica", epoch = tracing::field::Empty);
    let _role = role.enter();
    // The graph is built while standing by, and each snapshot the output
    // logger forwards is loaded into it once whole (read where it lies):
    // a takeover with the last one has only logs to replay.
    let mut g = load(&a.config, &a.vars, a.threads)?;
    let ol = connect(&a.ol, Duration::from_secs(10)).context("output logger")?;
    // Connected to the input logger while standing by (it serves a
    // connection only once asked to resume): a takeover then costs one
    // round trip there, not a connection and the logger's new thread.
    let il = connect(&a.il, Duration::from_secs(10)).context("input logger")?;
    tracing::info!("replica standing by");
    let mut prepared = None;
    let mut take = await_takeover(&ol, a.threads, &mut |bytes| {
        prepared = g.restore_encoded(bytes).ok();
        prepared.is_some()
    })
    .map_err(|e| anyhow!(e))?;
    if take.prepared {
        take.snapshot = prepared;
    }
    let took_ns = wall_ns();
    role.record("epoch", 2);
    // Said at once (the final report comes only when the run ends, which
    // on a live device is never): when, and from which input packet. Shown
    // by default (see `TAKEOVER` in main.rs): scripts/lab.sh reads it.
    tracing::info!(
        target: crate::TAKEOVER,
        "took over at {took_ns} ns, replaying from input packet {}",
        take.cut
    );
    // Ask the input logger for its log from the cut while the snapshot
    // is loaded; its packets stream in and are replayed as they come.
    let (cut, framing) = (take.cut, framing_of(&g));
    let fetch = std::thread::Builder::new()
        .name("ftmb-fetch-input".into())
        .spawn(move || -> Result<_> {
            let (live, input) = resume(&il, cut).map_err(|e| anyhow!(e))?;
            let replay = live.saturating_sub(cut);
            let (input, packets) = RemoteInput::start_after_replay(input, framing, replay)?;
            Ok((il, live, input, (packets, replay), wall_ns()))
        })?;
    let restore_start = std::time::Instant::now();
    if let Some(snap) = take.snapshot.as_ref().filter(|s| g.restored != Some(s.id)) {
        g.restore(snap).map_err(|e| anyhow!(e))?;
    }
    let restore_ms = restore_start.elapsed().as_secs_f64() * 1e3;
    let loaded_ns = wall_ns();
    let (_il, live, input, streamed, input_resumed_ns) = fetch
        .join()
        .map_err(|_| anyhow!("the input fetch thread panicked"))??;
    g.external_input = Some(Box::new(input));
    let first_seq = ReplayPlan::first_seqs(take.snapshot.as_ref(), a.threads);
    let first_packet = ReplayPlan::first_packets(take.snapshot.as_ref(), a.threads);
    let replayed = streamed.1;
    let plan = ReplayPlan {
        packets: Vec::new(),
        streamed: Some(streamed),
        next_seq: take.next_seq,
        logs: take.logs,
        first_seq,
        first_packet,
        then_sources: true,
    };
    let hb = connect(&a.ol.heartbeat()?, Duration::from_secs(10)).context("heartbeats")?;
    let link = Arc::new(SocketLink::new(&ol, &hb, Duration::from_millis(1))?);
    let opts = RunOptions {
        seed: Some(a.seed),
        ft: Some(FtOptions {
            link: link.clone(),
            replay: Some(Arc::new(plan)),
            restore: take.snapshot.map(Arc::new),
            snapshots: Some(SnapshotTrigger::Every(Duration::from_millis(snapshot_ms))),
        }),
        ..RunOptions::default()
    };
    let run_start_ns = wall_ns();
    let r = run(g, &opts, &mut std::io::sink(), &mut |_| {});
    link.finish();
    println!(
        "{}",
        serde_json::json!({
            "took_over_ns": took_ns,
            "takeover_received_ns": take.received_ns,
            "input_resumed_ns": input_resumed_ns,
            "loaded_ns": loaded_ns,
            "run_start_ns": run_start_ns,
            "cut": take.cut,
            "live_from": live,
            "replayed_packets": replayed,
            "restore_ms": restore_ms,
            "replay_done_ms": r.replay_elapsed.map(|d| d.as_secs_f64() * 1e3),
            "divergence": r.divergence,
            "errors": r.errors,
        })
    );
    Ok(())
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
