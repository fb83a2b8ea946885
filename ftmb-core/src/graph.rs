//! Graph build: instantiate every element of a parsed configuration once
//! per worker, and check port counts and connections once, so that the
//! packet path never re-checks them.

use crate::args::Args;
use crate::config::{self, Config, ConfigError, Source as ConfigSource};
use crate::driver::DriverProgram;
use crate::egress::{SinkMode, SinkRegistry};
use crate::element::{Built, Element, InitCtx, Ports, Registry, Source};
use crate::shared::SharedRegistry;
use crate::snapshot::{Snapshot, SnapshotState};
use std::collections::BTreeMap;

/// What kind of node an element became.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Packet-processing element, one instance per worker.
    Element,
    /// A source polled by the input thread (index into the sources).
    Source(usize),
    /// The driver program.
    Driver,
}

/// A built, checked router graph.
pub struct Graph {
    /// Element names, by index.
    pub names: Vec<String>,
    /// Element class names, by index.
    pub classes: Vec<String>,
    /// Node kinds, by index.
    pub kinds: Vec<NodeKind>,
    /// `outputs[e][p] = (element, input port)` connected to output `p` of `e`.
    pub outputs: Vec<Vec<(usize, usize)>>,
    /// Element instances per worker (`None` for sources and the driver).
    pub workers: Vec<Vec<Option<Box<dyn Element>>>>,
    /// Sources with the element index each came from.
    pub sources: Vec<(usize, Box<dyn Source>)>,
    /// The driver program (the implicit one when the config has none).
    pub driver: DriverProgram,
    /// Shared variables declared by the elements.
    pub shared: SharedRegistry,
    /// Output sinks declared by the elements.
    pub sinks: SinkRegistry,
    /// Packets to run instead of polling the sources: an input logger's
    /// stream, already numbered (ids and source indexes set). The sources
    /// are then only used for their framing.
    pub external_input: Option<Box<dyn Source>>,
    /// The id of the snapshot already loaded into the elements and shared
    /// variables ([`Graph::restore`]), so a run does not load it again.
    pub restored: Option<u64>,
}

impl Graph {
    /// Load snapshot `snap`'s element and shared state now, before the run
    /// (a replica does this while it fetches the input log). The run still
    /// needs the snapshot in its options, for the generators and log
    /// positions.
    pub fn restore(&mut self, snap: &Snapshot) -> Result<(), String> {
        self.restore_state(snap.id, snap.state())
    }

    /// [`Graph::restore`] from an encoded snapshot, its state read where it
    /// lies; returns the snapshot without its state (what a run needs).
    pub fn restore_encoded(&mut self, bytes: &[u8]) -> Result<Snapshot, String> {
        let (snap, state) = Snapshot::decode_in_place(bytes).map_err(|e| e.to_string())?;
        self.restore_state(snap.id, state)?;
        Ok(snap)
    }

    fn restore_state(&mut self, id: u64, state: SnapshotState<'_>) -> Result<(), String> {
        // A load that fails part-way leaves no snapshot loaded.
        self.restored = None;
        load_into(&mut self.workers, &self.shared, state)
            .map_err(|e| format!("snapshot {id} does not fit this router: {e}"))?;
        self.restored = Some(id);
        Ok(())
    }
}

/// Load a snapshot's element and shared state into the workers (every
/// element's and variable's state is replaced, so a router may load one
/// snapshot after another).
fn load_into(
    workers: &mut [Vec<Option<Box<dyn Element>>>],
    shared: &SharedRegistry,
    state: SnapshotState<'_>,
) -> Result<(), String> {
    if state.elements.len() != workers.len() {
        return Err(format!(
            "it has {} workers, the router {}",
            state.elements.len(),
            workers.len()
        ));
    }
    for (w, (elems, ws)) in workers.iter_mut().zip(&state.elements).enumerate() {
        if ws.len() != elems.len() {
            return Err(format!("worker {w}: element count differs"));
        }
        for (i, (e, bytes)) in elems.iter_mut().zip(ws).enumerate() {
            if let Some(e) = e {
                e.load_state(bytes)
                    .map_err(|err| format!("worker {w} element {i}: {err}"))?;
            }
        }
    }
    let mut inp = state.shared;
    for v in shared.vars() {
        v.decode_all(&mut inp).map_err(|e| e.to_string())?;
    }
    if !inp.is_empty() {
        return Err(format!("{} bytes of shared state left over", inp.len()));
    }
    Ok(())
}

/// A configuration error together with the source text it points into, so
/// it can be rendered with file:line:column.
#[derive(Debug)]
pub struct BuildError {
    /// The error.
    pub error: ConfigError,
    /// The configuration it refers to.
    pub source: ConfigSource,
}

impl BuildError {
    /// The ariadne report (file:line:column, the text underlined).
    pub fn render(&self, color: bool) -> String {
        self.error.render(&self.source, color)
    }
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for BuildError {}

/// Parse `source` and build the graph for `nworkers` workers, opening its
/// sinks.
pub fn build(
    source: &ConfigSource,
    vars: &BTreeMap<String, String>,
    registry: &Registry,
    nworkers: usize,
) -> Result<Graph, BuildError> {
    build_with(source, vars, registry, nworkers, SinkMode::Open)
}

/// [`build`], opening the sinks or not: a role whose outputs leave through
/// the output logger (and `ftmb check`) builds with
/// [`SinkMode::Unopened`], so that no file is created or truncated but the
/// output logger's.
pub fn build_with(
    source: &ConfigSource,
    vars: &BTreeMap<String, String>,
    registry: &Registry,
    nworkers: usize,
    sinks: SinkMode,
) -> Result<Graph, BuildError> {
    let names = registry.names();
    let wrap = |error: ConfigError| BuildError {
        error,
        source: source.clone(),
    };
    let cfg = config::parse(source, vars, &names).map_err(wrap)?;
    build_config(&cfg, registry, nworkers.max(1), sinks).map_err(wrap)
}

fn build_config(
    cfg: &Config,
    registry: &Registry,
    nworkers: usize,
    sink_mode: SinkMode,
) -> Result<Graph, ConfigError> {
    let n = cfg.elements.len();
    if n == 0 {
        return Err(ConfigError::new(
            "the configuration declares no elements",
            config::Span::new(0, 0),
        )
        .with_help("a router needs at least a source, e.g. `FromDump($IN) -> Discard`"));
    }
    let mut shared = SharedRegistry::new();
    let mut sinks = SinkRegistry::with_mode(sink_mode);
    let mut kinds = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    let mut workers: Vec<Vec<Option<Box<dyn Element>>>> =
        (0..nworkers).map(|_| Vec::with_capacity(n)).collect();
    let mut sources = Vec::new();
    let mut driver: Option<DriverProgram> = None;

    for (worker, instances) in workers.iter_mut().enumerate() {
        for (i, decl) in cfg.elements.iter().enumerate() {
            if worker > 0 && kinds[i] != NodeKind::Element {
                instances.push(None);
                continue;
            }
            let class = registry.get(&decl.class).ok_or_else(|| {
                let mut e = ConfigError::new(
                    format!("unknown element class `{}`", decl.class),
                    decl.class_span,
                );
                if let Some(s) = config::suggest(&decl.class, registry.names()) {
                    e = e.with_help(format!("did you mean `{s}`?"));
                }
                e
            })?;
            let mut args = Args::new(&decl.class, &decl.args, decl.args_span);
            let mut ictx = InitCtx::new(&decl.name, worker, nworkers, &mut shared, &mut sinks);
            let built = (class.build)(&mut args, &mut ictx).map_err(|mut e| {
                if e.span.start == 0 && e.span.end == 0 {
                    e.span = decl.args_span;
                }
                e
            })?;
            args.finish()?;
            match built {
                Built::Element(el) => {
                    if worker == 0 {
                        kinds.push(NodeKind::Element);
                        ports.push(el.ports());
                    }
                    instances.push(Some(el));
                }
                Built::Source(src) => {
                    kinds.push(NodeKind::Source(sources.len()));
                    ports.push(Ports::fixed(0, 1));
                    sources.push((i, src));
                    instances.push(None);
                }
                Built::Driver(prog) => {
                    if driver.is_some() {
                        return Err(ConfigError::new(
                            "router has more than one DriverManager",
                            decl.span,
                        ));
                    }
                    driver = Some(prog);
                    kinds.push(NodeKind::Driver);
                    ports.push(Ports::fixed(0, 0));
                    instances.push(None);
                }
            }
        }
    }

    let outputs = check_ports(cfg, &ports)?;
    check_acyclic(cfg, &outputs)?;
    let driver = driver.unwrap_or_else(DriverProgram::default_program);
    let names: Vec<String> = cfg.elements.iter().map(|d| d.name.clone()).collect();
    for (e, h, span) in driver.handler_refs() {
        if !names.iter().any(|n| n == e) {
            let mut err = ConfigError::new(format!("no element named `{e}`"), span);
            if let Some(s) = config::suggest(e, names.iter().map(|s| s.as_str())) {
                err = err.with_help(format!("did you mean `{s}`?"));
            }
            return Err(err);
        }
        let _ = h;
    }
    Ok(Graph {
        names,
        classes: cfg.elements.iter().map(|d| d.class.clone()).collect(),
        kinds,
        outputs,
        workers,
        sources,
        driver,
        shared,
        sinks,
        external_input: None,
        restored: None,
    })
}

/// Refuse a push cycle: a packet pushed around it would never leave (there
/// is no queue to break it), so `run` would spin forever. The error points
/// at the first element of the cycle found and names the whole loop.
fn check_acyclic(cfg: &Config, outputs: &[Vec<(usize, usize)>]) -> Result<(), ConfigError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let n = outputs.len();
    let mut mark = vec![Mark::New; n];
    for root in 0..n {
        if mark[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next output to follow).
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnPath;
        while let Some(top) = path.last_mut() {
            let (node, next) = *top;
            let Some(&(to, _)) = outputs[node].get(next) else {
                mark[node] = Mark::Done;
                path.pop();
                continue;
            };
            top.1 += 1;
            match mark[to] {
                Mark::New => {
                    mark[to] = Mark::OnPath;
                    path.push((to, 0));
                }
                Mark::OnPath => {
                    let from = path.iter().position(|&(e, _)| e == to).unwrap_or(0);
                    let cycle: Vec<usize> = path[from..].iter().map(|&(e, _)| e).collect();
                    let names: Vec<&str> = cycle
                        .iter()
                        .chain(std::iter::once(&to))
                        .map(|&e| cfg.elements[e].name.as_str())
                        .collect();
                    let mut err = ConfigError::new(
                        format!(
                            "push cycle: {} (a packet would go round it forever)",
                            names.join(" -> ")
                        ),
                        cfg.elements[to].span,
                    )
                    .with_help("break the cycle: push paths must end in a sink or Discard");
                    for &e in cycle.iter().skip(1) {
                        err = err.with_label(cfg.elements[e].span, "in the cycle".to_string());
                    }
                    return Err(err);
                }
                Mark::Done => {}
            }
        }
    }
    Ok(())
}

/// Check every connection against the port counts; return the output
/// adjacency.
fn check_ports(cfg: &Config, ports: &[Ports]) -> Result<Vec<Vec<(usize, usize)>>, ConfigError> {
    let n = cfg.elements.len();
    let mut out_used: Vec<BTreeMap<usize, (usize, usize, config::Span)>> = vec![BTreeMap::new(); n];
    let mut in_used: Vec<BTreeMap<usize, config::Span>> = vec![BTreeMap::new(); n];
    let name = |i: usize| &cfg.elements[i].name;
    let class = |i: usize| &cfg.elements[i].class;
    let plural = |k: usize, w: &str| {
        if k == 1 {
            format!("1 {w}")
        } else {
            format!("{k} {w}s")
        }
    };
    for c in &cfg.connections {
        let (fmax, tmax) = (ports[c.from].outputs.1, ports[c.to].inputs.1);
        if c.from_port >= fmax {
            return Err(ConfigError::new(
                format!(
                    "`{}` ({}) has {}, so output {} does not exist",
                    name(c.from),
                    class(c.from),
                    plural(fmax, "output"),
                    c.from_port
                ),
                c.span,
            ));
        }
        if c.to_port >= tmax {
            return Err(ConfigError::new(
                format!(
                    "`{}` ({}) has {}, so input {} does not exist",
                    name(c.to),
                    class(c.to),
                    plural(tmax, "input"),
                    c.to_port
                ),
                c.span,
            ));
        }
        if let Some((_, _, prev)) = out_used[c.from].get(&c.from_port) {
            return Err(ConfigError::new(
                format!(
                    "output {} of `{}` is connected twice (push outputs connect to one input)",
                    c.from_port,
                    name(c.from)
                ),
                c.span,
            )
            .with_label(*prev, "first connected here".to_string())
            .with_help("use Tee to copy packets to several elements".to_string()));
        }
        out_used[c.from].insert(c.from_port, (c.to, c.to_port, c.span));
        in_used[c.to].entry(c.to_port).or_insert(c.span);
    }
    let mut outputs = Vec::with_capacity(n);
    for i in 0..n {
        let nout = out_used[i]
            .keys()
            .next_back()
            .map_or(0, |p| p + 1)
            .max(ports[i].outputs.0);
        // Not sized from `nout`: a port number in the text (`t[4000000000]`)
        // must not reserve memory; the first gap below it is an error.
        let mut adj = Vec::with_capacity(out_used[i].len());
        for p in 0..nout {
            match out_used[i].get(&p) {
                Some(&(to, tp, _)) => adj.push((to, tp)),
                None => {
                    return Err(ConfigError::new(
                        format!(
                            "output {p} of `{}` ({}) is not connected",
                            name(i),
                            class(i)
                        ),
                        cfg.elements[i].span,
                    )
                    .with_help("connect it, e.g. to Discard".to_string()))
                }
            }
        }
        outputs.push(adj);
        let nin = in_used[i]
            .keys()
            .next_back()
            .map_or(0, |p| p + 1)
            .max(ports[i].inputs.0);
        for p in 0..nin {
            if !in_used[i].contains_key(&p) {
                return Err(ConfigError::new(
                    format!("input {p} of `{}` ({}) is not connected", name(i), class(i)),
                    cfg.elements[i].span,
                ));
            }
        }
    }
    Ok(outputs)
}
