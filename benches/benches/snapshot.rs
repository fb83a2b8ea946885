//! What a snapshot of a large NAT table costs, piece by piece: encoding the
//! shared flow table (`capture`: `begin_capture` and `finish_capture`, the
//! master's snapshot thread; `encode_all`, the canonical encoding that state
//! digests use, entries sorted), framing
//! it (`Snapshot::encode`: header and checksum), reading it back
//! (`Snapshot::decode`, the output logger and the replica) and loading it
//! into the table (`decode_all`, the replica's restore). The same capture
//! and canonical encoding for a firewall's connection table (slots of hash
//! maps, written unsorted by the capture). Then a Monitor's
//! worker-private per-flow table: encoded at the cut (`save_state`, what a
//! worker stood still for before `Element::copy_state`) against copied
//! there (`copy_state`) and encoded by the capture thread afterwards.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ftmb_benches::{build_element, packets, worker_context};
use ftmb_core::egress::SinkRegistry;
use ftmb_core::shared::{SharedDyn, SharedRegistry};
use ftmb_core::snapshot::{Snapshot, WorkerSnapshot};
use ftmb_core::Element;
use std::sync::Arc;

/// Element `class` with `args` after two packets of each of `flows` flows,
/// and the shared state it declared.
fn filled(
    class: &str,
    args: &str,
    ports: usize,
    flows: usize,
) -> (Box<dyn Element>, SharedRegistry) {
    let mut shared = SharedRegistry::new();
    let mut sinks = SinkRegistry::new();
    let mut e = build_element(class, args, &mut shared, &mut sinks);
    let (mut ctx, mut out) = worker_context(ports);
    for mut batch in packets(2 * flows, flows).chunks(64).map(<[_]>::to_vec) {
        e.push_batch(&mut ctx, 0, &mut batch, &mut out);
        out.clear();
    }
    (e, shared)
}

/// The first shared variable of a [`filled`] element, and its canonical
/// encoding.
fn first_table(
    class: &str,
    args: &str,
    ports: usize,
    flows: usize,
) -> (Arc<dyn SharedDyn>, Vec<u8>) {
    let (_e, shared) = filled(class, args, ports, flows);
    let table = shared.vars()[0].clone();
    let mut body = Vec::new();
    table.encode_all(&mut body);
    (table, body)
}

fn bench(c: &mut Criterion) {
    let flows = 100_000;
    let (table, body) = first_table(
        "IPRewriter",
        "pattern 198.18.0.1 1024-65535 - - 0 1, drop",
        2,
        flows,
    );
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
    capture_and_encode_all(&mut g, &table, body.len());
    g.bench_function("Snapshot::encode", |b| b.iter(|| snap.encode()));
    g.bench_function("Snapshot::decode", |b| {
        b.iter(|| Snapshot::decode(&encoded))
    });
    g.bench_function("decode_all", |b| {
        b.iter(|| table.decode_all(&mut body.as_slice()))
    });
    g.finish();

    // A firewall's connection table: shared slots of hash maps.
    let (table, body) = first_table(
        "Firewall",
        "allow src net 10.0.0.0/8, deny all, DEFAULT deny, CAPACITY 1000000",
        1,
        flows,
    );
    let mut g = c.benchmark_group(format!("snapshot/firewall-{flows}-flows"));
    g.sample_size(20);
    g.throughput(Throughput::Bytes(body.len() as u64));
    capture_and_encode_all(&mut g, &table, body.len());
    g.finish();
    monitor(c, flows);
}

/// A shared variable's snapshot capture (its slots in any order, what the
/// master's snapshot thread writes) against its canonical encoding (sorted,
/// what state digests use).
fn capture_and_encode_all(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    table: &Arc<dyn SharedDyn>,
    bytes: usize,
) {
    // Epochs must increase across every call criterion makes.
    let mut epoch = 0;
    g.bench_function("capture", |b| {
        let mut out = Vec::with_capacity(bytes);
        b.iter(|| {
            out.clear();
            epoch += 1;
            table.begin_capture(epoch);
            table.finish_capture(epoch, &mut out);
        })
    });
    g.bench_function("encode_all", |b| {
        let mut out = Vec::with_capacity(bytes);
        b.iter(|| {
            out.clear();
            table.encode_all(&mut out);
        })
    });
}

fn monitor(c: &mut Criterion, flows: usize) {
    let (mut mon, _) = filled("Monitor", "SHARING 1, PERFLOW true", 1, flows);
    let mut g = c.benchmark_group(format!("snapshot/monitor-{flows}-flows"));
    g.sample_size(20);
    let mut bytes = Vec::new();
    g.bench_function("save_state", |b| {
        b.iter(|| {
            bytes.clear();
            mon.save_state(&mut bytes);
        })
    });
    g.bench_function("copy_state", |b| b.iter(|| drop(mon.copy_state())));
    g.bench_function("copy_state+save", |b| {
        b.iter(|| {
            bytes.clear();
            if let Some(c) = mon.copy_state() {
                c.save(&mut bytes);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
