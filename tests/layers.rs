//! The shape of `src/`: no import cycle between files, and no domain module
//! reaching up into an adapter. Read from the source text: each file is a
//! module, and each `crate::…`, `super::…` or `self::…` path it names outside
//! its own unit tests is an edge to the longest module that path reaches.
//! A module naming its own ancestor or descendant is not an edge (a parent
//! declares and re-exports its children).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// The adapters: they are handed the core and may import anything.
const ADAPTERS: &[&str] = &["api", "console", "serve", "cli", "app"];
/// Shared by the adapters, above the domain: may import the domain only.
const APPLICATION: &[&str] = &["ops"];

fn modules(root: &Path) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "bin") {
                    stack.push(p);
                }
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(root).unwrap().with_extension("");
            let mut m: Module = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if m.last().is_some_and(|l| l == "mod") {
                m.pop();
            }
            if m == ["lib"] || m == ["main"] {
                continue;
            }
            if m.last().is_some_and(|l| l == "tests" || l.ends_with("_tests")) {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("read file");
            out.insert(m, text);
        }
    }
    out
}

/// The text before the file's first `#[cfg(test)]` (unit tests come last),
/// with `//` comments removed.
fn without_tests_and_comments(text: &str) -> String {
    let body = text.split("#[cfg(test)]").next().unwrap_or("");
    body.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every module path named in `text` from module `m`, as segments.
fn paths(m: &Module, text: &str) -> Vec<Module> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", m[..m.len().saturating_sub(1)].to_vec()), ("self::", m.clone())] {
        let base: Module = base;
        let mut from = 0;
        while let Some(i) = text[from..].find(prefix) {
            let start = from + i;
            from = start + prefix.len();
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_' || bytes[start - 1] == b':') {
                continue;
            }
            let mut base = base.clone();
            let mut rest = &text[from..];
            while prefix == "super::" && rest.starts_with("super::") {
                base.pop();
                rest = &rest["super::".len()..];
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::c}`: the first segment of each item.
                for item in group.split('}').next().unwrap_or("").split(',') {
                    let first: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !first.is_empty() {
                        out.push([base.clone(), vec![first]].concat());
                    }
                }
                continue;
            }
            let segs: Vec<String> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            out.push([base.clone(), segs].concat());
        }
    }
    out
}

fn graph(mods: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, text) in mods {
        for p in paths(m, &without_tests_and_comments(text)) {
            let Some(t) = (1..=p.len()).rev().map(|k| p[..k].to_vec()).find(|k| mods.contains_key(k)) else { continue };
            if t.starts_with(m) || m.starts_with(&t) {
                continue;
            }
            g.entry(m.clone()).or_default().insert(t);
        }
    }
    g
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Module) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        if let Some(ws) = t.g.get(v) {
            for w in ws {
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let lw = t.low[w];
                    let lv = t.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if t.on.contains(w) {
                    let iw = t.index[w];
                    let lv = t.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.join("::"));
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn src() -> BTreeMap<Module, BTreeSet<Module>> {
    graph(&modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")))
}

#[test]
fn no_import_cycle_between_files() {
    let found = cycles(&src());
    assert!(found.is_empty(), "import cycles in src/: {found:?}");
}

#[test]
fn the_domain_never_imports_an_adapter_and_ops_only_the_domain() {
    let mut wrong = Vec::new();
    for (m, ts) in src() {
        let top = m[0].as_str();
        if ADAPTERS.contains(&top) {
            continue;
        }
        for t in ts {
            let to = t[0].as_str();
            let up = ADAPTERS.contains(&to) || (APPLICATION.contains(&to) && !APPLICATION.contains(&top));
            if up {
                wrong.push(format!("{} -> {}", m.join("::"), t.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "imports running up into adapters: {wrong:#?}");
}

#[test]
fn the_checker_sees_a_cycle_and_an_upward_import() {
    let mut mods = BTreeMap::new();
    mods.insert(vec!["a".to_string()], "use crate::b::X;".to_string());
    mods.insert(vec!["b".to_string()], "use crate::{a, c};".to_string());
    mods.insert(vec!["c".to_string()], "// use crate::a;\nfn f() {}".to_string());
    mods.insert(vec!["c".to_string(), "d".to_string()], "use super::super::a;".to_string());
    let g = graph(&mods);
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".to_string()]]);
    assert!(!g.contains_key(&vec!["c".to_string()]), "a comment is no import");
    assert!(g[&vec!["c".to_string(), "d".to_string()]].contains(&vec!["a".to_string()]), "super::super:: climbs two levels");
}
