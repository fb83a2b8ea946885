//! `ftmb-lab nat-parity`: do two NATs put out the same packets for the
//! same input? (`scripts/lab.sh --parity`.)
//!
//! Input: the trace that was replayed into the NATs (client -> server
//! packets only, as sent), and for each NAT two captures: *outbound*, what
//! left the NAT towards the servers, and *inbound*, what reached the client
//! after a reflector behind the NAT (`examples/lab-mirror.click`) sent each
//! outbound packet back as its mirror image.
//!
//! Every captured packet is paired with the trace packet it came from by
//! the fields no NAT touches: protocol, server address and port, TCP
//! sequence, acknowledgment and flags, and the payload (for inbound
//! packets, after mirroring them back). Two NATs' copies of one trace
//! packet are then compared header field by header field, all of them
//! except an explicit ignore list: outbound, by default, the TCP/UDP source
//! port (the port the NAT chose) and the TCP/UDP checksum (which covers
//! it). Each capture is also checked on its own: valid checksums, every
//! original flow translated to exactly one public address:port, no two
//! flows sharing a translated 5-tuple, and inbound packets restored to the
//! original client address:port.
//!
//! The pieces: `packet` reads a frame's headers (through the core's header
//! views), `capture` pairs captures with the trace, `translations` and
//! `compare` judge them, `report` writes it up.

mod capture;
mod compare;
mod packet;
mod report;
mod translations;

use anyhow::{bail, Result};
use capture::{read_frames, Trace};
use packet::FIELD_NAMES;
use report::Report;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// `ftmb-lab nat-parity` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct ParityArgs {
    /// The trace that was replayed (client -> server packets, as sent).
    #[arg(long)]
    pub trace: PathBuf,
    /// NAT A's outbound capture: what left it towards the servers.
    #[arg(long)]
    pub a_out: PathBuf,
    /// NAT A's inbound capture: the mirrored packets as they reached the
    /// client (optional; give it for both NATs or neither).
    #[arg(long)]
    pub a_in: Option<PathBuf>,
    /// NAT B's outbound capture.
    #[arg(long)]
    pub b_out: PathBuf,
    /// NAT B's inbound capture.
    #[arg(long)]
    pub b_in: Option<PathBuf>,
    /// Name of NAT A in the report.
    #[arg(long, default_value = "a")]
    pub a_name: String,
    /// Name of NAT B in the report.
    #[arg(long, default_value = "b")]
    pub b_name: String,
    /// Also ignore this header field when comparing A with B, as
    /// `DIRECTION:FIELD` (`out:ip.id`, `in:ip.ttl`); repeatable. `--fields`
    /// lists the names. Outbound `l4.sport` and `l4.csum` are always
    /// ignored.
    #[arg(long)]
    pub ignore: Vec<String>,
    /// List the header field names and exit.
    #[arg(long)]
    pub fields: bool,
    /// Print the report as JSON on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Fields never compared outbound: the NAT's own choice.
const ALWAYS_IGNORED_OUT: [&str; 2] = ["l4.sport", "l4.csum"];

/// Which way a capture's packets went through the NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Dir {
    Out,
    In,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Out => "out",
            Dir::In => "in",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Dir::Out => "outbound (client -> NAT -> server)",
            Dir::In => "inbound (mirrored: server -> NAT -> client)",
        }
    }
}

/// The fields ignored per direction: the ones always ignored and
/// `--ignore`'s.
fn ignore_lists(a: &ParityArgs) -> Result<BTreeMap<Dir, BTreeSet<String>>> {
    let mut ignore: BTreeMap<Dir, BTreeSet<String>> = BTreeMap::new();
    ignore.insert(
        Dir::Out,
        ALWAYS_IGNORED_OUT.iter().map(|s| s.to_string()).collect(),
    );
    ignore.insert(Dir::In, BTreeSet::new());
    for i in &a.ignore {
        let (d, f) = match i.split_once(':') {
            Some(("out", f)) => (Dir::Out, f),
            Some(("in", f)) => (Dir::In, f),
            _ => bail!("--ignore {i}: expected out:FIELD or in:FIELD"),
        };
        if !FIELD_NAMES.contains(&f) && f != "payload" {
            bail!("--ignore {i}: no field {f} (see --fields)");
        }
        ignore.entry(d).or_default().insert(f.to_string());
    }
    Ok(ignore)
}

/// The directions to compare: (direction, A's capture, B's capture).
fn directions(a: &ParityArgs) -> Result<Vec<(Dir, PathBuf, PathBuf)>> {
    let mut dirs = vec![(Dir::Out, a.a_out.clone(), a.b_out.clone())];
    match (&a.a_in, &a.b_in) {
        (Some(x), Some(y)) => dirs.push((Dir::In, x.clone(), y.clone())),
        (None, None) => {}
        _ => bail!("give --a-in and --b-in together, or neither"),
    }
    Ok(dirs)
}

/// Runs `ftmb-lab nat-parity`: prints the report; `Ok(false)` on a
/// mismatch.
pub fn run(a: &ParityArgs) -> Result<bool> {
    if a.fields {
        for f in FIELD_NAMES.iter().chain(["payload"].iter()) {
            crate::print_out(f);
        }
        return Ok(true);
    }
    let ignore = ignore_lists(a)?;
    let dirs = directions(a)?;
    let trace = Trace::new(&read_frames(&a.trace)?, &a.trace)?;
    let report = Report::build(&trace, a, &dirs, &ignore)?;
    if a.json {
        crate::print_out(&serde_json::to_string_pretty(&report.json)?);
    }
    for line in &report.lines {
        if a.json {
            eprintln!("{line}");
        } else {
            crate::print_out(line);
        }
    }
    Ok(report.failures.is_empty())
}

#[cfg(test)]
mod tests;
