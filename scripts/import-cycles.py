#!/usr/bin/env python3
"""List the `crate::` / `super::` edges between ftmb-core's modules and report
every import cycle (strongly connected component of more than one module).

Usage: scripts/import-cycles.py [SRC_DIR] [--edges]
Two levels: the crate's top-level modules (a directory module counts as one),
and files. Comment lines (`//`, `//!`, `///`) are skipped, so doc links do not
count; test modules do. A directory module's `pub use child::Item`
re-exports are a facade, not a dependency: they add no edge, and a path through
the parent to a re-exported item (`super::Item`) counts as an edge to the
child that defines it. Exit status 1 when a cycle is found."""
import os, re, sys

src = next((a for a in sys.argv[1:] if not a.startswith('--')), 'ftmb-core/src')
show_edges = '--edges' in sys.argv

def module_of(path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ('mod', 'lib'):
        rel = rel[:-1]
    return tuple(rel)

files = {}
for root, _, names in os.walk(src):
    for n in names:
        if n.endswith('.rs'):
            p = os.path.join(root, n)
            files[module_of(p)] = p

# Per directory module: re-exported item name -> the child that defines it.
reexports = {}
for mod, p in files.items():
    if os.path.basename(p) not in ('mod.rs', 'lib.rs'):
        continue
    for m in re.finditer(r'^\s*pub use (?:self::)?(\w+)::(\{[^}]*\}|\w+)\s*;', open(p, encoding='utf-8').read(), re.M):
        child = mod + (m.group(1),)
        if child in files:
            for item in m.group(2).strip('{}').split(','):
                item = item.strip().split(' as ')[-1].strip()
                if item:
                    reexports[mod + (item,)] = child

def resolve(parts):
    """The longest prefix of `parts` that is a module file (or the child a
    facade re-exports the named item from)."""
    for k in range(len(parts), 0, -1):
        if tuple(parts[:k + 1]) in reexports:
            return reexports[tuple(parts[:k + 1])]
        if tuple(parts[:k]) in files:
            return tuple(parts[:k])
    return None

path_re = re.compile(r'\b((?:crate|super)(?:::(?:r#)?[A-Za-z_][A-Za-z0-9_]*)+|(?:crate|super)::\{[^}]*\})')
edges = {}
for mod, p in files.items():
    out = edges.setdefault(mod, set())
    is_dir = os.path.basename(p) in ('mod.rs', 'lib.rs')
    text_all = open(p, encoding='utf-8').read()
    children = set(re.findall(r'^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(?:r#)?(\w+)\s*;', text_all, re.M)) if is_dir else set()
    child_re = re.compile(r'(?<![\w:])(?:self::)?(' + '|'.join(sorted(children)) + r')::') if children else None
    for line in text_all.splitlines():
        s = line.strip()
        if s.startswith('//'):
            continue
        if is_dir and re.match(r'pub use (?:self::)?(\w+)::', s) and re.match(r'pub use (?:self::)?(\w+)::', s).group(1) in children:
            continue
        for m in path_re.finditer(s):
            text = m.group(1)
            head, _, rest = text.partition('::')
            base = [] if head == 'crate' else list(mod if is_dir else mod[:-1])
            if head == 'super' and is_dir:
                base = base[:-1]
            if rest.startswith('{'):
                items = [i.strip().split('::') for i in rest[1:-1].split(',') if i.strip()]
            else:
                items = [rest.split('::')]
            for it in items:
                it = [x.replace('r#', '') for x in it]
                t = resolve(base + it)
                if t is not None and t != mod and t != ():
                    out.add(t)
        if child_re:
            for m in child_re.finditer(s):
                t = resolve(list(mod) + [m.group(1)])
                if t is not None and t != mod:
                    out.add(t)

def sccs(nodes, adj):
    index, low, stack, on, res, i = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in adj.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            res.append(comp)
    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in res if len(c) > 1]

name = lambda m: '::'.join(m) or 'lib'
top = {}
for a, bs in edges.items():
    if not a: continue
    for b in bs:
        if a[0] != b[0]:
            top.setdefault(a[0], set()).add(b[0])
tops = {m[0] for m in files if m}
found = 0
for label, nodes, adj in (('top-level modules', tops, top),
                          ('files', {m for m in files if m}, {a: {b for b in bs if b} for a, bs in edges.items()})):
    cyc = sccs(nodes, adj)
    print(f'{label}: {len(nodes)} nodes, {sum(len(v) for v in adj.values())} edges, {len(cyc)} cycles')
    for c in cyc:
        found += 1
        print('  cycle:', ', '.join(sorted(name(x) if isinstance(x, tuple) else x for x in c)))
if show_edges:
    for a in sorted(edges):
        if edges[a]:
            print(f'{name(a)} -> {", ".join(sorted(name(b) for b in edges[a]))}')
sys.exit(1 if found else 0)
