//! Small helpers shared by several elements.

use ftmb_core::shared::StateCodec;

/// Decode what an element's `save_state` wrote with [`StateCodec`] (a
/// counter, a tuple of counters), as `load_state` reports it.
pub fn decode_state<T: StateCodec>(mut buf: &[u8]) -> Result<T, String> {
    T::decode(&mut buf).map_err(|e| e.to_string())
}

/// Click's `RateEWMA`: per-millisecond epochs, weight 1/16, 10 fraction
/// bits; a gap of 100 epochs or more resets the average.
#[derive(Clone, Debug, Default)]
pub struct RateEwma {
    avg: i64,
    current: u64,
    epoch: u64,
}

const SCALE: u32 = 10;
const STABILITY: u32 = 4;

impl RateEwma {
    fn step(&mut self, x: u64) {
        let xs = ((x << SCALE) + (1 << (STABILITY - 1))) as i64;
        self.avg += (xs - self.avg) >> STABILITY;
    }

    fn update_time(&mut self, now_ns: u64) {
        let now = now_ns / 1_000_000;
        if now != self.epoch {
            let cur = self.current;
            self.step(cur);
            let idle = now.saturating_sub(self.epoch + 1);
            if idle >= 100 {
                self.avg = 0;
            } else {
                for _ in 0..idle {
                    self.step(0);
                }
            }
            self.current = 0;
            self.epoch = now;
        }
    }

    /// Count `delta` events at time `now_ns`.
    pub fn update(&mut self, now_ns: u64, delta: u64) {
        self.update_time(now_ns);
        self.current += delta;
    }

    /// Events per second.
    pub fn rate(&self) -> f64 {
        (self.avg.max(0) as f64) / f64::from(1u32 << SCALE) * 1000.0
    }
}
