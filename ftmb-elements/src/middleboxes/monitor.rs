//! `Monitor`: the paper's shared-counter microbenchmark.

use super::{ip_bytes, load, save, FlowKey};
use ftmb_core::cow_map::CowMap;
use ftmb_core::element::element;
use ftmb_core::headers::{FlowId, Ipv4View};
use ftmb_core::shared::Shared;
use ftmb_core::{Args, Built, ConfigError, Ctx, Element, InitCtx, Out, Packet, SavedState, Value};

/// `Monitor([SHARING n], [SLOTS m], [PERFLOW true])`: count packets in
/// counters shared by groups of workers, and per flow.
///
/// # Configuration
/// - `SHARING`: how many workers share one counter (default 1). With W
///   workers there are ceil(W / SHARING) counter groups and worker w counts
///   in group w / SHARING: sharing 1 gives every worker its own counter
///   (still logged, never contended), sharing W makes all workers contend on
///   one.
/// - `SLOTS`: the number of counter groups, overriding ceil(W / SHARING)
///   (1 to 1048576); worker w then counts in group (w / SHARING) mod SLOTS.
/// - `PERFLOW`: also count packets and bytes per flow (default true), in the
///   element's own fields: flows are pinned to workers by the symmetric flow
///   hash, so per-flow counters are worker-private. TCP/UDP packets are
///   counted by 5-tuple, other IPv4 packets by address pair and protocol;
///   packets that are not IPv4 only in the group counter.
///
/// # Ports
/// One input, one output (every packet passes).
///
/// # Handlers
/// `count` and `byte_count`: the sum over the group counters (shared);
/// `flows`: flows seen (summed over workers); `groups`: number of counter
/// groups (shared).
///
/// # Shared state
/// `counters`: `(packets, bytes)` per group, one slot per group. One access
/// per packet, to this worker's group.
pub struct Monitor {
    group: usize,
    counters: Shared<(u64, u64)>,
    perflow: bool,
    /// Shared with a snapshot's copy until written (see [`CowMap`]).
    flows: CowMap<FlowKey, (u64, u64)>,
}

impl Monitor {
    fn flow_key(ip: &[u8]) -> Option<FlowKey> {
        if let Some(f) = FlowId::of_ipv4(ip) {
            return Some(FlowKey(f));
        }
        let v = Ipv4View::new(ip)?;
        Some(FlowKey(FlowId {
            saddr: v.src(),
            sport: 0,
            daddr: v.dst(),
            dport: 0,
            proto: v.protocol(),
        }))
    }
}

impl Element for Monitor {
    fn push(&mut self, ctx: &mut Ctx, _port: usize, mut pkt: Packet, out: &mut Out) {
        let len = pkt.len() as u64;
        if self.perflow {
            if let Some(k) = Self::flow_key(ip_bytes(&pkt)) {
                let e = self.flows.entry_or_insert_with(k, || (0, 0));
                e.0 += 1;
                e.1 += len;
            }
        }
        self.counters.access(ctx, &mut pkt, self.group, |c| {
            c.0 += 1;
            c.1 += len;
        });
        out.push(0, pkt);
    }

    fn stats(&self) -> Vec<(&'static str, Value)> {
        let c = self.counters.inspect(|c| *c);
        let packets: u64 = c.iter().map(|c| c.0).sum();
        let bytes: u64 = c.iter().map(|c| c.1).sum();
        vec![
            ("count", Value::Shared(packets.to_string())),
            ("byte_count", Value::Shared(bytes.to_string())),
            ("flows", Value::Count(self.flows.len() as u64)),
            ("groups", Value::Shared(self.counters.slots().to_string())),
        ]
    }

    fn save_state(&self, out: &mut Vec<u8>) {
        save(&self.flows, out);
    }

    /// The per-flow table is copied at the cut (its shards shared until
    /// the worker writes them) and encoded (in no particular order) after
    /// the worker resumes.
    fn copy_state(&mut self) -> Option<Box<dyn SavedState>> {
        Some(Box::new(self.flows.share()))
    }

    fn load_state(&mut self, buf: &[u8]) -> Result<(), String> {
        self.flows = load(buf)?;
        Ok(())
    }
}

/// Most counter groups (`SLOTS`).
pub const MAX_SLOTS: usize = 1 << 20;

pub(crate) fn build_monitor(a: &mut Args, ctx: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let sharing: usize = a.keyword_or("SHARING", 1)?;
    if sharing == 0 {
        return Err(a.error("SHARING must be at least 1"));
    }
    let slots = a.keyword_opt_within("SLOTS", 1, MAX_SLOTS)?;
    let perflow = a.keyword_or("PERFLOW", true)?;
    let groups = slots.unwrap_or_else(|| ctx.nworkers().max(1).div_ceil(sharing));
    let group = (ctx.worker() / sharing) % groups;
    let counters = ctx.shared::<(u64, u64)>("counters", groups, |_| (0, 0));
    element(Monitor {
        group,
        counters,
        perflow,
        flows: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use ftmb_core::shared::SharedRegistry;

    fn run(sharing: usize, nworkers: usize) -> (Vec<Box<dyn Element>>, SharedRegistry, u64) {
        let mut shared = SharedRegistry::new();
        let s = format!("SHARING {sharing}");
        let mut ws = build_workers("Monitor", build_monitor, &[&s], &mut shared, nworkers).unwrap();
        let mut ctxs: Vec<Ctx> = (0..nworkers).map(|w| Ctx::new(w, nworkers, 1)).collect();
        let mut n = 0;
        for i in 0..100u16 {
            let w = usize::from(i) % nworkers;
            let p = tcp(
                [10, 0, 0, 1],
                1000 + i % 7 + 7 * (w as u16),
                [10, 0, 0, 2],
                80,
                ACK,
                b"x",
            );
            let mut out = Out::with_ports(1);
            ws[w].push(&mut ctxs[w], 0, p, &mut out);
            assert_eq!(out.take(0).len(), 1);
            n += 1;
        }
        (ws, shared, n)
    }

    #[test]
    fn counts_equal_packets_for_sharing_levels() {
        for (sharing, groups) in [(1, 2), (2, 1), (5, 1)] {
            let (ws, shared, n) = run(sharing, 2);
            for w in &ws {
                assert_eq!(stat(w.as_ref(), "count"), Value::Shared(n.to_string()));
                assert_eq!(
                    stat(w.as_ref(), "byte_count"),
                    Value::Shared((n * 41).to_string())
                );
                assert_eq!(
                    stat(w.as_ref(), "groups"),
                    Value::Shared(groups.to_string())
                );
            }
            let flows = ws
                .iter()
                .map(|w| stat(w.as_ref(), "flows"))
                .reduce(Value::combine)
                .unwrap();
            assert_eq!(flows, Value::Count(14));
            // Each group's slot was accessed once per packet of its workers.
            let counters: Vec<u64> = shared.vars().iter().flat_map(|v| v.counters()).collect();
            assert_eq!(counters.len(), groups);
            assert_eq!(counters.iter().sum::<u64>(), n);
            if sharing == 1 {
                assert_eq!(counters, vec![50, 50]);
            }
        }
    }

    #[test]
    fn groups_with_four_workers_and_slots_override() {
        let mut shared = SharedRegistry::new();
        build_workers("Monitor", build_monitor, &["SHARING 3"], &mut shared, 4).unwrap();
        assert_eq!(shared.vars()[0].slots(), 2);
        let mut shared = SharedRegistry::new();
        build_workers(
            "Monitor",
            build_monitor,
            &["SLOTS 8", "PERFLOW false"],
            &mut shared,
            4,
        )
        .unwrap();
        assert_eq!(shared.vars()[0].slots(), 8);
        for bad in [
            &["SHARING 0"][..],
            &["SLOTS 0"],
            &["PERFLOW maybe"],
            &["EXTRA 1"],
        ] {
            assert!(build_one("Monitor", build_monitor, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn perflow_state_round_trips() {
        let (mut ws, _, _) = run(1, 2);
        let mut st = Vec::new();
        ws[0].save_state(&mut st);
        let mut m = build_one("Monitor", build_monitor, &[]).unwrap();
        m.load_state(&st).unwrap();
        assert_eq!(stat(m.as_ref(), "flows"), Value::Count(7));
        let mut again = Vec::new();
        m.save_state(&mut again);
        assert_eq!(st, again);
        // A copy taken for a snapshot loads as the state it was taken
        // from, whatever happens to the element after it was taken.
        let copy = ws[0].copy_state().expect("the per-flow table is copied");
        ws[0].load_state(&[0; 8]).unwrap();
        assert_eq!(stat(ws[0].as_ref(), "flows"), Value::Count(0));
        let mut copied = Vec::new();
        copy.save(&mut copied);
        let mut from_copy = build_one("Monitor", build_monitor, &[]).unwrap();
        from_copy.load_state(&copied).unwrap();
        let mut reencoded = Vec::new();
        from_copy.save_state(&mut reencoded);
        assert_eq!(st, reencoded);
        assert!(m.load_state(&st[..st.len() - 1]).is_err());
        let mut extra = st.clone();
        extra.push(0);
        assert!(m.load_state(&extra).is_err());
    }

    #[test]
    fn malformed_packets_never_panic_and_still_count() {
        let mut m = build_one("Monitor", build_monitor, &[]).unwrap();
        let mut ctx = Ctx::new(0, 1, 1);
        let mut n = 0u64;
        for base in [
            tcp([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, SYN, b"abc"),
            icmp([1, 1, 1, 1], [3, 3, 3, 3]),
        ] {
            for p in mangled(&base) {
                let mut out = Out::with_ports(1);
                m.push(&mut ctx, 0, p, &mut out);
                assert_eq!(out.take(0).len(), 1);
                n += 1;
            }
        }
        assert_eq!(stat(m.as_ref(), "count"), Value::Shared(n.to_string()));
    }
}
