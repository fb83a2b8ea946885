//! Starting the workers: each gets its context (generator, dependency
//! vector, ordered logging) and its queue; worker 0 runs inline on the
//! input thread unless a pipeline or a replay was asked for.

use super::msg::Msg;
use super::options::RunOptions;
use super::replaying::Replaying;
use super::worker::{Worker, WorkerShared};
use crate::context::{AccessMode, Ctx};
use crate::element::Element;
use crate::pal::LoggedAccess;
use crate::snapshot::Snapshot;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use std::thread::JoinHandle;

/// The started workers: worker 0 inline (run by the input thread) unless
/// a pipeline or a replay was asked for, the others on threads of their
/// own.
pub(super) struct WorkerPool {
    /// Every worker's queue (the driver's questions go there).
    pub(super) txs: Vec<Sender<Msg>>,
    /// The input thread's queue per worker (`None` for the inline one).
    pub(super) queues: Vec<Option<Sender<Msg>>>,
    pub(super) handles: Vec<JoinHandle<Worker>>,
    pub(super) inline: Option<(Box<Worker>, Receiver<Msg>)>,
}

impl WorkerPool {
    pub(super) fn spawn(
        workers: Vec<Vec<Option<Box<dyn Element>>>>,
        common: &WorkerShared,
        opts: &RunOptions,
        restore: Option<&Snapshot>,
        replay: Option<&Replaying>,
    ) -> WorkerPool {
        let nworkers = workers.len();
        let seed = opts.seed.unwrap_or_else(crate::clock::wall_ns);
        let mut pool = WorkerPool {
            txs: Vec::with_capacity(nworkers),
            queues: Vec::with_capacity(nworkers),
            handles: Vec::with_capacity(nworkers),
            inline: None,
        };
        for (w, elems) in workers.into_iter().enumerate() {
            // Replay needs unbounded queues and no inline worker: a worker
            // may wait for an access of another worker's later packet.
            let (tx, rx) = if replay.is_some() {
                unbounded::<Msg>()
            } else {
                bounded::<Msg>(opts.queue_batches.max(1))
            };
            pool.txs.push(tx.clone());
            let ctx = worker_ctx(w, nworkers, seed, opts, restore, replay);
            let mut worker = Worker::new(
                elems,
                ctx,
                common,
                opts.ft.as_ref(),
                restore,
                replay.is_some(),
            );
            worker.diverge_replayed = replay.is_some() && opts.test_diverge_replay;
            if w == 0 && !opts.pipeline && replay.is_none() {
                pool.inline = Some((Box::new(worker), rx));
                pool.queues.push(None);
                continue;
            }
            pool.queues.push(Some(tx));
            pool.handles.push(
                std::thread::Builder::new()
                    .name(format!("ftmb-worker-{w}"))
                    .spawn(move || worker.run(rx))
                    .expect("spawn worker thread"),
            );
        }
        pool
    }
}

/// Worker `w`'s context: its generator (seeded, or as the snapshot left
/// it), its dependency vector, its remote store, and with fault tolerance
/// its ordered logging (following the dead master's log in a replay).
fn worker_ctx(
    w: usize,
    nworkers: usize,
    seed: u64,
    opts: &RunOptions,
    restore: Option<&Snapshot>,
    replay: Option<&Replaying>,
) -> Ctx {
    let mut ctx = Ctx::new(w, nworkers, crate::headers::mix64(seed ^ w as u64));
    if let Some(ws) = restore.and_then(|s| s.workers.get(w)) {
        ctx.set_rng(crate::rng::Rng::from_state(ws.rng));
        ctx.dv = crate::depvec::DepVector::from_entries(&ws.dv);
    }
    if let Some(make) = &opts.remote_state {
        ctx.set_remote((make.0)(w));
    }
    if opts.ft.is_some() && !opts.ft_unlogged {
        let l = match replay {
            Some(r) => r.logged_access(w),
            None => LoggedAccess::recording(1),
        };
        ctx.set_mode(AccessMode::Logged(Box::new(l)));
    }
    ctx
}
