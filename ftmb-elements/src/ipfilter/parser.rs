//! Recursive-descent parser for the IP expression language, following the
//! structure of Click's `IPFilter::parse_expr` / `parse_factor`.

use super::ast::{Base, Cmp, Leaf, Node, ProtoReq};
use super::lexer::{Tok, TokKind};
use super::names;
use super::FilterError;
use std::ops::Range;

type PResult<T> = Result<T, FilterError>;

fn err<T>(message: impl Into<String>, span: Range<usize>) -> PResult<T> {
    Err(FilterError {
        message: message.into(),
        span,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SrcDst {
    Src,
    Dst,
    Or,
    And,
}

/// Transport protocol qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TProto {
    Num(u8),
    /// Implied by `port` without `tcp`/`udp`.
    TcpUdp,
    /// `transp[...]`: any transport protocol.
    Transp,
}

impl TProto {
    fn req(self) -> ProtoReq {
        match self {
            TProto::Num(n) => ProtoReq::Is(n),
            TProto::TcpUdp => ProtoReq::TcpUdp,
            TProto::Transp => ProtoReq::Any,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldKind {
    Vers,
    Hl,
    Id,
    Len,
    Tos,
    Dscp,
    Ttl,
    TcpWin,
    TcpFlags,
    IcmpType,
    IcmpCode,
}

struct FieldSpec {
    base: Base,
    proto: Option<u8>,
    off: u16,
    width: u8,
    shift: u8,
    mask: u32,
}

impl FieldKind {
    fn spec(self) -> FieldSpec {
        let (base, proto, off, width, shift, mask) = match self {
            FieldKind::Vers => (Base::Raw, None, 0, 1, 4, 0x0f),
            FieldKind::Hl => (Base::Ip, None, 0, 1, 0, 0x0f),
            FieldKind::Tos => (Base::Ip, None, 1, 1, 0, 0xff),
            FieldKind::Dscp => (Base::Ip, None, 1, 1, 2, 0x3f),
            FieldKind::Len => (Base::Ip, None, 2, 2, 0, 0xffff),
            FieldKind::Id => (Base::Ip, None, 4, 2, 0, 0xffff),
            FieldKind::Ttl => (Base::Ip, None, 8, 1, 0, 0xff),
            FieldKind::TcpFlags => (Base::Transp, Some(6), 13, 1, 0, 0xff),
            FieldKind::TcpWin => (Base::Transp, Some(6), 14, 2, 0, 0xffff),
            FieldKind::IcmpType => (Base::Transp, Some(1), 0, 1, 0, 0xff),
            FieldKind::IcmpCode => (Base::Transp, Some(1), 1, 1, 0, 0xff),
        };
        FieldSpec {
            base,
            proto,
            off,
            width,
            shift,
            mask,
        }
    }
}

/// Primitive type, set by a type keyword or inferred from the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Host,
    Net,
    Port,
    Proto,
    TcpOpt,
    Frag,
    Unfrag,
    Ect,
    Ce,
    Field(FieldKind),
    /// `ip[OFF:LEN]`, `tcp[OFF:LEN]`, `transp[OFF:LEN]`, ...
    Raw {
        off: u16,
        width: u8,
    },
}

fn type_word(w: &str) -> Option<Ty> {
    Some(match w {
        "host" => Ty::Host,
        "net" => Ty::Net,
        "port" => Ty::Port,
        "proto" => Ty::Proto,
        "opt" => Ty::TcpOpt,
        "frag" => Ty::Frag,
        "unfrag" => Ty::Unfrag,
        "ect" => Ty::Ect,
        "ce" => Ty::Ce,
        "vers" => Ty::Field(FieldKind::Vers),
        "hl" => Ty::Field(FieldKind::Hl),
        "id" => Ty::Field(FieldKind::Id),
        "len" => Ty::Field(FieldKind::Len),
        "tos" => Ty::Field(FieldKind::Tos),
        "dscp" => Ty::Field(FieldKind::Dscp),
        "ttl" => Ty::Field(FieldKind::Ttl),
        "win" => Ty::Field(FieldKind::TcpWin),
        "flags" => Ty::Field(FieldKind::TcpFlags),
        "type" => Ty::Field(FieldKind::IcmpType),
        "code" => Ty::Field(FieldKind::IcmpCode),
        _ => return None,
    })
}

fn proto_word(w: &str) -> Option<TProto> {
    if w == "transp" {
        return Some(TProto::Transp);
    }
    names::proto(w).map(TProto::Num)
}

/// Click's `Primitive` state: what the qualifiers said.
#[derive(Clone, Copy, Debug, Default)]
struct Prim {
    ty: Option<Ty>,
    srcdst: Option<SrcDst>,
    proto: Option<TProto>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameKind {
    Proto,
    Port,
    TcpOpt,
    IcmpType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Data {
    None,
    Int(u32),
    Range(u32, u32),
    Addr(u32),
    Net(u32, u32),
    Name(NameKind, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RelOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A primitive's type keyword (or `[...]`) and where it stands.
type TypeKeyword = (Range<usize>, String);

/// Token spans gathered while parsing one primitive, for error reporting.
struct Spans {
    whole: Range<usize>,
    type_kw: Option<TypeKeyword>,
    /// Span of the data token, or of the token where data was expected.
    data: Option<Range<usize>>,
}

impl Spans {
    /// Where to point when the value is missing or wrong.
    fn value(&self) -> Range<usize> {
        self.data
            .clone()
            .or_else(|| self.type_kw.as_ref().map(|(s, _)| s.clone()))
            .unwrap_or_else(|| self.whole.clone())
    }

    fn kw(&self) -> String {
        self.type_kw
            .as_ref()
            .map_or_else(|| "primitive".to_string(), |(_, t)| t.clone())
    }
}

fn lookup_name(
    word: &str,
    ty: Option<Ty>,
    proto: Option<TProto>,
) -> Result<Option<(NameKind, u32)>, String> {
    let p = names::proto(word);
    let po = names::port(word);
    let o = names::tcp_opt(word);
    let ic = names::icmp_type(word);
    if p.is_none() && po.is_none() && o.is_none() && ic.is_none() {
        return Ok(None);
    }
    let any = ty.is_none();
    let port_proto = matches!(
        proto,
        None | Some(TProto::Num(6)) | Some(TProto::Num(17)) | Some(TProto::TcpUdp)
    );
    let tcp_proto = matches!(proto, None | Some(TProto::Num(6)));
    let icmp_proto = matches!(proto, None | Some(TProto::Num(1)));
    let cands = [
        p.filter(|_| any || ty == Some(Ty::Proto))
            .map(|v| (NameKind::Proto, u32::from(v))),
        po.filter(|_| (any || ty == Some(Ty::Port)) && port_proto)
            .map(|v| (NameKind::Port, u32::from(v))),
        o.filter(|_| {
            (any || ty == Some(Ty::TcpOpt) || ty == Some(Ty::Field(FieldKind::TcpFlags)))
                && tcp_proto
        })
        .map(|v| (NameKind::TcpOpt, u32::from(v))),
        ic.filter(|_| (any || ty == Some(Ty::Field(FieldKind::IcmpType))) && icmp_proto)
            .map(|v| (NameKind::IcmpType, u32::from(v))),
    ];
    let mut found = cands.iter().flatten();
    match (found.next(), found.next()) {
        (Some(&c), None) => Ok(Some(c)),
        (Some(_), Some(_)) => Err(format!(
            "`{word}` is ambiguous here; qualify it (e.g. `port {word}` or `icmp type {word}`)"
        )),
        _ => Err(format!("`{word}` is meaningless here")),
    }
}

fn is_and(t: &Tok<'_>) -> bool {
    t.kind == TokKind::AndAnd || (t.kind == TokKind::Word && t.text == "and")
}

fn is_or(t: &Tok<'_>) -> bool {
    t.kind == TokKind::OrOr || (t.kind == TokKind::Word && t.text == "or")
}

fn is_stop(t: &Tok<'_>) -> bool {
    t.kind == TokKind::RParen || is_or(t)
}

fn relop(kind: TokKind) -> Option<RelOp> {
    Some(match kind {
        TokKind::Eq => RelOp::Eq,
        TokKind::Ne => RelOp::Ne,
        TokKind::Lt => RelOp::Lt,
        TokKind::Le => RelOp::Le,
        TokKind::Gt => RelOp::Gt,
        TokKind::Ge => RelOp::Ge,
        _ => return None,
    })
}

pub(super) struct Parser<'s, 't> {
    src_len: usize,
    toks: &'t [Tok<'s>],
    pos: usize,
    /// The previous primitive, for Click's "omitted keyword repeats" rule.
    prev: Prim,
    /// Current nesting of factors (parentheses and negations).
    depth: usize,
}

/// Maximum nesting of parentheses and negations, to bound recursion.
const MAX_DEPTH: usize = 200;

impl<'s, 't> Parser<'s, 't> {
    pub(super) fn new(src_len: usize, toks: &'t [Tok<'s>], start: usize) -> Self {
        Parser {
            src_len,
            toks,
            pos: start,
            prev: Prim::default(),
            depth: 0,
        }
    }

    fn peek(&self) -> Option<&'t Tok<'s>> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, k: usize) -> Option<&'t Tok<'s>> {
        self.toks.get(self.pos + k)
    }

    fn at_stop(&self) -> bool {
        self.peek().is_none_or(is_stop)
    }

    fn end_span(&self) -> Range<usize> {
        self.src_len..self.src_len
    }

    /// Parses the remaining tokens as one complete expression.
    pub(super) fn parse_all(&mut self) -> PResult<Node> {
        if self.peek().is_none() {
            return err("empty expression", 0..self.src_len);
        }
        let n = self.parse_or()?;
        match self.peek() {
            None => Ok(n),
            Some(t) if t.kind == TokKind::RParen => err("unbalanced parenthesis", t.span.clone()),
            Some(t) => err(format!("unexpected `{}`", t.text), t.span.clone()),
        }
    }

    fn parse_or(&mut self) -> PResult<Node> {
        let mut terms = vec![self.parse_term()?];
        while let Some(t) = self.peek() {
            if !is_or(t) {
                break;
            }
            self.pos += 1;
            if self.at_stop() {
                return err(
                    format!("expected expression after `{}`", t.text),
                    t.span.clone(),
                );
            }
            terms.push(self.parse_term()?);
        }
        Ok(Node::or(terms))
    }

    /// `term ::= factor (["and" | "&&"] factor)*` (juxtaposition means `and`).
    fn parse_term(&mut self) -> PResult<Node> {
        let mut facs = Vec::new();
        while !self.at_stop() {
            facs.push(self.parse_factor()?);
            if let Some(t) = self.peek().filter(|t| is_and(t)) {
                self.pos += 1;
                if self.at_stop() {
                    return err(
                        format!("expected expression after `{}`", t.text),
                        t.span.clone(),
                    );
                }
            }
        }
        if facs.is_empty() {
            return match self.peek() {
                Some(t) if t.kind == TokKind::RParen => {
                    err("unbalanced parenthesis", t.span.clone())
                }
                Some(t) => err(
                    format!("expected expression before `{}`", t.text),
                    t.span.clone(),
                ),
                None => err("expected expression", self.end_span()),
            };
        }
        Ok(Node::and(facs))
    }

    fn parse_factor(&mut self) -> PResult<Node> {
        if self.depth >= MAX_DEPTH {
            let span = self.peek().map_or(self.end_span(), |t| t.span.clone());
            return err("expression nested too deeply", span);
        }
        self.depth += 1;
        let r = self.parse_factor_inner();
        self.depth -= 1;
        r
    }

    fn parse_factor_inner(&mut self) -> PResult<Node> {
        let Some(t) = self.peek() else {
            return err("expected expression", self.end_span());
        };
        match t.kind {
            TokKind::Word => match t.text {
                "true" | "-" | "any" | "all" => {
                    self.pos += 1;
                    return Ok(Node::True);
                }
                "false" => {
                    self.pos += 1;
                    return Ok(Node::False);
                }
                "not" => return self.parse_not(t),
                _ => {}
            },
            TokKind::Bang => return self.parse_not(t),
            TokKind::LParen => {
                self.pos += 1;
                match self.peek() {
                    None => return err("unbalanced parenthesis", t.span.clone()),
                    Some(c) if c.kind == TokKind::RParen => {
                        return err("empty parentheses", t.span.start..c.span.end);
                    }
                    _ => {}
                }
                let e = self.parse_or()?;
                return match self.peek() {
                    Some(c) if c.kind == TokKind::RParen => {
                        self.pos += 1;
                        Ok(e)
                    }
                    None => err("unbalanced parenthesis", t.span.clone()),
                    Some(c) => err(format!("unexpected `{}`", c.text), c.span.clone()),
                };
            }
            _ => {}
        }
        self.parse_primitive()
    }

    fn parse_not(&mut self, t: &Tok<'_>) -> PResult<Node> {
        self.pos += 1;
        if self.at_stop() || self.peek().is_some_and(is_and) {
            return err(
                format!("expected expression after `{}`", t.text),
                t.span.clone(),
            );
        }
        Ok(Node::Not(Box::new(self.parse_factor()?)))
    }

    /// `primitive ::= quals [ '[' POS[:LEN] ']' ] [ '&' MASK ] [relop] [data]`
    fn parse_primitive(&mut self) -> PResult<Node> {
        let first = self.pos;
        let start = self.peek().map_or(self.src_len, |t| t.span.start);
        let mut prim = Prim::default();
        let (negated, mut type_kw) = self.parse_qualifiers(&mut prim)?;
        if self.pos != first {
            self.prev = Prim::default();
        }
        if let Some(raw) = self.parse_raw_field(&mut prim, first, start)? {
            type_kw = Some(raw);
        }
        let mask = self.parse_mask()?;
        let op = self.parse_relop();
        let (data, data_span) = self.parse_data(&prim)?;
        if let Some((_, o)) = op.filter(|_| data == Data::None) {
            let at = data_span.clone().unwrap_or_else(|| o.span.clone());
            return err(format!("expected value after `{}`", o.text), at);
        }
        if self.pos == first {
            return self.not_a_primitive();
        }
        let end = self
            .pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or(start, |t| t.span.end);
        let spans = Spans {
            whole: start..end,
            type_kw,
            data: data_span,
        };
        let op = op.map_or(RelOp::Eq, |(o, _)| o);
        let node = self.build(prim, data, op, mask, &spans)?;
        Ok(if negated {
            Node::Not(Box::new(node))
        } else {
            node
        })
    }

    /// The qualifiers (type, protocol, `src`/`dst`, `ip`, `not`/`!`) into
    /// `prim`; returns whether the primitive is negated and the type
    /// keyword with its span.
    fn parse_qualifiers(&mut self, prim: &mut Prim) -> PResult<(bool, Option<TypeKeyword>)> {
        let mut negated = false;
        let mut type_kw = None;
        while let Some(t) = self.peek() {
            if t.kind == TokKind::Bang {
                negated = !negated;
                self.pos += 1;
                continue;
            }
            if t.kind != TokKind::Word {
                break;
            }
            let w = t.text;
            if let Some(ty) = type_word(w) {
                if prim.ty.is_some() {
                    return err("type specified twice", t.span.clone());
                }
                prim.ty = Some(ty);
                type_kw = Some((t.span.clone(), w.to_string()));
                let implied = match ty {
                    Ty::Field(f) => f.spec().proto,
                    Ty::TcpOpt => Some(6),
                    _ => None,
                };
                if let Some(p) = implied {
                    set_proto(prim, TProto::Num(p), t)?;
                }
            } else if let Some(p) = proto_word(w) {
                set_proto(prim, p, t)?;
            } else if w == "src" {
                let sd = self.src_or_src_and_dst();
                set_srcdst(prim, sd, t)?;
            } else if w == "dst" || w == "dest" {
                set_srcdst(prim, SrcDst::Dst, t)?;
            } else if w == "not" {
                negated = !negated;
            } else if w != "ip" {
                break;
            }
            self.pos += 1;
        }
        Ok((negated, type_kw))
    }

    /// At `src`: `src and dst` / `src or dst` (consumed up to the `dst`),
    /// else `src` alone.
    fn src_or_src_and_dst(&mut self) -> SrcDst {
        let pair = self
            .peek_at(1)
            .zip(self.peek_at(2))
            .filter(|(_, b)| b.kind == TokKind::Word && (b.text == "dst" || b.text == "dest"));
        if let Some((a, _)) = pair {
            if is_and(a) {
                self.pos += 2;
                return SrcDst::And;
            }
            if is_or(a) {
                self.pos += 2;
                return SrcDst::Or;
            }
        }
        SrcDst::Src
    }

    /// Optional brackets after qualifiers without a type: `ip[POS]`,
    /// `ip[POS:LEN]`, `ip[POS,POS2]`; returns the type keyword it stands
    /// for.
    fn parse_raw_field(
        &mut self,
        prim: &mut Prim,
        first: usize,
        start: usize,
    ) -> PResult<Option<TypeKeyword>> {
        let bracket_ok = self.pos > first && prim.ty.is_none();
        let Some(t) = self
            .peek()
            .filter(|t| t.kind == TokKind::LBrack && bracket_ok)
        else {
            return Ok(None);
        };
        let (off, width) = self.parse_brackets(t)?;
        prim.ty = Some(Ty::Raw { off, width });
        Ok(Some((start..t.span.end, "[...]".to_string())))
    }

    /// Optional bit mask: `& MASK`.
    fn parse_mask(&mut self) -> PResult<Option<u32>> {
        let Some(t) = self.peek().filter(|t| t.kind == TokKind::Amp) else {
            return Ok(None);
        };
        let m = self
            .peek_at(1)
            .filter(|m| m.kind == TokKind::Word)
            .and_then(|m| names::parse_int(m.text));
        match m {
            Some(0) => err("bit mask must be nonzero", t.span.clone()),
            Some(m) => {
                self.pos += 2;
                Ok(Some(m))
            }
            None => err("expected number after `&`", t.span.clone()),
        }
    }

    /// Optional relational operator, with its token.
    fn parse_relop(&mut self) -> Option<(RelOp, &'t Tok<'s>)> {
        let (t, o) = self.peek().and_then(|t| relop(t.kind).map(|o| (t, o)))?;
        self.pos += 1;
        Some((o, t))
    }

    /// Optional data: a name, number, range, address (`A mask M`) or
    /// prefix; returns it with the span of its token (or of the token
    /// where it was expected).
    fn parse_data(&mut self, prim: &Prim) -> PResult<(Data, Option<Range<usize>>)> {
        let Some(t) = self.peek() else {
            return Ok((Data::None, None));
        };
        if t.kind != TokKind::Word {
            return Ok((Data::None, Some(t.span.clone())));
        }
        let mut data = Data::None;
        let mut data_span = t.span.clone();
        let w = t.text;
        match lookup_name(w, prim.ty, prim.proto) {
            Err(msg) => return err(msg, t.span.clone()),
            Ok(Some((k, v))) => data = Data::Name(k, v),
            Ok(None) => {
                if let Some(v) = names::parse_int(w) {
                    data = Data::Int(v);
                } else if let Some(r) = parse_range(w) {
                    data = Data::Range(r.0, r.1);
                } else if let Some(a) = names::parse_addr(w) {
                    data = Data::Addr(a);
                    let m = self
                        .peek_at(1)
                        .zip(self.peek_at(2))
                        .filter(|(mk, _)| mk.kind == TokKind::Word && mk.text == "mask");
                    if let Some((_, mv)) = m {
                        let Some(m) = names::parse_addr(mv.text) else {
                            return err("expected netmask after `mask`", mv.span.clone());
                        };
                        data = Data::Net(a & m, m);
                        self.pos += 2;
                        data_span = t.span.start..mv.span.end;
                    }
                } else if let Some((a, m)) = names::parse_prefix(w) {
                    data = Data::Net(a, m);
                }
            }
        }
        if data != Data::None {
            self.pos += 1;
        }
        Ok((data, Some(data_span)))
    }

    /// The error for a primitive that consumed nothing.
    fn not_a_primitive(&self) -> PResult<Node> {
        match self.peek() {
            Some(t) if t.kind == TokKind::Word => {
                err(format!("unknown keyword `{}`", t.text), t.span.clone())
            }
            Some(t) => err(format!("unexpected `{}`", t.text), t.span.clone()),
            None => err("expected expression", self.end_span()),
        }
    }

    fn parse_brackets(&mut self, open: &Tok<'_>) -> PResult<(u16, u8)> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return err("missing `]`", open.span.clone()),
                Some(t) if t.kind == TokKind::RBrack => break,
                Some(t) => text.push_str(t.text),
            }
            self.pos += 1;
        }
        let close = self.peek().map_or(open.span.clone(), |t| t.span.clone());
        self.pos += 1;
        let whole = open.span.start..close.end;
        let parsed = if let Some((a, b)) = text.split_once(':') {
            names::parse_int(a).zip(names::parse_int(b))
        } else if let Some((a, b)) = text.split_once(',') {
            names::parse_int(a)
                .zip(names::parse_int(b))
                .and_then(|(a, b)| b.checked_sub(a).map(|d| (a, d + 1)))
        } else {
            names::parse_int(&text).map(|a| (a, 1))
        };
        let Some((off, len)) = parsed else {
            return err("expected `[POS]` or `[POS:LEN]`", whole);
        };
        if !(1..=4).contains(&len) {
            return err("LEN in `[POS:LEN]` must be between 1 and 4", whole);
        }
        let Ok(off) = u16::try_from(off) else {
            return err("POS in `[POS:LEN]` is too large", whole);
        };
        // `len` is 1..=4, so the conversion cannot fail.
        Ok((off, u8::try_from(len).unwrap_or(4)))
    }

    /// Click's `Primitive::check` + `add_exprs`: resolves the primitive
    /// against the previous one and produces its expression tree.
    fn build(
        &mut self,
        mut prim: Prim,
        data: Data,
        op: RelOp,
        mask: Option<u32>,
        sp: &Spans,
    ) -> PResult<Node> {
        let ty = match prim.ty {
            Some(t) => t,
            None => infer_type(&mut prim, self.prev, data, sp)?,
        };
        let v = Operand { data, op, mask, sp };
        let node = match ty {
            Ty::Host | Ty::Net => v.host_or_net(&mut prim, ty)?,
            Ty::Proto => v.protocol(&mut prim)?,
            Ty::Port => v.port(&mut prim)?,
            Ty::TcpOpt => v.tcp_opt(&mut prim)?,
            Ty::Frag | Ty::Unfrag | Ty::Ce => v.ip_flag(ty)?,
            Ty::Ect => v.ect()?,
            Ty::Field(f) => v.field(&mut prim, f)?,
            Ty::Raw { off, width } => v.raw(&prim, off, width)?,
        };
        prim.ty = Some(ty);
        self.prev = prim;
        Ok(node)
    }
}

/// The type of a primitive without a type keyword, from its data and the
/// previous primitive (Click: `host` for an address, `port` after a port,
/// ...); inherited qualifiers are copied into `prim`.
fn infer_type(prim: &mut Prim, prev: Prim, data: Data, sp: &Spans) -> PResult<Ty> {
    Ok(match data {
        Data::Addr(_) => {
            prim.srcdst = prim.srcdst.or(prev.srcdst);
            Ty::Host
        }
        Data::Net(..) => {
            prim.srcdst = prim.srcdst.or(prev.srcdst);
            Ty::Net
        }
        Data::Name(NameKind::TcpOpt, _) => Ty::TcpOpt,
        Data::Name(NameKind::Proto, _) => Ty::Proto,
        Data::Name(NameKind::IcmpType, _) => Ty::Field(FieldKind::IcmpType),
        Data::Name(NameKind::Port, _) => {
            prim.srcdst = prim.srcdst.or(prev.srcdst);
            prim.proto = prim.proto.or(prev.proto);
            Ty::Port
        }
        Data::Int(_) | Data::Range(..) => match prev.ty {
            Some(Ty::Port) => {
                prim.srcdst = prim.srcdst.or(prev.srcdst);
                prim.proto = prim.proto.or(prev.proto);
                Ty::Port
            }
            Some(t @ (Ty::Proto | Ty::Field(_))) => t,
            Some(t @ Ty::Raw { .. }) => {
                // The protocol is part of a raw field's identity.
                prim.proto = prim.proto.or(prev.proto);
                t
            }
            _ => {
                return err(
                    "specify a header field or `port` before this value",
                    sp.value(),
                );
            }
        },
        Data::None => {
            if prim.proto.is_some() {
                Ty::Proto
            } else {
                return err("incomplete primitive", sp.whole.clone());
            }
        }
    })
}

/// The value side of one primitive (its data, relational operator and
/// mask, and where they stand, for errors); its methods make the
/// primitive's expression tree, one per type.
struct Operand<'a> {
    data: Data,
    op: RelOp,
    mask: Option<u32>,
    sp: &'a Spans,
}

impl Operand<'_> {
    /// "expected WHAT after `KEYWORD`", at the value.
    fn no_data<T>(&self, what: &str) -> PResult<T> {
        err(
            format!("expected {what} after `{}`", self.sp.kw()),
            self.sp.value(),
        )
    }

    /// The comparison the data and operator ask for, values up to `max`.
    fn value(&self, max: u32) -> PResult<Cmp> {
        let (lo, hi) = match self.data {
            Data::Int(v) | Data::Name(_, v) => (v, v),
            Data::Range(a, b) => (a, b),
            _ => return self.no_data("value"),
        };
        let is_range = matches!(self.data, Data::Range(..));
        if is_range && !matches!(self.op, RelOp::Eq | RelOp::Ne) {
            return err(
                "relational operators can't be used with ranges",
                self.sp.value(),
            );
        }
        if matches!(self.op, RelOp::Eq | RelOp::Ne) && hi > max {
            return err(
                format!("value {hi} out of range (0-{max})"),
                self.sp.value(),
            );
        }
        Ok(match (self.op, is_range) {
            (RelOp::Eq, false) => Cmp::Eq(lo),
            (RelOp::Ne, false) => Cmp::Ne(lo),
            (RelOp::Eq, true) => Cmp::In(lo, hi),
            (RelOp::Ne, true) => Cmp::NotIn(lo, hi),
            (RelOp::Lt, _) => Cmp::Lt(lo),
            (RelOp::Le, _) => Cmp::Le(lo),
            (RelOp::Gt, _) => Cmp::Gt(lo),
            (RelOp::Ge, _) => Cmp::Ge(lo),
        })
    }

    /// A leaf testing `width` bytes at `off` from `base` (in packets of
    /// `proto`), shifted right by
    /// `shift` and masked with `fmask` (and the user's mask).
    fn leaf(
        &self,
        (base, proto): (Base, ProtoReq),
        off: u16,
        width: u8,
        shift: u8,
        fmask: u32,
        cmp: Cmp,
    ) -> Node {
        Node::Leaf(Leaf {
            base,
            proto,
            off,
            width,
            shift,
            mask: fmask & self.mask.unwrap_or(u32::MAX),
            cmp,
        })
    }

    /// `host ADDR`, `net ADDR/LEN`: the source, destination or both.
    fn host_or_net(&self, prim: &mut Prim, ty: Ty) -> PResult<Node> {
        let (addr, nmask) = match (ty, self.data) {
            (_, Data::Addr(a)) => (a, u32::MAX),
            (Ty::Net, Data::Net(a, m)) => (a, m),
            (Ty::Host, _) => return self.no_data("address"),
            _ => return self.no_data("network address"),
        };
        let m = nmask & self.mask.unwrap_or(u32::MAX);
        let cmp = match self.op {
            RelOp::Eq => Cmp::Eq(addr & m),
            RelOp::Ne => Cmp::Ne(addr & m),
            _ => {
                return err(
                    "can't use relational operators with `host` or `net`",
                    self.sp.whole.clone(),
                );
            }
        };
        let sd = *prim.srcdst.get_or_insert(SrcDst::Or);
        Ok(srcdst_node(sd, |dst| {
            let off = if dst { 16 } else { 12 };
            self.leaf((Base::Ip, ProtoReq::Any), off, 4, 0, nmask, cmp)
        }))
    }

    /// `proto P`, or a bare protocol name; remembers an exact protocol for
    /// the primitives after it.
    fn protocol(&self, prim: &mut Prim) -> PResult<Node> {
        let v = match self.data {
            Data::Int(_) | Data::Range(..) | Data::Name(NameKind::Proto, _) => {
                let conflict = match (prim.proto, self.data) {
                    (Some(TProto::Num(q)), Data::Int(v) | Data::Name(_, v)) => u32::from(q) != v,
                    _ => false,
                };
                if conflict {
                    return err("transport protocol specified twice", self.sp.whole.clone());
                }
                self.value(0xff)?
            }
            Data::None => match prim.proto {
                Some(TProto::Num(q)) => {
                    if self.mask.is_some() || self.op != RelOp::Eq {
                        return self.no_data("protocol");
                    }
                    Cmp::Eq(u32::from(q))
                }
                Some(TProto::TcpUdp | TProto::Transp) => {
                    return err("`transp` needs a `[POS:LEN]` field", self.sp.whole.clone());
                }
                None => return self.no_data("protocol"),
            },
            _ => return self.no_data("protocol"),
        };
        prim.proto = match v {
            Cmp::Eq(p) if self.mask.is_none() => u8::try_from(p).ok().map(TProto::Num),
            _ => None,
        };
        Ok(self.leaf((Base::Ip, ProtoReq::Any), 9, 1, 0, 0xff, v))
    }

    /// `port P` (TCP or UDP): the source, destination or both.
    fn port(&self, prim: &mut Prim) -> PResult<Node> {
        let p = *prim.proto.get_or_insert(TProto::TcpUdp);
        if !matches!(p, TProto::Num(6) | TProto::Num(17) | TProto::TcpUdp) {
            return err(
                "`port` needs protocol `tcp` or `udp`",
                self.sp.whole.clone(),
            );
        }
        if !matches!(
            self.data,
            Data::Int(_) | Data::Range(..) | Data::Name(NameKind::Port, _)
        ) {
            return self.no_data("port");
        }
        let cmp = self.value(0xffff)?;
        let sd = *prim.srcdst.get_or_insert(SrcDst::Or);
        Ok(srcdst_node(sd, |dst| {
            let off = if dst { 2 } else { 0 };
            self.leaf((Base::Transp, p.req()), off, 2, 0, 0xffff, cmp)
        }))
    }

    /// `tcp opt FLAG`: the flag bit is set.
    fn tcp_opt(&self, prim: &mut Prim) -> PResult<Node> {
        if !matches!(prim.proto, None | Some(TProto::Num(6))) {
            return err("`tcp opt` needs protocol `tcp`", self.sp.whole.clone());
        }
        prim.proto = Some(TProto::Num(6));
        let v = match self.data {
            Data::Int(v) | Data::Name(NameKind::TcpOpt, v) => v,
            _ => return self.no_data("TCP flag"),
        };
        if self.op != RelOp::Eq || self.mask.is_some() {
            return err(
                "can't use relational operators or masks with `tcp opt`",
                self.sp.whole.clone(),
            );
        }
        if v > 0xff {
            return err(format!("value {v} out of range (0-255)"), self.sp.value());
        }
        Ok(self.leaf((Base::Transp, ProtoReq::Is(6)), 13, 1, 0, v, Cmp::Eq(v)))
    }

    /// `ip frag`, `ip unfrag`, `ip ce`: no value.
    fn ip_flag(&self, ty: Ty) -> PResult<Node> {
        if self.data != Data::None {
            return err(
                format!("`ip {}` takes no value", self.sp.kw()),
                self.sp.value(),
            );
        }
        Ok(match ty {
            Ty::Frag => self.leaf((Base::Ip, ProtoReq::Any), 6, 2, 0, 0x3fff, Cmp::Ne(0)),
            Ty::Unfrag => self.leaf((Base::Ip, ProtoReq::Any), 6, 2, 0, 0x3fff, Cmp::Eq(0)),
            _ => self.leaf((Base::Ip, ProtoReq::Any), 1, 1, 0, 0x03, Cmp::Eq(3)),
        })
    }

    /// `ip ect [VALUE]`.
    fn ect(&self) -> PResult<Node> {
        let cmp = if self.data == Data::None {
            Cmp::Ne(0)
        } else {
            self.value(0x03)?
        };
        Ok(self.leaf((Base::Ip, ProtoReq::Any), 1, 1, 0, 0x03, cmp))
    }

    /// A named header field (`ttl`, `tcp flags`, `icmp type`, ...); one
    /// that belongs to a protocol sets it.
    fn field(&self, prim: &mut Prim, f: FieldKind) -> PResult<Node> {
        let s = f.spec();
        if let Some(p) = s.proto {
            if prim.proto.is_some_and(|q| q != TProto::Num(p)) {
                return err(
                    format!("`{}` is meaningless for this protocol", self.sp.kw()),
                    self.sp.whole.clone(),
                );
            }
            prim.proto = Some(TProto::Num(p));
        }
        let cmp = match (f, self.data) {
            (FieldKind::TcpFlags, Data::Name(NameKind::TcpOpt, v))
                if self.op == RelOp::Eq && self.mask.is_none() =>
            {
                return Ok(self.leaf((s.base, ProtoReq::Is(6)), s.off, 1, 0, v, Cmp::Eq(v)));
            }
            (_, Data::Int(_) | Data::Range(..)) => self.value(s.mask)?,
            (FieldKind::IcmpType, Data::Name(NameKind::IcmpType, _)) => self.value(s.mask)?,
            _ => return self.no_data("value"),
        };
        let req = s.proto.map_or(ProtoReq::Any, ProtoReq::Is);
        Ok(self.leaf((s.base, req), s.off, s.width, s.shift, s.mask, cmp))
    }

    /// `ip[OFF:LEN]`, `tcp[OFF:LEN]`, ...: raw bytes of the IP header, or
    /// of the transport header when a protocol was named.
    fn raw(&self, prim: &Prim, off: u16, width: u8) -> PResult<Node> {
        let (base, req) = match prim.proto {
            None => (Base::Ip, ProtoReq::Any),
            Some(p) => (Base::Transp, p.req()),
        };
        let max = if width >= 4 {
            u32::MAX
        } else {
            (1u32 << (8 * u32::from(width))) - 1
        };
        if !matches!(self.data, Data::Int(_) | Data::Range(..)) {
            return self.no_data("value");
        }
        Ok(self.leaf((base, req), off, width, 0, max, self.value(max)?))
    }
}

fn set_proto(prim: &mut Prim, p: TProto, t: &Tok<'_>) -> PResult<()> {
    if prim.proto.is_some_and(|q| q != p) {
        return err("transport protocol specified twice", t.span.clone());
    }
    prim.proto = Some(p);
    Ok(())
}

fn set_srcdst(prim: &mut Prim, sd: SrcDst, t: &Tok<'_>) -> PResult<()> {
    if prim.srcdst.is_some() {
        return err("`src` or `dst` specified twice", t.span.clone());
    }
    prim.srcdst = Some(sd);
    Ok(())
}

fn srcdst_node(sd: SrcDst, mk: impl Fn(bool) -> Node) -> Node {
    match sd {
        SrcDst::Src => mk(false),
        SrcDst::Dst => mk(true),
        SrcDst::Or => Node::Or(vec![mk(false), mk(true)]),
        SrcDst::And => Node::And(vec![mk(false), mk(true)]),
    }
}

/// Parses `LO-HI` (an inclusive range of integers).
fn parse_range(w: &str) -> Option<(u32, u32)> {
    let (a, b) = w.split_once('-')?;
    let (a, b) = (names::parse_int(a)?, names::parse_int(b)?);
    (a <= b).then_some((a, b))
}
