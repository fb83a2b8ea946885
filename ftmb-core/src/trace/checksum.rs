//! RFC 1071 Internet checksum helpers.

/// Adds `data` (as big-endian 16-bit words, odd tail padded with zero) to a
/// running one's-complement accumulator. Works 4 bytes at a time into a
/// 64-bit accumulator; the end-around carries are folded by [`fold`].
#[inline]
pub(crate) fn sum_bytes(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    acc
}

/// Folds a 64-bit accumulator to 16 bits and returns its one's complement.
#[inline]
pub(crate) fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Internet checksum (RFC 1071) of an IPv4 header.
///
/// To compute a checksum, pass the header with its checksum field zeroed and
/// store the result big-endian at bytes 10..12. To verify, pass the header as
/// received: a correct header yields 0.
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    fold(sum_bytes(0, header))
}

/// TCP/UDP checksum over the IPv4 pseudo-header plus `segment` (L4 header and
/// payload).
///
/// As with [`ipv4_checksum`], zero the checksum field to compute it, or pass
/// the segment as received to verify (result 0). Note that for UDP a computed
/// value of 0 must be transmitted as 0xffff.
pub fn l4_checksum_v4(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> u16 {
    let mut acc = u64::from(u32::from_be_bytes(src));
    acc += u64::from(u32::from_be_bytes(dst));
    acc += u64::from(proto);
    acc += segment.len() as u64;
    fold(sum_bytes(acc, segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward 16-bit reference implementation.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            sum += u32::from(w);
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn known_ipv4_header() {
        // Example header from Wikipedia's "IPv4 header checksum" article.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = ipv4_checksum(&h);
        assert_eq!(c, 0xb861);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(ipv4_checksum(&h), 0);
    }

    #[test]
    fn matches_reference_all_lengths() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for n in 0..data.len() {
            assert_eq!(ipv4_checksum(&data[..n]), reference(&data[..n]), "len {n}");
        }
        let ff = [0xffu8; 1001];
        assert_eq!(ipv4_checksum(&ff), reference(&ff));
    }

    #[test]
    fn l4_matches_reference() {
        let seg: Vec<u8> = (0..77u8).collect();
        let (s, d) = ([10, 1, 2, 3], [198, 19, 4, 5]);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&s);
        pseudo.extend_from_slice(&d);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(&seg);
        // Pseudo-header is 12 bytes (even), so concatenation is equivalent.
        assert_eq!(l4_checksum_v4(s, d, 6, &seg), reference(&pseudo));
    }
}
