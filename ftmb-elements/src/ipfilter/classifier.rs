//! Click `Classifier` patterns: `OFFSET/VALUE[%MASK]` clauses.

use super::FilterError;

/// A compiled Click `Classifier` pattern.
///
/// A pattern is a space-separated list of clauses `OFFSET/VALUE` or
/// `OFFSET/VALUE%MASK`, all of which must match; `OFFSET` is decimal,
/// `VALUE` and `MASK` are hex with an even number of digits (`?` in `VALUE`
/// is a wildcard nibble), and a clause preceded by `!` must not match. The
/// pattern `-` matches every packet.
///
/// A clause whose bytes lie beyond the end of the packet does not match, so
/// a packet too short for a positive clause never matches the pattern, while
/// a negated clause (`!12/0800`) on such a packet is satisfied — as in Click,
/// where negation swaps the branches of the failed test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifierPattern {
    clauses: Vec<Clause>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Clause {
    offset: usize,
    /// Expected bytes, already masked.
    value: Vec<u8>,
    mask: Vec<u8>,
    negated: bool,
}

impl Clause {
    #[inline]
    fn matches(&self, data: &[u8]) -> bool {
        let hit = self
            .offset
            .checked_add(self.value.len())
            .and_then(|end| data.get(self.offset..end))
            .is_some_and(|seg| {
                seg.iter()
                    .zip(&self.mask)
                    .zip(&self.value)
                    .all(|((d, m), v)| d & m == *v)
            });
        hit != self.negated
    }
}

impl ClassifierPattern {
    /// Tests `data` (the packet from its current start). Never panics.
    #[inline]
    pub fn matches(&self, data: &[u8]) -> bool {
        self.clauses.iter().all(|c| c.matches(data))
    }

    /// True for the pattern `-`.
    pub fn is_always_true(&self) -> bool {
        self.clauses.is_empty()
    }
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn error<T>(message: impl Into<String>, start: usize, len: usize) -> Result<T, FilterError> {
    Err(FilterError {
        message: message.into(),
        span: start..start + len,
    })
}

/// Parses hex digits (with `?` wildcards if `wild`) into (bytes, masks).
fn parse_hex(
    s: &str,
    at: usize,
    wild: bool,
    what: &str,
) -> Result<(Vec<u8>, Vec<u8>), FilterError> {
    if s.is_empty() {
        return error(format!("missing {what}"), at, 0);
    }
    if !s.len().is_multiple_of(2) {
        return error(
            format!("{what} must have an even number of hex digits"),
            at,
            s.len(),
        );
    }
    let mut val = Vec::with_capacity(s.len() / 2);
    let mut mask = Vec::with_capacity(s.len() / 2);
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let mut v = 0u8;
        let mut m = 0u8;
        for (j, &c) in pair.iter().enumerate() {
            v <<= 4;
            m <<= 4;
            if c == b'?' && wild {
                continue;
            }
            match hex_nibble(c) {
                Some(n) => {
                    v |= n;
                    m |= 0x0f;
                }
                None => {
                    let pos = at + 2 * i + j;
                    let ch = s[2 * i + j..].chars().next().unwrap_or('?');
                    return error(
                        format!("invalid hex digit `{ch}` in {what}"),
                        pos,
                        ch.len_utf8(),
                    );
                }
            }
        }
        val.push(v);
        mask.push(m);
    }
    Ok((val, mask))
}

/// Parses a Click `Classifier` pattern such as `12/0800 23/06` or `-`.
pub fn parse_classifier(src: &str) -> Result<ClassifierPattern, FilterError> {
    // Split into words with byte offsets.
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in src.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                words.push((s, &src[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, &src[s..]));
    }
    if words.is_empty() {
        return error("empty pattern", 0, src.len());
    }
    if let [(_, "-")] = words.as_slice() {
        return Ok(ClassifierPattern {
            clauses: Vec::new(),
        });
    }
    let mut clauses = Vec::new();
    let mut pending_not: Option<usize> = None;
    for &(at, word) in &words {
        if word == "-" {
            return error("`-` must be the whole pattern", at, 1);
        }
        let (negated, body, body_at) = match word.strip_prefix('!') {
            Some(rest) => (true, rest, at + 1),
            None => (false, word, at),
        };
        if body.is_empty() {
            if pending_not.is_some() {
                return error("`!` twice", at, 1);
            }
            pending_not = Some(at);
            continue;
        }
        let negated = negated ^ pending_not.take().is_some();
        let Some((off_s, rest)) = body.split_once('/') else {
            return error(
                format!("expected `OFFSET/VALUE`, found `{body}`"),
                body_at,
                body.len(),
            );
        };
        if off_s.is_empty() || !off_s.bytes().all(|b| b.is_ascii_digit()) {
            return error(
                "offset must be a decimal number",
                body_at,
                off_s.len().max(1),
            );
        }
        let Ok(offset) = off_s.parse::<usize>() else {
            return error("offset too large", body_at, off_s.len());
        };
        let val_at = body_at + off_s.len() + 1;
        let (val_s, mask_s) = match rest.split_once('%') {
            Some((v, m)) => (v, Some(m)),
            None => (rest, None),
        };
        let (mut value, mut mask) = parse_hex(val_s, val_at, true, "value")?;
        if let Some(m) = mask_s {
            let m_at = val_at + val_s.len() + 1;
            if m.len() != val_s.len() {
                return error(
                    "mask must have the same number of hex digits as the value",
                    m_at,
                    m.len(),
                );
            }
            let (mbytes, _) = parse_hex(m, m_at, false, "mask")?;
            for (a, b) in mask.iter_mut().zip(&mbytes) {
                *a &= b;
            }
        }
        for (v, m) in value.iter_mut().zip(&mask) {
            *v &= m;
        }
        clauses.push(Clause {
            offset,
            value,
            mask,
            negated,
        });
    }
    if let Some(at) = pending_not {
        return error("`!` must be followed by a clause", at, 1);
    }
    Ok(ClassifierPattern { clauses })
}
