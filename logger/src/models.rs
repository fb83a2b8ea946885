//! Concurrency models of the commit frontier ([`CommitCore`] shared by
//! feeders and a releaser). Under `--cfg loom` every interleaving of the
//! small model is explored; without it the same body runs many times on
//! std threads, and a seeded stress variant with more records runs too.
//!
//! Run the loom models with:
//! `RUSTFLAGS="--cfg loom" cargo test -p ftmb-logger --release --target-dir target/loom loom`

use crate::commit::{CommitCore, HeldOutput};
use crate::sync::{lock, model, thread, Arc, Mutex};
use ftmb_core::depvec::DepVector;
use ftmb_core::pal::{LogRecord, Pal};

#[cfg(loom)]
const RUNS: usize = 1;
#[cfg(not(loom))]
const RUNS: usize = 300;

fn pal(p: u64) -> LogRecord {
    LogRecord::Pal(Pal {
        packet: p,
        var: 3,
        count: p,
    })
}

fn out(p: u64, dv: &[u64]) -> HeldOutput {
    HeldOutput {
        sink: 0,
        packet_id: p,
        ordinal: 0,
        dv: DepVector::from_entries(dv),
        pkt: ftmb_core::Packet::from_bytes(&[]),
    }
}

struct Shared {
    core: CommitCore,
    /// Highest sequence handed to the core per worker, set inside the same
    /// critical section: the model's independent record of what arrived.
    arrived: Vec<u64>,
}

fn drain_checked(core: &mut CommitCore, arrived: &[u64], released: &mut Vec<u64>) {
    while let Some(o) = core.poll_release() {
        for (w, &d) in o.dv.entries().iter().enumerate() {
            assert!(
                d <= arrived[w],
                "output {} released before worker {w} seq {d} arrived",
                o.packet_id
            );
        }
        released.push(o.packet_id);
    }
}

/// Two feeders send log batches and outputs in racing orders; a
/// releaser polls. No output is released before its dependencies arrived,
/// and every output is released exactly once in the end.
#[test]
fn loom_commit_frontier_never_releases_early() {
    model(RUNS, || {
        let s = Arc::new(Mutex::new(Shared {
            core: CommitCore::new(2),
            arrived: vec![0; 2],
        }));
        let s0 = s.clone();
        let t0 = thread::spawn(move || {
            // Output first, its own log record later.
            lock(&s0).core.handle_output(out(1, &[1]));
            let mut g = lock(&s0);
            g.core.handle_log(0, 1, &[pal(1)]).unwrap();
            g.arrived[0] = 1;
        });
        let s1 = s.clone();
        let t1 = thread::spawn(move || {
            let mut g = lock(&s1);
            g.core.handle_log(1, 1, &[pal(2)]).unwrap();
            g.arrived[1] = 1;
            drop(g);
            // Transitive: depends on worker 0's record too.
            lock(&s1).core.handle_output(out(2, &[1, 1]));
        });
        let mut released = Vec::new();
        for _ in 0..2 {
            {
                let g = &mut *lock(&s);
                drain_checked(&mut g.core, &g.arrived, &mut released);
            }
            thread::yield_now();
        }
        t0.join().unwrap();
        t1.join().unwrap();
        let g = &mut *lock(&s);
        drain_checked(&mut g.core, &g.arrived, &mut released);
        released.sort_unstable();
        assert_eq!(released, vec![1, 2]);
        assert_eq!(g.core.held(), 0);
    });
}

#[cfg(not(loom))]
mod stress {
    use super::*;
    use ftmb_core::rng::Rng;

    struct Stress {
        core: CommitCore,
        arrived: Vec<u64>,
        produced: Vec<u64>,
        outputs: u64,
    }

    #[test]
    fn commit_frontier_seeded_stress() {
        const W: usize = 3;
        const STEPS: u64 = 3000;
        for seed in 0..3u64 {
            let s = Arc::new(Mutex::new(Stress {
                core: CommitCore::new(W),
                arrived: vec![0; W],
                produced: vec![0; W],
                outputs: 0,
            }));
            let feeders: Vec<_> = (0..W)
                .map(|w| {
                    let s = s.clone();
                    thread::spawn(move || {
                        let mut rng = Rng::new(seed * 31 + w as u64);
                        for step in 0..=STEPS {
                            let mut g = lock(&s);
                            let ship = step == STEPS || rng.next_u64() % 3 == 0;
                            if ship {
                                let from = g.arrived[w] + 1;
                                let n = g.produced[w] + 1 - from;
                                let recs: Vec<_> = (from..from + n).map(pal).collect();
                                g.core.handle_log(w, from, &recs).unwrap();
                                g.arrived[w] = g.produced[w];
                            } else {
                                // A packet makes one logged access and one
                                // output depending on it and on what the
                                // other workers produced so far.
                                g.produced[w] += 1;
                                let mut dv: Vec<u64> = (0..W)
                                    .map(|v| rng.next_u64() % (g.produced[v] + 1))
                                    .collect();
                                dv[w] = g.produced[w];
                                g.outputs += 1;
                                let id = g.outputs;
                                g.core.handle_output(out(id, &dv));
                            }
                        }
                    })
                })
                .collect();
            let mut released = Vec::new();
            while feeders.iter().any(|f| !f.is_finished()) {
                {
                    let g = &mut *lock(&s);
                    drain_checked(&mut g.core, &g.arrived, &mut released);
                }
                thread::yield_now();
            }
            for f in feeders {
                f.join().unwrap();
            }
            let g = &mut *lock(&s);
            drain_checked(&mut g.core, &g.arrived, &mut released);
            let total = g.outputs;
            assert_eq!(g.core.held(), 0);
            released.sort_unstable();
            assert_eq!(released, (1..=total).collect::<Vec<_>>());
        }
    }
}
