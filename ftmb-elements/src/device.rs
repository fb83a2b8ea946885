//! Network devices: `FromDevice` reads frames from an interface, `ToDevice`
//! sends frames out of one.
//!
//! The backend is Linux `AF_PACKET` ([`afpacket`]: one raw socket per
//! element, batched with `recvmmsg`/`sendmmsg`), or netmap with the cargo
//! feature `netmap` and `METHOD NETMAP` (untested where no netmap is
//! installed; see the README).
//!
//! Sockets are opened **lazily**, on the first poll or the first write,
//! never when the graph is built: every fault-tolerance role builds the whole
//! configuration, but only the input logger polls the sources and only the
//! output logger writes the sinks, so building must not take the interface.
//! An interface that does not exist or a process without `CAP_NET_RAW`
//! shows up then, as "FromDevice(veth0): no such interface".

#[cfg(target_os = "linux")]
pub mod afpacket;
#[cfg(all(target_os = "linux", feature = "netmap"))]
pub mod netmap;

use ftmb_core::clock::wall_ns;
use ftmb_core::egress::Egress;
use ftmb_core::element::{element, Backpressure, SourceStatus};
use ftmb_core::headers::Framing;
use ftmb_core::{Args, Built, ConfigError, InitCtx, Packet, Source, Value};
use std::time::{Duration, Instant};

/// Which packet I/O a device element uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Linux `AF_PACKET` raw sockets (the default).
    Linux,
    /// netmap (`/dev/netmap`), with the cargo feature `netmap`.
    Netmap,
}

fn method_arg(a: &mut Args) -> Result<Method, ConfigError> {
    let m: Option<String> = a.keyword("METHOD")?;
    match m.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("LINUX") => Ok(Method::Linux),
        Some("NETMAP") if cfg!(all(target_os = "linux", feature = "netmap")) => Ok(Method::Netmap),
        Some("NETMAP") => Err(a
            .error("METHOD NETMAP: this build has no netmap backend")
            .with_help("rebuild with `cargo build --features netmap`".to_string())),
        Some(other) => Err(a
            .error(format!("unknown METHOD `{other}`"))
            .with_help("use LINUX or NETMAP".to_string())),
    }
}

/// How often a `ToDevice` whose interface failed to open tries again.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// A receive backend, once open.
enum RxBackend {
    #[cfg(target_os = "linux")]
    AfPacket(afpacket::PacketSocket, afpacket::RecvBatch),
    #[cfg(all(target_os = "linux", feature = "netmap"))]
    Netmap(netmap::NetmapPort),
}

/// A send backend, once open.
enum TxBackend {
    #[cfg(target_os = "linux")]
    AfPacket(afpacket::PacketSocket),
    #[cfg(all(target_os = "linux", feature = "netmap"))]
    Netmap(netmap::NetmapPort),
}

/// An open backend's MTU (frames may be this plus an Ethernet header).
impl TxBackend {
    fn mtu(&self) -> usize {
        match self {
            #[cfg(target_os = "linux")]
            TxBackend::AfPacket(s) => s.mtu(),
            #[cfg(all(target_os = "linux", feature = "netmap"))]
            TxBackend::Netmap(p) => p.mtu(),
        }
    }
}

#[cfg(target_os = "linux")]
fn open_rx(
    ifname: &str,
    method: Method,
    promisc: bool,
    burst: usize,
    snaplen: usize,
) -> Result<RxBackend, String> {
    match method {
        Method::Linux => {
            let s = afpacket::PacketSocket::open(ifname, afpacket::Direction::Rx, promisc, 8 << 20)
                .map_err(|e| e.to_string())?;
            // SNAPLEN 0: a whole frame of this interface, VLAN tag included.
            let snap = if snaplen == 0 {
                (s.mtu() + 18).max(2048)
            } else {
                snaplen
            };
            let b = afpacket::RecvBatch::new(burst, snap);
            Ok(RxBackend::AfPacket(s, b))
        }
        #[cfg(feature = "netmap")]
        Method::Netmap => netmap::NetmapPort::open(ifname).map(RxBackend::Netmap),
        #[cfg(not(feature = "netmap"))]
        Method::Netmap => Err("no netmap backend in this build".into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn open_rx(_: &str, _: Method, _: bool, _: usize, _: usize) -> Result<RxBackend, String> {
    Err("devices need Linux (AF_PACKET)".into())
}

#[cfg(target_os = "linux")]
fn open_tx(ifname: &str, method: Method) -> Result<TxBackend, String> {
    match method {
        Method::Linux => afpacket::PacketSocket::open(ifname, afpacket::Direction::Tx, false, 0)
            .map(TxBackend::AfPacket)
            .map_err(|e| e.to_string()),
        #[cfg(feature = "netmap")]
        Method::Netmap => netmap::NetmapPort::open(ifname).map(TxBackend::Netmap),
        #[cfg(not(feature = "netmap"))]
        Method::Netmap => Err("no netmap backend in this build".into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn open_tx(_: &str, _: Method) -> Result<TxBackend, String> {
    Err("devices need Linux (AF_PACKET)".into())
}

/// `FromDevice(IFACE, ...)`: read Ethernet frames arriving on a network
/// interface.
///
/// # Configuration
/// `IFACE`, the interface name; `PROMISC` (default false: only frames
/// addressed to the interface; true: every frame on the wire); `BURST`
/// (default 32, 1 to 1024: frames taken per system call); `SNAPLEN`
/// (default 0: whole frames up to the interface MTU; at most 262144; longer
/// frames are cut and counted as `truncated`); `METHOD` (`LINUX`, default: `AF_PACKET`; `NETMAP` with the
/// `netmap` feature).
///
/// The interface is opened at the first poll, not when the configuration is
/// built. Frames the host itself sends on the interface (a `ToDevice` on
/// it) are not received. Frames keep their Ethernet header (framing as
/// `FromDump` of an `ENCAP ETHER` file); each gets the wall-clock time of
/// its receipt as its timestamp. The source never finishes on its own.
/// When no frame is ready its poll returns at once and the input loop waits
/// on the socket (at most about a millisecond, see `ftmb_core::idle`), so an
/// idle device costs no CPU. When the workers fall behind, frames are
/// dropped and counted by the runtime, as on a real wire.
///
/// # Ports
/// No inputs, one output.
///
/// # Handlers
/// `count`, `bytes` (frames and bytes received), `kernel_drops` (frames the
/// kernel dropped because the socket buffer was full: `PACKET_STATISTICS`),
/// `truncated` (frames longer than `SNAPLEN`).
///
/// # Shared state
/// None (a source runs on the input thread).
pub struct FromDevice {
    ifname: String,
    method: Method,
    promisc: bool,
    burst: usize,
    snaplen: usize,
    rx: Option<RxBackend>,
    count: u64,
    bytes: u64,
    truncated: u64,
    kernel_drops: std::cell::Cell<u64>,
    polls: u32,
}

impl FromDevice {
    fn name(&self) -> String {
        format!("FromDevice({})", self.ifname)
    }

    /// Add the kernel's drop count since the last read.
    fn refresh_kernel_stats(&self) {
        match &self.rx {
            #[cfg(target_os = "linux")]
            Some(RxBackend::AfPacket(s, _)) => {
                if let Ok((_, drops)) = s.take_stats() {
                    self.kernel_drops.set(self.kernel_drops.get() + drops);
                }
            }
            #[cfg(all(target_os = "linux", feature = "netmap"))]
            Some(RxBackend::Netmap(_)) => {}
            None => {}
        }
    }
}

impl Source for FromDevice {
    fn framing(&self) -> Framing {
        Framing::Ethernet
    }

    fn poll(&mut self, max: usize, out: &mut Vec<Packet>) -> Result<SourceStatus, String> {
        if self.rx.is_none() {
            // A device that cannot be opened ends this source, with the
            // reason (the runtime reports it).
            match open_rx(
                &self.ifname,
                self.method,
                self.promisc,
                self.burst,
                self.snaplen,
            ) {
                Ok(b) => self.rx = Some(b),
                Err(e) => return Err(format!("{}: {e}", self.name())),
            }
        }
        self.polls = self.polls.wrapping_add(1);
        if self.polls & 4095 == 0 {
            self.refresh_kernel_stats();
        }
        let start = out.len();
        match &mut self.rx {
            #[cfg(target_os = "linux")]
            Some(RxBackend::AfPacket(s, batch)) => {
                let want = max.min(self.burst);
                s.recv_batch(batch, want)
                    .map_err(|e| format!("FromDevice({}): receive: {e}", self.ifname))?;
                let now = wall_ns();
                for f in batch.frames() {
                    if f.wire_len > f.data.len() {
                        self.truncated += 1;
                    }
                    let mut p = Packet::from_bytes(f.data);
                    p.anno.ts_ns = now;
                    self.bytes += f.data.len() as u64;
                    out.push(p);
                }
            }
            #[cfg(all(target_os = "linux", feature = "netmap"))]
            Some(RxBackend::Netmap(port)) => {
                let now = wall_ns();
                port.recv(max.min(self.burst), &mut |data| {
                    let mut p = Packet::from_bytes(data);
                    p.anno.ts_ns = now;
                    out.push(p);
                })
                .map_err(|e| format!("FromDevice({}): receive: {e}", self.ifname))?;
                self.bytes += out[start..].iter().map(|p| p.len() as u64).sum::<u64>();
            }
            None => {}
        }
        let got = out.len() - start;
        self.count += got as u64;
        Ok(if got == 0 {
            SourceStatus::Idle
        } else {
            SourceStatus::Ready
        })
    }

    fn backpressure(&self) -> Backpressure {
        Backpressure::Drop
    }

    fn stats(&self) -> Vec<(&'static str, Value)> {
        self.refresh_kernel_stats();
        vec![
            ("count", Value::Count(self.count)),
            ("bytes", Value::Count(self.bytes)),
            ("kernel_drops", Value::Count(self.kernel_drops.get())),
            ("truncated", Value::Count(self.truncated)),
        ]
    }

    fn readiness_fd(&self) -> Option<i32> {
        match &self.rx {
            #[cfg(target_os = "linux")]
            Some(RxBackend::AfPacket(s, _)) => Some(s.raw_fd()),
            #[cfg(all(target_os = "linux", feature = "netmap"))]
            Some(RxBackend::Netmap(p)) => Some(p.raw_fd()),
            None => None,
        }
    }
}

/// Largest `SNAPLEN` of a `FromDevice` (pcap's own maximum).
pub const MAX_SNAPLEN: usize = 262_144;

pub(crate) fn build_from_device(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let ifname: String = a.required("DEVNAME")?;
    let promisc = a.positional("PROMISC")?.unwrap_or(false);
    let burst: usize = a.keyword_or("BURST", 32)?;
    let snaplen = a.keyword_within("SNAPLEN", 0, 0, MAX_SNAPLEN)?;
    let method = method_arg(a)?;
    check_ifname(a, &ifname)?;
    if !(1..=1024).contains(&burst) {
        return Err(a.error(format!("BURST {burst} is out of range 1-1024")));
    }
    Ok(Built::Source(Box::new(FromDevice {
        ifname,
        method,
        promisc,
        burst,
        snaplen,
        rx: None,
        count: 0,
        bytes: 0,
        truncated: 0,
        kernel_drops: std::cell::Cell::new(0),
        polls: 0,
    })))
}

fn check_ifname(a: &Args, name: &str) -> Result<(), ConfigError> {
    // Linux names: 1-15 bytes, no '/', no whitespace, no NUL.
    if name.is_empty()
        || name.len() > 15
        || name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace())
    {
        return Err(a
            .error(format!("`{name}` is not a valid interface name"))
            .with_help("interface names have 1 to 15 characters and no '/'".to_string()));
    }
    Ok(())
}

/// The interface a `ToDevice` sends on, opened at the first write.
struct DeviceEgress {
    ifname: String,
    method: Method,
    burst: usize,
    tx: Option<TxBackend>,
    failed_at: Option<Instant>,
    packets: u64,
    bytes: u64,
    errors: u64,
    too_big: u64,
}

impl DeviceEgress {
    fn open(&mut self) -> std::io::Result<()> {
        if self.tx.is_some() {
            return Ok(());
        }
        if self.failed_at.is_some_and(|t| t.elapsed() < REOPEN_AFTER) {
            return Err(std::io::Error::other(format!(
                "ToDevice({}): not open",
                self.ifname
            )));
        }
        match open_tx(&self.ifname, self.method) {
            Ok(t) => {
                self.tx = Some(t);
                self.failed_at = None;
                Ok(())
            }
            Err(e) => {
                self.failed_at = Some(Instant::now());
                Err(std::io::Error::other(format!(
                    "ToDevice({}): {e}",
                    self.ifname
                )))
            }
        }
    }
}

impl Egress for DeviceEgress {
    /// Send every frame now (nothing is held back for `flush`). A frame
    /// longer than the interface allows, or one the kernel refuses, is
    /// counted in `errors` (and `too_big`), and the rest still go.
    fn write(&mut self, pkts: &[Packet]) -> std::io::Result<()> {
        if let Err(e) = self.open() {
            self.errors += pkts.len() as u64;
            return Err(e);
        }
        let Some(tx) = &mut self.tx else {
            return Ok(());
        };
        // Frames may carry an Ethernet header and one VLAN tag beyond the MTU.
        let limit = tx.mtu() + 18;
        let mut frames: Vec<&[u8]> = Vec::with_capacity(self.burst.min(pkts.len()));
        for chunk in pkts.chunks(self.burst) {
            frames.clear();
            for p in chunk {
                let d = p.data();
                if d.len() > limit || d.len() < 14 {
                    self.too_big += u64::from(d.len() > limit);
                    self.errors += 1;
                    continue;
                }
                frames.push(d);
            }
            match tx {
                #[cfg(target_os = "linux")]
                TxBackend::AfPacket(s) => {
                    let (sent, failed, _) = s.send_batch(&frames);
                    self.packets += sent as u64;
                    self.errors += failed as u64;
                    if failed == 0 {
                        self.bytes += frames.iter().map(|f| f.len() as u64).sum::<u64>();
                    }
                }
                #[cfg(all(target_os = "linux", feature = "netmap"))]
                TxBackend::Netmap(port) => {
                    let (sent, failed) = port.send(&frames);
                    self.packets += sent as u64;
                    self.errors += failed as u64;
                    self.bytes += frames[..sent].iter().map(|f| f.len() as u64).sum::<u64>();
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        #[cfg(all(target_os = "linux", feature = "netmap"))]
        if let Some(TxBackend::Netmap(port)) = &mut self.tx {
            port.flush();
        }
        Ok(())
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("packets", self.packets),
            ("bytes", self.bytes),
            ("errors", self.errors),
            ("too_big", self.too_big),
        ]
    }
}

/// `ToDevice(IFACE, ...)`: send packets out of a network interface, as
/// they are (they must begin with an Ethernet header).
///
/// # Configuration
/// `IFACE`; `BURST` (default 32, 1 to 1024: frames per system call); `METHOD` (as for
/// `FromDevice`).
///
/// The interface is opened at the first write, not when the configuration
/// is built. Frames are sent at once: without fault tolerance once per
/// batch by the worker, under fault tolerance by the output logger as soon
/// as each is committed. A frame longer than the interface's MTU (plus its
/// Ethernet header) is counted as an error and not sent.
///
/// # Ports
/// One input; packets are also passed to output 0 if it is connected.
///
/// # Handlers
/// `count` (packets handed to the device). The sink's own counters
/// (`packets`, `bytes`, `errors`, `too_big`) are on the egress.
///
/// # Shared state
/// None (the device is an output sink).
pub type ToDevice = crate::sink::ToSink;

pub(crate) fn build_to_device(a: &mut Args, ctx: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let ifname: String = a.required("DEVNAME")?;
    let burst: usize = a.keyword_or("BURST", 32)?;
    let method = method_arg(a)?;
    check_ifname(a, &ifname)?;
    if !(1..=1024).contains(&burst) {
        return Err(a.error(format!("BURST {burst} is out of range 1-1024")));
    }
    let sink = ctx
        .sink(|| {
            Ok(Box::new(DeviceEgress {
                ifname,
                method,
                burst,
                tx: None,
                failed_at: None,
                packets: 0,
                bytes: 0,
                errors: 0,
                too_big: 0,
            }) as Box<dyn Egress>)
        })
        .map_err(|e| a.error(e))?;
    element(ToDevice::new(sink))
}
