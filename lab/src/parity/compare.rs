//! NAT A's and NAT B's copies of each trace packet, compared field by
//! field in one direction.

use super::capture::{Capture, Trace};
use super::packet::fmt_flow;
use std::collections::{BTreeMap, BTreeSet};

/// Examples of differing packets kept per comparison.
pub(crate) const EXAMPLES: usize = 5;

/// A and B compared in one direction.
pub(crate) struct Comparison {
    pub ignore: BTreeSet<String>,
    pub pairs: usize,
    pub equal: usize,
    pub field_diffs: BTreeMap<&'static str, usize>,
    pub examples: Vec<String>,
    pub only_a: usize,
    pub only_b: usize,
}

impl Comparison {
    /// Compare every trace packet that both captures have, field by field
    /// but for `ignore`; count the ones only one has.
    pub fn of(a: &Capture, b: &Capture, trace: &Trace, ignore: BTreeSet<String>) -> Comparison {
        let mut c = Comparison {
            ignore,
            pairs: 0,
            equal: 0,
            field_diffs: BTreeMap::new(),
            examples: Vec::new(),
            only_a: 0,
            only_b: 0,
        };
        for i in 0..trace.pkts.len() {
            match (a.by_trace.get(&i), b.by_trace.get(&i)) {
                (Some(&x), Some(&y)) => c.pair(i, trace, &a.pkts[x], &b.pkts[y]),
                (Some(_), None) => c.only_a += 1,
                (None, Some(_)) => c.only_b += 1,
                (None, None) => {}
            }
        }
        c
    }

    /// Trace packet `i` as A and B put it out.
    fn pair(&mut self, i: usize, trace: &Trace, x: &super::packet::Pkt, y: &super::packet::Pkt) {
        self.pairs += 1;
        let d = x.diff(y, &self.ignore);
        if d.is_empty() {
            self.equal += 1;
            return;
        }
        for (f, _, _) in &d {
            *self.field_diffs.entry(f).or_insert(0) += 1;
        }
        if self.examples.len() < EXAMPLES {
            let what: Vec<String> = d
                .iter()
                .map(|(f, x, y)| format!("{f} {x} vs {y}"))
                .collect();
            self.examples.push(format!(
                "trace packet {} ({}): {}",
                i + 1,
                fmt_flow(&trace.pkts[i].flow),
                what.join(", ")
            ));
        }
    }

    /// Packets in both that differ.
    pub fn differ(&self) -> usize {
        self.pairs - self.equal
    }
}
