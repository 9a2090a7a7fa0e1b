//! The workspace's shape, checked on its source: no import cycle between modules, and no
//! function longer than [`MAX_FUNCTION_LINES`] lines.
//!
//! *Cycles.* For every crate's `src`, each file is a module (`src/a/b.rs` and `src/a/b/mod.rs`
//! are `a::b`). A reference `crate::x::y`, `super::x` or `self::x` in a file is an edge from its
//! module to the module the path names (the longest prefix that is a file). An edge is drawn
//! between the two siblings under the modules' nearest common ancestor: `crate::report::charts`
//! referring to `crate::step1::Findings` is the edge `report -> step1`. A parent and its own
//! child (`mod x;`, `use super::*`) are one unit and draw no edge. Inside every module the graph
//! of its children must have no cycle; the check names the cycle it finds.
//!
//! *Long functions.* A `fn` body counts from the line of `fn` to its closing brace. Test
//! functions (`#[test]`) whose body is mostly a table of data (more than half its lines are
//! literal rows) are exempt; every other function, test or not, counts.
//!
//! Run `cargo test -p xtask --test code_shape -- --nocapture` to print the module graph and the
//! longest functions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a function may be, in lines.
const MAX_FUNCTION_LINES: usize = 120;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every `.rs` file under `dir`, sorted; `target` directories are skipped.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "corpus")
            {
                continue;
            }
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every crate of the workspace (its members: `crates/*` and `xtask`), by directory. The crates
/// outside it (`fuzz`, `bench/persist-bench`) build on their own and are not checked here.
fn crates() -> Vec<PathBuf> {
    let root = workspace();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs.push(root.join("xtask"));
    dirs
}

/// The source with comments, string literals and char literals blanked to spaces (newlines
/// kept), so braces and paths are only the code's.
fn code_only(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"') | Some('#')) && !ident_before(&b, i) {
            // A raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push('"');
            out.extend(b[i + 1..j.min(b.len())].iter().skip(1).map(|&c| blank(c)));
            i = j;
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = if next == Some('\\') {
                (i + 2..b.len().min(i + 12)).find(|&j| b[j] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(j) => {
                    out.push('\'');
                    out.extend(std::iter::repeat(' ').take(j - i - 1));
                    out.push('\'');
                    i = j + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

// ---------------------------------------------------------------------------------------------
// The module graph.

/// A module: its path inside its crate (`["report", "charts"]`).
type Module = Vec<String>;

/// The module a file under `src` is (`src/a/mod.rs` and `src/a.rs` are `a`; `lib.rs`, `main.rs`
/// are the root).
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if parts.is_empty() && matches!(stem, "lib" | "main") {
        return parts;
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// Every path a file refers to through `crate::`, `super::` or `self::`, resolved to an absolute
/// module path (unresolved: the item names are still on the end).
fn references(module: &Module, is_mod_rs: bool, code: &str) -> Vec<Module> {
    let b: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start_ok =
            i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_' || b[i - 1] == ':');
        let start_ok = start_ok || (i > 0 && b[i - 1] == '$');
        if start_ok {
            for head in ["crate", "super", "self"] {
                let n = head.len();
                if b.len() >= i + n + 2
                    && b[i..i + n].iter().copied().eq(head.chars())
                    && b[i + n] == ':'
                    && b[i + n + 1] == ':'
                {
                    let (paths, end) = use_tree(&b, i);
                    for p in paths {
                        if let Some(abs) = absolute(module, is_mod_rs, &p) {
                            found.push(abs);
                        }
                    }
                    i = end;
                    break;
                }
            }
        }
        i += 1;
    }
    found
}

/// Reads a path or a use tree starting at `i` (`crate::a::{b, c::d}`): every path it names.
fn use_tree(b: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        let start = i;
        while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
            i += 1;
        }
        if i > start {
            prefix.push(b[start..i].iter().collect::<String>());
        }
        let mut j = i;
        while j < b.len() && b[j].is_whitespace() {
            j += 1;
        }
        if j + 1 < b.len() && b[j] == ':' && b[j + 1] == ':' {
            i = j + 2;
            while i < b.len() && b[i].is_whitespace() {
                i += 1;
            }
            if i < b.len() && b[i] == '{' {
                let mut out = Vec::new();
                i += 1;
                loop {
                    while i < b.len() && (b[i].is_whitespace() || b[i] == ',') {
                        i += 1;
                    }
                    if i >= b.len() || b[i] == '}' {
                        return (out, i + 1);
                    }
                    let (inner, end) = use_tree(b, i);
                    for p in inner {
                        let mut full = prefix.clone();
                        full.extend(p);
                        out.push(full);
                    }
                    if end <= i {
                        i += 1;
                    } else {
                        i = end;
                    }
                    // Skip `as name`.
                    while i < b.len() && b[i] != ',' && b[i] != '}' {
                        i += 1;
                    }
                }
            }
            continue;
        }
        return (vec![prefix], i);
    }
}

/// `crate::a::b`, `super::x` or `self::x` seen from `module`, as a path from the crate root.
fn absolute(module: &Module, is_mod_rs: bool, path: &[String]) -> Option<Module> {
    let mut base = module.clone();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") | Some("super") => {
            // In `a/b.rs` (not a mod.rs) `self` is a::b too: files are their own modules.
            let _ = is_mod_rs;
            while let Some(head) = rest.first() {
                match head.as_str() {
                    "self" => rest = &rest[1..],
                    "super" => {
                        base.pop()?;
                        rest = &rest[1..];
                    }
                    _ => break,
                }
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The longest prefix of `path` that is a known module.
fn resolve(modules: &BTreeSet<Module>, path: &Module) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

/// A module graph: in each parent module, edges between its children (`from -> to`).
#[derive(Default, Debug)]
struct Graph {
    /// parent → (child → children it refers to)
    levels: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>>,
}

impl Graph {
    /// Adds the reference `from -> to` as an edge between siblings; a reference between an
    /// ancestor and its descendant adds nothing.
    fn add(&mut self, from: &Module, to: &Module) {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            return;
        }
        let parent = from[..common].to_vec();
        self.levels
            .entry(parent)
            .or_default()
            .entry(from[common].clone())
            .or_default()
            .insert(to[common].clone());
    }

    fn node(&mut self, m: &Module) {
        if let Some((last, parent)) = m.split_last() {
            self.levels
                .entry(parent.to_vec())
                .or_default()
                .entry(last.clone())
                .or_default();
        }
    }

    /// Every cycle found (one per strongly connected group), as `a -> b -> a` under its parent.
    fn cycles(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (parent, edges) in &self.levels {
            for cycle in find_cycles(edges) {
                let at = if parent.is_empty() {
                    "crate".to_string()
                } else {
                    parent.join("::")
                };
                out.push(format!("in {at}: {}", cycle.join(" -> ")));
            }
        }
        out
    }

    fn print(&self, name: &str, to: &mut String) {
        for (parent, edges) in &self.levels {
            let at = if parent.is_empty() {
                name.to_string()
            } else {
                format!("{name}::{}", parent.join("::"))
            };
            let mut line = format!("{at}:");
            let mut any = false;
            for (from, tos) in edges {
                if !tos.is_empty() {
                    any = true;
                    let list: Vec<&str> = tos.iter().map(String::as_str).collect();
                    line.push_str(&format!(" {from} -> {{{}}};", list.join(", ")));
                }
            }
            if any {
                to.push_str(&line);
                to.push('\n');
            }
        }
    }
}

/// Cycles in a directed graph: for each node on a cycle not yet reported, the cycle through it
/// (found by depth-first search), as the node names from the first back to the first.
fn find_cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut cycles = Vec::new();
    for start in edges.keys() {
        if reported.contains(start) {
            continue;
        }
        if let Some(cycle) = path_back(edges, start) {
            reported.extend(cycle.iter().cloned());
            cycles.push(cycle);
        }
    }
    cycles
}

/// The shortest path from `start` back to itself (breadth-first), if there is one.
fn path_back(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in edges.get(node).into_iter().flatten() {
            if next == start {
                let mut walk = Vec::new();
                let mut at = node;
                while at != start {
                    walk.push(at.to_string());
                    at = came_from[at];
                }
                walk.reverse();
                let mut path = vec![start.to_string()];
                path.extend(walk);
                path.push(start.to_string());
                return Some(path);
            }
            if !came_from.contains_key(next.as_str()) && next != start {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// One crate's module graph, from its `src` directory.
fn crate_graph(src: &Path) -> Graph {
    let files = rust_files(src);
    let modules: BTreeSet<Module> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graph = Graph::default();
    for file in &files {
        let module = module_of(src, file);
        graph.node(&module);
        let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        for reference in references(&module, is_mod_rs, &code) {
            let to = resolve(&modules, &reference);
            graph.add(&module, &to);
        }
    }
    graph
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let mut printed = String::new();
    let mut cycles = Vec::new();
    for dir in crates() {
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let graph = crate_graph(&src);
        graph.print(&name, &mut printed);
        cycles.extend(graph.cycles().into_iter().map(|c| format!("{name}: {c}")));
    }
    eprintln!("The module graph (edges between sibling modules):\n{printed}");
    assert!(
        cycles.is_empty(),
        "import cycles between modules:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle_and_passes_a_tree() {
    let graph = |pairs: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let acyclic = graph(&[("a", "b"), ("b", "c"), ("a", "c")]);
    assert!(find_cycles(&acyclic).is_empty());
    let cyclic = graph(&[
        ("build", "out"),
        ("out", "model"),
        ("model", "build"),
        ("x", "out"),
    ]);
    assert_eq!(
        find_cycles(&cyclic),
        vec![vec!["build", "out", "model", "build"]]
    );
    let two = graph(&[("charts", "step1"), ("step1", "charts")]);
    assert_eq!(find_cycles(&two), vec![vec!["charts", "step1", "charts"]]);
}

#[test]
fn references_between_files_become_edges_between_siblings() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |path: &str, text: &str| {
        let p = src.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "main.rs",
        "mod report; mod step1;\nuse crate::step1::Step1;\n",
    );
    write("report/mod.rs", "pub mod charts;\n");
    write(
        "report/charts.rs",
        "use crate::{step1::Findings, report::other};\n// crate::nothing::here\nconst S: &str = \"crate::step9\";\n",
    );
    write(
        "step1/mod.rs",
        "mod explain;\npub struct Findings;\nuse super::*;\n",
    );
    write(
        "step1/explain.rs",
        "use super::Findings;\nfn f() { crate::report::charts::draw(); }\n",
    );
    let g = crate_graph(src);
    let cycles = g.cycles();
    assert_eq!(
        cycles,
        vec!["in crate: report -> step1 -> report".to_string()]
    );
    // Break it: explain stops calling the chart.
    write("step1/explain.rs", "use super::Findings;\n");
    assert!(crate_graph(src).cycles().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Function lengths.

/// One function: where it is and how many lines it spans.
#[derive(Debug, PartialEq)]
struct Function {
    file: String,
    line: usize,
    name: String,
    lines: usize,
}

/// The functions in a file's code (comments and literals blanked): each `fn name` with a body,
/// from its `fn` line to its closing brace. Table-driven tests are left out.
fn functions(file: &str, src: &str) -> Vec<Function> {
    let code = code_only(src);
    let b: Vec<char> = code.chars().collect();
    let line_at = {
        let mut starts = vec![0usize];
        for (i, c) in b.iter().enumerate() {
            if *c == '\n' {
                starts.push(i + 1);
            }
        }
        move |i: usize| starts.partition_point(|&s| s <= i)
    };
    let src_lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 < b.len() {
        let is_fn = b[i] == 'f'
            && b[i + 1] == 'n'
            && b[i + 2].is_whitespace()
            && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_'));
        if !is_fn {
            i += 1;
            continue;
        }
        let name_start = (i + 2..b.len())
            .find(|&j| !b[j].is_whitespace())
            .unwrap_or(b.len());
        let name: String = b[name_start..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .collect();
        // The body: the first `{` at depth 0 of (), <> and [] before a `;` (a declaration).
        let mut j = name_start;
        let mut depth = 0i32;
        let mut body = None;
        while j < b.len() {
            match b[j] {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                ';' if depth == 0 => break,
                '{' if depth == 0 => {
                    body = Some(j);
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        let Some(open) = body else {
            i = j.max(i + 1);
            continue;
        };
        let mut k = open;
        let mut braces = 0;
        while k < b.len() {
            match b[k] {
                '{' => braces += 1,
                '}' => {
                    braces -= 1;
                    if braces == 0 {
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        let (first, last) = (line_at(i), line_at(k.min(b.len() - 1)));
        let body_lines = &src_lines[first.saturating_sub(1)..last.min(src_lines.len())];
        if !(is_test(&src_lines, first) && is_table(body_lines)) {
            out.push(Function {
                file: file.to_string(),
                line: first,
                name,
                lines: last - first + 1,
            });
        }
        // Nested functions are measured too: continue inside the body.
        i = open + 1;
    }
    out
}

/// Whether the `fn` on line `first` (1-based) carries `#[test]` just above it.
fn is_test(lines: &[&str], first: usize) -> bool {
    lines[..first.saturating_sub(1)]
        .iter()
        .rev()
        .take_while(|l| {
            let t = l.trim();
            t.starts_with("#[") || t.starts_with("///") || t.is_empty()
        })
        .any(|l| l.trim() == "#[test]")
}

/// A body that is mostly rows of literal data: lines that open with `(`, `[`, `"` or a number,
/// or a struct literal's `field: value,`.
fn is_table(body: &[&str]) -> bool {
    let rows = body
        .iter()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with('(')
                || t.starts_with('[')
                || t.starts_with('"')
                || t.starts_with(|c: char| c.is_ascii_digit())
        })
        .count();
    rows * 2 > body.len()
}

fn all_functions() -> Vec<Function> {
    let root = workspace();
    let mut all = Vec::new();
    for dir in crates() {
        for file in rust_files(&dir) {
            let text = std::fs::read_to_string(&file).unwrap();
            let rel = file.strip_prefix(&root).unwrap().display().to_string();
            all.extend(functions(&rel, &text));
        }
    }
    all.sort_by(|a, b| b.lines.cmp(&a.lines).then(a.file.cmp(&b.file)));
    all
}

#[test]
fn no_function_is_longer_than_the_limit() {
    let all = all_functions();
    let longest: Vec<String> = all
        .iter()
        .take(5)
        .map(|f| format!("  {} lines: {} ({}:{})", f.lines, f.name, f.file, f.line))
        .collect();
    eprintln!(
        "{} functions; the longest:\n{}",
        all.len(),
        longest.join("\n")
    );
    let over: Vec<String> = all
        .iter()
        .filter(|f| f.lines > MAX_FUNCTION_LINES)
        .map(|f| format!("{}:{} {} is {} lines", f.file, f.line, f.name, f.lines))
        .collect();
    assert!(
        over.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines:\n{}",
        over.join("\n")
    );
}

#[test]
fn the_measure_counts_bodies_not_braces_in_strings_or_comments() {
    let mut src = String::from("fn short() {\n    let s = \"}}}{\"; // }\n    let c = '}';\n}\n");
    src.push_str("/// Doc.\nfn long<'a>(x: &'a str) -> Vec<u8> {\n");
    for _ in 0..130 {
        src.push_str("    work(x);\n");
    }
    src.push_str("}\ntrait T { fn declared(&self); }\n");
    src.push_str("#[test]\nfn table() {\n    for (a, b) in [\n");
    for _ in 0..130 {
        src.push_str("        (1, 2),\n");
    }
    src.push_str("    ] {\n        check(a, b);\n    }\n}\n");
    let found = functions("x.rs", &src);
    let names: Vec<(&str, usize)> = found.iter().map(|f| (f.name.as_str(), f.lines)).collect();
    assert_eq!(names, vec![("short", 4), ("long", 132)]);
    assert!(found[1].lines > MAX_FUNCTION_LINES);
}
