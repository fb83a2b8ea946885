//! The input logger's server (`ftmb input-logger`): it reads the
//! configuration's sources, numbers and logs every packet
//! ([`InputLog`]), and feeds the serving role (the master, then the
//! replica that took over) from the log.
//!
//! Each consumer is fed by a thread of its own from the log, so that a
//! consumer that stops reading (a hung master, its socket buffer full)
//! holds up neither the logging of new packets nor the replica that takes
//! over from it: the takeover's `Resume` shuts the old consumer's stream
//! down (fencing it off) and starts feeding the replica. Consumers are
//! numbered from 1 in the order they resume: the number is the serving
//! role's epoch (1 for the first master, 2 for the replica that takes over
//! from it).

use crate::input_log::{DurableInputLog, InputLog, InputLogError};
use crate::threads::spawn;
use crate::transport::{control_reader, writer, Addr, Listener, Stream, Writer};
use crate::wire::{Message, PacketMsg, ResumeMsg};
use ftmb_core::element::{Source, SourceStatus};
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The input log: in memory only, or also in segment files.
enum Log {
    Memory(InputLog),
    Durable(DurableInputLog),
}

impl Log {
    fn append(&mut self, ts_ns: u64, source: u16, data: Vec<u8>) -> Result<u64, InputLogError> {
        match self {
            Log::Memory(l) => Ok(l.append(ts_ns, source, data)),
            Log::Durable(l) => l.append(ts_ns, source, data),
        }
    }

    /// The packets held in memory (replay reads them).
    fn mem(&self) -> &InputLog {
        match self {
            Log::Memory(l) => l,
            Log::Durable(l) => l.log(),
        }
    }

    /// Drop what precedes a committed snapshot's cut (and, on disk, every
    /// segment that holds only such packets).
    fn truncate_through(&mut self, id: u64) -> Result<usize, InputLogError> {
        match self {
            Log::Memory(l) => Ok(l.truncate_through(id)),
            Log::Durable(l) => l.truncate_through(id),
        }
    }
}

/// The input logger's state shared by its threads.
struct InputLoggerState {
    log: Log,
    /// Packets up to this id may be forwarded: all that are logged, or,
    /// with a durable log, those made durable ("persist, then forward").
    durable_through: u64,
    /// Group commits (one write and one `fdatasync` each) so far.
    syncs: u64,
    /// The stream of the consumer being fed (the master, or the replica
    /// that took over), shut down when another takes over.
    consumer: Option<Stream>,
    /// Generation of the newest consumer (its epoch); a forwarder of an
    /// older one stops.
    generation: u64,
    sources_done: bool,
    /// The output logger's word on the run, on its control link: `Ok` when
    /// it ended the run (`EndOfStream`), `Err` when the link closed
    /// without it (the output logger died).
    verdict: Option<Result<(), String>>,
}

/// The input logger's state and the signal that the log grew.
struct InputLogger {
    state: Mutex<InputLoggerState>,
    grew: Condvar,
}

/// Run the input logger: read `sources` (paced at `pps` packets per
/// second from the moment the first consumer connects; 0 = as fast as
/// the consumer takes them, from the start), number and log every
/// packet, and serve consumers on `listen`. Once the sources are
/// exhausted, consumers are sent `EndOfStream` after the last packet (the
/// explicit end of input). Returns the number of packets logged when the
/// output logger ends the run on its control link (`EndOfStream`), or
/// `until` says so; an error, naming the output logger, when that link
/// closes without it (the output logger died).
///
/// With `durable` (a log recovered from its directory), every packet is
/// written to its segment files and made durable before it is forwarded:
/// a thread of its own writes and syncs whatever was logged since its last
/// sync (group commit: the packets logged while one `fdatasync` runs share
/// the next), and segments behind each committed snapshot's cut are
/// deleted. The recovered packets are served as the log's start.
pub fn run_input_logger(
    mut sources: Vec<Box<dyn Source>>,
    listen: &Addr,
    pps: f64,
    durable: Option<DurableInputLog>,
    until: &AtomicBool,
) -> std::io::Result<u64> {
    let listener = Listener::bind(listen)?;
    let (log, is_durable) = match durable {
        Some(l) => (Log::Durable(l), true),
        None => (Log::Memory(InputLog::new()), false),
    };
    let durable_through = log.mem().next_id().saturating_sub(1);
    let il = Arc::new(InputLogger {
        state: Mutex::new(InputLoggerState {
            log,
            durable_through,
            syncs: 0,
            consumer: None,
            generation: 0,
            sources_done: false,
            verdict: None,
        }),
        grew: Condvar::new(),
    });
    accept_consumers(listener, &il)?;
    if is_durable {
        let il = il.clone();
        spawn("ftmb-il-sync", move || sync_log(&il))?;
    }
    // A paced source (a trace replayed at a rate) starts when the first
    // consumer, the master, has connected: what it would find already
    // logged is a backlog it starts behind on, not traffic at the rate.
    if pps > 0.0 {
        while !until.load(Ordering::Acquire) {
            let g = il.state.lock();
            if g.consumer.is_some() || g.verdict.is_some() {
                break;
            }
            drop(g);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let sent = log_sources(&mut sources, &il, pps);
    tracing::info!(
        packets = sent,
        syncs = il.state.lock().syncs,
        "sources done"
    );
    il.state.lock().sources_done = true;
    il.grew.notify_all();
    let mut g = il.state.lock();
    loop {
        match &g.verdict {
            Some(Ok(())) => {
                tracing::info!(packets = sent, "the output logger ended the run");
                return Ok(sent);
            }
            Some(Err(why)) => {
                tracing::error!("{why}");
                return Err(std::io::Error::other(why.clone()));
            }
            None if until.load(Ordering::Acquire) => return Ok(sent),
            None => {
                il.grew.wait_for(&mut g, Duration::from_millis(5));
            }
        }
    }
}

/// Serve every connection to `listener` on a thread of its own.
fn accept_consumers(listener: Listener, il: &Arc<InputLogger>) -> std::io::Result<()> {
    let il = il.clone();
    spawn("ftmb-il-accept", move || {
        for conn in listener.incoming().flatten() {
            let il = il.clone();
            let _ = spawn("ftmb-il-conn", move || serve_connection(conn, il));
        }
    })?;
    Ok(())
}

/// Read every source until all are done, appending what they give to the
/// log (at `pps` packets per second if it is positive); returns the number
/// of packets logged.
fn log_sources(sources: &mut [Box<dyn Source>], il: &InputLogger, pps: f64) -> u64 {
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut tmp = Vec::with_capacity(64);
    let mut active: Vec<bool> = vec![true; sources.len()];
    while active.iter().any(|a| *a) {
        // The output logger ended the run, or died: nothing more to log.
        if il.state.lock().verdict.is_some() {
            tracing::info!(packets = sent, "sources left unread: the run is over");
            break;
        }
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
                    tracing::error!(source = si, "source failed: {e}");
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
                match g.log.append(p.anno.ts_ns, si as u16, p.data().to_vec()) {
                    Ok(id) => {
                        if let Log::Memory(_) = g.log {
                            g.durable_through = id;
                        }
                        sent += 1;
                    }
                    Err(e) => {
                        // The log cannot be written: nothing more may be
                        // accepted (it could not be replayed).
                        let why = format!("input log: a write failed ({e})");
                        g.verdict.get_or_insert(Err(why));
                        break;
                    }
                }
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
    sent
}

/// Make the durable log's new packets durable, as many at a time as were
/// logged since the last sync (group commit), until the run is over; the
/// packets synced may then be forwarded. A failure ends the run with it.
fn sync_log(il: &InputLogger) {
    loop {
        let (target, file) = {
            let mut g = il.state.lock();
            loop {
                if g.verdict.is_some() {
                    return;
                }
                if g.log.mem().next_id() > g.durable_through + 1 {
                    break;
                }
                il.grew.wait(&mut g);
            }
            let target = g.log.mem().next_id() - 1;
            let file = match &mut g.log {
                Log::Durable(l) => l.write_out(),
                Log::Memory(_) => return,
            };
            match file {
                Ok(f) => (target, f),
                Err(e) => {
                    g.verdict
                        .get_or_insert(Err(format!("input log: a write failed ({e})")));
                    il.grew.notify_all();
                    return;
                }
            }
        };
        if let Some(Err(e)) = file.map(|f| f.sync_data()) {
            il.state
                .lock()
                .verdict
                .get_or_insert(Err(format!("input log: a sync failed ({e})")));
            il.grew.notify_all();
            return;
        }
        let mut g = il.state.lock();
        g.durable_through = g.durable_through.max(target);
        g.syncs += 1;
        drop(g);
        il.grew.notify_all();
    }
}

/// Packets a forwarder copies out of the log at a time.
const FORWARD_BATCH: usize = 256;

/// Serve one connection: a `Resume` makes it the consumer fed from the
/// log; a connection that opens with a `Heartbeat` is the output logger's
/// control link, on which a `SnapshotCommitted` truncates the log and
/// `EndOfStream` ends the run (an end without it: the output logger died).
fn serve_connection(conn: Stream, il: Arc<InputLogger>) {
    let Ok(mut r) = control_reader(&conn) else {
        return;
    };
    let mut control = false;
    loop {
        let verdict = match r.next_message() {
            Ok(Some(Message::Resume(m))) => {
                if start_feeding(&conn, &il, m.packet).is_err() {
                    return;
                }
                continue;
            }
            Ok(Some(Message::Heartbeat(_))) => {
                control = true;
                continue;
            }
            Ok(Some(Message::SnapshotCommitted(m))) => {
                // The output logger committed a snapshot: drop what
                // precedes its cut.
                tracing::debug!(
                    cut = m.id,
                    "snapshot committed: log truncated before its cut"
                );
                if let Err(e) = il.state.lock().log.truncate_through(m.id.saturating_sub(1)) {
                    tracing::warn!("input log: segments behind the cut not deleted: {e}");
                }
                continue;
            }
            Ok(Some(Message::EndOfStream)) => Ok(()),
            Ok(Some(_)) => continue,
            Ok(None) => Err(
                "output logger lost: its control link closed without ending the run".to_string(),
            ),
            Err(e) => Err(format!("output logger lost: its control link broke ({e})")),
        };
        // A consumer's connection that ends says nothing about the run.
        if control {
            il.state.lock().verdict.get_or_insert(verdict);
            il.grew.notify_all();
        }
        return;
    }
}

/// A (new) consumer on `conn` asked for the log from packet `from` on: it
/// replaces the one fed so far, whose stream is shut down (fencing a
/// master that the output logger gave up on, even one that only hangs).
/// Tell it where live traffic starts, then feed it from the log on a
/// thread of its own.
fn start_feeding(conn: &Stream, il: &Arc<InputLogger>, from: u64) -> std::io::Result<()> {
    let mut w = writer(conn)?;
    let fence = conn.try_clone()?;
    let (generation, live, fenced) = {
        let mut g = il.state.lock();
        g.generation += 1;
        let generation = g.generation;
        let old = g.consumer.replace(fence);
        let fenced = old.is_some();
        if let Some(old) = old {
            let _ = old.shutdown(std::net::Shutdown::Both);
        }
        (generation, g.log.mem().next_id(), fenced)
    };
    il.grew.notify_all();
    // The answer goes at once: a replica starts its run (and replays each
    // packet as it comes) when it has it, not once the first few hundred
    // kilobytes of the log are queued behind it (2-3 ms in the demo).
    w.send(&Message::Resume(ResumeMsg { packet: live }))
        .and_then(|_| w.flush())?;
    tracing::info!(
        epoch = generation,
        from,
        live,
        fenced_previous = fenced,
        "consumer resumed"
    );
    let il = il.clone();
    let _ = spawn("ftmb-il-feed", move || {
        feed_consumer(w, &il, generation, from)
    });
    Ok(())
}

/// Send consumer `generation` the log from packet `next` on, then each
/// packet as it is logged, then the end of the stream once the sources
/// are done; stop when another consumer replaces it or its stream fails.
/// Packets are copied out under the lock and written outside it.
fn feed_consumer(mut w: Writer, il: &InputLogger, generation: u64, mut next: u64) {
    let mut batch: Vec<PacketMsg> = Vec::with_capacity(FORWARD_BATCH);
    loop {
        let done = {
            let mut g = il.state.lock();
            loop {
                if g.generation != generation {
                    return;
                }
                let st = &*g;
                batch.extend(
                    st.log
                        .mem()
                        .iter_after(next.saturating_sub(1))
                        .take_while(|p| p.id <= st.durable_through)
                        .take(FORWARD_BATCH)
                        .cloned(),
                );
                let all_out = st.durable_through + 1 >= st.log.mem().next_id();
                if !batch.is_empty() || (st.sources_done && all_out) {
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
