//! One client flow: a long-lived TCP connection (reconnected after a
//! failure) or a UDP flow, sending a message per interval and taking its
//! echoes, with what it saw in a [`FlowReport`].

use crate::echo::{message, peer_of, sent_ns_of, seq_of, ECHO, MAGIC};
use ftmb_core::clock::wall_ns;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

/// What one client flow thread is given.
pub(crate) struct FlowPlan {
    pub id: u32,
    pub server: SocketAddrV4,
    /// Between two messages.
    pub interval: Duration,
    /// Delay before the first message (spreads the flows over an interval).
    pub phase: Duration,
    pub stop: Arc<AtomicBool>,
    /// The mark (ns since the epoch; 0 until it is set).
    pub mark: Arc<AtomicU64>,
    /// Gaps ending before this (ns since the epoch) are warm-up.
    pub counted_from: u64,
}

impl FlowPlan {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
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
    fn new(plan: &FlowPlan) -> Gaps {
        Gaps {
            last: None,
            mark: plan.mark.clone(),
            counted_from: plan.counted_from,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A TCP flow: connect, exchange until the run stops or the connection
/// fails, and after a failure wait 100 ms and connect again.
pub(crate) fn tcp_flow(plan: FlowPlan) -> FlowReport {
    let r = Arc::new(Mutex::new(FlowReport {
        id: plan.id,
        proto: "tcp",
        ..FlowReport::default()
    }));
    let mut first = true;
    while !plan.stopped() {
        if !first {
            std::thread::sleep(Duration::from_millis(100));
            if plan.stopped() {
                break;
            }
        }
        let s = match TcpStream::connect_timeout(
            &SocketAddr::V4(plan.server),
            Duration::from_secs(3),
        ) {
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
        let Ok(ws) = s.try_clone() else { continue };
        let failed = tcp_session(&plan, s, ws, &r);
        if failed && !plan.stopped() {
            lock(&r).resets += 1;
        } else {
            break;
        }
    }
    let out = lock(&r).clone();
    out
}

/// One connection's life: a sender thread writes a message per interval,
/// this thread reads the echoes. True when the connection failed.
fn tcp_session(plan: &FlowPlan, rs: TcpStream, ws: TcpStream, r: &Arc<Mutex<FlowReport>>) -> bool {
    let broken = Arc::new(AtomicBool::new(false));
    let sender = spawn_sender(plan, ws, broken.clone(), r.clone());
    let failed = receive_echoes(plan, &rs, &broken, r);
    broken.store(true, Ordering::Release);
    let _ = rs.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    failed
}

/// Sender: one message per interval, on schedule, until the run stops or
/// the connection breaks.
fn spawn_sender(
    plan: &FlowPlan,
    mut ws: TcpStream,
    broken: Arc<AtomicBool>,
    r: Arc<Mutex<FlowReport>>,
) -> std::thread::JoinHandle<()> {
    let (id, interval, phase, stop) = (plan.id, plan.interval, plan.phase, plan.stop.clone());
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
}

/// Receiver: echoes until the sender stops and all are back (or 3 s
/// pass), or the connection fails. True when it failed.
fn receive_echoes(
    plan: &FlowPlan,
    mut rs: &TcpStream,
    broken: &AtomicBool,
    r: &Mutex<FlowReport>,
) -> bool {
    let mut gaps = Gaps::new(plan);
    let mut acc: Vec<u8> = Vec::with_capacity(4 * ECHO);
    let mut tmp = [0u8; 4096];
    let mut expect = 0u64;
    let mut drain_until: Option<Instant> = None;
    loop {
        if plan.stopped() {
            let d = *drain_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(3));
            let rep = lock(r);
            if rep.echoed >= rep.sent || Instant::now() > d {
                return false;
            }
        }
        match rs.read(&mut tmp) {
            Ok(0) => return true,
            Ok(k) => {
                acc.extend_from_slice(&tmp[..k]);
                let mut rep = lock(r);
                let mut off = 0;
                while acc.len() - off >= ECHO {
                    let e = &acc[off..off + ECHO];
                    if seq_of(e) != expect {
                        rep.out_of_order += 1;
                    }
                    expect = seq_of(e) + 1;
                    rep.saw(peer_of(e));
                    gaps.echo(&mut rep, e);
                    off += ECHO;
                }
                acc.drain(..off);
            }
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if broken.load(Ordering::Acquire) {
                    return true;
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// A UDP flow: one socket, a message per interval, echoes read between
/// sends; after the run stops, up to 2 s more for the last echoes.
pub(crate) fn udp_flow(plan: FlowPlan) -> FlowReport {
    let mut r = FlowReport {
        id: plan.id,
        proto: "udp",
        ..FlowReport::default()
    };
    let Ok(s) = UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(plan.server).map(|_| s)) else {
        r.resets += 1;
        return r;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(5)));
    let mut gaps = Gaps::new(&plan);
    let mut next = Instant::now() + plan.phase;
    let mut seq = 0u64;
    let mut best = None::<u64>;
    let mut buf = [0u8; 128];
    let mut drain_until = None;
    loop {
        if plan.stopped() {
            let d = *drain_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
            if r.echoed >= r.sent || Instant::now() > d {
                break;
            }
        } else if Instant::now() >= next {
            next += plan.interval;
            if s.send(&message(plan.id, seq)).is_ok() {
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
                r.saw(peer_of(&buf));
                gaps.echo(&mut r, &buf[..n]);
            }
            _ => {}
        }
    }
    r
}
