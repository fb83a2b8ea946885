//! How fast a replica replays: a master runs the NAT of `examples/nat.click`
//! with ordered logging at a paced 200,000 packets/s (so that its batches
//! are as small as a live master's), snapshots once part-way, and the bench
//! replays everything after that snapshot on a fresh router, restored from
//! it, under the master's logs, with the same number of workers. What is
//! timed is the replay alone (`RunReport::replay_elapsed`), not the restore:
//! the packets are in memory, so this is the replay engine's speed (batch
//! hand-over, waiting for logged turns, the elements), not the input
//! logger's or the sockets'.
//!
//! `unlogged` runs the same packets from the same snapshot with the logs
//! left out (full batches, no turns to wait for): what processing them
//! costs without the replay's constraints.

/// The allocator of the `ftmb` binary, so that the numbers are its numbers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ftmb_benches::nat_config;
use ftmb_core::config::Source;
use ftmb_core::ft::{FtOptions, MemoryLink, SnapshotTrigger};
use ftmb_core::graph::{build, Graph};
use ftmb_core::runtime::{run, RunOptions};
use ftmb_core::snapshot::Snapshot;
use ftmb_core::trace::TraceSpec;
use ftmb_replayer::{ReplayPlan, ReplayPlanFrom};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const PACKETS: usize = 40_000;
const FLOWS: usize = 20_000;
/// The snapshot's cut: the replay covers the packets after it.
const SNAPSHOT_AT: u64 = 20_000;

struct Setup {
    source: Source,
    vars: BTreeMap<String, String>,
    threads: usize,
    snapshot: Arc<Snapshot>,
    plan: Arc<ReplayPlan>,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new(threads: usize) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = TraceSpec {
            min_size: 60,
            max_size: 140,
            ..TraceSpec::example_nets(PACKETS, FLOWS, 5)
        };
        let path = |n: &str| dir.path().join(n).display().to_string();
        let (source, vars) = nat_config(dir.path(), &spec, (&path("o1.pcap"), &path("o2.pcap")));
        let master = Arc::new(MemoryLink::default());
        let opts = RunOptions {
            seed: Some(7),
            pace_pps: Some(200_000.0),
            ft: Some(FtOptions {
                link: master.clone(),
                replay: None,
                restore: None,
                snapshots: Some(SnapshotTrigger::EveryPackets(SNAPSHOT_AT)),
            }),
            ..RunOptions::default()
        };
        let graph = graph(&source, &vars, threads);
        let r = run(graph, &opts, &mut std::io::sink(), &mut |_| {});
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let snapshot = master.snapshots.lock()[0].clone();
        let plan = master.replay_plan_after(Some(&snapshot), threads);
        Setup {
            source,
            vars,
            threads,
            snapshot: Arc::new(snapshot),
            plan: Arc::new(plan),
            _dir: dir,
        }
    }

    /// One replay on a fresh, restored router: its duration.
    fn replay(&self) -> Duration {
        self.replay_plan(self.plan.clone())
    }

    /// The same packets from the same snapshot without the master's logs.
    fn unlogged(&self) -> Duration {
        let mut plan = (*self.plan).clone();
        for l in &mut plan.logs {
            l.clear();
        }
        self.replay_plan(Arc::new(plan))
    }

    fn replay_plan(&self, plan: Arc<ReplayPlan>) -> Duration {
        let mut g = graph(&self.source, &self.vars, self.threads);
        g.restore(&self.snapshot).expect("restore");
        let opts = RunOptions {
            seed: Some(7),
            ft: Some(FtOptions {
                link: Arc::new(MemoryLink::default()),
                replay: Some(plan),
                restore: Some(self.snapshot.clone()),
                snapshots: None,
            }),
            ..RunOptions::default()
        };
        let r = run(g, &opts, &mut std::io::sink(), &mut |_| {});
        assert!(r.divergence.is_empty(), "{:?}", r.divergence);
        r.replay_elapsed.expect("the replay finished")
    }
}

fn graph(source: &Source, vars: &BTreeMap<String, String>, threads: usize) -> Graph {
    build(source, vars, &ftmb_elements::registry(), threads)
        .unwrap_or_else(|e| panic!("{}", e.render(false)))
}

fn bench(c: &mut Criterion) {
    for threads in [1, 2] {
        let s = Setup::new(threads);
        let mut g = c.benchmark_group(format!("replay/nat-{FLOWS}-flows"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(s.plan.len()));
        g.bench_function(format!("{threads}-workers"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| s.replay()).sum())
        });
        g.bench_function(format!("{threads}-workers-unlogged"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| s.unlogged()).sum())
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
