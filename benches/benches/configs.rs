//! Whole-config throughput: the NAT config over an in-memory-cached
//! generated trace, at 1 and 2 workers (file reading included).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ftmb_benches::nat_config;
use ftmb_core::graph::build;
use ftmb_core::runtime::{run, RunOptions};
use ftmb_core::trace::TraceSpec;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 100_000;
    let spec = TraceSpec {
        max_size: 600,
        ..TraceSpec::example_nets(n, 5_000, 3)
    };
    let (source, vars) = nat_config(dir.path(), &spec, ("/dev/null", "/dev/null"));
    let reg = ftmb_elements::registry();
    let mut g = c.benchmark_group("nat");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    for threads in [1, 2] {
        g.bench_function(format!("{threads}-workers"), |b| {
            b.iter(|| {
                let graph = build(&source, &vars, &reg, threads).expect("config");
                let mut out = Vec::new();
                run(graph, &RunOptions::default(), &mut out, &mut |_| {})
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
