//! What a snapshot of a large NAT table costs, piece by piece: encoding the
//! shared flow table (`capture`: `begin_capture` and `finish_capture`, the
//! master's snapshot thread; `encode_all`, the canonical encoding that state
//! digests use, entries sorted), framing
//! it (`Snapshot::encode`: header and checksum), reading it back
//! (`Snapshot::decode`, the output logger and the replica) and loading it
//! into the table (`decode_all`, the replica's restore).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ftmb_benches::{build_element, packets};
use ftmb_core::egress::SinkRegistry;
use ftmb_core::shared::SharedRegistry;
use ftmb_core::snapshot::{Snapshot, WorkerSnapshot};
use ftmb_core::{Ctx, Out};

fn bench(c: &mut Criterion) {
    let flows = 100_000;
    let mut shared = SharedRegistry::new();
    let mut sinks = SinkRegistry::new();
    let mut rw = build_element(
        "IPRewriter",
        "pattern 198.18.0.1 1024-65535 - - 0 1, drop",
        &mut shared,
        &mut sinks,
    );
    let mut ctx = Ctx::new(0, 1, 1);
    ctx.set_now_ns(1_000_000_000);
    let mut out = Out::with_ports(2);
    for mut batch in packets(2 * flows, flows).chunks(64).map(<[_]>::to_vec) {
        rw.push_batch(&mut ctx, 0, &mut batch, &mut out);
        out.clear();
    }
    let table = shared.vars()[0].clone();
    let mut body = Vec::new();
    table.encode_all(&mut body);
    let snap = Snapshot {
        id: 1,
        next_packet: 1,
        workers: vec![WorkerSnapshot::default()],
        shared: body.clone(),
        ..Snapshot::default()
    };
    let encoded = snap.encode();

    let mut g = c.benchmark_group(format!("snapshot/nat-{flows}-flows"));
    g.sample_size(20);
    g.throughput(Throughput::Bytes(encoded.len() as u64));
    // Epochs must increase across every call criterion makes.
    let mut epoch = 0;
    g.bench_function("capture", |b| {
        let mut out = Vec::with_capacity(body.len());
        b.iter(|| {
            out.clear();
            epoch += 1;
            table.begin_capture(epoch);
            table.finish_capture(epoch, &mut out);
        })
    });
    g.bench_function("encode_all", |b| {
        let mut out = Vec::with_capacity(body.len());
        b.iter(|| {
            out.clear();
            table.encode_all(&mut out);
        })
    });
    g.bench_function("Snapshot::encode", |b| b.iter(|| snap.encode()));
    g.bench_function("Snapshot::decode", |b| {
        b.iter(|| Snapshot::decode(&encoded))
    });
    g.bench_function("decode_all", |b| {
        b.iter(|| table.decode_all(&mut body.as_slice()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
