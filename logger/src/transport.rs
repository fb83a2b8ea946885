//! Links between roles: Unix sockets on one host, TCP between hosts.
//!
//! An address on the command line is either a filesystem path (a Unix
//! socket: the same-host fast path) or `tcp:HOST:PORT` (also accepted as
//! plain `HOST:PORT` when PORT is a number). Both carry the same frames
//! (see [`crate::wire`]); a peer's death reads as end of stream either way.
//!
//! The output logger takes heartbeats on a second listener beside its main
//! one: `PATH.hb` for a Unix socket, `PORT + 1` for TCP.

use crate::wire::{FrameReader, FrameWriter};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where a role listens or connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP `HOST:PORT`.
    Tcp(String),
}

impl Addr {
    /// Parse a command-line address (see the module documentation).
    pub fn parse(s: &str) -> Addr {
        if let Some(rest) = s.strip_prefix("tcp:") {
            return Addr::Tcp(rest.trim_start_matches("//").to_string());
        }
        match s.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty()
                    && !s.contains('/')
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Addr::Tcp(s.to_string())
            }
            _ => Addr::Unix(PathBuf::from(s)),
        }
    }

    /// The heartbeat listener beside this one.
    pub fn heartbeat(&self) -> io::Result<Addr> {
        match self {
            Addr::Unix(p) => {
                let mut s = p.as_os_str().to_owned();
                s.push(".hb");
                Ok(Addr::Unix(s.into()))
            }
            Addr::Tcp(hp) => {
                let bad =
                    || io::Error::new(io::ErrorKind::InvalidInput, format!("bad address {hp}"));
                let (host, port) = hp.rsplit_once(':').ok_or_else(bad)?;
                let port: u16 = port.parse().map_err(|_| bad())?;
                let next = port.checked_add(1).ok_or_else(bad)?;
                Ok(Addr::Tcp(format!("{host}:{next}")))
            }
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Unix(p) => write!(f, "{}", p.display()),
            Addr::Tcp(hp) => write!(f, "tcp:{hp}"),
        }
    }
}

/// A connected link.
#[derive(Debug)]
pub enum Stream {
    /// Over a Unix socket.
    Unix(UnixStream),
    /// Over TCP (Nagle off: frames are batched by the writer already).
    Tcp(TcpStream),
}

impl Stream {
    /// A second handle on the same link (one reads, one writes).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    /// Shut the link down (fencing a peer off).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tcp(s) => s.shutdown(how),
        }
    }

    fn tcp(s: TcpStream) -> io::Result<Stream> {
        s.set_nodelay(true)?;
        Ok(Stream::Tcp(s))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

/// A listening socket.
pub enum Listener {
    /// A Unix socket (any stale socket file is replaced).
    Unix(UnixListener),
    /// A TCP listener.
    Tcp(TcpListener),
}

impl Listener {
    /// Listen on `addr`.
    pub fn bind(addr: &Addr) -> io::Result<Listener> {
        Ok(match addr {
            Addr::Unix(p) => {
                let _ = std::fs::remove_file(p);
                Listener::Unix(UnixListener::bind(p)?)
            }
            Addr::Tcp(hp) => Listener::Tcp(TcpListener::bind(hp.as_str())?),
        })
    }

    /// Connections as they come (errors included, like `incoming` on the
    /// std listeners).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<Stream>> + '_ {
        std::iter::repeat_with(|| self.accept())
    }

    /// The next connection.
    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix(l) => Ok(Stream::Unix(l.accept()?.0)),
            Listener::Tcp(l) => Stream::tcp(l.accept()?.0),
        }
    }
}

/// Connect to `addr`, retrying for up to `wait` while the peer starts.
pub fn connect(addr: &Addr, wait: Duration) -> io::Result<Stream> {
    let start = Instant::now();
    loop {
        let r = match addr {
            Addr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            Addr::Tcp(hp) => TcpStream::connect(hp.as_str()).and_then(Stream::tcp),
        };
        match r {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() >= wait => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A buffered frame writer over a stream (the write half of a link).
pub(crate) type Writer = FrameWriter<BufWriter<Stream>>;

/// A buffered frame reader over a stream (the read half of a link).
pub(crate) type Reader = FrameReader<BufReader<Stream>>;

/// A frame writer on a clone of `s`, with a buffer large enough for a
/// snapshot piece.
pub(crate) fn writer(s: &Stream) -> io::Result<Writer> {
    Ok(FrameWriter::new(BufWriter::with_capacity(
        256 << 10,
        s.try_clone()?,
    )))
}

/// A frame reader on a clone of `s`.
pub(crate) fn reader(s: &Stream) -> io::Result<Reader> {
    Ok(FrameReader::new(BufReader::with_capacity(
        256 << 10,
        s.try_clone()?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Addr::parse("/tmp/x/ol.sock"),
            Addr::Unix("/tmp/x/ol.sock".into())
        );
        assert_eq!(Addr::parse("ol.sock"), Addr::Unix("ol.sock".into()));
        assert_eq!(
            Addr::parse("10.0.0.2:7000"),
            Addr::Tcp("10.0.0.2:7000".into())
        );
        assert_eq!(
            Addr::parse("tcp:[::1]:7000"),
            Addr::Tcp("[::1]:7000".into())
        );
        assert_eq!(Addr::parse("./a:1"), Addr::Unix("./a:1".into()));
        assert_eq!(
            Addr::parse("h:7000").heartbeat().ok(),
            Some(Addr::Tcp("h:7001".into()))
        );
        assert_eq!(
            Addr::parse("/s/ol").heartbeat().ok(),
            Some(Addr::Unix("/s/ol.hb".into()))
        );
        assert!(Addr::parse("h:65535").heartbeat().is_err());
    }

    #[test]
    fn tcp_link_carries_bytes_and_reports_end() {
        let l = Listener::bind(&Addr::Tcp("127.0.0.1:0".into())).expect("bind");
        let Listener::Tcp(t) = &l else { unreachable!() };
        let addr = Addr::Tcp(t.local_addr().expect("addr").to_string());
        let h = std::thread::spawn(move || {
            let mut s = l.accept().expect("accept");
            let mut b = Vec::new();
            s.read_to_end(&mut b).expect("read");
            b
        });
        let mut c = connect(&addr, Duration::from_secs(5)).expect("connect");
        c.write_all(b"frames").expect("write");
        drop(c);
        assert_eq!(h.join().expect("join"), b"frames");
    }
}
