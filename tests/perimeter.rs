//! The `ftmb` binary as a careful daemon: bad configuration values and
//! flags are clear errors with a non-zero exit (never an abort, a panic or
//! a hang), `check` and the roles other than the output logger leave the
//! output files alone, a socket path never replaces a file that is not a
//! socket, and the demo works in a private directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn ftmb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ftmb"))
        .args(args)
        .output()
        .expect("run ftmb")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit status is a plain non-zero code: no signal (SIGABRT from an
/// allocation failure), no panic (101).
fn failed_cleanly(o: &Output, what: &str) {
    let code = o.status.code();
    assert!(
        matches!(code, Some(c) if c != 0 && c != 101),
        "{what}: want a clean failure, got {:?}:\n{}",
        o.status,
        stderr(o)
    );
    assert!(!stderr(o).contains("panicked"), "{what}:\n{}", stderr(o));
}

fn trace(dir: &Path) -> String {
    let t = dir.join("in.pcap");
    let o = ftmb(&[
        "gen-trace",
        "--packets",
        "50",
        "--flows",
        "5",
        t.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    t.display().to_string()
}

#[test]
fn check_refuses_absurd_values_cycles_and_empty_configs_with_a_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = trace(dir.path());
    let cases = [
        (
            "src :: FromDump($IN);\nsrc -> Gen(SLOTS 4000000000) -> Discard;\n",
            ":2:12",
            "SLOTS 4000000000 is more than the maximum",
        ),
        (
            "src :: FromDump($IN);\nsrc -> Gen(STATE_SIZE 4000000000) -> Discard;\n",
            ":2:12",
            "STATE_SIZE 4000000000 is more than the maximum",
        ),
        (
            "src :: FromDump($IN);\nsrc -> t :: Tee(4000000000);\nt[0] -> Discard;\n",
            ":2:17",
            "N 4000000000 is more than the maximum",
        ),
        (
            "src :: FromDump($IN);\nsrc -> Firewall(allow all, SLOTS 4000000000) -> Discard;\n",
            ":2:28",
            "SLOTS 4000000000 is more than the maximum",
        ),
        (
            "src :: FromDump($IN);\nsrc -> Monitor(SLOTS 4000000000) -> Discard;\n",
            ":2:16",
            "SLOTS 4000000000 is more than the maximum",
        ),
        (
            "src :: FromDump($IN);\nsrc -> t :: Tee(2);\nt[0] -> c :: Counter -> t;\nt[1] -> Discard;\n",
            ":2:8",
            "push cycle: t -> c -> t",
        ),
        ("", ":1:1", "the configuration declares no elements"),
    ];
    for (i, (text, loc, msg)) in cases.iter().enumerate() {
        let cfg = dir.path().join(format!("c{i}.click"));
        std::fs::write(&cfg, text).expect("write config");
        let cfg = cfg.display().to_string();
        let vars = format!("IN={t}");
        let o = ftmb(&["check", &cfg, &vars]);
        failed_cleanly(&o, msg);
        let e = stderr(&o);
        assert!(
            e.contains(&format!("{cfg}{loc}")),
            "want {cfg}{loc} in:\n{e}"
        );
        assert!(e.contains(msg), "want {msg} in:\n{e}");
        // `run` refuses it the same way, before running anything (the
        // cycle used to spin forever there).
        let o = ftmb(&["run", "-q", &cfg, &vars]);
        failed_cleanly(&o, msg);
        assert!(stderr(&o).contains(msg), "run:\n{}", stderr(&o));
    }
}

#[test]
fn threads_out_of_range_are_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = trace(dir.path());
    let cfg = dir.path().join("c.click");
    std::fs::write(&cfg, "FromDump($IN) -> Discard;\n").expect("write");
    let cfg = cfg.display().to_string();
    let vars = format!("IN={t}");
    for n in ["5000", "0", "257", "many"] {
        let o = ftmb(&["run", "-q", "-t", n, &cfg, &vars]);
        failed_cleanly(&o, n);
        assert!(stderr(&o).contains("threads"), "-t {n}:\n{}", stderr(&o));
    }
    for role in ["master", "input-logger", "replica", "output-logger"] {
        let o = ftmb(&[
            role,
            &cfg,
            &vars,
            "--threads",
            "5000",
            "--il",
            "a",
            "--ol",
            "b",
        ]);
        failed_cleanly(&o, role);
        assert!(stderr(&o).contains("1 to 256"), "{role}:\n{}", stderr(&o));
    }
    let o = ftmb(&["run", "-q", "--batch", "4000000000", &cfg, &vars]);
    failed_cleanly(&o, "--batch 4000000000");
    assert!(stderr(&o).contains("from 1 to 65536"), "{}", stderr(&o));
    let o = ftmb(&["run", "-q", "-t", "256", &cfg, &vars]);
    assert!(o.status.success(), "256 threads: {}", stderr(&o));
}

#[test]
fn check_and_the_input_logger_leave_output_files_and_regular_files_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = trace(dir.path());
    let out = dir.path().join("out.pcap");
    let out2 = dir.path().join("no/such/dir/out2.pcap");
    std::fs::write(&out, b"precious").expect("write");
    let cfg = dir.path().join("c.click");
    std::fs::write(
        &cfg,
        "src :: FromDump($IN);\nsrc -> t :: Tee(2);\nt[0] -> ToDump($OUT);\nt[1] -> ToDump($OUT2);\n",
    )
    .expect("write");
    let cfg = cfg.display().to_string();
    let vars = [
        format!("IN={t}"),
        format!("OUT={}", out.display()),
        format!("OUT2={}", out2.display()),
    ];
    let mut args = vec!["check", cfg.as_str()];
    args.extend(vars.iter().map(|s| s.as_str()));
    let o = ftmb(&args);
    assert!(o.status.success(), "check: {}", stderr(&o));
    assert_eq!(std::fs::read(&out).expect("kept"), b"precious");
    assert!(!out2.exists());

    // The input logger, told to listen on a regular file: a clear error,
    // the file intact, and its sinks (built with the graph) never opened.
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, b"do not delete").expect("write");
    let mut args = vec!["input-logger", cfg.as_str()];
    args.extend(vars.iter().map(|s| s.as_str()));
    let il = victim.display().to_string();
    args.extend(["--il", &il, "--ol", "unused.sock"]);
    let o = ftmb(&args);
    failed_cleanly(&o, "input logger on a regular file");
    assert!(
        stderr(&o).contains("refusing to replace it with a socket"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&victim).expect("kept"), b"do not delete");
    assert_eq!(std::fs::read(&out).expect("kept"), b"precious");
    assert!(!out2.exists());
}

/// The demo, kept: its directory is private (0700, a random name, not the
/// process id), its sockets 0600, and every role ran with the same
/// variables: only the output logger opened `$OUT` and `$OUT2`, so the
/// pcap files hold every released output (a master that opened them too
/// would have replaced them with empty files).
#[test]
fn the_demo_works_in_a_private_directory_and_only_the_output_logger_writes_outputs() {
    let child = Command::new(env!("CARGO_BIN_EXE_ftmb"))
        .args([
            "demo",
            "--json",
            "--keep",
            "--packets",
            "4000",
            "--flows",
            "400",
            "--pps",
            "40000",
            "--snapshot-ms",
            "20",
            "--kill-ms",
            "40",
            "--deadline-ms",
            "500",
            "--threads",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the demo");
    let pid = child.id();
    let o = child.wait_with_output().expect("the demo");
    assert!(o.status.success(), "demo: {}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    let dir = std::path::PathBuf::from(r["outputs_in"].as_str().expect("outputs_in"));
    let cleanup = tempfile::TempDir::new_in(dir.parent().expect("parent")).expect("guard");
    // Moved under a guard so that the test removes it whatever happens.
    let kept = cleanup.path().join("kept");
    std::fs::rename(&dir, &kept).expect("move the kept directory");
    assert!(stderr(&o).contains(&dir.display().to_string()), "printed");
    let name = dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("ftmb-demo-"), "{name}");
    assert_ne!(name, format!("ftmb-demo-{pid}"), "a predictable name");
    let mode = std::fs::metadata(&kept).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "directory mode {mode:o}");
    for s in ["il.sock", "ol.sock", "ol.sock.hb"] {
        if let Ok(m) = std::fs::metadata(kept.join(s)) {
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{s}");
        }
    }
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicated"], 0, "{r}");
    let released = r["released"].as_u64().expect("released");
    assert_eq!(released, 4000, "{r}");
    let written: usize = ["fwd.pcap", "rev.pcap"]
        .iter()
        .map(|f| count_packets(&kept.join(f)))
        .sum();
    assert_eq!(written as u64, released, "pcap files vs released: {r}");
}

fn count_packets(p: &Path) -> usize {
    let mut r = ftmb_core::trace::TraceReader::open(p).expect("a pcap");
    let mut n = 0;
    while let Some(rec) = r.next_record() {
        rec.expect("valid record");
        n += 1;
    }
    n
}
