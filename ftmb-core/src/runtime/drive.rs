//! The driver: runs the `DriverManager` program on the calling thread,
//! waits for the events the input thread and the workers send, answers
//! handler reads, and stops the router at the end.
//!
//! Handlers are read when the program asks: from live workers through
//! their queues (so the answer reflects every packet dispatched before the
//! question), or, once stopped, from the joined workers.

use super::counters::InputShared;
use super::input::InputDone;
use super::msg::WorkerStats;
use super::msg::{Event, Msg};
use super::options::Progress;
use super::stats::handler_value;
use super::stats::SourceStats;
use super::worker::Worker;
use crate::driver::{DriverProgram, Insn};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the driver reports progress (and wakes to check deadlines).
const TICK: Duration = Duration::from_millis(100);

/// What is left of a stopped router.
pub(super) struct Stopped {
    /// The joined workers.
    pub(super) workers: Vec<Worker>,
    /// Errors from the sources and threads.
    pub(super) errors: Vec<String>,
    /// The sources' counters.
    pub(super) sources: SourceStats,
    /// When the replay's packets had all been processed.
    pub(super) replay_elapsed: Option<Duration>,
}

/// The driver's view of a running router.
pub(super) struct Driver {
    input: Option<JoinHandle<InputDone>>,
    /// The workers' queues, for handler reads (dropped at the stop).
    query_txs: Option<Vec<Sender<Msg>>>,
    handles: Option<Vec<JoinHandle<Worker>>>,
    events: Receiver<Event>,
    shared_in: Arc<InputShared>,
    start: Instant,
    /// The workers, once stopped and joined.
    finished: Option<Vec<Worker>>,
    errors: Vec<String>,
    source_stats: SourceStats,
    /// Every source is exhausted: no stop event will come again.
    exhausted: bool,
    replay_elapsed: Option<Duration>,
    tick: Instant,
}

impl Driver {
    pub(super) fn new(
        input: JoinHandle<InputDone>,
        query_txs: Vec<Sender<Msg>>,
        handles: Vec<JoinHandle<Worker>>,
        events: Receiver<Event>,
        shared_in: Arc<InputShared>,
        start: Instant,
    ) -> Driver {
        Driver {
            input: Some(input),
            query_txs: Some(query_txs),
            handles: Some(handles),
            events,
            shared_in,
            start,
            finished: None,
            errors: Vec::new(),
            source_stats: Vec::new(),
            exhausted: false,
            replay_elapsed: None,
            tick: Instant::now(),
        }
    }

    /// Run the program's instructions in order; the router is stopped as
    /// soon as every source is exhausted (handlers read after that see the
    /// joined workers).
    pub(super) fn run_program(
        &mut self,
        program: &DriverProgram,
        names: &[String],
        classes: &[String],
        out: &mut dyn Write,
        progress: &mut dyn FnMut(Progress),
    ) {
        for insn in &program.insns {
            match insn {
                Insn::WaitStop(n) => self.wait_events(*n, None, progress),
                Insn::WaitTime(d) => {
                    self.wait_events(u32::MAX, Some(Instant::now() + *d), progress)
                }
                Insn::Stop => break,
                Insn::Print(e, h) | Insn::Read(e, h) => {
                    let stats = self.worker_stats();
                    let text = handler_value(names, classes, &stats, e, h)
                        .unwrap_or_else(|| format!("(no handler {e}.{h})"));
                    if matches!(insn, Insn::Read(..)) {
                        eprintln!("{e}.{h}:\n{text}");
                    } else {
                        let _ = writeln!(out, "{text}");
                    }
                }
                Insn::PrintText(t) => {
                    let _ = writeln!(out, "{t}");
                }
            }
            if self.exhausted && self.finished.is_none() {
                self.stop();
            }
        }
    }

    /// Stop the router if the program has not, and hand over what is
    /// left of it.
    pub(super) fn finish(mut self) -> Stopped {
        if self.finished.is_none() {
            self.stop();
        }
        Stopped {
            workers: self.finished.take().unwrap_or_default(),
            errors: self.errors,
            sources: self.source_stats,
            replay_elapsed: self.replay_elapsed,
        }
    }

    /// Wait for `n` stop events (or until `deadline`, when a stop event
    /// ends the wait), reporting progress meanwhile.
    fn wait_events(
        &mut self,
        n: u32,
        deadline: Option<Instant>,
        progress: &mut dyn FnMut(Progress),
    ) {
        let mut got = 0;
        while got < n && !self.exhausted {
            let mut t = TICK;
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return;
                }
                t = t.min(d - now);
            }
            match self.events.recv_timeout(t) {
                Ok(Event::ReplayDone) => self.replay_elapsed = Some(self.start.elapsed()),
                Ok(Event::Stop) if deadline.is_some() => return,
                Ok(Event::Stop) => got += 1,
                Ok(Event::Exhausted) | Err(RecvTimeoutError::Disconnected) => self.exhausted = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.tick.elapsed() >= TICK {
                self.tick = Instant::now();
                progress(Progress {
                    packets: self.shared_in.packets.load(Ordering::Relaxed),
                    done: self.shared_in.done.load(Ordering::Relaxed),
                    total: self.shared_in.total.load(Ordering::Relaxed),
                    elapsed: self.start.elapsed(),
                });
            }
        }
    }

    /// Every worker's counters: asked over the queues while they run.
    fn worker_stats(&self) -> Vec<WorkerStats> {
        match (&self.finished, &self.query_txs) {
            (Some(ws), _) => ws.iter().map(|w| w.stats()).collect(),
            (None, Some(txs)) => txs
                .iter()
                .filter_map(|tx| {
                    let (rtx, rrx) = bounded(1);
                    tx.send(Msg::Query(rtx)).ok()?;
                    rrx.recv().ok()
                })
                .collect(),
            (None, None) => Vec::new(),
        }
    }

    /// Stop the input thread, close the worker queues and join the workers.
    fn stop(&mut self) {
        self.shared_in.stop.store(true, Ordering::Release);
        let mut ws = Vec::new();
        if let Some(h) = self.input.take() {
            match h.join() {
                Ok(done) => {
                    self.errors.extend(done.errors);
                    ws.extend(done.inline);
                    self.source_stats = done.sources;
                }
                Err(_) => self.errors.push("input thread panicked".into()),
            }
        }
        self.query_txs = None;
        for h in self.handles.take().unwrap_or_default() {
            match h.join() {
                Ok(w) => ws.push(w),
                Err(_) => self.errors.push("a worker thread panicked".into()),
            }
        }
        self.finished = Some(ws);
    }
}
