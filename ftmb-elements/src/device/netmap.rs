//! The netmap backend (cargo feature `netmap`, `METHOD NETMAP`): one port
//! of `/dev/netmap` in NIC mode, its rings mapped into the process.
//!
//! **Untested**: this project's machines have no netmap kernel module. It
//! builds from `netmap_sys`'s plain-Rust bindings (no headers needed) and
//! follows netmap's documented legacy registration (`NIOCREGIF` with a
//! `struct nmreq`, then `mmap`), which netmap still accepts. On a host
//! without `/dev/netmap` opening fails with a clear error.

use netmap_sys::netmap::{
    netmap_if, netmap_ring, netmap_slot, nmreq, NETMAP_API, NIOCREGIF, NIOCRXSYNC, NIOCTXSYNC,
    NR_REG_ALL_NIC,
};
use netmap_sys::netmap_user::{
    nm_ring_next, nm_ring_space, NETMAP_BUF, NETMAP_IF, NETMAP_RXRING, NETMAP_TXRING,
};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// One registered netmap port.
pub struct NetmapPort {
    fd: OwnedFd,
    mem: *mut libc::c_void,
    memsize: usize,
    nifp: *mut netmap_if,
    rx_rings: u32,
    tx_rings: u32,
    buf_size: usize,
    pending_tx: bool,
}

// SAFETY: the mapping belongs to this port alone and is only touched
// through `&mut self`; the raw pointers are never shared.
unsafe impl Send for NetmapPort {}

impl NetmapPort {
    /// Register interface `name` with netmap (all hardware rings).
    pub fn open(name: &str) -> Result<NetmapPort, String> {
        // SAFETY: plain system call on a constant path; result checked.
        let raw = unsafe { libc::open(c"/dev/netmap".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENOENT) => "no /dev/netmap (netmap is not installed)".to_string(),
                Some(libc::EACCES) | Some(libc::EPERM) => {
                    "/dev/netmap: permission denied".to_string()
                }
                _ => format!("/dev/netmap: {e}"),
            });
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: nmreq is plain data; all-zero is a valid value.
        let mut req: nmreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.nr_name.iter_mut().zip(name.bytes().take(15)) {
            *d = s as libc::c_char;
        }
        req.nr_version = NETMAP_API as u32;
        req.nr_flags = NR_REG_ALL_NIC;
        // SAFETY: NIOCREGIF reads and writes the nmreq we pass.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), NIOCREGIF as _, &mut req) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENXIO) | Some(libc::ENODEV) => "no such interface".to_string(),
                _ => format!("NIOCREGIF: {e}"),
            });
        }
        let memsize = req.nr_memsize as usize;
        // SAFETY: mapping the region netmap just sized for this descriptor.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                memsize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(format!("mmap: {}", io::Error::last_os_error()));
        }
        // SAFETY: nr_offset is the interface's offset in the mapping.
        let nifp = unsafe { NETMAP_IF(mem, req.nr_offset as isize) };
        let mut p = NetmapPort {
            fd,
            mem,
            memsize,
            nifp,
            rx_rings: u32::from(req.nr_rx_rings),
            tx_rings: u32::from(req.nr_tx_rings),
            buf_size: 2048,
            pending_tx: false,
        };
        if p.tx_rings > 0 {
            // SAFETY: ring 0 exists (tx_rings > 0).
            p.buf_size = unsafe { (*p.tx_ring(0)).nr_buf_size as usize };
        }
        Ok(p)
    }

    fn rx_ring(&self, i: u32) -> *mut netmap_ring {
        // SAFETY: callers pass i < rx_rings.
        unsafe { NETMAP_RXRING(self.nifp, i as isize) }
    }

    fn tx_ring(&self, i: u32) -> *mut netmap_ring {
        // SAFETY: callers pass i < tx_rings.
        unsafe { NETMAP_TXRING(self.nifp, i as isize) }
    }

    fn slot(ring: *mut netmap_ring, i: u32) -> *mut netmap_slot {
        // SAFETY: i < num_slots; slots follow the ring header.
        unsafe { (std::ptr::addr_of_mut!((*ring).slot) as *mut netmap_slot).add(i as usize) }
    }

    /// Largest IP packet a frame can carry (a buffer less an Ethernet
    /// header and a VLAN tag).
    pub fn mtu(&self) -> usize {
        self.buf_size.saturating_sub(18)
    }

    /// The descriptor, for `poll(2)`.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Take up to `max` frames from the receive rings, handing each to `f`.
    pub fn recv(&mut self, max: usize, f: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        // SAFETY: NIOCRXSYNC takes no argument.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), NIOCRXSYNC as _) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut n = 0;
        for r in 0..self.rx_rings {
            let ring = self.rx_ring(r);
            // SAFETY: the ring and its slots and buffers live in our
            // mapping; the kernel owns only [tail, head) after a sync.
            unsafe {
                let mut cur = (*ring).cur;
                while n < max && cur != (*ring).tail {
                    let slot = Self::slot(ring, cur);
                    let buf = NETMAP_BUF(ring, (*slot).buf_idx as isize) as *const u8;
                    let len = ((*slot).len as usize).min((*ring).nr_buf_size as usize);
                    f(std::slice::from_raw_parts(buf, len));
                    cur = nm_ring_next(ring, cur);
                    n += 1;
                }
                (*ring).cur = cur;
                (*ring).head = cur;
            }
        }
        Ok(n)
    }

    /// Copy `frames` into the transmit rings and push them out. Returns
    /// `(sent, failed)`: a frame finds no free slot even after a sync, or
    /// is larger than a buffer, fails.
    pub fn send(&mut self, frames: &[&[u8]]) -> (usize, usize) {
        let (mut sent, mut failed) = (0, 0);
        let mut synced = false;
        'frames: for fr in frames {
            if fr.len() > self.buf_size {
                failed += 1;
                continue;
            }
            loop {
                for r in 0..self.tx_rings {
                    let ring = self.tx_ring(r);
                    // SAFETY: as in `recv`; slots in [head, tail) are ours.
                    unsafe {
                        if nm_ring_space(ring) == 0 {
                            continue;
                        }
                        let cur = (*ring).cur;
                        let slot = Self::slot(ring, cur);
                        let buf = NETMAP_BUF(ring, (*slot).buf_idx as isize) as *mut u8;
                        std::ptr::copy_nonoverlapping(fr.as_ptr(), buf, fr.len());
                        (*slot).len = fr.len() as u16;
                        let next = nm_ring_next(ring, cur);
                        (*ring).cur = next;
                        (*ring).head = next;
                    }
                    sent += 1;
                    self.pending_tx = true;
                    continue 'frames;
                }
                if synced {
                    failed += 1;
                    continue 'frames;
                }
                self.flush();
                synced = true;
            }
        }
        self.flush();
        (sent, failed)
    }

    /// Tell the kernel about queued frames.
    pub fn flush(&mut self) {
        if self.pending_tx {
            // SAFETY: NIOCTXSYNC takes no argument.
            unsafe { libc::ioctl(self.fd.as_raw_fd(), NIOCTXSYNC as _) };
            self.pending_tx = false;
        }
    }
}

impl Drop for NetmapPort {
    fn drop(&mut self) {
        self.flush();
        // SAFETY: unmapping exactly the region `open` mapped.
        unsafe { libc::munmap(self.mem, self.memsize) };
    }
}
