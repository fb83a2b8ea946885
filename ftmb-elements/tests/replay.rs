//! Deterministic replay (docs/design.md, section 7, check 1): a run with ordered
//! logging, then a replay under its logs on a fresh router, from the start
//! or from a snapshot taken mid-run, must end in exactly the same state (digest of every shared
//! variable with its access counters and vector clocks, every worker's
//! element state and random generator) and produce the same outputs, for
//! every example middlebox and for 1 and 2 workers.

use ftmb_core::config::Source;
use ftmb_core::ft::{FtOptions, MemoryLink, SnapshotTrigger};
use ftmb_core::graph::{build, Graph};
use ftmb_core::replay::Replay;
use ftmb_core::runtime::{run, RunOptions, RunReport};
use ftmb_core::snapshot::Snapshot;
use ftmb_replayer::{ReplayPlan, ReplayPlanFrom};
use ftmb_testkit::*;
use std::collections::BTreeMap;
use std::sync::Arc;

fn run_ft(
    cfg: &str,
    vars: &BTreeMap<String, String>,
    threads: usize,
    link: Arc<MemoryLink>,
    replay: Option<ReplayPlan>,
    restore: Option<Snapshot>,
    snapshots: Option<SnapshotTrigger>,
) -> RunReport {
    let graph = graph_of(cfg, vars, threads);
    run_graph(graph, link, replay, restore, snapshots, defaults())
}

/// The run options of these tests (fault tolerance aside).
fn defaults() -> RunOptions {
    RunOptions {
        seed: Some(99),
        batch: 16,
        ..RunOptions::default()
    }
}

/// `cfg` built for `threads` workers.
fn graph_of(cfg: &str, vars: &BTreeMap<String, String>, threads: usize) -> Graph {
    let source = Source {
        name: "replay.click".into(),
        text: cfg.into(),
    };
    match build(&source, vars, &ftmb_elements::registry(), threads) {
        Ok(g) => g,
        Err(e) => panic!("{}", e.render(false)),
    }
}

/// Run `graph` with fault tolerance over `link`, from `base`'s options.
fn run_graph(
    graph: Graph,
    link: Arc<MemoryLink>,
    replay: Option<ReplayPlan>,
    restore: Option<Snapshot>,
    snapshots: Option<SnapshotTrigger>,
    base: RunOptions,
) -> RunReport {
    let opts = RunOptions {
        ft: Some(FtOptions {
            link,
            replay: replay.map(|p| Arc::new(p) as Arc<dyn Replay>),
            restore: restore.map(Arc::new),
            snapshots,
        }),
        ..base
    };
    let mut out = Vec::new();
    run(graph, &opts, &mut out, &mut |_| {})
}

/// A run that must end without errors.
fn ok(r: RunReport) -> RunReport {
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r
}

/// The NAT example's configuration and variables, over a generated trace
/// of `packets` packets in `flows` flows.
fn nat_example(
    s: &Scratch,
    packets: usize,
    flows: usize,
    seed: u64,
) -> (String, BTreeMap<String, String>) {
    let trace = gen_trace(s, "in.pcap", packets, flows, seed);
    let cfg = example_config("nat.click");
    let vars = example_vars(&trace, &s.s("o1.pcap"), &s.s("o2.pcap"));
    (cfg, vars)
}

type OutKey = (u64, u32, u16, Vec<u8>, Vec<u64>);

/// The outputs `link` was sent of packets at or after their worker's
/// entry in `cut` (every packet when it has none).
fn outputs(link: &MemoryLink, cut: &[u64]) -> Vec<OutKey> {
    let mut v: Vec<OutKey> = link
        .outputs
        .lock()
        .iter()
        .filter(|(w, o)| o.packet_id >= cut.get(*w).copied().unwrap_or(0))
        .map(|(_, o)| {
            (
                o.packet_id,
                o.ordinal,
                o.sink,
                o.pkt.data().to_vec(),
                o.dv.entries().to_vec(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A replay (`r2`, shipped to `replica`) against its master (`r1`, to
/// `master`): no divergence, the same final state, and the same outputs of
/// every packet at or after its worker's `cut`. Returns the master's
/// outputs compared.
fn assert_replay_matches(
    what: &str,
    (r1, master): (&RunReport, &MemoryLink),
    (r2, replica): (&RunReport, &MemoryLink),
    cut: &[u64],
) -> Vec<OutKey> {
    assert!(r2.divergence.is_empty(), "{what}: {:?}", r2.divergence);
    assert_eq!(r1.digest, r2.digest, "{what}: state differs after replay");
    let o1 = outputs(master, cut);
    assert!(
        o1 == outputs(replica, &[]),
        "{what}: outputs differ after replay"
    );
    o1
}

fn check_replay(name: &str, cfg: &str, trace: &str, threads: usize, from_snapshot: bool) {
    let s = Scratch::new();
    let vars = example_vars(trace, &s.s("o1.pcap"), &s.s("o2.pcap"));
    let master = Arc::new(MemoryLink::default());
    let trigger = from_snapshot.then_some(SnapshotTrigger::EveryPackets(1500));
    let r1 = ok(run_ft(
        cfg,
        &vars,
        threads,
        master.clone(),
        None,
        None,
        trigger,
    ));
    let snap = if from_snapshot {
        let snaps = master.snapshots.lock().clone();
        assert!(snaps.len() >= 2, "{name}: {} snapshots", snaps.len());
        assert!(snaps.iter().all(|s| s.stall_ns > 0));
        // Through the encoding, as a replica would receive it.
        let mid = &snaps[snaps.len() / 2];
        Some(Snapshot::decode(&mid.encode()).expect("snapshot decodes"))
    } else {
        None
    };
    let plan = master.replay_plan_after(snap.as_ref(), threads);
    assert!(!plan.packets.is_empty(), "{name}: no input logged");
    let cut = ReplayPlan::first_packets(snap.as_ref(), threads);
    let replica = Arc::new(MemoryLink::default());
    let r2 = ok(run_ft(
        cfg,
        &vars,
        threads,
        replica.clone(),
        Some(plan),
        snap,
        None,
    ));
    let o1 = assert_replay_matches(
        &format!("{name} with {threads} workers"),
        (&r1, &master),
        (&r2, &replica),
        &cut,
    );
    if !from_snapshot {
        assert_eq!(
            r1.per_worker, r2.per_worker,
            "{name}/{threads}: packets per worker"
        );
    }
    assert!(
        !o1.is_empty() || !cfg.contains("ToDump"),
        "{name}: no outputs"
    );
    // The master made shared accesses (a replay of none proves nothing),
    // and the replay followed them; counter.click's counters are private
    // state only (the digest covers them).
    let pals = |l: &MemoryLink| -> usize {
        l.logs
            .lock()
            .iter()
            .flatten()
            .filter(|(_, r)| matches!(r, ftmb_core::pal::LogRecord::Pal(_)))
            .count()
    };
    let shared = pals(&master);
    assert_eq!(
        shared == 0,
        name == "counter.click",
        "{name}/{threads}: {shared} shared accesses logged"
    );
    if name == "loadbalancer.click" {
        // Connections really were balanced: the replayed outputs went to
        // more than one backend.
        let used = backends_of(&o1);
        assert!(used.len() > 1, "{name}/{threads}: backends used {used:?}");
    }
    // The replica re-logged nothing new: every access was a logged one.
    let relogged: usize = replica.logs.lock().iter().map(Vec::len).sum();
    assert_eq!(relogged, 0, "{name}/{threads}: replay logged new records");
}

/// The backends (examples/loadbalancer.click: 10.1.0.1 to 10.1.0.3) that
/// `outputs` (Ethernet frames) were sent to.
fn backends_of(outputs: &[OutKey]) -> std::collections::BTreeSet<[u8; 4]> {
    outputs
        .iter()
        .filter_map(|o| o.3.get(30..34))
        .filter(|d| d[..3] == [10, 1, 0])
        .map(|d| [d[0], d[1], d[2], d[3]])
        .collect()
}

const EXAMPLES: &[&str] = &[
    "nat.click",
    "mazu-nat.click",
    "firewall.click",
    "loadbalancer.click",
    "monitor.click",
    "gen.click",
    "counter.click",
];

#[test]
fn replay_reproduces_state_and_outputs_for_every_example() {
    let s = Scratch::new();
    let trace = gen_trace(&s, "in.pcap", 6_000, 800, 17);
    // The load balancer balances only connections to its virtual address.
    let vip = gen_vip_trace(&s, "vip.pcap", 6_000, 800, 17);
    for ex in EXAMPLES {
        let cfg = example_config(ex);
        let trace = if *ex == "loadbalancer.click" {
            &vip
        } else {
            &trace
        };
        for threads in [1, 2] {
            check_replay(ex, &cfg, trace, threads, false);
            check_replay(ex, &cfg, trace, threads, true);
        }
    }
}

#[test]
fn snapshots_cut_workers_mid_queue_and_replay_from_each() {
    // Queues of one tiny batch: when a snapshot is called, the threaded
    // worker usually has a full queue, so it stops after its current batch
    // (a cut of its own, below the input side's) while the inline worker
    // waits at the gate; the input side must not wait for room for the
    // marker. Every snapshot must restore and replay to the master's state.
    let s = Scratch::new();
    let (cfg, vars) = nat_example(&s, 6_000, 800, 29);
    let tiny = || RunOptions {
        batch: 4,
        queue_batches: 1,
        ..defaults()
    };
    let master = Arc::new(MemoryLink::default());
    let trigger = Some(SnapshotTrigger::EveryPackets(150));
    let r1 = ok(run_graph(
        graph_of(&cfg, &vars, 2),
        master.clone(),
        None,
        None,
        trigger,
        tiny(),
    ));
    let snaps = master.snapshots.lock().clone();
    assert!(snaps.len() >= 20, "{} snapshots", snaps.len());
    for snap in snaps.iter().step_by(4) {
        let snap = Snapshot::decode(&snap.encode()).expect("snapshot decodes");
        let lowest = snap.workers.iter().map(|w| w.next_packet).min();
        assert_eq!(Some(snap.next_packet), lowest, "snapshot {}", snap.id);
        let plan = master.replay_plan_after(Some(&snap), 2);
        let cut = ReplayPlan::first_packets(Some(&snap), 2);
        let replica = Arc::new(MemoryLink::default());
        let r2 = ok(run_graph(
            graph_of(&cfg, &vars, 2),
            replica.clone(),
            Some(plan),
            Some(snap.clone()),
            None,
            tiny(),
        ));
        assert_replay_matches(
            &format!("snapshot {}", snap.id),
            (&r1, &master),
            (&r2, &replica),
            &cut,
        );
    }
}

#[test]
fn a_snapshot_called_during_a_replay_waits_for_the_replay() {
    // A replica calls its first snapshot as soon as the replay's packets
    // are handed out, while its workers still replay them: each worker
    // takes it only at the marker after its replay packets, even one past
    // the end of its logged records (here worker 0's log lost its second
    // half, as when the master died before shipping it).
    let s = Scratch::new();
    let (cfg, vars, r1, master, snap) = nat_from_a_snapshot(&s);
    let mut plan = master.replay_plan_after(Some(&snap), 2);
    let half = plan.logs[0].len() / 2;
    plan.logs[0].truncate(half);
    let replica = Arc::new(MemoryLink::default());
    let trigger = Some(SnapshotTrigger::EveryPackets(100));
    let r2 = ok(run_ft(
        &cfg,
        &vars,
        2,
        replica.clone(),
        Some(plan),
        Some(snap.clone()),
        trigger,
    ));
    assert!(r2.divergence.is_empty(), "{:?}", r2.divergence);
    let taken = replica.snapshots.lock().clone();
    assert!(!taken.is_empty(), "no snapshot during the replay");
    for t in &taken {
        // Taken after every replayed packet: the replay's end is its cut.
        assert!(t.id > snap.id);
        assert_eq!(t.next_packet, r1.packets + 1, "snapshot {}", t.id);
    }
}

#[test]
fn a_standby_loads_snapshot_after_snapshot_in_place_then_replays_to_the_same_state() {
    // A standby replica loads every snapshot pushed to it into its router
    // as it comes, read where it lies in the encoding; at takeover the
    // run gets only the last one's summary (no state) and must not load
    // it again.
    let s = Scratch::new();
    let (cfg, vars, r1, master, _) = nat_from_a_snapshot(&s);
    let snaps = master.snapshots.lock().clone();
    assert!(snaps.len() >= 2, "{} snapshots", snaps.len());
    let mut g = graph_of(&cfg, &vars, 2);
    for snap in &snaps {
        let encoded = snap.encode();
        let summary = g.restore_encoded(&encoded).expect("snapshot loads");
        assert_eq!(summary, Snapshot::decode_summary(&encoded).unwrap());
        assert_eq!(g.restored, Some(snap.id));
    }
    let last = snaps.last().unwrap();
    let summary = Snapshot::decode_summary(&last.encode()).unwrap();
    assert!(summary.shared.is_empty());
    let plan = master.replay_plan_after(Some(last), 2);
    let replica = Arc::new(MemoryLink::default());
    let r2 = ok(run_graph(
        g,
        replica,
        Some(plan),
        Some(summary),
        None,
        defaults(),
    ));
    assert!(r2.divergence.is_empty(), "{:?}", r2.divergence);
    assert_eq!(r1.digest, r2.digest, "state differs after the replay");
}

#[test]
fn replay_detects_a_tampered_log() {
    let s = Scratch::new();
    let (cfg, vars) = nat_example(&s, 2_000, 300, 5);
    let master = Arc::new(MemoryLink::default());
    let r1 = ok(run_ft(&cfg, &vars, 2, master.clone(), None, None, None));
    let mut plan = master.full_replay_plan(2);
    // Swap the packets of two logged accesses of worker 0: the replay
    // must notice that the log does not match what the workers do.
    let log = &mut plan.logs[0];
    let pals: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| matches!(r, ftmb_core::pal::LogRecord::Pal(_)))
        .map(|(i, _)| i)
        .collect();
    assert!(pals.len() > 2);
    let (a, b) = (pals[0], pals[pals.len() / 2]);
    if let (ftmb_core::pal::LogRecord::Pal(mut pa), ftmb_core::pal::LogRecord::Pal(mut pb)) =
        (log[a].1, log[b].1)
    {
        std::mem::swap(&mut pa.packet, &mut pb.packet);
        log[a].1 = ftmb_core::pal::LogRecord::Pal(pa);
        log[b].1 = ftmb_core::pal::LogRecord::Pal(pb);
    }
    let r2 = ok(run_ft(
        &cfg,
        &vars,
        2,
        Arc::new(MemoryLink::default()),
        Some(plan),
        None,
        None,
    ));
    assert!(
        !r2.divergence.is_empty() || r2.digest != r1.digest,
        "a tampered log went unnoticed"
    );
}

/// Moves the plan's packets to a channel fed by a thread, as a replica
/// streams them from the input logger, and announces `announce` of them
/// while sending only the first `send`.
fn stream_packets(plan: &mut ReplayPlan, send: usize, announce: u64) {
    let packets = std::mem::take(&mut plan.packets);
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for (i, p) in packets.into_iter().take(send).enumerate() {
            if tx.send(p).is_err() {
                return;
            }
            if i % 64 == 63 {
                std::thread::yield_now();
            }
        }
    });
    plan.streamed = Some((rx, announce));
}

fn nat_from_a_snapshot(
    s: &Scratch,
) -> (
    String,
    BTreeMap<String, String>,
    RunReport,
    Arc<MemoryLink>,
    Snapshot,
) {
    let (cfg, vars) = nat_example(s, 4_000, 500, 23);
    let master = Arc::new(MemoryLink::default());
    let trigger = Some(SnapshotTrigger::EveryPackets(1500));
    let r1 = ok(run_ft(&cfg, &vars, 2, master.clone(), None, None, trigger));
    let snap = master.snapshots.lock()[0].clone();
    (cfg, vars, r1, master, snap)
}

#[test]
fn streamed_replay_reproduces_the_state() {
    let s = Scratch::new();
    let (cfg, vars, r1, master, snap) = nat_from_a_snapshot(&s);
    let mut plan = master.replay_plan_after(Some(&snap), 2);
    let n = plan.packets.len();
    assert!(n > 1000);
    stream_packets(&mut plan, n, n as u64);
    let replica = Arc::new(MemoryLink::default());
    let r2 = ok(run_ft(
        &cfg,
        &vars,
        2,
        replica,
        Some(plan),
        Some(snap),
        None,
    ));
    assert!(r2.divergence.is_empty(), "{:?}", r2.divergence);
    assert_eq!(
        r1.digest, r2.digest,
        "state differs after a streamed replay"
    );
}

#[test]
fn replay_whose_input_ends_early_fails_instead_of_waiting() {
    // The input logger's stream ends halfway through the replay: workers
    // whose logged turns wait on the missing packets must give up, and
    // the run must end with an error, not hang.
    let s = Scratch::new();
    let (cfg, vars, _, master, snap) = nat_from_a_snapshot(&s);
    let mut plan = master.replay_plan_after(Some(&snap), 2);
    let n = plan.packets.len();
    stream_packets(&mut plan, n / 2, n as u64);
    let replica = Arc::new(MemoryLink::default());
    let r = run_ft(&cfg, &vars, 2, replica, Some(plan), Some(snap), None);
    assert!(
        r.errors.iter().any(|e| e.contains("input ended")),
        "{:?}",
        r.errors
    );
}

#[test]
fn a_restored_router_numbers_its_snapshots_after_the_restored_one() {
    // A standby that still holds the dead master's snapshot 3 must never
    // mistake the new master's third snapshot for it.
    let s = Scratch::new();
    let (cfg, vars, _, master, _) = nat_from_a_snapshot(&s);
    let snaps = master.snapshots.lock().clone();
    let last = snaps.last().unwrap().clone();
    assert!(last.id >= 2);
    let next = Arc::new(MemoryLink::default());
    let trigger = Some(SnapshotTrigger::EveryPackets(1000));
    ok(run_ft(
        &cfg,
        &vars,
        2,
        next.clone(),
        None,
        Some(last.clone()),
        trigger,
    ));
    let ids: Vec<u64> = next.snapshots.lock().iter().map(|s| s.id).collect();
    assert!(!ids.is_empty());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids[0] > last.id, "{ids:?} after {}", last.id);
}
