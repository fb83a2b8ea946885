//! Waiting for another thread without sleeping: a thread that expects what
//! it waits for within microseconds looks again and again, rather than
//! pay a wake-up (13 µs or more on a VM) for each wait.

/// The pause between two looks at something another thread will change:
/// the first 63 pauses spin on the CPU, later ones yield it to any other
/// thread that wants it (the one waited for may need this core).
#[derive(Debug, Default)]
pub struct Backoff {
    looks: u32,
}

impl Backoff {
    /// Spins before the pauses start yielding.
    const SPINS: u32 = 64;

    /// Pause before looking again.
    #[inline]
    pub fn pause(&mut self) {
        self.looks = self.looks.saturating_add(1);
        if self.looks < Self::SPINS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
