//! Argument lexing: finding the extent of `( ... )`, splitting at top-level
//! commas, comment removal, `$VARIABLE` substitution, and unquoting.

use super::ast::{Arg, Span};
use super::error::ConfigError;

/// Why an argument list could not be scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ScanError {
    /// A `"` or `'` string starting at this offset is not terminated.
    UnterminatedString(usize),
    /// A `/*` comment starting at this offset is not terminated.
    UnterminatedComment(usize),
    /// The input ended before the closing parenthesis.
    Unclosed,
}

/// Skips a quoted string starting at `i` (which holds the quote); returns the
/// offset just past the closing quote, or `None` if unterminated.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if q == b'"' => j += 2,
            c if c == q => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// If a comment starts at `i`, returns the offset just past it
/// (`Err` if it is an unterminated block comment).
fn skip_comment(b: &[u8], i: usize) -> Option<Result<usize, usize>> {
    if b.get(i) != Some(&b'/') {
        return None;
    }
    match b.get(i + 1) {
        Some(b'/') => {
            let end = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p);
            Some(Ok(end))
        }
        Some(b'*') => {
            let end = b[i + 2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map(|p| i + 2 + p + 2);
            Some(end.ok_or(i))
        }
        _ => None,
    }
}

/// Scans argument text starting just after an opening parenthesis and
/// returns the offset of the matching `)`.  Only parentheses are balanced
/// here (as in Click); strings and comments are skipped.
pub(super) fn scan_args(s: &str) -> Result<usize, ScanError> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => i = skip_string(b, i).ok_or(ScanError::UnterminatedString(i))?,
            b'/' => match skip_comment(b, i) {
                Some(Ok(end)) => i = end,
                Some(Err(at)) => return Err(ScanError::UnterminatedComment(at)),
                None => i += 1,
            },
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                if depth == 0 {
                    return Ok(i);
                }
                depth -= 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    Err(ScanError::Unclosed)
}

/// Splits raw argument text at top-level commas.  Returns the span (offset by
/// `base`) of each argument with surrounding whitespace and comments trimmed.
/// Text that contains nothing but whitespace and comments has no arguments.
pub(super) fn split_raw(text: &str, base: usize) -> Vec<Span> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut piece_start = 0;
    let mut content: Option<(usize, usize)> = None;
    let mut saw_comma = false;
    let mut i = 0;
    let mark = |content: &mut Option<(usize, usize)>, s: usize, e: usize| {
        *content = Some(match *content {
            Some((cs, _)) => (cs, e),
            None => (s, e),
        });
    };
    let push = |out: &mut Vec<Span>, content: Option<(usize, usize)>, at: usize| {
        let (s, e) = content.unwrap_or((at, at));
        out.push(Span::new(base + s, base + e));
    };
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' {
            let end = skip_string(b, i).unwrap_or(b.len());
            mark(&mut content, i, end);
            i = end;
            continue;
        }
        if let Some(r) = skip_comment(b, i) {
            i = r.unwrap_or(b.len());
            continue;
        }
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                push(&mut out, content, piece_start);
                saw_comma = true;
                content = None;
                piece_start = i + 1;
                i += 1;
                continue;
            }
            _ => {}
        }
        if !c.is_ascii_whitespace() {
            mark(&mut content, i, i + 1);
        }
        i += 1;
    }
    if content.is_some() || saw_comma {
        push(&mut out, content, piece_start.min(b.len()));
    }
    out
}

/// Callback resolving a variable name (without `$`) written at a span:
/// `Ok(Some(value))` substitutes, `Ok(None)` keeps the text as written.
pub(super) type Lookup<'a> = dyn FnMut(&str, Span) -> Result<Option<String>, ConfigError> + 'a;

/// Removes comments from raw argument text (starting at byte `base` of the
/// source) and substitutes `$NAME` / `${NAME}` outside single quotes.  The
/// result is trimmed.
pub(super) fn cook(raw: &str, base: usize, lookup: &mut Lookup<'_>) -> Result<String, ConfigError> {
    let b = raw.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut in_dq = false;
    while i < b.len() {
        let c = b[i];
        // `$` substitutes in and out of double quotes alike.
        if c == b'$' {
            if let Some(next) = substitute(raw, base, i, &mut out, lookup)? {
                i = next;
                continue;
            }
        }
        if in_dq {
            match c {
                b'\\' => {
                    let end = (i + 2).min(b.len());
                    out.extend_from_slice(&b[i..end]);
                    i = end;
                    continue;
                }
                b'"' => in_dq = false,
                _ => {}
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            b'"' => in_dq = true,
            b'\'' => {
                let end = skip_string(b, i).unwrap_or(b.len());
                out.extend_from_slice(&b[i..end]);
                i = end;
                continue;
            }
            b'/' => {
                if let Some(r) = skip_comment(b, i) {
                    i = r.unwrap_or(b.len());
                    out.push(b' ');
                    continue;
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// Handles a `$` at `i`: if it starts a variable reference, appends its value
/// (or the reference itself when the lookup declines) and returns the offset
/// after it.
fn substitute(
    raw: &str,
    base: usize,
    i: usize,
    out: &mut Vec<u8>,
    lookup: &mut Lookup<'_>,
) -> Result<Option<usize>, ConfigError> {
    let Some((name, end)) = var_at(raw, i) else {
        return Ok(None);
    };
    let span = Span::new(base + i, base + end);
    match lookup(name, span)? {
        Some(v) => out.extend_from_slice(v.as_bytes()),
        None => out.extend_from_slice(&raw.as_bytes()[i..end]),
    }
    Ok(Some(end))
}

/// Parses a variable reference `$NAME` or `${NAME}` at byte `i` (which holds
/// `$`); returns the name and the offset just past the reference.
pub(super) fn var_at(s: &str, i: usize) -> Option<(&str, usize)> {
    let b = s.as_bytes();
    if b.get(i) != Some(&b'$') {
        return None;
    }
    let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if b.get(i + 1) == Some(&b'{') {
        let close = b[i + 2..].iter().position(|&c| c == b'}')? + i + 2;
        let name = &s[i + 2..close];
        if name.is_empty() || !name.bytes().all(is_name) {
            return None;
        }
        return Some((name, close + 1));
    }
    let len = b[i + 1..].iter().take_while(|&&c| is_name(c)).count();
    if len == 0 {
        return None;
    }
    Some((&s[i + 1..i + 1 + len], i + 1 + len))
}

/// Splits the text of an argument list at top-level commas.
///
/// `base` is the offset of `text` in its source, used for the returned spans.
/// Commas inside `"..."` (with backslash escapes), `'...'`, nested
/// `()`/`[]`/`{}` and comments do not split.  Each argument has its comments
/// removed and is trimmed; quotes are kept and no variables are substituted.
/// Whitespace-only text yields no arguments.
pub fn split_args(text: &str, base: usize) -> Vec<Arg> {
    split_raw(text, base)
        .into_iter()
        .map(|span| {
            let raw = text
                .get(span.start - base..span.end - base)
                .unwrap_or_default();
            let text = cook(raw, span.start, &mut |_, _| Ok(None)).unwrap_or_default();
            Arg { text, span }
        })
        .collect()
}

/// Removes Click-style quoting: `"..."` strings lose their quotes and have
/// backslash escapes (`\n \t \r \0 \\ \" \' \xHH`, backslash-newline)
/// processed; `'...'` strings lose their quotes and are taken literally;
/// unquoted text is kept as is.
pub fn unquote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => out.push('\n'),
                            Some('t') => out.push('\t'),
                            Some('r') => out.push('\r'),
                            Some('0') => out.push('\0'),
                            Some('\n') | None => {}
                            Some('x') => {
                                let mut v = 0u32;
                                let mut n = 0;
                                while n < 2 {
                                    match chars.peek().and_then(|c| c.to_digit(16)) {
                                        Some(d) => {
                                            v = v * 16 + d;
                                            chars.next();
                                            n += 1;
                                        }
                                        None => break,
                                    }
                                }
                                if n == 0 {
                                    out.push('x');
                                } else if let Some(ch) = char::from_u32(v) {
                                    out.push(ch);
                                }
                            }
                            Some(other) => out.push(other),
                        },
                        _ => out.push(c),
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}
