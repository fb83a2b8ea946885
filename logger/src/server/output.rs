//! The output logger's server (`ftmb output-logger`): it reads the serving
//! role's frames into an [`OutputLogger`], tells the input logger about
//! each committed snapshot, forwards snapshots to the standby replica as
//! they come (the standby feed), and runs the failure detector that hands
//! the serving role over to the standby.
//!
//! Failure detection: the serving role's data stream ends without
//! `EndOfStream` (a killed master: seen at once), or no frame reaches any
//! heartbeat connection for the deadline (a hung one: its data stream is
//! then shut down, fencing it off). The detector then drops the outputs
//! that can never commit, shuts the failed role's heartbeat connections
//! down, and sends the standby the takeover (`send_takeover`).
//!
//! The serving role's epoch is 1 for the first master and grows by one at
//! each takeover (diagnostics only; epochs are not on the wire).

use super::standby_feed::{Feeder, StandbyFeed};
use crate::output_logger::{OutputLogger, Takeover};
use crate::threads::{favour_this_thread, spawn};
use crate::transport::{
    connect, control_reader, reader, writer, Addr, Listener, Reader, Stream, Writer,
};
use crate::wire::{
    FrameKind, LogBatchMsg, LogBatchView, Message, OutputMsg, ResumeMsg, SnapshotCommittedMsg,
    SnapshotMsg, SnapshotPartMsg, SnapshotParts, VoidMsg,
};
use crossbeam_channel::{Receiver, Sender};
use ftmb_core::clock::wall_ns;
use ftmb_core::ft::{FtLink, Shipment};
use ftmb_core::snapshot::Snapshot;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the output logger observed, for the demo's report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct OutputLoggerReport {
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
    /// Why the run failed, when a peer died with no one to take its place
    /// (the input logger past its grace period, a master with no standby,
    /// the replica after it took over, the standby at the takeover): the
    /// output logger then exits with this error.
    pub failure: Option<String>,
    /// Replayed (or repeated) outputs that matched one already released
    /// by key but not by sink and bytes: a replay that departed from the
    /// master. Anything but 0 is a failure.
    pub divergence: u64,
    /// The first divergent outputs' keys, (input packet id, ordinal).
    pub divergent_outputs: Vec<(u64, u32)>,
}

/// The output logger's control link to the input logger: it opens with a
/// `Heartbeat` (naming it to the input logger), says which snapshots
/// committed, and ends with `EndOfStream` when the run ends cleanly (the
/// input logger then exits). The input logger sends nothing on it: its
/// end is the input logger's death.
struct IlLink {
    w: Mutex<Writer>,
    /// The run is ending: the link's end is no longer a death.
    ending: AtomicBool,
    /// When the link ended without the run ending, and how.
    lost: Mutex<Option<(std::time::Instant, String)>>,
}

impl IlLink {
    /// Connect to the input logger at `addr` and watch the link.
    fn open(addr: &Addr) -> std::io::Result<Arc<IlLink>> {
        let s = connect(addr, Duration::from_secs(10))?;
        let mut w = writer(&s)?;
        w.send(&Message::Heartbeat(crate::wire::HeartbeatMsg {
            seq: 0,
            ns: wall_ns(),
        }))?;
        w.flush()?;
        let link = Arc::new(IlLink {
            w: Mutex::new(w),
            ending: AtomicBool::new(false),
            lost: Mutex::new(None),
        });
        let mut r = reader(&s)?;
        let watched = link.clone();
        spawn("ftmb-ol-il-watch", move || {
            let why = loop {
                match r.next_frame() {
                    Ok(Some(_)) => continue,
                    Ok(None) => break "its control link closed".to_string(),
                    Err(e) => break format!("its control link broke ({e})"),
                }
            };
            if !watched.ending.load(Ordering::Acquire) {
                tracing::warn!("input logger: {why}; waiting out the grace period");
                *watched.lost.lock() = Some((std::time::Instant::now(), why));
            }
        })?;
        Ok(link)
    }

    /// The input logger's death, once `grace` has passed since its link
    /// ended (reconnecting is not done: see `docs/failover.md`).
    fn dead_past(&self, grace: Duration) -> Option<String> {
        let g = self.lost.lock();
        let (since, why) = g.as_ref()?;
        (since.elapsed() >= grace).then(|| {
            format!(
                "input logger lost: {why}, and it did not come back within the grace \
                 period ({:.0} ms)",
                grace.as_secs_f64() * 1e3
            )
        })
    }

    /// The run ended cleanly: tell the input logger, which then exits.
    fn end(&self) {
        self.ending.store(true, Ordering::Release);
        let mut w = self.w.lock();
        let _ = w.send(&Message::EndOfStream).and_then(|_| w.flush());
    }
}

/// The output logger's link to the input logger (none without one).
type InputLoggerControl = Option<Arc<IlLink>>;

/// Run the output logger on `listen` until the serving master (or, after a
/// failover, the replica) ends its stream cleanly, or a peer dies with no
/// one to take its place (`failure` in the report says which): the input
/// logger (`il`) once its control link has been closed for `il_grace`, the
/// master with no standby (waited for up to `deadline`, at least a
/// second), the replica that took over. At a clean end the input logger
/// and a standby that did not take over are told (`EndOfStream`), so that
/// they exit too.
pub fn run_output_logger(
    ol: Arc<OutputLogger>,
    listen: &Addr,
    il: Option<&Addr>,
    deadline: Duration,
    il_grace: Duration,
) -> std::io::Result<OutputLoggerReport> {
    // The input logger's control link first, opened (its first frame
    // sent) before anyone can connect here: once a master is connected, the
    // input logger knows of this output logger, and so learns of its death
    // (a link closed without `EndOfStream`) however early that comes.
    let il_ctl = match il {
        Some(p) => Some(IlLink::open(p)?),
        None => None,
    };
    let listener = Listener::bind(listen)?;
    let heartbeats = Heartbeats::listen(listen)?;
    let il_link = il_ctl.clone();
    let il_dead = || il_link.as_ref().and_then(|l| l.dead_past(il_grace));
    let mut report = OutputLoggerReport::default();
    let accepted = accept_master(&listener, &heartbeats)?;
    tracing::info!(epoch = 1, "master connected");
    let feed = Arc::new(StandbyFeed::default());
    let standby = watch_for_standby(listener, &feed, accepted.standby)?;
    let mut serving = Serving {
        epoch: 1,
        stream: accepted.master,
        reader: None,
        ended: crossbeam_channel::unbounded(),
    };
    serving.reader = Some(spawn_serving_reader(
        accepted.reader,
        ol.clone(),
        il_ctl,
        Some(feed.clone()),
        &serving,
    )?);
    let mut standby_left = Some(standby);
    loop {
        let (clean, ctl) = match serving.wait_for_end(&heartbeats, deadline, &il_dead) {
            Ok(x) => x,
            Err(why) => {
                report.failure = Some(why);
                break;
            }
        };
        if clean {
            // The input logger may have died just before (the master
            // ended its input then): that is no clean end.
            if let Some(l) = il_link.as_ref().filter(|l| l.lost.lock().is_some()) {
                while l.dead_past(il_grace).is_none() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                report.failure = l.dead_past(il_grace);
            }
            break;
        }
        if report.detected_ns.is_some() {
            report.failure = Some(format!(
                "the replica that took over (epoch {}) failed too: no standby left",
                serving.epoch
            ));
            break;
        }
        let Some(standby) = standby_left.take() else {
            break;
        };
        report.detected_ns = Some(wall_ns());
        report.last_heard_ns = Some(heartbeats.last_heard());
        heartbeats.fence_all();
        let take = ol.begin_failover();
        report.dropped_on_failover = take.dropped;
        // The standby (waited for if none has connected yet), and the
        // snapshot it may have been forwarded whole already.
        let wait = deadline.max(Duration::from_secs(1));
        let Ok((rs, feeder)) = standby.recv_timeout(wait) else {
            report.failure = Some(format!(
                "master lost (epoch {}) and no standby replica connected within {wait:?} \
                 to take over",
                serving.epoch
            ));
            break;
        };
        let cut = match send_takeover(&take, &rs, &feed, feeder) {
            Ok(cut) => cut,
            Err(e) => {
                report.failure = Some(format!(
                    "standby replica lost: the takeover could not be sent ({e})"
                ));
                break;
            }
        };
        report.takeover_sent_ns = Some(wall_ns());
        // Grace for the replica to restore and start its heartbeats.
        heartbeats.grant_grace(5_000_000_000);
        // Said once the takeover is on its way, not in its path.
        tracing::info!(
            epoch = serving.epoch,
            dropped = take.dropped,
            cut,
            "serving role failed: takeover sent to the standby"
        );
        serving.epoch += 1;
        serving.stream = rs;
        serving.reader = Some(spawn_serving_reader(
            reader(&serving.stream)?,
            ol.clone(),
            ctl,
            None,
            &serving,
        )?);
    }
    match &report.failure {
        Some(why) => tracing::error!("{why}"),
        None => tell_the_run_ended(il_link.as_deref(), standby_left, &feed),
    }
    finish_report(&ol, &mut report);
    Ok(report)
}

/// A clean end: the input logger and a standby that did not take over
/// exit on this word (`EndOfStream`).
fn tell_the_run_ended(
    il_link: Option<&IlLink>,
    standby: Option<Receiver<(Stream, Feeder)>>,
    feed: &StandbyFeed,
) {
    if let Some(l) = il_link {
        l.end();
    }
    if let Some(Ok((rs, feeder))) = standby.map(|s| s.try_recv()) {
        feed.stop(0);
        let sent = match feeder.join() {
            Ok((w, _)) => Ok(w),
            Err(_) => writer(&rs),
        }
        .and_then(|mut w| w.send(&Message::EndOfStream).and_then(|_| w.flush()));
        if let Err(e) = sent {
            tracing::warn!("the standby could not be told that the run ended: {e}");
        }
    }
}

/// The run's figures, from the output logger once everything is flushed.
fn finish_report(ol: &OutputLogger, report: &mut OutputLoggerReport) {
    ol.flush();
    let st = ol.stats();
    report.released = st.released;
    report.suppressed = st.suppressed;
    report.snapshots = st.snapshots;
    report.errors.extend(ol.errors());
    report.divergence = st.divergence;
    report.divergent_outputs = ol.diverged();
    if report.divergence > 0 {
        tracing::error!(
            divergence = report.divergence,
            first = ?report.divergent_outputs,
            "replayed outputs differ from the ones released under their keys"
        );
    }
    tracing::info!(
        released = report.released,
        suppressed = report.suppressed,
        divergence = report.divergence,
        snapshots = report.snapshots,
        "done"
    );
}

/// The heartbeat listener beside the main one, and what it heard: every
/// frame on any heartbeat connection proves the serving role alive.
struct Heartbeats {
    /// When a frame last arrived (ns since the epoch).
    last: Arc<AtomicU64>,
    /// The connections open now: at a failover they are the failed
    /// role's, and are shut down, so that a hung master that goes on
    /// afterwards cannot pass for the replica being alive.
    conns: Arc<Mutex<Vec<Stream>>>,
}

impl Heartbeats {
    /// Take heartbeats on `listen`'s heartbeat address, each connection
    /// read by a favoured thread of its own.
    fn listen(listen: &Addr) -> std::io::Result<Heartbeats> {
        let hb = Listener::bind(&listen.heartbeat()?)?;
        let heartbeats = Heartbeats {
            last: Arc::new(AtomicU64::new(wall_ns())),
            conns: Arc::default(),
        };
        let last = heartbeats.last.clone();
        let conns = heartbeats.conns.clone();
        spawn("ftmb-ol-heartbeats", move || {
            for conn in hb.incoming().flatten() {
                if let Ok(c) = conn.try_clone() {
                    conns.lock().push(c);
                }
                let last = last.clone();
                let _ = spawn("ftmb-ol-hb", move || {
                    favour_this_thread();
                    let Ok(mut r) = control_reader(&conn) else {
                        return;
                    };
                    while let Ok(Some(_)) = r.next_message() {
                        last.fetch_max(wall_ns(), Ordering::AcqRel);
                    }
                });
            }
        })?;
        Ok(heartbeats)
    }

    /// The serving role proved itself alive now.
    fn heard(&self) {
        self.last.fetch_max(wall_ns(), Ordering::AcqRel);
    }

    /// When the serving role was last heard from (ns since the epoch).
    fn last_heard(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    /// Whether nothing was heard for longer than `deadline`.
    fn silent_past(&self, deadline: Duration) -> bool {
        wall_ns().saturating_sub(self.last_heard()) > deadline.as_nanos() as u64
    }

    /// Count the serving role alive for `ns` from now.
    fn grant_grace(&self, ns: u64) {
        self.last.store(wall_ns() + ns, Ordering::Release);
    }

    /// Shut down every heartbeat connection open now (the failed role's).
    fn fence_all(&self) {
        for c in self.conns.lock().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The master's connection, and a standby's that came before it.
struct Accepted {
    master: Stream,
    /// The master's data stream, past its opening heartbeat.
    reader: Reader,
    standby: Option<Stream>,
}

/// Accept connections until the master's (its first frame is a
/// heartbeat); a standby replica's (its first frame is a `Resume`) that
/// comes first is returned beside it.
fn accept_master(listener: &Listener, heartbeats: &Heartbeats) -> std::io::Result<Accepted> {
    let mut standby = None;
    loop {
        let s = listener.accept()?;
        let mut r = reader(&s)?;
        match r.next_message() {
            Ok(Some(Message::Heartbeat(_))) => {
                // Its opening heartbeat proves the master alive now: the
                // detector must not count the time before it connected (a
                // master that starts slowly was taken for a dead one, and
                // the standby took over at start-up).
                heartbeats.heard();
                return Ok(Accepted {
                    master: s,
                    reader: r,
                    standby,
                });
            }
            Ok(Some(Message::Resume(_))) => standby = Some(s),
            _ => {}
        }
    }
}

/// A standby may connect before the master (`early`) or at any time after
/// it (a replica that came up later than the master had been missed until
/// the failover: no snapshot forwarded, every takeover sending one whole).
/// Attach it to `feed` once it has connected; the receiver yields it and
/// its feeder then.
fn watch_for_standby(
    listener: Listener,
    feed: &Arc<StandbyFeed>,
    early: Option<Stream>,
) -> std::io::Result<Receiver<(Stream, Feeder)>> {
    let (standby_tx, standby_rx) = crossbeam_channel::bounded(1);
    if let Some(s) = early {
        tracing::info!("standby attached");
        let _ = standby_tx.send(feed.attach(s)?);
        return Ok(standby_rx);
    }
    let feed = feed.clone();
    spawn("ftmb-ol-standby", move || {
        while let Ok(s) = listener.accept() {
            let Ok(mut r) = control_reader(&s) else {
                continue;
            };
            if let Ok(Some(Message::Resume(_))) = r.next_message() {
                if let Ok(attached) = feed.attach(s) {
                    tracing::info!("standby attached");
                    let _ = standby_tx.send(attached);
                }
                return;
            }
        }
    })?;
    Ok(standby_rx)
}

/// The role serving now (the master, then each replica that took over).
struct Serving {
    /// 1 for the first master, one more at each takeover.
    epoch: u64,
    /// Its data stream; shut down to fence it off.
    stream: Stream,
    /// The thread reading its frames into the output logger.
    reader: Option<JoinHandle<(bool, InputLoggerControl)>>,
    /// The reader says when its stream ends, so that a death is seen at
    /// once, not at the detector's next look.
    ended: (Sender<()>, Receiver<()>),
}

impl Serving {
    /// The failure detector: wait until the serving role's stream ends, or
    /// it is silent past `deadline` (then fence it off); wakes when the
    /// stream ends, and every 500 µs to look at the heartbeats. Returns
    /// whether the stream ended cleanly, and the input logger's control
    /// link back from the reader.
    /// Returns the input logger's death (`il_dead`) instead, if it comes
    /// first.
    fn wait_for_end(
        &mut self,
        heartbeats: &Heartbeats,
        deadline: Duration,
        il_dead: &dyn Fn() -> Option<String>,
    ) -> Result<(bool, InputLoggerControl), String> {
        loop {
            if let Some(why) = il_dead() {
                return Err(why);
            }
            let said = self
                .ended
                .1
                .recv_timeout(Duration::from_micros(500))
                .is_ok();
            let finished = said || self.reader.as_ref().is_some_and(|h| h.is_finished());
            let silent = heartbeats.silent_past(deadline);
            if !finished && !silent {
                continue;
            }
            if !finished {
                // Silent past the deadline: fence it off, so nothing it
                // still sends can reach the output logger after failover.
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
                tracing::warn!(
                    epoch = self.epoch,
                    silent_ms = wall_ns().saturating_sub(heartbeats.last_heard()) as f64 / 1e6,
                    "serving role silent past the deadline: fenced off"
                );
            }
            let (clean, ctl) = match self.reader.take() {
                Some(h) => h.join().unwrap_or((false, None)),
                None => (false, None),
            };
            // Joined, it has said it ended: the word must not be taken for
            // the next reader's.
            while self.ended.1.try_recv().is_ok() {}
            return Ok((clean, ctl));
        }
    }
}

/// Hand the serving role over to the standby on `rs`: the last committed
/// snapshot (unless `feed` forwarded it whole already), the log records
/// after its cut, a `Void` per worker whose frontier is past the records
/// it holds (the standby numbers its own records after it) and a
/// `Resume{cut}` marker. Returns the cut.
fn send_takeover(
    take: &Takeover,
    rs: &Stream,
    feed: &StandbyFeed,
    feeder: Feeder,
) -> std::io::Result<u64> {
    feed.stop(take.snapshot.as_ref().map_or(0, |s| s.id));
    let (mut w, sent) = match feeder.join() {
        Ok(x) => x,
        Err(_) => (writer(rs)?, 0),
    };
    let cut = take.snapshot.as_ref().map_or(1, |s| s.next_packet);
    if let Some(snap) = take.snapshot.as_ref().filter(|s| s.id != sent) {
        tracing::debug!(id = snap.id, "takeover: sending the snapshot whole");
        let payload = match &take.encoded {
            Some(b) => b.as_slice(),
            None => &snap.encode(),
        };
        SnapshotMsg::write_parts(snap.id, &[], payload, &mut w)?;
    }
    for (wk, recs) in take.logs.iter().enumerate() {
        w.send_with(|buf| LogBatchMsg::encode_numbered(wk as u16, recs, buf))?;
        // Records it received but no longer holds (voided by an earlier
        // replica): the standby numbers its own after them.
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
    Ok(cut)
}

/// Read the serving role's frames into the output logger on a thread of
/// its own, forwarding snapshot pieces to `feed`; the thread returns
/// whether the stream ended cleanly, and the input logger's control link
/// back.
fn spawn_serving_reader(
    r: Reader,
    ol: Arc<OutputLogger>,
    il_ctl: InputLoggerControl,
    feed: Option<Arc<StandbyFeed>>,
    serving: &Serving,
) -> std::io::Result<JoinHandle<(bool, InputLoggerControl)>> {
    /// Says so when the reader ends, however it ends.
    struct SayEnded(Sender<()>);
    impl Drop for SayEnded {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let ended = SayEnded(serving.ended.0.clone());
    let epoch = serving.epoch;
    spawn("ftmb-ol-reader", move || {
        let _ended = ended;
        let mut r = r;
        let pieces = SnapshotParts::with_limit(ol.max_snapshot());
        let mut sr = ServingReader {
            ol,
            il_ctl,
            feed,
            epoch,
            shipment: Shipment::default(),
            worker: 0,
            pieces,
            previous: None,
        };
        let clean = sr.run(&mut r);
        (clean, sr.il_ctl)
    })
}

/// The serving role's stream being read into the output logger.
struct ServingReader {
    ol: Arc<OutputLogger>,
    il_ctl: InputLoggerControl,
    feed: Option<Arc<StandbyFeed>>,
    epoch: u64,
    /// Records and outputs decoded in place into one shipment, handed over
    /// when the worker changes, every 64 outputs, and whenever the stream
    /// pauses (a heartbeat, a snapshot, the end).
    shipment: Shipment,
    /// The worker whose records and outputs `shipment` holds.
    worker: usize,
    /// The snapshot being received piece by piece.
    pieces: SnapshotParts,
    /// The committed snapshot's bytes, recycled for the next one once it
    /// is no longer the committed one.
    previous: Option<Arc<Vec<u8>>>,
}

/// A frame the stream must not carry: the serving role is taken for failed.
struct Broken;

impl ServingReader {
    /// Read until the stream ends; returns whether it ended cleanly
    /// (`EndOfStream`).
    fn run(&mut self, r: &mut Reader) -> bool {
        loop {
            let v = match r.next_frame() {
                Ok(Some(v)) => v,
                Ok(None) => return false,
                Err(e) => {
                    // A torn frame: the role died (or was fenced off)
                    // while sending it.
                    tracing::warn!(
                        epoch = self.epoch,
                        "the serving role's stream is unreadable: {e}"
                    );
                    return false;
                }
            };
            let kind = v.kind();
            let handled = match kind {
                FrameKind::LogBatch => match LogBatchView::new_checked(&v) {
                    Ok(b) => {
                        let worker = usize::from(b.worker());
                        self.flush();
                        self.worker = worker;
                        self.shipment.records.extend(b.records());
                        Ok(())
                    }
                    Err(_) => Err(Broken),
                },
                FrameKind::Output => {
                    OutputMsg::push_into(&v, &mut self.shipment.outputs).map_err(|_| Broken)
                }
                FrameKind::SnapshotPart => {
                    self.flush();
                    // Checked before it is forwarded: a piece the output
                    // logger refuses (out of order, a snapshot over its
                    // maximum) never reaches the standby either.
                    let added = self.pieces.add(&v);
                    if let Some(f) = self
                        .feed
                        .as_ref()
                        .filter(|f| added.is_ok() && f.forwarding())
                    {
                        if let Ok(piece) = SnapshotPartMsg::from_view(&v) {
                            f.offer(piece);
                        }
                    }
                    match added {
                        Ok(Some((_, encoded))) => {
                            self.commit_snapshot(encoded);
                            Ok(())
                        }
                        Ok(None) => Ok(()),
                        Err(e) => {
                            tracing::error!(epoch = self.epoch, "bad snapshot piece: {e}");
                            Err(Broken)
                        }
                    }
                }
                FrameKind::Void => {
                    self.flush();
                    match VoidMsg::from_view(&v) {
                        Ok(m) => {
                            self.ol
                                .void_records(usize::from(m.worker), m.after, m.through);
                            Ok(())
                        }
                        Err(_) => Err(Broken),
                    }
                }
                FrameKind::Heartbeat => {
                    self.flush();
                    Ok(())
                }
                FrameKind::EndOfStream => {
                    self.flush();
                    return true;
                }
                _ => Ok(()),
            };
            if handled.is_err() {
                return false;
            }
            // Hand records and outputs over in groups while more frames are
            // already buffered, but never hold one while waiting for the
            // next frame: on a live link that frame may be far off (an
            // output would sit until the next packet).
            let buffered = !r.get_ref().buffer().is_empty();
            match kind {
                FrameKind::LogBatch if !buffered => self.flush(),
                FrameKind::Output if self.shipment.outputs.len() >= 64 || !buffered => self.flush(),
                _ => {}
            }
        }
    }

    /// Hand what the shipment holds to the output logger.
    fn flush(&mut self) {
        let sh = &mut self.shipment;
        if !sh.records.is_empty() || !sh.outputs.is_empty() {
            self.ol.handle_shipment(self.worker, sh);
            sh.clear();
        }
    }

    /// A snapshot arrived whole: commit it, and tell the input logger its
    /// cut. The bytes are kept; the output logger needs only the cut from
    /// the decoded snapshot.
    fn commit_snapshot(&mut self, encoded: Vec<u8>) {
        let Ok(snap) = Snapshot::decode_summary(&encoded) else {
            return;
        };
        let id = snap.id;
        let payload = Arc::new(encoded);
        let cut = self.ol.handle_snapshot_encoded(snap, payload.clone());
        tracing::debug!(epoch = self.epoch, id, cut, "snapshot committed");
        // The snapshot before it is no longer the committed one: its bytes
        // take the next snapshot.
        if let Some(old) = self.previous.replace(payload) {
            if let Ok(buf) = Arc::try_unwrap(old) {
                self.pieces.recycle(buf);
            }
        }
        if let Some(c) = &self.il_ctl {
            let mut w = c.w.lock();
            let _ = w
                .send(&Message::SnapshotCommitted(SnapshotCommittedMsg {
                    id: cut,
                }))
                .and_then(|_| w.flush());
        }
    }
}
