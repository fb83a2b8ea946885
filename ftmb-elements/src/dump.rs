//! Trace files: `FromDump` reads pcap/pcapng, `ToDump` writes pcap.

use ftmb_core::clock::wall_ns;
use ftmb_core::egress::Egress;
use ftmb_core::element::{element, SourceStatus};
use ftmb_core::headers::{ip_offset, Framing, Ipv4View};
use ftmb_core::trace::{LinkType, PcapWriter, TraceReader};
use ftmb_core::{Args, Built, ConfigError, InitCtx, Packet, Source, Value};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

fn framing_of(link: LinkType) -> Framing {
    match link {
        LinkType::Ethernet => Framing::Ethernet,
        LinkType::RawIp => Framing::RawIp,
        LinkType::LinuxSll => Framing::LinuxSll,
        LinkType::Null => Framing::Null,
        LinkType::Other(_) => Framing::Unknown,
    }
}

/// `FromDump(FILENAME, ...)`: read packets from a pcap or pcapng file.
///
/// # Configuration
/// `FILENAME`; `TIMING` (default false: as fast as possible; true: keep the
/// trace's inter-packet gaps); `STOP` (default false: when the file ends,
/// send a stop event to the driver); `FORCE_IP` (default false: find the
/// IP header behind the link header and set the network-header annotation,
/// dropping non-IP packets; forced on for raw-IP files); `ACTIVE` (default
/// true). The link header is not stripped, as in Click.
///
/// A file that is not pcap or pcapng is a configuration error; a truncated
/// record is reported as an error when reached.
///
/// # Ports
/// No inputs, one output.
///
/// # Handlers
/// `count` (packets read), `non_ip` (dropped by FORCE_IP).
///
/// # Shared state
/// None (a source runs on the input thread).
pub struct FromDump {
    reader: TraceReader,
    framing: Framing,
    timing: bool,
    stop: bool,
    force_ip: bool,
    active: bool,
    count: u64,
    non_ip: u64,
    /// (first trace timestamp, wall time when it was emitted) for TIMING.
    t0: Option<(u64, u64)>,
    held: Option<Packet>,
}

impl FromDump {
    fn due(&mut self, ts: u64) -> bool {
        if !self.timing {
            return true;
        }
        let now = wall_ns();
        let (t0, w0) = *self.t0.get_or_insert((ts, now));
        ts.saturating_sub(t0) <= now.saturating_sub(w0)
    }
}

impl Source for FromDump {
    fn framing(&self) -> Framing {
        self.framing
    }
    fn poll(&mut self, max: usize, out: &mut Vec<Packet>) -> Result<SourceStatus, String> {
        if !self.active {
            return Ok(SourceStatus::Done);
        }
        if let Some(p) = self.held.take() {
            if !self.due(p.anno.ts_ns) {
                self.held = Some(p);
                return Ok(SourceStatus::Idle);
            }
            out.push(p);
        }
        while out.len() < max {
            let rec = match self.reader.next_record() {
                None => return Ok(SourceStatus::Done),
                Some(Err(e)) => return Err(format!("FromDump: {e}")),
                Some(Ok(r)) => r,
            };
            let mut p = Packet::from_bytes(rec.data);
            p.anno.ts_ns = rec.ts_ns;
            if self.force_ip {
                let fr = framing_of(rec.link);
                let ip_at = |o: usize| rec.data.get(o..).unwrap_or(&[]);
                match ip_offset(fr, rec.data).filter(|&o| {
                    Ipv4View::new(ip_at(o)).is_some()
                        || (ip_at(o).len() >= 40 && ip_at(o)[0] >> 4 == 6)
                }) {
                    Some(o) => {
                        p.anno.net_off = u16::try_from(o).ok();
                        if let Some(v) = Ipv4View::new(ip_at(o)) {
                            p.anno.dst_ip = u32::from_be_bytes(v.dst());
                        }
                    }
                    None => {
                        self.non_ip += 1;
                        continue;
                    }
                }
            }
            self.count += 1;
            if !self.due(p.anno.ts_ns) {
                self.held = Some(p);
                return Ok(SourceStatus::Idle);
            }
            out.push(p);
        }
        Ok(SourceStatus::Ready)
    }
    fn stop_when_done(&self) -> bool {
        self.stop
    }
    fn progress(&self) -> Option<(u64, u64)> {
        Some((
            self.reader.position() as u64,
            self.reader.len_bytes() as u64,
        ))
    }
    fn stats(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("count", Value::Count(self.count)),
            ("non_ip", Value::Count(self.non_ip)),
        ]
    }
}

pub(crate) fn build_from_dump(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let file: String = a.required("FILENAME")?;
    let timing = a.positional("TIMING")?.unwrap_or(false);
    let stop = a.keyword_or("STOP", false)?;
    let mut force_ip = a.keyword_or("FORCE_IP", false)?;
    let active = a.keyword_or("ACTIVE", true)?;
    let reader = TraceReader::open(Path::new(&file))
        .map_err(|e| a.error(format!("cannot read `{file}`: {e}")))?;
    let link = reader.link_type();
    if link == LinkType::RawIp {
        force_ip = true;
    }
    if force_ip && matches!(link, LinkType::Other(_)) {
        return Err(a.error(format!(
            "FORCE_IP: link type {} of `{file}` is not supported",
            link.dlt()
        )));
    }
    Ok(Built::Source(Box::new(FromDump {
        reader,
        framing: framing_of(link),
        timing,
        stop,
        force_ip,
        active,
        count: 0,
        non_ip: 0,
        t0: None,
        held: None,
    })))
}

/// The pcap file a `ToDump` writes.
struct PcapEgress {
    w: PcapWriter<BufWriter<File>>,
    snaplen: usize,
    packets: u64,
    bytes: u64,
}

impl Egress for PcapEgress {
    fn write(&mut self, pkts: &[Packet]) -> std::io::Result<()> {
        for p in pkts {
            let d = p.data();
            let d = &d[..d.len().min(self.snaplen)];
            let ts = if p.anno.ts_ns == 0 {
                wall_ns()
            } else {
                p.anno.ts_ns
            };
            self.w.write_packet(ts, d)?;
            self.packets += 1;
            self.bytes += d.len() as u64;
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![("packets", self.packets), ("bytes", self.bytes)]
    }
}

/// `ToDump(FILENAME, ...)`: write packets to a pcap file, as they are (no
/// header is added or removed: after `Strip(14)` say `ENCAP IP`).
///
/// # Configuration
/// `FILENAME`; `SNAPLEN` (default 2000, 0 for unlimited); `ENCAP` (`ETHER`,
/// default, or `IP`: only the file's link-type label); `NANO` (default
/// false: microsecond timestamps like Click; true: nanosecond pcap).
///
/// Under fault tolerance the packets are written by the output logger once
/// committed; without it, by the workers once per batch.
///
/// # Ports
/// One input; packets are also passed to output 0 if it is connected.
///
/// # Handlers
/// `count`.
///
/// # Shared state
/// None (the file is an output sink).
pub type ToDump = crate::sink::ToSink;

pub(crate) fn build_to_dump(a: &mut Args, ctx: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let file: String = a.required("FILENAME")?;
    let snaplen = match a.positional::<usize>("SNAPLEN")?.unwrap_or(2000) {
        0 => usize::MAX,
        n => n,
    };
    let encap: String = a.positional("ENCAP")?.unwrap_or_else(|| "ETHER".into());
    let nanos = a.keyword_or("NANO", false)?;
    let link = match encap.to_ascii_uppercase().as_str() {
        "ETHER" => LinkType::Ethernet,
        "IP" => LinkType::RawIp,
        "SLL" => LinkType::LinuxSll,
        "NULL" => LinkType::Null,
        other => {
            return Err(a
                .error(format!("unknown ENCAP `{other}`"))
                .with_help("use ETHER or IP".to_string()))
        }
    };
    let span = a.span();
    let sink = ctx
        .sink(|| {
            let w = PcapWriter::create(Path::new(&file), link, nanos)
                .map_err(|e| format!("cannot create `{file}`: {e}"))?;
            Ok(Box::new(PcapEgress {
                w,
                snaplen,
                packets: 0,
                bytes: 0,
            }) as Box<dyn Egress>)
        })
        .map_err(|e| ConfigError::new(format!("ToDump: {e}"), span))?;
    element(ToDump::new(sink))
}
