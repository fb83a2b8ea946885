//! What happens when the master dies, from the standby replica's side:
//!
//! 1. **Stand by** on the output logger (and connected to the input
//!    logger, which serves a connection only once asked to resume): each
//!    snapshot the output logger forwards is loaded into the graph as it
//!    comes, so that a takeover with the last one has only logs to replay.
//! 2. **Take over** when the output logger says the master is dead: it
//!    sends the last committed snapshot's cut, the logged records after it
//!    and the sequence bounds.
//! 3. **Resume the input**: ask the input logger for its log from the cut;
//!    its packets stream in (on a thread of their own) while the snapshot
//!    is restored, and are replayed as they come.
//! 4. **Restore** the snapshot (unless it was loaded while standing by).
//! 5. **Replay under the logged order, then go live**: run the graph with
//!    the [`ReplayPlan`] (the runtime replays it in the master's batches,
//!    every shared-state access in its logged turn) and carry on as the
//!    master on the input logger's live stream, shipping to the output
//!    logger on the same connection.

use crate::ReplayPlan;
use ftmb_core::clock::wall_ns;
use ftmb_core::ft::{FtOptions, SnapshotTrigger};
use ftmb_core::graph::Graph;
use ftmb_core::headers::Framing;
use ftmb_core::packet::Packet;
use ftmb_core::runtime::{run, RunOptions, RunReport};
use ftmb_core::snapshot::Snapshot;
use ftmb_logger::client::{
    await_takeover, connect, resume, Addr, InputWatch, PeerFailure, RemoteInput, SocketLink,
};
use ftmb_logger::transport::Stream;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The diagnostics target of the "took over at N ns" line: shown at the
/// default level beside warnings and errors (see `init_diagnostics` in the
/// `ftmb` binary), so that a user running the roles by hand sees when the
/// replica took over; scripts/lab.sh reads the time from it.
pub const TAKEOVER_TARGET: &str = "ftmb::takeover";

/// How long to wait for a logger to accept a connection.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// How a replica takes over.
#[derive(Clone, Debug)]
pub struct TakeoverOptions {
    /// The input logger.
    pub il: Addr,
    /// The output logger (its heartbeats beside it).
    pub ol: Addr,
    /// Worker threads (as the master's).
    pub threads: usize,
    /// Seed of the workers' generators (as the master's).
    pub seed: u64,
    /// Take a snapshot this often once live.
    pub snapshot_every: Duration,
    /// How long to wait for the input logger once its stream ended without
    /// end of input, before the run stops with its death.
    pub il_grace: Duration,
    /// **Test only** (see `RunOptions::test_diverge_replay`): corrupt
    /// every replayed output, for the output logger's divergence check to
    /// catch. The `replica` role sets it from `FTMB_TEST_DIVERGE=1`.
    pub test_diverge_replay: bool,
}

/// Why a takeover failed.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    /// A logger could not be reached.
    #[error("{what} unreachable: {source}")]
    Connect {
        /// Which connection (`output logger`, `input logger`,
        /// `heartbeats`).
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A logger answered out of protocol, or the snapshot did not restore.
    #[error("{0}")]
    Protocol(String),
    /// A socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The thread fetching the input log panicked.
    #[error("the input fetch thread panicked")]
    FetchPanicked,
    /// The run ended cleanly without a takeover: the output logger ended
    /// the standby link with `EndOfStream`. Not a failure.
    #[error("the run ended without a takeover")]
    RunEnded,
}

/// The timings and outcome of a takeover (the replica prints them as JSON).
#[derive(Debug)]
pub struct TakeoverReport {
    /// When the takeover was received and decoded (ns since the epoch).
    pub took_over_ns: u64,
    /// When the takeover's last frame arrived.
    pub takeover_received_ns: u64,
    /// When the input logger answered the resume.
    pub input_resumed_ns: u64,
    /// When the snapshot was restored.
    pub loaded_ns: u64,
    /// When the run started.
    pub run_start_ns: u64,
    /// The snapshot's cut: the first input id replayed.
    pub cut: u64,
    /// The input id live traffic starts at.
    pub live_from: u64,
    /// Packets replayed (`live_from - cut`).
    pub replayed_packets: u64,
    /// Time to restore the snapshot, milliseconds.
    pub restore_ms: f64,
    /// The run (replay, then live until the input ends).
    pub run: RunReport,
    /// A logger's death that ended the run, if one did (the replica then
    /// exits with it).
    pub peer_failure: Option<String>,
}

/// Stand by as the replica, take over when the master dies, and run as the
/// new master until the input ends (on a live device, never). `graph` is
/// the configuration's graph, built with the master's worker count.
pub fn take_over(
    mut graph: Graph,
    opts: &TakeoverOptions,
) -> Result<TakeoverReport, TakeoverError> {
    let ol = connect(&opts.ol, CONNECT_WAIT).map_err(|source| TakeoverError::Connect {
        what: "output logger",
        source,
    })?;
    // Connected to the input logger while standing by (it serves a
    // connection only once asked to resume): a takeover then costs one
    // round trip there, not a connection and the logger's new thread.
    let il = connect(&opts.il, CONNECT_WAIT).map_err(|source| TakeoverError::Connect {
        what: "input logger",
        source,
    })?;
    tracing::info!("replica standing by");
    // 1-2. Stand by, loading each forwarded snapshot once whole (read
    // where it lies), until the takeover comes.
    let mut prepared = None;
    let mut take = await_takeover(&ol, opts.threads, &mut |bytes| {
        prepared = graph.restore_encoded(bytes).ok();
        prepared.is_some()
    })
    .map_err(TakeoverError::Protocol)?
    .ok_or(TakeoverError::RunEnded)?;
    if take.prepared {
        take.snapshot = prepared;
    }
    let took_over_ns = wall_ns();
    // The replica serves from here on: the caller's role span (if it has
    // an `epoch` field) says so.
    tracing::Span::current().record("epoch", 2);
    // Said at once (the final report comes only when the run ends, which
    // on a live device is never): when, and from which input packet.
    tracing::info!(
        target: TAKEOVER_TARGET,
        "took over at {took_over_ns} ns, replaying from input packet {}",
        take.cut
    );
    // 3. The input log from the cut streams in while the snapshot loads.
    let failure = PeerFailure::default();
    let watch = InputWatch {
        grace: opts.il_grace,
        failure: failure.clone(),
    };
    let fetch = resume_input(il, take.cut, framing_of(&graph), watch)?;
    // 4. Restore.
    let restore_start = Instant::now();
    if let Some(snap) = take
        .snapshot
        .as_ref()
        .filter(|s| graph.restored != Some(s.id))
    {
        graph.restore(snap).map_err(TakeoverError::Protocol)?;
    }
    let restore_ms = restore_start.elapsed().as_secs_f64() * 1e3;
    let loaded_ns = wall_ns();
    let ResumedInput {
        conn: _il,
        live,
        replay,
        replayed,
        live_from,
        resumed_ns,
    } = fetch.join().map_err(|_| TakeoverError::FetchPanicked)??;
    graph.external_input = Some(Box::new(live));
    // 5. Replay, then live.
    let plan = ReplayPlan {
        packets: Vec::new(),
        streamed: Some((replay, replayed)),
        next_seq: take.next_seq,
        logs: take.logs,
        first_seq: ReplayPlan::first_seqs(take.snapshot.as_ref(), opts.threads),
        first_packet: ReplayPlan::first_packets(take.snapshot.as_ref(), opts.threads),
        then_sources: true,
    };
    let (run_start_ns, run) =
        replay_then_live(graph, &ol, opts, plan, take.snapshot, failure.clone())?;
    Ok(TakeoverReport {
        took_over_ns,
        takeover_received_ns: take.received_ns,
        input_resumed_ns: resumed_ns,
        loaded_ns,
        run_start_ns,
        cut: take.cut,
        live_from,
        replayed_packets: replayed,
        restore_ms,
        run,
        peer_failure: failure.get(),
    })
}

/// The input logger's stream from the cut: the packets to replay as they
/// arrive, then live traffic.
struct ResumedInput {
    /// The connection, kept open while the stream is read.
    conn: Stream,
    live: RemoteInput,
    replay: crossbeam_channel::Receiver<Packet>,
    /// Packets to replay.
    replayed: u64,
    /// The input id live traffic starts at.
    live_from: u64,
    resumed_ns: u64,
}

/// Ask the input logger for its log from `cut`, on a thread of its own
/// (the snapshot is restored meanwhile).
fn resume_input(
    il: Stream,
    cut: u64,
    framing: Framing,
    watch: InputWatch,
) -> Result<JoinHandle<Result<ResumedInput, TakeoverError>>, TakeoverError> {
    let fetch = std::thread::Builder::new()
        .name("ftmb-fetch-input".into())
        .spawn(move || {
            let (live_from, input) = resume(&il, cut).map_err(TakeoverError::Protocol)?;
            let replayed = live_from.saturating_sub(cut);
            let (live, replay) = RemoteInput::start_after_replay(input, framing, replayed, watch)?;
            Ok(ResumedInput {
                conn: il,
                live,
                replay,
                replayed,
                live_from,
                resumed_ns: wall_ns(),
            })
        })?;
    Ok(fetch)
}

/// Run the graph with `plan` as the replay, shipping to the output logger,
/// until the input ends. Returns when the run started and its report.
fn replay_then_live(
    graph: Graph,
    ol: &Stream,
    opts: &TakeoverOptions,
    plan: ReplayPlan,
    snapshot: Option<Snapshot>,
    failure: PeerFailure,
) -> Result<(u64, RunReport), TakeoverError> {
    let hb_addr = opts.ol.heartbeat()?;
    let hb = connect(&hb_addr, CONNECT_WAIT).map_err(|source| TakeoverError::Connect {
        what: "heartbeats",
        source,
    })?;
    let link = Arc::new(SocketLink::with_failure(
        ol,
        &hb,
        Duration::from_millis(1),
        failure,
    )?);
    let run_opts = RunOptions {
        seed: Some(opts.seed),
        ft: Some(FtOptions {
            link: link.clone(),
            replay: Some(Arc::new(plan)),
            restore: snapshot.map(Arc::new),
            snapshots: Some(SnapshotTrigger::Every(opts.snapshot_every)),
        }),
        test_diverge_replay: opts.test_diverge_replay,
        ..RunOptions::default()
    };
    let run_start_ns = wall_ns();
    let report = run(graph, &run_opts, &mut std::io::sink(), &mut |_| {});
    link.finish();
    Ok((run_start_ns, report))
}

/// The framing of the configuration's first source (the input logger's
/// packets are framed as it reads them).
fn framing_of(g: &Graph) -> Framing {
    g.sources
        .first()
        .map_or(Framing::Unknown, |(_, s)| s.framing())
}
