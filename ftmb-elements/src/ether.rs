//! Ethernet headers: `EtherRewrite`, `EtherMirror`, and the MAC address
//! argument type.

use ftmb_core::element::{element, Filter, Verdict};
use ftmb_core::{Args, Built, ConfigError, Ctx, FromArg, InitCtx, Packet};

/// A 48-bit Ethernet address, written `aa:bb:cc:dd:ee:ff` (or with `-`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacAddr(pub [u8; 6]);

impl FromArg for MacAddr {
    const EXPECTED: &'static str = "an Ethernet address like 02:00:00:00:00:01";
    fn from_arg(s: &str) -> Result<MacAddr, String> {
        let t = s.trim();
        let parts: Vec<&str> = t.split([':', '-']).collect();
        let bad = || format!("`{s}` is not an Ethernet address");
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut m = [0u8; 6];
        for (b, p) in m.iter_mut().zip(&parts) {
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(MacAddr(m))
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// `EtherRewrite(SRC, DST)`: set the Ethernet source and destination
/// address of every packet (Click's element of that name). With static
/// addresses on both sides, a router needs no ARP.
///
/// # Configuration
/// `SRC`, `DST`: Ethernet addresses, `aa:bb:cc:dd:ee:ff`.
///
/// # Ports
/// One input, one output. A packet shorter than an Ethernet header is
/// dropped, counted as `short`.
///
/// # Shared state
/// None.
pub struct EtherRewrite {
    header: [u8; 12],
}

impl Filter for EtherRewrite {
    fn action(&mut self, _ctx: &mut Ctx, pkt: &mut Packet) -> Verdict {
        if pkt.len() < 14 {
            return Verdict::Drop("short");
        }
        if let Some(h) = pkt.data_mut().get_mut(..12) {
            h.copy_from_slice(&self.header);
        }
        Verdict::Pass
    }
}

pub(crate) fn build_ether_rewrite(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let src: MacAddr = a.required("SRC")?;
    let dst: MacAddr = a.required("DST")?;
    let mut header = [0u8; 12];
    header[..6].copy_from_slice(&dst.0);
    header[6..].copy_from_slice(&src.0);
    element(EtherRewrite { header })
}

/// `EtherMirror`: swap the Ethernet source and destination addresses of
/// every packet (Click's element of that name), so a frame goes back where
/// it came from. With `IPMirror` it makes a reflector: a host that answers
/// every frame with its mirror image.
///
/// # Ports
/// One input, one output. A packet shorter than an Ethernet header is
/// dropped, counted as `short`.
///
/// # Shared state
/// None.
pub struct EtherMirror;

impl EtherMirror {
    /// Swaps the two addresses of `frame`; false when it is too short.
    pub fn mirror(frame: &mut [u8]) -> bool {
        let Some(h) = frame.get_mut(..12) else {
            return false;
        };
        let (dst, src) = h.split_at_mut(6);
        dst.swap_with_slice(src);
        true
    }
}

impl Filter for EtherMirror {
    fn action(&mut self, _ctx: &mut Ctx, pkt: &mut Packet) -> Verdict {
        if pkt.len() < 14 || !EtherMirror::mirror(pkt.data_mut()) {
            return Verdict::Drop("short");
        }
        Verdict::Pass
    }
}

pub(crate) fn build_ether_mirror(_: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    element(EtherMirror)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_syntax() {
        assert_eq!(
            MacAddr::from_arg("02:00:0a:0B:ff:1").expect("mac").0,
            [2, 0, 10, 11, 255, 1]
        );
        assert_eq!(
            MacAddr::from_arg("02-00-00-00-00-01").expect("mac").0,
            [2, 0, 0, 0, 0, 1]
        );
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "02:00:00:00:00:zz",
            "020:0:0:0:0:0",
        ] {
            assert!(MacAddr::from_arg(bad).is_err(), "{bad}");
        }
        assert_eq!(
            MacAddr([2, 0, 10, 11, 255, 1]).to_string(),
            "02:00:0a:0b:ff:01"
        );
    }

    #[test]
    fn ether_mirror_swaps_addresses() {
        let mut f: Vec<u8> = (0u8..20).collect();
        assert!(EtherMirror::mirror(&mut f));
        assert_eq!(&f[..12], &[6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5]);
        assert_eq!(
            &f[12..],
            &(12u8..20).collect::<Vec<_>>()[..],
            "type and payload kept"
        );
        assert!(EtherMirror::mirror(&mut f));
        assert_eq!(f, (0u8..20).collect::<Vec<_>>(), "twice is the identity");
        assert!(!EtherMirror::mirror(&mut [0u8; 11]));
    }
}
