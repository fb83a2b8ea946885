//! Configurations that would take absurd memory, loop forever or do
//! nothing are configuration errors with file:line:column, never an abort;
//! and a graph built without opening its sinks leaves their files alone.

use ftmb_core::config::Source;
use ftmb_core::egress::SinkMode;
use ftmb_core::graph::build_with;
use ftmb_testkit::*;

/// Build `config` (one worker, sinks opened): the rendered error if any.
fn builds(config: &str, vars: &[(&str, &str)]) -> Result<(), String> {
    let source = Source {
        name: "ok.click".into(),
        text: config.into(),
    };
    ftmb_core::graph::build(&source, &vars_of(vars), &ftmb_elements::registry(), 1)
        .map(drop)
        .map_err(|e| e.render(false))
}

/// `config` must fail at `loc` (file:line:col prefix) with `msg` in it.
fn refused(config: &str, loc: &str, msg: &str, vars: &[(&str, &str)]) {
    let e = config_error(config, vars);
    assert!(e.contains(loc), "want {loc} in:\n{e}");
    assert!(e.contains(msg), "want {msg} in:\n{e}");
    assert!(e.lines().count() < 25, "one screen:\n{e}");
}

#[test]
fn sizes_beyond_their_maximum_point_at_the_argument() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 10, 2, 1);
    let v = [("IN", t.as_str())];
    let head = "src :: FromDump($IN);\n";
    let cases = [
        // Each of these aborted the process (allocation failure) before.
        (
            "src -> Gen(SLOTS 4000000000) -> Discard;",
            "bad.click:2:12",
            "Gen: SLOTS 4000000000 is more than the maximum, 1048576",
        ),
        (
            "src -> Gen(STATE_SIZE 4000000000) -> Discard;",
            "bad.click:2:12",
            "STATE_SIZE 4000000000 is more than the maximum, 1048576",
        ),
        (
            // Each within its own maximum, 1 TiB together.
            "src -> Gen(SLOTS 1048576, STATE_SIZE 1048576) -> Discard;",
            "bad.click:2:12",
            "more than the maximum, 1073741824 (1 GiB)",
        ),
        (
            "src -> Gen(ACCESSES 99999999999) -> Discard;",
            "bad.click:2:12",
            "ACCESSES 99999999999 is more than the maximum, 65536",
        ),
        (
            "src -> Gen(SLOTS 0) -> Discard;",
            "bad.click:2:12",
            "SLOTS 0 is less than the minimum, 1",
        ),
        (
            "src -> t :: Tee(4000000000);\nt[0] -> Discard;",
            "bad.click:2:17",
            "Tee: N 4000000000 is more than the maximum, 1024",
        ),
        (
            "src -> t :: Tee(0);\nt[0] -> Discard;",
            "bad.click:2:17",
            "N 0 is less than the minimum, 1",
        ),
        (
            "src -> Firewall(allow all, SLOTS 4000000000) -> Discard;",
            "bad.click:2:28",
            "Firewall: SLOTS 4000000000 is more than the maximum, 1048576",
        ),
        (
            "src -> Firewall(allow all, CAPACITY 99999999999) -> Discard;",
            "bad.click:2:28",
            "CAPACITY 99999999999 is more than the maximum, 67108864",
        ),
        (
            "src -> Monitor(SLOTS 4000000000) -> Discard;",
            "bad.click:2:16",
            "Monitor: SLOTS 4000000000 is more than the maximum, 1048576",
        ),
        (
            "src -> LoadBalancer(VIP 192.0.2.1, BACKENDS 10.1.0.1, SLOTS 4000000000) -> Discard;",
            "bad.click:2:55",
            "LoadBalancer: SLOTS 4000000000 is more than the maximum, 1048576",
        ),
        (
            "src -> LoadBalancer(VIP 192.0.2.1, BACKENDS 10.1.0.1, CAPACITY 4000000000) -> Discard;",
            "bad.click:2:55",
            "CAPACITY 4000000000 is more than the maximum, 67108864",
        ),
        (
            // A port number in the text reserves nothing either.
            "src -> t :: Tee;\nt[0] -> Discard;\nt[4000000000] -> Discard;",
            "bad.click:",
            "output 1 of `t` (Tee) is not connected",
        ),
    ];
    for (body, loc, msg) in cases {
        refused(&format!("{head}{body}"), loc, msg, &v);
    }
    // The maxima themselves are accepted.
    builds(
        &format!("{head}src -> Gen(SLOTS 1024, STATE_SIZE 1048576) -> Discard;"),
        &v,
    )
    .expect("Gen at its maxima");
    let tee: String = (0..1024).map(|i| format!("t[{i}] -> Discard;\n")).collect();
    builds(&format!("{head}src -> t :: Tee(1024);\n{tee}"), &v).expect("Tee(1024)");
}

#[test]
fn a_push_cycle_is_an_error_at_an_element_of_it() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 10, 2, 1);
    let v = [("IN", t.as_str())];
    // This passed `check` and then spun forever in `run`.
    refused(
        "src :: FromDump($IN);\nsrc -> t :: Tee(2);\nt[0] -> c :: Counter -> t;\nt[1] -> Discard;",
        "bad.click:2:8",
        "push cycle: t -> c -> t",
        &v,
    );
    // A self-loop through a classifier's second output.
    refused(
        "src :: FromDump($IN);\nsrc -> cl :: Classifier(12/0800, -);\ncl[0] -> Discard;\ncl[1] -> p :: Paint(1) -> cl;",
        "bad.click:",
        "push cycle: ",
        &v,
    );
    // A diamond (two paths meeting again) is not a cycle.
    let ok = "src :: FromDump($IN);\nsrc -> t :: Tee(2);\nt[0] -> a :: Counter -> d :: Discard;\nt[1] -> b :: Counter -> a;";
    builds(ok, &v).expect("a diamond is no cycle");
}

#[test]
fn an_empty_configuration_is_an_error() {
    for text in ["", "  \n", "// only a comment\n"] {
        let e = config_error(text, &[]);
        assert!(
            e.contains("the configuration declares no elements"),
            "{text:?}:\n{e}"
        );
        assert!(e.contains("bad.click:1:1"), "{text:?}:\n{e}");
    }
}

#[test]
fn a_graph_built_without_sinks_opens_no_file() {
    let s = Scratch::new();
    let t = gen_trace(&s, "in.pcap", 10, 2, 1);
    let out = s.path("out.pcap");
    std::fs::write(&out, b"precious").expect("write");
    // A sink in a directory that does not exist: opening it would fail.
    let missing = s.path("no/such/dir/out2.pcap");
    let source = Source {
        name: "sinks.click".into(),
        text: "src :: FromDump($IN);\nsrc -> t :: Tee(2);\nt[0] -> ToDump($OUT);\nt[1] -> ToDump($OUT2);"
            .into(),
    };
    let vars = vars_of(&[
        ("IN", t.as_str()),
        ("OUT", out.to_str().expect("utf-8")),
        ("OUT2", missing.to_str().expect("utf-8")),
    ]);
    let g = build_with(
        &source,
        &vars,
        &ftmb_elements::registry(),
        2,
        SinkMode::Unopened,
    )
    .expect("builds without opening its sinks");
    assert_eq!(g.sinks.sinks().len(), 2);
    assert_eq!(std::fs::read(&out).expect("still there"), b"precious");
    assert!(!missing.exists());
    // Writing to an unopened sink is an error, never a silent drop.
    let pkt = ftmb_core::packet::Packet::from_bytes(&[0u8; 60]);
    let r = g.sinks.sinks()[0].egress.lock().write(&[pkt]);
    assert!(r.is_err());
    assert_eq!(std::fs::read(&out).expect("still there"), b"precious");

    // Opened, the same build truncates `$OUT` and fails on `$OUT2`: the
    // mode is what kept them.
    let e = build_with(
        &source,
        &vars,
        &ftmb_elements::registry(),
        2,
        SinkMode::Open,
    )
    .err()
    .expect("the missing directory fails when opened");
    assert!(
        e.render(false).contains("cannot create"),
        "{}",
        e.render(false)
    );
}
