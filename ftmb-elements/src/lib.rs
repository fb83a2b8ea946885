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
pub mod dump;
pub mod ip;
pub mod ipfilter;
mod util;

use ftmb_core::driver::DriverProgram;
use ftmb_core::element::{Built, ElementClass, Registry};
use ftmb_core::{Args, ConfigError, InitCtx};

fn build_driver_manager(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    Ok(Built::Driver(DriverProgram::parse(a)?))
}

macro_rules! class {
    ($name:literal, $build:path, $summary:literal) => {
        ElementClass {
            name: $name,
            summary: $summary,
            build: $build,
        }
    };
}

/// Every element class, in one explicit list.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    for c in [
        class!(
            "FromDump",
            dump::build_from_dump,
            "read packets from a pcap or pcapng file"
        ),
        class!(
            "ToDump",
            dump::build_to_dump,
            "write packets to a pcap file"
        ),
        class!(
            "Strip",
            basic::build_strip,
            "remove bytes from the front of packets"
        ),
        class!(
            "Unstrip",
            basic::build_unstrip,
            "restore bytes in front of packets"
        ),
        class!(
            "CheckIPHeader",
            ip::build_check_ip_header,
            "check IPv4 headers, set the IP annotation"
        ),
        class!(
            "DecIPTTL",
            ip::build_dec_ip_ttl,
            "decrement the IP TTL, expired packets to output 1"
        ),
        class!(
            "StoreIPAddress",
            ip::build_store_ip_address,
            "store an IP address into packets"
        ),
        class!(
            "Classifier",
            classifier::build_classifier,
            "classify packets by byte patterns"
        ),
        class!(
            "IPClassifier",
            classifier::build_ip_classifier,
            "classify IP packets by tcpdump-like expressions"
        ),
        class!(
            "IPFilter",
            classifier::build_ip_filter,
            "allow/deny IP packets by tcpdump-like rules"
        ),
        class!(
            "Counter",
            basic::build_counter,
            "count packets and bytes, measure the rate"
        ),
        class!("Discard", basic::build_discard, "drop packets"),
        class!("Tee", basic::build_tee, "copy packets to every output"),
        class!("Paint", basic::build_paint, "set the paint annotation"),
        class!(
            "PaintSwitch",
            basic::build_paint_switch,
            "switch packets by their paint annotation"
        ),
        class!(
            "DriverManager",
            build_driver_manager,
            "script when the router stops and what it prints"
        ),
    ] {
        r.add(c);
    }
    r
}
