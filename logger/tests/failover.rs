//! Failover in one process: a master whose link to the output logger dies
//! at a seeded random point (during processing, during a snapshot, during
//! log shipping), a replica that restores the output logger's last
//! committed snapshot and replays the input log after its cut under the
//! logged records. Checks: no released output is lost or duplicated, and
//! every released output agrees with one NAT mapping per flow.

use ftmb_core::config::Source;
use ftmb_core::ft::{FtLink, FtOptions, MemoryLink, OutputBatch, ReplayPlan, SnapshotTrigger};
use ftmb_core::graph::build;
use ftmb_core::headers::FlowId;
use ftmb_core::pal::LogRecord;
use ftmb_core::router::{run, RunOptions};
use ftmb_core::snapshot::Snapshot;
use ftmb_core::trace::{generate, LinkType, PcapWriter, TraceSpec};
use ftmb_logger::output_logger::OutputLogger;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const NAT: &str = include_str!("../../examples/nat.click");

/// The master's link: the input log always gets through (the input
/// logger does not fail), but after `budget` messages nothing more reaches
/// the output logger, as if the master had been killed.
struct CrashingLink {
    ol: Arc<OutputLogger>,
    il: MemoryLink,
    budget: AtomicI64,
}

impl CrashingLink {
    fn alive(&self) -> bool {
        self.budget.fetch_sub(1, Ordering::AcqRel) > 0
    }
}

impl FtLink for CrashingLink {
    fn log_input(&self, pkts: &[ftmb_core::Packet]) {
        self.il.log_input(pkts);
    }
    fn ship_log(&self, worker: usize, records: Vec<(u64, LogRecord)>) {
        if self.alive() {
            self.ol.ship_log(worker, records);
        }
    }
    fn ship_outputs(&self, worker: usize, outputs: OutputBatch) {
        if self.alive() {
            self.ol.ship_outputs(worker, outputs);
        }
    }
    fn store_snapshot(&self, snapshot: Snapshot) {
        if self.alive() {
            self.ol.store_snapshot(snapshot);
        }
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn vars(dir: &std::path::Path, trace: &str) -> BTreeMap<String, String> {
    [
        ("IN", trace.to_string()),
        ("OUT", dir.join("o1.pcap").display().to_string()),
        ("OUT2", dir.join("o2.pcap").display().to_string()),
        ("INSIDE", "10.77.0.0/16".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn options(
    link: Arc<dyn FtLink>,
    plan: Option<ReplayPlan>,
    snap: Option<Arc<Snapshot>>,
) -> RunOptions {
    RunOptions {
        seed: Some(5),
        batch: 16,
        ft: Some(FtOptions {
            link,
            replay: plan.map(Arc::new),
            restore: snap,
            snapshots: Some(SnapshotTrigger::EveryPackets(700)),
        }),
        ..RunOptions::default()
    }
}

fn graph(v: &BTreeMap<String, String>, threads: usize) -> ftmb_core::graph::Graph {
    let source = Source {
        name: "nat.click".into(),
        text: NAT.into(),
    };
    build(&source, v, &ftmb_elements::registry(), threads).expect("config")
}

/// Output keys a run without failures produces.
fn reference(v: &BTreeMap<String, String>, threads: usize) -> HashSet<(u64, u32)> {
    let link = Arc::new(MemoryLink::default());
    let g = graph(v, threads);
    let mut out = Vec::new();
    run(g, &options(link.clone(), None, None), &mut out, &mut |_| {});
    link.output_keys()
}

fn kill_and_recover(v: &BTreeMap<String, String>, threads: usize, budget: i64) -> (usize, usize) {
    let g = graph(v, threads);
    let ol = Arc::new(OutputLogger::new(threads, g.sinks.sinks().to_vec()));
    ol.record_releases();
    let link = Arc::new(CrashingLink {
        ol: ol.clone(),
        il: MemoryLink::default(),
        budget: AtomicI64::new(budget),
    });
    let mut out = Vec::new();
    let r = run(g, &options(link.clone(), None, None), &mut out, &mut |_| {});
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let before = ol.stats().released as usize;

    // Failover: the replica takes the last committed snapshot and the logs
    // after it; the input logger replays its log from the cut.
    let take = ol.begin_failover();
    // The input logger's log from the cut; the records from the output
    // logger.
    let mut plan = link.il.replay_plan_after(take.snapshot.as_deref(), threads);
    plan.logs = take.logs.clone();
    let g = graph(v, threads);
    let r = run(
        g,
        &options(ol.clone(), Some(plan), take.snapshot.clone()),
        &mut out,
        &mut |_| {},
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.divergence.is_empty(), "{:?}", r.divergence);
    assert!(ol.errors().is_empty(), "{:?}", ol.errors());

    // Nothing lost, nothing twice.
    let rel = ol.take_releases();
    let mut seen = HashSet::new();
    for o in &rel {
        assert!(
            seen.insert((o.packet_id, o.ordinal)),
            "output ({}, {}) released twice (budget {budget})",
            o.packet_id,
            o.ordinal
        );
    }
    let want = reference(v, threads);
    assert_eq!(
        seen, want,
        "released outputs differ from a run without failure (budget {budget})"
    );

    // Every released forward packet agrees with one mapping per flow, and
    // no translated tuple serves two flows.
    let inputs: HashMap<u64, FlowId> = link
        .il
        .inputs
        .lock()
        .iter()
        .filter_map(|p| Some((p.anno.id, FlowId::of_ipv4(p.data().get(14..)?)?)))
        .collect();
    let mut mapping: HashMap<FlowId, FlowId> = HashMap::new();
    let mut owner: HashMap<FlowId, FlowId> = HashMap::new();
    for o in rel.iter().filter(|o| o.sink == 0) {
        let orig = inputs[&o.packet_id];
        let Some(tr) = FlowId::of_ipv4(&o.data[14..]) else {
            continue;
        };
        assert_eq!(
            *mapping.entry(orig).or_insert(tr),
            tr,
            "a flow's mapping changed across failover"
        );
        assert_eq!(
            *owner.entry(tr).or_insert(orig),
            orig,
            "a mapping given to two flows"
        );
    }
    (before, rel.len())
}

#[test]
fn kill_anywhere_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("t.pcap");
    {
        let mut w = PcapWriter::create(&trace, LinkType::Ethernet, false).expect("pcap");
        let spec = TraceSpec {
            packets: 5_000,
            flows: 400,
            seed: 8,
            inside_net: ([10, 77, 0, 0], 16),
            outside_net: ([198, 18, 0, 0], 16),
            concurrency: 200,
            max_size: 200,
            ..TraceSpec::default()
        };
        generate(&spec, &mut w).expect("generate");
        w.flush().expect("flush");
    }
    let v = vars(dir.path(), &trace.display().to_string());
    let mut rng = 0x5eed_u64;
    let mut mid_run = 0;
    for trial in 0..16 {
        let threads = 1 + trial % 2;
        // Budgets across the whole run: messages per run are in the
        // hundreds to low thousands.
        let budget = (xorshift(&mut rng) % 1_200) as i64;
        let (before, total) = kill_and_recover(&v, threads, budget);
        if before > 0 && before < total {
            mid_run += 1;
        }
    }
    assert!(mid_run >= 8, "only {mid_run} trials failed over mid-run");
}

#[test]
fn threaded_output_logger_releases_every_output_once() {
    use ftmb_logger::output_logger::ThreadedOutputLogger;
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("t.pcap");
    {
        let mut w = PcapWriter::create(&trace, LinkType::Ethernet, false).expect("pcap");
        let spec = TraceSpec {
            packets: 3_000,
            flows: 200,
            seed: 4,
            inside_net: ([10, 77, 0, 0], 16),
            outside_net: ([198, 18, 0, 0], 16),
            ..TraceSpec::default()
        };
        generate(&spec, &mut w).expect("generate");
        w.flush().expect("flush");
    }
    let v = vars(dir.path(), &trace.display().to_string());
    for threads in [1, 2] {
        let g = graph(&v, threads);
        let ol = Arc::new(OutputLogger::new(threads, g.sinks.sinks().to_vec()));
        ol.record_releases();
        let link = Arc::new(ThreadedOutputLogger::start(ol.clone()));
        let mut out = Vec::new();
        let r = run(g, &options(link.clone(), None, None), &mut out, &mut |_| {});
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let ol = link.finish();
        assert!(ol.errors().is_empty(), "{:?}", ol.errors());
        assert_eq!(ol.stats().held, 0, "everything committed at the end");
        let keys: HashSet<(u64, u32)> = ol
            .take_releases()
            .iter()
            .map(|o| (o.packet_id, o.ordinal))
            .collect();
        assert_eq!(keys, reference(&v, threads));
    }
}
