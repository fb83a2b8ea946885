//! Per-element cost: one batch of 64 packets through one element.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ftmb_benches::{build_element, packets, worker_context};
use ftmb_core::egress::SinkRegistry;
use ftmb_core::shared::SharedRegistry;

fn bench(c: &mut Criterion) {
    let pkts = packets(4096, 512);
    let cases: &[(&str, &str, usize)] = &[
        ("Strip", "14", 1),
        ("CheckIPHeader", "", 1),
        ("DecIPTTL", "", 1),
        ("Counter", "", 1),
        (
            "IPClassifier",
            "src net 10.77.0.0/16 and (tcp or udp), dst net 10.77.0.0/16 and (tcp or udp), -",
            3,
        ),
        (
            "IPFilter",
            "allow tcp dst port 80 or 443, deny udp, allow all",
            1,
        ),
        ("StoreIPAddress", "198.18.0.1, dst", 1),
        (
            "IPRewriter",
            "pattern 198.18.0.1 1024-65535 - - 0 1, drop",
            2,
        ),
    ];
    let mut g = c.benchmark_group("element");
    g.throughput(Throughput::Elements(64));
    for &(class, args, nout) in cases {
        let mut shared = SharedRegistry::new();
        let mut sinks = SinkRegistry::new();
        let mut el = build_element(class, args, &mut shared, &mut sinks);
        let (mut ctx, mut out) = worker_context(nout);
        let mut i = 0usize;
        g.bench_function(class, |b| {
            b.iter_batched(
                || {
                    i = (i + 64) % (pkts.len() - 64);
                    pkts[i..i + 64].to_vec()
                },
                |mut batch| {
                    el.push_batch(&mut ctx, 0, &mut batch, &mut out);
                    out.clear();
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
