//! The output logger forwards a master's snapshots to the standby replica
//! piece by piece as they arrive, also to a standby that connected after
//! the master (one that did had been left without any until the failover,
//! which then had to send the snapshot whole); and a takeover after the
//! master's death hands over the forwarded snapshot without sending it
//! again. Real roles over Unix sockets in one process.

use ftmb_core::ft::FtLink;
use ftmb_core::snapshot::{Snapshot, WorkerSnapshot};
use ftmb_logger::client::{await_takeover, SocketLink};
use ftmb_logger::output_logger::OutputLogger;
use ftmb_logger::server::{run_output_logger, OutputLoggerReport};
use ftmb_logger::transport::{connect, Addr, Stream};
use std::sync::Arc;
use std::time::Duration;

/// A snapshot big enough to travel in several pieces.
fn snapshot(id: u64) -> Snapshot {
    Snapshot {
        id,
        next_packet: 100 * id + 1,
        taken_ns: 0,
        stall_ns: 0,
        workers: vec![WorkerSnapshot {
            last_seq: 0,
            next_packet: 100 * id + 1,
            ..WorkerSnapshot::default()
        }],
        shared: (0..300_000u32).map(|i| (i ^ id as u32) as u8).collect(),
    }
}

/// An output logger running `ol` on a fresh Unix socket, and a master
/// connected to it (data and heartbeat links).
struct Serving {
    _dir: tempfile::TempDir,
    addr: Addr,
    logger: std::thread::JoinHandle<std::io::Result<OutputLoggerReport>>,
    data: Stream,
    hb: Stream,
    master: SocketLink,
}

fn serve(ol: Arc<OutputLogger>) -> Serving {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = Addr::Unix(dir.path().join("ol.sock"));
    let ol_addr = addr.clone();
    let logger = std::thread::spawn(move || {
        run_output_logger(
            ol,
            &ol_addr,
            None,
            Duration::from_secs(10),
            Duration::from_secs(1),
        )
    });
    let data = connect(&addr, WAIT).expect("master connects");
    let hb = connect(&addr.heartbeat().expect("hb address"), WAIT).expect("heartbeats");
    let master = SocketLink::new(&data, &hb, Duration::from_millis(5)).expect("master link");
    Serving {
        _dir: dir,
        addr,
        logger,
        data,
        hb,
        master,
    }
}

/// How long a test waits for anything it expects.
const WAIT: Duration = Duration::from_secs(10);

#[test]
fn a_standby_that_connects_after_the_master_gets_snapshots_forwarded() {
    let Serving {
        _dir,
        addr,
        logger,
        data,
        hb,
        master,
    } = serve(Arc::new(OutputLogger::new(1, Vec::new())));

    // The standby connects only now, and reports each snapshot it loads.
    let standby = connect(&addr, WAIT).expect("standby connects");
    let (loaded_tx, loaded) = crossbeam_channel::unbounded();
    let replica = std::thread::spawn(move || {
        let mut prepare = |bytes: &[u8]| {
            let ok = Snapshot::decode(bytes).is_ok_and(|s| s == snapshot(s.id));
            if let Ok(s) = Snapshot::decode_summary(bytes) {
                let _ = loaded_tx.send((s.id, ok));
            }
            ok
        };
        await_takeover(&standby, 1, &mut prepare)
    });

    // Snapshots go out until the standby has one (those sent before the
    // output logger took it on are not forwarded). The short wait only
    // paces the loop; which snapshot arrives first is not decided by it:
    // once one has arrived, the standby is attached, and every snapshot
    // stored after that one must arrive too, in order.
    let mut id = 0;
    let first = loop {
        id += 1;
        assert!(id <= 2000, "no snapshot reached the standby");
        master.store_snapshot(snapshot(id));
        if let Ok(got) = loaded.recv_timeout(Duration::from_millis(5)) {
            break got;
        }
    };
    assert!(first.1, "snapshot {} arrived damaged", first.0);
    assert!(first.0 <= id, "snapshot {} was never stored", first.0);
    // One more, then every snapshot after the first one arrives, whole.
    id += 1;
    master.store_snapshot(snapshot(id));
    for next in first.0 + 1..=id {
        let got = loaded
            .recv_timeout(WAIT)
            .expect("every later snapshot is forwarded");
        assert_eq!(got, (next, true), "snapshots forwarded out of order");
    }

    // The master dies (its streams end without a goodbye): the standby is
    // handed the cut of the snapshot it already holds, and not sent it.
    drop(master);
    drop((data, hb));
    let take = replica
        .join()
        .expect("replica thread")
        .expect("takeover")
        .expect("a takeover, not the run's end");
    assert!(take.prepared, "the forwarded snapshot was sent again");
    assert!(take.snapshot.is_none());
    assert_eq!(take.cut, snapshot(id).next_packet);
    assert!(loaded.try_recv().is_err(), "a snapshot arrived twice");
    let report = logger.join().expect("logger thread").expect("logger");
    assert!(report.detected_ns.is_some());
    assert_eq!(report.snapshots, id);
}

/// A master that announces a snapshot over the output logger's configured
/// maximum: refused at its first piece (nothing reserved for it, nothing
/// committed, nothing forwarded to the standby), and the master is taken
/// for a broken one: the standby takes over from the start of the log.
#[test]
fn a_snapshot_over_the_maximum_is_refused_and_never_forwarded() {
    let ol = Arc::new(OutputLogger::new(1, Vec::new()));
    ol.set_max_snapshot(100_000); // the snapshot is about 300 kB
    let Serving {
        _dir,
        addr,
        logger,
        data,
        hb,
        master,
    } = serve(ol.clone());
    let standby = connect(&addr, WAIT).expect("standby connects");
    let (loaded_tx, loaded) = crossbeam_channel::unbounded();
    let (take_tx, take_rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let mut prepare = |bytes: &[u8]| {
            let _ = loaded_tx.send(bytes.len());
            true
        };
        let _ = take_tx.send(await_takeover(&standby, 1, &mut prepare));
    });
    master.store_snapshot(snapshot(1));
    // Bounded: had the snapshot been accepted, the master would still be
    // serving and no takeover would come.
    let take = take_rx
        .recv_timeout(WAIT)
        .expect("a takeover: the oversize snapshot was accepted")
        .expect("takeover")
        .expect("a takeover, not the run's end");
    assert!(
        loaded.try_recv().is_err(),
        "a refused snapshot was forwarded"
    );
    assert!(take.snapshot.is_none());
    assert!(!take.prepared);
    assert_eq!(take.cut, 1, "the takeover starts from the log's beginning");
    assert_eq!(ol.stats().snapshots, 0);
    drop(master);
    drop((data, hb));
    let report = logger.join().expect("logger thread").expect("logger");
    assert!(
        report.detected_ns.is_some(),
        "the master was not taken for broken"
    );
}
