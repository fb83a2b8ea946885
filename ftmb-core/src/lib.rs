//! # ftmb-core
//!
//! The core of FTMB in Rust: everything a fault-tolerant, Click-compatible
//! middlebox is made of, except the element implementations
//! (`ftmb-elements`), the loggers (`ftmb-logger`) and the replay plan and
//! takeover (`ftmb-replayer`).
//!
//! ## Architecture
//!
//! 1. **Configuration** ([`config`]): Click's language is parsed into a flat
//!    list of element declarations and connections (compounds flattened to
//!    `outer/inner` names, `$VAR`s substituted), with spans for errors.
//! 2. **Elements** ([`element`]): a class in a [`element::Registry`] is
//!    configured from its arguments ([`args::Args`], Click's typed reader)
//!    and initialized with an [`element::InitCtx`], where it declares shared
//!    state and output sinks ([`egress`]). It then processes batches of
//!    [`packet::Packet`]s.
//! 3. **Graph** ([`graph`]): every element is built once per worker and every
//!    connection is checked against the port counts before anything runs.
//! 4. **Runtime** ([`runtime`]): an input thread numbers packets from the
//!    sources and sends each to a worker by the direction-symmetric flow
//!    hash ([`steer`]); workers run the graph to completion; the driver runs
//!    the `DriverManager` program ([`driver`]). Time comes from one wall
//!    clock ([`clock`]), read by the runtime once per batch.
//! 5. **The state access contract** ([`context`]): elements reach shared
//!    state ([`shared`], encoded by [`codec`]), time and randomness
//!    ([`rng`]) only through the context, so fault tolerance can log every
//!    such access as a PAL ([`pal`]) with a dependency vector ([`depvec`])
//!    and replay it in the same order. An element's large private table can
//!    live in a [`cow_map::CowMap`], which a snapshot copies in
//!    microseconds and the worker takes back shard by shard as it writes.
//! 6. **Fault tolerance** ([`ft`]): what the workers ship to the output
//!    logger (log records, then outputs) through an [`ft::FtLink`].
//!    Snapshots ([`snapshot`]): the format, and the rounds in which the
//!    workers take one (copy on write per shared slot, encoded by a capture
//!    thread). Replay ([`replay`]): the seam through which a replica's
//!    replay (`ftmb-replayer`) tells the runtime what to follow; the
//!    workers follow it with [`pal::LoggedAccess`].
//! 7. **Traces** ([`trace`]): pcap and pcapng reading and writing, and the
//!    synthetic trace generator.
//!
//! No module imports one that imports it back: from the bottom, `clock`,
//! `packet`, `headers`, `depvec`, `codec`, `slot`, `pal`, `egress`,
//! `context`, `shared`, `element`, `snapshot` (its format, then its
//! rounds), `replay`, `ft`, `graph`, `runtime` (`scripts/import-cycles.py`
//! checks it).

// Configuration errors carry spans, labels and help; they are built on the
// cold path only, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod args;
pub mod clock;
pub mod codec;
pub mod config;
pub mod context;
pub mod cow_map;
pub mod depvec;
pub mod driver;
#[cfg(test)]
mod dv_model;
pub mod egress;
pub mod element;
pub mod ft;
pub mod graph;
pub mod headers;
pub mod idle;
pub mod packet;
pub mod pal;
pub mod placement;
pub mod replay;
pub mod rng;
pub mod runtime;
pub mod shared;
pub(crate) mod slot;
pub mod snapshot;
pub mod spin;
pub mod stats;
pub mod steer;
pub(crate) mod sync;
pub mod trace;

#[cfg(test)]
mod models;

pub use args::{Args, FromArg, Ipv4Prefix};
pub use config::{ConfigError, Span};
pub use context::Ctx;
pub use element::{
    Built, Element, ElementClass, InitCtx, Out, Ports, Registry, SavedState, Source, Value,
};
pub use packet::Packet;
