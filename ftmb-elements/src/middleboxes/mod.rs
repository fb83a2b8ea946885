//! The paper's middleboxes: a stateful [`firewall::Firewall`], a
//! [`loadbalancer::LoadBalancer`], the [`monitor::Monitor`] microbenchmark
//! and the [`gen::Gen`] synthetic state-access generator (docs/design.md, section 9).
//!
//! All four keep to the state access contract of [`ftmb_core::context`]:
//! tables that more than one worker can reach are
//! [`ftmb_core::shared::Shared`] variables split into slots (lock domains),
//! time comes from [`ftmb_core::Ctx::now_ns`] and randomness from
//! [`ftmb_core::Ctx::random`]; counters in the elements' own fields are
//! worker-private and saved by `save_state`.

pub mod firewall;
pub mod gen;
pub mod loadbalancer;
pub mod monitor;

pub use firewall::{Conn, ConnState, ConnTable, Firewall};
pub use gen::Gen;
pub use loadbalancer::{BackendLoad, LoadBalancer, Mapping, Policy};
pub use monitor::Monitor;

use ftmb_core::headers::FlowId;
use ftmb_core::shared::{CodecError, StateCodec};
use ftmb_core::Packet;

/// A [`FlowId`] that can live in shared state and snapshots (the key of the
/// firewall's and the load balancer's tables). Encoded as 13 bytes: source
/// address, source port, destination address, destination port, protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey(pub FlowId);

impl StateCodec for FlowKey {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
    fn decode(inp: &mut &[u8]) -> Result<Self, CodecError> {
        FlowId::decode(inp).map(FlowKey)
    }
}

/// The IP header of `pkt`: at the network-header annotation when set, else
/// at the packet start.
#[inline]
pub(crate) fn ip_bytes(pkt: &Packet) -> &[u8] {
    pkt.ip_or_data()
}

/// Writable IP header of `pkt` (annotation, else packet start); `None` when
/// the annotation points past the end.
#[inline]
pub(crate) fn ip_bytes_mut(pkt: &mut Packet) -> Option<&mut [u8]> {
    if pkt.anno.net_off.is_some() {
        pkt.ip_mut()
    } else {
        Some(pkt.data_mut())
    }
}

/// TCP flag bits.
pub(crate) mod tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// The TCP flags byte of an IPv4 TCP packet (first fragment), if present.
#[inline]
pub(crate) fn tcp_flags(ip: &[u8]) -> Option<u8> {
    let v = ftmb_core::headers::Ipv4View::new(ip)?;
    if v.protocol() != ftmb_core::headers::proto::TCP || v.frag_offset() != 0 {
        return None;
    }
    v.payload().get(13).copied()
}

/// Encode worker-private state into a snapshot buffer.
pub(crate) fn save<T: StateCodec>(v: &T, out: &mut Vec<u8>) {
    v.encode(out);
}

/// Decode worker-private state, requiring the whole buffer to be used.
pub(crate) fn load<T: StateCodec>(mut buf: &[u8]) -> Result<T, String> {
    let v = T::decode(&mut buf).map_err(|e| e.to_string())?;
    if buf.is_empty() {
        Ok(v)
    } else {
        Err(format!("{} trailing bytes in element state", buf.len()))
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Hand-built packets and element construction without a router.

    use ftmb_core::config::{Arg, Span};
    use ftmb_core::egress::SinkRegistry;
    use ftmb_core::headers::Ipv4View;
    use ftmb_core::headers::{checksum, l4_checksum_offset, proto};
    use ftmb_core::shared::SharedRegistry;
    use ftmb_core::trace::{Ipv4Header, TcpHeader};
    use ftmb_core::{Args, Built, ConfigError, Element, InitCtx, Packet, Value};

    pub use super::tcp::{ACK, FIN, RST, SYN};

    fn l4_checksum(src: [u8; 4], dst: [u8; 4], protocol: u8, seg: &[u8]) -> u16 {
        let mut s = seg.to_vec();
        if let Some(co) = l4_checksum_offset(protocol) {
            s[co] = 0;
            s[co + 1] = 0;
        }
        let ck = ftmb_core::trace::l4_checksum_v4(src, dst, protocol, &s);
        if protocol == proto::UDP && ck == 0 {
            0xffff
        } else {
            ck
        }
    }

    fn annotate(bytes: Vec<u8>) -> Packet {
        let mut p = Packet::from_bytes(&bytes);
        p.anno.net_off = Some(0);
        p
    }

    /// A TCP packet with `flags` and `payload`, IP annotation set.
    pub fn tcp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, flags: u8, payload: &[u8]) -> Packet {
        let tcp = TcpHeader {
            window: 1024,
            ..TcpHeader::new(sp, dp, flags)
        };
        annotate(Ipv4Header::new(src, dst).tcp(&tcp, payload))
    }

    /// A UDP packet, IP annotation set.
    pub fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8]) -> Packet {
        annotate(Ipv4Header::new(src, dst).udp(sp, dp, payload))
    }

    /// An ICMP echo request, IP annotation set.
    pub fn icmp(src: [u8; 4], dst: [u8; 4]) -> Packet {
        let mut l4 = vec![8u8, 0, 0, 0, 0, 1, 0, 1];
        let ck = checksum(&l4);
        l4[2..4].copy_from_slice(&ck.to_be_bytes());
        annotate(Ipv4Header::new(src, dst).packet(proto::ICMP, &l4))
    }

    /// True when the IP header checksum and the TCP/UDP checksum verify.
    pub fn checksums_ok(pkt: &Packet) -> bool {
        let ip = pkt.ip_or_data();
        let Some(v) = Ipv4View::new(ip) else {
            return false;
        };
        if checksum(&ip[..v.header_len()]) != 0 {
            return false;
        }
        let seg = v.payload();
        match l4_checksum_offset(v.protocol()) {
            Some(co) if seg.len() >= co + 2 => {
                let stored = u16::from_be_bytes([seg[co], seg[co + 1]]);
                stored == l4_checksum(v.src(), v.dst(), v.protocol(), seg)
            }
            _ => true,
        }
    }

    /// The value of `e`'s read handler `name`.
    pub fn stat(e: &dyn Element, name: &str) -> Value {
        e.stats()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no handler {name}"))
            .1
    }

    /// Source and destination address of an IPv4 packet.
    pub fn addrs(pkt: &Packet) -> ([u8; 4], [u8; 4]) {
        let v = Ipv4View::new(pkt.ip_or_data()).expect("IPv4");
        (v.src(), v.dst())
    }

    /// `Arg`s from argument texts, with made-up spans.
    pub fn args(texts: &[&str]) -> (Vec<Arg>, Span) {
        let mut off = 0;
        let list = texts
            .iter()
            .map(|t| {
                let a = Arg {
                    text: t.to_string(),
                    span: Span::new(off, off + t.len()),
                };
                off += t.len() + 2;
                a
            })
            .collect();
        (list, Span::new(0, off))
    }

    /// Build function of an element class.
    pub type BuildFn = fn(&mut Args, &mut InitCtx<'_>) -> Result<Built, ConfigError>;

    /// Build one instance per worker of `nworkers` against one shared
    /// registry, as the graph builder does.
    pub fn build_workers(
        class: &str,
        build: BuildFn,
        texts: &[&str],
        shared: &mut SharedRegistry,
        nworkers: usize,
    ) -> Result<Vec<Box<dyn Element>>, ConfigError> {
        let mut sinks = SinkRegistry::new();
        let (list, span) = args(texts);
        let mut out = Vec::new();
        for w in 0..nworkers {
            let mut ictx = InitCtx::new("mb", w, nworkers, shared, &mut sinks);
            let mut a = Args::new(class, &list, span);
            let built = build(&mut a, &mut ictx)?;
            a.finish()?;
            match built {
                Built::Element(e) => out.push(e),
                _ => panic!("{class} did not build an element"),
            }
        }
        Ok(out)
    }

    /// Build one instance (worker 0 of 1).
    pub fn build_one(
        class: &str,
        build: BuildFn,
        texts: &[&str],
    ) -> Result<Box<dyn Element>, ConfigError> {
        let mut shared = SharedRegistry::new();
        Ok(build_workers(class, build, texts, &mut shared, 1)?.remove(0))
    }

    /// Every prefix and a few corruptions of `pkt`, for no-panic tests.
    pub fn mangled(pkt: &Packet) -> Vec<Packet> {
        let d = pkt.data().to_vec();
        let mut v = Vec::new();
        for n in 0..=d.len() {
            let mut p = Packet::from_bytes(&d[..n]);
            p.anno.net_off = Some(0);
            v.push(p);
            v.push(Packet::from_bytes(&d[..n]));
        }
        for (i, x) in [
            (0usize, 0x4fu8),
            (0, 0x41),
            (0, 0x65),
            (2, 0xff),
            (6, 0x20),
            (7, 0xff),
            (9, 6),
            (9, 17),
        ] {
            let mut e = d.clone();
            e[i] = x;
            let mut p = Packet::from_bytes(&e);
            p.anno.net_off = Some(0);
            v.push(p);
        }
        let mut p = Packet::from_bytes(&d);
        p.anno.net_off = Some(60000);
        v.push(p);
        v
    }
}

#[cfg(test)]
mod example_tests {
    //! The shipped `examples/*.click` configurations, run end to end on a
    //! synthetic trace with two workers.

    use ftmb_core::config::Source;
    use ftmb_core::runtime::{self, RunOptions};
    use ftmb_core::trace::{generate, LinkType, PcapWriter, TraceSpec};
    use std::collections::BTreeMap;
    use std::path::Path;

    fn run_example(name: &str, spec: &TraceSpec, extra: &[(&str, &str)]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("trace.pcap");
        let mut w = PcapWriter::create(&trace, LinkType::Ethernet, false).unwrap();
        generate(spec, &mut w).unwrap();
        drop(w);
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut vars = BTreeMap::new();
        vars.insert("IN".to_string(), trace.display().to_string());
        let out_path = dir.path().join("out.pcap");
        vars.insert("OUT".to_string(), out_path.display().to_string());
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        let graph = ftmb_core::graph::build(&Source::new(name, text), &vars, &crate::registry(), 2)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let opts = RunOptions {
            seed: Some(7),
            ..RunOptions::default()
        };
        let mut out = Vec::new();
        let report = runtime::run(graph, &opts, &mut out, &mut |_| {});
        assert!(report.errors.is_empty(), "{name}: {:?}", report.errors);
        assert_eq!(report.packets, spec.packets as u64);
        assert!(std::fs::metadata(&out_path).unwrap().len() > 24);
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn spec() -> TraceSpec {
        TraceSpec {
            flows: 100,
            packets: 3000,
            ..TraceSpec::default()
        }
    }

    #[test]
    fn firewall_example_passes_inside_initiated_traffic() {
        let lines = run_example("firewall.click", &spec(), &[]);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].parse::<u64>().unwrap() > 0);
        assert_eq!(lines[1], "3000");
        assert_eq!(lines[2], "0");
    }

    #[test]
    fn loadbalancer_example_balances_connections_to_the_vip() {
        let s = TraceSpec {
            outside_net: ([192, 0, 2, 1], 32),
            ..spec()
        };
        let lines = run_example("loadbalancer.click", &s, &[]);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[1].starts_with("10.1.0.1:"), "{lines:?}");
        assert!(lines[2].parse::<u64>().unwrap() > 0);
    }

    #[test]
    fn monitor_example_counts_every_packet() {
        for sharing in ["1", "2"] {
            let lines = run_example("monitor.click", &spec(), &[("SHARING", sharing)]);
            assert_eq!(lines[0], "3000", "{lines:?}");
            assert!(lines[2].parse::<u64>().unwrap() > 0);
        }
    }

    #[test]
    fn gen_example_makes_accesses_per_packet() {
        let lines = run_example("gen.click", &spec(), &[("ACCESSES", "3")]);
        assert_eq!(lines[0], "9000", "{lines:?}");
    }
}
