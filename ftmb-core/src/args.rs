//! Click-style typed argument reader.
//!
//! An element's configuration is a list of comma-separated arguments.
//! Arguments that start with an all-capitals word followed by a space (or
//! consisting of that word alone) are keyword arguments (`STOP true`); the
//! others are positional, read in order. A positional argument can also be
//! given by its keyword (`FromDump(FILENAME x.pcap)`), as in Click.
//!
//! Reading is all-or-nothing: every read returns a `Result` carrying the
//! span of the offending argument, and [`Args::finish`] rejects whatever
//! was left unread (an unknown keyword, a surplus argument).

use crate::config::{unquote, Arg, ConfigError, Span};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The arguments of one element, being read.
#[derive(Debug)]
pub struct Args {
    class: String,
    items: Vec<Item>,
    args_span: Span,
}

#[derive(Debug)]
struct Item {
    keyword: Option<String>,
    value: String,
    span: Span,
    used: bool,
}

fn split_keyword(text: &str) -> Option<(String, String)> {
    let word_end = text.find(|c: char| c.is_whitespace()).unwrap_or(text.len());
    let word = &text[..word_end];
    let is_kw = !word.is_empty()
        && word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_kw.then(|| (word.to_string(), text[word_end..].trim().to_string()))
}

impl Args {
    /// The reader over `args` of an element of class `class`; `args_span`
    /// is where the argument list sits (used for "missing argument").
    pub fn new(class: &str, args: &[Arg], args_span: Span) -> Args {
        let items = args
            .iter()
            .filter(|a| !a.text.is_empty())
            .map(|a| {
                let (keyword, value) = match split_keyword(&a.text) {
                    Some((k, v)) => (Some(k), v),
                    None => (None, a.text.clone()),
                };
                Item {
                    keyword,
                    value,
                    span: a.span,
                    used: false,
                }
            })
            .collect();
        Args {
            class: class.to_string(),
            items,
            args_span,
        }
    }

    /// The span of the whole argument list.
    pub fn span(&self) -> Span {
        self.args_span
    }

    /// An error located at the argument list.
    pub fn error(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(format!("{}: {}", self.class, msg.into()), self.args_span)
    }

    fn take_keyword(&mut self, key: &str) -> Option<(String, Span)> {
        // The last occurrence wins, as in Click; all are consumed.
        let mut found = None;
        for it in self.items.iter_mut() {
            if it.keyword.as_deref() == Some(key) {
                it.used = true;
                found = Some((it.value.clone(), it.span));
            }
        }
        found
    }

    fn take_positional(&mut self) -> Option<(String, Span)> {
        let it = self
            .items
            .iter_mut()
            .find(|it| !it.used && it.keyword.is_none())?;
        it.used = true;
        Some((it.value.clone(), it.span))
    }

    /// Read keyword `key` if present.
    pub fn keyword<T: FromArg>(&mut self, key: &str) -> Result<Option<T>, ConfigError> {
        match self.take_keyword(key) {
            None => Ok(None),
            Some((v, span)) => T::from_arg(&v).map(Some).map_err(|e| {
                ConfigError::new(format!("{}: {key}: {e}", self.class), span)
                    .with_help(format!("{key} expects {}", T::EXPECTED))
            }),
        }
    }

    /// The span of keyword `key`'s last occurrence (the one read).
    fn keyword_span(&self, key: &str) -> Option<Span> {
        self.items
            .iter()
            .rev()
            .find(|it| it.keyword.as_deref() == Some(key))
            .map(|it| it.span)
    }

    /// The error for `value` of argument `name` outside `min..=max`, at
    /// `span` (the argument list when `None`).
    fn out_of_range(
        &self,
        name: &str,
        value: u64,
        min: u64,
        max: u64,
        span: Option<Span>,
    ) -> ConfigError {
        let why = if value < min {
            format!("{name} {value} is less than the minimum, {min}")
        } else {
            format!("{name} {value} is more than the maximum, {max}")
        };
        ConfigError::new(
            format!("{}: {why}", self.class),
            span.unwrap_or(self.args_span),
        )
        .with_help(format!(
            "{name} is a count from {min} to {max} (see {}'s documentation)",
            self.class
        ))
    }

    /// Read keyword `key` (or `default`), a count that sizes memory, and
    /// check it lies within `min..=max`: beyond, an error at the argument.
    pub fn keyword_within(
        &mut self,
        key: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        let span = self.keyword_span(key);
        let v: u64 = self.keyword_or(key, default as u64)?;
        if v < min as u64 || v > max as u64 {
            return Err(self.out_of_range(key, v, min as u64, max as u64, span));
        }
        Ok(v as usize)
    }

    /// [`Args::keyword_within`] for an optional keyword.
    pub fn keyword_opt_within(
        &mut self,
        key: &str,
        min: usize,
        max: usize,
    ) -> Result<Option<usize>, ConfigError> {
        if self.keyword_span(key).is_none() {
            return Ok(None);
        }
        self.keyword_within(key, min, min, max).map(Some)
    }

    /// Read the next positional argument `name` as a count within
    /// `min..=max` (see [`Args::keyword_within`]), if present.
    pub fn positional_within(
        &mut self,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<Option<usize>, ConfigError> {
        let span = self.keyword_span(name).or_else(|| {
            self.items
                .iter()
                .find(|it| !it.used && it.keyword.is_none())
                .map(|it| it.span)
        });
        let Some(v) = self.positional::<u64>(name)? else {
            return Ok(None);
        };
        if v < min as u64 || v > max as u64 {
            return Err(self.out_of_range(name, v, min as u64, max as u64, span));
        }
        Ok(Some(v as usize))
    }

    /// Read keyword `key`, or `default` when absent.
    pub fn keyword_or<T: FromArg>(&mut self, key: &str, default: T) -> Result<T, ConfigError> {
        Ok(self.keyword(key)?.unwrap_or(default))
    }

    /// Read the next positional argument named `name` (also accepted as a
    /// keyword `NAME value`), if present.
    pub fn positional<T: FromArg>(&mut self, name: &str) -> Result<Option<T>, ConfigError> {
        if let Some(v) = self.keyword(name)? {
            return Ok(Some(v));
        }
        match self.take_positional() {
            None => Ok(None),
            Some((v, span)) => T::from_arg(&v).map(Some).map_err(|e| {
                ConfigError::new(format!("{}: {name}: {e}", self.class), span)
                    .with_help(format!("{name} expects {}", T::EXPECTED))
            }),
        }
    }

    /// Read the next positional argument named `name` as a word, also when
    /// it is a lone capitalised word (which otherwise reads as a keyword
    /// without a value): for arguments whose values are such words, as
    /// `ToSocket(TCP, ...)`'s type.
    pub fn positional_word(&mut self, name: &str) -> Result<Option<String>, ConfigError> {
        if let Some(v) = self.keyword(name)? {
            return Ok(Some(v));
        }
        let Some(it) = self
            .items
            .iter_mut()
            .find(|it| !it.used && (it.keyword.is_none() || it.value.is_empty()))
        else {
            return Ok(None);
        };
        it.used = true;
        Ok(Some(it.keyword.clone().unwrap_or_else(|| it.value.clone())))
    }

    /// Read a required positional argument.
    pub fn required<T: FromArg>(&mut self, name: &str) -> Result<T, ConfigError> {
        self.positional(name)?.ok_or_else(|| {
            ConfigError::new(
                format!("{}: missing required argument {name}", self.class),
                self.args_span,
            )
            .with_help(format!("{name} expects {}", T::EXPECTED))
        })
    }

    /// Every remaining positional argument, raw, with its span (for
    /// elements whose arguments are a list: Classifier patterns, rewriter
    /// input specs, DriverManager instructions).
    pub fn rest(&mut self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for it in self.items.iter_mut() {
            if !it.used && it.keyword.is_none() {
                it.used = true;
                out.push((it.value.clone(), it.span));
            }
        }
        out
    }

    /// Every remaining argument, raw and whole (keyword and value), for
    /// list-shaped configurations whose items may begin with capitals.
    pub fn rest_raw(&mut self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for it in self.items.iter_mut() {
            if !it.used {
                it.used = true;
                let text = match &it.keyword {
                    Some(k) if it.value.is_empty() => k.clone(),
                    Some(k) => format!("{k} {}", it.value),
                    None => it.value.clone(),
                };
                out.push((text, it.span));
            }
        }
        out
    }

    /// Fail on anything left unread.
    pub fn finish(self) -> Result<(), ConfigError> {
        if let Some(it) = self.items.iter().find(|it| !it.used) {
            return Err(match &it.keyword {
                Some(k) => ConfigError::new(
                    format!("{}: unknown keyword argument {k}", self.class),
                    it.span,
                ),
                None => ConfigError::new(format!("{}: too many arguments", self.class), it.span),
            });
        }
        Ok(())
    }
}

/// A type that can be parsed from one argument's text.
pub trait FromArg: Sized {
    /// What the argument should look like, for error help.
    const EXPECTED: &'static str;
    /// Parse the (already keyword-stripped) argument text.
    fn from_arg(s: &str) -> Result<Self, String>;
}

impl FromArg for bool {
    const EXPECTED: &'static str = "a boolean (true/false)";
    fn from_arg(s: &str) -> Result<bool, String> {
        match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "t" | "y" => Ok(true),
            "false" | "no" | "0" | "f" | "n" => Ok(false),
            _ => Err(format!("`{s}` is not a boolean")),
        }
    }
}

macro_rules! int_from_arg {
    ($($t:ty),*) => {$(
        impl FromArg for $t {
            const EXPECTED: &'static str = concat!("an integer (", stringify!($t), ")");
            fn from_arg(s: &str) -> Result<$t, String> {
                let t = s.trim().replace('_', "");
                let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    <$t>::from_str_radix(h, 16)
                } else {
                    t.parse::<$t>()
                };
                r.map_err(|_| format!("`{s}` is not a valid {}", stringify!($t)))
            }
        }
    )*};
}
int_from_arg!(u8, u16, u32, u64, usize, i64);

impl FromArg for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_arg(s: &str) -> Result<f64, String> {
        s.trim()
            .parse::<f64>()
            .map_err(|_| format!("`{s}` is not a number"))
    }
}

impl FromArg for String {
    const EXPECTED: &'static str = "a string";
    fn from_arg(s: &str) -> Result<String, String> {
        Ok(unquote(s))
    }
}

impl FromArg for Ipv4Addr {
    const EXPECTED: &'static str = "an IPv4 address like 10.0.0.1";
    fn from_arg(s: &str) -> Result<Ipv4Addr, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4 address"))
    }
}

/// An IPv4 prefix `ADDR/LEN` or `ADDR/MASK` (a bare address is a /32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Prefix {
    /// Network address (masked).
    pub addr: u32,
    /// Prefix length.
    pub len: u8,
}

impl Ipv4Prefix {
    /// The mask as an integer.
    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }
    /// True when `a` is inside the prefix.
    pub fn contains(&self, a: [u8; 4]) -> bool {
        u32::from_be_bytes(a) & self.mask() == self.addr
    }
}

impl FromArg for Ipv4Prefix {
    const EXPECTED: &'static str = "an IPv4 prefix like 10.0.0.0/8";
    fn from_arg(s: &str) -> Result<Ipv4Prefix, String> {
        let s = s.trim();
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
        let len = match l.parse::<u8>() {
            Ok(n) if n <= 32 => n,
            Ok(_) => return Err(format!("prefix length `{l}` is over 32")),
            Err(_) => {
                let m: Ipv4Addr = l
                    .parse()
                    .map_err(|_| format!("`{l}` is not a prefix length or mask"))?;
                let m = u32::from(m);
                if m.leading_ones() + m.trailing_zeros() != 32 {
                    return Err(format!("`{l}` is not a contiguous mask"));
                }
                m.leading_ones() as u8
            }
        };
        let p = Ipv4Prefix { addr: 0, len };
        Ok(Ipv4Prefix {
            addr: u32::from(addr) & p.mask(),
            len,
        })
    }
}

impl FromArg for Duration {
    const EXPECTED: &'static str = "a time like 5s, 100ms, 2min or 1.5 (seconds)";
    fn from_arg(s: &str) -> Result<Duration, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let v: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a time interval"))?;
        let secs = match unit.trim() {
            "" | "s" | "sec" | "secs" => v,
            "ms" | "msec" => v / 1e3,
            "us" | "usec" => v / 1e6,
            "ns" | "nsec" => v / 1e9,
            "m" | "min" => v * 60.0,
            "h" | "hr" => v * 3600.0,
            "d" | "day" => v * 86400.0,
            u => return Err(format!("unknown time unit `{u}`")),
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("`{s}` is not a time interval"));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(texts: &[&str]) -> Args {
        let mut off = 0;
        let list: Vec<Arg> = texts
            .iter()
            .map(|t| {
                let a = Arg {
                    text: t.to_string(),
                    span: Span {
                        start: off,
                        end: off + t.len(),
                    },
                };
                off += t.len() + 2;
                a
            })
            .collect();
        Args::new("Test", &list, Span { start: 0, end: off })
    }

    #[test]
    fn positional_and_keywords() {
        let mut a = args(&["x.pcap", "STOP true", "TIMING false"]);
        let f: String = a.required("FILENAME").unwrap();
        assert_eq!(f, "x.pcap");
        assert!(a.keyword_or("STOP", false).unwrap());
        assert!(!a.keyword_or("TIMING", true).unwrap());
        assert!(a.keyword::<bool>("FORCE_IP").unwrap().is_none());
        a.finish().unwrap();
    }

    #[test]
    fn a_capitalised_word_reads_as_a_positional_when_asked() {
        let mut a = args(&["TCP", "1.2.3.4", "FRAME true"]);
        assert_eq!(a.positional_word("TYPE").unwrap().as_deref(), Some("TCP"));
        assert_eq!(a.required::<String>("ADDR").unwrap(), "1.2.3.4");
        assert!(a.keyword_or("FRAME", false).unwrap());
        a.finish().unwrap();
        // A keyword with a value is not a word; by its name it is the value.
        let mut a = args(&["FRAME true"]);
        assert_eq!(a.positional_word("TYPE").unwrap(), None);
        let mut a = args(&["TYPE UDP"]);
        assert_eq!(a.positional_word("TYPE").unwrap().as_deref(), Some("UDP"));
    }

    #[test]
    fn positional_by_keyword_and_errors() {
        let mut a = args(&["FILENAME y.pcap", "BOGUS 1"]);
        assert_eq!(a.required::<String>("FILENAME").unwrap(), "y.pcap");
        let e = a.finish().unwrap_err();
        assert!(e.message.contains("unknown keyword argument BOGUS"));
        let mut a = args(&["STOP maybe"]);
        let e = a.keyword::<bool>("STOP").unwrap_err();
        assert!(e.message.contains("not a boolean"));
        let mut a = args(&[]);
        assert!(a
            .required::<String>("FILENAME")
            .unwrap_err()
            .message
            .contains("missing required argument FILENAME"));
    }

    #[test]
    fn typed_values() {
        assert_eq!(
            Duration::from_arg("100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(Duration::from_arg("2").unwrap(), Duration::from_secs(2));
        assert!(Duration::from_arg("5 parsecs").is_err());
        let p = Ipv4Prefix::from_arg("10.77.0.9/24").unwrap();
        assert!(p.contains([10, 77, 0, 200]));
        assert!(!p.contains([10, 78, 0, 1]));
        assert_eq!(Ipv4Prefix::from_arg("10.0.0.0/255.0.0.0").unwrap().len, 8);
        assert!(Ipv4Prefix::from_arg("10.0.0.0/33").is_err());
        assert_eq!(u16::from_arg("0x10").unwrap(), 16);
    }
}
