//! Concurrency models of the code that ships: each runs the real
//! [`RoundGate`], [`crate::pal::LoggedAccess`] and
//! [`crate::shared::SharedDyn`] capture code, whose primitives come from
//! [`crate::sync`]. Under `RUSTFLAGS="--cfg loom"` loom runs each model
//! under every interleaving it explores (`cargo test -p ftmb-core
//! --release loom`, see `.ci/run`); without it the same bodies run a few
//! hundred times on std threads as ordinary tests.
//!
//! What each model checks is written next to it; a check that loom finds
//! broken panics with the interleaving that broke it.

use crate::context::{AccessMode, Ctx};
use crate::packet::Packet;
use crate::pal::{LogRecord, LoggedAccess, LoggedCounts, Pal};
use crate::shared::{Shared, SharedDyn, SharedRegistry};
use crate::snapshot::round::RoundGate;
use crate::sync::{AtomicU64, AtomicUsize, Mutex};
use std::sync::atomic::Ordering;

#[cfg(loom)]
use loom::{sync::Arc, thread};
#[cfg(not(loom))]
use std::{sync::Arc, thread};

/// Run `f` under every interleaving loom explores (preemptions bounded by
/// `LOOM_MAX_PREEMPTIONS`, else by `preemptions`), or `runs` times on std
/// threads without loom.
fn model<F>(runs: usize, preemptions: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    #[cfg(loom)]
    {
        let _ = runs;
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(preemptions);
        }
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        b.check(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            f();
        });
        let runs = runs.load(Ordering::Relaxed);
        println!("loom explored {runs} interleavings");
        assert!(runs > 1, "loom found nothing to interleave");
    }
    #[cfg(not(loom))]
    {
        let _ = preemptions;
        for _ in 0..runs {
            f();
        }
    }
}

/// A packet with input id `id`.
fn packet(id: u64) -> Packet {
    let mut p = Packet::from_bytes(&[0]);
    p.anno.id = id;
    p
}

/// One snapshot round of `workers` workers at the real [`RoundGate`], as
/// `SnapshotRound::arrive` drives it: each worker records its part, then
/// arrives; the last to arrive does the round's work (marks the cut) and
/// opens the gate; the others wait at it. The gate promises:
/// - exactly one worker is the last to arrive (the gate opens once per
///   round, by that worker);
/// - the last sees every worker's part (all have arrived before it works);
/// - no worker passes the gate before the last one's work is done, and it
///   sees that work (here: the cut, and every part);
/// - no lost wake-up: every waiter returns (loom reports a deadlock if a
///   sleeper misses the opening).
///
/// The checks use relaxed loads of values stored with relaxed stores, so
/// they hold only through the gate's own ordering (its `AcqRel` arrival
/// count, its `Release` opening and `Acquire` looks, and its lock): loom
/// lets a relaxed load return a stale value where nothing orders it.
fn gate_round(workers: usize) {
    let gate = Arc::new(RoundGate::new(workers));
    let parts: Arc<Vec<AtomicU64>> = Arc::new((0..workers).map(|_| AtomicU64::new(0)).collect());
    let cut = Arc::new(AtomicU64::new(0));
    let lasts = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (gate, parts, cut, lasts) =
                (gate.clone(), parts.clone(), cut.clone(), lasts.clone());
            thread::spawn(move || {
                parts[w].store(w as u64 + 1, Ordering::Relaxed);
                if gate.arrive() {
                    for (i, p) in parts.iter().enumerate() {
                        assert_eq!(
                            p.load(Ordering::Relaxed),
                            i as u64 + 1,
                            "the last to arrive does not see worker {i}'s part"
                        );
                    }
                    lasts.fetch_add(1, Ordering::Relaxed);
                    cut.store(7, Ordering::Relaxed);
                    gate.open();
                } else {
                    gate.wait();
                    assert_eq!(
                        cut.load(Ordering::Relaxed),
                        7,
                        "worker {w} passed the gate before the cut was marked"
                    );
                    for (i, p) in parts.iter().enumerate() {
                        assert_eq!(
                            p.load(Ordering::Relaxed),
                            i as u64 + 1,
                            "worker {w} passed the gate before worker {i} arrived"
                        );
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a worker panicked");
    }
    assert_eq!(
        lasts.load(Ordering::Relaxed),
        1,
        "not exactly one last worker"
    );
}

#[test]
fn loom_round_gate_two_workers() {
    model(200, 6, || gate_round(2));
}

#[test]
fn loom_round_gate_three_workers() {
    model(200, 3, || gate_round(3));
}

/// A PAL record.
fn pal(seq: u64, packet: u64, var: u32, count: u64) -> (u64, LogRecord) {
    (seq, LogRecord::Pal(Pal { packet, var, count }))
}

/// Replay turn-taking (`LoggedAccess::lock_in_turn`, reached through the
/// real `Shared::access` and `Ctx::lock_for_access`): the dead master's
/// logs say worker 0's packets 10 and 12 made accesses 1 and 3 of a
/// variable, worker 1's packet 11 access 2; after its logged prefix
/// worker 1 goes on with packet 13, unlogged. Replayed on two workers,
/// every interleaving must apply the accesses in the logged order (each
/// waits until the variable's counter reaches its count - 1) and the
/// unlogged one after every logged one (it waits until its count is one
/// no record claims), with no divergence reported and no worker stuck
/// (loom reports a deadlock or a livelock).
fn replay_in_logged_order() {
    let mut reg = SharedRegistry::new();
    let v: Shared<Vec<u64>> = reg.declare("m.order", 1, |_| Vec::new());
    let var = v.var_id(0);
    let logs = [
        vec![pal(1, 10, var, 1), pal(2, 12, var, 3)],
        vec![pal(1, 11, var, 2)],
    ];
    let counts = std::sync::Arc::new(LoggedCounts::of(
        logs.iter().map(Vec::as_slice),
        reg.nvars() as usize,
    ));
    let abort = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let packets = [vec![10u64, 12], vec![11, 13]];
    let handles: Vec<_> = logs
        .into_iter()
        .zip(packets)
        .enumerate()
        .map(|(w, (log, ids))| {
            let mut ctx = Ctx::new(w, 2, w as u64);
            ctx.set_mode(AccessMode::Logged(Box::new(LoggedAccess::replaying(
                log,
                counts.clone(),
                1,
                abort.clone(),
            ))));
            let v = v.clone();
            thread::spawn(move || {
                for id in ids {
                    let mut p = packet(id);
                    v.access(&mut ctx, &mut p, 0, |order| order.push(id));
                }
                match ctx.mode() {
                    AccessMode::Logged(l) => {
                        assert_eq!(l.divergence, None, "worker {w} diverged");
                        assert!(!l.replaying_now(), "worker {w} left records unreplayed");
                    }
                    AccessMode::Plain => unreachable!("set above"),
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a worker panicked");
    }
    assert_eq!(v.inspect(Vec::clone), vec![vec![10, 11, 12, 13]]);
    assert_eq!(reg.vars()[0].counters(), vec![4]);
    assert!(!abort.load(Ordering::Acquire));
}

#[test]
fn loom_replay_applies_accesses_in_logged_order() {
    model(200, 8, replay_in_logged_order);
}

/// Copy-on-write capture against writing workers, in the round's
/// protocol: two workers each write their own slot of a two-slot variable
/// before the cut, then arrive at the real [`RoundGate`]; the last to
/// arrive starts the capture (`begin_capture`, as `SnapshotRound::arrive`
/// does while the others stand still), opens the gate and hands the
/// encoding to a capture thread (`finish_capture`), while both workers go
/// on writing both slots. Under every interleaving the capture must hold,
/// per slot, exactly the value and counter at the cut (whether the capture
/// reached the slot before a worker wrote it, or the worker kept a copy
/// first), and the live variable every write.
fn capture_at_the_cut() {
    let mut reg = SharedRegistry::new();
    let v: Shared<u64> = reg.declare("m.cells", 2, |i| i as u64);
    let var: std::sync::Arc<dyn SharedDyn> = reg.vars()[0].clone();
    let gate = Arc::new(RoundGate::new(2));
    let captured = Arc::new(Mutex::new(None::<Vec<u8>>));
    let handles: Vec<_> = (0..2usize)
        .map(|w| {
            let (v, var, gate, captured) = (v.clone(), var.clone(), gate.clone(), captured.clone());
            thread::spawn(move || {
                let mut ctx = Ctx::new(w, 2, w as u64);
                let mut p = packet(w as u64 + 1);
                v.access(&mut ctx, &mut p, w, |x| *x += 10);
                let mut capture = None;
                if gate.arrive() {
                    var.begin_capture(1);
                    gate.open();
                    let (var, captured) = (var.clone(), captured.clone());
                    capture = Some(thread::spawn(move || {
                        let mut out = Vec::new();
                        var.finish_capture(1, &mut out);
                        *captured.lock() = Some(out);
                    }));
                } else {
                    gate.wait();
                }
                for s in 0..2 {
                    v.access(&mut ctx, &mut p, s, |x| *x += 100);
                }
                if let Some(c) = capture {
                    c.join().expect("the capture thread panicked");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a worker panicked");
    }
    let bytes = captured.lock().take().expect("the capture ran");
    // What the capture holds, loaded into a fresh variable.
    let mut again = SharedRegistry::new();
    let back: Shared<u64> = again.declare("m.cells", 2, |_| 0);
    again.vars()[0]
        .decode_all(&mut &bytes[..])
        .expect("the capture decodes");
    assert_eq!(back.inspect(|x| *x), vec![10, 11], "values at the cut");
    assert_eq!(
        again.vars()[0].counters(),
        vec![1, 1],
        "counters at the cut"
    );
    assert_eq!(v.inspect(|x| *x), vec![210, 211]);
    assert_eq!(var.counters(), vec![3, 3]);
}

#[test]
fn loom_capture_holds_the_state_at_the_cut() {
    model(200, 5, capture_at_the_cut);
}
