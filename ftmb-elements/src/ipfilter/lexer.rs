//! Tokenizer for the IP expression language.

use super::FilterError;
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TokKind {
    /// A run of `[A-Za-z0-9._/-]` characters (keywords, numbers, addresses, names, `-`).
    Word,
    LParen,
    RParen,
    LBrack,
    RBrack,
    Colon,
    Comma,
    /// `!`
    Bang,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// `&` (bit mask)
    Amp,
    /// `=` or `==`
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
pub(super) struct Tok<'s> {
    pub(super) kind: TokKind,
    pub(super) text: &'s str,
    pub(super) span: Range<usize>,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_' | b'-')
}

/// Splits `src` into tokens; spans are byte offsets into `src`.
pub(super) fn tokenize(src: &str) -> Result<Vec<Tok<'_>>, FilterError> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if is_word_byte(c) {
            while b.get(i).is_some_and(|&x| is_word_byte(x)) {
                i += 1;
            }
            toks.push(Tok {
                kind: TokKind::Word,
                text: &src[start..i],
                span: start..i,
            });
            continue;
        }
        let next = b.get(i + 1).copied();
        let (kind, len) = match (c, next) {
            (b'(', _) => (TokKind::LParen, 1),
            (b')', _) => (TokKind::RParen, 1),
            (b'[', _) => (TokKind::LBrack, 1),
            (b']', _) => (TokKind::RBrack, 1),
            (b':', _) => (TokKind::Colon, 1),
            (b',', _) => (TokKind::Comma, 1),
            (b'!', Some(b'=')) => (TokKind::Ne, 2),
            (b'!', _) => (TokKind::Bang, 1),
            (b'&', Some(b'&')) => (TokKind::AndAnd, 2),
            (b'&', _) => (TokKind::Amp, 1),
            (b'|', Some(b'|')) => (TokKind::OrOr, 2),
            (b'=', Some(b'=')) => (TokKind::Eq, 2),
            (b'=', _) => (TokKind::Eq, 1),
            (b'<', Some(b'=')) => (TokKind::Le, 2),
            (b'<', _) => (TokKind::Lt, 1),
            (b'>', Some(b'=')) => (TokKind::Ge, 2),
            (b'>', _) => (TokKind::Gt, 1),
            _ => {
                let ch = src[start..].chars().next().unwrap_or('?');
                let end = start + ch.len_utf8();
                let message = if c == b'|' {
                    "unexpected `|` (use `||` or `or`)".to_string()
                } else {
                    format!("unexpected character `{ch}`")
                };
                return Err(FilterError {
                    message,
                    span: start..end,
                });
            }
        };
        i += len;
        toks.push(Tok {
            kind,
            text: &src[start..i],
            span: start..i,
        });
    }
    Ok(toks)
}
