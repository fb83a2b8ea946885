//! How one NAT translated the trace's flows, from its outbound capture.

use super::capture::{Capture, Trace};
use super::packet::{fmt_flow, report_order};
use ftmb_core::headers::FlowId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// A public address and port.
type Public = ([u8; 4], u16);

/// How one NAT translated the trace's flows (outbound capture).
#[derive(Default)]
pub(crate) struct Translations {
    pub flows: usize,
    /// Flows seen with more than one public address:port.
    pub remapped: Vec<String>,
    /// Translated 5-tuples used by more than one flow.
    pub shared_tuple: Vec<String>,
    /// Public (address, port) pairs used by more than one flow (towards
    /// different servers): legal, but worth knowing.
    pub shared_port: usize,
    /// Flows whose source port the NAT kept.
    pub port_kept: usize,
    pub public_addrs: BTreeSet<[u8; 4]>,
}

impl Translations {
    /// The translations of the outbound capture `c`.
    pub fn of(c: &Capture, trace: &Trace) -> Translations {
        // Per original flow (in report order), its public address:port pairs.
        let mut per_flow: BTreeMap<(u8, FlowId), BTreeSet<Public>> = BTreeMap::new();
        for (p, sent) in c.paired(trace) {
            per_flow
                .entry(report_order(&sent.flow))
                .or_default()
                .insert((p.flow.saddr, p.flow.sport));
        }
        let mut t = Translations {
            flows: per_flow.len(),
            ..Translations::default()
        };
        let mut by_tuple: BTreeMap<(u8, FlowId), Vec<FlowId>> = BTreeMap::new();
        let mut by_port: BTreeMap<(u8, [u8; 4], u16), usize> = BTreeMap::new();
        for ((_, f), pubs) in &per_flow {
            if pubs.len() > 1 {
                let list: Vec<String> = pubs
                    .iter()
                    .map(|(a, p)| format!("{}:{p}", Ipv4Addr::from(*a)))
                    .collect();
                t.remapped
                    .push(format!("{} -> {}", fmt_flow(f), list.join(", ")));
            }
            for &(a, p) in pubs {
                t.public_addrs.insert(a);
                let translated = FlowId {
                    saddr: a,
                    sport: p,
                    ..*f
                };
                by_tuple
                    .entry(report_order(&translated))
                    .or_default()
                    .push(*f);
                *by_port.entry((f.proto, a, p)).or_insert(0) += 1;
                if p == f.sport {
                    t.port_kept += 1;
                }
            }
        }
        for ((_, tuple), fs) in &by_tuple {
            if fs.len() > 1 {
                let list: Vec<String> = fs.iter().map(fmt_flow).collect();
                t.shared_tuple.push(format!(
                    "{} is used by {}",
                    fmt_flow(tuple),
                    list.join(" and ")
                ));
            }
        }
        t.shared_port = by_port.values().filter(|&&n| n > 1).count();
        t
    }

    /// The public addresses, written out.
    pub fn addresses(&self) -> Vec<String> {
        self.public_addrs
            .iter()
            .map(|x| Ipv4Addr::from(*x).to_string())
            .collect()
    }
}
