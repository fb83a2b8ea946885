//! A minimal synchronous Redis client (RESP over one TCP connection per
//! worker), for the remote-state baseline: StatelessNF keeps every
//! element's shared state in a remote store and reads and writes it per
//! packet. Only what that needs: `GET`, `SET`, `FLUSHDB`, `PING`.

use ftmb_core::context::RemoteState;
use ftmb_core::runtime::RemoteStateFactory;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters shared by every connection of a run.
#[derive(Debug, Default)]
pub struct RedisCounters {
    pub gets: AtomicU64,
    pub sets: AtomicU64,
    pub errors: AtomicU64,
    /// Nanoseconds spent waiting for replies.
    pub wait_ns: AtomicU64,
}

impl RedisCounters {
    /// The counters as the `redis` object of `ftmb bench --mode
    /// remote-state`'s report, over a run of `packets` packets.
    pub fn json(&self, packets: u64) -> serde_json::Value {
        let (gets, sets) = (
            self.gets.load(Ordering::Relaxed),
            self.sets.load(Ordering::Relaxed),
        );
        serde_json::json!({
            "gets": gets, "sets": sets,
            "errors": self.errors.load(Ordering::Relaxed),
            "mean_round_trip_us": self.wait_ns.load(Ordering::Relaxed) as f64
                / (gets + sets).max(1) as f64 / 1e3,
            "round_trips_per_packet": (gets + sets) as f64 / packets.max(1) as f64,
        })
    }
}

/// The remote state of a run: checks that the Redis server at `addr`
/// answers and empties it, then gives every worker a connection of its own.
/// A worker that cannot connect says so on stderr, counts an error and
/// keeps its state local ([`Unreachable`]).
pub fn remote_state(
    addr: &str,
    counters: Arc<RedisCounters>,
) -> std::io::Result<RemoteStateFactory> {
    RedisConn::connect(addr, counters.clone()).and_then(|mut c| c.reset())?;
    let addr = addr.to_string();
    Ok(RemoteStateFactory(Arc::new(
        move |_w| match RedisConn::connect(&addr, counters.clone()) {
            Ok(c) => Box::new(c) as Box<dyn RemoteState>,
            Err(e) => {
                eprintln!("error: cannot reach Redis at {addr}: {e}");
                counters.errors.fetch_add(1, Ordering::Relaxed);
                Box::new(Unreachable)
            }
        },
    )))
}

/// One connection.
pub struct RedisConn {
    r: BufReader<TcpStream>,
    w: TcpStream,
    cmd: Vec<u8>,
    line: Vec<u8>,
    counters: Arc<RedisCounters>,
    broken: bool,
}

fn bad(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// What a reply was.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Ok,
    Nil,
    Bulk,
}

impl RedisConn {
    /// Connect to `addr` (`HOST:PORT`).
    pub fn connect(addr: &str, counters: Arc<RedisCounters>) -> std::io::Result<RedisConn> {
        let w = TcpStream::connect(addr)?;
        w.set_nodelay(true)?;
        let r = BufReader::new(w.try_clone()?);
        Ok(RedisConn {
            r,
            w,
            cmd: Vec::new(),
            line: Vec::new(),
            counters,
            broken: false,
        })
    }

    fn send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        self.cmd.clear();
        self.cmd
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            self.cmd
                .extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.cmd.extend_from_slice(a);
            self.cmd.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&self.cmd)
    }

    /// Read one reply; a bulk string's bytes go to `out`.
    fn reply(&mut self, out: &mut Vec<u8>) -> std::io::Result<Reply> {
        self.line.clear();
        self.r.read_until(b'\n', &mut self.line)?;
        let line = self
            .line
            .strip_suffix(b"\r\n")
            .ok_or_else(|| bad("redis: connection closed mid-reply".into()))?;
        let (&kind, rest) = line
            .split_first()
            .ok_or_else(|| bad("redis: empty reply".into()))?;
        let text = String::from_utf8_lossy(rest).into_owned();
        match kind {
            b'+' | b':' => Ok(Reply::Ok),
            b'-' => Err(bad(format!("redis: {text}"))),
            b'$' => {
                let n: i64 = text
                    .parse()
                    .map_err(|_| bad(format!("redis: bad bulk length {text:?}")))?;
                if n < 0 {
                    return Ok(Reply::Nil);
                }
                let n = usize::try_from(n).map_err(|_| bad("redis: bulk too long".into()))?;
                out.clear();
                out.resize(n + 2, 0);
                self.r.read_exact(out)?;
                out.truncate(n);
                Ok(Reply::Bulk)
            }
            _ => Err(bad(format!("redis: unexpected reply {:?}", kind as char))),
        }
    }

    fn call(&mut self, args: &[&[u8]], out: &mut Vec<u8>) -> std::io::Result<Reply> {
        let t = std::time::Instant::now();
        self.send(args)?;
        let r = self.reply(out);
        self.counters
            .wait_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    /// `PING`, then `FLUSHDB`: the store starts empty for a run.
    pub fn reset(&mut self) -> std::io::Result<()> {
        let mut out = Vec::new();
        self.call(&[b"PING"], &mut out)?;
        self.call(&[b"FLUSHDB"], &mut out)?;
        Ok(())
    }

    fn failed(&mut self, e: &std::io::Error) {
        if self.counters.errors.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!("error: remote state: {e} (going on with local state)");
        }
        self.broken = true;
    }
}

fn key(k: u32) -> [u8; 9] {
    let mut b = *b"ftmb:\0\0\0\0";
    b[5..].copy_from_slice(&k.to_le_bytes());
    b
}

impl RemoteState for RedisConn {
    fn get(&mut self, k: u32, out: &mut Vec<u8>) -> bool {
        if self.broken {
            return false;
        }
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        match self.call(&[b"GET", &key(k)], out) {
            Ok(Reply::Bulk) => true,
            Ok(_) => false,
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    fn set(&mut self, k: u32, val: &[u8]) {
        if self.broken {
            return;
        }
        self.counters.sets.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        if let Err(e) = self.call(&[b"SET", &key(k), val], &mut out) {
            self.failed(&e);
        }
    }
}

/// A store that could not be reached: every access stays local.
pub struct Unreachable;

impl RemoteState for Unreachable {
    fn get(&mut self, _k: u32, _out: &mut Vec<u8>) -> bool {
        false
    }
    fn set(&mut self, _k: u32, _val: &[u8]) {}
}
