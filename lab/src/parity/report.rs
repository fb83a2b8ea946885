//! The parity report: per direction, each capture on its own (counts,
//! checksums, what the NAT changed, its translations or their undoing),
//! then A against B; as lines for a person, JSON, and the list of
//! failures.

use super::capture::{Capture, Trace};
use super::compare::{Comparison, EXAMPLES};
use super::translations::Translations;
use super::{Dir, ParityArgs};
use anyhow::Result;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// What `ftmb-lab nat-parity` prints.
pub(crate) struct Report {
    pub json: Value,
    pub lines: Vec<String>,
    pub failures: Vec<String>,
}

impl Report {
    /// Compare the captures of every direction in `dirs` (direction, A's
    /// capture, B's capture), ignoring per direction the fields in
    /// `ignore`.
    pub fn build(
        trace: &Trace,
        a: &ParityArgs,
        dirs: &[(Dir, PathBuf, PathBuf)],
        ignore: &BTreeMap<Dir, BTreeSet<String>>,
    ) -> Result<Report> {
        let mut w = Writer {
            trace,
            lines: Vec::new(),
            failures: Vec::new(),
        };
        w.headline(a);
        let mut jdirs = Map::new();
        for (dir, pa, pb) in dirs {
            let ca = Capture::new(&a.a_name, *dir, pa, trace)?;
            let cb = Capture::new(&a.b_name, *dir, pb, trace)?;
            let ign = ignore.get(dir).cloned().unwrap_or_default();
            jdirs.insert(dir.name().to_string(), w.direction(*dir, &ca, &cb, ign));
        }
        w.verdict();
        let tcp = trace.tcp_flows();
        let json = json!({
            "a": a.a_name,
            "b": a.b_name,
            "trace": {
                "packets": trace.pkts.len(),
                "flows": trace.flows.len(),
                "tcp_flows": tcp,
                "udp_flows": trace.flows.len() - tcp,
            },
            "directions": jdirs,
            "ok": w.failures.is_empty(),
            "failures": w.failures,
        });
        Ok(Report {
            json,
            lines: w.lines,
            failures: w.failures,
        })
    }
}

/// `a, b, c`, or `nothing`.
fn list_or_nothing(items: &[&str]) -> String {
    if items.is_empty() {
        "nothing".to_string()
    } else {
        items.join(", ")
    }
}

/// Fields with their counts (`ip.ttl (3 of 10)`; a field that differs in
/// all `total` packets is named alone).
fn join_counts(m: &BTreeMap<&'static str, usize>, total: usize) -> String {
    if m.is_empty() {
        return "nothing".into();
    }
    m.iter()
        .map(|(f, n)| {
            if *n == total {
                f.to_string()
            } else {
                format!("{f} ({n} of {total})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as it is written: its lines and failures so far.
struct Writer<'t> {
    trace: &'t Trace,
    lines: Vec<String>,
    failures: Vec<String>,
}

impl Writer<'_> {
    /// The first line: who is compared, on which trace.
    fn headline(&mut self, a: &ParityArgs) {
        let t = self.trace;
        let tcp = t.tcp_flows();
        self.lines.push(format!(
            "nat-parity: {} vs {}; trace {}: {} packets, {} flows ({} tcp, {} udp)",
            a.a_name,
            a.b_name,
            a.trace.display(),
            t.pkts.len(),
            t.flows.len(),
            tcp,
            t.flows.len() - tcp
        ));
    }

    /// One direction: both captures on their own, then A against B.
    fn direction(&mut self, dir: Dir, ca: &Capture, cb: &Capture, ign: BTreeSet<String>) -> Value {
        let ign_list: Vec<&str> = ign.iter().map(String::as_str).collect();
        self.lines.push(format!(
            "{}, ignoring {}:",
            dir.title(),
            list_or_nothing(&ign_list)
        ));
        let mut jcaps = Map::new();
        for c in [ca, cb] {
            let jc = self.capture(c);
            jcaps.insert(c.name.clone(), jc);
        }
        let cmp = Comparison::of(ca, cb, self.trace, ign);
        self.comparison(dir, ca, cb, &cmp);
        json!({
            "ignored_fields": cmp.ignore,
            "captures": jcaps,
            "pairs": cmp.pairs,
            "equal": cmp.equal,
            "differ": cmp.differ(),
            "differing_fields": cmp.field_diffs,
            "examples": cmp.examples,
            "only_a": cmp.only_a,
            "only_b": cmp.only_b,
        })
    }

    /// One capture on its own: counts, order, checksums, what the NAT
    /// changed, and its translations (outbound) or their undoing (inbound).
    fn capture(&mut self, c: &Capture) -> Value {
        let trace = self.trace;
        let missing = c.missing(trace);
        let changes = c.changes(trace);
        self.lines.push(format!(
            "  {}: {} packets captured, {} from the trace, {} extra, {} of {} missing; trace order {}; bad checksums: IP {}, TCP/UDP {}",
            c.name,
            c.pkts.len() + c.extra.len(),
            c.pkts.len(),
            c.extra.len(),
            missing,
            trace.pkts.len(),
            if c.in_order { "kept" } else { "NOT kept" },
            c.bad_ip,
            c.bad_l4
        ));
        self.lines.push(format!(
            "    changed vs the {}: {}",
            if c.dir == Dir::Out {
                "trace"
            } else {
                "trace's mirror image"
            },
            join_counts(&changes, c.pkts.len())
        ));
        for e in c.extra.iter().take(EXAMPLES) {
            self.lines.push(format!("    extra: {e}"));
        }
        let pfx = format!("{} {}", c.dir.name(), c.name);
        self.capture_failures(c, &pfx, missing);
        let mut jc = json!({
            "captured": c.pkts.len() + c.extra.len(),
            "from_trace": c.pkts.len(),
            "extra": c.extra.len(),
            "missing": missing,
            "duplicates": c.duplicates(),
            "in_trace_order": c.in_order,
            "bad_ip_checksums": c.bad_ip,
            "bad_l4_checksums": c.bad_l4,
            "changed_vs_trace": changes,
            "extra_examples": c.extra.iter().take(EXAMPLES).collect::<Vec<_>>(),
        });
        match c.dir {
            Dir::Out => jc["translations"] = self.translations(c, &pfx),
            Dir::In => jc["not_restored"] = json!(self.restoration(c, &pfx)),
        }
        jc
    }

    /// A capture fails on its own for packets not from the trace,
    /// duplicated or missing, and for bad checksums.
    fn capture_failures(&mut self, c: &Capture, pfx: &str, missing: usize) {
        if !c.extra.is_empty() {
            self.failures.push(format!(
                "{pfx}: {} packets not from the trace",
                c.extra.len()
            ));
        }
        if c.duplicates() > 0 {
            self.failures
                .push(format!("{pfx}: {} duplicated packets", c.duplicates()));
        }
        if missing > 0 {
            self.failures
                .push(format!("{pfx}: {missing} trace packets missing"));
        }
        if c.bad_ip + c.bad_l4 > 0 {
            self.failures.push(format!(
                "{pfx}: bad checksums (IP {}, TCP/UDP {})",
                c.bad_ip, c.bad_l4
            ));
        }
    }

    /// Outbound: each flow must have one public address:port, and no two
    /// flows the same translated 5-tuple.
    fn translations(&mut self, c: &Capture, pfx: &str) -> Value {
        let t = Translations::of(c, self.trace);
        let addrs = t.addresses();
        self.lines.push(format!(
            "    translations: {} flows from {}; {} with more than one; {} translated 5-tuples shared; source port kept for {} flows; {} public address:port pairs serve several flows (different servers)",
            t.flows,
            addrs.join(", "),
            t.remapped.len(),
            t.shared_tuple.len(),
            t.port_kept,
            t.shared_port
        ));
        for e in t.remapped.iter().chain(&t.shared_tuple).take(EXAMPLES) {
            self.lines.push(format!("    translation: {e}"));
        }
        if !t.remapped.is_empty() {
            self.failures.push(format!(
                "{pfx}: {} flows translated to more than one address:port",
                t.remapped.len()
            ));
        }
        if !t.shared_tuple.is_empty() {
            self.failures.push(format!(
                "{pfx}: {} translated 5-tuples shared by several flows",
                t.shared_tuple.len()
            ));
        }
        json!({
            "flows": t.flows,
            "public_addresses": addrs,
            "flows_with_several": t.remapped.len(),
            "shared_5_tuples": t.shared_tuple.len(),
            "source_port_kept": t.port_kept,
            "shared_public_ports": t.shared_port,
        })
    }

    /// Inbound: every mirrored packet must reach the client at the
    /// address:port it sent from. Returns the packets that did not.
    fn restoration(&mut self, c: &Capture, pfx: &str) -> usize {
        let unrestored = c
            .paired(self.trace)
            .filter(|(p, sent)| p.flow.daddr != sent.flow.saddr || p.flow.dport != sent.flow.sport)
            .count();
        self.lines.push(format!(
            "    back to the original client address:port: {} of {}",
            c.pkts.len() - unrestored,
            c.pkts.len()
        ));
        if unrestored > 0 {
            self.failures.push(format!(
                "{pfx}: {unrestored} packets not translated back to the client's address:port"
            ));
        }
        unrestored
    }

    /// A against B: equal and differing packets, the fields that differ,
    /// and packets only one of them put out.
    fn comparison(&mut self, dir: Dir, ca: &Capture, cb: &Capture, cmp: &Comparison) {
        self.lines.push(format!(
            "  {} vs {}: {} packets in both, {} equal, {} differ; only in {}: {}, only in {}: {}",
            ca.name,
            cb.name,
            cmp.pairs,
            cmp.equal,
            cmp.differ(),
            ca.name,
            cmp.only_a,
            cb.name,
            cmp.only_b
        ));
        if cmp.differ() > 0 {
            self.lines.push(format!(
                "    differing fields: {}",
                join_counts(&cmp.field_diffs, cmp.pairs)
            ));
            for e in &cmp.examples {
                self.lines.push(format!("    e.g. {e}"));
            }
            let fields: Vec<&str> = cmp.field_diffs.keys().copied().collect();
            self.failures.push(format!(
                "{}: {} packets differ ({})",
                dir.name(),
                cmp.differ(),
                fields.join(", ")
            ));
        }
        if cmp.only_a + cmp.only_b > 0 {
            self.failures.push(format!(
                "{}: {} packets only from {}, {} only from {}",
                dir.name(),
                cmp.only_a,
                ca.name,
                cmp.only_b,
                cb.name
            ));
        }
    }

    /// The last lines: ok, or every failure.
    fn verdict(&mut self) {
        if self.failures.is_empty() {
            self.lines.push("parity: ok".into());
        } else {
            for f in &self.failures {
                self.lines.push(format!("parity: FAILED: {f}"));
            }
        }
    }
}
