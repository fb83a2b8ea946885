//! Linux `AF_PACKET` sockets: one raw socket bound to one interface, with
//! batched receive (`recvmmsg`) and send (`sendmmsg`).
//!
//! Why `recvmmsg`/`sendmmsg` and not a `PACKET_MMAP` ring: every packet is
//! copied into its own [`ftmb_core::Packet`] buffer anyway (the input logger
//! keeps it, the workers own it), so a ring would save no copy; a
//! `TPACKET_V3` receive ring also hands frames over in blocks that retire on
//! a timer (milliseconds of added latency at low rates, which the failover
//! lab measures), and its send ring needs its own frame bookkeeping. One
//! system call per batch is what the rings would buy, and `recvmmsg` /
//! `sendmmsg` already give that.
//!
//! A receiving socket is created with protocol 0 (it hears nothing), then
//! bound to the interface with `ETH_P_ALL`, so no frame of another interface
//! is ever queued on it. It ignores frames the host sends
//! (`PACKET_IGNORE_OUTGOING`, and a check of `sll_pkttype` for kernels
//! without it), so a `ToDevice` on the same interface does not loop back.
//! A sending socket is bound with protocol 0 and so never receives.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Why a device could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// No interface has that name (in this network namespace).
    NoSuchInterface,
    /// The process lacks `CAP_NET_RAW`.
    NeedsNetRaw,
    /// Anything else, with the step that failed.
    Io(&'static str, io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::NoSuchInterface => write!(f, "no such interface"),
            OpenError::NeedsNetRaw => write!(
                f,
                "needs CAP_NET_RAW (run as root or `setcap cap_net_raw+ep` the binary)"
            ),
            OpenError::Io(step, e) => write!(f, "{step}: {e}"),
        }
    }
}

/// Which way a socket carries frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Receive every frame arriving on the interface.
    Rx,
    /// Send frames out of the interface (receives nothing).
    Tx,
}

/// A raw packet socket bound to one interface.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
    mtu: usize,
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

fn setsockopt<T>(fd: RawFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_error())
    }
}

/// The index of interface `name`, if it exists.
pub fn ifindex(name: &str) -> Option<i32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i as i32)
}

fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    ifr
}

impl PacketSocket {
    /// Open a socket on interface `name`. `promisc` asks for every frame on
    /// the wire (a membership, dropped when the socket closes); `rcvbuf` is
    /// the receive buffer to ask for, in bytes.
    pub fn open(
        name: &str,
        dir: Direction,
        promisc: bool,
        rcvbuf: usize,
    ) -> Result<PacketSocket, OpenError> {
        let ifindex = ifindex(name).ok_or(OpenError::NoSuchInterface)?;
        // SAFETY: plain system call; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = last_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => OpenError::NeedsNetRaw,
                _ => OpenError::Io("socket(AF_PACKET)", e),
            });
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut s = PacketSocket {
            fd,
            ifindex,
            mtu: 1500,
        };
        s.mtu = s
            .read_mtu(name)
            .map_err(|e| OpenError::Io("SIOCGIFMTU", e))?;
        let fd = s.fd.as_raw_fd();
        if dir == Direction::Rx {
            // Kernels before 4.20 refuse this; `RecvBatch::frames` filters
            // outgoing frames by their packet type anyway.
            let one: libc::c_int = 1;
            let _ = setsockopt(fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one);
            let size = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
            // As root the limit net.core.rmem_max does not apply; otherwise
            // take what the plain option gives.
            if setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size).is_err() {
                let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &size);
            }
        } else {
            // A send that cannot get buffer space waits at most this long,
            // then counts as dropped: never hang the output path.
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv);
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = match dir {
            Direction::Rx => (libc::ETH_P_ALL as u16).to_be(),
            Direction::Tx => 0,
        };
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let e = last_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENODEV) => OpenError::NoSuchInterface,
                _ => OpenError::Io("bind", e),
            });
        }
        if promisc {
            // SAFETY: packet_mreq is plain data; all-zero is a valid value.
            let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mr.mr_ifindex = ifindex;
            mr.mr_type = libc::PACKET_MR_PROMISC as u16;
            setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mr)
                .map_err(|e| OpenError::Io("PACKET_ADD_MEMBERSHIP (promiscuous)", e))?;
        }
        Ok(s)
    }

    fn read_mtu(&self, name: &str) -> io::Result<usize> {
        let mut ifr = ifreq_for(name);
        // SAFETY: SIOCGIFMTU reads the name and writes ifru_mtu of `ifr`.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) };
        if rc != 0 {
            return Err(last_error());
        }
        // SAFETY: the ioctl succeeded, so ifru_mtu is the member it wrote.
        let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
        Ok(usize::try_from(mtu).unwrap_or(1500))
    }

    /// The interface's MTU (IP packet size; frames may be 14 bytes more).
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// The descriptor, for waiting on it.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receive up to `max` (at most `rx.capacity()`) frames without
    /// waiting. Returns how many frames `rx` now holds (0 when none is
    /// ready).
    pub fn recv_batch(&self, rx: &mut RecvBatch, max: usize) -> io::Result<usize> {
        rx.prepare();
        let max = max.clamp(1, rx.hdrs.len());
        let n = loop {
            // SAFETY: `rx.hdrs` holds `rx.hdrs.len()` headers whose iovecs
            // and names point into `rx`'s own buffers, alive and unmoved
            // across the call.
            let rc = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    rx.hdrs.as_mut_ptr(),
                    max as libc::c_uint,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    std::ptr::null_mut(),
                )
            };
            if rc >= 0 {
                break rc as usize;
            }
            let e = last_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => break 0,
                _ => return Err(e),
            }
        };
        rx.filled = n;
        Ok(n)
    }

    /// Send `frames` in order; returns `(sent, failed, last error)`. A frame
    /// the kernel refuses (too big, no buffer within the send timeout, link
    /// down) is counted as failed and the rest still go.
    pub fn send_batch(&self, frames: &[&[u8]]) -> (usize, usize, Option<io::Error>) {
        let mut iovs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all-zero is a valid value.
        let mut hdrs: Vec<libc::mmsghdr> = (0..frames.len())
            .map(|_| unsafe { std::mem::zeroed() })
            .collect();
        for (h, iov) in hdrs.iter_mut().zip(iovs.iter_mut()) {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        let (mut off, mut sent, mut failed, mut last) = (0, 0, 0, None);
        while off < hdrs.len() {
            let rest = &mut hdrs[off..];
            // SAFETY: every header points at one iovec in `iovs`, which
            // points into a frame of `frames`; all outlive the call. The
            // socket is bound, so no destination address is needed.
            let rc = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                off += rc as usize;
                sent += rc as usize;
                continue;
            }
            let e = last_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // The first remaining frame failed: count it and go on.
            failed += 1;
            off += 1;
            last = Some(e);
        }
        (sent, failed, last)
    }

    /// `(packets, drops)` the kernel counted since the last call
    /// (`PACKET_STATISTICS` resets on read).
    pub fn take_stats(&self) -> io::Result<(u64, u64)> {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for the kernel to write.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(last_error());
        }
        Ok((u64::from(st.tp_packets), u64::from(st.tp_drops)))
    }
}

/// Buffers for one `recvmmsg` call: `burst` frames of `snaplen` bytes.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_ll>,
    hdrs: Vec<libc::mmsghdr>,
    filled: usize,
}

// SAFETY: the raw pointers in `iovs` and `hdrs` point only into this
// struct's own heap buffers, which move with it; nothing is shared.
unsafe impl Send for RecvBatch {}

/// One received frame.
pub struct Frame<'a> {
    /// The bytes captured (at most the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire (more than `data` when truncated).
    pub wire_len: usize,
}

impl RecvBatch {
    /// Room for `burst` frames of up to `snaplen` bytes.
    pub fn new(burst: usize, snaplen: usize) -> RecvBatch {
        let burst = burst.max(1);
        RecvBatch {
            bufs: (0..burst).map(|_| vec![0u8; snaplen.max(64)]).collect(),
            // SAFETY: iovec, sockaddr_ll and mmsghdr are plain data; all-zero
            // is a valid value of each.
            iovs: (0..burst).map(|_| unsafe { std::mem::zeroed() }).collect(),
            names: (0..burst).map(|_| unsafe { std::mem::zeroed() }).collect(),
            hdrs: (0..burst).map(|_| unsafe { std::mem::zeroed() }).collect(),
            filled: 0,
        }
    }

    /// How many frames one call can take.
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    fn prepare(&mut self) {
        for i in 0..self.bufs.len() {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.bufs[i].len(),
            };
            let h = &mut self.hdrs[i];
            h.msg_len = 0;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_ll).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
        }
        self.filled = 0;
    }

    /// The frames of the last receive, in arrival order, without the
    /// host's own outgoing frames (for kernels older than 4.20, which lack
    /// `PACKET_IGNORE_OUTGOING`).
    pub fn frames(&self) -> impl Iterator<Item = Frame<'_>> {
        (0..self.filled).filter_map(move |i| {
            if self.names[i].sll_pkttype == libc::PACKET_OUTGOING {
                return None;
            }
            let wire_len = self.hdrs[i].msg_len as usize;
            let cap = wire_len.min(self.bufs[i].len());
            Some(Frame {
                data: &self.bufs[i][..cap],
                wire_len,
            })
        })
    }
}
