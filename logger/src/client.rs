//! The client side of the process roles: what the master and the replica
//! use to reach the loggers (see [`crate::server`] for the other side).
//!
//! - [`SocketLink`]: the master's (and, after a takeover, the replica's)
//!   link to the output logger: log batches, outputs, snapshot pieces, and
//!   heartbeats on a stream of their own.
//! - [`resume`] and [`RemoteInput`]: ask the input logger for its packets
//!   from an id on, and read them as the configuration's source.
//! - [`await_takeover`] and [`TakeoverMsg`]: stand by on the output logger
//!   until it hands the serving role over.

use crate::threads::{favour_this_thread, spawn};
pub use crate::transport::{connect, Addr};
use crate::transport::{reader, writer, Reader, Stream, Writer};
use crate::wire::{
    FrameKind, HeartbeatMsg, LogBatchMsg, Message, OutputMsg, PacketMsg, ResumeMsg, SnapshotMsg,
    SnapshotPartMsg, SnapshotParts, VoidMsg,
};
use ftmb_core::clock::wall_ns;
use ftmb_core::element::{Source, SourceStatus};
use ftmb_core::ft::{FtLink, OutputBatch, Shipment};
use ftmb_core::headers::Framing;
use ftmb_core::pal::LogRecord;
use ftmb_core::snapshot::Snapshot;
use ftmb_core::Packet;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------- output logger link

/// A logger's death, as the serving role (the master, or the replica that
/// took over) saw it: the first to see it says it here (and logs it at
/// level error, once); the role's input stops with it, so the run ends
/// at once and the role exits with the error.
#[derive(Clone, Default)]
pub struct PeerFailure(Arc<Mutex<Option<String>>>);

impl PeerFailure {
    /// Say that a peer failed (only the first word counts).
    pub fn fail(&self, why: String) {
        let mut g = self.0.lock();
        if g.is_none() {
            tracing::error!("{why}");
            *g = Some(why);
        }
    }

    /// The failure, if one was seen.
    pub fn get(&self) -> Option<String> {
        self.0.lock().clone()
    }
}

/// The master's (and the replica's) link to the output logger: frames over
/// a socket, plus a heartbeat every `period`. The output logger's death
/// (the data stream closes, or a write fails) is said in its
/// [`PeerFailure`].
pub struct SocketLink {
    w: Arc<Mutex<Writer>>,
    alive: Arc<AtomicBool>,
    failure: PeerFailure,
    /// The data stream, shut down when the link is dropped (the thread
    /// watching it for the output logger's end holds it open otherwise).
    data: Stream,
    /// The last snapshot's encoding, kept for the next one's (its pages
    /// stay mapped: megabytes every snapshot interval otherwise).
    snapshot_buf: Mutex<Vec<u8>>,
}

/// A link to the output logger ended while the role was still running:
/// the output logger died, or fenced this role off.
fn link_lost(alive: &AtomicBool, failure: &PeerFailure, link: &str) {
    if alive.load(Ordering::Acquire) {
        failure.fail(format!(
            "output logger lost: it closed the {link} link (it died, or fenced this role off)"
        ));
    }
}

impl SocketLink {
    /// Wrap a connected data stream; send heartbeats every `period` on
    /// `hb`, a stream of their own, so that a large frame on the data
    /// stream (a snapshot) never delays them.
    pub fn new(s: &Stream, hb: &Stream, period: Duration) -> std::io::Result<SocketLink> {
        SocketLink::with_failure(s, hb, period, PeerFailure::default())
    }

    /// As [`SocketLink::new`], saying the output logger's death in
    /// `failure` (shared with the role's [`RemoteInput`], which then ends
    /// the run with it).
    pub fn with_failure(
        s: &Stream,
        hb: &Stream,
        period: Duration,
        failure: PeerFailure,
    ) -> std::io::Result<SocketLink> {
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
            // The output logger sends nothing on the data stream: its end
            // is the output logger's death (or its fencing this role off).
            let mut r = reader(s)?;
            let alive = alive.clone();
            let failure = failure.clone();
            spawn("ftmb-ol-watch", move || loop {
                match r.next_frame() {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => {
                        link_lost(&alive, &failure, "data");
                        return;
                    }
                }
            })?;
        }
        {
            let w = Arc::new(Mutex::new(writer(hb)?));
            let alive = alive.clone();
            let failure = failure.clone();
            spawn("ftmb-heartbeat", move || {
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
                        link_lost(&alive, &failure, "heartbeat");
                        break;
                    }
                    std::thread::sleep(period);
                }
            })?;
        }
        Ok(SocketLink {
            w,
            alive,
            failure,
            data: s.try_clone()?,
            snapshot_buf: Mutex::new(Vec::new()),
        })
    }

    /// Where the output logger's death is said.
    pub fn failure(&self) -> PeerFailure {
        self.failure.clone()
    }

    /// A write to the output logger failed: it is gone.
    fn write_failed(&self, e: &std::io::Error) {
        if self.alive.load(Ordering::Acquire) {
            self.failure
                .fail(format!("output logger lost: a write to it failed ({e})"));
        }
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
        let _ = self.data.shutdown(std::net::Shutdown::Both);
    }
}

impl FtLink for SocketLink {
    fn void_records(&self, worker: usize, after: u64, through: u64) {
        let Ok(worker) = u16::try_from(worker) else {
            return;
        };
        let mut g = self.w.lock();
        let sent = g
            .send(&Message::Void(VoidMsg {
                worker,
                after,
                through,
            }))
            .and_then(|_| g.flush());
        drop(g);
        if let Err(e) = sent {
            self.write_failed(&e);
        }
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
        let sent = sent.and_then(|_| g.flush());
        drop(g);
        if let Err(e) = sent {
            self.write_failed(&e);
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
            if let Err(e) = sent {
                drop(g);
                self.write_failed(&e);
                return;
            }
        }
        tracing::debug!(id = snap.id, bytes = total, "snapshot sent");
    }
}

/// Bytes of a snapshot sent in one piece ([`SnapshotPartMsg`]).
const SNAPSHOT_PIECE: usize = 64 << 10;

/// Live packets a [`RemoteInput`] holds for the router at most.
const LIVE_QUEUE: usize = 4096;

/// What the input logger's stream gives the role reading it.
enum Item {
    Packet(Packet),
    /// The stream ended with `EndOfStream`: the input logger's sources
    /// are exhausted, a clean end of input.
    End,
    /// The stream ended without it (the input logger died) and the grace
    /// period passed: why.
    Lost(String),
}

/// How a [`RemoteInput`] treats the input logger's death.
#[derive(Clone, Default)]
pub struct InputWatch {
    /// How long to wait, once the stream ended without `EndOfStream`,
    /// before the input logger is taken for dead and the run stops with an
    /// error. Reconnecting within it is not done: without epochs on the
    /// wire a fenced-off master that reconnected would fence the replica
    /// off in turn (docs/failover.md).
    pub grace: Duration,
    /// Where the role's loggers' deaths are said: the input logger's is
    /// said here, and one said here by another part (the output logger's
    /// link) ends the input too.
    pub failure: PeerFailure,
}

/// Packets from the input logger, as a source whose packets are already
/// numbered (see [`ftmb_core::graph::Graph::external_input`]). The stream
/// must end with `EndOfStream` (a clean end of input, the source is then
/// done); an end without it is the input logger's death, which after the
/// grace period of its [`InputWatch`] makes the source fail (the run then
/// ends, and the role exits with the error).
pub struct RemoteInput {
    rx: crossbeam_channel::Receiver<Item>,
    framing: Framing,
    failure: PeerFailure,
    done: bool,
}

impl RemoteInput {
    /// Read packets from `r` (the input logger's stream, past its `Resume`
    /// answer) on a thread of its own until the stream ends.
    pub fn start(
        r: InputReader,
        framing: Framing,
        watch: InputWatch,
    ) -> std::io::Result<RemoteInput> {
        Ok(RemoteInput::start_after_replay(r, framing, 0, watch)?.0)
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
        watch: InputWatch,
    ) -> std::io::Result<(RemoteInput, crossbeam_channel::Receiver<Packet>)> {
        // A bounded channel allocates and initialises all its slots at
        // once: 65536 of them (8 MB) cost a replica 1-2 ms of page faults
        // on its way to the replay. 4096 packets still ride out a burst.
        let (tx, rx) = crossbeam_channel::bounded(LIVE_QUEUE);
        let (replay_tx, replay_rx) = crossbeam_channel::unbounded();
        let failure = watch.failure.clone();
        spawn("ftmb-remote-input", move || {
            let mut replay_left = replay;
            // The last packet received, for the error.
            let mut last = None;
            loop {
                // Packet frames are turned into packets straight from
                // the reader's buffer (one copy, one allocation).
                let p = match r.next_frame() {
                    Ok(Some(v)) if v.kind() == FrameKind::Packet => match PacketMsg::parts(&v) {
                        Ok((id, ts_ns, source, data)) => {
                            let mut p = Packet::from_bytes(data);
                            p.anno.id = id;
                            p.anno.ts_ns = ts_ns;
                            p.anno.source = source;
                            Item::Packet(p)
                        }
                        Err(e) => Item::Lost(format!("a broken packet frame ({e})")),
                    },
                    Ok(Some(v)) if v.kind() == FrameKind::EndOfStream => Item::End,
                    // Other frames are not for this reader.
                    Ok(Some(_)) => continue,
                    Ok(None) => Item::Lost("its stream ended without end of input".into()),
                    Err(e) => Item::Lost(format!("its stream broke ({e})")),
                };
                let p = match p {
                    Item::Packet(p) => p,
                    Item::End => {
                        tracing::info!("end of input");
                        let _ = tx.send(Item::End);
                        return;
                    }
                    Item::Lost(why) => {
                        let why = wait_out_grace(&watch, why, last);
                        let _ = tx.send(Item::Lost(why));
                        return;
                    }
                };
                last = Some(p.anno.id);
                let sent = if replay_left > 0 {
                    replay_left -= 1;
                    replay_tx.send(p).is_ok()
                } else {
                    tx.send(Item::Packet(p)).is_ok()
                };
                if !sent {
                    return;
                }
            }
        })?;
        let input = RemoteInput {
            rx,
            framing,
            failure,
            done: false,
        };
        Ok((input, replay_rx))
    }
}

/// The input logger's stream ended without end of input (`why`): wait out
/// the grace period (cut short if another peer's failure is said
/// meanwhile), then say the input logger's death. Returns the error.
fn wait_out_grace(watch: &InputWatch, why: String, last: Option<u64>) -> String {
    let last = last.map_or("none yet".to_string(), |id| id.to_string());
    tracing::warn!(
        grace_ms = watch.grace.as_secs_f64() * 1e3,
        last,
        "input logger: {why}; waiting out the grace period"
    );
    let until = std::time::Instant::now() + watch.grace;
    while std::time::Instant::now() < until {
        if let Some(other) = watch.failure.get() {
            return other;
        }
        std::thread::sleep(Duration::from_millis(1).min(watch.grace));
    }
    let msg = format!(
        "input logger lost: {why}, and it did not come back within the grace period \
         ({:.0} ms); last packet received: {last}",
        watch.grace.as_secs_f64() * 1e3
    );
    watch.failure.fail(msg.clone());
    watch.failure.get().unwrap_or(msg)
}

impl Source for RemoteInput {
    fn framing(&self) -> Framing {
        self.framing
    }
    fn poll(&mut self, max: usize, out: &mut Vec<Packet>) -> Result<SourceStatus, String> {
        if self.done {
            return Ok(SourceStatus::Done);
        }
        if let Some(why) = self.failure.get() {
            self.done = true;
            return Err(why);
        }
        while out.len() < max {
            match self.rx.try_recv() {
                Ok(Item::Packet(p)) => out.push(p),
                Ok(Item::End) => {
                    self.done = true;
                    return Ok(SourceStatus::Done);
                }
                Ok(Item::Lost(why)) => {
                    self.done = true;
                    return Err(why);
                }
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.done = true;
                    return Err("input logger: the stream's reader stopped".into());
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
pub type InputReader = Reader;

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

// ---------------------------------------------------------------- standby

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

/// As a standby, wait on the output logger for a takeover; `None` when the
/// run ended without one (the output logger ends the standby link with
/// `EndOfStream`; a link that closes without it is its death). Each snapshot
/// forwarded meanwhile is handed, encoded, to `prepare` (a replica loads it
/// into its router at once, and says whether it could), so that a takeover
/// with it has neither to decode nor to load it.
pub fn await_takeover(
    s: &Stream,
    nworkers: usize,
    prepare: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<Option<TakeoverMsg>, String> {
    let lost = |e: std::io::Error| format!("output logger lost: {e}");
    let mut w = writer(s).map_err(lost)?;
    w.send(&Message::Resume(ResumeMsg { packet: 0 }))
        .and_then(|_| w.flush())
        .map_err(lost)?;
    let mut r = reader(s).map_err(lost)?;
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
            Ok(None) => {
                return Err("output logger lost: it closed the standby link without \
                            ending the run"
                    .into())
            }
            Err(e) => return Err(format!("output logger lost: {e}")),
        };
        if v.kind() == FrameKind::SnapshotPart {
            if let Ok(Some((id, whole))) = parts.add(&v) {
                parts.recycle(std::mem::replace(&mut last_frame, whole));
                encoded = 0..last_frame.len();
                last_id = Some(id);
                prepared = prepare(&last_frame).then_some(id);
                tracing::debug!(
                    id,
                    loaded = prepared.is_some(),
                    "standby: snapshot forwarded"
                );
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
                return Ok(Some(t));
            }
            Ok(Message::EndOfStream) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(format!("output logger: {e}")),
        }
    }
}
