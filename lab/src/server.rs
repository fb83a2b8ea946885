//! `ftmb-lab server`: echo every lab message on TCP and UDP, each echo
//! carrying the client address:port the server saw (after the NAT).

use crate::echo::{echo_of, MSG};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};

/// `ftmb-lab server` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Address to listen on (TCP and UDP, same port).
    #[arg(long, default_value = "0.0.0.0:7000")]
    pub listen: SocketAddrV4,
}

/// Echo on TCP and UDP until killed.
pub fn server(a: &ServerArgs) -> Result<()> {
    let tcp = TcpListener::bind(a.listen).with_context(|| format!("listen on {}", a.listen))?;
    let udp = UdpSocket::bind(a.listen).with_context(|| format!("bind UDP {}", a.listen))?;
    std::thread::Builder::new()
        .name("lab-udp".into())
        .spawn(move || echo_udp(&udp))?;
    eprintln!("lab-server: listening on {} (tcp, udp)", a.listen);
    for conn in tcp.incoming() {
        let Ok(s) = conn else { continue };
        let _ = std::thread::Builder::new()
            .name("lab-conn".into())
            .spawn(move || echo_tcp(s));
    }
    Ok(())
}

/// Answer every datagram that is a lab message.
fn echo_udp(udp: &UdpSocket) {
    let mut buf = [0u8; 2048];
    while let Ok((n, peer)) = udp.recv_from(&mut buf) {
        if let Some(e) = echo_of(&buf[..n], peer) {
            let _ = udp.send_to(&e, peer);
        }
    }
}

/// Answer one connection's messages until it ends or sends something else.
fn echo_tcp(mut s: TcpStream) {
    let Ok(peer) = s.peer_addr() else { return };
    let _ = s.set_nodelay(true);
    let mut m = [0u8; MSG];
    while s.read_exact(&mut m).is_ok() {
        match echo_of(&m, peer) {
            Some(e) if s.write_all(&e).is_ok() => {}
            _ => return,
        }
    }
}
