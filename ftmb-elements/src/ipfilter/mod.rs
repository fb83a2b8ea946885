//! Click-compatible packet classification languages.
//!
//! This module implements the pattern languages of Click's `IPClassifier`,
//! `IPFilter` and `Classifier` elements:
//!
//! * [`parse_expr`] parses an IP expression (tcpdump-like, as in
//!   `IPClassifier`) into an [`IpExpr`], compiled to a flat branch program;
//!   [`IpExpr::matches`] tests a packet starting at its IPv4 header.
//! * [`parse_filter_rule`] parses an `IPFilter` rule (`allow EXPR`,
//!   `deny EXPR`, `drop EXPR`, `N EXPR`).
//! * [`parse_classifier`] parses a `Classifier` pattern (`12/0800 !20/0001%00ff`)
//!   into a [`ClassifierPattern`].
//!
//! Matching never panics and never allocates: a test that needs bytes that are
//! not in the packet is false.
//!
//! # IP expression grammar
//!
//! ```text
//! expr      ::= term (("or" | "||") term)*
//! term      ::= factor (["and" | "&&"] factor)*      juxtaposition means "and"
//! factor    ::= ("not" | "!") factor
//!             | "(" expr ")"
//!             | "true" | "false" | "-" | "any" | "all"
//!             | primitive
//! primitive ::= qual* ["[" POS [":" LEN] "]"] ["&" MASK] [relop] [data]
//! qual      ::= "src" | "dst" | "src or dst" | "src and dst" | "ip" | "not"
//!             | PROTO                                 tcp, udp, icmp, igmp, ...
//!             | TYPE                                  host, net, port, proto,
//!                   vers, hl, id, len, tos, dscp, ttl, frag, unfrag, ect, ce,
//!                   opt, win, flags, type, code
//! relop     ::= "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
//! data      ::= NUMBER | LO-HI | ADDR | ADDR/LEN | ADDR/MASK | ADDR "mask" MASK
//!             | NAME                                  port, protocol, TCP flag,
//!                                                     or ICMP type name
//! ```
//!
//! `and` binds tighter than `or`. Numbers are decimal or `0x` hexadecimal.
//! Primitives (following Click's `IPClassifier` documentation):
//!
//! | primitive | meaning |
//! |---|---|
//! | `[SD] host ADDR` | source and/or destination address (`SD` defaults to `src or dst`) |
//! | `[SD] net ADDR/LEN`, `net ADDR mask MASK` | address prefix |
//! | `[SD] [tcp\|udp] port PORT` | TCP/UDP port (number, name, `LO-HI` range, or relation); without `tcp`/`udp` either is accepted |
//! | `ip proto PROTO`, `tcp`, `udp`, `icmp`, ... | IP protocol |
//! | `ip vers`, `ip hl`, `ip id`, `ip tos`, `ip dscp`, `ip ttl`, `ip len` `[relop] N` | IPv4 header fields (`hl` in 32-bit words, as in the header) |
//! | `ip frag`, `ip unfrag` | fragment (MF set or offset != 0) / not a fragment |
//! | `ip ect [N]`, `ip ce` | ECN capable (ECN bits != 0, or == N) / congestion experienced |
//! | `tcp opt FLAG` | the TCP flag(s) are set (`syn`, `fin`, `ack`, `rst`, `psh`, `urg`, or a number) |
//! | `tcp flags FLAG`, `tcp flags [relop] N` | `tcp flags syn` = `tcp opt syn`; with a number, compares the whole flags byte |
//! | `tcp win N` | TCP window |
//! | `icmp type TYPE`, `icmp code N` | ICMP type (number or name: `echo`, `echo-reply`, `unreachable`, ...) and code |
//! | `ip[POS:LEN]`, `transp[POS:LEN]`, `tcp[..]`, `udp[..]`, `icmp[..]` `[& MASK] [relop] N` | raw 1-4 byte field in the IP or transport header |
//!
//! Keywords may be omitted when they can be inferred, as in Click:
//! `10.0.0.1` means `host 10.0.0.1`, `10.0.0.0/8` means `net 10.0.0.0/8`,
//! `syn` means `tcp opt syn`, `http` means `port http`, `icmp echo` means
//! `icmp type echo`, and a bare value repeats the previous primitive's
//! keyword and qualifiers: `src host 10.0.0.1 or 10.0.0.2`,
//! `tcp dst port 80 or 443`, `ip ttl 1 or 2`.
//!
//! Transport-layer tests (ports, TCP flags, ICMP type, `transp[...]`) are
//! false on non-first fragments and on packets of other protocols. Packets
//! whose IP version is not 4 only satisfy `true`-like tests and `ip vers`.

mod ast;
mod classifier;
mod compile;
mod lexer;
mod names;
mod parser;
#[cfg(test)]
mod tests;

pub use classifier::{parse_classifier, ClassifierPattern};

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// A parse error with the byte range of the offending text in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    /// Human-readable description, e.g. ``unknown keyword `hots` ``.
    pub message: String,
    /// Byte offsets into the parsed string.
    pub span: Range<usize>,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (at bytes {}..{})",
            self.message, self.span.start, self.span.end
        )
    }
}

impl std::error::Error for FilterError {}

/// A compiled IP expression (Click `IPClassifier`/`IPFilter` syntax).
#[derive(Clone, Debug)]
pub struct IpExpr {
    node: ast::Node,
    prog: compile::Program,
}

impl IpExpr {
    fn new(node: ast::Node) -> IpExpr {
        let prog = compile::Program::compile(&node);
        IpExpr { node, prog }
    }

    /// Tests a packet. `ip` starts at the IP header and may be truncated or
    /// garbage; tests on missing bytes are false. Never panics or allocates.
    #[inline]
    pub fn matches(&self, ip: &[u8]) -> bool {
        self.prog.run(ip)
    }

    /// True if the expression matches every packet (e.g. `-`, `true`).
    pub fn is_always_true(&self) -> bool {
        self.prog.constant() == Some(true)
    }

    /// True if the expression matches no packet (e.g. `false`).
    pub fn is_always_false(&self) -> bool {
        self.prog.constant() == Some(false)
    }

    /// Number of instructions in the compiled program.
    pub fn program_len(&self) -> usize {
        self.prog.len()
    }
}

/// Structural equality of the parsed expressions (before compilation).
impl PartialEq for IpExpr {
    fn eq(&self, other: &IpExpr) -> bool {
        self.node == other.node
    }
}

impl Eq for IpExpr {}

impl FromStr for IpExpr {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<IpExpr, FilterError> {
        parse_expr(s)
    }
}

/// Parses and compiles an IP expression such as
/// `src net 10.0.0.0/8 and tcp dst port 80 or 443`.
pub fn parse_expr(src: &str) -> Result<IpExpr, FilterError> {
    let toks = lexer::tokenize(src)?;
    let node = parser::Parser::new(src.len(), &toks, 0).parse_all()?;
    Ok(IpExpr::new(node))
}

/// The action of an `IPFilter` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterAction {
    /// `allow`: emit on output 0.
    Allow,
    /// `deny` or `drop`: drop the packet.
    Deny,
    /// `N`: emit on output N.
    Port(usize),
}

/// Parses an `IPFilter` rule: `allow EXPR`, `deny EXPR`, `drop EXPR` or
/// `N EXPR`. A missing expression (e.g. plain `allow`) matches everything,
/// as does `-`, `any` or `all`.
pub fn parse_filter_rule(src: &str) -> Result<(FilterAction, IpExpr), FilterError> {
    let toks = lexer::tokenize(src)?;
    let Some(first) = toks.first() else {
        return Err(FilterError {
            message: "empty rule".to_string(),
            span: 0..src.len(),
        });
    };
    let action = match (first.kind, first.text) {
        (lexer::TokKind::Word, "allow") => FilterAction::Allow,
        (lexer::TokKind::Word, "deny" | "drop") => FilterAction::Deny,
        (lexer::TokKind::Word, w) => {
            match names::parse_int(w).and_then(|n| usize::try_from(n).ok()) {
                Some(n) => FilterAction::Port(n),
                None => {
                    return Err(FilterError {
                        message: format!(
                            "unknown action `{w}` (expected `allow`, `deny`, `drop` or an output number)"
                        ),
                        span: first.span.clone(),
                    });
                }
            }
        }
        _ => {
            return Err(FilterError {
                message: format!("expected action, found `{}`", first.text),
                span: first.span.clone(),
            });
        }
    };
    if toks.len() == 1 {
        return Ok((action, IpExpr::new(ast::Node::True)));
    }
    let node = parser::Parser::new(src.len(), &toks, 1).parse_all()?;
    Ok((action, IpExpr::new(node)))
}
