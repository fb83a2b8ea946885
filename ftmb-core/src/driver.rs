//! `DriverManager` programs: Click's script for when a router stops and what
//! it prints.
//!
//! Instructions (Click's semantics): `wait` / `pause` / `wait_stop [N]`
//! block until N stop events (a `FromDump(..., STOP true)` reaching its end
//! is one; all sources exhausted counts as every event still awaited);
//! `wait TIME` / `wait_time TIME` / `wait_for TIME` wait for TIME or until a
//! stop event; `print E.H` prints a read handler's value (or, for text not
//! starting with a letter, the text itself); `read E.H` prints `E.H:` and the
//! value to stderr; `stop` / `end` / `exit` stop the router. An empty
//! program waits for one stop event; every program ends with `stop`.

use crate::args::{Args, FromArg};
use crate::config::{unquote, ConfigError, Span};
use std::time::Duration;

/// One instruction.
#[derive(Clone, Debug, PartialEq)]
pub enum Insn {
    /// Block until this many stop events.
    WaitStop(u32),
    /// Wait this long, or until a stop event.
    WaitTime(Duration),
    /// Print a read handler (`element`, `handler`) to stdout.
    Print(String, String),
    /// Print literal text to stdout.
    PrintText(String),
    /// Print `E.H:` and the value to stderr.
    Read(String, String),
    /// Stop the router.
    Stop,
}

/// A parsed program, with the span of each instruction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriverProgram {
    /// Instructions in order; always ends with [`Insn::Stop`].
    pub insns: Vec<Insn>,
    /// The span of each instruction in the configuration.
    pub spans: Vec<Span>,
}

fn split_handler(s: &str) -> Option<(String, String)> {
    let (e, h) = s.trim().rsplit_once('.')?;
    (!e.is_empty() && !h.is_empty()).then(|| (e.to_string(), h.to_string()))
}

impl DriverProgram {
    /// The implicit program of a router without `DriverManager`.
    pub fn default_program() -> DriverProgram {
        DriverProgram {
            insns: vec![Insn::WaitStop(1), Insn::Stop],
            spans: vec![Span { start: 0, end: 0 }; 2],
        }
    }

    /// Parse `DriverManager` arguments.
    pub fn parse(args: &mut Args) -> Result<DriverProgram, ConfigError> {
        let mut p = DriverProgram::default();
        for (text, span) in args.rest_raw() {
            let (word, rest) = match text.split_once(char::is_whitespace) {
                Some((w, r)) => (w, r.trim()),
                None => (text.as_str(), ""),
            };
            let bad = |m: String| ConfigError::new(format!("DriverManager: {m}"), span);
            let insn = match word {
                "wait" | "pause" | "wait_stop" | "wait_step" if rest.is_empty() => {
                    Insn::WaitStop(1)
                }
                "pause" | "wait_stop" | "wait_step" => {
                    Insn::WaitStop(u32::from_arg(rest).map_err(|e| bad(format!("{word}: {e}")))?)
                }
                "wait" | "wait_time" | "wait_for" => Insn::WaitTime(
                    Duration::from_arg(rest).map_err(|e| bad(format!("{word}: {e}")))?,
                ),
                "print" | "printn" | "printq" | "printnq" => {
                    if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '@') {
                        let (e, h) = split_handler(rest).ok_or_else(|| {
                            bad(format!("print: `{rest}` is not ELEMENT.HANDLER"))
                        })?;
                        Insn::Print(e, h)
                    } else {
                        Insn::PrintText(unquote(rest))
                    }
                }
                "read" | "readq" => {
                    let (e, h) = split_handler(rest)
                        .ok_or_else(|| bad(format!("read: `{rest}` is not ELEMENT.HANDLER")))?;
                    Insn::Read(e, h)
                }
                "stop" | "end" | "exit" => Insn::Stop,
                other => {
                    return Err(bad(format!("unknown instruction `{other}`")).with_help(
                        "supported: wait, wait TIME, wait_stop N, pause, print E.H, read E.H, stop"
                            .to_string(),
                    ))
                }
            };
            p.insns.push(insn);
            p.spans.push(span);
        }
        if p.insns.is_empty() {
            p.insns.push(Insn::WaitStop(1));
            p.spans.push(args.span());
        }
        if p.insns.last() != Some(&Insn::Stop) {
            p.insns.push(Insn::Stop);
            p.spans.push(args.span());
        }
        Ok(p)
    }

    /// Every `(element, handler)` the program reads, with its span, for
    /// checking at graph build.
    pub fn handler_refs(&self) -> Vec<(&str, &str, Span)> {
        self.insns
            .iter()
            .zip(&self.spans)
            .filter_map(|(i, s)| match i {
                Insn::Print(e, h) | Insn::Read(e, h) => Some((e.as_str(), h.as_str(), *s)),
                _ => None,
            })
            .collect()
    }
}
