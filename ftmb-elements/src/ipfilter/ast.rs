//! Expression tree and primitive (leaf) tests.

/// Where a leaf's byte offset is measured from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Base {
    /// Start of the packet; no IPv4 requirement (used by `ip vers`).
    Raw,
    /// Start of an IPv4 header (packet version must be 4).
    Ip,
    /// Start of the transport header of an IPv4 first fragment (or unfragmented
    /// packet) whose protocol satisfies the leaf's [`ProtoReq`].
    Transp,
}

/// Transport protocol requirement for [`Base::Transp`] leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProtoReq {
    Any,
    Is(u8),
    TcpUdp,
}

impl ProtoReq {
    #[inline]
    pub(super) fn accepts(self, p: u8) -> bool {
        match self {
            ProtoReq::Any => true,
            ProtoReq::Is(x) => x == p,
            ProtoReq::TcpUdp => p == 6 || p == 17,
        }
    }
}

/// Comparison applied to an extracted field value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq(u32),
    Ne(u32),
    Lt(u32),
    Le(u32),
    Gt(u32),
    Ge(u32),
    /// Inclusive range.
    In(u32, u32),
    /// Outside an inclusive range.
    NotIn(u32, u32),
}

impl Cmp {
    #[inline]
    pub(super) fn test(self, v: u32) -> bool {
        match self {
            Cmp::Eq(x) => v == x,
            Cmp::Ne(x) => v != x,
            Cmp::Lt(x) => v < x,
            Cmp::Le(x) => v <= x,
            Cmp::Gt(x) => v > x,
            Cmp::Ge(x) => v >= x,
            Cmp::In(a, b) => a <= v && v <= b,
            Cmp::NotIn(a, b) => v < a || v > b,
        }
    }
}

/// One primitive test: `cmp(((read(base + off, width) >> shift) & mask))`.
/// A leaf whose bytes are missing (or whose base does not apply) is false.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Leaf {
    pub(super) base: Base,
    pub(super) proto: ProtoReq,
    pub(super) off: u16,
    /// Field width in bytes, 1 to 4.
    pub(super) width: u8,
    pub(super) shift: u8,
    pub(super) mask: u32,
    pub(super) cmp: Cmp,
}

/// Boolean expression tree over leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Node {
    True,
    False,
    Leaf(Leaf),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

impl Node {
    pub(super) fn and(mut v: Vec<Node>) -> Node {
        if v.len() == 1 {
            v.pop().unwrap_or(Node::True)
        } else {
            Node::And(v)
        }
    }

    pub(super) fn or(mut v: Vec<Node>) -> Node {
        if v.len() == 1 {
            v.pop().unwrap_or(Node::False)
        } else {
            Node::Or(v)
        }
    }
}

/// Reads a big-endian field of `width` (1..=4) bytes at `at`; `None` if out of range.
#[inline]
pub(super) fn read_be(p: &[u8], at: usize, width: u8) -> Option<u32> {
    match width {
        1 => p.get(at).map(|&b| u32::from(b)),
        2 => {
            let s: [u8; 2] = p.get(at..at.checked_add(2)?)?.try_into().ok()?;
            Some(u32::from(u16::from_be_bytes(s)))
        }
        4 => {
            let s: [u8; 4] = p.get(at..at.checked_add(4)?)?.try_into().ok()?;
            Some(u32::from_be_bytes(s))
        }
        w => {
            let s = p.get(at..at.checked_add(usize::from(w))?)?;
            Some(s.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)))
        }
    }
}
