//! `ToSocket`: an output sink that sends packets over a socket, as Click's
//! `ToSocket` (a `Socket` with no outputs, a client) does:
//!
//! ```text
//! ToSocket(UDP, ADDR, PORT)          one datagram per packet
//! ToSocket(TCP, ADDR, PORT [, FRAME true] [, NODELAY true])
//! ToSocket(UNIX_DGRAM, FILENAME)     one datagram per packet
//! ToSocket(UNIX, FILENAME [, FRAME true])
//! ```
//!
//! On a stream (`TCP`, `UNIX`) packets follow each other as bytes; with
//! `FRAME true` each is preceded by a 4-byte length in network byte order
//! that counts those 4 bytes too (Click's framing). The socket is opened
//! at the first write, so that a role which never writes its sinks (a
//! master under fault tolerance, whose outputs leave through the output
//! logger) never connects. A connection that fails or breaks is counted
//! (`errors`: packets not sent) and tried again a second later; datagrams
//! the peer refuses (nothing listening yet) are counted and the rest
//! still go.

use ftmb_core::egress::Egress;
use ftmb_core::element::element;
use ftmb_core::{Args, Built, ConfigError, InitCtx, Packet};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where a `ToSocket` sends.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Udp(SocketAddrV4),
    Tcp(SocketAddrV4),
    UnixDgram(PathBuf),
    Unix(PathBuf),
}

/// An open socket.
enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    UnixDgram(UnixDatagram),
    Unix(UnixStream),
}

/// The socket a `ToSocket` writes to.
struct SocketEgress {
    target: Target,
    frame: bool,
    nodelay: bool,
    conn: Option<Conn>,
    /// When opening last failed (or the connection broke).
    failed_at: Option<Instant>,
    /// How long after a failure the next write tries again.
    retry_after: Duration,
    /// A stream's bytes for one write.
    buf: Vec<u8>,
    packets: u64,
    bytes: u64,
    errors: u64,
}

impl SocketEgress {
    fn new(target: Target, frame: bool, nodelay: bool) -> SocketEgress {
        SocketEgress {
            target,
            frame,
            nodelay,
            conn: None,
            failed_at: None,
            retry_after: Duration::from_secs(1),
            buf: Vec::new(),
            packets: 0,
            bytes: 0,
            errors: 0,
        }
    }

    fn connect(&self) -> std::io::Result<Conn> {
        Ok(match &self.target {
            Target::Udp(a) => {
                let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                s.connect(a)?;
                Conn::Udp(s)
            }
            Target::Tcp(a) => {
                let s = TcpStream::connect(a)?;
                s.set_nodelay(self.nodelay)?;
                Conn::Tcp(s)
            }
            Target::UnixDgram(p) => {
                let s = UnixDatagram::unbound()?;
                s.connect(p)?;
                Conn::UnixDgram(s)
            }
            Target::Unix(p) => Conn::Unix(UnixStream::connect(p)?),
        })
    }

    /// The open socket, opening it if it is time to try.
    fn open(&mut self) -> std::io::Result<&mut Conn> {
        if self.conn.is_none() {
            if self
                .failed_at
                .is_some_and(|t| t.elapsed() < self.retry_after)
            {
                return Err(std::io::Error::other(format!(
                    "ToSocket({}): not connected",
                    self.target
                )));
            }
            match self.connect() {
                Ok(c) => {
                    self.conn = Some(c);
                    self.failed_at = None;
                }
                Err(e) => {
                    self.failed_at = Some(Instant::now());
                    return Err(std::io::Error::other(format!(
                        "ToSocket({}): {e}",
                        self.target
                    )));
                }
            }
        }
        self.conn
            .as_mut()
            .ok_or_else(|| std::io::Error::other("ToSocket: not connected"))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Udp(a) => write!(f, "UDP, {}, {}", a.ip(), a.port()),
            Target::Tcp(a) => write!(f, "TCP, {}, {}", a.ip(), a.port()),
            Target::UnixDgram(p) => write!(f, "UNIX_DGRAM, {}", p.display()),
            Target::Unix(p) => write!(f, "UNIX, {}", p.display()),
        }
    }
}

impl Egress for SocketEgress {
    fn write(&mut self, pkts: &[Packet]) -> std::io::Result<()> {
        if pkts.is_empty() {
            return Ok(());
        }
        let frame = self.frame;
        let mut buf = std::mem::take(&mut self.buf);
        let conn = match self.open() {
            Ok(c) => c,
            Err(e) => {
                self.errors += pkts.len() as u64;
                self.buf = buf;
                return Err(e);
            }
        };
        let (mut sent, mut bytes, mut failed) = (0u64, 0u64, 0u64);
        // One datagram per packet; one the kernel refuses is counted and
        // the rest still go.
        let mut datagrams = |send: &dyn Fn(&[u8]) -> std::io::Result<usize>| {
            for p in pkts {
                match send(p.data()) {
                    Ok(_) => (sent, bytes) = (sent + 1, bytes + p.len() as u64),
                    Err(_) => failed += 1,
                }
            }
        };
        let stream: Option<&mut dyn Write> = match conn {
            Conn::Udp(s) => {
                datagrams(&|d| s.send(d));
                None
            }
            Conn::UnixDgram(s) => {
                datagrams(&|d| s.send(d));
                None
            }
            Conn::Tcp(s) => Some(s),
            Conn::Unix(s) => Some(s),
        };
        let mut result = Ok(());
        if let Some(w) = stream {
            buf.clear();
            for p in pkts {
                if frame {
                    let len = u32::try_from(p.len() + 4).unwrap_or(u32::MAX);
                    buf.extend_from_slice(&len.to_be_bytes());
                }
                buf.extend_from_slice(p.data());
            }
            match w.write_all(&buf) {
                Ok(()) => {
                    sent = pkts.len() as u64;
                    bytes = pkts.iter().map(|p| p.len() as u64).sum();
                }
                Err(e) => {
                    // Broken: what was sent of this write is unknown.
                    failed = pkts.len() as u64;
                    self.conn = None;
                    self.failed_at = Some(Instant::now());
                    result = Err(std::io::Error::other(format!(
                        "ToSocket({}): {e}",
                        self.target
                    )));
                }
            }
        }
        self.buf = buf;
        self.packets += sent;
        self.bytes += bytes;
        self.errors += failed;
        result
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.conn {
            Some(Conn::Tcp(s)) => s.flush(),
            Some(Conn::Unix(s)) => s.flush(),
            _ => Ok(()),
        }
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("packets", self.packets),
            ("bytes", self.bytes),
            ("errors", self.errors),
        ]
    }
}

/// `ToSocket(TYPE, ADDR, PORT | FILENAME, [FRAME], [NODELAY])`.
pub(crate) fn build_to_socket(a: &mut Args, ctx: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let Some(kind) = a.positional_word("TYPE")? else {
        return Err(a
            .error("missing required argument TYPE")
            .with_help("use UDP, TCP, UNIX or UNIX_DGRAM".to_string()));
    };
    let target = match kind.to_ascii_uppercase().as_str() {
        k @ ("UDP" | "TCP") => {
            let ip: Ipv4Addr = a.required("ADDR")?;
            let port: u16 = a.required("PORT")?;
            if port == 0 {
                return Err(a.error("PORT must not be 0"));
            }
            let addr = SocketAddrV4::new(ip, port);
            if k == "UDP" {
                Target::Udp(addr)
            } else {
                Target::Tcp(addr)
            }
        }
        k @ ("UNIX" | "UNIX_DGRAM") => {
            let path = PathBuf::from(a.required::<String>("FILENAME")?);
            if k == "UNIX" {
                Target::Unix(path)
            } else {
                Target::UnixDgram(path)
            }
        }
        other => {
            return Err(a
                .error(format!("unknown socket TYPE `{other}`"))
                .with_help("use UDP, TCP, UNIX or UNIX_DGRAM".to_string()))
        }
    };
    let frame = a.keyword_or("FRAME", false)?;
    let nodelay = a.keyword_or("NODELAY", true)?;
    if frame && matches!(target, Target::Udp(_) | Target::UnixDgram(_)) {
        return Err(a.error("FRAME is for streams (TCP, UNIX): a datagram is one packet"));
    }
    let sink = ctx
        .sink(|| Ok(Box::new(SocketEgress::new(target, frame, nodelay)) as Box<dyn Egress>))
        .map_err(|e| a.error(e))?;
    element(crate::sink::ToSink::new(sink))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::os::unix::net::UnixListener;

    fn pkts() -> Vec<Packet> {
        [&b"first"[..], b"the second packet", b"3"]
            .iter()
            .map(|d| Packet::from_bytes(d))
            .collect()
    }

    fn stat(e: &SocketEgress, name: &str) -> u64 {
        e.stats()
            .iter()
            .find(|(k, _)| *k == name)
            .map_or(u64::MAX, |(_, v)| *v)
    }

    fn loopback(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
    }

    #[test]
    fn udp_sends_one_datagram_per_packet() {
        let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        rx.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let port = rx.local_addr().expect("addr").port();
        let mut e = SocketEgress::new(Target::Udp(loopback(port)), false, true);
        e.write(&pkts()).expect("write");
        let mut buf = [0u8; 64];
        for p in pkts() {
            let n = rx.recv(&mut buf).expect("datagram");
            assert_eq!(&buf[..n], p.data());
        }
        assert_eq!((stat(&e, "packets"), stat(&e, "errors")), (3, 0));
        assert_eq!(stat(&e, "bytes"), 23);
    }

    #[test]
    fn tcp_frames_count_their_own_four_bytes() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = l.local_addr().expect("addr").port();
        let mut e = SocketEgress::new(Target::Tcp(loopback(port)), true, true);
        e.write(&pkts()).expect("write");
        e.flush().expect("flush");
        drop(e);
        let (mut s, _) = l.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        let mut rest = &got[..];
        for p in pkts() {
            let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            assert_eq!(len, p.len() + 4);
            assert_eq!(&rest[4..len], p.data());
            rest = &rest[len..];
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn a_unix_stream_carries_the_bytes_back_to_back() {
        let dir = std::env::temp_dir().join(format!("ftmb-tosocket-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).expect("bind");
        let mut e = SocketEgress::new(Target::Unix(path.clone()), false, true);
        e.write(&pkts()).expect("write");
        drop(e);
        let (mut s, _) = l.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        assert_eq!(got, b"firstthe second packet3");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_peer_that_is_gone_is_counted_and_tried_again() {
        // Nothing listens: the connection is refused, every packet counted.
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let mut e = SocketEgress::new(Target::Tcp(loopback(port)), false, true);
        e.retry_after = Duration::ZERO;
        assert!(e.write(&pkts()).is_err());
        assert_eq!((stat(&e, "packets"), stat(&e, "errors")), (0, 3));
        // Listening again (same port): the next write connects.
        let Ok(l) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) else {
            return; // the port was taken meanwhile: nothing more to check
        };
        e.write(&pkts()).expect("reconnected");
        assert_eq!(stat(&e, "packets"), 3);
        drop(e);
        let (mut s, _) = l.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        assert_eq!(got.len(), 23);
    }
}
