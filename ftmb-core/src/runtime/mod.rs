//! The multithreaded runtime: an input thread, N workers and the driver.
//!
//! ```text
//!  sources ──> input thread ──(flow hash)──> worker 0 ─┐ element graph,
//!              numbers packets               worker 1 ─┤ run to completion,
//!              (ids in arrival order)        ...       ┘ outputs to sinks
//!  driver (calling thread): runs the DriverManager program, reads handlers
//! ```
//!
//! - The **input thread** polls every source round-robin, gives each packet
//!   the next input id, picks its worker by the direction-symmetric flow hash
//!   ([`crate::headers::symmetric_hash`]) and sends batches over bounded
//!   queues. File sources wait for queue space; live sources drop and count
//!   (before ids are assigned, so a drop never shows in any log).
//! - Each **worker** owns one instance of every packet-processing element and
//!   runs each batch to completion through the graph, depth first. Outputs
//!   handed to sinks are written once per batch.
//! - The **driver** runs the `DriverManager` program. A source with `STOP
//!   true` reaching its end produces a stop event once the workers have
//!   processed every packet it produced, so handlers printed after `wait`
//!   see the whole trace, as in single-threaded Click.
//!
//! The files: the run's options and report (`options.rs`), starting the
//! workers (`pool.rs`), the workers (`worker.rs`), the input thread
//! (`input.rs`) and where it hands batches (`dispatch.rs`), what goes down
//! a worker's queue (`msg.rs`), the driver program (`drive.rs`), a
//! replaying run's side of the replay seam (`replaying.rs`, see
//! [`crate::replay`]) and the handler and statistics JSON (`stats.rs`).
//! Snapshot rounds live beside the snapshot format
//! (`crate::snapshot::round`).

mod counters;
mod dispatch;
mod drive;
mod input;
mod msg;
mod options;
mod pool;
mod replaying;
mod stats;
mod worker;

pub use options::{Progress, RemoteStateFactory, RunOptions, RunReport};

use crate::context::AccessMode;
use crate::egress::SinkRegistry;
use crate::element::Source;
use crate::ft::FtLink;
use crate::graph::{Graph, NodeKind};
use crate::shared::SharedRegistry;
use crate::snapshot::round::{Captures, SnapshotCall, SnapshotStore};
use crate::snapshot::Snapshot;
use counters::InputShared;
use crossbeam_channel::unbounded;
use dispatch::Dispatcher;
use drive::{Driver, Stopped};
use input::{InputFt, InputOpts};
use msg::Event;
use msg::WorkerStats;
use pool::WorkerPool;
use replaying::Replaying;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use worker::{Worker, WorkerShared};

/// Run `graph` to the end of its driver program, writing `print` output to
/// `out`, and calling `progress` about ten times a second.
///
/// The steps: restore the snapshot (with fault tolerance), start the
/// replay (a replica taking over), start the workers, start the input
/// thread, run the driver program, stop everything and report.
pub fn run(
    graph: Graph,
    opts: &RunOptions,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> RunReport {
    let mut graph = graph;
    let restore = opts.ft.as_ref().and_then(|f| f.restore.clone());
    let restore_start = Instant::now();
    if let Err(e) = restore_snapshot(&mut graph, restore.as_deref()) {
        return RunReport::failed(restore_start, e);
    }
    let restore_elapsed = restore.as_ref().map(|_| restore_start.elapsed());
    let Graph {
        names,
        classes,
        kinds,
        outputs,
        workers,
        sources,
        driver,
        shared,
        sinks,
        external_input: external,
        restored: _,
    } = graph;
    let replaying = opts
        .ft
        .as_ref()
        .and_then(|f| Replaying::start(f, &shared).map(Arc::new));
    let start = Instant::now();
    let call = Arc::new(SnapshotCall::default());
    let entries = source_entries(&sources, &outputs);
    let pool = WorkerPool::spawn(
        workers,
        &WorkerShared {
            outputs: Arc::new(outputs),
            entries,
            sinks: sinks.sinks().to_vec(),
            call: call.clone(),
        },
        opts,
        restore.as_deref(),
        replaying.as_deref(),
    );
    let shared_in = Arc::new(InputShared::default());
    let captures = Arc::new(Captures::default());
    let (event_tx, event_rx) = unbounded::<Event>();
    let dispatch = Dispatcher::new(pool.inline, pool.queues, call);
    let ft = opts.ft.as_ref().map(|f| InputFt {
        link: f.link.clone(),
        store: Arc::new(LinkStore(f.link.clone())),
        replay: replaying.clone(),
        snapshots: f.snapshots,
        vars: Arc::new(shared.vars().to_vec()),
        captures: captures.clone(),
        restored_id: restore.as_ref().map_or(0, |s| s.id),
    });
    let input = InputOpts {
        batch: opts.batch.max(1),
        pace_pps: opts.pace_pps.filter(|r| *r > 0.0),
        stamp_arrival: opts.stamp_arrival,
    };
    let input = input::spawn(
        sources,
        external,
        dispatch,
        event_tx,
        shared_in.clone(),
        input,
        ft,
    );
    let mut drive = Driver::new(
        input,
        pool.txs,
        pool.handles,
        event_rx,
        shared_in.clone(),
        start,
    );
    drive.run_program(&driver, &names, &classes, out, progress);
    let stopped = drive.finish();
    // Every snapshot taken reaches the link before the run returns.
    captures.join();
    report(
        stopped,
        &Ended {
            names: &names,
            classes: &classes,
            kinds: &kinds,
            shared: &shared,
            sinks: &sinks,
        },
        opts,
        &shared_in,
        (start, restore_elapsed),
    )
}

/// What the report reads of a graph that has run.
struct Ended<'g> {
    names: &'g [String],
    classes: &'g [String],
    kinds: &'g [NodeKind],
    shared: &'g SharedRegistry,
    sinks: &'g SinkRegistry,
}

/// Flush the sinks and gather the report: every element's counters, and
/// with fault tolerance the digest of the final state.
fn report(
    stopped: Stopped,
    g: &Ended<'_>,
    opts: &RunOptions,
    shared_in: &InputShared,
    (start, restore_elapsed): (Instant, Option<std::time::Duration>),
) -> RunReport {
    let Stopped {
        workers: ws,
        mut errors,
        sources: source_stats,
        replay_elapsed,
    } = stopped;
    g.sinks.flush_all();
    for s in g.sinks.sinks() {
        if let Some(e) = s.error.lock().as_ref() {
            errors.push(format!("{}: {e}", s.element));
        }
    }
    let elapsed = start.elapsed();
    let stats_all: Vec<WorkerStats> = ws.iter().map(|w| w.stats()).collect();
    let stats = stats::stats_json(
        g.names,
        g.classes,
        g.kinds,
        &stats_all,
        &source_stats,
        g.sinks.sinks(),
    );
    let (digest, divergence) = match &opts.ft {
        Some(_) => {
            let (d, div) = final_digest(g.shared, &ws);
            (Some(d), div)
        }
        None => (None, Vec::new()),
    };
    RunReport {
        elapsed,
        started: start,
        packets: shared_in.packets.load(Ordering::Relaxed),
        per_worker: ws.iter().map(|w| w.processed).collect(),
        queue_drops: shared_in.queue_drops.load(Ordering::Relaxed),
        errors,
        stats,
        digest,
        divergence,
        restore_elapsed,
        replay_elapsed,
    }
}

/// The run's link as the store of its snapshot rounds.
struct LinkStore(Arc<dyn FtLink>);

impl SnapshotStore for LinkStore {
    fn store_snapshot(&self, snapshot: Snapshot) {
        self.0.store_snapshot(snapshot);
    }
    fn snapshot_round(&self, open: bool) {
        self.0.snapshot_round(open);
    }
}

/// Restore `snap` into `graph`, unless it was restored already (a replica
/// loads snapshots while it stands by).
fn restore_snapshot(graph: &mut Graph, snap: Option<&Snapshot>) -> Result<(), String> {
    match snap.filter(|s| graph.restored != Some(s.id)) {
        Some(snap) => graph.restore(snap),
        None => Ok(()),
    }
}

/// Per source: the element and port its packets enter.
fn source_entries(
    sources: &[(usize, Box<dyn Source>)],
    outputs: &[Vec<(usize, usize)>],
) -> Arc<Vec<(usize, usize)>> {
    Arc::new(
        sources
            .iter()
            .map(|(e, _)| outputs[*e].first().copied().unwrap_or((usize::MAX, 0)))
            .collect(),
    )
}

/// The digest of the final state (every shared variable with its counters
/// and clocks, every worker's element state and generator), and where the
/// workers' replay departed from the log.
fn final_digest(shared: &SharedRegistry, ws: &[Worker]) -> (u64, Vec<String>) {
    let mut divergence = Vec::new();
    let mut bytes = Vec::new();
    for v in shared.vars() {
        v.encode_all(&mut bytes);
    }
    for w in ws {
        for e in w.elems.iter().flatten() {
            e.save_state(&mut bytes);
        }
        for x in w.ctx.rng().state() {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        if let AccessMode::Logged(l) = w.ctx.mode() {
            divergence.extend(l.divergence.clone());
        }
    }
    (crate::ft::digest(&bytes), divergence)
}
