//! Helpers shared by the benchmarks: build one element outside a router,
//! make in-memory packet sets from the trace generator, and set up the NAT
//! of `examples/nat.click` over a generated trace.

use ftmb_core::config::{split_args, Source, Span};
use ftmb_core::egress::SinkRegistry;
use ftmb_core::element::{Built, Element};
use ftmb_core::shared::SharedRegistry;
use ftmb_core::{Args, Ctx, InitCtx, Out, Packet};
use ftmb_testkit::{example_config, example_vars, generated_frames, write_spec, TraceSpec};
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

/// What driving an element by hand needs beside it: worker 0's context
/// (of 1) at time 1 s, and an output set of `ports` ports.
pub fn worker_context(ports: usize) -> (Ctx, Out) {
    let mut ctx = Ctx::new(0, 1, 1);
    ctx.set_now_ns(1_000_000_000);
    (ctx, Out::with_ports(ports))
}

/// `n` generated Ethernet frames (inside 10.77.0.0/16), as packets with the
/// IP header annotation set at offset 14 after stripping.
pub fn packets(n: usize, flows: usize) -> Vec<Packet> {
    let spec = TraceSpec {
        max_size: 600,
        ..TraceSpec::example_nets(n, flows, 11)
    };
    generated_frames(&spec)
        .iter()
        .map(|frame| {
            let mut p = Packet::from_bytes(frame);
            p.pull(14);
            p.anno.net_off = Some(0);
            p
        })
        .collect()
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
    write_spec(spec, &trace);
    let vars = example_vars(&trace.display().to_string(), out, out2);
    let source = Source {
        name: "nat.click".into(),
        text: example_config("nat.click"),
    };
    (source, vars)
}
