//! Statement-level grammar (winnow) producing an AST with source spans.

use std::rc::Rc;

use winnow::combinator::{alt, repeat};
use winnow::error::{ErrMode, ParserError};
use winnow::stream::{Location, Stream};
use winnow::token::{take_till, take_while};
use winnow::{LocatingSlice, Parser};

use super::args::{scan_args, ScanError};
use super::ast::Span;
use super::error::ConfigError;

/// Maximum nesting of `elementclass` bodies accepted by the parser.
const MAX_NESTING: usize = 64;

/// An identifier and where it was written.
#[derive(Clone, Debug)]
pub(super) struct Ident {
    pub name: String,
    pub span: Span,
}

/// A port number in brackets.
#[derive(Clone, Copy, Debug)]
pub(super) struct Port {
    pub num: usize,
    pub span: Span,
}

/// An element occurrence in a connection chain.
#[derive(Clone, Debug)]
pub(super) enum ElemKind {
    /// `name :: Class(args)`.
    Decl { name: Ident, class: Ident },
    /// `name` or `Class(args)`.
    Ref(Ident),
}

/// One endpoint of a chain: `[in] element [out]`.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    pub in_port: Option<Port>,
    pub kind: ElemKind,
    /// Span of the text inside the parentheses, if any.
    pub args: Option<Span>,
    pub out_port: Option<Port>,
    /// From the first to the last token of the endpoint (ports included).
    pub span: Span,
}

/// A compound element class definition.
#[derive(Debug)]
pub(super) struct CompoundDef {
    pub name: Ident,
    /// Formal parameters (names without `$`).
    pub formals: Vec<Ident>,
    pub stmts: Vec<Stmt>,
}

/// A statement.
#[derive(Debug)]
pub(super) enum Stmt {
    /// `a -> b -> c` (possibly a single element).
    Chain(Vec<Endpoint>),
    /// `a, b :: Class(args)`.
    MultiDecl {
        names: Vec<Ident>,
        class: Ident,
        args: Option<Span>,
    },
    /// `elementclass Name { ... }`.
    Compound(Rc<CompoundDef>),
    /// `elementclass Name Existing`.
    Synonym { name: Ident, target: Ident },
    /// `define(...)`, with the span of the text inside the parentheses.
    Define { keyword: Span, args: Span },
    /// `require(...)`.
    Require,
}

type In<'s> = LocatingSlice<&'s str>;

/// Parser error: a backtrack position, or (when cut) a full [`ConfigError`].
#[derive(Debug)]
pub(super) struct PErr {
    pos: usize,
    err: Option<ConfigError>,
}

impl<'s> ParserError<In<'s>> for PErr {
    type Inner = Self;

    fn from_input(input: &In<'s>) -> Self {
        PErr {
            pos: input.current_token_start(),
            err: None,
        }
    }

    fn into_inner(self) -> Result<Self::Inner, Self> {
        Ok(self)
    }
}

type PResult<T> = Result<T, ErrMode<PErr>>;

fn cut<T>(err: ConfigError) -> PResult<T> {
    Err(ErrMode::Cut(PErr {
        pos: err.span.start,
        err: Some(err),
    }))
}

fn backtrack<T>(i: &In<'_>) -> PResult<T> {
    Err(ErrMode::Backtrack(PErr::from_input(i)))
}

/// Describes the next token for "found ..." messages, with its span.
fn found(i: &In<'_>) -> (String, Span) {
    let s: &str = i;
    let pos = i.current_token_start();
    let n = ident_len(s);
    if n > 0 {
        return (format!("`{}`", &s[..n]), Span::new(pos, pos + n));
    }
    if s.starts_with("->") || s.starts_with("::") {
        return (format!("`{}`", &s[..2]), Span::new(pos, pos + 2));
    }
    match s.chars().next() {
        None => {
            let pos = eof_pos(i);
            ("end of input".into(), Span::new(pos, pos))
        }
        Some(c) => (
            format!("`{}`", c.escape_debug()),
            Span::new(pos, pos + c.len_utf8()),
        ),
    }
}

/// Where to report an end-of-input error: just after the last token
/// (trailing whitespace skipped), so the location is on a visible line.
fn eof_pos(i: &In<'_>) -> usize {
    let mut j = *i;
    j.reset_to_start();
    let all: &str = &j;
    all.trim_end().len()
}

/// A cut "expected X, found Y" error at the current position.
fn expected<T>(i: &In<'_>, what: &str) -> PResult<T> {
    let (f, span) = found(i);
    cut(ConfigError::new(
        format!("expected {what}, found {f}"),
        span,
    ))
}

/// Skips whitespace and comments (`//`, `/* */`, `#` to end of line).
fn ws(i: &mut In<'_>) -> PResult<()> {
    repeat(
        0..,
        alt((
            take_while(1.., char::is_whitespace).void(),
            ("//", take_till(0.., '\n')).void(),
            ('#', take_till(0.., '\n')).void(),
            block_comment,
        )),
    )
    .parse_next(i)
}

fn block_comment(i: &mut In<'_>) -> PResult<()> {
    let start = i.current_token_start();
    let s: &str = i;
    if !s.starts_with("/*") {
        return backtrack(i);
    }
    match s[2..].find("*/") {
        Some(k) => {
            i.next_slice(k + 4);
            Ok(())
        }
        None => cut(
            ConfigError::new("unterminated comment", Span::new(start, start + 2))
                .with_help("close the comment with `*/`"),
        ),
    }
}

/// Length of the identifier at the start of `s` (0 if none).  A `/` is part
/// of an identifier only when followed by an identifier character.
fn ident_len(s: &str) -> usize {
    let first = |c: char| c.is_alphabetic() || c == '_' || c == '@';
    let rest = |c: char| c.is_alphanumeric() || c == '_' || c == '@';
    let mut chars = s.char_indices().peekable();
    match chars.next() {
        Some((_, c)) if first(c) => {}
        _ => return 0,
    }
    let mut n = s.len();
    while let Some((k, c)) = chars.next() {
        let ok = rest(c) || (c == '/' && chars.peek().is_some_and(|&(_, d)| rest(d)));
        if !ok {
            n = k;
            break;
        }
    }
    n
}

fn ident(i: &mut In<'_>) -> PResult<Ident> {
    let start = i.current_token_start();
    let n = ident_len(i);
    if n == 0 {
        return backtrack(i);
    }
    let name = i.next_slice(n).to_string();
    Ok(Ident {
        name,
        span: Span::new(start, start + n),
    })
}

/// An identifier, or a cut error "expected {what}".
fn ident_or(i: &mut In<'_>, what: &str) -> PResult<Ident> {
    match ident(i) {
        Ok(id) => Ok(id),
        Err(ErrMode::Backtrack(_)) => expected(i, what),
        Err(e) => Err(e),
    }
}

fn starts(i: &In<'_>, p: &str) -> bool {
    let s: &str = i;
    s.starts_with(p)
}

/// Consumes `p` (known to be next) and returns its span.
fn eat(i: &mut In<'_>, p: &str) -> Span {
    let start = i.current_token_start();
    i.next_slice(p.len());
    Span::new(start, start + p.len())
}

/// `[ digits ]`, if the next token is `[`.
fn port(i: &mut In<'_>) -> PResult<Option<Port>> {
    if !starts(i, "[") {
        return Ok(None);
    }
    let open = eat(i, "[");
    ws(i)?;
    let num_start = i.current_token_start();
    let digits: &str = take_while(0.., |c: char| c.is_ascii_digit()).parse_next(i)?;
    if digits.is_empty() {
        return expected(i, "port number");
    }
    let num_span = Span::new(num_start, num_start + digits.len());
    let Ok(num) = digits.parse::<usize>() else {
        return cut(ConfigError::new("port number too large", num_span));
    };
    ws(i)?;
    if !starts(i, "]") {
        let (f, span) = found(i);
        return cut(ConfigError::new(format!("expected `]`, found {f}"), span)
            .with_label(open, "port started here"));
    }
    let close = eat(i, "]");
    Ok(Some(Port {
        num,
        span: open.to(close),
    }))
}

/// `( raw text )`, if the next token is `(`; returns the span inside.
fn args(i: &mut In<'_>) -> PResult<Option<Span>> {
    if !starts(i, "(") {
        return Ok(None);
    }
    let open = eat(i, "(");
    let rest: &str = i;
    match scan_args(rest) {
        Ok(n) => {
            i.next_slice(n + 1);
            Ok(Some(Span::new(open.end, open.end + n)))
        }
        Err(ScanError::UnterminatedString(k)) => cut(ConfigError::new(
            "unterminated string",
            Span::new(open.end + k, open.end + k + 1),
        )
        .with_label(open, "in this argument list")
        .with_help("close the string with a matching quote")),
        Err(ScanError::UnterminatedComment(k)) => cut(ConfigError::new(
            "unterminated comment",
            Span::new(open.end + k, open.end + k + 2),
        )
        .with_label(open, "in this argument list")
        .with_help("close the comment with `*/`")),
        Err(ScanError::Unclosed) => cut(ConfigError::new("unclosed `(`", open)
            .with_help("add the matching `)`; parentheses must balance")),
    }
}

/// One chain endpoint: `[port] element [port]`.
fn endpoint(i: &mut In<'_>) -> PResult<Endpoint> {
    let start = i.current_token_start();
    let in_port = port(i)?;
    ws(i)?;
    let first = ident_or(i, "element name or class")?;
    let mut end = first.span.end;
    let save = i.checkpoint();
    ws(i)?;
    let kind = if starts(i, "::") {
        eat(i, "::");
        ws(i)?;
        let class = ident_or(i, "element class after `::`")?;
        end = class.span.end;
        ElemKind::Decl { name: first, class }
    } else {
        i.reset(&save);
        ElemKind::Ref(first)
    };
    let save = i.checkpoint();
    ws(i)?;
    let args = args(i)?;
    if args.is_some() {
        end = i.current_token_start();
    } else {
        i.reset(&save);
    }
    let save = i.checkpoint();
    ws(i)?;
    let out_port = port(i)?;
    match out_port {
        Some(p) => end = p.span.end,
        None => i.reset(&save),
    }
    Ok(Endpoint {
        in_port,
        kind,
        args,
        out_port,
        span: Span::new(start, end),
    })
}

/// `endpoint (-> endpoint)*`.
fn chain(i: &mut In<'_>) -> PResult<Stmt> {
    let mut items = vec![endpoint(i)?];
    loop {
        let save = i.checkpoint();
        ws(i)?;
        if starts(i, "->") {
            eat(i, "->");
            ws(i)?;
            items.push(endpoint(i)?);
        } else {
            i.reset(&save);
            break;
        }
    }
    if let Some(p) = items.first().and_then(|e| e.in_port) {
        return cut(
            ConfigError::new("input port at the start of a connection", p.span)
                .with_help("write `x -> [N] y` to connect to input port N of `y`"),
        );
    }
    if let Some(p) = items.last().and_then(|e| e.out_port) {
        return cut(
            ConfigError::new("output port at the end of a connection", p.span)
                .with_help("write `x [N] -> y` to connect from output port N of `x`"),
        );
    }
    Ok(Stmt::Chain(items))
}

/// `elementclass Name { ... }` or `elementclass Name Existing` (after the
/// keyword).  Returns the statement and whether it needs a terminator.
fn elementclass(i: &mut In<'_>, depth: usize) -> PResult<(Stmt, bool)> {
    ws(i)?;
    let name = ident_or(i, "compound class name after `elementclass`")?;
    ws(i)?;
    if starts(i, "{") {
        let def = compound_body(i, name, depth)?;
        return Ok((Stmt::Compound(Rc::new(def)), false));
    }
    match ident(i) {
        Ok(target) => Ok((Stmt::Synonym { name, target }, true)),
        Err(ErrMode::Backtrack(_)) => expected(i, "`{` or class name"),
        Err(e) => Err(e),
    }
}

/// `{ [$a, $b |] stmts }` (at the `{`).
fn compound_body(i: &mut In<'_>, name: Ident, depth: usize) -> PResult<CompoundDef> {
    let open = eat(i, "{");
    if depth >= MAX_NESTING {
        return cut(ConfigError::new("compound classes nested too deeply", open));
    }
    ws(i)?;
    let mut formals = Vec::new();
    if starts(i, "|") {
        eat(i, "|");
    } else if starts(i, "$") {
        loop {
            let start = i.current_token_start();
            let s: &str = i;
            let Some((var, len)) = super::args::var_at(s, 0) else {
                return expected(i, "formal parameter `$name`");
            };
            let var = var.to_string();
            i.next_slice(len);
            if let Some(prev) = formals.iter().find(|f: &&Ident| f.name == var) {
                return cut(ConfigError::new(
                    format!("duplicate formal parameter `${var}`"),
                    Span::new(start, start + len),
                )
                .with_label(prev.span, "first declared here"));
            }
            formals.push(Ident {
                name: var,
                span: Span::new(start, start + len),
            });
            ws(i)?;
            if starts(i, ",") {
                eat(i, ",");
                ws(i)?;
            } else if starts(i, "|") {
                eat(i, "|");
                break;
            } else {
                return expected(i, "`,` or `|` after formal parameter");
            }
        }
    }
    let stmts = statements(i, Some(open), depth + 1)?;
    eat(i, "}");
    Ok(CompoundDef {
        name,
        formals,
        stmts,
    })
}

/// One statement (not its terminator).  Returns whether it needs `;`.
fn statement(i: &mut In<'_>, depth: usize) -> PResult<(Stmt, bool)> {
    let save = i.checkpoint();
    if starts(i, "[") {
        return Ok((chain(i)?, true));
    }
    let first = match ident(i) {
        Ok(id) => id,
        Err(ErrMode::Backtrack(_)) => {
            let (f, span) = found(i);
            let mut err = ConfigError::new(format!("expected statement, found {f}"), span);
            if starts(i, "->") {
                err = err.with_help("a connection needs an element before `->`");
            } else if starts(i, ")") {
                err = err.with_help("unbalanced parentheses: this `)` has no matching `(`");
            }
            return cut(err);
        }
        Err(e) => return Err(e),
    };
    ws(i)?;
    match first.name.as_str() {
        "elementclass" if !starts(i, "::") && !starts(i, "->") => {
            return elementclass(i, depth);
        }
        "define" | "require" if starts(i, "(") => {
            let a = args(i)?.unwrap_or_default();
            let st = if first.name == "define" {
                Stmt::Define {
                    keyword: first.span,
                    args: a,
                }
            } else {
                Stmt::Require
            };
            return Ok((st, true));
        }
        _ => {}
    }
    if starts(i, ",") {
        let mut names = vec![first];
        while starts(i, ",") {
            eat(i, ",");
            ws(i)?;
            names.push(ident_or(i, "element name after `,`")?);
            ws(i)?;
        }
        if !starts(i, "::") {
            return expected(i, "`::` after element names");
        }
        eat(i, "::");
        ws(i)?;
        let class = ident_or(i, "element class after `::`")?;
        let save = i.checkpoint();
        ws(i)?;
        let a = args(i)?;
        if a.is_none() {
            i.reset(&save);
        }
        return Ok((
            Stmt::MultiDecl {
                names,
                class,
                args: a,
            },
            true,
        ));
    }
    i.reset(&save);
    Ok((chain(i)?, true))
}

/// Statements up to end of input (top level) or `}` (compound body, `open`
/// being its `{`).
fn statements(i: &mut In<'_>, open: Option<Span>, depth: usize) -> PResult<Vec<Stmt>> {
    let mut out = Vec::new();
    loop {
        ws(i)?;
        if i.is_empty() {
            if let Some(open) = open {
                let pos = eof_pos(i);
                return cut(ConfigError::new(
                    "unexpected end of input: unclosed `{`",
                    Span::new(pos, pos),
                )
                .with_label(open, "compound class body starts here")
                .with_help("add the matching `}`"));
            }
            return Ok(out);
        }
        if open.is_some() && starts(i, "}") {
            return Ok(out);
        }
        if starts(i, ";") {
            eat(i, ";");
            continue;
        }
        let (st, needs_term) = statement(i, depth)?;
        let is_chain = matches!(st, Stmt::Chain(_));
        out.push(st);
        if !needs_term {
            continue;
        }
        ws(i)?;
        if starts(i, ";") {
            eat(i, ";");
        } else if !(i.is_empty() || (open.is_some() && starts(i, "}"))) {
            let what = if is_chain { "`;` or `->`" } else { "`;`" };
            let (f, span) = found(i);
            let mut err = ConfigError::new(format!("expected {what}, found {f}"), span);
            if starts(i, ")") {
                err = err.with_help("unbalanced parentheses: this `)` has no matching `(`");
            } else if starts(i, "}") {
                err = err.with_help("this `}` does not close any `elementclass` body");
            }
            return cut(err);
        }
    }
}

/// Parses a whole configuration into statements.
pub(super) fn parse_statements(text: &str) -> Result<Vec<Stmt>, ConfigError> {
    let mut input = LocatingSlice::new(text);
    match statements(&mut input, None, 0) {
        Ok(stmts) => Ok(stmts),
        Err(ErrMode::Backtrack(e)) | Err(ErrMode::Cut(e)) => Err(e
            .err
            .unwrap_or_else(|| ConfigError::new("syntax error", Span::new(e.pos, e.pos)))),
        Err(ErrMode::Incomplete(_)) => Err(ConfigError::new(
            "unexpected end of input",
            Span::new(text.len(), text.len()),
        )),
    }
}
