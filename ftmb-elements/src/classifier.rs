//! Classification: `Classifier` (byte patterns), `IPClassifier` and
//! `IPFilter` (the tcpdump-like expression language of [`crate::ipfilter`]).

use crate::ipfilter::{
    parse_classifier, parse_expr, parse_filter_rule, ClassifierPattern, FilterAction, FilterError,
    IpExpr,
};
use ftmb_core::element::element;
use ftmb_core::{Args, Built, ConfigError, Ctx, Element, InitCtx, Out, Packet, Ports, Span};

fn filter_error(class: &str, e: FilterError, text: &str, span: Span) -> ConfigError {
    // The argument's text is the trimmed source slice when no `$VAR` was
    // substituted: then the error can point inside it.
    let inner = if span.end - span.start == text.len() {
        Span {
            start: span.start + e.span.start.min(text.len()),
            end: span.start
                + e.span
                    .end
                    .min(text.len())
                    .max(e.span.start.min(text.len()) + 1),
        }
    } else {
        span
    };
    ConfigError::new(format!("{class}: {}", e.message), inner)
}

/// A test a classifying element applies to each packet.
pub trait Matcher: Send + 'static {
    /// The bytes of `pkt` the test reads (once per packet).
    fn bytes(pkt: &Packet) -> &[u8];
    /// Whether those bytes match.
    fn test(&self, bytes: &[u8]) -> bool;
}

/// A byte pattern tests the packet from its start.
impl Matcher for ClassifierPattern {
    #[inline]
    fn bytes(pkt: &Packet) -> &[u8] {
        pkt.data()
    }
    #[inline]
    fn test(&self, bytes: &[u8]) -> bool {
        self.matches(bytes)
    }
}

/// An IP expression tests the IP header (see [`IpClassifier`]).
impl Matcher for IpExpr {
    #[inline]
    fn bytes(pkt: &Packet) -> &[u8] {
        pkt.ip_or_data()
    }
    #[inline]
    fn test(&self, bytes: &[u8]) -> bool {
        self.matches(bytes)
    }
}

/// One input, one output per test: each packet goes to the output of the
/// first test it matches; one matching none is dropped, counted under
/// `miss`.
pub struct FirstMatch<M> {
    tests: Vec<M>,
    miss: &'static str,
}

impl<M: Matcher> Element for FirstMatch<M> {
    fn ports(&self) -> Ports {
        Ports::fixed(1, self.tests.len())
    }
    #[inline]
    fn push(&mut self, _ctx: &mut Ctx, _port: usize, pkt: Packet, out: &mut Out) {
        let bytes = M::bytes(&pkt);
        match self.tests.iter().position(|t| t.test(bytes)) {
            Some(i) => out.push(i, pkt),
            None => out.drop(pkt, self.miss),
        }
    }
}

/// Parse every remaining argument of `class` with `parse`; at least one
/// (else `none` is the error).
fn parse_all<T>(
    a: &mut Args,
    class: &str,
    parse: fn(&str) -> Result<T, FilterError>,
    none: &str,
) -> Result<Vec<T>, ConfigError> {
    let mut v = Vec::new();
    for (text, span) in a.rest_raw() {
        v.push(parse(&text).map_err(|e| filter_error(class, e, &text, span))?);
    }
    if v.is_empty() {
        return Err(a.error(none));
    }
    Ok(v)
}

/// `Classifier(PATTERN, ...)`: send each packet to the output of the first
/// byte pattern it matches (`12/0800`, `33/02%12`, `!12/0800`, `-`).
///
/// # Ports
/// One input, one output per pattern. A packet matching no pattern is
/// dropped (counted).
///
/// # Shared state
/// None.
pub type Classifier = FirstMatch<ClassifierPattern>;

pub(crate) fn build_classifier(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let tests = parse_all(
        a,
        "Classifier",
        parse_classifier,
        "needs at least one pattern",
    )?;
    element(Classifier {
        tests,
        miss: "no pattern matched",
    })
}

/// `IPClassifier(EXPR, ...)`: send each IP packet to the output of the
/// first expression it matches (Click's language: `src net 10.0.0.0/8 and
/// (tcp or udp)`, `dst port 80`, `-`, ...).
///
/// Tests apply to the IP header given by the network-header annotation
/// (set by `CheckIPHeader` or `FromDump(FORCE_IP true)`), or to the packet
/// start when the annotation is unset.
///
/// # Ports
/// One input, one output per expression. A packet matching none is dropped
/// (counted).
///
/// # Shared state
/// None.
pub type IpClassifier = FirstMatch<IpExpr>;

pub(crate) fn build_ip_classifier(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let tests = parse_all(
        a,
        "IPClassifier",
        parse_expr,
        "needs at least one expression",
    )?;
    element(IpClassifier {
        tests,
        miss: "no expression matched",
    })
}

/// `IPFilter(ACTION EXPR, ...)`: rules `allow EXPR`, `deny EXPR` / `drop
/// EXPR`, `N EXPR` (to output N), first match wins; a packet matching no
/// rule is dropped.
///
/// # Ports
/// One input; outputs: 1, or as many as the highest `N` + 1.
///
/// # Shared state
/// None.
pub struct IpFilter {
    rules: Vec<(FilterAction, IpExpr)>,
    nout: usize,
}

impl Element for IpFilter {
    fn ports(&self) -> Ports {
        Ports {
            inputs: (1, 1),
            outputs: (1, self.nout),
        }
    }
    #[inline]
    fn push(&mut self, _ctx: &mut Ctx, _port: usize, pkt: Packet, out: &mut Out) {
        let ip = pkt.ip_or_data();
        match self
            .rules
            .iter()
            .find(|(_, e)| e.matches(ip))
            .map(|(a, _)| *a)
        {
            Some(FilterAction::Allow) => out.push(0, pkt),
            Some(FilterAction::Port(n)) => out.push(n, pkt),
            Some(FilterAction::Deny) => out.drop(pkt, "denied"),
            None => out.drop(pkt, "no rule matched"),
        }
    }
}

pub(crate) fn build_ip_filter(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let rules: Vec<_> = a
        .rest_raw()
        .into_iter()
        .map(|(text, span)| {
            parse_filter_rule(&text).map_err(|e| filter_error("IPFilter", e, &text, span))
        })
        .collect::<Result<_, _>>()?;
    let nout = rules
        .iter()
        .map(|(a, _)| match a {
            FilterAction::Port(n) => n + 1,
            _ => 1,
        })
        .max()
        .unwrap_or(1);
    element(IpFilter { rules, nout })
}
