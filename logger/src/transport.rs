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
    /// A Unix socket (a stale socket file is replaced; anything else at the
    /// path is an error), created with mode 0600.
    Unix(UnixListener),
    /// A TCP listener.
    Tcp(TcpListener),
}

/// Serialises the umask changes of [`bind_unix`] (the umask is per process).
static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Bind a Unix socket at `p`, readable and writable by its owner only.
///
/// A stale socket at `p` (one nobody listens on) is removed first; a live
/// one is `AddrInUse`; any other file (a regular file, a
/// directory, a symlink) is left alone and the bind fails with
/// `AlreadyExists`. The socket is created under a umask of 0177, so there is
/// no moment at which another user may connect; a `chmod` afterwards makes
/// sure of it whatever the umask was.
fn bind_unix(p: &std::path::Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_socket() => {
            // Someone still listens there: not stale, not ours to take.
            if UnixStream::connect(p).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is a socket in use by another process", p.display()),
                ));
            }
            std::fs::remove_file(p)?
        }
        Ok(m) => {
            let what = if m.file_type().is_symlink() {
                "a symlink"
            } else if m.is_dir() {
                "a directory"
            } else if m.is_file() {
                "a regular file"
            } else {
                "not a socket"
            };
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} is {what}: refusing to replace it with a socket",
                    p.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = {
        let _g = UMASK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: umask(2) only swaps the process's file mode mask.
        let old = unsafe { libc::umask(0o177) };
        let r = UnixListener::bind(p);
        // SAFETY: as above, restoring the mask read back.
        unsafe { libc::umask(old) };
        r?
    };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

impl Listener {
    /// Listen on `addr`. A Unix socket path is replaced only if it holds a
    /// stale socket; the new socket has mode 0600.
    pub fn bind(addr: &Addr) -> io::Result<Listener> {
        Ok(match addr {
            Addr::Unix(p) => Listener::Unix(bind_unix(p)?),
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

/// A frame reader for a link of control frames only (heartbeats, a
/// standby's or consumer's `Resume`, `SnapshotCommitted`): payloads over
/// [`crate::wire::MAX_CONTROL_PAYLOAD`] are refused at the header, and the
/// buffer is small.
pub(crate) fn control_reader(s: &Stream) -> io::Result<Reader> {
    Ok(FrameReader::with_limit(
        BufReader::with_capacity(4 << 10, s.try_clone()?),
        crate::wire::MAX_CONTROL_PAYLOAD,
    ))
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
    fn unix_bind_never_deletes_a_file_that_is_not_a_socket() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, b"precious").expect("write");
        let err = Listener::bind(&Addr::Unix(victim.clone()))
            .err()
            .expect("binding over a regular file must fail");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("regular file"), "{err}");
        assert_eq!(std::fs::read(&victim).expect("still there"), b"precious");

        // A symlink is not followed nor removed.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        assert!(Listener::bind(&Addr::Unix(link.clone())).is_err());
        assert!(std::fs::symlink_metadata(&link).is_ok());
        // A directory neither.
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).expect("mkdir");
        assert!(Listener::bind(&Addr::Unix(sub.clone())).is_err());
        assert!(sub.is_dir());

        // A fresh socket is 0600; a stale one is replaced (and 0600 again).
        let sock = dir.path().join("s.sock");
        let l = Listener::bind(&Addr::Unix(sock.clone())).expect("bind");
        let mode = std::fs::metadata(&sock).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        let in_use = Listener::bind(&Addr::Unix(sock.clone()))
            .err()
            .expect("a live socket is not taken over");
        assert_eq!(in_use.kind(), io::ErrorKind::AddrInUse);
        drop(l);
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let _l = Listener::bind(&Addr::Unix(sock.clone())).expect("rebind over a stale socket");
        let mode = std::fs::metadata(&sock).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }

    #[test]
    fn a_control_link_refuses_a_large_frame_at_its_header() {
        use crate::wire::{WireError, MAX_CONTROL_PAYLOAD};
        let (a, mut b) = UnixStream::pair().expect("pair");
        // A valid header (magic, version 1, Heartbeat) claiming 1 MiB.
        let mut h = Vec::from(*b"FTMB");
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&[6, 0]);
        h.extend_from_slice(&(1u32 << 20).to_le_bytes());
        h.extend_from_slice(&[0; 4]);
        b.write_all(&h).expect("write");
        let mut r = control_reader(&Stream::Unix(a)).expect("reader");
        match r.next_frame() {
            Err(WireError::TooLarge { len, max }) => {
                assert_eq!((len, max), (1 << 20, MAX_CONTROL_PAYLOAD));
            }
            other => panic!("want TooLarge, got {other:?}"),
        }
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
