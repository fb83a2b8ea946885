//! Helpers shared by the benchmarks: build one element outside a router,
//! make in-memory packet sets from the trace generator, and set up the NAT
//! of `examples/nat.click` over a generated trace.

use ftmb_core::config::{split_args, Source, Span};
use ftmb_core::egress::SinkRegistry;
use ftmb_core::element::{Built, Element};
use ftmb_core::shared::SharedRegistry;
use ftmb_core::trace::{generate, LinkType, PcapWriter, TraceReader, TraceSpec};
use ftmb_core::{Args, InitCtx, Packet};
use std::collections::BTreeMap;
use std::path::Path;

/// Build element `class` with argument text `args` for worker 0 of
/// `nworkers`, keeping the registries alive beside it.
pub fn build_element(
    class: &str,
    args: &str,
    shared: &mut SharedRegistry,
    sinks: &mut SinkRegistry,
) -> Box<dyn Element> {
    let reg = ftmb_elements::registry();
    let c = reg.get(class).unwrap_or_else(|| panic!("no class {class}"));
    let list = split_args(args, 0);
    let mut a = Args::new(
        class,
        &list,
        Span {
            start: 0,
            end: args.len(),
        },
    );
    let mut ictx = InitCtx::new(class, 0, 1, shared, sinks);
    match (c.build)(&mut a, &mut ictx) {
        Ok(Built::Element(e)) => e,
        Ok(_) => panic!("{class} is not a packet element"),
        Err(e) => panic!("{class}: {}", e.message),
    }
}

/// `n` generated Ethernet frames (inside 10.77.0.0/16), as packets with the
/// IP header annotation set at offset 14 after stripping.
pub fn packets(n: usize, flows: usize) -> Vec<Packet> {
    let spec = TraceSpec {
        packets: n,
        flows,
        seed: 11,
        inside_net: ([10, 77, 0, 0], 16),
        outside_net: ([198, 18, 0, 0], 16),
        max_size: 600,
        ..TraceSpec::default()
    };
    let mut buf = Vec::new();
    {
        let mut w = PcapWriter::new(&mut buf, LinkType::Ethernet, false).expect("writer");
        generate(&spec, &mut w).expect("generate");
        w.flush().expect("flush");
    }
    let mut r = TraceReader::from_bytes(buf).expect("reader");
    let mut v = Vec::with_capacity(n);
    while let Some(Ok(rec)) = r.next_record() {
        let mut p = Packet::from_bytes(rec.data);
        p.pull(14);
        p.anno.net_off = Some(0);
        v.push(p);
    }
    v
}

/// `examples/nat.click` (inside network 10.77.0.0/16) with its variables:
/// the trace generated from `spec` is written to `dir/t.pcap` and read by
/// the config, whose two outputs go to `out` and `out2`.
pub fn nat_config(
    dir: &Path,
    spec: &TraceSpec,
    (out, out2): (&str, &str),
) -> (Source, BTreeMap<String, String>) {
    let trace = dir.join("t.pcap");
    let mut w = PcapWriter::create(&trace, LinkType::Ethernet, false).expect("create trace");
    generate(spec, &mut w).expect("generate trace");
    w.flush().expect("write trace");
    let vars = [
        ("IN", trace.display().to_string()),
        ("OUT", out.to_string()),
        ("OUT2", out2.to_string()),
        ("INSIDE", "10.77.0.0/16".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let source = Source {
        name: "nat.click".into(),
        text: include_str!("../examples/nat.click").into(),
    };
    (source, vars)
}
