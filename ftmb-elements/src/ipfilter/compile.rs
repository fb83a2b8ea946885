//! Compilation of an expression tree into a flat branch program, and its matcher.

use super::ast::{read_be, Base, Leaf, Node};

/// Branch target meaning "the expression is true".
const ACCEPT: u32 = u32::MAX;
/// Branch target meaning "the expression is false".
const REJECT: u32 = u32::MAX - 1;

#[derive(Clone, Debug)]
struct Instr {
    leaf: Leaf,
    yes: u32,
    no: u32,
}

/// A decision program: each instruction tests one leaf and branches to
/// another instruction, or to ACCEPT/REJECT. Every branch target is a lower
/// index than the instruction itself, so execution always terminates.
#[derive(Clone, Debug)]
pub(super) struct Program {
    instrs: Vec<Instr>,
    entry: u32,
}

impl Program {
    pub(super) fn compile(node: &Node) -> Program {
        let mut instrs = Vec::new();
        let entry = emit(node, ACCEPT, REJECT, &mut instrs);
        Program { instrs, entry }
    }

    pub(super) fn len(&self) -> usize {
        self.instrs.len()
    }

    /// Returns `Some(b)` when the program is the constant `b`.
    pub(super) fn constant(&self) -> Option<bool> {
        match self.entry {
            ACCEPT => Some(true),
            REJECT => Some(false),
            _ => None,
        }
    }

    #[inline]
    pub(super) fn run(&self, p: &[u8]) -> bool {
        let mut pc = self.entry;
        if self.instrs.is_empty() {
            return pc == ACCEPT;
        }
        let ctx = Ctx::new(p);
        while let Some(ins) = self.instrs.get(pc as usize) {
            pc = if eval(&ins.leaf, p, &ctx) {
                ins.yes
            } else {
                ins.no
            };
        }
        pc == ACCEPT
    }
}

/// Emits code for `node` that continues at `yes` when true and `no` when
/// false; returns the entry point.
fn emit(node: &Node, yes: u32, no: u32, out: &mut Vec<Instr>) -> u32 {
    match node {
        Node::True => yes,
        Node::False => no,
        Node::Not(n) => emit(n, no, yes, out),
        Node::And(v) => v.iter().rev().fold(yes, |t, n| emit(n, t, no, out)),
        Node::Or(v) => v.iter().rev().fold(no, |f, n| emit(n, yes, f, out)),
        Node::Leaf(l) => {
            if yes == no {
                return yes;
            }
            out.push(Instr { leaf: *l, yes, no });
            // Programs come from source text, far below u32::MAX - 1 leaves.
            u32::try_from(out.len() - 1).unwrap_or(REJECT)
        }
    }
}

const NO_TRANSPORT: usize = usize::MAX;

/// Per-packet facts shared by all leaves, computed once per match.
struct Ctx {
    v4: bool,
    /// Offset of the transport header, or `NO_TRANSPORT` when the packet is
    /// not IPv4, is a non-first fragment, or has a bad header length.
    th: usize,
    proto: u8,
}

impl Ctx {
    #[inline]
    fn new(p: &[u8]) -> Ctx {
        let mut ctx = Ctx {
            v4: false,
            th: NO_TRANSPORT,
            proto: 0,
        };
        let Some(&b0) = p.first() else {
            return ctx;
        };
        ctx.v4 = b0 >> 4 == 4;
        if !ctx.v4 {
            return ctx;
        }
        if let (Some(frag), Some(&proto)) = (read_be(p, 6, 2), p.get(9)) {
            let hl = usize::from(b0 & 0x0f) * 4;
            ctx.proto = proto;
            if frag & 0x1fff == 0 && hl >= 20 {
                ctx.th = hl;
            }
        }
        ctx
    }
}

#[inline]
fn eval(l: &Leaf, p: &[u8], ctx: &Ctx) -> bool {
    let base = match l.base {
        Base::Raw => 0,
        Base::Ip => {
            if !ctx.v4 {
                return false;
            }
            0
        }
        Base::Transp => {
            if ctx.th == NO_TRANSPORT || !l.proto.accepts(ctx.proto) {
                return false;
            }
            ctx.th
        }
    };
    match read_be(p, base + usize::from(l.off), l.width) {
        Some(raw) => l.cmp.test((raw >> l.shift) & l.mask),
        None => false,
    }
}
