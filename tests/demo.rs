//! The kill-the-primary demo as a test: the four roles as real processes,
//! the master SIGKILLed at several seeded points; nothing released may be
//! lost, duplicated or inconsistent with one NAT mapping per flow. Then
//! the same with other configurations (`--config`), and a hung master.
//!
//! The master fails on an event, not at a time: once the output logger
//! has released a seeded number of outputs (`--fail-after-released`), so
//! that the failure lands mid-run however loaded the machine is; and every
//! run must show that the replica really took over.

use ftmb_testkit::{gen_vip_trace, read_packets, xorshift, Scratch};
use std::process::Command;

/// Packets in every run's trace.
const PACKETS: u64 = 20_000;

/// Run `ftmb demo --json` with the small test settings and `extra`, the
/// master failed once `released` outputs have left, and return its report
/// after checking that it recovered ([`check_recovered`]). Unless `extra`
/// says otherwise the failure detector's deadline is 500 ms: a SIGKILL is
/// seen at once (the stream ends), and a long deadline keeps a loaded test
/// machine from taking a slow master for a dead one.
fn demo(extra: &[&str], released: u64) -> serde_json::Value {
    let r = demo_env(extra, released, &[]);
    check_recovered(&r, released, extra);
    r
}

/// [`demo`] with `env` set in the demo's environment (and so its roles'),
/// returning the report unchecked.
fn demo_env(extra: &[&str], released: u64, env: &[(&str, &str)]) -> serde_json::Value {
    let deadline: &[&str] = if extra.contains(&"--deadline-ms") {
        &[]
    } else {
        &["--deadline-ms", "500"]
    };
    let out = Command::new(env!("CARGO_BIN_EXE_ftmb"))
        .args([
            "demo",
            "--json",
            "--packets",
            &PACKETS.to_string(),
            "--flows",
            "2000",
            "--pps",
            "40000",
            "--snapshot-ms",
            "20",
            "--fail-after-released",
            &released.to_string(),
        ])
        .args(deadline)
        .args(extra)
        .env_remove("FTMB_TEST_DIVERGE")
        .envs(env.iter().copied())
        .output()
        .expect("run ftmb demo");
    assert!(
        out.status.success(),
        "demo {extra:?} failed (after {released} released): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).expect("JSON report")
}

/// What every run must have done: failed the master mid-run (after the
/// outputs it waited for, before the end), taken over, replayed, and
/// released every output once, consistently, with no role reporting an
/// error.
fn check_recovered(r: &serde_json::Value, released: u64, extra: &[&str]) {
    let seen = r["failed_after_released"].as_u64();
    assert!(
        seen.is_some_and(|s| s >= released && s < PACKETS),
        "{extra:?}: failed after {seen:?} released, asked {released}: {r}"
    );
    assert_eq!(r["took_over"], true, "{extra:?}: no takeover: {r}");
    assert!(
        r["snapshots_committed"].as_u64().is_some_and(|n| n > 0),
        "{extra:?}: no snapshot committed: {r}"
    );
    assert!(
        r["replayed_packets"].as_u64().is_some_and(|n| n > 0),
        "{extra:?}: the replica did not replay: {r}"
    );
    assert_eq!(r["errors"], serde_json::json!([]), "{extra:?}: {r}");
    assert_eq!(r["lost"], 0, "{extra:?}: {r}");
    assert_eq!(r["duplicated"], 0, "{extra:?}: {r}");
    assert_eq!(r["divergence"], 0, "{extra:?}: {r}");
    assert_eq!(r["consistent"], true, "{extra:?}: {r}");
    assert_eq!(r["released"], PACKETS, "{extra:?}: {r}");
}

#[test]
fn sigkill_the_master_at_seeded_points() {
    let mut rng = 0x00c0_ffee_u64;
    for trial in 0..4 {
        // Somewhere in the first half of the 20k outputs (the sinks show
        // them in steps of their write buffers, a few thousand at a time,
        // and the last buffer only at the end).
        let released = 500 + xorshift(&mut rng) % 9_000;
        let threads = 1 + trial % 2;
        // The last trial links the roles over TCP (loopback), as across
        // hosts.
        let transport: &[&str] = if trial == 3 { &["--tcp"] } else { &[] };
        let threads = threads.to_string();
        let mut extra = vec!["--threads", &threads];
        extra.extend_from_slice(transport);
        demo(&extra, released);
    }
}

/// Other configurations through the same failover: the Monitor with
/// counters shared by both workers (every packet's access logged), and the
/// load balancer over connections to its virtual address, whose per-flow
/// backend must not change across it (the demo's consistency check), and
/// which must really have balanced them over its backends.
#[test]
fn sigkill_the_master_of_other_configurations() {
    let root = env!("CARGO_MANIFEST_DIR");
    let monitor = format!("{root}/examples/monitor.click");
    demo(&["--config", &monitor, "--var", "SHARING=2"], 6_000);

    let s = Scratch::new();
    let trace = gen_vip_trace(&s, "vip.pcap", PACKETS as usize, 2_000, 42);
    let lb = format!("{root}/examples/loadbalancer.click");
    let r = demo(&["--config", &lb, "--trace", &trace, "--keep"], 3_000);
    let kept = r["outputs_in"].as_str().expect("outputs kept").to_string();
    let out = format!("{kept}/fwd.pcap");
    let outputs = read_packets(&out);
    let _ = std::fs::remove_dir_all(&kept);
    assert_eq!(outputs.len() as u64, PACKETS);
    // Client packets went to the backends (10.1.0.1 to .3), all of them.
    let backends: std::collections::BTreeSet<Vec<u8>> = outputs
        .iter()
        .filter_map(|p| p.get(30..34))
        .filter(|d| d[..3] == [10, 1, 0])
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(backends.len(), 3, "backends used: {backends:?}");
}

/// A master that hangs (SIGSTOP) instead of dying: its sockets stay open,
/// only the heartbeat deadline tells. Stopped for good, the replica must
/// still get its input (the input logger must not wait on the hung
/// master's full socket); let go on mid-run, what it still sends must be
/// fenced off.
#[test]
fn a_hung_master_is_replaced_and_fenced_off() {
    // The second is let go on 300 ms after the stop, well past the
    // 100 ms deadline (were it let go before the takeover, the report
    // would show none, and the test fail).
    for extra in [
        &["--hang", "--deadline-ms", "100", "--threads", "2"][..],
        &["--hang", "--deadline-ms", "100", "--resume-ms", "300"][..],
    ] {
        let r = demo(extra, 2_000);
        assert_eq!(r["failure"], "hang", "{extra:?}: {r}");
        // Seen by the heartbeat deadline, not by a stream's end (a kill
        // is seen within a few ms): about the deadline after the stop (a
        // heartbeat late before the stop makes it somewhat less).
        let detect = r["recovery_ms"]["detect"].as_f64().expect("detect");
        assert!(detect >= 50.0, "{extra:?}: detected {detect} ms after: {r}");
    }
}

/// The demo's checks must be able to fail: a replica that corrupts every
/// output it replays (the test-only `FTMB_TEST_DIVERGE=1`) releases
/// nothing twice and loses nothing, yet the output logger finds the
/// replayed duplicates differ from what the master released, and the
/// demo calls the run inconsistent.
#[test]
fn a_planted_divergence_makes_the_demo_inconsistent() {
    let r = demo_env(&["--threads", "2"], 6_000, &[("FTMB_TEST_DIVERGE", "1")]);
    assert_eq!(r["took_over"], true, "{r}");
    assert!(
        r["replayed_packets"].as_u64().is_some_and(|n| n > 0),
        "nothing replayed: {r}"
    );
    assert!(
        r["divergence"].as_u64().is_some_and(|n| n > 0),
        "no divergence counted: {r}"
    );
    assert!(
        r["divergent_outputs"]
            .as_array()
            .is_some_and(|k| !k.is_empty()),
        "{r}"
    );
    assert_eq!(r["consistent"], false, "{r}");
    assert_eq!(r["duplicated"], 0, "{r}");
}

/// `ftmb run --ft` on a generated NAT trace, with `env` set; returns its
/// exit status and stderr.
fn run_ft(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("t.pcap");
    let exe = env!("CARGO_BIN_EXE_ftmb");
    let gen = Command::new(exe)
        .arg("gen-trace")
        .arg(&trace)
        .args([
            "--packets",
            "3000",
            "--flows",
            "300",
            "--inside",
            "10.77.0.0/16",
        ])
        .output()
        .expect("run ftmb gen-trace");
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let d = dir.path().display();
    let out = Command::new(exe)
        .args(["run", &format!("{root}/examples/nat.click")])
        .arg(format!("IN={}", trace.display()))
        .args([
            format!("OUT={d}/o1.pcap"),
            format!("OUT2={d}/o2.pcap"),
            "INSIDE=10.77.0.0/16".to_string(),
        ])
        .args(["--ft", "--threads", "2", "--seed", "3"])
        .env_remove("FTMB_TEST_DIVERGE")
        .envs(env.iter().copied())
        .output()
        .expect("run ftmb run --ft");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `ftmb run --ft` reports the output logger's divergence count, and an
/// output repeated under its key with other bytes (the test-only
/// `FTMB_TEST_DIVERGE=1`) is a divergence that fails the run.
#[test]
fn run_ft_reports_divergence_and_fails_on_a_planted_one() {
    let (code, err) = run_ft(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(", 0 divergent"), "{err}");
    let (code, err) = run_ft(&[("FTMB_TEST_DIVERGE", "1")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(", 1 divergent"), "{err}");
    assert!(err.contains("outputs diverged"), "{err}");
}
