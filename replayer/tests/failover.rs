//! Failover in one process: a master whose link to the output logger dies
//! at a seeded random point (during processing, during a snapshot, during
//! log shipping), a replica that restores the output logger's last
//! committed snapshot and replays the input log after its cut under the
//! logged records. Checks: the replica replayed, no released output is
//! lost or duplicated, every released output agrees with one NAT mapping
//! per flow, no replayed output differs from the one released under its
//! key (the output logger's divergence count is 0), and no error; for the
//! Monitor and the load balancer (over connections to its virtual
//! address), the replica's final counters and tables are a failure-free
//! run's, and every connection keeps its backend. A replica that corrupts
//! what it replays, and release records with a planted duplicate, loss or
//! new mapping, show that the checks fail.

use ftmb_core::config::Source;
use ftmb_core::ft::{FtLink, FtOptions, MemoryLink, OutputBatch, SnapshotTrigger};
use ftmb_core::graph::build;
use ftmb_core::headers::FlowId;
use ftmb_core::pal::LogRecord;
use ftmb_core::replay::Replay;
use ftmb_core::runtime::{run, RunOptions};
use ftmb_core::snapshot::Snapshot;
use ftmb_core::trace::{generate, LinkType, PcapWriter, TraceSpec};
use ftmb_logger::output_logger::{OutputLogger, Released};
use ftmb_replayer::{ReplayPlan, ReplayPlanFrom};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const NAT: &str = include_str!("../../examples/nat.click");

/// The master's link: the input log always gets through (the input
/// logger does not fail), but after `budget` messages nothing more reaches
/// the output logger, as if the master had been killed. Worker 1's
/// messages stop earlier, after `w1_budget` messages of any worker (as if
/// its last shipments were lost in flight while worker 0's got through).
struct CrashingLink {
    ol: Arc<OutputLogger>,
    il: MemoryLink,
    budget: i64,
    w1_budget: i64,
    sent: AtomicI64,
}

impl CrashingLink {
    /// A link to `ol` that dies after `budget.0` messages (worker 1's
    /// after `budget.1`).
    fn new(ol: Arc<OutputLogger>, budget: (i64, i64)) -> CrashingLink {
        CrashingLink {
            ol,
            il: MemoryLink::default(),
            budget: budget.0,
            w1_budget: budget.1,
            sent: AtomicI64::new(0),
        }
    }

    fn alive(&self, worker: Option<usize>) -> bool {
        let n = self.sent.fetch_add(1, Ordering::AcqRel);
        n < self.budget && (worker != Some(1) || n < self.w1_budget)
    }
}

impl FtLink for CrashingLink {
    fn log_input(&self, pkts: &[ftmb_core::Packet]) {
        self.il.log_input(pkts);
    }
    fn ship_log(&self, worker: usize, records: Vec<(u64, LogRecord)>) {
        if self.alive(Some(worker)) {
            self.ol.ship_log(worker, records);
        }
    }
    fn ship_outputs(&self, worker: usize, outputs: OutputBatch) {
        if self.alive(Some(worker)) {
            self.ol.ship_outputs(worker, outputs);
        }
    }
    fn store_snapshot(&self, snapshot: Snapshot) {
        if self.alive(None) {
            self.ol.store_snapshot(snapshot);
        }
    }
    fn void_records(&self, worker: usize, after: u64, through: u64) {
        if self.alive(None) {
            self.ol.void_records(worker, after, through);
        }
    }
}

/// Write a generated NAT trace of `(packets, flows, concurrent flows)`
/// into `dir`; returns the configuration's variables for it.
fn nat_trace(
    dir: &std::path::Path,
    (packets, flows, concurrency): (usize, usize, usize),
    max_size: usize,
    seed: u64,
) -> BTreeMap<String, String> {
    let trace = dir.join("t.pcap");
    let mut w = PcapWriter::create(&trace, LinkType::Ethernet, false).expect("pcap");
    let spec = TraceSpec {
        packets,
        flows,
        seed,
        inside_net: ([10, 77, 0, 0], 16),
        outside_net: ([198, 18, 0, 0], 16),
        concurrency,
        max_size,
        ..TraceSpec::default()
    };
    generate(&spec, &mut w).expect("generate");
    w.flush().expect("flush");
    vars(dir, &trace.display().to_string())
}

/// Batch size of the reference run, and of master and replica unless a
/// test varies them.
const BATCH: usize = 16;

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
    batch: usize,
) -> RunOptions {
    RunOptions {
        seed: Some(5),
        batch,
        ft: Some(FtOptions {
            link,
            replay: plan.map(|p| Arc::new(p) as Arc<dyn Replay>),
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
    run(
        g,
        &options(link.clone(), None, None, BATCH),
        &mut out,
        &mut |_| {},
    );
    link.output_keys()
}

/// What a failover released, and what the output logger counted.
struct Recovered {
    /// Outputs released before the failover.
    before: usize,
    /// Every output released, in release order.
    rel: Vec<Released>,
    /// Packets the replicas replayed (both, after a second failure).
    replayed: u64,
    /// Duplicates suppressed, and those of them that differ from what
    /// left under their key.
    suppressed: u64,
    divergence: u64,
    /// The output keys a run without failure releases (with the
    /// reference's batching only).
    want: Option<HashSet<(u64, u32)>>,
    /// Each input packet's flow.
    inputs: HashMap<u64, FlowId>,
}

/// Run the master until `budget.0` messages got through (worker 1's
/// until `budget.1`), fail over, and check what was released. The master
/// runs in batches of `batches.0`, the replica past the dead master's log
/// in batches of `batches.1`.
fn kill_and_recover(
    v: &BTreeMap<String, String>,
    threads: usize,
    budget: (i64, i64),
    batches: (usize, usize),
) -> Recovered {
    let r = kill_and_recover_twice(v, threads, budget, batches, None, false);
    check_released(&r).unwrap_or_else(|e| panic!("budget {budget:?}: {e}"));
    r
}

/// A run that takes `opts` to the end, or panics after a generous
/// deadline (a replay that waits for an access nobody will make never
/// ends). Every run checked here replays: its report must say so.
fn run_bounded(g: ftmb_core::graph::Graph, opts: RunOptions, what: String) {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = run(g, &opts, &mut Vec::new(), &mut |_| {});
        let _ = done_tx.send(r);
    });
    let r = done_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("replay did not finish ({what})"));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.divergence.is_empty(), "{what}: {:?}", r.divergence);
    assert!(
        r.replay_elapsed.is_some(),
        "{what}: the replica did not replay"
    );
}

/// [`kill_and_recover`], and with `replica_budget` the first replica dies
/// too, after that many messages and before any snapshot of its own, and
/// a second replica takes over from the same output logger. With
/// `diverge` the last replica corrupts every output it replays (the
/// test-only `RunOptions::test_diverge_replay`), and the output logger's
/// divergence count is returned instead of required to be 0. The
/// released outputs are checked by the caller ([`check_released`]).
fn kill_and_recover_twice(
    v: &BTreeMap<String, String>,
    threads: usize,
    budget: (i64, i64),
    batches: (usize, usize),
    replica_budget: Option<i64>,
    diverge: bool,
) -> Recovered {
    let g = graph(v, threads);
    let ol = Arc::new(OutputLogger::new(threads, g.sinks.sinks().to_vec()));
    ol.record_releases();
    let link = Arc::new(CrashingLink::new(ol.clone(), budget));
    let mut out = Vec::new();
    let r = run(
        g,
        &options(link.clone(), None, None, batches.0),
        &mut out,
        &mut |_| {},
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let before = ol.stats().released as usize;

    // Failover: a replica takes the last committed snapshot and the logs
    // after it; the input logger replays its log from the cut. With a
    // replica budget the first replica dies too, and a second one takes
    // over from the same snapshot, under the dead master's records and the
    // first replica's.
    let what = format!("budget {budget:?}, batches {batches:?}, replica {replica_budget:?}");
    let take_over = |replica_link: Arc<dyn FtLink>, diverge: bool| {
        let take = ol.begin_failover();
        let mut plan = link.il.replay_plan_after(take.snapshot.as_deref(), threads);
        plan.logs = take.logs.clone();
        plan.next_seq = take.next_seq();
        let replayed = plan.len();
        let g = graph(v, threads);
        let mut opts = options(replica_link, Some(plan), take.snapshot.clone(), batches.1);
        opts.test_diverge_replay = diverge;
        if replayed > 0 {
            run_bounded(g, opts, what.clone());
        }
        replayed
    };
    // A first replica that dies may get through its whole replay (and
    // snapshot past it) before its link does: the second then has little
    // or nothing to replay.
    let first = replica_budget.map_or(0, |b| {
        take_over(Arc::new(CrashingLink::new(ol.clone(), (b, b))), false)
    });
    let replayed = first + take_over(ol.clone(), diverge);
    assert!(ol.errors().is_empty(), "{:?}", ol.errors());
    let st = ol.stats();
    if !diverge {
        assert_eq!(
            st.divergence,
            0,
            "{what}: replayed outputs differ from the released ones: {:?}",
            ol.diverged()
        );
    }
    let inputs: HashMap<u64, FlowId> = link
        .il
        .inputs
        .lock()
        .iter()
        .filter_map(|p| Some((p.anno.id, FlowId::of_ipv4(p.data().get(14..)?)?)))
        .collect();
    Recovered {
        before,
        rel: ol.take_releases(),
        replayed,
        suppressed: st.suppressed,
        divergence: st.divergence,
        // Which packets have outputs depends on the batching (a reply
        // batched with its request finds the mapping the request made);
        // with the reference's batching the sets must match exactly.
        want: (batches == (BATCH, BATCH)).then(|| reference(v, threads)),
        inputs,
    }
}

/// The checks of a failover's release record: nothing released twice,
/// nothing lost or made up (against a run without failure, when there is
/// one to compare with), and every released forward packet agrees with
/// one mapping per flow, no translated tuple serving two flows.
fn check_released(r: &Recovered) -> Result<(), String> {
    let mut seen = HashSet::new();
    for o in &r.rel {
        if !seen.insert((o.packet_id, o.ordinal)) {
            return Err(format!(
                "output ({}, {}) released twice",
                o.packet_id, o.ordinal
            ));
        }
    }
    if let Some(want) = &r.want {
        let (missing, extra) = (
            want.difference(&seen).count(),
            seen.difference(want).count(),
        );
        if missing > 0 || extra > 0 {
            return Err(format!(
                "released outputs differ from a run without failure: \
                 {missing} missing, {extra} extra"
            ));
        }
    }
    let mut mapping: HashMap<FlowId, FlowId> = HashMap::new();
    let mut owner: HashMap<FlowId, FlowId> = HashMap::new();
    for o in r.rel.iter().filter(|o| o.sink == 0) {
        let orig = r.inputs[&o.packet_id];
        let Some(tr) = o.data.get(14..).and_then(FlowId::of_ipv4) else {
            continue;
        };
        if *mapping.entry(orig).or_insert(tr) != tr {
            return Err(format!(
                "a flow's mapping changed across failover: {orig:?}"
            ));
        }
        if *owner.entry(tr).or_insert(orig) != orig {
            return Err(format!("a mapping given to two flows: {tr:?}"));
        }
    }
    Ok(())
}

/// How many messages a master of `threads` workers sends over a whole run
/// without failure (workers ship several batches at once when they fall
/// behind, so the count depends on the run's timing).
fn messages_of_a_whole_run(v: &BTreeMap<String, String>, threads: usize) -> i64 {
    let g = graph(v, threads);
    let ol = Arc::new(OutputLogger::new(threads, g.sinks.sinks().to_vec()));
    let link = Arc::new(CrashingLink::new(ol, (i64::MAX, i64::MAX)));
    let r = run(
        g,
        &options(link.clone(), None, None, BATCH),
        &mut Vec::new(),
        &mut |_| {},
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    link.sent.load(Ordering::Acquire)
}

#[test]
fn kill_anywhere_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = nat_trace(dir.path(), (5_000, 400, 200), 200, 8);
    let whole = [1, 2].map(|t| messages_of_a_whole_run(&v, t).max(1) as u64);
    let mut rng = 0x5eed_u64;
    let mut mid_run = 0;
    for trial in 0..16 {
        let threads = 1 + trial % 2;
        // Budgets across the whole run, as long as a run without failure.
        let budget = (xorshift(&mut rng) % whole[threads - 1]) as i64;
        let r = kill_and_recover(&v, threads, (budget, budget), (BATCH, BATCH));
        if r.before > 0 && r.before < r.rel.len() && r.replayed > 0 {
            mid_run += 1;
        }
    }
    assert!(mid_run >= 8, "only {mid_run} trials failed over mid-run");
}

#[test]
fn threaded_output_logger_releases_every_output_once() {
    use ftmb_logger::output_logger::ThreadedOutputLogger;
    let dir = tempfile::tempdir().expect("tempdir");
    let v = nat_trace(dir.path(), (3_000, 200, 64), 1514, 4);
    // Polling or asleep when the queue is empty.
    let polls = [
        std::time::Duration::ZERO,
        std::time::Duration::from_micros(300),
    ];
    for (threads, poll) in [1, 2].into_iter().flat_map(|t| polls.map(|p| (t, p))) {
        let g = graph(&v, threads);
        let ol = Arc::new(OutputLogger::new(threads, g.sinks.sinks().to_vec()));
        ol.record_releases();
        let link = Arc::new(ThreadedOutputLogger::start(ol.clone(), poll));
        let mut out = Vec::new();
        let r = run(
            g,
            &options(link.clone(), None, None, BATCH),
            &mut out,
            &mut |_| {},
        );
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

/// The records the output logger holds need not fit together: worker 1's
/// access of a variable may be lost while worker 0's next access to it was
/// shipped. The replica re-runs worker 1's unlogged packets in batches cut
/// differently from the master's, so in another order; following worker
/// 0's log past such a gap could then wait for ever. Many crash points,
/// master and replica batches of different sizes: every replay finishes,
/// nothing is released twice and every flow keeps one mapping.
#[test]
fn replay_past_a_lost_record_finishes_whatever_the_batching() {
    lost_record_trials(0xfeed, 120, false);
}

/// `FTMB_TRIALS` (or `default`) seeded crash points on 2 workers where
/// worker 1's last shipments are lost, master and replica batches 64/3
/// and 3/64; with `second`, the first replica dies too.
fn lost_record_trials(seed: u64, default: usize, second: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = nat_trace(dir.path(), (12_000, 2_000, 2_000), 120, 21);
    let mut rng = seed;
    let trials: usize = std::env::var("FTMB_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    let mut replayed = 0;
    for t in 0..trials {
        let budget = (xorshift(&mut rng) % 600) as i64;
        let w1 = budget - (xorshift(&mut rng) % 40) as i64;
        let b = if t % 2 == 0 { (64, 3) } else { (3, 64) };
        let replica = second.then(|| (xorshift(&mut rng) % 400) as i64);
        let r = kill_and_recover_twice(&v, 2, (budget, w1), b, replica, false);
        check_released(&r).unwrap_or_else(|e| panic!("trial {t}: {e}"));
        replayed += usize::from(r.replayed > 0);
    }
    assert!(
        replayed * 2 >= trials,
        "only {replayed} of {trials} trials replayed anything"
    );
}

/// A second failure before the first replica's first snapshot: the output
/// logger then holds the dead master's records, among them those the
/// first replica could not follow (past a lost record) and ran again
/// unlogged, and the first replica's own records of those runs. The
/// second replica must follow the first replica's records, not the dead
/// master's, or it contradicts what the first replica released.
#[test]
fn a_second_failure_right_after_a_takeover_is_recovered() {
    lost_record_trials(0xbeef, 40, true);
}

/// What a failover of `cfg` released and what its replica's driver
/// printed at the end (the configuration's `print` handlers), and the same
/// for a run without failure: `(released before the failover, released
/// outputs, replica's printout, reference outputs, reference printout)`.
struct ConfigFailover {
    before: usize,
    released: Vec<ftmb_logger::output_logger::Released>,
    printed: String,
    reference: HashSet<(u64, u32)>,
    reference_printed: String,
}

/// Run `cfg` on 2 workers, its master's link dying after half the
/// messages a whole run sends, and a replica taking over from the output
/// logger's last committed snapshot.
fn fail_over_config(cfg: &str, v: &BTreeMap<String, String>) -> ConfigFailover {
    let threads = 2;
    let graph = || {
        let source = Source {
            name: "failover.click".into(),
            text: cfg.into(),
        };
        build(&source, v, &ftmb_elements::registry(), threads).expect("config")
    };
    // The reference: no failure.
    let link = Arc::new(MemoryLink::default());
    let mut reference_printed = Vec::new();
    let r = run(
        graph(),
        &options(link.clone(), None, None, BATCH),
        &mut reference_printed,
        &mut |_| {},
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let reference = link.output_keys();
    // How many messages a whole run sends, then a master that dies
    // halfway through them.
    let g = graph();
    let ol = Arc::new(OutputLogger::new(threads, g.sinks.sinks().to_vec()));
    let whole = Arc::new(CrashingLink::new(ol, (i64::MAX, i64::MAX)));
    run(
        g,
        &options(whole.clone(), None, None, BATCH),
        &mut Vec::new(),
        &mut |_| {},
    );
    let half = whole.sent.load(Ordering::Acquire) / 2;
    assert!(half > 10, "a whole run sends {} messages", 2 * half);
    let g = graph();
    let ol = Arc::new(OutputLogger::new(threads, g.sinks.sinks().to_vec()));
    ol.record_releases();
    let link = Arc::new(CrashingLink::new(ol.clone(), (half, half)));
    let r = run(
        g,
        &options(link.clone(), None, None, BATCH),
        &mut Vec::new(),
        &mut |_| {},
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let before = ol.stats().released as usize;
    let take = ol.begin_failover();
    assert!(
        take.snapshot.is_some(),
        "no snapshot committed before the failure"
    );
    let mut plan = link.il.replay_plan_after(take.snapshot.as_deref(), threads);
    plan.logs = take.logs.clone();
    plan.next_seq = take.next_seq();
    let mut printed = Vec::new();
    let r = run(
        graph(),
        &options(ol.clone(), Some(plan), take.snapshot.clone(), BATCH),
        &mut printed,
        &mut |_| {},
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.divergence.is_empty(), "{:?}", r.divergence);
    assert!(ol.errors().is_empty(), "{:?}", ol.errors());
    let released = ol.take_releases();
    let f = ConfigFailover {
        before,
        released,
        printed: String::from_utf8_lossy(&printed).into_owned(),
        reference,
        reference_printed: String::from_utf8_lossy(&reference_printed).into_owned(),
    };
    // The failure struck mid-run: some outputs had left, not all.
    assert!(
        f.before > 0 && f.before < f.released.len(),
        "released {} before the failover, {} in all",
        f.before,
        f.released.len()
    );
    // Nothing lost, nothing twice.
    let keys: HashSet<(u64, u32)> = f
        .released
        .iter()
        .map(|o| (o.packet_id, o.ordinal))
        .collect();
    assert_eq!(keys.len(), f.released.len(), "an output released twice");
    assert!(
        keys == f.reference,
        "released outputs differ from the reference"
    );
    f
}

/// The Monitor's counters (shared by both workers with `SHARING 2`, and
/// per flow) after a failover are those of a run without failure: the
/// replica restored and replayed every count.
#[test]
fn monitor_counters_after_a_failover_match_a_run_without_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut v = nat_trace(dir.path(), (6_000, 600, 200), 200, 31);
    v.insert("SHARING".into(), "2".into());
    let f = fail_over_config(include_str!("../../examples/monitor.click"), &v);
    // `mon.count`, `mon.byte_count`, `mon.flows`, one line each.
    let lines: Vec<&str> = f.printed.lines().collect();
    assert_eq!(lines.len(), 3, "{:?}", f.printed);
    assert_eq!(lines[0].trim(), "6000", "{:?}", f.printed);
    assert_eq!(f.printed, f.reference_printed);
}

/// The load balancer over connections to its virtual address: after a
/// failover every connection stays on its backend, more than one backend
/// serves, and its table and counters are a run without failure's.
#[test]
fn load_balancer_after_a_failover_keeps_every_connection_on_its_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("vip.pcap");
    let mut w = PcapWriter::create(&trace, LinkType::Ethernet, false).expect("pcap");
    let spec = TraceSpec {
        packets: 6_000,
        flows: 600,
        seed: 33,
        inside_net: ([10, 77, 0, 0], 16),
        concurrency: 200,
        max_size: 200,
        ..TraceSpec::default()
    }
    .to_service([192, 0, 2, 1], 80);
    generate(&spec, &mut w).expect("generate");
    w.flush().expect("flush");
    let v = vars(dir.path(), &trace.display().to_string());
    let f = fail_over_config(include_str!("../../examples/loadbalancer.click"), &v);
    // Every client connection's packets went to one backend.
    let mut backend: HashMap<(u32, u16), [u8; 4]> = HashMap::new();
    for o in &f.released {
        let Some(fl) = o.data.get(14..).and_then(FlowId::of_ipv4) else {
            continue;
        };
        if fl.daddr[..3] != [10, 1, 0] {
            continue; // a reply to a client
        }
        let client = (u32::from_be_bytes(fl.saddr), fl.sport);
        let b = *backend.entry(client).or_insert(fl.daddr);
        assert_eq!(b, fl.daddr, "a connection moved to another backend");
    }
    let used: HashSet<[u8; 4]> = backend.values().copied().collect();
    assert!(used.len() > 1, "backends used: {used:?}");
    assert!(
        backend.len() > 300,
        "{} connections balanced",
        backend.len()
    );
    // `lb.connections`, `lb.backends`, `lb.balanced`, `lb.replies`.
    assert_eq!(f.printed.lines().count(), 4, "{:?}", f.printed);
    assert_eq!(f.printed, f.reference_printed);
}

/// The checks above must be able to fail. A replica that corrupts every
/// output it replays (the test-only hook): the output logger suppresses
/// the replayed duplicates as before, but counts each one whose bytes
/// differ from what left as a divergence. And a release record with an
/// output planted twice, one taken out, or a flow's mapping changed is
/// refused by [`check_released`].
#[test]
fn a_planted_divergence_a_duplicate_and_a_loss_are_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = nat_trace(dir.path(), (5_000, 400, 200), 200, 8);
    let whole = messages_of_a_whole_run(&v, 2).max(4);
    let mut rng = 0xd1_5e_u64;
    let mut caught = 0;
    for _ in 0..4 {
        // Past the first snapshot, before the end: some replayed
        // outputs had left already.
        let budget = whole / 4 + (xorshift(&mut rng) % (whole as u64 / 2)) as i64;
        let r = kill_and_recover_twice(&v, 2, (budget, budget), (BATCH, BATCH), None, true);
        assert!(r.replayed > 0, "budget {budget}: nothing replayed");
        assert!(r.divergence <= r.suppressed, "budget {budget}");
        if r.suppressed > 0 {
            assert!(
                r.divergence > 0,
                "budget {budget}: {} corrupted duplicates suppressed, no divergence counted",
                r.suppressed
            );
            caught += 1;
        }
        // Still nothing twice: the corrupted duplicates did not leave.
        let mut keys = HashSet::new();
        assert!(r.rel.iter().all(|o| keys.insert((o.packet_id, o.ordinal))));
    }
    assert!(caught >= 2, "only {caught} trials had replayed duplicates");

    // A correct failover passes the release checks; planted faults fail.
    let mut r = kill_and_recover(&v, 2, (whole / 2, whole / 2), (BATCH, BATCH));
    assert_eq!(r.divergence, 0);
    assert!(check_released(&r).is_ok());
    let first = r.rel[0].clone();
    r.rel.push(first.clone());
    assert!(check_released(&r)
        .expect_err("a duplicate")
        .contains("twice"));
    r.rel.pop();
    let lost = r.rel.pop().expect("outputs");
    assert!(check_released(&r).expect_err("a loss").contains("missing"));
    r.rel.push(lost);
    // Another source port for one forward output of a flow that has
    // several: the flow's mapping changed.
    let mut per_flow: HashMap<FlowId, usize> = HashMap::new();
    for o in r.rel.iter().filter(|o| o.sink == 0) {
        *per_flow.entry(r.inputs[&o.packet_id]).or_default() += 1;
    }
    let i = r
        .rel
        .iter()
        .rposition(|o| o.sink == 0 && per_flow[&r.inputs[&o.packet_id]] > 1)
        .expect("a flow with two forward outputs");
    let ihl = usize::from(r.rel[i].data[14] & 0x0f) * 4;
    r.rel[i].data[14 + ihl] ^= 0x40;
    assert!(check_released(&r)
        .expect_err("a new mapping")
        .contains("mapping"));
}
