//! # ftmb-replayer
//!
//! What happens when the master dies, in one place: a replica takes over
//! ([`take_over`]: take over from the output logger, restore the last
//! committed snapshot, resume the input logger's stream from the
//! snapshot's cut, replay the logged packets under the logged order, then
//! go live), and the [`ReplayPlan`] it replays.
//!
//! The runtime (`ftmb_core::runtime`) keeps the mechanism: its workers
//! follow the logged records ([`ftmb_core::pal::LoggedAccess`]) and its
//! input thread hands them the replayed packets. It asks what to replay
//! through one seam, [`ftmb_core::replay::Replay`], which [`ReplayPlan`]
//! implements:
//!
//! 1. [`Replay::start`](ftmb_core::replay::Replay::start): the dead
//!    master's logs, cut back to what a replay can follow from the
//!    restored counters ([`trim_to_gap_free`]), and the sequence numbers
//!    the replica's new records start from;
//! 2. [`Replay::feed`](ftmb_core::replay::Replay::feed): the logged
//!    packets, handed to the workers in the master's batches
//!    ([`feed::feed`]).

pub mod feed;
mod plan;
mod takeover;
mod trim;

pub use plan::{ReplayPlan, ReplayPlanFrom};
pub use takeover::{take_over, TakeoverError, TakeoverOptions, TakeoverReport, TAKEOVER_TARGET};
pub use trim::trim_to_gap_free;
