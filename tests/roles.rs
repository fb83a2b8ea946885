//! The four roles as real processes over Unix sockets in a temp dir: no
//! role exits 0 because a peer died, and at a clean end every role exits
//! 0 on its own. A peer is killed (SIGKILL) as soon as the master says it
//! is connected to both loggers: the input is paced over seconds, so that
//! is mid-run, and nothing waits on a timer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_ftmb");

/// Grace period given to the roles for the input logger (ms).
const GRACE_MS: u64 = 400;

/// A role's process and where its stderr goes.
struct Role {
    name: &'static str,
    child: Child,
    stderr: PathBuf,
}

impl Role {
    /// Wait (up to `limit`) for the role to exit.
    fn exit(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                start.elapsed() < limit,
                "the {} did not exit within {limit:?}: {}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The roles of one run: input logger, output logger, replica, master.
struct Run {
    dir: tempfile::TempDir,
    il: Role,
    ol: Role,
    replica: Role,
    master: Role,
    ol_report: PathBuf,
}

/// Write a trace of `packets` packets to `path`.
fn gen_trace(path: &Path, packets: usize) {
    let st = Command::new(EXE)
        .args(["gen-trace", &path.display().to_string()])
        .args(["--flows", "200", "--packets", &packets.to_string()])
        .args(["--inside", "10.77.0.0/16", "--outside", "198.18.0.0/16"])
        .args(["--max-size", "200"])
        .stdout(Stdio::null())
        .status()
        .expect("gen-trace");
    assert!(st.success());
}

/// The built-in NAT's configuration.
fn nat_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nat.click")
}

/// Generate a trace of `packets` packets and start the four roles on the
/// built-in NAT, the input paced at `pps`; returns once the master says it
/// is connected to both loggers.
fn start(packets: usize, pps: u32) -> Run {
    start_with(packets, pps, true, |_| Vec::new())
}

/// As [`start`], with a standby replica or not, and more options for the
/// input logger (given the temp dir). Without a standby, `replica` is a
/// process that exits 0 at once (`true`), standing in for none.
fn start_with(
    packets: usize,
    pps: u32,
    standby: bool,
    il_extra: impl Fn(&Path) -> Vec<String>,
) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let trace = d.join("trace.pcap");
    gen_trace(&trace, packets);
    let cfg = nat_config();
    let common = |role: &str, out: &str| -> Vec<String> {
        vec![
            role.to_string(),
            cfg.display().to_string(),
            format!("IN={}", trace.display()),
            format!("OUT={out}"),
            format!("OUT2={out}"),
            "INSIDE=10.77.0.0/16".to_string(),
            "--il".into(),
            d.join("il.sock").display().to_string(),
            "--ol".into(),
            d.join("ol.sock").display().to_string(),
            "--il-grace-ms".into(),
            GRACE_MS.to_string(),
        ]
    };
    let spawn = |name: &'static str, args: Vec<String>, stdout: Stdio| -> Role {
        let stderr = d.join(format!("{name}.err"));
        let child = Command::new(EXE)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start a role");
        Role {
            name,
            child,
            stderr,
        }
    };
    let mut il_args = common("input-logger", "/dev/null");
    il_args.extend(["--pps".into(), pps.to_string()]);
    il_args.extend(il_extra(d));
    let il = spawn("input logger", il_args, Stdio::null());
    let fwd = d.join("fwd.pcap").display().to_string();
    let mut ol_args = common("output-logger", &fwd);
    ol_args.extend(["--deadline-ms".into(), "500".into()]);
    let ol_report = d.join("ol.json");
    let ol = spawn(
        "output logger",
        ol_args,
        std::fs::File::create(&ol_report).expect("report").into(),
    );
    let replica = if standby {
        spawn("replica", common("replica", "/dev/null"), Stdio::null())
    } else {
        Role {
            name: "no replica",
            child: Command::new("true").spawn().expect("true"),
            stderr: d.join("none.err"),
        }
    };
    let mut master = spawn("master", common("master", "/dev/null"), Stdio::piped());
    // The master's `ready` line: connected to both loggers, running.
    let out = master.child.stdout.take().expect("master stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("ready");
    assert_eq!(line.trim(), "ready", "{}", master.stderr());
    Run {
        dir,
        il,
        ol,
        replica,
        master,
        ol_report,
    }
}

/// `role` exited non-zero (within `limit`) and named `peer` in its error.
fn fails_naming(role: &mut Role, peer: &str, limit: Duration) {
    let st = role.exit(limit);
    let err = role.stderr();
    assert!(
        !st.success(),
        "the {} exited 0 after the {peer} died: {err}",
        role.name
    );
    assert!(
        err.lines()
            .filter(|l| l.contains("ERROR") || l.starts_with("Error"))
            .any(|l| l.contains(peer)),
        "the {} said no error naming the {peer}: {err}",
        role.name
    );
}

#[test]
fn killing_the_output_logger_fails_the_master_replica_and_input_logger() {
    // 40k packets at 10k/s: four seconds of input.
    let mut r = start(40_000, 10_000);
    let killed = Instant::now();
    r.ol.kill();
    // The master stops at once (well inside the heartbeat deadline it
    // would be judged by), not at the end of its input.
    fails_naming(&mut r.master, "output logger", Duration::from_secs(20));
    let master_after = killed.elapsed();
    fails_naming(&mut r.il, "output logger", Duration::from_secs(20));
    let il_after = killed.elapsed();
    // Waited for last: a replica killed off before it reached the output
    // logger gives up only after its connection retries (10 s), which must
    // not count against the input logger's time.
    fails_naming(&mut r.replica, "output logger", Duration::from_secs(20));
    // Neither runs on to the end of the input (four seconds).
    for (who, after) in [("master", master_after), ("input logger", il_after)] {
        assert!(
            after < Duration::from_secs(3),
            "the {who} ran on {after:?} after the output logger died"
        );
    }
}

#[test]
fn killing_the_input_logger_fails_the_master_and_output_logger_after_the_grace() {
    let mut r = start(40_000, 10_000);
    let killed = Instant::now();
    r.il.kill();
    fails_naming(&mut r.master, "input logger", Duration::from_secs(20));
    let master_after = killed.elapsed();
    fails_naming(&mut r.ol, "input logger", Duration::from_secs(20));
    let ol_after = killed.elapsed();
    // Not before the grace period: it waits for the input logger that long.
    for (who, after) in [("master", master_after), ("output logger", ol_after)] {
        assert!(
            after >= Duration::from_millis(GRACE_MS),
            "the {who} gave up on the input logger after {after:?}, inside the grace period"
        );
    }
    // The replica has no one left to take over from: it fails too (its
    // output logger went away without ending the run).
    let st = r.replica.exit(Duration::from_secs(20));
    assert!(!st.success(), "replica: {}", r.replica.stderr());
    let report = std::fs::read_to_string(&r.ol_report).expect("report");
    assert!(report.contains("input logger lost"), "{report}");
}

#[test]
fn killing_the_master_without_a_standby_fails_the_output_logger_and_input_logger() {
    let mut r = start_with(40_000, 10_000, false, |_| Vec::new());
    r.master.kill();
    fails_naming(&mut r.ol, "master", Duration::from_secs(20));
    // Told nothing, the input logger sees its control link end.
    fails_naming(&mut r.il, "output logger", Duration::from_secs(20));
    let report = std::fs::read_to_string(&r.ol_report).expect("report");
    assert!(report.contains("no standby replica"), "{report}");
}

#[test]
fn a_run_without_failure_ends_with_every_role_exiting_0() {
    let mut r = start(5_000, 20_000);
    let limit = Duration::from_secs(60);
    for role in [&mut r.master, &mut r.ol, &mut r.replica, &mut r.il] {
        let st = role.exit(limit);
        assert!(st.success(), "the {} failed: {}", role.name, role.stderr());
    }
    let report: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&r.ol_report)
            .expect("report")
            .trim(),
    )
    .expect("JSON report");
    assert!(report["failure"].is_null(), "{report}");
    assert!(report["released"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(
        report["detected_ns"].is_null(),
        "a failover happened: {report}"
    );
}

/// The segment files of a durable input log in `dir`, by first packet id.
fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ilseg"))
        .map(|p| {
            let id = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .expect("a segment named by its first id");
            (id, p)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_durable_input_log_is_collected_behind_committed_snapshots() {
    // 20k packets of up to 200 bytes in 64 KiB segments: dozens of them.
    let mut r = start_with(20_000, 20_000, true, |d| {
        vec![
            "--log-dir".into(),
            d.join("il-log").display().to_string(),
            "--log-segment-kb".into(),
            "64".into(),
        ]
    });
    let limit = Duration::from_secs(60);
    for role in [&mut r.master, &mut r.ol, &mut r.replica, &mut r.il] {
        let st = role.exit(limit);
        assert!(st.success(), "the {} failed: {}", role.name, role.stderr());
    }
    let report: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&r.ol_report)
            .expect("report")
            .trim(),
    )
    .expect("JSON report");
    assert!(report["snapshots"].as_u64().unwrap_or(0) > 0, "{report}");
    let segs = segments(&r.dir.path().join("il-log"));
    // Segments behind the committed snapshots' cuts are gone (the first
    // left starts past packet 1); the one holding the last cut is kept.
    let first = segs.first().expect("segments left").0;
    assert!(first > 1, "no segment was collected: {segs:?}");
    assert!(first <= 20_000, "{segs:?}");
}

/// Read an input logger's stream from `from` on until `EndOfStream`;
/// returns the id live traffic starts at and the packets (id, bytes).
fn read_from(addr: &Path, from: u64) -> (u64, Vec<(u64, Vec<u8>)>) {
    use ftmb_logger::client::{connect, resume, Addr};
    use ftmb_logger::wire::Message;
    let s = connect(&Addr::Unix(addr.to_path_buf()), Duration::from_secs(20)).expect("connect");
    let (live, mut r) = resume(&s, from).expect("resume");
    let mut got = Vec::new();
    loop {
        match r.next_message().expect("a frame") {
            Some(Message::Packet(p)) => got.push((p.id, p.data)),
            Some(Message::EndOfStream) => return (live, got),
            Some(_) => {}
            None => panic!("the stream ended without EndOfStream"),
        }
    }
}

#[test]
fn a_restarted_input_logger_recovers_its_torn_log_and_serves_from_a_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let trace = d.join("trace.pcap");
    const N: u64 = 3_000;
    gen_trace(&trace, N as usize);
    // A pcap with no packet: the restarted input logger only serves what
    // it recovered.
    let empty = d.join("empty.pcap");
    let mut hdr = Vec::new();
    for w in [0xa1b2_c3d4_u32.to_le_bytes(), [2, 0, 4, 0], [0; 4], [0; 4]] {
        hdr.extend_from_slice(&w);
    }
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    std::fs::write(&empty, hdr).expect("empty pcap");
    let log = d.join("il-log");
    let sock = d.join("il.sock");
    let input_logger = |input: &Path| -> Role {
        let stderr = d.join("il.err");
        let child = Command::new(EXE)
            .args(["input-logger", &nat_config().display().to_string()])
            .arg(format!("IN={}", input.display()))
            .args(["OUT=/dev/null", "OUT2=/dev/null", "INSIDE=10.77.0.0/16"])
            .args(["--il", &sock.display().to_string()])
            .args(["--ol", &d.join("ol.sock").display().to_string()])
            .args(["--log-dir", &log.display().to_string()])
            .args(["--log-segment-kb", "128"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start the input logger");
        Role {
            name: "input logger",
            child,
            stderr,
        }
    };
    let recovered = |role: &mut Role| -> serde_json::Value {
        let out = role.child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)
            .expect("recovery line");
        serde_json::from_str(line.trim()).expect("JSON")
    };

    // A first life: every packet logged (made durable before it is
    // forwarded, so all of it is on disk once read), then SIGKILL.
    let mut il = input_logger(&trace);
    let fresh = recovered(&mut il);
    assert_eq!(fresh["recovered"]["packets"], 0, "{fresh}");
    let (_, first) = read_from(&sock, 1);
    assert_eq!(first.len() as u64, N);
    il.kill();
    let _ = std::fs::remove_file(&sock);

    // Tear the last packet: its frame cut short, as by a crash mid-write.
    let segs = segments(&log);
    assert!(segs.len() > 1, "one segment only: {segs:?}");
    let (_, last) = segs.last().expect("a segment");
    let len = std::fs::metadata(last).expect("segment").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .expect("open segment");
    f.set_len(len - 5).expect("tear");
    drop(f);

    // The second life recovers every packet but the torn one, counts it,
    // and serves a consumer resuming from a cut, byte for byte.
    let mut il = input_logger(&empty);
    let rec = recovered(&mut il);
    assert_eq!(rec["recovered"]["packets"], N - 1, "{rec}");
    assert_eq!(rec["recovered"]["torn_packets"], 1, "{rec}");
    assert_eq!(rec["recovered"]["next_id"], N, "{rec}");
    let cut = 1_234;
    let (live, again) = read_from(&sock, cut);
    assert_eq!(live, N, "live traffic starts after the recovered log");
    let want: Vec<(u64, Vec<u8>)> = first
        .into_iter()
        .filter(|(id, _)| *id >= cut && *id < N)
        .collect();
    assert_eq!(again.len(), want.len());
    assert!(again == want, "the recovered packets differ");
    il.kill();
}

/// What `--log-dir` costs the input logger: packets per second served to
/// one consumer reading as fast as it can, from a 600k-packet trace, with
/// and without the durable log, alternating, twice each. A measurement,
/// not a check: `FTMB_BIN=target/release/ftmb cargo test --test roles
/// input_logger_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check: run by hand against a release build (see above)"]
fn input_logger_throughput() {
    let exe = std::env::var("FTMB_BIN").unwrap_or_else(|_| EXE.to_string());
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let trace = d.join("trace.pcap");
    const N: usize = 600_000;
    gen_trace(&trace, N);
    for round in 0..4 {
        let durable = round % 2 == 1;
        let sock = d.join(format!("il{round}.sock"));
        let log = d.join(format!("il-log{round}"));
        let stderr = d.join(format!("il{round}.err"));
        let mut cmd = Command::new(&exe);
        cmd.args(["input-logger", &nat_config().display().to_string()])
            .arg(format!("IN={}", trace.display()))
            .args(["OUT=/dev/null", "OUT2=/dev/null", "INSIDE=10.77.0.0/16"])
            .args(["--il", &sock.display().to_string()])
            .args(["--ol", &d.join("ol.sock").display().to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        if durable {
            cmd.args(["--log-dir", &log.display().to_string()]);
        }
        let mut il = Role {
            name: "input logger",
            child: cmd.spawn().expect("start"),
            stderr,
        };
        let start = Instant::now();
        let (_, got) = read_from(&sock, 1);
        let s = start.elapsed().as_secs_f64();
        assert_eq!(got.len(), N);
        let syncs = il
            .stderr()
            .lines()
            .find(|l| l.contains("sources done"))
            .and_then(|l| l.split("syncs=").nth(1))
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        eprintln!(
            "log-dir {durable:5}: {N} packets in {s:.3} s = {:.0} packets/s (syncs {syncs})",
            N as f64 / s
        );
        il.kill();
    }
}
