//! The replayed trace and each NAT's captures of it, their packets paired
//! with the trace packets they came from.

use super::packet::{fmt_flow, report_order, PairKey, Pkt};
use super::Dir;
use anyhow::{bail, Context, Result};
use ftmb_core::headers::FlowId;
use ftmb_core::trace::{LinkType, TraceReader};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

/// Every frame of an Ethernet pcap/pcapng file.
pub(crate) fn read_frames(path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut r =
        TraceReader::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    if r.link_type() != LinkType::Ethernet {
        bail!(
            "{}: link type {:?}, expected Ethernet",
            path.display(),
            r.link_type()
        );
    }
    let mut v = Vec::new();
    while let Some(rec) = r.next_record() {
        let rec = rec.with_context(|| format!("{}: bad record", path.display()))?;
        if rec.data.len() < rec.orig_len as usize {
            bail!(
                "{}: packet {} truncated by the capture ({} of {} bytes); capture with a larger snap length",
                path.display(),
                v.len() + 1,
                rec.data.len(),
                rec.orig_len
            );
        }
        v.push(rec.data.to_vec());
    }
    Ok(v)
}

/// The replayed trace, indexed for pairing.
pub(crate) struct Trace {
    pub pkts: Vec<Pkt>,
    pub by_key: HashMap<PairKey, VecDeque<usize>>,
    /// Packets per flow, in report order.
    pub flows: BTreeMap<(u8, FlowId), usize>,
}

impl Trace {
    pub fn new(frames: &[Vec<u8>], path: &Path) -> Result<Trace> {
        let mut pkts = Vec::with_capacity(frames.len());
        let mut by_key: HashMap<PairKey, VecDeque<usize>> = HashMap::new();
        let mut flows = BTreeMap::new();
        for (i, f) in frames.iter().enumerate() {
            let p = Pkt::parse(f).map_err(|why| {
                anyhow::anyhow!(
                    "{}: packet {} is not Ethernet/IPv4 TCP or UDP: {why}",
                    path.display(),
                    i + 1
                )
            })?;
            by_key.entry(p.key()).or_default().push_back(i);
            *flows.entry(report_order(&p.flow)).or_insert(0) += 1;
            pkts.push(p);
        }
        Ok(Trace {
            pkts,
            by_key,
            flows,
        })
    }

    /// Flows that are TCP.
    pub fn tcp_flows(&self) -> usize {
        self.flows.keys().filter(|f| f.1.proto == 6).count()
    }
}

/// One capture, its packets paired with the trace.
pub(crate) struct Capture {
    pub name: String,
    pub dir: Dir,
    pub pkts: Vec<Pkt>,
    /// Trace index of each packet in `pkts`.
    pub trace_idx: Vec<usize>,
    /// Capture position of each trace packet seen (the first copy).
    pub by_trace: HashMap<usize, usize>,
    /// Packets that pair with no trace packet, described.
    pub extra: Vec<String>,
    pub in_order: bool,
    pub bad_ip: usize,
    pub bad_l4: usize,
}

impl Capture {
    pub fn new(name: &str, dir: Dir, path: &Path, trace: &Trace) -> Result<Capture> {
        let frames = read_frames(path)?;
        let mut queues = trace.by_key.clone();
        let mut c = Capture {
            name: name.to_string(),
            dir,
            pkts: Vec::new(),
            trace_idx: Vec::new(),
            by_trace: HashMap::new(),
            extra: Vec::new(),
            in_order: true,
            bad_ip: 0,
            bad_l4: 0,
        };
        let mut last = None;
        for (n, f) in frames.iter().enumerate() {
            let p = match Pkt::parse(f) {
                Ok(p) => p,
                Err(why) => {
                    c.extra.push(format!("packet {}: {why}", n + 1));
                    continue;
                }
            };
            let as_sent = match dir {
                Dir::Out => p.clone(),
                Dir::In => p.mirrored(),
            };
            let Some(i) = queues.get_mut(&as_sent.key()).and_then(|q| q.pop_front()) else {
                c.extra.push(format!(
                    "packet {}: {}, {} bytes: no such packet in the trace{}",
                    n + 1,
                    fmt_flow(&p.flow),
                    p.frame_len,
                    if trace.by_key.contains_key(&as_sent.key()) {
                        " (one more copy than it has)"
                    } else {
                        ""
                    }
                ));
                continue;
            };
            c.bad_ip += usize::from(!p.ip_ok);
            c.bad_l4 += usize::from(!p.l4_ok);
            if last.is_some_and(|l| i < l) {
                c.in_order = false;
            }
            last = Some(i);
            c.by_trace.entry(i).or_insert(c.pkts.len());
            c.trace_idx.push(i);
            c.pkts.push(p);
        }
        Ok(c)
    }

    /// Trace packets this capture does not have.
    pub fn missing(&self, trace: &Trace) -> usize {
        trace.pkts.len() - self.by_trace.len()
    }

    /// Packets captured more than once.
    pub fn duplicates(&self) -> usize {
        self.pkts.len() - self.by_trace.len()
    }

    /// Each packet with the trace packet it came from.
    pub fn paired<'a>(&'a self, trace: &'a Trace) -> impl Iterator<Item = (&'a Pkt, &'a Pkt)> {
        self.pkts
            .iter()
            .zip(&self.trace_idx)
            .map(|(p, &i)| (p, &trace.pkts[i]))
    }

    /// Per field, how many packets differ from the trace packet they came
    /// from (outbound) or from its mirror image (inbound): what this NAT
    /// changes.
    pub fn changes(&self, trace: &Trace) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        let none = BTreeSet::new();
        for (p, sent) in self.paired(trace) {
            let base = match self.dir {
                Dir::Out => sent.clone(),
                Dir::In => sent.mirrored(),
            };
            for (f, _, _) in base.diff(p, &none) {
                *m.entry(f).or_insert(0) += 1;
            }
        }
        m
    }
}
