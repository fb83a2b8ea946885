//! `Gen`: synthetic shared-state accesses, for sweeps.

use super::{ip_bytes, load, save};
use ftmb_core::element::element;
use ftmb_core::headers::{mix64, symmetric_hash};
use ftmb_core::shared::Shared;
use ftmb_core::{Args, Built, ConfigError, Ctx, Element, InitCtx, Out, Packet, Value};

/// Bytes a write access changes (fewer when the cell is smaller).
const WRITE_BYTES: usize = 8;

/// `Gen([ACCESSES n], [STATE_SIZE bytes], [SLOTS m], [WRITE_RATIO r])`:
/// make synthetic shared-state accesses for every packet.
///
/// # Configuration
/// - `ACCESSES`: accesses per packet (default 1; 0 makes none; at most
///   65536).
/// - `STATE_SIZE`: bytes in each state cell (default 64, 1 to 1048576).
/// - `SLOTS`: state cells, each its own lock domain (default 1024, 1 to
///   1048576). The cells together, `SLOTS` × `STATE_SIZE` bytes, may take
///   at most 1 GiB.
/// - `WRITE_RATIO`: the share of accesses that write, 0 to 1 (default 0.5).
///
/// Access i of a packet (0-based) draws h = mix(flow hash, i), where the
/// flow hash is the packet's direction-symmetric flow hash (0 for packets
/// that are not IP). Its slot is h mod SLOTS, and it writes when the top 53
/// bits of a second mix of h, as a fraction, are below `WRITE_RATIO`, so the
/// accesses are a pure function of the packet's flow and the index, never
/// of the random generator. A read folds the cell's bytes into the
/// element's checksum; a write XORs up to 8 bytes of h into the cell at an
/// offset taken from h.
///
/// # Ports
/// One input, one output (every packet passes).
///
/// # Handlers
/// `accesses`, `writes`, `checksum` (the folded checksum of reads, a
/// 32-bit value; combined by summing), all per worker, summed.
///
/// # Shared state
/// `cells`: a `Vec<u8>` of `STATE_SIZE` bytes per slot, `SLOTS` slots.
/// `ACCESSES` accesses per packet.
pub struct Gen {
    accesses_per_packet: usize,
    write_threshold: u64,
    cells: Shared<Vec<u8>>,
    accesses: u64,
    writes: u64,
    checksum: u32,
}

/// The deterministic plan of access `i` for a packet with flow hash
/// `flow`: its hash, slot and whether it writes.
fn plan(flow: u64, i: usize, slots: usize, write_threshold: u64) -> (u64, usize, bool) {
    let h = mix64(
        flow ^ mix64(
            (i as u64)
                .wrapping_add(1)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ),
    );
    let slot = (h % slots.max(1) as u64) as usize;
    let write = (mix64(h) >> 11) < write_threshold;
    (h, slot, write)
}

fn fold(sum: u32, cell: &[u8]) -> u32 {
    cell.iter()
        .fold(sum, |s, &b| s.rotate_left(5) ^ u32::from(b))
}

impl Element for Gen {
    fn push(&mut self, ctx: &mut Ctx, _port: usize, mut pkt: Packet, out: &mut Out) {
        let flow = symmetric_hash(ip_bytes(&pkt));
        let slots = self.cells.slots();
        for i in 0..self.accesses_per_packet {
            let (h, slot, write) = plan(flow, i, slots, self.write_threshold);
            if write {
                self.cells.access(ctx, &mut pkt, slot, |cell| {
                    let n = cell.len();
                    if n > 0 {
                        let off = (h >> 32) as usize % n;
                        for (k, b) in h.to_le_bytes().iter().take(WRITE_BYTES.min(n)).enumerate() {
                            cell[(off + k) % n] ^= b;
                        }
                    }
                });
                self.writes += 1;
            } else {
                let sum = self.checksum;
                self.checksum = self
                    .cells
                    .access(ctx, &mut pkt, slot, |cell| fold(sum, cell));
            }
            self.accesses += 1;
        }
        out.push(0, pkt);
    }

    fn stats(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("accesses", Value::Count(self.accesses)),
            ("writes", Value::Count(self.writes)),
            ("checksum", Value::Count(u64::from(self.checksum))),
        ]
    }

    fn save_state(&self, out: &mut Vec<u8>) {
        save(&((self.accesses, self.writes), self.checksum), out);
    }

    fn load_state(&mut self, buf: &[u8]) -> Result<(), String> {
        ((self.accesses, self.writes), self.checksum) = load(buf)?;
        Ok(())
    }
}

/// Most accesses per packet.
pub const MAX_ACCESSES: usize = 1 << 16;
/// Largest state cell, in bytes.
pub const MAX_STATE_SIZE: usize = 1 << 20;
/// Most state cells.
pub const MAX_SLOTS: usize = 1 << 20;
/// Most bytes of state cells in all.
pub const MAX_STATE_BYTES: usize = 1 << 30;

pub(crate) fn build_gen(a: &mut Args, ctx: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let accesses_per_packet = a.keyword_within("ACCESSES", 1, 0, MAX_ACCESSES)?;
    let size = a.keyword_within("STATE_SIZE", 64, 1, MAX_STATE_SIZE)?;
    let slots = a.keyword_within("SLOTS", 1024, 1, MAX_SLOTS)?;
    let ratio: f64 = a.keyword_or("WRITE_RATIO", 0.5)?;
    if slots.saturating_mul(size) > MAX_STATE_BYTES {
        return Err(a.error(format!(
            "SLOTS × STATE_SIZE is {} bytes, more than the maximum, {MAX_STATE_BYTES} (1 GiB)",
            slots.saturating_mul(size)
        )));
    }
    if !(0.0..=1.0).contains(&ratio) {
        return Err(a.error(format!("WRITE_RATIO {ratio} is not between 0 and 1")));
    }
    // Compare 53-bit fractions: ratio 1 writes always, 0 never.
    let write_threshold = (ratio * (1u64 << 53) as f64) as u64;
    let cells = ctx.shared::<Vec<u8>>("cells", slots, |_| vec![0u8; size]);
    element(Gen {
        accesses_per_packet,
        write_threshold,
        cells,
        accesses: 0,
        writes: 0,
        checksum: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use ftmb_core::shared::SharedRegistry;

    fn packets() -> Vec<Packet> {
        (0..200u16)
            .map(|i| {
                if i % 2 == 0 {
                    tcp(
                        [10, 0, 0, 1],
                        1000 + i % 37,
                        [10, 9, 0, 2],
                        80,
                        ACK,
                        b"payload",
                    )
                } else {
                    udp([10, 9, 0, 2], 53, [10, 0, 0, (i % 11) as u8], 7, b"x")
                }
            })
            .collect()
    }

    type Stats = Vec<Vec<(&'static str, Value)>>;

    /// Run the packets through a fresh Gen; its stats and the state of
    /// every cell.
    fn run(texts: &[&str], nworkers: usize) -> (Stats, Vec<u8>, Vec<u64>) {
        let mut shared = SharedRegistry::new();
        let mut ws = build_workers("Gen", build_gen, texts, &mut shared, nworkers).unwrap();
        let mut ctxs: Vec<Ctx> = (0..nworkers)
            .map(|w| Ctx::new(w, nworkers, w as u64 + 1))
            .collect();
        for p in packets() {
            let w = (symmetric_hash(p.data()) % nworkers as u64) as usize;
            let mut out = Out::with_ports(1);
            ws[w].push(&mut ctxs[w], 0, p, &mut out);
            assert_eq!(out.take(0).len(), 1);
        }
        let mut state = Vec::new();
        for v in shared.vars() {
            v.encode_all(&mut state);
        }
        let counters = shared.vars().iter().flat_map(|v| v.counters()).collect();
        (ws.iter().map(|w| w.stats()).collect(), state, counters)
    }

    fn total(stats: &[Vec<(&'static str, Value)>], name: &str) -> Value {
        stats
            .iter()
            .map(|s| s.iter().find(|(n, _)| *n == name).unwrap().1.clone())
            .reduce(Value::combine)
            .unwrap()
    }

    #[test]
    fn access_counts_equal_accesses_times_packets() {
        for (n, workers) in [(1usize, 1usize), (4, 1), (3, 2), (0, 2)] {
            let a = format!("ACCESSES {n}");
            let (stats, _, counters) = run(&[&a, "SLOTS 16", "STATE_SIZE 32"], workers);
            assert_eq!(total(&stats, "accesses"), Value::Count(200 * n as u64));
            assert_eq!(counters.iter().sum::<u64>(), 200 * n as u64);
            assert_eq!(counters.len(), 16);
        }
    }

    #[test]
    fn write_ratio_is_respected() {
        let (s, _, _) = run(&["ACCESSES 4", "WRITE_RATIO 0"], 1);
        assert_eq!(total(&s, "writes"), Value::Count(0));
        let (s, _, _) = run(&["ACCESSES 4", "WRITE_RATIO 1"], 1);
        assert_eq!(total(&s, "writes"), Value::Count(800));
        // Decided by flow and index: over many distinct flows near the ratio.
        let mut writes = 0;
        for f in 0..4000u64 {
            writes += u64::from(
                plan(
                    mix64(f),
                    (f % 5) as usize,
                    64,
                    (0.3 * (1u64 << 53) as f64) as u64,
                )
                .2,
            );
        }
        assert!((1000..1400).contains(&writes), "{writes}");
    }

    #[test]
    fn deterministic_from_the_packets() {
        let cfg = ["ACCESSES 3", "SLOTS 8", "STATE_SIZE 5", "WRITE_RATIO 0.4"];
        let a = run(&cfg, 1);
        let b = run(&cfg, 1);
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        assert_eq!(a.2, b.2);
        assert_ne!(total(&a.0, "writes"), Value::Count(0));
        assert_ne!(total(&a.0, "checksum"), Value::Count(0));
        // Different worker seeds do not change what two workers do.
        let c = run(&cfg, 2);
        let d = run(&cfg, 2);
        assert_eq!(c.0, d.0);
        assert_eq!(c.1, d.1);
        assert_eq!(total(&c.0, "writes"), total(&a.0, "writes"));
        // Same flow and index, same plan.
        assert_eq!(plan(42, 1, 8, 1 << 52), plan(42, 1, 8, 1 << 52));
    }

    #[test]
    fn state_round_trips_and_config_errors() {
        let mut shared = SharedRegistry::new();
        let mut g = build_workers("Gen", build_gen, &["ACCESSES 2"], &mut shared, 1)
            .unwrap()
            .remove(0);
        let mut ctx = Ctx::new(0, 1, 1);
        for p in packets().into_iter().take(10) {
            g.push(&mut ctx, 0, p, &mut Out::with_ports(1));
        }
        let mut st = Vec::new();
        g.save_state(&mut st);
        let mut g2 = build_one("Gen", build_gen, &[]).unwrap();
        g2.load_state(&st).unwrap();
        assert_eq!(g2.stats(), g.stats());
        assert!(g2.load_state(&st[..5]).is_err());
        // Shared cells survive a snapshot.
        let mut snap = Vec::new();
        shared.vars()[0].encode_all(&mut snap);
        let mut shared2 = SharedRegistry::new();
        build_workers("Gen", build_gen, &["ACCESSES 2"], &mut shared2, 1).unwrap();
        shared2.vars()[0].decode_all(&mut &snap[..]).unwrap();
        let mut snap2 = Vec::new();
        shared2.vars()[0].encode_all(&mut snap2);
        assert_eq!(snap, snap2);
        for bad in [
            &["STATE_SIZE 0"][..],
            &["SLOTS 0"],
            &["WRITE_RATIO 1.5"],
            &["WRITE_RATIO -1"],
            &["ACCESSES x"],
        ] {
            assert!(build_one("Gen", build_gen, bad).is_err(), "{bad:?}");
        }
        assert_eq!(stat(g.as_ref(), "accesses"), Value::Count(20));
    }

    #[test]
    fn malformed_packets_never_panic() {
        let mut g = build_one("Gen", build_gen, &["ACCESSES 3", "STATE_SIZE 3"]).unwrap();
        let mut ctx = Ctx::new(0, 1, 1);
        for p in mangled(&tcp([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, SYN, b"abc")) {
            let mut out = Out::with_ports(1);
            g.push(&mut ctx, 0, p, &mut out);
            assert_eq!(out.take(0).len(), 1);
        }
    }
}
