//! `ToSocket` in a configuration: a trace sent over a TCP connection
//! (framed) and over a Unix datagram socket, received by this test on
//! loopback or in its scratch directory; and the configurations it refuses.

use ftmb_testkit::{config_error, gen_trace, read_packets, run_config, sorted, Scratch};
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[test]
fn a_trace_goes_out_over_tcp_framed_whatever_the_workers() {
    let s = Scratch::new();
    let trace = gen_trace(&s, "in.pcap", 3000, 300, 5);
    let want = sorted(read_packets(&trace));
    for threads in [1, 2] {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port().to_string();
        let rx = std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            let mut got = Vec::new();
            c.read_to_end(&mut got).expect("read");
            got
        });
        let cfg = "FromDump($IN, STOP true) -> ToSocket(TCP, 127.0.0.1, $PORT, FRAME true);";
        let (_, report) = run_config(cfg, &[("IN", &trace), ("PORT", &port)], threads);
        // The router is done and its sinks dropped: the stream ends.
        drop(report);
        let bytes = rx.join().expect("receiver");
        let mut frames = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().expect("length")) as usize;
            frames.push(rest[4..len].to_vec());
            rest = &rest[len..];
        }
        assert_eq!(sorted(frames), want, "{threads} worker(s)");
    }
}

#[test]
fn a_trace_goes_out_as_unix_datagrams() {
    let s = Scratch::new();
    let trace = gen_trace(&s, "in.pcap", 500, 50, 9);
    let want = read_packets(&trace);
    let path = s.s("out.sock");
    let rx = UnixDatagram::bind(&path).expect("bind");
    rx.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let n = want.len();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        (0..n)
            .map(|_| {
                let k = rx.recv(&mut buf).expect("datagram");
                buf[..k].to_vec()
            })
            .collect::<Vec<_>>()
    });
    let cfg = "FromDump($IN, STOP true) -> ToSocket(UNIX_DGRAM, $OUT);";
    run_config(cfg, &[("IN", &trace), ("OUT", &path)], 1);
    // One worker: the datagrams in trace order.
    assert_eq!(reader.join().expect("receiver"), want);
}

#[test]
fn bad_socket_arguments_are_configuration_errors() {
    let s = Scratch::new();
    let trace = gen_trace(&s, "in.pcap", 10, 2, 1);
    for (cfg, says) in [
        (
            "FromDump($IN) -> ToSocket();",
            "missing required argument TYPE",
        ),
        (
            "FromDump($IN) -> ToSocket(SCTP, 1.2.3.4, 5);",
            "unknown socket TYPE",
        ),
        ("FromDump($IN) -> ToSocket(TCP, 1.2.3.4);", "PORT"),
        (
            "FromDump($IN) -> ToSocket(UDP, 1.2.3.4, 0);",
            "PORT must not be 0",
        ),
        (
            "FromDump($IN) -> ToSocket(UDP, 1.2.3.4, 9, FRAME true);",
            "FRAME is for streams",
        ),
        ("FromDump($IN) -> ToSocket(UDP, nowhere, 9);", "ADDR"),
    ] {
        let e = config_error(cfg, &[("IN", &trace)]);
        assert!(e.contains(says), "{cfg}: {e}");
    }
}
