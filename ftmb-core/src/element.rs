//! The element model: what an element implements, what it gets back from
//! the runtime, and how the registry builds it from configuration.
//!
//! Phases, as in Click: **configure** (parse arguments with [`Args`],
//! reporting every error with its span), **initialize** (declare shared
//! state, sinks and outputs through [`InitCtx`]), **run** (packets arrive in
//! [`Element::push_batch`]). The runtime builds one instance of each
//! packet-processing element per worker thread, so an element's own fields
//! are worker-private state; anything several workers must see goes through
//! a [`crate::shared::Shared`] handle declared at initialize.
//!
//! A one-in/one-out element that acts on one packet at a time implements
//! [`Filter`] (one function per packet, Click's `simple_action`) and gets
//! its `push` and `push_batch` from the blanket [`Element`] impl.

use crate::args::Args;
use crate::config::ConfigError;
use crate::context::Ctx;
use crate::driver::DriverProgram;
use crate::egress::{Egress, SinkHandle, SinkRegistry};
use crate::headers::Framing;
use crate::packet::Packet;
use crate::shared::{Shared, SharedRegistry, StateCodec};
use std::sync::Arc;

/// Inclusive port-count ranges an element instance accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// Minimum and maximum number of input ports.
    pub inputs: (usize, usize),
    /// Minimum and maximum number of output ports.
    pub outputs: (usize, usize),
}

impl Ports {
    /// Exactly `i` inputs and `o` outputs.
    pub const fn fixed(i: usize, o: usize) -> Ports {
        Ports {
            inputs: (i, i),
            outputs: (o, o),
        }
    }
    /// One input, one output (a filter).
    pub const ONE_ONE: Ports = Ports::fixed(1, 1);
    /// One input, no output (a sink).
    pub const SINK: Ports = Ports::fixed(1, 0);
    /// One input, one or two outputs (the second takes rejects).
    pub const ONE_ONE_OR_TWO: Ports = Ports {
        inputs: (1, 1),
        outputs: (1, 2),
    };
}

/// A handler value, with the rule for combining the per-worker instances'
/// values into the element's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A per-worker count; the element's value is the sum.
    Count(u64),
    /// A per-worker rate or gauge; the element's value is the sum.
    Rate(f64),
    /// A value all workers share (it lives in shared state): taken from
    /// worker 0.
    Shared(String),
}

impl Value {
    /// Combine the values of two worker instances.
    pub fn combine(self, other: Value) -> Value {
        match (self, other) {
            (Value::Count(a), Value::Count(b)) => Value::Count(a + b),
            (Value::Rate(a), Value::Rate(b)) => Value::Rate(a + b),
            (a, _) => a,
        }
    }

    /// The text Click's handler would print.
    pub fn render(&self) -> String {
        match self {
            Value::Count(n) => n.to_string(),
            Value::Rate(r) => {
                if r.fract() == 0.0 {
                    format!("{r:.0}")
                } else {
                    format!("{r:.3}")
                }
            }
            Value::Shared(s) => s.clone(),
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Count(n) => serde_json::json!(n),
            Value::Rate(r) => serde_json::json!(r),
            Value::Shared(s) => match s.parse::<u64>() {
                Ok(n) => serde_json::json!(n),
                Err(_) => serde_json::json!(s),
            },
        }
    }
}

/// Where packets leave an element: one buffer per output port, plus drop
/// accounting. The runtime moves each buffer to the connected element once
/// `push_batch` returns.
#[derive(Debug, Default)]
pub struct Out {
    pub(crate) ports: Vec<Vec<Packet>>,
    pub(crate) drops: Vec<(&'static str, u64)>,
}

impl Out {
    /// An output set with `n` ports.
    pub fn with_ports(n: usize) -> Out {
        Out {
            ports: (0..n).map(|_| Vec::with_capacity(64)).collect(),
            drops: Vec::new(),
        }
    }

    /// Send `pkt` out of port `port`. A port the graph does not have (an
    /// optional port left unconnected) drops the packet, counted.
    #[inline]
    pub fn push(&mut self, port: usize, pkt: Packet) {
        match self.ports.get_mut(port) {
            Some(v) => v.push(pkt),
            None => self.drop(pkt, "no such output port"),
        }
    }

    /// Send every packet of `batch` out of `port`, leaving `batch` empty: a
    /// swap of buffers when the port has nothing queued, so a filter that
    /// changes packets in place moves no packet.
    #[inline]
    pub fn push_all(&mut self, port: usize, batch: &mut Vec<Packet>) {
        match self.ports.get_mut(port) {
            Some(v) if v.is_empty() => std::mem::swap(v, batch),
            Some(v) => v.append(batch),
            None => {
                for p in batch.drain(..) {
                    self.drop(p, "no such output port");
                }
            }
        }
    }

    /// Number of output ports this instance has in the graph.
    #[inline]
    pub fn nports(&self) -> usize {
        self.ports.len()
    }

    /// Drop `pkt`, counting it under `reason`.
    #[inline]
    pub fn drop(&mut self, pkt: Packet, reason: &'static str) {
        drop(pkt);
        self.count_drop(reason);
    }

    /// Count a drop under `reason` without a packet in hand.
    #[inline]
    pub fn count_drop(&mut self, reason: &'static str) {
        match self.drops.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.drops.push((reason, 1)),
        }
    }

    /// Take the packets queued on `port` (for driving an element by hand).
    pub fn take(&mut self, port: usize) -> Vec<Packet> {
        self.ports
            .get_mut(port)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Forget every queued packet (for driving an element by hand).
    pub fn clear(&mut self) {
        for p in &mut self.ports {
            p.clear();
        }
    }

    /// Drops so far, by reason.
    pub fn drops(&self) -> &[(&'static str, u64)] {
        &self.drops
    }
}

/// A packet-processing element. One instance runs per worker thread.
pub trait Element: Send + 'static {
    /// Port counts this instance accepts (checked once, at graph build).
    fn ports(&self) -> Ports {
        Ports::ONE_ONE
    }

    /// Process one packet that arrived on input `port`.
    fn push(&mut self, ctx: &mut Ctx, port: usize, pkt: Packet, out: &mut Out);

    /// Process a batch (all from input `port`); the default calls
    /// [`Element::push`] for each packet in order.
    fn push_batch(&mut self, ctx: &mut Ctx, port: usize, batch: &mut Vec<Packet>, out: &mut Out) {
        for p in batch.drain(..) {
            self.push(ctx, port, p, out);
        }
    }

    /// Read handlers and counters: `(name, value)` pairs, combined across
    /// workers by [`Value::combine`].
    fn stats(&self) -> Vec<(&'static str, Value)> {
        Vec::new()
    }

    /// Serialize this instance's worker-private state for a snapshot.
    /// Stateless elements keep the default (nothing).
    fn save_state(&self, _out: &mut Vec<u8>) {}

    /// For an element whose worker-private state is large: a copy of it as
    /// it is now, which the snapshot's capture thread encodes after the
    /// worker has resumed ([`SavedState::save`]: what
    /// [`Element::load_state`] reads back as this state). The
    /// worker stands still for the copy only: a table of plain values is
    /// copied like memory, where encoding it (in key order) takes far
    /// longer. Default: `None`, and `save_state` runs at the cut.
    fn copy_state(&mut self) -> Option<Box<dyn SavedState>> {
        None
    }

    /// Restore what [`Element::save_state`] wrote.
    fn load_state(&mut self, _buf: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// What a [`Filter`] decided for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the packet (as the filter left it) out of output 0.
    Pass,
    /// Drop the packet, counted under this reason.
    Drop(&'static str),
    /// Send the packet out of output 1 when that port is connected, else
    /// drop it, counted under this reason (Click's optional reject port).
    Reject(&'static str),
}

/// A one-in/one-out element written as one per-packet function (Click's
/// `simple_action`): every `Filter` is an [`Element`] whose `push` and
/// `push_batch` are written once, here. The batch loop is generic over the
/// filter and inlined, so a packet costs one direct call of
/// [`Filter::action`]; a batch in which every packet passes is forwarded
/// whole (a buffer swap, see [`Out::push_all`]).
///
/// The other methods mirror [`Element`]'s and have the same defaults.
pub trait Filter: Send + 'static {
    /// Port counts ([`Element::ports`]); a filter with a reject port
    /// returns [`Ports::ONE_ONE_OR_TWO`].
    fn ports(&self) -> Ports {
        Ports::ONE_ONE
    }

    /// Change `pkt` in place if need be and say where it goes.
    fn action(&mut self, ctx: &mut Ctx, pkt: &mut Packet) -> Verdict;

    /// As [`Element::stats`].
    fn stats(&self) -> Vec<(&'static str, Value)> {
        Vec::new()
    }

    /// As [`Element::save_state`].
    fn save_state(&self, _out: &mut Vec<u8>) {}

    /// As [`Element::load_state`].
    fn load_state(&mut self, _buf: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// Route one packet by its filter's verdict.
#[inline(always)]
fn route(verdict: Verdict, pkt: Packet, out: &mut Out) {
    match verdict {
        Verdict::Pass => out.push(0, pkt),
        Verdict::Drop(reason) => out.drop(pkt, reason),
        Verdict::Reject(_) if out.nports() > 1 => out.push(1, pkt),
        Verdict::Reject(reason) => out.drop(pkt, reason),
    }
}

impl<F: Filter> Element for F {
    fn ports(&self) -> Ports {
        Filter::ports(self)
    }

    #[inline]
    fn push(&mut self, ctx: &mut Ctx, _port: usize, mut pkt: Packet, out: &mut Out) {
        let verdict = self.action(ctx, &mut pkt);
        route(verdict, pkt, out);
    }

    /// Each packet is acted on once, in order. While every packet passes
    /// they stay in the batch; at the first that does not, the ones before
    /// it go to output 0 and the rest are routed one by one.
    #[inline]
    fn push_batch(&mut self, ctx: &mut Ctx, _port: usize, batch: &mut Vec<Packet>, out: &mut Out) {
        let mut first = None;
        for (i, p) in batch.iter_mut().enumerate() {
            let verdict = self.action(ctx, p);
            if verdict != Verdict::Pass {
                first = Some((i, verdict));
                break;
            }
        }
        let Some((stop, verdict)) = first else {
            out.push_all(0, batch);
            return;
        };
        let mut rest = batch.drain(..);
        for p in rest.by_ref().take(stop) {
            out.push(0, p);
        }
        if let Some(p) = rest.next() {
            route(verdict, p, out);
        }
        for mut p in rest {
            let verdict = self.action(ctx, &mut p);
            route(verdict, p, out);
        }
    }

    fn stats(&self) -> Vec<(&'static str, Value)> {
        Filter::stats(self)
    }

    fn save_state(&self, out: &mut Vec<u8>) {
        Filter::save_state(self, out);
    }

    fn load_state(&mut self, buf: &[u8]) -> Result<(), String> {
        Filter::load_state(self, buf)
    }
}

/// Worker-private state copied at a snapshot's cut, encoded later (see
/// [`Element::copy_state`]).
pub trait SavedState: Send {
    /// Append an encoding that [`Element::load_state`] reads back as the
    /// state at the copy: what [`Element::save_state`] would have written,
    /// except that the entries of unordered tables may come in any order
    /// (as in a snapshot's shared state: sorting a table of 100k flows is
    /// most of its encoding, and only state digests need an order).
    fn save(&self, out: &mut Vec<u8>);
}

impl<T: StateCodec + Send> SavedState for T {
    fn save(&self, out: &mut Vec<u8>) {
        self.encode_any_order(out);
    }
}

/// Whether a source's packets may be dropped when the workers fall behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait for queue space (files: nothing is lost).
    Block,
    /// Drop and count (live devices: the wire does not wait).
    Drop,
}

/// What a source's poll produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceStatus {
    /// Packets were appended (or may be soon): poll again.
    Ready,
    /// Nothing now; poll again after a short pause (pacing, idle device).
    Idle,
    /// Exhausted for good.
    Done,
}

/// A packet source (`FromDump`, `FromDevice`): no inputs, one output. The
/// runtime polls sources on its input thread, numbers their packets in
/// arrival order and hands each to a worker by flow hash.
pub trait Source: Send + 'static {
    /// How frames from this source begin (for the flow hash).
    fn framing(&self) -> Framing;
    /// Append up to `max` packets to `out`.
    fn poll(&mut self, max: usize, out: &mut Vec<Packet>) -> Result<SourceStatus, String>;
    /// Whether exhausting this source stops the router (Click's `STOP`).
    fn stop_when_done(&self) -> bool {
        false
    }
    /// Block or drop when workers fall behind.
    fn backpressure(&self) -> Backpressure {
        Backpressure::Block
    }
    /// `(done, total)` in bytes or packets, for progress reports.
    fn progress(&self) -> Option<(u64, u64)> {
        None
    }
    /// Counters.
    fn stats(&self) -> Vec<(&'static str, Value)> {
        Vec::new()
    }
    /// A file descriptor that becomes readable when the next poll may
    /// produce packets (a live device's socket), so an idle input loop can
    /// wait on it instead of spinning (see [`crate::idle`]). `None` (the
    /// default): the loop sleeps briefly between polls instead.
    fn readiness_fd(&self) -> Option<i32> {
        None
    }
}

/// What building an element produced.
pub enum Built {
    /// A packet-processing element (one per worker).
    Element(Box<dyn Element>),
    /// A source (one per router, on the input thread).
    Source(Box<dyn Source>),
    /// A `DriverManager` program (one per router, run by the driver).
    Driver(DriverProgram),
}

/// What the runtime offers an element while it initializes.
pub struct InitCtx<'a> {
    pub(crate) element: &'a str,
    pub(crate) worker: usize,
    pub(crate) nworkers: usize,
    pub(crate) shared: &'a mut SharedRegistry,
    pub(crate) sinks: &'a mut SinkRegistry,
}

impl<'a> InitCtx<'a> {
    /// A context for building elements outside a router (tests, tools).
    pub fn new(
        element: &'a str,
        worker: usize,
        nworkers: usize,
        shared: &'a mut SharedRegistry,
        sinks: &'a mut SinkRegistry,
    ) -> InitCtx<'a> {
        InitCtx {
            element,
            worker,
            nworkers,
            shared,
            sinks,
        }
    }

    /// The element's name in the configuration (`outer/inner` in compounds).
    pub fn element_name(&self) -> &str {
        self.element
    }

    /// Which worker this instance will run on.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// How many workers the router runs.
    pub fn nworkers(&self) -> usize {
        self.nworkers
    }

    /// Declare (or, on workers after the first, look up) the shared
    /// variable `state` of this element, split into `slots` lock domains,
    /// each starting as `init(slot)`. Its ids are deterministic from the
    /// configuration: the element name, `state` and the slot.
    pub fn shared<T: StateCodec + Clone>(
        &mut self,
        state: &str,
        slots: usize,
        init: impl FnMut(usize) -> T,
    ) -> Shared<T> {
        self.shared
            .declare(&format!("{}.{}", self.element, state), slots, init)
    }

    /// Declare (or look up) the output sink named `name` of this element;
    /// `open` runs once, for the first worker.
    pub fn sink(
        &mut self,
        open: impl FnOnce() -> Result<Box<dyn Egress>, String>,
    ) -> Result<SinkHandle, String> {
        self.sinks.declare(self.element, open)
    }

    /// Shared registry access for the runtime's own use.
    pub fn shared_registry(&self) -> &SharedRegistry {
        self.shared
    }
}

/// Configures and initializes one element instance.
pub type BuildFn = fn(&mut Args, &mut InitCtx<'_>) -> Result<Built, ConfigError>;

/// A registered element class.
#[derive(Clone)]
pub struct ElementClass {
    /// Click's class name.
    pub name: &'static str,
    /// One line of documentation for `ftmb elements`.
    pub summary: &'static str,
    /// Configure and initialize one instance.
    pub build: BuildFn,
}

/// The set of element classes a router can instantiate.
#[derive(Clone, Default)]
pub struct Registry {
    classes: Vec<ElementClass>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }
    /// Add a class (a later class of the same name replaces it).
    pub fn add(&mut self, class: ElementClass) -> &mut Self {
        self.classes.retain(|c| c.name != class.name);
        self.classes.push(class);
        self
    }
    /// Look a class up by name.
    pub fn get(&self, name: &str) -> Option<&ElementClass> {
        self.classes.iter().find(|c| c.name == name)
    }
    /// Every class, in registration order.
    pub fn classes(&self) -> &[ElementClass] {
        &self.classes
    }
    /// Every class name.
    pub fn names(&self) -> Vec<&'static str> {
        self.classes.iter().map(|c| c.name).collect()
    }
}

/// Shorthand for a packet-processing element result.
pub fn element(e: impl Element) -> Result<Built, ConfigError> {
    Ok(Built::Element(Box::new(e)))
}

/// Shared pointer to an egress, as stored in sinks.
pub type EgressRef = Arc<parking_lot::Mutex<Box<dyn Egress>>>;
