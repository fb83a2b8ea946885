//! `ftmb-lab`: the lab instruments of `scripts/lab.sh`. Thin: parse flags,
//! call the library.

use anyhow::Result;
use clap::{Parser, Subcommand};
use ftmb_lab::{client, parity, server};

#[derive(Parser)]
#[command(
    name = "ftmb-lab",
    version,
    about = "FTMB's lab instruments: echo server and client across a middlebox, NAT parity"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Echo server for `ftmb-lab client`, TCP and UDP; every echo carries
    /// the client address:port the server saw.
    Server(server::ServerArgs),
    /// Many long-lived TCP connections and UDP flows echoing at a steady
    /// rate; reports stalls, resets, reconnects and whether each flow kept
    /// its translated address:port.
    Client(client::ClientArgs),
    /// Compare two NATs' captures of one replayed trace, per direction and
    /// per packet header (all fields but the chosen source port and the
    /// checksum over it); exits 1 on a mismatch.
    NatParity(parity::ParityArgs),
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Server(a) => server::server(&a)?,
        Cmd::Client(a) => client::client(&a)?,
        Cmd::NatParity(a) => {
            if !parity::run(&a)? {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
