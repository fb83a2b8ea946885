//! # ftmb-lab
//!
//! The instruments of the real-network lab (`scripts/lab.sh`), kept out of
//! the product binary: they measure a middlebox, they are not one.
//!
//! - [`server`] and [`client`] (`ftmb-lab server`, `ftmb-lab client`):
//!   long-lived TCP connections and UDP flows through a middlebox, each
//!   echoing small messages ([`echo`]) at a steady rate, measuring per flow
//!   the longest gap between echoes (the stall a failover causes), round
//!   trips, resets, reconnects, and whether the flow kept its translated
//!   address and port.
//! - [`parity`] (`ftmb-lab nat-parity`): do two NATs put out the same
//!   packets for the same input? Compares their captures of one replayed
//!   trace header field by header field, reading the packets through the
//!   core's header views.

pub mod client;
pub mod echo;
pub mod parity;
pub mod server;

/// Print a line to stdout; a closed pipe (`| head`) ends the output
/// quietly instead of panicking.
pub(crate) fn print_out(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}
