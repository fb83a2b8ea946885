//! The workers' dependency-vector computation (`merge_dv` under
//! [`crate::shared::Shared::access`], and [`crate::ft::OutputBatch::push`])
//! checked against a naive model of causal histories, over seeded random
//! access sequences (docs/design.md, section 4). A module of its own: it
//! drives the context, the shared variables and the output batches
//! together, as the workers do.

use crate::context::{AccessMode, Ctx};
use crate::packet::Packet;

/// One step of a worker in [`merge_dv_matches_a_causal_history_model`].
#[derive(Clone, Debug)]
enum Step {
    /// Worker `w` starts a batch: logs a clock record.
    Clock(usize),
    /// Worker `w` accesses slot `v` of the shared variable.
    Access(usize, usize),
    /// Worker `w` emits an output (tagged as the runtime does).
    Output(usize),
}

fn step(nworkers: usize, nvars: usize) -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (0..nworkers).prop_map(Step::Clock),
        (0..nworkers, 0..nvars).prop_map(|(w, v)| Step::Access(w, v)),
        (0..nworkers).prop_map(Step::Output),
    ]
}

/// Workers, slots, and a seeded sequence of steps over them.
fn scenario() -> impl proptest::strategy::Strategy<Value = (usize, usize, Vec<Step>)> {
    use proptest::prelude::*;
    (1usize..=4, 1usize..=4).prop_flat_map(|(n, v)| {
        (
            Just(n),
            Just(v),
            proptest::collection::vec(step(n, v), 0..160),
        )
    })
}

/// The naive reference: every worker's and every variable's causal
/// history as an explicit set of log records (worker, sequence), no
/// vectors at all. An output of worker `w` depends on every record in
/// `w`'s history; its dependency vector must name, per worker, the
/// highest such record, no more (released late) and no less (released
/// before a record it depends on is stored).
#[derive(Default)]
struct Model {
    seq: Vec<u64>,
    worker: Vec<std::collections::BTreeSet<(usize, u64)>>,
    var: Vec<std::collections::BTreeSet<(usize, u64)>>,
    batch_clock: Vec<u64>,
}

impl Model {
    fn new(nworkers: usize, nvars: usize) -> Model {
        Model {
            seq: vec![0; nworkers],
            worker: vec![Default::default(); nworkers],
            var: vec![Default::default(); nvars],
            batch_clock: vec![0; nworkers],
        }
    }
    fn clock(&mut self, w: usize) {
        self.seq[w] += 1;
        self.worker[w].insert((w, self.seq[w]));
        self.batch_clock[w] = self.seq[w];
    }
    fn access(&mut self, w: usize, v: usize) {
        self.seq[w] += 1;
        let seen: Vec<_> = self.var[v].iter().copied().collect();
        self.worker[w].extend(seen);
        self.worker[w].insert((w, self.seq[w]));
        self.var[v] = self.worker[w].clone();
    }
    fn output_dv(&self, w: usize) -> Vec<u64> {
        let mut dv = vec![0; self.seq.len()];
        for &(x, s) in &self.worker[w] {
            dv[x] = dv[x].max(s);
        }
        dv
    }
}

/// `v` padded with zeros to `n` entries (a vector may omit trailing
/// zero entries).
fn padded(v: &[u64], n: usize) -> Vec<u64> {
    let mut v = v.to_vec();
    assert!(v[n.min(v.len())..].iter().all(|&e| e == 0), "{v:?}");
    v.resize(n, 0);
    v
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x00f7_3b00),
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// docs/design.md, section 4, on the workers' real path: shared
    /// accesses through `Shared::access` (count, log, `merge_dv`), clock
    /// records through the worker's log, outputs through
    /// `OutputBatch::push` with the batch's clock record, checked at
    /// every output against [`Model`] (a variable's clock shows in the
    /// outputs of the workers that access it next).
    #[test]
    fn merge_dv_matches_a_causal_history_model((n, nvars, steps) in scenario()) {
        use crate::ft::OutputBatch;
        use crate::pal::LoggedAccess;
        let mut reg = crate::shared::SharedRegistry::new();
        let var = reg.declare("t.v", nvars, |_| 0u64);
        let mut ctxs: Vec<Ctx> = (0..n)
            .map(|w| {
                let mut c = Ctx::new(w, n, 1);
                c.set_mode(AccessMode::Logged(Box::new(LoggedAccess::recording(1))));
                c
            })
            .collect();
        let mut model = Model::new(n, nvars);
        let mut outs = OutputBatch::default();
        let mut expected = Vec::new();
        let mut clock_seq = vec![0u64; n];
        let mut pkt = Packet::from_bytes(&[0u8; 20]);
        for (i, st) in steps.iter().enumerate() {
            pkt.anno.id = i as u64 + 1;
            match *st {
                Step::Clock(w) => {
                    let AccessMode::Logged(l) = &mut ctxs[w].mode else { unreachable!() };
                    let (_, seq) = l.batch_clock(pkt.anno.id, 1, i as u64);
                    clock_seq[w] = seq;
                    model.clock(w);
                    proptest::prop_assert_eq!(seq, model.seq[w], "clock sequence");
                }
                Step::Access(w, v) => {
                    var.access(&mut ctxs[w], &mut pkt, v, |x| *x += 1);
                    model.access(w, v);
                }
                Step::Output(w) => {
                    outs.push((0, 0), &pkt, &ctxs[w].dv, (w, clock_seq[w]));
                    expected.push((w, model.output_dv(w)));
                }
            }
        }
        proptest::prop_assert_eq!(outs.len(), expected.len());
        for (o, (w, want)) in outs.iter().zip(&expected) {
            proptest::prop_assert_eq!(padded(o.dv, n), want.clone(), "output of worker {}", w);
        }
    }
}
