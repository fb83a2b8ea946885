//! The kill-the-primary demo as a test: the four roles as real processes,
//! the master SIGKILLed at several seeded points; nothing released may be
//! lost, duplicated or inconsistent with one NAT mapping per flow. Then
//! the same with other configurations (`--config`).

use ftmb_testkit::xorshift;
use std::process::Command;

/// Run `ftmb demo --json` with the small test settings and `extra`, and
/// return its report after checking that it succeeded. Unless `extra`
/// says otherwise the failure detector's deadline is 500 ms: a SIGKILL is
/// seen at once (the stream ends), and a long deadline keeps a loaded
/// test machine from taking a slow master for a dead one.
fn demo(extra: &[&str], kill_ms: u64) -> serde_json::Value {
    demo_env(extra, kill_ms, &[])
}

/// [`demo`] with `env` set in the demo's environment (and so its roles').
fn demo_env(extra: &[&str], kill_ms: u64, env: &[(&str, &str)]) -> serde_json::Value {
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
            "20000",
            "--flows",
            "2000",
            "--pps",
            "40000",
            "--snapshot-ms",
            "20",
            "--kill-ms",
            &kill_ms.to_string(),
        ])
        .args(deadline)
        .args(extra)
        .env_remove("FTMB_TEST_DIVERGE")
        .envs(env.iter().copied())
        .output()
        .expect("run ftmb demo");
    assert!(
        out.status.success(),
        "demo {extra:?} failed (kill at {kill_ms} ms): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).expect("JSON report")
}

/// Everything a report of a failover must say: nothing lost, duplicated
/// or inconsistent, no replayed output that differs from the one released
/// under its key, no error, and the replica took over and replayed.
fn check_failover(r: &serde_json::Value, what: &str) {
    assert_eq!(r["lost"], 0, "{what}: {r}");
    assert_eq!(r["duplicated"], 0, "{what}: {r}");
    assert_eq!(r["divergence"], 0, "{what}: {r}");
    assert_eq!(r["consistent"], true, "{what}: {r}");
    assert_eq!(r["released"], 20000, "{what}: {r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{what}: {r}");
    assert_eq!(r["took_over"], true, "{what}: {r}");
    assert!(
        r["replayed_packets"].as_u64().is_some_and(|n| n > 0),
        "{what}: nothing replayed: {r}"
    );
}

#[test]
fn sigkill_the_master_at_seeded_points() {
    let mut rng = 0x00c0_ffee_u64;
    for trial in 0..4 {
        // 20k packets at 40k/s: half a second of traffic.
        let kill_ms = 50 + xorshift(&mut rng) % 400;
        let threads = 1 + trial % 2;
        // The last trial links the roles over TCP (loopback), as across
        // hosts.
        let transport: &[&str] = if trial == 3 { &["--tcp"] } else { &[] };
        let threads = threads.to_string();
        let mut extra = vec!["--threads", &threads];
        extra.extend_from_slice(transport);
        let r = demo(&extra, kill_ms);
        check_failover(&r, &format!("kill at {kill_ms} ms"));
    }
}

/// Other configurations through the same failover: the Monitor with
/// counters shared by both workers (every packet's access logged), and the
/// load balancer, whose per-flow backend must not change across it.
#[test]
fn sigkill_the_master_of_other_configurations() {
    let root = env!("CARGO_MANIFEST_DIR");
    let monitor = format!("{root}/examples/monitor.click");
    let lb = format!("{root}/examples/loadbalancer.click");
    let runs: [(&[&str], u64); 2] = [
        (&["--config", &monitor, "--var", "SHARING=2"], 230),
        (&["--config", &lb], 170),
    ];
    for (extra, kill_ms) in runs {
        let r = demo(extra, kill_ms);
        check_failover(&r, &format!("{extra:?}"));
        assert_eq!(r["config"], extra[1], "{extra:?}: {r}");
    }
}

/// A master that hangs (SIGSTOP) instead of dying: its sockets stay open,
/// only the heartbeat deadline tells. Stopped for good, the replica must
/// still get its input (the input logger must not wait on the hung
/// master's full socket); let go on mid-run, what it still sends must be
/// fenced off.
#[test]
fn a_hung_master_is_replaced_and_fenced_off() {
    for extra in [
        &["--hang", "--deadline-ms", "100", "--threads", "2"][..],
        &["--hang", "--deadline-ms", "100", "--resume-ms", "150"][..],
    ] {
        let r = demo(extra, 200);
        assert_eq!(r["failure"], "hang", "{extra:?}: {r}");
        check_failover(&r, &format!("{extra:?}"));
    }
}

/// The demo's checks must be able to fail: a replica that corrupts every
/// output it replays (the test-only `FTMB_TEST_DIVERGE=1`) releases
/// nothing twice and loses nothing, yet the output logger finds the
/// replayed duplicates differ from what the master released, and the
/// demo calls the run inconsistent.
#[test]
fn a_planted_divergence_makes_the_demo_inconsistent() {
    let r = demo_env(&["--threads", "2"], 250, &[("FTMB_TEST_DIVERGE", "1")]);
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
