//! Name tables: IP protocols, TCP/UDP ports, TCP flags and ICMP types.

/// IP protocol names (usable as qualifiers: `tcp`, `udp`, ...).
const PROTOS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipip", 4),
    ("tcp", 6),
    ("udp", 17),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("sctp", 132),
];

/// Well-known TCP/UDP port names (shared by both protocols).
const PORTS: &[(&str, u16)] = &[
    ("echo", 7),
    ("discard", 9),
    ("daytime", 13),
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("time", 37),
    ("domain", 53),
    ("dns", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("gopher", 70),
    ("finger", 79),
    ("http", 80),
    ("www", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("sunrpc", 111),
    ("auth", 113),
    ("nntp", 119),
    ("ntp", 123),
    ("netbios-ns", 137),
    ("netbios-dgm", 138),
    ("netbios-ssn", 139),
    ("imap", 143),
    ("snmp", 161),
    ("snmp-trap", 162),
    ("bgp", 179),
    ("irc", 194),
    ("ldap", 389),
    ("https", 443),
    ("syslog", 514),
    ("submission", 587),
    ("ldaps", 636),
    ("imaps", 993),
    ("pop3s", 995),
    ("socks", 1080),
    ("openvpn", 1194),
    ("mysql", 3306),
    ("rdp", 3389),
    ("sip", 5060),
    ("postgresql", 5432),
    ("http-alt", 8080),
];

/// TCP flag names, as used by `tcp opt` (Click's TCP option database).
const TCP_OPTS: &[(&str, u8)] = &[
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
];

/// ICMP type names (Click's ICMP type database).
const ICMP_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("unreachable", 3),
    ("sourcequench", 4),
    ("redirect", 5),
    ("echo", 8),
    ("routeradvert", 9),
    ("routersolicit", 10),
    ("timeexceeded", 11),
    ("parameterproblem", 12),
    ("timestamp", 13),
    ("timestamp-reply", 14),
    ("inforeq", 15),
    ("inforeq-reply", 16),
    ("maskreq", 17),
    ("maskreq-reply", 18),
];

fn find<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

pub(super) fn proto(name: &str) -> Option<u8> {
    find(PROTOS, name)
}

pub(super) fn port(name: &str) -> Option<u16> {
    find(PORTS, name)
}

pub(super) fn tcp_opt(name: &str) -> Option<u8> {
    find(TCP_OPTS, name)
}

pub(super) fn icmp_type(name: &str) -> Option<u8> {
    find(ICMP_TYPES, name)
}

/// Parses a decimal or `0x` hexadecimal unsigned integer.
pub(super) fn parse_int(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(h, 16).ok()
    } else {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

/// Parses 1 to 4 dotted decimal octets; returns (address, number of octets).
fn parse_dotted(s: &str) -> Option<(u32, u32)> {
    let mut addr: u32 = 0;
    let mut n = 0u32;
    for part in s.split('.') {
        if n == 4 || part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let v: u32 = part.parse().ok()?;
        if v > 255 {
            return None;
        }
        addr |= v << (24 - 8 * n);
        n += 1;
    }
    Some((addr, n))
}

/// Parses a full dotted-quad IPv4 address.
pub(super) fn parse_addr(s: &str) -> Option<u32> {
    match parse_dotted(s) {
        Some((a, 4)) => Some(a),
        _ => None,
    }
}

/// Parses `ADDR/LEN` or `ADDR/MASK` (ADDR may have fewer than four octets).
/// Returns (address & mask, mask).
pub(super) fn parse_prefix(s: &str) -> Option<(u32, u32)> {
    let (a, l) = s.split_once('/')?;
    let (addr, _) = parse_dotted(a)?;
    let mask = if l.contains('.') {
        parse_addr(l)?
    } else {
        if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u32 = l.parse().ok()?;
        prefix_mask(len)?
    };
    Some((addr & mask, mask))
}

/// The netmask with `len` leading one bits.
pub(super) fn prefix_mask(len: u32) -> Option<u32> {
    match len {
        0 => Some(0),
        1..=32 => Some(u32::MAX << (32 - len)),
        _ => None,
    }
}
