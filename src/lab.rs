//! `ftmb lab-server` and `ftmb lab-client`: long-lived TCP connections and
//! UDP flows through a middlebox, each echoing small messages at a steady
//! rate, measuring per flow the longest gap between successive echoes (the
//! stall a failover causes), each echo's round trip (from the send time it
//! carries), resets and reconnects, and which translated address and port
//! the server saw (the server puts it in every echo).
//! `scripts/lab.sh` runs them across a NAT in network namespaces.
//!
//! Messages (client to server, 32 bytes): magic `FTLB`, flow id (u32), seq
//! (u64), send time (u64 ns), 8 bytes of zero. The echo is the message
//! followed by the peer address the server saw: IPv4 (4 bytes), port (u16),
//! two bytes of zero. All big-endian.

use anyhow::{Context, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAGIC: &[u8; 4] = b"FTLB";
const MSG: usize = 32;
const ECHO: usize = 40;

/// `ftmb lab-server` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Address to listen on (TCP and UDP, same port).
    #[arg(long, default_value = "0.0.0.0:7000")]
    pub listen: SocketAddrV4,
}

/// `ftmb lab-client` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientArgs {
    /// The server (TCP and UDP, same port).
    #[arg(long)]
    pub server: SocketAddrV4,
    /// Long-lived TCP connections.
    #[arg(long, default_value_t = 100)]
    pub tcp: usize,
    /// UDP flows.
    #[arg(long, default_value_t = 10)]
    pub udp: usize,
    /// Milliseconds between a flow's messages.
    #[arg(long, default_value_t = 20)]
    pub interval_ms: u64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Write one JSON line per flow here.
    #[arg(long)]
    pub detail: Option<std::path::PathBuf>,
    /// Seconds into the run to mark (and, with `--kill-pid`, to SIGKILL
    /// that process: the master). Each flow reports the gap between its
    /// last echo before the mark and its first echo after it.
    #[arg(long)]
    pub kill_after: Option<f64>,
    /// The process to SIGKILL at `--kill-after`.
    #[arg(long)]
    pub kill_pid: Option<u32>,
    /// Seconds at the start whose gaps do not count towards the longest
    /// gap (opening the connections and starting the threads).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
}

fn endpoint(b: &[u8]) -> SocketAddrV4 {
    let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    SocketAddrV4::new(ip, u16::from_be_bytes([b[4], b[5]]))
}

fn echo_of(msg: &[u8], peer: SocketAddr) -> Option<[u8; ECHO]> {
    if msg.len() < MSG || &msg[..4] != MAGIC {
        return None;
    }
    let SocketAddr::V4(p) = peer else { return None };
    let mut e = [0u8; ECHO];
    e[..MSG].copy_from_slice(&msg[..MSG]);
    e[MSG..MSG + 4].copy_from_slice(&p.ip().octets());
    e[MSG + 4..MSG + 6].copy_from_slice(&p.port().to_be_bytes());
    Some(e)
}

/// Echo on TCP and UDP until killed.
pub fn server(a: &ServerArgs) -> Result<()> {
    let tcp = TcpListener::bind(a.listen).with_context(|| format!("listen on {}", a.listen))?;
    let udp = UdpSocket::bind(a.listen).with_context(|| format!("bind UDP {}", a.listen))?;
    std::thread::Builder::new()
        .name("lab-udp".into())
        .spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                if let Some(e) = echo_of(&buf[..n], peer) {
                    let _ = udp.send_to(&e, peer);
                }
            }
        })?;
    eprintln!("lab-server: listening on {} (tcp, udp)", a.listen);
    for conn in tcp.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = std::thread::Builder::new()
            .name("lab-conn".into())
            .spawn(move || {
                let Ok(peer) = s.peer_addr() else { return };
                let _ = s.set_nodelay(true);
                let mut m = [0u8; MSG];
                while s.read_exact(&mut m).is_ok() {
                    match echo_of(&m, peer) {
                        Some(e) if s.write_all(&e).is_ok() => {}
                        _ => return,
                    }
                }
            });
    }
    Ok(())
}

/// What one flow saw.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FlowReport {
    /// Flow id.
    pub id: u32,
    /// "tcp" or "udp".
    pub proto: &'static str,
    /// Messages sent.
    pub sent: u64,
    /// Echoes received.
    pub echoed: u64,
    /// Longest gap between successive echoes, milliseconds.
    pub max_gap_ms: f64,
    /// When that gap ended, ns since the epoch.
    pub max_gap_end_ns: u64,
    /// The gap between the last echo before the mark (the kill) and the
    /// first after it, milliseconds: the stall the failover caused.
    pub mark_gap_ms: Option<f64>,
    /// Connections that failed (reset, closed, timed out).
    pub resets: u64,
    /// New connections made after a failure.
    pub reconnects: u64,
    /// Echoes out of order or duplicated (UDP).
    pub out_of_order: u64,
    /// Every distinct translated address:port the server reported, in
    /// order of first sight.
    pub endpoints: Vec<String>,
    /// Round trip of every echo after the warm-up, microseconds (summed up
    /// over all flows in the report, not listed per flow).
    #[serde(skip)]
    pub rtt_us: Vec<u32>,
}

impl FlowReport {
    fn saw(&mut self, ep: SocketAddrV4) {
        let s = ep.to_string();
        if !self.endpoints.contains(&s) {
            self.endpoints.push(s);
        }
    }
}

fn wall_ns() -> u64 {
    ftmb_core::router::wall_ns()
}

fn message(id: u32, seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..4].copy_from_slice(MAGIC);
    m[4..8].copy_from_slice(&id.to_be_bytes());
    m[8..16].copy_from_slice(&seq.to_be_bytes());
    m[16..24].copy_from_slice(&wall_ns().to_be_bytes());
    m
}

fn seq_of(e: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&e[8..16]);
    u64::from_be_bytes(b)
}

/// When the message was sent (ns since the epoch), from its echo.
fn sent_ns_of(e: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&e[16..24]);
    u64::from_be_bytes(b)
}

/// Gap bookkeeping for one flow.
struct Gaps {
    last: Option<u64>,
    /// The mark (ns since the epoch; 0 until it is set).
    mark: Arc<AtomicU64>,
    /// Gaps ending before this (ns since the epoch) are warm-up.
    counted_from: u64,
}

impl Gaps {
    fn new(mark: &Arc<AtomicU64>, counted_from: u64) -> Gaps {
        Gaps {
            last: None,
            mark: mark.clone(),
            counted_from,
        }
    }

    /// A whole echo `e` came back (its message carries its send time).
    fn echo(&mut self, r: &mut FlowReport, e: &[u8]) {
        let now = wall_ns();
        if now >= self.counted_from {
            let rtt = now.saturating_sub(sent_ns_of(e)) / 1_000;
            r.rtt_us.push(u32::try_from(rtt).unwrap_or(u32::MAX));
        }
        if let Some(l) = self.last {
            let g = now.saturating_sub(l) as f64 / 1e6;
            if g > r.max_gap_ms && now >= self.counted_from {
                r.max_gap_ms = g;
                r.max_gap_end_ns = now;
            }
            let m = self.mark.load(Ordering::Acquire);
            if m != 0 && l < m && now >= m {
                r.mark_gap_ms = Some(g);
            }
        }
        self.last = Some(now);
        r.echoed += 1;
    }
}

/// What one client flow thread is given.
struct FlowPlan {
    id: u32,
    server: SocketAddrV4,
    /// Between two messages.
    interval: Duration,
    /// Delay before the first message (spreads the flows over an interval).
    phase: Duration,
    stop: Arc<AtomicBool>,
    /// The mark (ns since the epoch; 0 until it is set).
    mark: Arc<AtomicU64>,
    /// Gaps ending before this (ns since the epoch) are warm-up.
    counted_from: u64,
}

fn tcp_flow(plan: FlowPlan) -> FlowReport {
    let FlowPlan {
        id,
        server,
        interval,
        phase,
        stop,
        mark,
        counted_from,
    } = plan;
    let r = Arc::new(Mutex::new(FlowReport {
        id,
        proto: "tcp",
        ..FlowReport::default()
    }));
    let mut first = true;
    while !stop.load(Ordering::Acquire) {
        if !first {
            std::thread::sleep(Duration::from_millis(100));
            if stop.load(Ordering::Acquire) {
                break;
            }
        }
        let s = match TcpStream::connect_timeout(&SocketAddr::V4(server), Duration::from_secs(3)) {
            Ok(s) => s,
            Err(_) => {
                lock(&r).resets += 1;
                first = false;
                continue;
            }
        };
        if !first {
            lock(&r).reconnects += 1;
        }
        first = false;
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let Ok(mut ws) = s.try_clone() else { continue };
        let broken = Arc::new(AtomicBool::new(false));
        // Sender: one message per interval, on schedule.
        let sender = {
            let (stop, broken, r) = (stop.clone(), broken.clone(), r.clone());
            std::thread::spawn(move || {
                let mut next = Instant::now() + phase;
                let mut seq = 0u64;
                while !stop.load(Ordering::Acquire) && !broken.load(Ordering::Acquire) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep(next - now);
                        continue;
                    }
                    next += interval;
                    if ws.write_all(&message(id, seq)).is_err() {
                        broken.store(true, Ordering::Release);
                        break;
                    }
                    seq += 1;
                    lock(&r).sent += 1;
                }
            })
        };
        // Receiver: echoes until the sender stops and all are back, or the
        // connection fails.
        let mut rs = s;
        let mut gaps = Gaps::new(&mark, counted_from);
        let mut acc: Vec<u8> = Vec::with_capacity(4 * ECHO);
        let mut tmp = [0u8; 4096];
        let mut expect = 0u64;
        let mut drain_until: Option<Instant> = None;
        let failed = loop {
            if stop.load(Ordering::Acquire) {
                let d = *drain_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(3));
                let rep = lock(&r);
                if rep.echoed >= rep.sent || Instant::now() > d {
                    break false;
                }
            }
            match rs.read(&mut tmp) {
                Ok(0) => break true,
                Ok(k) => {
                    acc.extend_from_slice(&tmp[..k]);
                    let mut rep = lock(&r);
                    let mut off = 0;
                    while acc.len() - off >= ECHO {
                        let e = &acc[off..off + ECHO];
                        if seq_of(e) != expect {
                            rep.out_of_order += 1;
                        }
                        expect = seq_of(e) + 1;
                        rep.saw(endpoint(&e[MSG..]));
                        gaps.echo(&mut rep, e);
                        off += ECHO;
                    }
                    acc.drain(..off);
                }
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if broken.load(Ordering::Acquire) {
                        break true;
                    }
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        broken.store(true, Ordering::Release);
        let _ = rs.shutdown(std::net::Shutdown::Both);
        let _ = sender.join();
        if failed && !stop.load(Ordering::Acquire) {
            lock(&r).resets += 1;
        } else {
            break;
        }
    }
    let out = lock(&r).clone();
    out
}

fn udp_flow(plan: FlowPlan) -> FlowReport {
    let FlowPlan {
        id,
        server,
        interval,
        phase,
        stop,
        mark,
        counted_from,
    } = plan;
    let mut r = FlowReport {
        id,
        proto: "udp",
        ..FlowReport::default()
    };
    let Ok(s) = UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(server).map(|_| s)) else {
        r.resets += 1;
        return r;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(5)));
    let mut gaps = Gaps::new(&mark, counted_from);
    let mut next = Instant::now() + phase;
    let mut seq = 0u64;
    let mut best = None::<u64>;
    let mut buf = [0u8; 128];
    let mut drain_until = None;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if stopping {
            let d = *drain_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
            if r.echoed >= r.sent || Instant::now() > d {
                break;
            }
        } else if Instant::now() >= next {
            next += interval;
            if s.send(&message(id, seq)).is_ok() {
                seq += 1;
                r.sent += 1;
            }
        }
        match s.recv(&mut buf) {
            Ok(n) if n >= ECHO && &buf[..4] == MAGIC => {
                let q = seq_of(&buf);
                if best.is_some_and(|b| q <= b) {
                    r.out_of_order += 1;
                } else {
                    best = Some(q);
                }
                r.saw(endpoint(&buf[MSG..]));
                gaps.echo(&mut r, &buf[..n]);
            }
            _ => {}
        }
    }
    r
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Run the flows, then print one JSON object (stdout) and a human line
/// (stderr).
pub fn client(a: &ClientArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mark = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let n = a.tcp + a.udp;
    let mut handles = Vec::with_capacity(n);
    let start_ns = wall_ns();
    let counted_from = start_ns + (a.warmup.max(0.0) * 1e9) as u64;
    for i in 0..n {
        let plan = FlowPlan {
            id: i as u32,
            server: a.server,
            interval,
            // Spread the flows' send times over one interval.
            phase: interval.mul_f64(i as f64 / n.max(1) as f64),
            stop: stop.clone(),
            mark: mark.clone(),
            counted_from,
        };
        let tcp = i < a.tcp;
        handles.push(
            std::thread::Builder::new()
                .name(format!("lab-flow-{i}"))
                .stack_size(256 << 10)
                .spawn(move || if tcp { tcp_flow(plan) } else { udp_flow(plan) })?,
        );
        if tcp {
            // Do not open a hundred connections in one burst.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let t0 = Instant::now();
    let mut killed = None;
    if let Some(k) = a.kill_after.filter(|k| *k < a.duration) {
        std::thread::sleep(Duration::from_secs_f64(k));
        let at = wall_ns();
        mark.store(at, Ordering::Release);
        if let Some(pid) = a.kill_pid {
            let st = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .context("run kill")?;
            if !st.success() {
                anyhow::bail!("could not SIGKILL pid {pid}");
            }
            killed = Some(pid);
            eprintln!("lab-client: SIGKILLed pid {pid} at {k} s");
        }
    }
    std::thread::sleep(Duration::from_secs_f64(a.duration).saturating_sub(t0.elapsed()));
    stop.store(true, Ordering::Release);
    let flows: Vec<FlowReport> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .collect();
    if let Some(p) = &a.detail {
        let mut f = std::io::BufWriter::new(std::fs::File::create(p)?);
        for r in &flows {
            writeln!(f, "{}", serde_json::to_string(r)?)?;
        }
        f.flush()?;
    }
    let tcp: Vec<&FlowReport> = flows.iter().filter(|r| r.proto == "tcp").collect();
    let udp: Vec<&FlowReport> = flows.iter().filter(|r| r.proto == "udp").collect();
    let mut gaps: Vec<f64> = flows.iter().map(|r| r.max_gap_ms).collect();
    gaps.sort_by(f64::total_cmp);
    let resets: u64 = flows.iter().map(|r| r.resets).sum();
    let reconnects: u64 = flows.iter().map(|r| r.reconnects).sum();
    let changed = flows.iter().filter(|r| r.endpoints.len() > 1).count();
    let silent = flows.iter().filter(|r| r.echoed == 0).count();
    let udp_sent: u64 = udp.iter().map(|r| r.sent).sum();
    let udp_echoed: u64 = udp.iter().map(|r| r.echoed).sum();
    let mut mark_gaps: Vec<f64> = flows.iter().filter_map(|r| r.mark_gap_ms).collect();
    mark_gaps.sort_by(f64::total_cmp);
    let marked = mark.load(Ordering::Acquire);
    let mut rtt: Vec<f64> = flows
        .iter()
        .flat_map(|r| r.rtt_us.iter().map(|&u| f64::from(u) / 1e3))
        .collect();
    rtt.sort_by(f64::total_cmp);
    let mut eps: Vec<&String> = flows.iter().flat_map(|r| r.endpoints.first()).collect();
    eps.sort();
    eps.dedup();
    let report = serde_json::json!({
        "start_ns": start_ns,
        "tcp_connections": tcp.len(),
        "udp_flows": udp.len(),
        "interval_ms": a.interval_ms,
        "duration_s": a.duration,
        "messages_sent": flows.iter().map(|r| r.sent).sum::<u64>(),
        "echoes": flows.iter().map(|r| r.echoed).sum::<u64>(),
        "resets": resets,
        "reconnects": reconnects,
        "silent_flows": silent,
        "udp_lost": udp_sent.saturating_sub(udp_echoed),
        "unanswered": flows.iter().map(|r| r.sent.saturating_sub(r.echoed)).sum::<u64>(),
        "out_of_order": flows.iter().map(|r| r.out_of_order).sum::<u64>(),
        "mark_ns": (marked != 0).then_some(marked),
        "killed_pid": killed,
        "flows_across_mark": mark_gaps.len(),
        "mark_stall_ms": (marked != 0).then(|| serde_json::json!({
            "max": mark_gaps.last().copied().unwrap_or(0.0),
            "p99": percentile(&mark_gaps, 99.0),
            "p50": percentile(&mark_gaps, 50.0),
        })),
        "warmup_s": a.warmup,
        "max_stall_ms": gaps.last().copied().unwrap_or(0.0),
        "p99_stall_ms": percentile(&gaps, 99.0),
        "p50_stall_ms": percentile(&gaps, 50.0),
        "rtt_ms": {
            "p50": percentile(&rtt, 50.0),
            "p99": percentile(&rtt, 99.0),
            "max": rtt.last().copied().unwrap_or(0.0),
            "echoes": rtt.len(),
        },
        "distinct_translated_endpoints": eps.len(),
        "endpoint_changes": changed,
        "same_translation": changed == 0,
    });
    println!("{report}");
    let mark_txt = match report["mark_stall_ms"].as_object() {
        Some(m) => format!(
            ", stall across the mark max {:.1} ms p99 {:.1} ms ({} flows)",
            m["max"].as_f64().unwrap_or(0.0),
            m["p99"].as_f64().unwrap_or(0.0),
            mark_gaps.len()
        ),
        None => String::new(),
    };
    eprintln!(
        "lab-client: {} tcp + {} udp flows, {} resets, {} reconnects, longest gap between echoes \
         max {:.1} ms p99 {:.1} ms ({} ms interval){mark_txt}, round trip p50 {:.3} ms p99 {:.3} ms, \
         udp lost {}, translated endpoints kept: {}",
        tcp.len(),
        udp.len(),
        resets,
        reconnects,
        report["max_stall_ms"].as_f64().unwrap_or(0.0),
        report["p99_stall_ms"].as_f64().unwrap_or(0.0),
        a.interval_ms,
        report["rtt_ms"]["p50"].as_f64().unwrap_or(0.0),
        report["rtt_ms"]["p99"].as_f64().unwrap_or(0.0),
        report["udp_lost"],
        changed == 0
    );
    Ok(())
}
