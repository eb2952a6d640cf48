#!/usr/bin/env python3
"""Prove there are no import cycles between the modules inside each crate.

Usage: python3 .ci/modcycles.py [CRATE_DIR ...]   (default: every workspace member
of the root Cargo.toml, plus any top-level dir with Cargo.toml and src/)
       python3 .ci/modcycles.py --self-test

Exit 0 with one summary line per crate when every crate is acyclic; exit 1 printing
each cycle with evidence (one file:line reference per edge); exit 2 on bad usage.

Definition (the check `cargo modules dependencies --acyclic` performs, restated
on the module tree so it needs no compiler):
* Module tree: from each crate root (src/lib.rs, src/main.rs, src/bin/*.rs,
  src/bin/*/main.rs and [lib]/[[bin]] paths of Cargo.toml; tests/ and benches/
  are not modules of the crate) follow `mod NAME;` declarations: `#[path = ".."]`
  if present, else NAME.rs or NAME/mod.rs, in the file's directory for a crate
  root or mod.rs and in parent_stem/ otherwise.  Each root is its own tree.
  Inline `mod NAME { .. }` blocks belong to the enclosing file's module (their
  `self::`/`super::` still resolve relative to the inline module).
* Test code is out: any item under `#[cfg(test)]` (normally `mod tests { .. }`,
  also `mod x;`, `use ..;`, `fn ..`) is blanked out by brace matching after
  comments, strings (incl. raw r#".."#, byte and C strings) and char literals
  ('{', not lifetimes 'a) have been blanked out, so test code may reach anything.
* References: every path anywhere in the code (use trees such as
  `use crate::{a::{b, c}, d};` expanded, expressions, types, `$crate::` in
  macro_rules) starting with `crate::`, `self::` or `super::` (repeated).  Each
  resolves to the deepest module of the tree it names; what follows is an item.
  Bare paths are ignored: in Rust 2021 a bare `foo::` outside the crate root names
  an external crate or something already in scope via a `use` that is counted;
  in the crate root it names a child of the root, which never makes an edge.
* Edges: module A references module B.  If B is an ancestor of A (the crate root
  included) or a descendant of A there is no edge (a parent contains its children;
  children may use their context).  Otherwise, with L the lowest common ancestor
  and X, Y the children of L containing A and B, add the edge X -> Y among L's
  children.  The check: at every level, the graph among siblings is acyclic.
  Since edges only join siblings, one Tarjan SCC pass over all edges finds every
  level's cycles; each SCC of size > 1 is reported with a shortest simple cycle.
"""
import bisect, os, re, sys, tempfile, tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEXEME = re.compile(r'''(?P<line>//[^\n]*)|(?P<block>/\*)|(?P<raw>(?<!\w)[bc]?r(?P<h>\#*)")'''
                    r'''|(?P<str>[bc]?"(?:\\.|[^"\\])*")'''
                    r"""|(?P<chr>'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F_]{1,6}\}|.)|[^\\'\n])')""", re.S)
CFG_TEST = re.compile(r'#\[\s*cfg\s*\(\s*(?:test\s*\)|all\s*\(\s*test\b[^\]]*)\s*\]')
ATTRS = re.compile(r'\s*(?:#\[[^\]]*\]\s*)*')
SCOPE = re.compile(r'(?P<attrs>(?:#\[[^\]]*\]\s*)*)(?:pub(?:\s*\([^)]*\))?\s+)?(?<![\w$])mod\s+'
                   r'(?:r#)?(?P<name>\w+)\s*(?P<kind>[;{])|(?P<open>\{)|(?P<close>\})')
USE = re.compile(r'(?<![\w$])use\s+([^;]*);')
USE_TOKEN = re.compile(r'::|[{},*]|\$?\w+')
PATH = re.compile(r'(?<!\w)\$?(?:crate|self|super)(?:\s*::\s*\w+)+')


def blank(text, a, b):
    return text[:a] + re.sub(r'[^\n]', ' ', text[a:b]) + text[b:]


def strip_code(src):
    """Comments, string and char literals -> spaces (newlines and offsets kept)."""
    out, last = [], 0
    while (m := LEXEME.search(src, last)):
        start, end = m.start(), m.end()
        if m.group('block'):
            depth = 1
            while depth and end < len(src):
                if src.startswith('/*', end): depth, end = depth + 1, end + 2
                elif src.startswith('*/', end): depth, end = depth - 1, end + 2
                else: end += 1
        elif m.group('raw') is not None:
            close = src.find('"' + m.group('h'), end)
            end = len(src) if close < 0 else close + 1 + len(m.group('h'))
        out += [src[last:start], re.sub(r'[^\n]', ' ', src[start:end])]
        last = end
    return ''.join(out) + src[last:]


def strip_cfg_test(code):
    """Blank out every item carrying #[cfg(test)]: up to `;` or a matched {...}."""
    while (m := CFG_TEST.search(code)):
        i, depth = ATTRS.match(code, m.end()).end(), 0
        while i < len(code):
            c = code[i]
            if c in '([': depth += 1
            elif c in ')]': depth -= 1
            elif c == ';' and depth == 0: i += 1; break
            elif c == '{' and depth == 0:
                braces = 0
                while i < len(code):
                    braces += {'{': 1, '}': -1}.get(code[i], 0)
                    i += 1
                    if braces == 0: break
                break
            i += 1
        code = blank(code, m.start(), i)
    return code


def parse_file(file):
    src = open(file, encoding='utf-8').read()
    code = strip_cfg_test(strip_code(src))
    lines = [0] + [i + 1 for i, c in enumerate(code) if c == '\n']
    stack, depth, changes, decls = [], 0, [(0, ())], []
    for m in SCOPE.finditer(code):
        if m.group('name'):
            if m.group('kind') == ';':
                attr = re.search(r'\bpath\s*=\s*"([^"]*)"', src[m.start('attrs'):m.end('attrs')])
                decls.append((m.group('name'), tuple(n for n, _ in stack), attr and attr.group(1),
                              bisect.bisect_right(lines, m.start('name'))))
                continue
            depth += 1
            stack.append((m.group('name'), depth))
            changes.append((m.end(), tuple(n for n, _ in stack)))
        elif m.group('open'): depth += 1
        else:
            if stack and stack[-1][1] == depth:
                stack.pop()
                changes.append((m.end(), tuple(n for n, _ in stack)))
            depth -= 1
    refs = []  # (line, inline stack, segments, text)
    def add(pos, segs, text):
        k = bisect.bisect_right([p for p, _ in changes], pos) - 1
        refs.append((bisect.bisect_right(lines, pos), changes[k][1], segs, text))
    for m in USE.finditer(code):
        toks = [(t.group().lstrip('$'), m.start(1) + t.start()) for t in USE_TOKEN.finditer(m.group(1))]
        for segs, pos in expand_use(toks):
            if segs and segs[0] in ('crate', 'self', 'super'):
                add(pos, segs, '::'.join(segs))
        code = blank(code, m.start(), m.end())
    for m in PATH.finditer(code):
        segs = [s.strip() for s in m.group().lstrip('$').split('::')]
        add(m.start(), segs, '::'.join(segs))
    return decls, refs


def expand_use(toks):
    """Use-tree tokens -> list of (segments, offset of last segment)."""
    out = []
    def tree(i, prefix, pos):
        segs = list(prefix)
        while i < len(toks):
            t, p = toks[i]
            if t == '{':
                i += 1
                while i < len(toks) and toks[i][0] != '}':
                    i = tree(i, segs, pos)
                    if i < len(toks) and toks[i][0] == ',': i += 1
                return i + 1
            if t == '*': break
            if t == '::': i += 1; continue
            if t in (',', '}'): out.append((segs, pos)); return i
            if not (t == 'self' and segs): segs.append(t)
            pos, i = p, i + 1
            if i < len(toks) and toks[i][0] == 'as': i += 2
            if i >= len(toks) or toks[i][0] != '::': break
        out.append((segs, pos))
        return i + 1 if i < len(toks) and toks[i][0] == '*' else i
    tree(0, [], 0)
    return out


def build_tree(root_file):
    mods, refs, todo = {(): root_file}, [], [((), root_file, True)]  # path -> file (None: inline)
    while todo:
        path, file, root_like = todo.pop()
        decls, file_refs = parse_file(file)
        refs += [(path, file) + r for r in file_refs]
        here = os.path.dirname(file)
        base = here if root_like or os.path.basename(file) == 'mod.rs' else os.path.splitext(file)[0]
        for name, inline, attr, line in decls:
            for k in range(1, len(inline) + 1): mods.setdefault(path + inline[:k], None)
            if attr:
                cands = [os.path.join(base, *inline, attr) if inline else os.path.join(here, attr)]
            else:
                d = os.path.join(base, *inline)
                cands = [os.path.join(d, name + '.rs'), os.path.join(d, name, 'mod.rs')]
            found = next((c for c in cands if os.path.isfile(c)), None)
            if found is None:
                print(f'warning: {rel(file)}:{line}: no file for `mod {name};`', file=sys.stderr)
                continue
            mods[path + inline + (name,)] = found
            todo.append((path + inline + (name,), found, False))
    return mods, refs


def resolve(mods, a, inline, segs):
    if segs[0] == 'crate':
        node, rest = (), segs[1:]
    else:
        e, i = list(a + inline), 0
        while i < len(segs) and segs[i] in ('self', 'super'):
            if segs[i] == 'super':
                if not e: return None
                e.pop()
            i += 1
        node, rest = tuple(e), segs[i:]
    for s in rest:
        if node + (s,) not in mods: break
        node += (s,)
    return node


def find_edges(mods, refs):
    edges = {}  # (X, Y) -> first evidence
    for a, file, line, inline, segs, text in sorted(refs, key=lambda r: (r[1], r[2])):
        b = resolve(mods, a, inline, segs)
        if b is None or b[:len(a)] == a or a[:len(b)] == b: continue
        n = 0
        while a[n] == b[n]: n += 1
        edges.setdefault((a[:n + 1], b[:n + 1]), (file, line, text, a, b))
    return edges


def sccs(nodes, succ):
    index, low, stack, on, out = {}, {}, [], set(), []
    def visit(v):
        index[v] = low[v] = len(index); stack.append(v); on.add(v)
        for w in succ.get(v, ()):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            out.append(comp)
    for v in sorted(nodes):
        if v not in index: visit(v)
    return out


def shortest_cycle(start, succ, comp):
    prev, queue = {}, [start]
    for v in queue:
        for w in sorted(succ.get(v, ())):
            if w == start:
                cyc = [v]
                while cyc[-1] != start: cyc.append(prev[cyc[-1]])
                return cyc[::-1] + [start]
            if w in comp and w not in prev: prev[w] = v; queue.append(w)


def name(path): return '::'.join(('crate',) + path)
def rel(f): return os.path.relpath(f, ROOT) if f.startswith(ROOT + os.sep) else f


def crate_roots(crate):
    roots, conf = {}, {}
    if os.path.isfile(os.path.join(crate, 'Cargo.toml')):
        conf = tomllib.load(open(os.path.join(crate, 'Cargo.toml'), 'rb'))
    lib = conf.get('lib', {}).get('path', 'src/lib.rs')
    if os.path.isfile(os.path.join(crate, lib)): roots['lib'] = lib
    for b in conf.get('bin', []):
        if 'path' in b: roots['bin ' + b.get('name', b['path'])] = b['path']
    if os.path.isfile(os.path.join(crate, 'src/main.rs')) and 'src/main.rs' not in roots.values():
        roots['bin main'] = 'src/main.rs'
    bindir = os.path.join(crate, 'src/bin')
    for f in sorted(os.listdir(bindir)) if os.path.isdir(bindir) else []:
        p = f'src/bin/{f}' if f.endswith('.rs') else f'src/bin/{f}/main.rs'
        if os.path.isfile(os.path.join(crate, p)) and p not in roots.values():
            roots['bin ' + f.removesuffix('.rs')] = p
    return {k: os.path.join(crate, v) for k, v in roots.items()}


def check_crate(crate, report=print):
    """Return the cycles found (lists of module paths); print summary or evidence."""
    cycles, summary = [], []
    for label, root in crate_roots(crate).items():
        mods, refs = build_tree(root)
        edges = find_edges(mods, refs)
        succ = {}
        for x, y in edges: succ.setdefault(x, set()).add(y)
        for comp in sccs(set(succ) | {y for _, y in edges}, succ):
            if len(comp) < 2: continue
            cyc = shortest_cycle(min(comp), succ, set(comp))
            cycles.append(cyc)
            report(f'CYCLE in {rel(crate)} ({label}) among children of {name(cyc[0][:-1])}: '
                   + ' -> '.join(p[-1] for p in cyc))
            on_cycle = list(zip(cyc, cyc[1:]))
            others = sorted(e for e in edges if e[0] in comp and e[1] in comp and e not in on_cycle)
            for i, (x, y) in enumerate(on_cycle + others):
                if i == len(on_cycle):
                    report(f'  other edges inside the strongly connected set '
                           f'{{{", ".join(sorted(p[-1] for p in comp))}}}:')
                file, line, text, a, b = edges[(x, y)]
                report(f'  {x[-1]} -> {y[-1]}: {rel(file)}:{line}: {text}   ({name(a)} -> {name(b)})')
        summary.append(f'{label}: {sum(f is not None for f in mods.values())} modules, '
                       f'{len(edges)} sibling edges')
    report(f'{rel(crate)}: {"; ".join(summary) or "no crate roots"}: '
           f'{"%d cycle(s)" % len(cycles) if cycles else "acyclic"}')
    return cycles


def default_crates():
    ws = tomllib.load(open(os.path.join(ROOT, 'Cargo.toml'), 'rb')).get('workspace', {})
    crates = [os.path.join(ROOT, m) for m in ws.get('members', [])]
    for d in sorted(os.listdir(ROOT)):
        p = os.path.join(ROOT, d)
        if p not in crates and os.path.isfile(os.path.join(p, 'Cargo.toml')) and os.path.isdir(os.path.join(p, 'src')):
            crates.append(p)
    return crates


SELF_TESTS = {  # name -> (files, expected cycles as sets of top-level module names)
    'cycle': ({'lib.rs': 'mod a; mod b;', 'a.rs': 'use crate::b::X; pub struct Y;',
               'b.rs': 'pub struct X;\nfn f() -> crate::a::Y { todo!() }'}, [{'a', 'b'}]),
    'acyclic_super': ({'lib.rs': 'pub mod a; mod b;\nuse a::Y;',
                       'a.rs': 'mod c;\npub struct Y;\nuse crate::b::X;\nmod cuda { use super::Y; }',
                       'a/c.rs': 'use super::Y;\nuse super::super::b::X;\nfn f() { self::g(); }\nfn g() {}',
                       'b.rs': ('pub struct X; // use crate::a::Y;\n/* crate::a::Y /* nested */ */\n'
                                'fn f<\'a>(s: &\'a str) { let _ = "crate::a::Y {"; let _ = \'{\';\n'
                                '  let _ = r#"crate::a::Y "{"#; let _ = b\'"\'; }')}, []),
    'group': ({'lib.rs': 'mod a; mod b; mod c;', 'a.rs': 'use crate::{b::{X, self as bb}, c};\npub struct Y;',
               'b.rs': 'pub struct X;\nuse crate::{c::Z, a::{Y}};', 'c.rs': 'pub struct Z;'}, [{'a', 'b'}]),
    'test_only': ({'lib.rs': 'mod a; mod b;', 'a.rs': 'use crate::b::X;\npub struct Y;',
                   'b.rs': ('pub struct X;\n#[cfg(test)]\nmod tests {\n    use crate::a::Y;\n'
                            '    fn f() { let _ = \'}\'; crate::a::Y; }\n}\n#[cfg(test)]\nmod more;\n'),
                   'b/more.rs': 'use crate::a::Y;'}, []),
    'mod_rs_path': ({'lib.rs': 'mod a;\n#[path = "bee.rs"]\nmod b;', 'a/mod.rs': 'mod c;',
                     'a/c.rs': 'use crate::b::Z;', 'bee.rs': 'fn f() { crate::a::c::g() }'}, [{'a', 'b'}]),
}


def self_test():
    for test, (files, expected) in SELF_TESTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            for f, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(tmp, 'src', f)), exist_ok=True)
                open(os.path.join(tmp, 'src', f), 'w').write(text + '\n')
            lines = []
            got = [{p[-1] for p in c} for c in check_crate(tmp, lines.append)]
            assert got == expected, f'{test}: expected {expected}, got {got}\n' + '\n'.join(lines)
            assert not expected or any(':' in l and '.rs:' in l for l in lines), lines
            print(f'self-test {test}: ok ({len(got)} cycle(s))')
    return 0


def main(argv):
    if argv == ['--self-test']: return self_test()
    crates = [os.path.abspath(a) for a in argv] or default_crates()
    bad = [c for c in crates if not os.path.isdir(c)]
    if bad: print(f'not a directory: {", ".join(bad)}', file=sys.stderr); return 2
    found = sum(len(check_crate(c)) for c in crates)
    return 1 if found else 0


if __name__ == '__main__':
    sys.setrecursionlimit(10000)
    sys.exit(main(sys.argv[1:]))
