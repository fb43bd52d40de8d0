//! The module map as a test: reads `host/src`, builds the import graph
//! between files from `use crate::…`, `use super::…`, `use self::…`, `use
//! child::…` and `crate::…`/`super::…` paths in code, and fails on
//!
//! - a cycle between top-level modules (`server` → `records` → `server`),
//! - a cycle between the files of one folder (`a.rs` → `b.rs` → `a.rs`),
//! - an import from the engine (`service`), `config` or `auth` into
//!   `server`, which is HTTP only,
//! - a `pub`, `pub(crate)` or `pub(super)` fn (or `type` alias) whose
//!   return type is `Result<_, String>`: an error that crosses a module
//!   boundary is its layer's thiserror type, so callers match variants,
//!   not message text. Named `file:line`.
//!
//! A path is resolved to the file of the longest module prefix it names;
//! a name that a module re-exports (`pub use x::Y`) is followed to the file
//! that defines it, so a folder's `mod.rs` that only re-exports is a front
//! door, not a dependency of its own children. Inline `mod tests { … }`
//! blocks count as part of their file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules that must not import `server`.
const BELOW_SERVER: &[&str] = &["service", "config", "auth"];

/// Imports that still close a cycle or reach into `server`, each waiting
/// on a change to a file this module map does not own yet: `(from, to,
/// why)`. They are left out of the graph; each must still exist, so the
/// list only shrinks.
const KNOWN: &[(&str, &str, &str)] = &[];

/// One source file: its module path (`["server", "config"]`), its
/// directory relative to `src` and its text without comments or strings.
struct File {
    rel: String,
    module: Vec<String>,
    dir: String,
    code: String,
}

fn source_files(root: &Path) -> Vec<File> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .expect("below src")
                .to_string_lossy()
                .replace('\\', "/");
            // The binary reaches the library as `stagegate::`, not `crate::`.
            if rel == "main.rs" {
                continue;
            }
            let mut module: Vec<String> = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_string)
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let dir = rel.rsplit_once('/').map_or("", |(d, _)| d).to_string();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push(File {
                rel,
                module,
                dir,
                code: strip(&text),
            });
        }
    }
    out
}

/// The text with comments, string and char literals blanked out, so a
/// `crate::` in a doc comment or a message is not an import.
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        // Newlines inside a blanked comment or literal, emitted after it so
        // that line numbers stay those of the file.
        let mut newlines = 0;
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    newlines += usize::from(b[i] == '\n');
                    i += 1;
                }
            }
            out.push(' ');
        } else if (c == 'r' || c == 'b')
            && raw_string_start(&b, i).is_some()
            && (i == 0 || !is_ident(b[i - 1]))
        {
            let (hashes, body) = raw_string_start(&b, i).expect("checked");
            i = body;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == '"' && (1..=hashes).all(|k| b.get(i + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                newlines += usize::from(b[i] == '\n');
                i += 1;
            }
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                newlines += usize::from(b.get(i) == Some(&'\n'));
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
        out.extend(std::iter::repeat_n('\n', newlines));
    }
    out
}

/// At `r"`, `r#"`, `br"`, …: the number of `#` and where the body starts.
fn raw_string_start(b: &[char], mut i: usize) -> Option<(usize, usize)> {
    if b[i] == 'b' {
        i += 1;
    }
    if b.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let mut hashes = 0;
    while b.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    (b.get(i) == Some(&'"')).then_some((hashes, i + 1))
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A lexed token: an identifier, `::`, or one punctuation character.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Path,
    Punct(char),
}

fn lex(code: &str) -> Vec<Tok> {
    lex_lines(code).into_iter().map(|(t, _)| t).collect()
}

/// The tokens of `code`, each with its 1-based line.
fn lex_lines(code: &str) -> Vec<(Tok, usize)> {
    let b: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            line += usize::from(c == '\n');
            i += 1;
        } else if is_ident(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            // `r#type`: the raw identifier is the word after the `#`.
            out.push((Tok::Ident(word), line));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// One import: the absolute module path it names and whether it is a
/// re-export (`pub use`), under which local name.
#[derive(Debug)]
struct Import {
    path: Vec<String>,
    reexport_as: Option<String>,
}

/// The imports of one file: `use` trees and qualified paths in code.
fn imports(file: &File, modules: &BTreeSet<Vec<String>>) -> Vec<Import> {
    let toks = lex(&file.code);
    let mut out = Vec::new();
    // Inline modules (`mod tests {`) with the brace depth they close at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let here = |inline: &Vec<(String, usize)>| {
            let mut m = file.module.clone();
            m.extend(inline.iter().map(|(n, _)| n.clone()));
            m
        };
        match &toks[i] {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                i += 1;
            }
            Tok::Ident(w) if w == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((name.clone(), depth));
                    depth += 1;
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Tok::Ident(w) if w == "use" => {
                let public = is_pub_before(&toks, i);
                let current = here(&inline);
                let (trees, end) = use_tree(&toks, i + 1);
                for (path, alias) in trees {
                    if let Some(abs) = absolute(&path, &current, modules, true) {
                        let local = alias.or_else(|| path.last().cloned());
                        out.push(Import {
                            path: abs,
                            reexport_as: if public { local } else { None },
                        });
                    }
                }
                i = end;
            }
            Tok::Ident(w)
                if (w == "crate" || w == "super" || w == "self")
                    && toks.get(i + 1) == Some(&Tok::Path)
                    && !matches!(i.checked_sub(1).map(|p| &toks[p]), Some(Tok::Path)) =>
            {
                let mut path = vec![w.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::Path) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(s)) => {
                            path.push(s.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                let current = here(&inline);
                if let Some(abs) = absolute(&path, &current, modules, false) {
                    out.push(Import {
                        path: abs,
                        reexport_as: None,
                    });
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    out
}

/// `pub use`, `pub(crate) use`, `pub(super) use`, `pub(in …) use`.
fn is_pub_before(toks: &[Tok], use_at: usize) -> bool {
    let mut k = use_at;
    if k >= 1 && toks[k - 1] == Tok::Punct(')') {
        while k > 0 && toks[k - 1] != Tok::Punct('(') {
            k -= 1;
        }
        k = k.saturating_sub(1);
    }
    k >= 1 && toks[k - 1] == Tok::Ident("pub".into())
}

/// A use tree's leaf: its path and its alias (`as name`), if any.
type Leaf = (Vec<String>, Option<String>);

/// Parses a use tree from `at` up to its `;`: every leaf path with its
/// alias (`a::{b, c::d as e, f::*}` → `a::b`, `a::c::d` as `e`, `a::f`).
fn use_tree(toks: &[Tok], at: usize) -> (Vec<Leaf>, usize) {
    let mut out = Vec::new();
    let end = parse_tree(toks, at, &mut Vec::new(), &mut out);
    let mut end = end;
    while end < toks.len() && toks[end] != Tok::Punct(';') {
        end += 1;
    }
    (out, end + 1)
}

fn parse_tree(toks: &[Tok], mut i: usize, prefix: &mut Vec<String>, out: &mut Vec<Leaf>) -> usize {
    let base = prefix.len();
    loop {
        match toks.get(i) {
            Some(Tok::Ident(s)) if s == "as" => {
                let alias = match toks.get(i + 1) {
                    Some(Tok::Ident(a)) => Some(a.clone()),
                    _ => None,
                };
                out.push((prefix.clone(), alias));
                i += 2;
                break;
            }
            Some(Tok::Ident(s)) => {
                prefix.push(s.clone());
                i += 1;
            }
            Some(Tok::Path) => i += 1,
            Some(Tok::Punct('*')) => {
                out.push((prefix.clone(), None));
                i += 1;
                break;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    i = parse_tree(toks, i, prefix, out);
                    match toks.get(i) {
                        Some(Tok::Punct(',')) => i += 1,
                        Some(Tok::Punct('}')) => {
                            i += 1;
                            break;
                        }
                        _ => break,
                    }
                    if toks.get(i) == Some(&Tok::Punct('}')) {
                        i += 1;
                        break;
                    }
                }
                break;
            }
            _ => {
                if prefix.len() > base {
                    out.push((prefix.clone(), None));
                }
                break;
            }
        }
    }
    prefix.truncate(base);
    i
}

/// The path as seen from the crate root, or `None` for another crate's.
/// In a `use`, a first segment naming a child module is relative.
fn absolute(
    path: &[String],
    current: &[String],
    modules: &BTreeSet<Vec<String>>,
    in_use: bool,
) -> Option<Vec<String>> {
    let mut segs = path.iter().peekable();
    let mut base: Vec<String> = match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segs.next();
            Vec::new()
        }
        Some("self") => {
            segs.next();
            current.to_vec()
        }
        Some("super") => {
            let mut b = current.to_vec();
            while segs.peek().map(|s| s.as_str()) == Some("super") {
                segs.next();
                b.pop();
            }
            b
        }
        Some(first) if in_use => {
            let mut child = current.to_vec();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
            current.to_vec()
        }
        _ => return None,
    };
    base.extend(segs.filter(|s| s.as_str() != "self").cloned());
    Some(base)
}

/// The file a path lands in: the longest module prefix, then through
/// the re-exports of that module's file.
fn resolve(
    path: &[String],
    files: &BTreeMap<Vec<String>, usize>,
    reexports: &[BTreeMap<String, Vec<String>>],
    hops: usize,
) -> Option<usize> {
    let mut n = path.len();
    while n > 0 && !files.contains_key(&path[..n]) {
        n -= 1;
    }
    if n == 0 {
        return None;
    }
    let file = files[&path[..n]];
    if hops < 8
        && let Some(next) = path.get(n)
        && let Some(target) = reexports[file].get(next)
    {
        let mut followed = target.clone();
        followed.extend_from_slice(&path[n + 1..]);
        if let Some(f) = resolve(&followed, files, reexports, hops + 1) {
            return Some(f);
        }
    }
    Some(file)
}

/// File-level edges (`from → to`, never a file to itself), re-exports
/// excluded: they are routing, followed during resolution.
fn graph(files: &[File]) -> BTreeSet<(usize, usize)> {
    let index: BTreeMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let modules: BTreeSet<Vec<String>> = index.keys().cloned().collect();
    let all: Vec<Vec<Import>> = files.iter().map(|f| imports(f, &modules)).collect();
    let reexports: Vec<BTreeMap<String, Vec<String>>> = all
        .iter()
        .map(|imps| {
            imps.iter()
                .filter_map(|i| i.reexport_as.clone().map(|n| (n, i.path.clone())))
                .collect()
        })
        .collect();
    let mut edges = BTreeSet::new();
    for (from, imps) in all.iter().enumerate() {
        for imp in imps.iter().filter(|i| i.reexport_as.is_none()) {
            if let Some(to) = resolve(&imp.path, &index, &reexports, 0)
                && to != from
            {
                edges.insert((from, to));
            }
        }
    }
    edges
}

/// Strongly connected components of more than one node (Tarjan).
fn cycles<N: Ord + Clone>(edges: &BTreeSet<(N, N)>) -> Vec<Vec<N>> {
    let nodes: BTreeSet<N> = edges
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let nodes: Vec<N> = nodes.into_iter().collect();
    let id = |n: &N| nodes.binary_search(n).expect("node");
    let mut adj = vec![Vec::new(); nodes.len()];
    for (a, b) in edges {
        adj[id(a)].push(id(b));
    }
    struct T {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(v: usize, adj: &[Vec<usize>], t: &mut T) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in &adj[v] {
            match t.index[w] {
                None => {
                    visit(w, adj, t);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                comp.push(w);
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
    let mut t = T {
        index: vec![None; nodes.len()],
        low: vec![0; nodes.len()],
        on: vec![false; nodes.len()],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..nodes.len() {
        if t.index[v].is_none() {
            visit(v, &adj, &mut t);
        }
    }
    t.out
        .into_iter()
        .map(|c| c.into_iter().map(|i| nodes[i].clone()).collect())
        .collect()
}

/// The shortest cycle through the nodes of `comp` (a strongly connected
/// component), as the list of its nodes in order.
fn shortest_cycle<N: Ord + Clone>(comp: &[N], edges: &BTreeSet<(N, N)>) -> Vec<N> {
    let mut best: Option<Vec<N>> = None;
    for start in comp {
        // Breadth-first from `start` back to `start`, inside the component.
        let mut prev: BTreeMap<N, N> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        let mut found = None;
        while let Some(n) = queue.pop_front() {
            for (_, m) in edges.iter().filter(|(a, b)| a == &n && comp.contains(b)) {
                if m == start {
                    found = Some(n.clone());
                    break;
                }
                if !prev.contains_key(m) {
                    prev.insert(m.clone(), n.clone());
                    queue.push_back(m.clone());
                }
            }
            if found.is_some() {
                break;
            }
        }
        if let Some(mut last) = found {
            let mut path = vec![last.clone()];
            while &last != start {
                last = prev[&last].clone();
                path.push(last.clone());
            }
            path.reverse();
            if best.as_ref().is_none_or(|b| path.len() < b.len()) {
                best = Some(path);
            }
        }
    }
    best.unwrap_or_default()
}

/// Every `pub`, `pub(crate)`, `pub(super)` or `pub(in …)` fn of `file`
/// whose signature returns `Result<_, String>`, and every such `type`
/// alias, as `file:line: …`. A string error cannot be matched on, so a
/// caller in another module that must tell one refusal from another ends
/// up comparing message text; each layer's thiserror enum is the error
/// that crosses a module boundary instead. Private helpers may keep a
/// `String` inside their file.
fn string_errors(file: &File) -> Vec<String> {
    let toks = lex_lines(&file.code);
    let t = |i: usize| toks.get(i).map(|(t, _)| t);
    let ident = |i: usize, w: &str| matches!(t(i), Some(Tok::Ident(x)) if x == w);
    let punct = |i: usize, c: char| t(i) == Some(&Tok::Punct(c));
    // From an opening bracket at `i`, the index after its match. `->`
    // inside (a closure bound's return) is not a closing `>`.
    let skip = |mut i: usize, open: char, close: char| {
        let mut depth = 0usize;
        while i < toks.len() {
            if punct(i, open) {
                depth += 1;
            } else if punct(i, close) && !(close == '>' && i > 0 && punct(i - 1, '-')) {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if !ident(i, "pub") {
            i += 1;
            continue;
        }
        let line = toks[i].1;
        let mut j = i + 1;
        if punct(j, '(') {
            j = skip(j, '(', ')');
        }
        while ident(j, "const") || ident(j, "async") || ident(j, "unsafe") || ident(j, "extern") {
            j += 1;
            // `extern "C"`: the blanked ABI string.
            while punct(j, '"') {
                j += 1;
            }
        }
        let kind = if ident(j, "fn") {
            "fn"
        } else if ident(j, "type") {
            "type"
        } else {
            i = j;
            continue;
        };
        let name = match t(j + 1) {
            Some(Tok::Ident(n)) => n.clone(),
            _ => {
                i = j + 1;
                continue;
            }
        };
        j += 2;
        if punct(j, '<') {
            j = skip(j, '<', '>');
        }
        // Where the return type (fn, after `(…) ->`) or the aliased type
        // (type, after `=`) starts.
        let start = if kind == "fn" && punct(j, '(') {
            j = skip(j, '(', ')');
            (punct(j, '-') && punct(j + 1, '>')).then_some(j + 2)
        } else if kind == "type" {
            punct(j, '=').then_some(j + 1)
        } else {
            None
        };
        let Some(ret) = start else {
            i = j;
            continue;
        };
        let what = format!("{kind} {name}");
        // The return type: a path ending in `Result`, then `<…>`.
        let mut k = ret;
        while matches!(t(k), Some(Tok::Ident(_))) && t(k + 1) == Some(&Tok::Path) {
            k += 2;
        }
        if ident(k, "Result") && punct(k + 1, '<') {
            let end = skip(k + 1, '<', '>') - 1;
            // The last top-level argument: the error type.
            let mut depth = 0usize;
            let mut last = k + 2;
            for m in k + 2..end {
                if punct(m, '<') || punct(m, '(') || punct(m, '[') {
                    depth += 1;
                } else if (punct(m, '>') && !punct(m - 1, '-')) || punct(m, ')') || punct(m, ']') {
                    depth = depth.saturating_sub(1);
                } else if punct(m, ',') && depth == 0 {
                    last = m + 1;
                }
            }
            let err: Vec<&Tok> = (last..end).filter_map(t).collect();
            let words: Vec<&str> = err
                .iter()
                .filter_map(|x| match x {
                    Tok::Ident(w) => Some(w.as_str()),
                    _ => None,
                })
                .collect();
            let only_path = err.iter().all(|x| matches!(x, Tok::Ident(_) | Tok::Path));
            if last > k + 2
                && only_path
                && words.last() == Some(&"String")
                && words[..words.len() - 1]
                    .iter()
                    .all(|w| ["std", "alloc", "string"].contains(w))
            {
                out.push(format!(
                    "{}:{line}: {what} returns Result<_, String>: give it its layer's error type",
                    file.rel
                ));
            }
        }
        i = ret;
    }
    out
}

/// Every problem with the tree at `root`, one line each.
fn violations(root: &Path, known: &[(&str, &str, &str)]) -> Vec<String> {
    let files = source_files(root);
    let mut edges = graph(&files);
    let top = |f: usize| files[f].module.first().cloned();
    let mut problems = Vec::new();
    for (from, to, _why) in known {
        let before = edges.len();
        edges.retain(|&(a, b)| !(files[a].rel == *from && files[b].rel == *to));
        if edges.len() == before {
            problems.push(format!(
                "{from} no longer imports {to}: remove it from architecture_test::KNOWN"
            ));
        }
    }

    // (a) Top-level modules; each edge named by the files that make it.
    let mut top_edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for &(a, b) in &edges {
        if let (Some(ta), Some(tb)) = (top(a), top(b))
            && ta != tb
        {
            top_edges
                .entry((ta, tb))
                .or_default()
                .push(format!("{} → {}", files[a].rel, files[b].rel));
        }
    }
    let keys: BTreeSet<(String, String)> = top_edges.keys().cloned().collect();
    for comp in cycles(&keys) {
        let cycle = shortest_cycle(&comp, &keys);
        let hops: Vec<String> = (0..cycle.len())
            .map(|i| {
                let (a, b) = (&cycle[i], &cycle[(i + 1) % cycle.len()]);
                let files = &top_edges[&(a.clone(), b.clone())];
                let more = files.len().saturating_sub(3);
                let mut shown = files.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
                if more > 0 {
                    shown.push_str(&format!(" and {more} more"));
                }
                format!("{a} → {b} ({shown})")
            })
            .collect();
        problems.push(format!(
            "cycle between top-level modules {}: {}",
            comp.join(", "),
            hops.join("; ")
        ));
    }

    // (b) The modules of one folder: its files, and each subfolder as one
    // module (`service/registry/` is one node of `service/`). The crate
    // root's folder is (a).
    let dirs: BTreeSet<&str> = files
        .iter()
        .map(|f| f.dir.as_str())
        .filter(|d| !d.is_empty())
        .collect();
    for dir in dirs {
        let node = |f: usize| -> Option<String> {
            let rel = &files[f].rel;
            let inside = rel.strip_prefix(dir)?.strip_prefix('/')?;
            Some(match inside.split_once('/') {
                Some((sub, _)) => format!("{dir}/{sub}/"),
                None => rel.clone(),
            })
        };
        let mut local: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for &(a, b) in &edges {
            if let (Some(na), Some(nb)) = (node(a), node(b))
                && na != nb
            {
                local
                    .entry((na, nb))
                    .or_default()
                    .push(format!("{} → {}", files[a].rel, files[b].rel));
            }
        }
        let keys: BTreeSet<(String, String)> = local.keys().cloned().collect();
        for comp in cycles(&keys) {
            let cycle = shortest_cycle(&comp, &keys);
            let hops: Vec<String> = (0..cycle.len())
                .flat_map(|i| {
                    let (a, b) = (&cycle[i], &cycle[(i + 1) % cycle.len()]);
                    local[&(a.clone(), b.clone())].iter().take(2).cloned()
                })
                .collect();
            let knot = if comp.len() > cycle.len() {
                format!(" (one circle of a knot of {})", comp.join(", "))
            } else {
                String::new()
            };
            problems.push(format!(
                "cycle between files {}: {}{knot}",
                cycle.join(" ⇄ "),
                hops.join(", ")
            ));
        }
    }

    // (c) Nothing below HTTP imports it.
    for &(a, b) in &edges {
        if let (Some(ta), Some(tb)) = (top(a), top(b))
            && BELOW_SERVER.contains(&ta.as_str())
            && tb == "server"
        {
            problems.push(format!(
                "{} imports {}: `{ta}` must not depend on `server`",
                files[a].rel, files[b].rel
            ));
        }
    }

    // (d) No string errors across a module boundary.
    for f in &files {
        problems.extend(string_errors(f));
    }

    problems
}

#[test]
fn modules_form_no_cycles_the_engine_does_not_depend_on_http_and_errors_are_typed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = violations(&root, KNOWN);
    assert!(
        problems.is_empty(),
        "{} architecture violation(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        dir
    }

    #[test]
    fn a_cycle_between_two_files_of_a_folder_is_named() {
        let t = tree(&[
            ("lib.rs", "mod a;"),
            ("a/mod.rs", "mod x; mod y;"),
            ("a/x.rs", "use super::y::Y;\npub struct X;"),
            (
                "a/y.rs",
                "pub struct Y;\nfn f() { let _ = crate::a::x::X; }",
            ),
        ]);
        let p = violations(t.path(), &[]);
        assert!(p.iter().any(|l| l.contains("a/x.rs ⇄ a/y.rs")), "{p:?}");
    }

    #[test]
    fn grouped_imports_and_top_level_cycles_are_found() {
        let t = tree(&[
            ("lib.rs", "mod a; mod b;"),
            ("a.rs", "use crate::{b::{B, C as D}, a};\npub struct A;"),
            ("b.rs", "use crate::a::A;\npub struct B; pub struct C;"),
        ]);
        let p = violations(t.path(), &[]);
        assert!(
            p.iter()
                .any(|l| l.starts_with("cycle between top-level modules a, b:")
                    && l.contains("a.rs → b.rs")
                    && l.contains("b.rs → a.rs")),
            "{p:?}"
        );
    }

    #[test]
    fn the_engine_importing_http_is_refused() {
        let t = tree(&[
            ("lib.rs", "mod service; mod server;"),
            ("service/mod.rs", "fn f(_: &crate::server::App) {}"),
            ("server/mod.rs", "pub struct App;"),
        ]);
        let p = violations(t.path(), &[]);
        assert_eq!(
            p,
            vec!["service/mod.rs imports server/mod.rs: `service` must not depend on `server`"]
        );
    }

    #[test]
    fn re_exports_comments_strings_and_test_modules_are_not_cycles() {
        let t = tree(&[
            ("lib.rs", "mod a;"),
            ("a/mod.rs", "mod x; mod y;\npub use x::X;\npub struct M;"),
            (
                "a/x.rs",
                "// crate::a::y::Y\npub struct X;\nconst S: &str = \"crate::a::y::Y\";\n#[cfg(test)]\nmod tests { use super::X; }",
            ),
            ("a/y.rs", "use super::X;\nuse super::M;"),
        ]);
        assert_eq!(violations(t.path(), &[]), Vec::<String>::new());
    }

    #[test]
    fn a_subfolder_is_one_module_of_its_folder() {
        let t = tree(&[
            ("lib.rs", "mod s;"),
            ("s/mod.rs", "mod r; mod q;"),
            ("s/r/mod.rs", "mod slots;"),
            ("s/r/slots.rs", "use crate::s::q::Q;\npub struct Slot;"),
            ("s/q.rs", "use super::r::slots::Slot;\npub struct Q;"),
        ]);
        let p = violations(t.path(), &[]);
        assert!(
            p.iter()
                .any(|l| l.starts_with("cycle between files s/q.rs ⇄ s/r/:")
                    || l.starts_with("cycle between files s/r/ ⇄ s/q.rs:")),
            "{p:?}"
        );
    }

    #[test]
    fn a_public_fn_returning_a_string_error_is_named_with_its_line() {
        let t = tree(&[
            ("lib.rs", "mod a;"),
            (
                "a.rs",
                "/* one\ntwo */\nconst S: &str = \"x\ny\";\n\
                 pub(crate) async fn load<F: Fn() -> u8>(f: F)\n    -> std::result::Result<Vec<(u8, String)>, String> { todo!() }\n\
                 fn private() -> Result<(), String> { Ok(()) }\n\
                 pub fn typed() -> Result<String, std::io::Error> { todo!() }\n\
                 pub type R<T> = Result<T, std::string::String>;\n\
                 pub fn nested() -> Result<(), Vec<String>> { Ok(()) }\n",
            ),
        ]);
        assert_eq!(
            violations(t.path(), &[]),
            vec![
                "a.rs:5: fn load returns Result<_, String>: give it its layer's error type",
                "a.rs:9: type R returns Result<_, String>: give it its layer's error type",
            ]
        );
    }

    #[test]
    fn a_known_import_that_is_gone_must_leave_the_list() {
        let t = tree(&[("lib.rs", "mod a;"), ("a.rs", "pub struct A;")]);
        assert_eq!(
            violations(t.path(), &[("a.rs", "b.rs", "why")]),
            vec!["a.rs no longer imports b.rs: remove it from architecture_test::KNOWN"]
        );
    }
}
