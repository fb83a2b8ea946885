//! # ftmb-elements
//!
//! Element implementations for FTMB, registered by one explicit list
//! ([`registry`]). Click's elements keep Click's names and argument syntax,
//! so Click users' configurations run unchanged; the paper's middleboxes
//! (`Firewall`, `LoadBalancer`, `Monitor`, `Gen`) come beside them.
//!
//! Every element keeps to the state access contract of
//! [`ftmb_core::context`]: its own fields are worker-private; anything
//! shared goes through [`ftmb_core::shared::Shared`]; time and randomness
//! come from the context.

// Configuration errors carry spans, labels and help; they are built on the
// cold path only, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod basic;
pub mod classifier;
pub mod device;
pub mod dump;
pub mod ether;
pub mod ip;
pub mod ipfilter;
pub mod iprewriter;
pub mod middleboxes;
pub mod sink;
pub mod socket;
mod util;

use ftmb_core::driver::DriverProgram;
use ftmb_core::element::{Built, ElementClass, Registry};
use ftmb_core::{Args, ConfigError, InitCtx};

fn build_driver_manager(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    Ok(Built::Driver(DriverProgram::parse(a)?))
}

/// `(name, build, summary)` of every class, in one explicit list.
type ClassRow = (&'static str, ftmb_core::element::BuildFn, &'static str);

const CLASSES: &[ClassRow] = &[
    (
        "FromDump",
        dump::build_from_dump,
        "read packets from a pcap or pcapng file",
    ),
    (
        "ToDump",
        dump::build_to_dump,
        "write packets to a pcap file",
    ),
    (
        "FromDevice",
        device::build_from_device,
        "read frames from a network interface (AF_PACKET)",
    ),
    (
        "ToDevice",
        device::build_to_device,
        "send frames out of a network interface (AF_PACKET)",
    ),
    (
        "ToSocket",
        socket::build_to_socket,
        "send packets over a UDP, TCP or Unix socket",
    ),
    (
        "EtherRewrite",
        ether::build_ether_rewrite,
        "set the Ethernet source and destination addresses",
    ),
    (
        "EtherMirror",
        ether::build_ether_mirror,
        "swap the Ethernet source and destination addresses",
    ),
    (
        "Strip",
        basic::build_strip,
        "remove bytes from the front of packets",
    ),
    (
        "Unstrip",
        basic::build_unstrip,
        "restore bytes in front of packets",
    ),
    (
        "CheckIPHeader",
        ip::build_check_ip_header,
        "check IPv4 headers, set the IP annotation",
    ),
    (
        "DecIPTTL",
        ip::build_dec_ip_ttl,
        "decrement the IP TTL, expired to output 1",
    ),
    (
        "StoreIPAddress",
        ip::build_store_ip_address,
        "store an IP address into packets",
    ),
    (
        "IPMirror",
        ip::build_ip_mirror,
        "swap IP addresses, TCP/UDP ports and TCP seq/ack (a->b becomes b->a)",
    ),
    (
        "Classifier",
        classifier::build_classifier,
        "classify packets by byte patterns",
    ),
    (
        "IPClassifier",
        classifier::build_ip_classifier,
        "classify IP packets by expressions",
    ),
    (
        "IPFilter",
        classifier::build_ip_filter,
        "allow/deny IP packets by expressions",
    ),
    (
        "IPRewriter",
        iprewriter::build_ip_rewriter,
        "rewrite TCP/UDP flows (NAT)",
    ),
    (
        "Counter",
        basic::build_counter,
        "count packets and bytes, measure the rate",
    ),
    ("Discard", basic::build_discard, "drop packets"),
    ("Tee", basic::build_tee, "copy packets to every output"),
    ("Paint", basic::build_paint, "set the paint annotation"),
    (
        "PaintSwitch",
        basic::build_paint_switch,
        "switch packets by paint annotation",
    ),
    (
        "Firewall",
        middleboxes::firewall::build_firewall,
        "stateful firewall with connection tracking",
    ),
    (
        "LoadBalancer",
        middleboxes::loadbalancer::build_load_balancer,
        "per-connection load balancer",
    ),
    (
        "Monitor",
        middleboxes::monitor::build_monitor,
        "per-flow and shared counters (sharing level)",
    ),
    (
        "Gen",
        middleboxes::gen::build_gen,
        "synthetic shared-state accesses per packet",
    ),
    (
        "DriverManager",
        build_driver_manager,
        "when the router stops and what it prints",
    ),
];

/// Every element class.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    for &(name, build, summary) in CLASSES {
        r.add(ElementClass {
            name,
            summary,
            build,
        });
    }
    r
}
