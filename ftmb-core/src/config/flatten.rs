//! Semantic pass: variables, name resolution, compound expansion, and
//! elimination of compound `input`/`output` pseudo-elements.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use super::args::{cook, split_raw, var_at};
use super::ast::{Arg, Config, Connection, ElementDecl, Span};
use super::error::{suggest, ConfigError};
use super::grammar::{CompoundDef, ElemKind, Endpoint, Ident, Stmt};

/// Upper bound on flattened elements (guards against exponential compounds).
const MAX_ELEMENTS: usize = 100_000;
/// Upper bound on compound expansion depth.
const MAX_DEPTH: usize = 100;

/// A graph node: a real element or one side of a compound instance.
#[derive(Clone, Copy, Debug)]
enum Node {
    Real(usize),
    In(usize),
    Out(usize),
}

/// A compound instance, for port validation messages.
struct Inst {
    class: String,
    def_span: Span,
}

/// A connection between nodes, before pseudo-element elimination.
struct Edge {
    from: usize,
    fp: usize,
    to: usize,
    tp: usize,
    span: Span,
    from_span: Span,
    to_span: Span,
}

#[derive(Clone)]
enum ClassDef {
    Compound(Rc<CompoundDef>),
    Synonym(Ident),
}

enum Resolved {
    Primitive(String),
    /// A compound class and the variable environment of the scope that
    /// defines it (its body sees that scope's formal parameters).
    Compound(Rc<CompoundDef>, Rc<Env>),
}

/// Compound formal parameters in effect, innermost first.
#[derive(Default)]
struct Env {
    formals: HashMap<String, String>,
    parent: Option<Rc<Env>>,
}

impl Env {
    fn get(&self, name: &str) -> Option<&String> {
        let mut e = Some(self);
        while let Some(env) = e {
            if let Some(v) = env.formals.get(name) {
                return Some(v);
            }
            e = env.parent.as_deref();
        }
        None
    }

    fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut e = Some(self);
        while let Some(env) = e {
            let mut local: Vec<&str> = env.formals.keys().map(String::as_str).collect();
            local.sort_unstable();
            out.extend(local);
            e = env.parent.as_deref();
        }
        out
    }
}

/// What a name in a scope stands for.
#[derive(Clone, Copy)]
enum Entity {
    Real(usize),
    Compound { inn: usize, out: usize },
}

impl Entity {
    fn src(self) -> usize {
        match self {
            Entity::Real(n) => n,
            Entity::Compound { out, .. } => out,
        }
    }
    fn dst(self) -> usize {
        match self {
            Entity::Real(n) => n,
            Entity::Compound { inn, .. } => inn,
        }
    }
}

/// A resolved or pending chain endpoint.
enum End {
    Ent(Entity),
    Name(String),
    Input,
    Output,
}

struct Scope<'p> {
    parent: Option<&'p Scope<'p>>,
    prefix: String,
    classes: HashMap<String, ClassDef>,
    env: Rc<Env>,
    /// In/out pseudo nodes when this scope is a compound instance.
    io: Option<(usize, usize)>,
    count: usize,
    declared: HashMap<String, Span>,
    entities: HashMap<String, Entity>,
    used: HashSet<String>,
}

struct Flat<'a> {
    src: &'a str,
    known: &'a [&'a str],
    vars: BTreeMap<String, String>,
    elements: Vec<ElementDecl>,
    nodes: Vec<Node>,
    insts: Vec<Inst>,
    edges: Vec<Edge>,
    stack: Vec<*const CompoundDef>,
}

/// Flattens parsed statements into a [`Config`].
pub(super) fn flatten(
    src: &str,
    stmts: &[Stmt],
    vars: &BTreeMap<String, String>,
    known: &[&str],
) -> Result<Config, ConfigError> {
    let mut f = Flat {
        src,
        known,
        vars: vars
            .iter()
            .map(|(k, v)| (k.trim_start_matches('$').to_string(), v.clone()))
            .collect(),
        elements: Vec::new(),
        nodes: Vec::new(),
        insts: Vec::new(),
        edges: Vec::new(),
        stack: Vec::new(),
    };
    f.defines(stmts)?;
    let mut top = Scope {
        parent: None,
        prefix: String::new(),
        classes: HashMap::new(),
        env: Rc::new(Env::default()),
        io: None,
        count: 0,
        declared: HashMap::new(),
        entities: HashMap::new(),
        used: HashSet::new(),
    };
    f.process(&mut top, stmts)?;
    f.validate_ports()?;
    let connections = f.resolve_connections();
    Ok(Config {
        elements: f.elements,
        connections,
    })
}

impl Flat<'_> {
    /// Applies top-level `define(...)` statements (command-line values win).
    fn defines(&mut self, stmts: &[Stmt]) -> Result<(), ConfigError> {
        let cmdline: HashSet<String> = self.vars.keys().cloned().collect();
        let mut seen: HashMap<String, Span> = HashMap::new();
        for st in stmts {
            let Stmt::Define { args, .. } = st else {
                continue;
            };
            let text = args.text(self.src);
            for piece in split_raw(text, args.start) {
                let raw = piece.text(self.src);
                let Some((name, end)) = var_at(raw, 0) else {
                    return Err(ConfigError::new("expected `$NAME value` in define", piece)
                        .with_help("write define($NAME value, ...)"));
                };
                let name_span = Span::new(piece.start, piece.start + end);
                let rest = &raw[end..];
                if !rest.is_empty() && !rest.starts_with(|c: char| c.is_whitespace()) {
                    return Err(ConfigError::new(
                        "expected whitespace between variable name and value",
                        Span::new(name_span.end, name_span.end + 1),
                    ));
                }
                if let Some(prev) = seen.get(name) {
                    return Err(ConfigError::new(
                        format!("variable `${name}` defined twice"),
                        name_span,
                    )
                    .with_label(*prev, "first defined here"));
                }
                seen.insert(name.to_string(), name_span);
                if cmdline.contains(name) {
                    continue;
                }
                let vars = &self.vars;
                let value = cook(rest, name_span.end, &mut |v, sp| {
                    lookup(vars, &Env::default(), v, sp).map(Some)
                })?;
                self.vars.insert(name.to_string(), value);
            }
        }
        Ok(())
    }

    fn new_node(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    /// Processes the statements of one scope (top level or compound body).
    fn process(&mut self, scope: &mut Scope<'_>, stmts: &[Stmt]) -> Result<(), ConfigError> {
        // Compound classes and declared names of this scope.
        for st in stmts {
            let (name, def) = match st {
                Stmt::Compound(d) => (&d.name, ClassDef::Compound(d.clone())),
                Stmt::Synonym { name, target } => (name, ClassDef::Synonym(target.clone())),
                _ => continue,
            };
            if let Some(prev) = scope.classes.get(&name.name) {
                let prev = match prev {
                    ClassDef::Compound(d) => d.name.span,
                    ClassDef::Synonym(t) => t.span,
                };
                return Err(ConfigError::new(
                    format!("element class `{}` defined twice", name.name),
                    name.span,
                )
                .with_label(prev, "first defined here"));
            }
            scope.classes.insert(name.name.clone(), def);
        }
        for st in stmts {
            let names: Vec<&Ident> = match st {
                Stmt::MultiDecl { names, .. } => names.iter().collect(),
                Stmt::Chain(items) => items
                    .iter()
                    .filter_map(|e| match &e.kind {
                        ElemKind::Decl { name, .. } => Some(name),
                        ElemKind::Ref(_) => None,
                    })
                    .collect(),
                _ => continue,
            };
            for n in names {
                if scope.io.is_some() && (n.name == "input" || n.name == "output") {
                    return Err(ConfigError::new(
                        format!("`{}` is reserved inside compound classes", n.name),
                        n.span,
                    ));
                }
                if let Some(prev) = scope.declared.get(&n.name) {
                    return Err(ConfigError::new(
                        format!("element `{}` redeclared", n.name),
                        n.span,
                    )
                    .with_label(*prev, "first declared here")
                    .with_help("element names must be unique; rename one of them"));
                }
                scope.declared.insert(n.name.clone(), n.span);
            }
        }

        let mut pending: Vec<(End, Edge)> = Vec::new();
        let mut pending_to: Vec<End> = Vec::new();
        for st in stmts {
            match st {
                Stmt::Define { keyword, .. } => {
                    if scope.io.is_some() {
                        return Err(ConfigError::new(
                            "`define` is only allowed at the top level",
                            *keyword,
                        ));
                    }
                }
                Stmt::Require | Stmt::Compound(_) | Stmt::Synonym { .. } => {}
                Stmt::MultiDecl { names, class, args } => {
                    for n in names {
                        let ent = self.instantiate(scope, &n.name, n.span, class, *args)?;
                        scope.entities.insert(n.name.clone(), ent);
                    }
                }
                Stmt::Chain(items) => {
                    let mut ends = Vec::with_capacity(items.len());
                    for (k, ep) in items.iter().enumerate() {
                        ends.push(self.endpoint(scope, ep, k > 0, k + 1 < items.len())?);
                    }
                    let mut ends = ends.into_iter();
                    let mut prev = ends.next();
                    for (k, end) in ends.enumerate() {
                        let (a, b) = (&items[k], &items[k + 1]);
                        let edge = Edge {
                            from: 0,
                            fp: a.out_port.map_or(0, |p| p.num),
                            to: 0,
                            tp: b.in_port.map_or(0, |p| p.num),
                            span: a.span.to(b.span),
                            from_span: a.out_port.map_or(ident_span(a), |p| p.span),
                            to_span: b.in_port.map_or(ident_span(b), |p| p.span),
                        };
                        if let Some(p) = prev.take() {
                            pending.push((p, edge));
                        }
                        // The destination end is also the next source.
                        let dup = match &end {
                            End::Ent(e) => End::Ent(*e),
                            End::Name(n) => End::Name(n.clone()),
                            End::Input => End::Input,
                            End::Output => End::Output,
                        };
                        pending_to.push(end);
                        prev = Some(dup);
                    }
                }
            }
        }
        for ((from, mut edge), to) in pending.into_iter().zip(pending_to) {
            edge.from = match from {
                End::Ent(e) => e.src(),
                End::Name(n) => self.entity(scope, &n, edge.from_span)?.src(),
                End::Input => scope.io.map_or(0, |io| io.0),
                End::Output => scope.io.map_or(0, |io| io.1),
            };
            edge.to = match to {
                End::Ent(e) => e.dst(),
                End::Name(n) => self.entity(scope, &n, edge.to_span)?.dst(),
                End::Input => scope.io.map_or(0, |io| io.0),
                End::Output => scope.io.map_or(0, |io| io.1),
            };
            self.edges.push(edge);
        }
        Ok(())
    }

    fn entity(&self, scope: &Scope<'_>, name: &str, span: Span) -> Result<Entity, ConfigError> {
        scope
            .entities
            .get(name)
            .copied()
            .ok_or_else(|| ConfigError::new(format!("undeclared element `{name}`"), span))
    }

    /// Resolves one chain endpoint; `is_dst`/`is_src` say how it is used.
    fn endpoint(
        &mut self,
        scope: &mut Scope<'_>,
        ep: &Endpoint,
        is_dst: bool,
        is_src: bool,
    ) -> Result<End, ConfigError> {
        match &ep.kind {
            ElemKind::Decl { name, class } => {
                let ent = self.instantiate(scope, &name.name, name.span, class, ep.args)?;
                scope.entities.insert(name.name.clone(), ent);
                Ok(End::Ent(ent))
            }
            ElemKind::Ref(id) => {
                let pseudo = scope.io.is_some() && (id.name == "input" || id.name == "output");
                let named = pseudo || scope.declared.contains_key(&id.name);
                if let (true, Some(a)) = (named, ep.args) {
                    return Err(ConfigError::new(
                        format!("`{}` is an element name; it cannot take arguments", id.name),
                        Span::new(a.start.saturating_sub(1), a.end + 1),
                    )
                    .with_label(id.span, "this names an element, not a class"));
                }
                if pseudo {
                    return if id.name == "input" {
                        if is_dst {
                            Err(ConfigError::new(
                                "`input` cannot be a connection destination",
                                id.span,
                            )
                            .with_help(
                                "inside a compound, `input` only sends packets: `input -> x`",
                            ))
                        } else {
                            Ok(End::Input)
                        }
                    } else if is_src {
                        Err(
                            ConfigError::new("`output` cannot be a connection source", id.span)
                                .with_help(
                                "inside a compound, `output` only receives packets: `x -> output`",
                            ),
                        )
                    } else {
                        Ok(End::Output)
                    };
                }
                if scope.declared.contains_key(&id.name) {
                    return Ok(End::Name(id.name.clone()));
                }
                if self.resolve_class(scope, &id.name, 0).is_some() {
                    let mut n = scope.count + 1;
                    let mut local = format!("{}@{n}", id.name);
                    while scope.declared.contains_key(&local) || scope.used.contains(&local) {
                        n += 1;
                        local = format!("{}@{n}", id.name);
                    }
                    let ent = self.instantiate(scope, &local, id.span, id, ep.args)?;
                    return Ok(End::Ent(ent));
                }
                let mut cands: Vec<&str> = scope.declared.keys().map(String::as_str).collect();
                cands.sort_unstable();
                let classes = self.class_names(scope);
                cands.extend(classes.iter().map(String::as_str));
                let sugg = suggest(&id.name, cands).map(|s| format!("did you mean `{s}`?"));
                let msg = if id.name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    format!("unknown element class `{}`", id.name)
                } else {
                    format!("undeclared element `{}`", id.name)
                };
                Err(
                    ConfigError::new(msg, id.span).with_help_opt(sugg.or_else(|| {
                        Some(format!(
                            "declare it first, e.g. `{} :: Class;`, or use a known class",
                            id.name
                        ))
                    })),
                )
            }
        }
    }

    /// Known primitive and visible compound class names, sorted.
    fn class_names(&self, scope: &Scope<'_>) -> Vec<String> {
        let mut set: BTreeSet<String> = self.known.iter().map(|s| s.to_string()).collect();
        let mut s = Some(scope);
        while let Some(sc) = s {
            set.extend(sc.classes.keys().cloned());
            s = sc.parent;
        }
        set.into_iter().collect()
    }

    fn resolve_class(&self, scope: &Scope<'_>, name: &str, depth: usize) -> Option<Resolved> {
        if depth > 32 {
            return None;
        }
        let mut s = Some(scope);
        while let Some(sc) = s {
            match sc.classes.get(name) {
                Some(ClassDef::Compound(d)) => {
                    return Some(Resolved::Compound(d.clone(), sc.env.clone()));
                }
                Some(ClassDef::Synonym(t)) => return self.resolve_class(sc, &t.name, depth + 1),
                None => s = sc.parent,
            }
        }
        self.known
            .iter()
            .find(|k| **k == name)
            .map(|k| Resolved::Primitive(k.to_string()))
    }

    /// Splits and cooks an argument list in `scope`.
    fn cook_args(&self, scope: &Scope<'_>, args: Option<Span>) -> Result<Vec<Arg>, ConfigError> {
        let Some(a) = args else {
            return Ok(Vec::new());
        };
        let args = split_raw(a.text(self.src), a.start)
            .into_iter()
            .map(|span| {
                let text = cook(span.text(self.src), span.start, &mut |v, sp| {
                    lookup(&self.vars, &scope.env, v, sp).map(Some)
                })?;
                Ok(Arg { text, span })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        // As in Click, a lone argument that substitutes to nothing is no
        // argument at all (e.g. `Print($EMPTY)`).
        if args.len() == 1 && args[0].text.is_empty() {
            return Ok(Vec::new());
        }
        Ok(args)
    }

    /// Creates element `local` (in `scope`) of class `class`.
    fn instantiate(
        &mut self,
        scope: &mut Scope<'_>,
        local: &str,
        name_span: Span,
        class: &Ident,
        args: Option<Span>,
    ) -> Result<Entity, ConfigError> {
        scope.count += 1;
        scope.used.insert(local.to_string());
        let full = format!("{}{local}", scope.prefix);
        let Some(resolved) = self.resolve_class(scope, &class.name, 0) else {
            let classes = self.class_names(scope);
            let sugg = suggest(&class.name, classes.iter().map(String::as_str));
            return Err(ConfigError::new(
                format!("unknown element class `{}`", class.name),
                class.span,
            )
            .with_help_opt(sugg.map(|s| format!("did you mean `{s}`?"))));
        };
        let args_span = args.unwrap_or(Span::new(class.span.end, class.span.end));
        let cooked = self.cook_args(scope, args)?;
        if self.elements.len() >= MAX_ELEMENTS {
            return Err(ConfigError::new(
                "configuration has too many elements",
                class.span,
            ));
        }
        match resolved {
            Resolved::Primitive(cls) => {
                self.elements.push(ElementDecl {
                    name: full,
                    class: cls,
                    args: cooked,
                    args_span,
                    span: name_span,
                    class_span: class.span,
                });
                let idx = self.elements.len() - 1;
                Ok(Entity::Real(self.new_node(Node::Real(idx))))
            }
            Resolved::Compound(def, def_env) => {
                if def.formals.len() != cooked.len() {
                    let formals: Vec<String> =
                        def.formals.iter().map(|f| format!("${}", f.name)).collect();
                    let span = args.unwrap_or(class.span);
                    let mut err = ConfigError::new(
                        format!(
                            "compound class `{}` takes {} argument{}, but {} {} given",
                            def.name.name,
                            def.formals.len(),
                            if def.formals.len() == 1 { "" } else { "s" },
                            cooked.len(),
                            if cooked.len() == 1 { "was" } else { "were" },
                        ),
                        span,
                    )
                    .with_label(def.name.span, "defined here");
                    if !formals.is_empty() {
                        err = err.with_help(format!("parameters: {}", formals.join(", ")));
                    }
                    return Err(err);
                }
                let ptr = Rc::as_ptr(&def);
                if self.stack.contains(&ptr) || self.stack.len() >= MAX_DEPTH {
                    return Err(ConfigError::new(
                        format!("compound class `{}` is used recursively", def.name.name),
                        class.span,
                    )
                    .with_label(def.name.span, "defined here"));
                }
                self.insts.push(Inst {
                    class: def.name.name.clone(),
                    def_span: def.name.span,
                });
                let inst = self.insts.len() - 1;
                let inn = self.new_node(Node::In(inst));
                let out = self.new_node(Node::Out(inst));
                let env = Rc::new(Env {
                    formals: def
                        .formals
                        .iter()
                        .zip(cooked)
                        .map(|(f, a)| (f.name.clone(), a.text))
                        .collect(),
                    parent: Some(def_env),
                });
                let mut child = Scope {
                    parent: Some(scope),
                    prefix: format!("{full}/"),
                    classes: HashMap::new(),
                    env,
                    io: Some((inn, out)),
                    count: 0,
                    declared: HashMap::new(),
                    entities: HashMap::new(),
                    used: HashSet::new(),
                };
                self.stack.push(ptr);
                let r = self.process(&mut child, &def.stmts);
                self.stack.pop();
                r?;
                Ok(Entity::Compound { inn, out })
            }
        }
    }

    /// Checks compound port usage: no gaps inside, and outside connections
    /// only to ports the body uses.
    fn validate_ports(&self) -> Result<(), ConfigError> {
        type Side = (BTreeMap<usize, Span>, Vec<(usize, Span)>);
        // Per instance and side (0 = input, 1 = output): ports used inside
        // the body, and ports used from outside.
        let mut sides: Vec<[Side; 2]> = self.insts.iter().map(|_| Default::default()).collect();
        for e in &self.edges {
            match self.nodes[e.from] {
                Node::In(i) => {
                    sides[i][0].0.entry(e.fp).or_insert(e.from_span);
                }
                Node::Out(i) => sides[i][1].1.push((e.fp, e.from_span)),
                Node::Real(_) => {}
            }
            match self.nodes[e.to] {
                Node::In(i) => sides[i][0].1.push((e.tp, e.to_span)),
                Node::Out(i) => {
                    sides[i][1].0.entry(e.tp).or_insert(e.to_span);
                }
                Node::Real(_) => {}
            }
        }
        for (inst, inst_sides) in self.insts.iter().zip(sides) {
            for (pseudo, (inner, outer)) in ["input", "output"].into_iter().zip(inst_sides) {
                let gap = inner.iter().next_back().and_then(|(&max, &span)| {
                    (0..max)
                        .find(|p| !inner.contains_key(p))
                        .map(|gap| (gap, max, span))
                });
                if let Some((gap, max, span)) = gap {
                    return Err(ConfigError::new(
                        format!("`{pseudo}` port {gap} is unused, but port {max} is used"),
                        span,
                    )
                    .with_help(format!(
                        "compound {pseudo} ports must be numbered 0, 1, 2, ... without gaps"
                    )));
                }
                let n = inner.keys().next_back().map_or(0, |m| m + 1);
                if let Some((p, span)) = outer.into_iter().find(|(p, _)| !inner.contains_key(p)) {
                    return Err(ConfigError::new(
                        format!("compound `{}` has no {pseudo} port {p}", inst.class),
                        span,
                    )
                    .with_label(inst.def_span, "compound class defined here")
                    .with_help(match n {
                        0 => format!("`{}` has no {pseudo} ports", inst.class),
                        1 => format!("`{}` has 1 {pseudo} port ({pseudo}[0])", inst.class),
                        _ => format!(
                            "`{}` has {n} {pseudo} ports ({pseudo}[0] to {pseudo}[{}])",
                            inst.class,
                            n - 1
                        ),
                    }));
                }
            }
        }
        Ok(())
    }

    /// Replaces paths through compound pseudo-nodes by direct connections.
    fn resolve_connections(&self) -> Vec<Connection> {
        let mut adj: HashMap<(usize, usize), Vec<(usize, usize)>> = HashMap::new();
        for e in &self.edges {
            if !matches!(self.nodes[e.from], Node::Real(_)) {
                adj.entry((e.from, e.fp)).or_default().push((e.to, e.tp));
            }
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for e in &self.edges {
            let Node::Real(a) = self.nodes[e.from] else {
                continue;
            };
            let mut visited = HashSet::new();
            let mut stack = vec![(e.to, e.tp)];
            let mut targets = Vec::new();
            while let Some((n, p)) = stack.pop() {
                match self.nodes[n] {
                    Node::Real(b) => targets.push((b, p)),
                    _ => {
                        if visited.insert((n, p)) {
                            let next = adj.get(&(n, p)).map_or(&[][..], Vec::as_slice);
                            stack.extend(next.iter().rev().copied());
                        }
                    }
                }
            }
            for (b, p) in targets {
                if seen.insert((a, e.fp, b, p)) {
                    out.push(Connection {
                        from: a,
                        from_port: e.fp,
                        to: b,
                        to_port: p,
                        span: e.span,
                    });
                }
            }
        }
        out.sort_by_key(|c| (c.from, c.from_port, c.to, c.to_port));
        out
    }
}

/// The span of an endpoint's element identifier.
fn ident_span(ep: &Endpoint) -> Span {
    match &ep.kind {
        ElemKind::Decl { name, .. } => name.span,
        ElemKind::Ref(id) => id.span,
    }
}

/// Looks up variable `name`: compound formals first, then global variables.
fn lookup(
    vars: &BTreeMap<String, String>,
    env: &Env,
    name: &str,
    span: Span,
) -> Result<String, ConfigError> {
    if let Some(v) = env.get(name).or_else(|| vars.get(name)) {
        return Ok(v.clone());
    }
    let mut known = env.names();
    known.extend(vars.keys().map(String::as_str));
    let sugg = suggest(name, known.iter().copied());
    let help = if known.is_empty() {
        format!(
            "no variables are defined; add `define(${name} value)` or set {name} on the command line"
        )
    } else {
        let mut list: Vec<String> = known.iter().take(12).map(|k| format!("${k}")).collect();
        if known.len() > 12 {
            list.push("...".into());
        }
        match sugg {
            Some(s) => format!("did you mean `${s}`? known variables: {}", list.join(", ")),
            None => format!("known variables: {}", list.join(", ")),
        }
    };
    Err(ConfigError::new(format!("unknown variable `${name}`"), span).with_help(help))
}
