//! The wall clock, read in one place. The core logic never reads it by
//! itself: the runtime reads it once per batch and hands the value to the
//! elements through the context (logged, so that replay sees the same
//! time), and the roles read it for their timestamps and deadlines.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
