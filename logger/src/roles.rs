//! The four roles as separate processes joined by Unix sockets (SPEC
//! section 2): input logger, master, output logger, replica. Every link
//! carries [`crate::wire`] frames; a peer's death shows up as end of stream
//! or a torn frame, never as garbage.
//!
//! ```text
//!  input logger (il.sock) ──Packet──> master ──LogBatch/Output/SnapshotPart/Heartbeat──> output logger (ol.sock)
//!        ^  Resume{from}                                                                  │ sinks (pcap)
//!        └── SnapshotCommitted{cut} ─────────────────────────────────────────────────────┤
//!                 replica (standby on ol.sock) <── SnapshotPart as they come, takeover ──┘
//! ```
//!
//! Failover: the output logger sees no frame from the master for the
//! deadline (or its stream ends without `EndOfStream`), drops the outputs
//! that can never commit, and sends the standby replica the last committed
//! snapshot (unless it was forwarded whole already), the log records after its
//! cut, a `Void` per worker whose frontier is past the records it holds
//! (the standby numbers its own records after it) and a `Resume{cut}`
//! marker. The replica asks the input logger for the packets from the cut
//! on, which answers with `Resume{live}`: packets before `live` are replay
//! of its log, replayed as they stream in while the snapshot loads. The
//! replica restores, replays in the master's batches under the logged
//! access order, then runs live traffic and ships to the output logger on
//! the same connection, which suppresses outputs that already left. The
//! first frame it ships is a `Void` for the records it could not follow
//! (past one the dead master never shipped): the output logger forgets
//! them, so that a replica after it does not follow them either.

use crate::input_log::InputLog;
use crate::output_logger::OutputLogger;
pub use crate::transport::{connect, Addr};
use crate::transport::{Listener, Stream};
use crate::wire::{
    FrameKind, FrameReader, FrameWriter, HeartbeatMsg, LogBatchMsg, LogBatchView, Message,
    OutputMsg, PacketMsg, ResumeMsg, SnapshotCommittedMsg, SnapshotMsg, SnapshotPartMsg,
    SnapshotParts, VoidMsg,
};
use ftmb_core::clock::wall_ns;
use ftmb_core::element::{Source, SourceStatus};
use ftmb_core::ft::{FtLink, OutputBatch, Shipment};
use ftmb_core::headers::Framing;
use ftmb_core::pal::LogRecord;
use ftmb_core::snapshot::Snapshot;
use ftmb_core::Packet;
use parking_lot::Mutex;
use std::io::{BufReader, BufWriter};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Writer = FrameWriter<BufWriter<Stream>>;

fn writer(s: &Stream) -> std::io::Result<Writer> {
    Ok(FrameWriter::new(BufWriter::with_capacity(
        256 << 10,
        s.try_clone()?,
    )))
}

fn reader(s: &Stream) -> std::io::Result<FrameReader<BufReader<Stream>>> {
    Ok(FrameReader::new(BufReader::with_capacity(
        256 << 10,
        s.try_clone()?,
    )))
}

// ---------------------------------------------------------------- master side

/// The master's (and the replica's) link to the output logger: frames over
/// a socket, plus a heartbeat every `period`.
pub struct SocketLink {
    w: Arc<Mutex<Writer>>,
    alive: Arc<AtomicBool>,
    /// The last snapshot's encoding, kept for the next one's (its pages
    /// stay mapped: megabytes every snapshot interval otherwise).
    snapshot_buf: Mutex<Vec<u8>>,
}

impl SocketLink {
    /// Wrap a connected data stream; send heartbeats every `period` on
    /// `hb`, a stream of their own, so that a large frame on the data
    /// stream (a snapshot) never delays them.
    pub fn new(s: &Stream, hb: &Stream, period: Duration) -> std::io::Result<SocketLink> {
        let w = Arc::new(Mutex::new(writer(s)?));
        {
            // The data stream opens with a heartbeat: it names the master.
            let mut g = w.lock();
            g.send(&Message::Heartbeat(HeartbeatMsg {
                seq: 0,
                ns: wall_ns(),
            }))?;
            g.flush()?;
        }
        let alive = Arc::new(AtomicBool::new(true));
        {
            let w = Arc::new(Mutex::new(writer(hb)?));
            let alive = alive.clone();
            std::thread::Builder::new()
                .name("ftmb-heartbeat".into())
                .spawn(move || {
                    favour_this_thread();
                    let mut seq = 0;
                    while alive.load(Ordering::Acquire) {
                        seq += 1;
                        let mut g = w.lock();
                        let ok = g
                            .send(&Message::Heartbeat(HeartbeatMsg { seq, ns: wall_ns() }))
                            .and_then(|_| g.flush());
                        drop(g);
                        if ok.is_err() {
                            break;
                        }
                        std::thread::sleep(period);
                    }
                })?;
        }
        Ok(SocketLink {
            w,
            alive,
            snapshot_buf: Mutex::new(Vec::new()),
        })
    }

    /// Send the end of the stream and stop heartbeats.
    pub fn finish(&self) {
        self.alive.store(false, Ordering::Release);
        let mut g = self.w.lock();
        let _ = g.send(&Message::EndOfStream);
        let _ = g.flush();
    }
}

impl Drop for SocketLink {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
    }
}

impl FtLink for SocketLink {
    fn void_records(&self, worker: usize, after: u64, through: u64) {
        let Ok(worker) = u16::try_from(worker) else {
            return;
        };
        let mut g = self.w.lock();
        let _ = g
            .send(&Message::Void(VoidMsg {
                worker,
                after,
                through,
            }))
            .and_then(|_| g.flush());
    }
    fn ship_log(&self, worker: usize, records: Vec<(u64, LogRecord)>) {
        self.ship(
            worker,
            Shipment {
                records,
                outputs: OutputBatch::default(),
            },
        );
    }
    fn ship_outputs(&self, worker: usize, outputs: OutputBatch) {
        self.ship(
            worker,
            Shipment {
                records: Vec::new(),
                outputs,
            },
        );
    }
    fn ship(&self, worker: usize, sh: Shipment) {
        let mut g = self.w.lock();
        let sent = g.send_with(|buf| {
            LogBatchMsg::encode_numbered(worker as u16, &sh.records, buf);
            for o in sh.outputs.iter() {
                OutputMsg::encode_ref(o, buf);
            }
        });
        if sent.is_ok() {
            let _ = g.flush();
        }
    }
    fn store_snapshot(&self, snap: Snapshot) {
        // In pieces, taking the link for one piece at a time: sent whole,
        // an 11 MB snapshot held every worker's shipments back for 30-130
        // ms on a loaded machine.
        let mut payload = self.snapshot_buf.lock();
        snap.encode_into(&mut payload);
        let total = payload.len() as u64;
        for (i, piece) in payload.chunks(SNAPSHOT_PIECE).enumerate() {
            let mut g = self.w.lock();
            let offset = (i * SNAPSHOT_PIECE) as u64;
            let sent = SnapshotPartMsg::write_parts(snap.id, total, offset, piece, &mut g)
                .and_then(|_| g.flush());
            if sent.is_err() {
                return;
            }
        }
    }
}

/// Bytes of a snapshot sent in one piece ([`SnapshotPartMsg`]).
const SNAPSHOT_PIECE: usize = 64 << 10;

/// Live packets a [`RemoteInput`] holds for the router at most.
const LIVE_QUEUE: usize = 4096;

/// Packets from the input logger, as a source whose packets are already
/// numbered (see [`ftmb_core::graph::Graph::external_input`]).
pub struct RemoteInput {
    rx: crossbeam_channel::Receiver<Option<Packet>>,
    framing: Framing,
    done: bool,
}

impl RemoteInput {
    /// Read packets from `r` (the input logger's stream, past its `Resume`
    /// answer) on a thread of its own until the stream ends.
    pub fn start(r: InputReader, framing: Framing) -> std::io::Result<RemoteInput> {
        Ok(RemoteInput::start_after_replay(r, framing, 0)?.0)
    }

    /// As [`RemoteInput::start`], but the first `replay` packets (the input
    /// log a replica replays, up to the id live traffic starts at) go to
    /// the returned channel as they arrive, and only the rest to the
    /// source. A replica replays them while the rest are still coming.
    /// The channel closes early if the stream ends before all of them.
    pub fn start_after_replay(
        mut r: InputReader,
        framing: Framing,
        replay: u64,
    ) -> std::io::Result<(RemoteInput, crossbeam_channel::Receiver<Packet>)> {
        // A bounded channel allocates and initialises all its slots at
        // once: 65536 of them (8 MB) cost a replica 1-2 ms of page faults
        // on its way to the replay. 4096 packets still ride out a burst.
        let (tx, rx) = crossbeam_channel::bounded(LIVE_QUEUE);
        let (replay_tx, replay_rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("ftmb-remote-input".into())
            .spawn(move || {
                let mut replay_left = replay;
                loop {
                    // Packet frames are turned into packets straight from
                    // the reader's buffer (one copy, one allocation).
                    let p = match r.next_frame() {
                        Ok(Some(v)) if v.kind() == FrameKind::Packet => {
                            PacketMsg::parts(&v).ok().map(|(id, ts_ns, source, data)| {
                                let mut p = Packet::from_bytes(data);
                                p.anno.id = id;
                                p.anno.ts_ns = ts_ns;
                                p.anno.source = source;
                                p
                            })
                        }
                        // Other frames are not for this reader; the end of
                        // the stream, a broken frame or EOF end it.
                        Ok(Some(v)) if v.kind() != FrameKind::EndOfStream => continue,
                        Ok(Some(_)) | Ok(None) | Err(_) => None,
                    };
                    let Some(p) = p else {
                        let _ = tx.send(None);
                        return;
                    };
                    let sent = if replay_left > 0 {
                        replay_left -= 1;
                        replay_tx.send(p).is_ok()
                    } else {
                        tx.send(Some(p)).is_ok()
                    };
                    if !sent {
                        return;
                    }
                }
            })?;
        let input = RemoteInput {
            rx,
            framing,
            done: false,
        };
        Ok((input, replay_rx))
    }
}

impl Source for RemoteInput {
    fn framing(&self) -> Framing {
        self.framing
    }
    fn poll(&mut self, max: usize, out: &mut Vec<Packet>) -> Result<SourceStatus, String> {
        if self.done {
            return Ok(SourceStatus::Done);
        }
        while out.len() < max {
            match self.rx.try_recv() {
                Ok(Some(p)) => out.push(p),
                Ok(None) | Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.done = true;
                    return Ok(SourceStatus::Done);
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {
                    return Ok(if out.is_empty() {
                        SourceStatus::Idle
                    } else {
                        SourceStatus::Ready
                    });
                }
            }
        }
        Ok(SourceStatus::Ready)
    }
    fn stop_when_done(&self) -> bool {
        true
    }
}

/// The reading end of the input logger's stream.
pub type InputReader = FrameReader<BufReader<Stream>>;

/// Ask the input logger for packets from `from` on. Returns the id live
/// traffic starts at (before it: replay of the log) and the stream's
/// reader, positioned after the answer.
pub fn resume(s: &Stream, from: u64) -> Result<(u64, InputReader), String> {
    let mut w = writer(s).map_err(|e| e.to_string())?;
    w.send(&Message::Resume(ResumeMsg { packet: from }))
        .and_then(|_| w.flush())
        .map_err(|e| format!("input logger: {e}"))?;
    let mut r = reader(s).map_err(|e| e.to_string())?;
    match r.next_message() {
        Ok(Some(Message::Resume(m))) => Ok((m.packet, r)),
        other => Err(format!("input logger answered {other:?}")),
    }
}

// ---------------------------------------------------------------- input logger

/// Input logger state shared by its threads.
struct IlState {
    log: InputLog,
    /// The stream of the consumer being fed (the master, or the replica
    /// that took over), shut down when another takes over.
    consumer: Option<Stream>,
    /// Generation of the newest consumer; a forwarder of an older one stops.
    generation: u64,
    sources_done: bool,
}

/// The input logger's state and the signal that the log grew.
struct Il {
    state: Mutex<IlState>,
    grew: parking_lot::Condvar,
}

/// Run the input logger: read `sources` (paced at `pps` packets per
/// second from the moment the first consumer connects; 0 = as fast as
/// the consumer takes them, from the start), number and log every
/// packet, and serve consumers on `listen`. Returns when the sources are
/// exhausted and `until` says so.
///
/// Each consumer is fed by a thread of its own from the log, so that a
/// consumer that stops reading (a hung master, its socket buffer full)
/// holds up neither the logging of new packets nor the replica that
/// takes over from it: the takeover's `Resume` shuts the old consumer's
/// stream down (fencing it off) and starts feeding the replica.
pub fn run_input_logger(
    mut sources: Vec<Box<dyn Source>>,
    listen: &Addr,
    pps: f64,
    until: &AtomicBool,
) -> std::io::Result<u64> {
    let listener = Listener::bind(listen)?;
    let il = Arc::new(Il {
        state: Mutex::new(IlState {
            log: InputLog::new(),
            consumer: None,
            generation: 0,
            sources_done: false,
        }),
        grew: parking_lot::Condvar::new(),
    });
    {
        let il = il.clone();
        std::thread::Builder::new()
            .name("ftmb-il-accept".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let il = il.clone();
                    let _ = std::thread::Builder::new()
                        .name("ftmb-il-conn".into())
                        .spawn(move || serve_il_conn(conn, il));
                }
            })?;
    }
    // A paced source (a trace replayed at a rate) starts when the first
    // consumer, the master, has connected: what it would find already
    // logged is a backlog it starts behind on, not traffic at the rate.
    if pps > 0.0 {
        while il.state.lock().consumer.is_none() && !until.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut tmp = Vec::with_capacity(64);
    let mut active: Vec<bool> = vec![true; sources.len()];
    while active.iter().any(|a| *a) {
        if pps > 0.0 {
            let due = (start.elapsed().as_secs_f64() * pps) as u64;
            if sent >= due {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
        }
        let want = if pps > 0.0 {
            ((start.elapsed().as_secs_f64() * pps) as u64 - sent).clamp(1, 256) as usize
        } else {
            64
        };
        let mut progressed = false;
        for (si, src) in sources.iter_mut().enumerate() {
            if !active[si] {
                continue;
            }
            tmp.clear();
            match src.poll(want, &mut tmp) {
                Ok(SourceStatus::Done) => active[si] = false,
                Err(e) => {
                    // A device that cannot be opened, a broken trace: say
                    // so, the input logger has no other way to report it.
                    eprintln!("input logger: source {si}: {e}");
                    active[si] = false;
                }
                _ => {}
            }
            if tmp.is_empty() {
                continue;
            }
            progressed = true;
            let mut g = il.state.lock();
            for p in tmp.drain(..) {
                g.log.append(p.anno.ts_ns, si as u16, p.data().to_vec());
                sent += 1;
            }
            drop(g);
            il.grew.notify_all();
        }
        if !progressed && pps <= 0.0 {
            // Wait on the live sources' sockets (at most ~1 ms), or sleep
            // briefly for sources without one.
            ftmb_core::idle::wait_idle(
                sources
                    .iter()
                    .zip(&active)
                    .filter(|(_, a)| **a)
                    .map(|(s, _)| s.readiness_fd()),
            );
        }
    }
    il.state.lock().sources_done = true;
    il.grew.notify_all();
    while !until.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(sent)
}

/// Packets a forwarder copies out of the log at a time.
const FORWARD_BATCH: usize = 256;

fn serve_il_conn(conn: Stream, il: Arc<Il>) {
    let Ok(mut r) = reader(&conn) else { return };
    loop {
        match r.next_message() {
            Ok(Some(Message::Resume(m))) => {
                // A (new) consumer: it replaces the one fed so far, whose
                // stream is shut down (fencing a master that the output
                // logger gave up on, even one that only hangs). Tell it
                // where live traffic starts, then feed it from the log.
                let Ok(mut w) = writer(&conn) else { return };
                let Ok(fence) = conn.try_clone() else { return };
                let (generation, live) = {
                    let mut g = il.state.lock();
                    g.generation += 1;
                    let generation = g.generation;
                    if let Some(old) = g.consumer.replace(fence) {
                        let _ = old.shutdown(std::net::Shutdown::Both);
                    }
                    (generation, g.log.next_id())
                };
                il.grew.notify_all();
                // The answer goes at once: a replica starts its run (and
                // replays each packet as it comes) when it has it, not once
                // the first few hundred kilobytes of the log are queued
                // behind it (2-3 ms in the demo).
                if w.send(&Message::Resume(ResumeMsg { packet: live }))
                    .and_then(|_| w.flush())
                    .is_err()
                {
                    return;
                }
                let il = il.clone();
                let _ = std::thread::Builder::new()
                    .name("ftmb-il-feed".into())
                    .spawn(move || feed_consumer(w, &il, generation, m.packet));
            }
            Ok(Some(Message::SnapshotCommitted(m))) => {
                // The output logger committed a snapshot: drop what
                // precedes its cut.
                il.state.lock().log.truncate_through(m.id.saturating_sub(1));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

/// Send consumer `generation` the log from packet `next` on, then each
/// packet as it is logged, then the end of the stream once the sources
/// are done; stop when another consumer replaces it or its stream fails.
/// Packets are copied out under the lock and written outside it.
fn feed_consumer(mut w: Writer, il: &Il, generation: u64, mut next: u64) {
    let mut batch: Vec<PacketMsg> = Vec::with_capacity(FORWARD_BATCH);
    loop {
        let done = {
            let mut g = il.state.lock();
            loop {
                if g.generation != generation {
                    return;
                }
                batch.extend(
                    g.log
                        .iter_after(next.saturating_sub(1))
                        .take(FORWARD_BATCH)
                        .cloned(),
                );
                if !batch.is_empty() || g.sources_done {
                    break;
                }
                il.grew.wait(&mut g);
            }
            batch.is_empty()
        };
        if done {
            let _ = w.send(&Message::EndOfStream).and_then(|_| w.flush());
            return;
        }
        for p in batch.drain(..) {
            next = p.id + 1;
            if w.send(&Message::Packet(p)).is_err() {
                return;
            }
        }
        if w.flush().is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------- output logger

/// What the output logger observed, for the demo's report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct OlReport {
    /// Outputs released.
    pub released: u64,
    /// Replayed outputs suppressed (had already left).
    pub suppressed: u64,
    /// Snapshots committed.
    pub snapshots: u64,
    /// Held outputs of the dead master dropped.
    pub dropped_on_failover: usize,
    /// When the failure was detected (ns since the epoch), if it was.
    pub detected_ns: Option<u64>,
    /// Last frame from the master before that (ns since the epoch).
    pub last_heard_ns: Option<u64>,
    /// When the takeover (snapshot, logs, cut) was sent to the replica.
    pub takeover_sent_ns: Option<u64>,
    /// Protocol errors.
    pub errors: Vec<String>,
}

/// Run the output logger on `listen` until the serving master (or, after a
/// failover, the replica) ends its stream cleanly.
pub fn run_output_logger(
    ol: Arc<OutputLogger>,
    listen: &Addr,
    il: Option<&Addr>,
    deadline: Duration,
) -> std::io::Result<OlReport> {
    let listener = Listener::bind(listen)?;
    let last = Arc::new(AtomicU64::new(wall_ns()));
    // The heartbeat connections open now: at a failover they are the
    // failed role's, and are shut down, so that a hung master that goes
    // on afterwards cannot pass for the replica being alive.
    let hb_conns: Arc<Mutex<Vec<Stream>>> = Arc::default();
    {
        // Heartbeats arrive on a socket of their own; every frame on any
        // heartbeat connection proves the serving role alive.
        let hb = Listener::bind(&listen.heartbeat()?)?;
        let last = last.clone();
        let hb_conns = hb_conns.clone();
        std::thread::Builder::new()
            .name("ftmb-ol-heartbeats".into())
            .spawn(move || {
                for conn in hb.incoming().flatten() {
                    if let Ok(c) = conn.try_clone() {
                        hb_conns.lock().push(c);
                    }
                    let last = last.clone();
                    let _ =
                        std::thread::Builder::new()
                            .name("ftmb-ol-hb".into())
                            .spawn(move || {
                                favour_this_thread();
                                let Ok(mut r) = reader(&conn) else { return };
                                while let Ok(Some(_)) = r.next_message() {
                                    last.fetch_max(wall_ns(), Ordering::AcqRel);
                                }
                            });
                }
            })?;
    }
    let il_ctl = match il {
        Some(p) => Some(Mutex::new(writer(&connect(p, Duration::from_secs(10))?)?)),
        None => None,
    };
    // Accept the master (its first frame is a heartbeat) and a standby
    // replica (its first frame is a Resume).
    let mut master: Option<(Stream, FrameReader<BufReader<Stream>>)> = None;
    let mut standby: Option<Stream> = None;
    while master.is_none() {
        let s = listener.accept()?;
        let mut r = reader(&s)?;
        match r.next_message() {
            Ok(Some(Message::Heartbeat(_))) => {
                // Its opening heartbeat proves the master alive now: the
                // detector must not count the time before it connected (a
                // master that starts slowly was taken for a dead one, and
                // the standby took over at start-up).
                last.fetch_max(wall_ns(), Ordering::AcqRel);
                master = Some((s, r));
            }
            Ok(Some(Message::Resume(_))) => standby = Some(s),
            _ => {}
        }
    }
    let mut report = OlReport::default();
    let Some((mstream, mreader)) = master else {
        return Ok(report);
    };
    // The stream of whoever serves now; shut down to fence it off.
    let mut serving = mstream;
    // A standby may connect before the master or at any time after it (a
    // replica that came up later than the master had been missed until the
    // failover: no snapshot forwarded, every takeover sending one whole).
    let feed = Arc::new(StandbyFeed::default());
    let (standby_tx, standby_rx) = crossbeam_channel::bounded(1);
    if let Some(s) = standby {
        let _ = standby_tx.send(feed.attach(s)?);
    } else {
        let feed = feed.clone();
        std::thread::Builder::new()
            .name("ftmb-ol-standby".into())
            .spawn(move || {
                while let Ok(s) = listener.accept() {
                    let Ok(mut r) = reader(&s) else { continue };
                    if let Ok(Some(Message::Resume(_))) = r.next_message() {
                        if let Ok(attached) = feed.attach(s) {
                            let _ = standby_tx.send(attached);
                        }
                        return;
                    }
                }
            })?;
    }
    // The serving role's reader says when its stream ends, so that a death
    // is seen at once, not at the detector's next look.
    let (ended_tx, ended) = crossbeam_channel::unbounded();
    let mut reader_h = Some(spawn_ol_reader(
        mreader,
        ol.clone(),
        il_ctl,
        Some(feed.clone()),
        ended_tx.clone(),
    ));
    // Failure detector: wakes when the stream ends, and every 500 µs to
    // look at the heartbeats.
    loop {
        let said = ended.recv_timeout(Duration::from_micros(500)).is_ok();
        let finished = said || reader_h.as_ref().is_some_and(|h| h.is_finished());
        let silent =
            wall_ns().saturating_sub(last.load(Ordering::Acquire)) > deadline.as_nanos() as u64;
        if !finished && !silent {
            continue;
        }
        if !finished {
            // Silent past the deadline: fence the master off, so nothing
            // it still sends can reach the output logger after failover.
            let _ = serving.shutdown(std::net::Shutdown::Both);
        }
        let (clean, ctl) = match reader_h.take() {
            Some(h) => h.join().unwrap_or((false, None)),
            None => (false, None),
        };
        // Joined, it has said it ended: the word must not be taken for
        // the next reader's.
        while ended.try_recv().is_ok() {}
        if clean {
            break;
        }
        if report.detected_ns.is_some() {
            report.errors.push("the replica failed too".into());
            break;
        }
        report.detected_ns = Some(wall_ns());
        report.last_heard_ns = Some(last.load(Ordering::Acquire));
        for c in hb_conns.lock().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        let take = ol.begin_failover();
        report.dropped_on_failover = take.dropped;
        // The standby (waited for if none has connected yet), and the
        // snapshot it may have been forwarded whole already.
        let Ok((rs, feeder)) = standby_rx.recv() else {
            report.errors.push("no standby replica to take over".into());
            break;
        };
        feed.stop(take.snapshot.as_ref().map_or(0, |s| s.id));
        let (mut w, sent) = match feeder.join() {
            Ok(x) => x,
            Err(_) => (writer(&rs)?, 0),
        };
        let cut = take.snapshot.as_ref().map_or(1, |s| s.next_packet);
        if let Some(snap) = take.snapshot.as_ref().filter(|s| s.id != sent) {
            let payload = match &take.encoded {
                Some(b) => b.as_slice(),
                None => &snap.encode(),
            };
            SnapshotMsg::write_parts(snap.id, &[], payload, &mut w)?;
        }
        for (wk, recs) in take.logs.iter().enumerate() {
            w.send_with(|buf| LogBatchMsg::encode_numbered(wk as u16, recs, buf))?;
            // Records it received but no longer holds (voided by an
            // earlier replica): the standby numbers its own after them.
            let held = recs.last().map_or(0, |r| r.0);
            let max = take.frontier.get(wk).copied().unwrap_or(0);
            if max > held {
                w.send(&Message::Void(VoidMsg {
                    worker: wk as u16,
                    after: held,
                    through: max,
                }))?;
            }
        }
        w.send(&Message::Resume(ResumeMsg { packet: cut }))?;
        w.flush()?;
        report.takeover_sent_ns = Some(wall_ns());
        // Grace for the replica to restore and start its heartbeats.
        last.store(wall_ns() + 5_000_000_000, Ordering::Release);
        let r = reader(&rs)?;
        reader_h = Some(spawn_ol_reader(r, ol.clone(), ctl, None, ended_tx.clone()));
        serving = rs;
    }
    ol.flush();
    let st = ol.stats();
    report.released = st.released;
    report.suppressed = st.suppressed;
    report.snapshots = st.snapshots;
    report.errors.extend(ol.errors());
    Ok(report)
}

type IlCtl = Option<Mutex<Writer>>;

/// Run the calling thread under the real-time FIFO policy at the lowest
/// priority, where permitted (root or CAP_SYS_NICE; otherwise nothing
/// changes). For the failure detector's threads only, which sleep between
/// tiny frames: on a machine whose cores the workers keep busy, a
/// heartbeat thread left waiting for the scheduler for longer than the
/// deadline made the output logger fail over from a live master.
fn favour_this_thread() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sched_setscheduler reads `param` and changes only the calling
    // thread's policy (pid 0); an error leaves it unchanged.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
    }
}

/// Snapshots forwarded to the standby replica piece by piece as they
/// arrive from the master, by a thread of its own, so that the standby
/// holds each one about when the output logger commits it, and a takeover
/// has only the logs to send. (Pushed whole after each commit, a 5 MB
/// snapshot reached the standby and was loaded some 9 ms later: a master
/// killed in that window left the takeover waiting for the push.) A
/// snapshot whose pieces stop short (its master died sending it) is
/// dropped by the standby; one the output logger does not commit is never
/// asked for.
#[derive(Default)]
struct StandbyFeed {
    queue: Mutex<FeedQueue>,
    ready: parking_lot::Condvar,
    stop: AtomicBool,
}

/// The thread forwarding to an attached standby (see
/// [`StandbyFeed::attach`]).
type Feeder = std::thread::JoinHandle<(Writer, u64)>;

/// Pieces waiting to be forwarded.
#[derive(Default)]
struct FeedQueue {
    pieces: std::collections::VecDeque<SnapshotPartMsg>,
    bytes: usize,
    /// Pieces are being dropped until the next snapshot's first one: no
    /// standby yet, it just attached, or it fell too far behind.
    skipping: bool,
    /// A standby is attached.
    attached: bool,
}

impl FeedQueue {
    /// Forward nothing of what is queued.
    fn drop_all(&mut self) {
        self.pieces.clear();
        self.bytes = 0;
    }
}

/// Bytes of pieces the feed holds at most before it drops what it holds
/// (the standby then misses those snapshots, and picks up at the next).
const FEED_MAX_BYTES: usize = 64 << 20;

impl StandbyFeed {
    /// Start forwarding to the standby on `s`, from the next snapshot's
    /// first piece. Returns `s` and the forwarding thread, which returns,
    /// once stopped, the writer and the id of the last snapshot it
    /// forwarded whole (0: none).
    fn attach(self: &Arc<Self>, s: Stream) -> std::io::Result<(Stream, Feeder)> {
        let mut w = writer(&s)?;
        {
            let mut q = self.queue.lock();
            q.attached = true;
            q.skipping = true;
        }
        let f = self.clone();
        let h = std::thread::spawn(move || {
            let mut whole = 0;
            loop {
                let next = {
                    let mut q = f.queue.lock();
                    while q.pieces.is_empty() && !f.stop.load(Ordering::Acquire) {
                        f.ready.wait(&mut q);
                    }
                    let next = q.pieces.pop_front();
                    if let Some(p) = &next {
                        q.bytes -= p.data.len();
                    }
                    next
                };
                // Stopped: what was queued has gone (the master is gone,
                // nothing more comes).
                let Some(p) = next else { break };
                let r = SnapshotPartMsg::write_parts(p.id, p.total, p.offset, &p.data, &mut w)
                    .and_then(|_| w.flush());
                if r.is_err() {
                    // The standby is gone: queue nothing more for it.
                    let mut q = f.queue.lock();
                    q.attached = false;
                    q.drop_all();
                    break;
                }
                if p.offset + p.data.len() as u64 == p.total {
                    whole = p.id;
                }
            }
            (w, whole)
        });
        Ok((s, h))
    }

    /// Whether a standby is attached to forward to.
    fn forwarding(&self) -> bool {
        self.queue.lock().attached
    }

    /// A piece of a snapshot arrived from the master: forward it next.
    fn offer(&self, piece: SnapshotPartMsg) {
        let mut q = self.queue.lock();
        if piece.offset == 0 {
            q.skipping = false;
        }
        if q.skipping || !q.attached {
            return;
        }
        if q.bytes + piece.data.len() > FEED_MAX_BYTES {
            q.drop_all();
            q.skipping = true;
            return;
        }
        q.bytes += piece.data.len();
        q.pieces.push_back(piece);
        self.ready.notify_one();
    }

    /// Stop once the pieces of snapshot `keep` (the one a takeover
    /// restores) still queued are forwarded; pieces of any other (the dead
    /// master's last snapshot, cut short) are dropped: draining a few
    /// megabytes of them held a takeover back for 9 ms.
    fn stop(&self, keep: u64) {
        let mut q = self.queue.lock();
        q.pieces.retain(|p| p.id == keep);
        q.bytes = q.pieces.iter().map(|p| p.data.len()).sum();
        self.stop.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

/// Read a master's frames into the output logger; returns whether the
/// stream ended cleanly, and the input logger's control link back.
fn spawn_ol_reader(
    mut r: FrameReader<BufReader<Stream>>,
    ol: Arc<OutputLogger>,
    il_ctl: IlCtl,
    feed: Option<Arc<StandbyFeed>>,
    ended: crossbeam_channel::Sender<()>,
) -> std::thread::JoinHandle<(bool, IlCtl)> {
    /// Says so when the reader ends, however it ends.
    struct SayEnded(crossbeam_channel::Sender<()>);
    impl Drop for SayEnded {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    std::thread::spawn(move || {
        let _ended = SayEnded(ended);
        // Records and outputs decoded in place into one shipment, handed
        // over when the worker changes, every 64 outputs, and whenever the
        // stream pauses (a heartbeat, a snapshot, the end).
        let mut sh = Shipment::default();
        let mut worker = 0usize;
        let mut pieces = SnapshotParts::default();
        let mut previous: Option<Arc<Vec<u8>>> = None;
        let flush = |sh: &mut Shipment, worker: usize| {
            if !sh.records.is_empty() || !sh.outputs.is_empty() {
                ol.handle_shipment(worker, sh);
                sh.clear();
            }
        };
        loop {
            let v = match r.next_frame() {
                Ok(Some(v)) => v,
                Ok(None) => return (false, il_ctl),
                Err(e) => {
                    eprintln!("output logger: the serving role's stream is unreadable: {e}");
                    return (false, il_ctl);
                }
            };
            match v.kind() {
                FrameKind::LogBatch => {
                    let Ok(b) = LogBatchView::new_checked(&v) else {
                        return (false, il_ctl);
                    };
                    flush(&mut sh, worker);
                    worker = usize::from(b.worker());
                    sh.records.extend(b.records());
                    if r.get_ref().buffer().is_empty() {
                        flush(&mut sh, worker);
                    }
                }
                FrameKind::Output => {
                    if OutputMsg::push_into(&v, &mut sh.outputs).is_err() {
                        return (false, il_ctl);
                    }
                    // Hand outputs over in groups while more frames are
                    // already buffered, but never hold one while waiting
                    // for the next frame: on a live link that frame may be
                    // far off (an output would sit until the next packet).
                    if sh.outputs.len() >= 64 || r.get_ref().buffer().is_empty() {
                        flush(&mut sh, worker);
                    }
                }
                FrameKind::SnapshotPart => {
                    flush(&mut sh, worker);
                    if let Some(f) = feed.as_ref().filter(|f| f.forwarding()) {
                        if let Ok(piece) = SnapshotPartMsg::from_view(&v) {
                            f.offer(piece);
                        }
                    }
                    let encoded = match pieces.add(&v) {
                        Ok(Some((_, e))) => e,
                        Ok(None) => continue,
                        Err(e) => {
                            eprintln!("output logger: bad snapshot piece: {e}");
                            return (false, il_ctl);
                        }
                    };
                    // The bytes are kept; the output logger needs only
                    // the cut from the decoded snapshot.
                    if let Ok(snap) = Snapshot::decode_summary(&encoded) {
                        let payload = Arc::new(encoded);
                        let cut = ol.handle_snapshot_encoded(snap, payload.clone());
                        // The snapshot before it is no longer the committed
                        // one: its bytes take the next snapshot.
                        if let Some(old) = previous.replace(payload.clone()) {
                            if let Ok(buf) = Arc::try_unwrap(old) {
                                pieces.recycle(buf);
                            }
                        }
                        if let Some(c) = &il_ctl {
                            let mut w = c.lock();
                            let _ = w
                                .send(&Message::SnapshotCommitted(SnapshotCommittedMsg {
                                    id: cut,
                                }))
                                .and_then(|_| w.flush());
                        }
                    }
                }
                FrameKind::Void => {
                    flush(&mut sh, worker);
                    let Ok(m) = VoidMsg::from_view(&v) else {
                        return (false, il_ctl);
                    };
                    ol.void_records(usize::from(m.worker), m.after, m.through);
                }
                FrameKind::Heartbeat => flush(&mut sh, worker),
                FrameKind::EndOfStream => {
                    flush(&mut sh, worker);
                    return (true, il_ctl);
                }
                _ => {}
            }
        }
    })
}

/// What a standby replica receives when it takes over.
pub struct TakeoverMsg {
    /// The snapshot to restore, if any.
    pub snapshot: Option<Snapshot>,
    /// Per worker: logged records after the cut.
    pub logs: Vec<Vec<(u64, LogRecord)>>,
    /// The cut: first input id to replay.
    pub cut: u64,
    /// Per worker: number new records from at least this (see
    /// `ReplayPlan::next_seq`).
    pub next_seq: Vec<u64>,
    /// When the takeover's last frame arrived (ns since the epoch), before
    /// the snapshot was decoded.
    pub received_ns: u64,
    /// The snapshot to restore is the one last handed to
    /// [`await_takeover`]'s `prepare` (`snapshot` is then `None`).
    pub prepared: bool,
}

/// As a standby, wait on the output logger for a takeover. Each snapshot
/// forwarded meanwhile is handed, encoded, to `prepare` (a replica loads it
/// into its router at once, and says whether it could), so that a takeover
/// with it has neither to decode nor to load it.
pub fn await_takeover(
    s: &Stream,
    nworkers: usize,
    prepare: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<TakeoverMsg, String> {
    let mut w = writer(s).map_err(|e| e.to_string())?;
    w.send(&Message::Resume(ResumeMsg { packet: 0 }))
        .and_then(|_| w.flush())
        .map_err(|e| e.to_string())?;
    let mut r = reader(s).map_err(|e| e.to_string())?;
    let mut t = TakeoverMsg {
        snapshot: None,
        logs: vec![Vec::new(); nworkers],
        cut: 1,
        next_seq: vec![0; nworkers],
        received_ns: 0,
        prepared: false,
    };
    // Snapshots arrive as they commit, while standing by. The frame
    // holding the last one is kept as read (the reader's buffer is swapped
    // for the one of the snapshot before, which the next frames reuse): no
    // copy, and no fresh pages, per snapshot.
    let mut last_frame: Vec<u8> = Vec::new();
    let mut encoded = 0..0;
    // The ids of the last snapshot received whole and of the last one
    // prepared.
    let (mut last_id, mut prepared) = (None, None);
    // Snapshots forwarded piece by piece as the master sends them; one
    // whose pieces stop short (its master died) is dropped.
    let mut parts = SnapshotParts::default();
    loop {
        let v = match r.next_frame() {
            Ok(Some(v)) => v,
            Ok(None) => return Err("output logger closed the standby link".into()),
            Err(e) => return Err(format!("output logger: {e}")),
        };
        if v.kind() == FrameKind::SnapshotPart {
            if let Ok(Some((id, whole))) = parts.add(&v) {
                parts.recycle(std::mem::replace(&mut last_frame, whole));
                encoded = 0..last_frame.len();
                last_id = Some(id);
                prepared = prepare(&last_frame).then_some(id);
            }
            continue;
        }
        if v.kind() == FrameKind::Snapshot {
            let (id, _, payload) =
                SnapshotMsg::parts(&v).map_err(|e| format!("output logger: {e}"))?;
            let start = payload.as_ptr() as usize - v.as_bytes().as_ptr() as usize;
            encoded = start..start + payload.len();
            r.swap_buffer(&mut last_frame);
            last_id = Some(id);
            // One that does not load is left for the takeover to report.
            prepared = last_frame
                .get(encoded.clone())
                .filter(|e| prepare(e))
                .map(|_| id);
            continue;
        }
        match Message::from_view(&v) {
            Ok(Message::LogBatch(b)) => {
                if let Some(l) = t.logs.get_mut(b.worker as usize) {
                    l.extend(
                        b.records
                            .into_iter()
                            .enumerate()
                            .map(|(i, r)| (b.first_seq + i as u64, r)),
                    );
                }
            }
            Ok(Message::Void(m)) => {
                if let Some(n) = t.next_seq.get_mut(usize::from(m.worker)) {
                    *n = m.through.saturating_add(1);
                }
            }
            Ok(Message::Resume(m)) => {
                t.cut = m.packet;
                t.received_ns = wall_ns();
                if let Some(encoded) = last_frame.get(encoded).filter(|e| !e.is_empty()) {
                    if prepared.is_some() && prepared == last_id {
                        t.prepared = true;
                    } else {
                        let snap =
                            Snapshot::decode(encoded).map_err(|e| format!("snapshot: {e}"))?;
                        t.snapshot = Some(snap);
                    }
                }
                return Ok(t);
            }
            Ok(_) => {}
            Err(e) => return Err(format!("output logger: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn piece(id: u64, offset: u64, total: u64) -> SnapshotPartMsg {
        SnapshotPartMsg {
            id,
            total,
            offset,
            data: vec![7; 4096],
        }
    }

    #[test]
    fn a_feed_stops_queueing_for_a_standby_that_went_away() {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let feed = Arc::new(StandbyFeed::default());
        // Nothing is queued before a standby is attached.
        assert!(!feed.forwarding());
        feed.offer(piece(1, 0, 8192));
        assert!(feed.queue.lock().pieces.is_empty());
        let (_s, feeder) = feed.attach(Stream::Unix(ours)).expect("attach");
        assert!(feed.forwarding());
        // The standby dies; the next write fails and the feed lets go.
        drop(theirs);
        let mut id = 1;
        while feed.forwarding() {
            id += 1;
            assert!(id < 10_000, "the feed still forwards to a closed socket");
            feed.offer(piece(id, 0, 8192));
            feed.offer(piece(id, 4096, 8192));
        }
        assert!(feed.queue.lock().pieces.is_empty());
        let (_, whole) = feeder.join().expect("feed thread");
        assert_eq!(whole, 0, "nothing reached a dead standby whole");
    }
}
