//! Egress: where packets leave the system (`ToDump`, `ToDevice`).
//!
//! Sink elements do not write themselves: they hand packets to the runtime
//! with [`crate::context::Ctx::emit`]. Without fault tolerance the worker
//! writes its pending outputs to the sink once per batch, under the sink's
//! lock. With fault tolerance the same packets go to the output logger,
//! which holds each until it is committed and then writes it.

use crate::packet::Packet;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// A destination for packets that leave the system.
pub trait Egress: Send {
    /// Write packets, in order.
    fn write(&mut self, pkts: &[Packet]) -> std::io::Result<()>;
    /// Flush buffered output.
    fn flush(&mut self) -> std::io::Result<()>;
    /// Counters (packets, bytes, errors).
    fn stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Measures per-packet latency at egress: the time from each packet's
/// timestamp (the wall clock at input, with
/// [`crate::runtime::RunOptions::stamp_arrival`]) to its write, then hands
/// the packets to the egress it wraps.
pub struct LatencyProbe {
    inner: Box<dyn Egress>,
    samples: Arc<Mutex<Vec<u64>>>,
}

impl LatencyProbe {
    /// Put a probe in front of `sink`'s egress; the returned vector
    /// collects one latency in nanoseconds per packet written.
    pub fn install(sink: &Sink) -> Arc<Mutex<Vec<u64>>> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let mut g = sink.egress.lock();
        let inner = std::mem::replace(&mut *g, Box::new(NullEgress));
        *g = Box::new(LatencyProbe {
            inner,
            samples: samples.clone(),
        });
        samples
    }
}

impl Egress for LatencyProbe {
    fn write(&mut self, pkts: &[Packet]) -> std::io::Result<()> {
        let now = crate::clock::wall_ns();
        self.samples
            .lock()
            .extend(pkts.iter().map(|p| now.saturating_sub(p.anno.ts_ns)));
        self.inner.write(pkts)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
    fn stats(&self) -> Vec<(&'static str, u64)> {
        self.inner.stats()
    }
}

/// An egress that drops everything.
pub struct NullEgress;

impl Egress for NullEgress {
    fn write(&mut self, _pkts: &[Packet]) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The egress of a sink a role declares but does not open
/// ([`SinkRegistry::unopened`]): `ftmb check`, the input logger, the master
/// and the replica, whose outputs leave through the output logger. Nothing
/// is opened, created or truncated; a write is an error (it would be an
/// output that bypassed the output logger), a flush does nothing.
pub struct UnopenedEgress;

impl Egress for UnopenedEgress {
    fn write(&mut self, _pkts: &[Packet]) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "this role does not open its sinks: outputs leave through the output logger",
        ))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether a graph build opens its sinks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SinkMode {
    /// Open (create, truncate, connect) every sink: `ftmb run` and the
    /// output logger, the roles that write outputs.
    #[default]
    Open,
    /// Declare the sinks but open none ([`UnopenedEgress`]): `ftmb check`
    /// and every role whose outputs go to the output logger.
    Unopened,
}

/// A sink's identity: its index in the router's sink table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SinkHandle(pub u16);

/// One sink: the element that owns it and its writer.
pub struct Sink {
    /// Element name.
    pub element: String,
    /// The writer.
    pub egress: Mutex<Box<dyn Egress>>,
    /// First write error, if any.
    pub error: Mutex<Option<String>>,
}

/// Every sink of a router.
#[derive(Default)]
pub struct SinkRegistry {
    sinks: Vec<Arc<Sink>>,
    by_element: HashMap<String, u16>,
    mode: SinkMode,
}

impl SinkRegistry {
    /// An empty registry whose sinks are opened as they are declared.
    pub fn new() -> SinkRegistry {
        SinkRegistry::default()
    }

    /// An empty registry in `mode`; with [`SinkMode::Unopened`] no sink's
    /// `open` ever runs.
    pub fn with_mode(mode: SinkMode) -> SinkRegistry {
        SinkRegistry {
            mode,
            ..SinkRegistry::default()
        }
    }

    /// Declare the sink of `element` (opening it with `open` the first
    /// time), or return the existing one.
    pub fn declare(
        &mut self,
        element: &str,
        open: impl FnOnce() -> Result<Box<dyn Egress>, String>,
    ) -> Result<SinkHandle, String> {
        if let Some(&i) = self.by_element.get(element) {
            return Ok(SinkHandle(i));
        }
        let i = u16::try_from(self.sinks.len()).map_err(|_| "too many sinks".to_string())?;
        self.sinks.push(Arc::new(Sink {
            element: element.to_string(),
            egress: Mutex::new(match self.mode {
                SinkMode::Open => open()?,
                SinkMode::Unopened => Box::new(UnopenedEgress),
            }),
            error: Mutex::new(None),
        }));
        self.by_element.insert(element.to_string(), i);
        Ok(SinkHandle(i))
    }

    /// Every sink in declaration order.
    pub fn sinks(&self) -> &[Arc<Sink>] {
        &self.sinks
    }

    /// Flush every sink; the first error per sink is kept.
    pub fn flush_all(&self) {
        for s in &self.sinks {
            if let Err(e) = s.egress.lock().flush() {
                s.error.lock().get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// A worker's outputs waiting to be written, per sink.
#[derive(Default)]
pub struct SinkOutputs {
    pending: Vec<Vec<Packet>>,
    any: bool,
}

impl SinkOutputs {
    /// Queue `pkt` for `sink`.
    #[inline]
    pub fn push(&mut self, sink: &SinkHandle, pkt: Packet) {
        let i = sink.0 as usize;
        if self.pending.len() <= i {
            self.pending.resize_with(i + 1, Vec::new);
        }
        self.pending[i].push(pkt);
        self.any = true;
    }

    /// Queue every packet of `batch` for `sink`, leaving `batch` empty.
    #[inline]
    pub fn push_all(&mut self, sink: &SinkHandle, batch: &mut Vec<Packet>) {
        let i = sink.0 as usize;
        if self.pending.len() <= i {
            self.pending.resize_with(i + 1, Vec::new);
        }
        let q = &mut self.pending[i];
        if q.is_empty() {
            std::mem::swap(q, batch);
        } else {
            q.append(batch);
        }
        self.any = true;
    }

    /// True when something is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        !self.any
    }

    /// Take every queued packet, per sink index, leaving empty buffers.
    pub fn drain(&mut self, mut f: impl FnMut(usize, &mut Vec<Packet>)) {
        if !self.any {
            return;
        }
        for (i, v) in self.pending.iter_mut().enumerate() {
            if !v.is_empty() {
                f(i, v);
                v.clear();
            }
        }
        self.any = false;
    }

    /// Write everything queued to the sinks directly (no fault tolerance).
    pub fn write_to(&mut self, sinks: &[Arc<Sink>]) {
        self.drain(|i, v| {
            if let Some(s) = sinks.get(i) {
                if let Err(e) = s.egress.lock().write(v) {
                    s.error.lock().get_or_insert_with(|| e.to_string());
                }
            }
        });
    }
}
