//! Packets and their annotations.
//!
//! A [`Packet`] owns one buffer with headroom in front of the data, so that
//! `Strip(14)` is an offset change and `Unstrip(14)` can give the bytes back
//! without copying, as in Click. Annotations travel with the packet through
//! the element graph: the input packet id the input logger gave it, its
//! arrival timestamp, the network-header offset set by `CheckIPHeader`, a
//! paint colour, and the dependency vector that fault tolerance fills in.

/// Bytes reserved in front of a new packet's data, so `Unstrip` of a link
/// header does not need to move the data.
pub const HEADROOM: usize = 64;

/// Where the packet's bytes sit inside its buffer and what the runtime knows
/// about it.
#[derive(Clone, Debug, Default)]
pub struct Anno {
    /// Input packet id: strictly increasing in arrival order across all
    /// sources; assigned by the input side (the input logger under fault
    /// tolerance). Stable across replay.
    pub id: u64,
    /// Arrival timestamp in nanoseconds (from the trace or the device).
    pub ts_ns: u64,
    /// Offset of the IP header from the current data start, if known.
    pub net_off: Option<u16>,
    /// Click's paint annotation.
    pub paint: u8,
    /// Click's destination IP annotation (network byte order as an integer).
    pub dst_ip: u32,
    /// Which source element produced the packet (index in the graph).
    pub source: u16,
}

/// A packet: an owned buffer, the current data window, annotations and the
/// dependency vector of the shared-state accesses it has made.
#[derive(Clone, Debug)]
pub struct Packet {
    buf: Vec<u8>,
    start: u32,
    /// Annotations (id, timestamp, header offsets, paint).
    pub anno: Anno,
}

impl Packet {
    /// A packet holding a copy of `data`, with [`HEADROOM`] bytes in front.
    pub fn from_bytes(data: &[u8]) -> Packet {
        let mut buf = Vec::with_capacity(HEADROOM + data.len());
        buf.resize(HEADROOM, 0);
        buf.extend_from_slice(data);
        Packet {
            buf,
            start: HEADROOM as u32,
            anno: Anno::default(),
        }
    }

    /// Make this packet a fresh copy of `data` (annotations and dependency
    /// vector cleared), reusing its buffer: for egress paths that turn
    /// borrowed bytes into packets over and over.
    pub fn reset_from(&mut self, data: &[u8]) {
        self.buf.clear();
        self.buf.resize(HEADROOM, 0);
        self.buf.extend_from_slice(data);
        self.start = HEADROOM as u32;
        self.anno = Anno::default();
    }

    /// The packet's current bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start as usize..]
    }

    /// The packet's current bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start as usize..]
    }

    /// Current length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len() - self.start as usize
    }

    /// True when the packet has no bytes left.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remove `n` bytes from the front (Click's `pull`). Returns false, and
    /// leaves the packet unchanged, when the packet is shorter than `n`.
    #[inline]
    pub fn pull(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.start += n as u32;
        self.anno.net_off = self
            .anno
            .net_off
            .and_then(|o| (o as usize).checked_sub(n))
            .map(|o| o as u16);
        true
    }

    /// Give back `n` bytes in front of the data (Click's `push`). The bytes
    /// are whatever was there before (what `pull` removed), or zeros when the
    /// headroom had to grow.
    pub fn push_front(&mut self, n: usize) {
        let start = self.start as usize;
        let start = if n > start {
            let grow = n - start + HEADROOM;
            let mut nb = vec![0u8; grow];
            nb.extend_from_slice(&self.buf);
            self.buf = nb;
            start + grow
        } else {
            start
        };
        self.start = (start - n) as u32;
        if let Some(o) = self.anno.net_off {
            self.anno.net_off = u16::try_from(o as usize + n).ok();
        }
    }

    /// Cut the packet to `len` bytes (no-op when already shorter).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.buf.truncate(self.start as usize + len);
        }
    }

    /// The IP header and what follows it, when the network-header annotation
    /// is set and in range.
    #[inline]
    pub fn ip(&self) -> Option<&[u8]> {
        let off = self.anno.net_off? as usize;
        self.data().get(off..)
    }

    /// Writable IP header and what follows it.
    #[inline]
    pub fn ip_mut(&mut self) -> Option<&mut [u8]> {
        let off = self.anno.net_off? as usize;
        self.data_mut().get_mut(off..)
    }

    /// The IP header if set, else the packet data (for elements that accept
    /// raw IP packets whose annotation was never set).
    #[inline]
    pub fn ip_or_data(&self) -> &[u8] {
        match self.anno.net_off {
            Some(o) => self.data().get(o as usize..).unwrap_or(&[]),
            None => self.data(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_unstrip_round_trip() {
        let mut p = Packet::from_bytes(&[1, 2, 3, 4, 5]);
        p.anno.net_off = Some(2);
        assert!(p.pull(2));
        assert_eq!(p.data(), &[3, 4, 5]);
        assert_eq!(p.anno.net_off, Some(0));
        p.push_front(2);
        assert_eq!(p.data(), &[1, 2, 3, 4, 5]);
        assert_eq!(p.anno.net_off, Some(2));
        assert!(!p.pull(6));
        assert_eq!(p.len(), 5);
    }

    #[test]
    fn packet_fits_in_72_bytes() {
        assert!(std::mem::size_of::<Packet>() <= 72);
    }

    #[test]
    fn push_front_beyond_headroom_grows() {
        let mut p = Packet::from_bytes(&[9]);
        p.push_front(HEADROOM + 10);
        assert_eq!(p.len(), HEADROOM + 11);
        assert_eq!(p.data()[HEADROOM + 10], 9);
        p.truncate(3);
        assert_eq!(p.len(), 3);
    }
}
