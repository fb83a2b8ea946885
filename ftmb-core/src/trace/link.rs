//! Link-layer types (pcap `LINKTYPE_*` / `DLT_*` values).

/// Link-layer header type of captured frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// Ethernet II (`LINKTYPE_ETHERNET` = 1).
    Ethernet,
    /// Raw IP, no link header (`LINKTYPE_RAW` = 101; also DLT 12 and 14).
    RawIp,
    /// Linux "cooked" capture v1 (`LINKTYPE_LINUX_SLL` = 113).
    LinuxSll,
    /// BSD loopback: 4-byte host-order address family (`LINKTYPE_NULL` = 0).
    Null,
    /// Any other link type, carrying its numeric value.
    Other(u32),
}

impl LinkType {
    /// Maps a pcap link-type / DLT number to a [`LinkType`].
    pub fn from_dlt(dlt: u32) -> LinkType {
        match dlt {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            113 => LinkType::LinuxSll,
            other => LinkType::Other(other),
        }
    }

    /// The link-type number written to pcap files (`RawIp` maps to 101).
    pub fn dlt(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::LinuxSll => 113,
            LinkType::Other(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LinkType;

    #[test]
    fn dlt_roundtrip() {
        for l in [
            LinkType::Ethernet,
            LinkType::RawIp,
            LinkType::LinuxSll,
            LinkType::Null,
            LinkType::Other(147),
        ] {
            assert_eq!(LinkType::from_dlt(l.dlt()), l);
        }
        assert_eq!(LinkType::from_dlt(12), LinkType::RawIp);
        assert_eq!(LinkType::from_dlt(14), LinkType::RawIp);
    }
}
