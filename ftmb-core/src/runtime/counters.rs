//! What the input thread counts and the driver reads (and the flag by
//! which the driver stops the input thread).

use std::sync::atomic::{AtomicBool, AtomicU64};

/// What the input thread and the driver share.
#[derive(Default)]
pub(super) struct InputShared {
    pub(super) stop: AtomicBool,
    pub(super) packets: AtomicU64,
    pub(super) done: AtomicU64,
    pub(super) total: AtomicU64,
    pub(super) queue_drops: AtomicU64,
}
