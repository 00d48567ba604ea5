//! The layering check: ARCHITECTURE.md states the layers of each crate; this test reads every
//! `crate::` (and `super::`/`self::`) path in the sources and fails on an import that points
//! to a higher layer, or that closes a circle between two files. It needs no server.
//!
//! What counts as an import: any path in code (a `use`, or a path written inline), outside
//! comments, strings and `#[cfg(test)]` modules. A parent module's `pub use child::…` is its
//! facade, not a dependency, and `mod child;` is a declaration; every other path is an edge
//! from the file's module to the deepest module the path names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's sources: module path (`write::postgres`) → file.
struct Crate {
    root: PathBuf,
    modules: BTreeMap<String, PathBuf>,
    /// Names `lib.rs` re-exports from a module of its own (`Error` → `error`).
    reexports: BTreeMap<String, String>,
}

fn module_files(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> =
                rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] || parts.first().is_some_and(|p| p == "bin") {
                continue;
            }
            out.insert(parts.join("::"), p);
        }
    }
    out
}

impl Crate {
    fn open(root: &Path) -> Self {
        let modules = module_files(root);
        let lib = std::fs::read_to_string(root.join("lib.rs")).unwrap();
        let mut reexports = BTreeMap::new();
        for line in code_of(&lib).lines() {
            let Some(rest) = line.trim().strip_prefix("pub use ") else { continue };
            let Some((module, names)) = rest.split_once("::") else { continue };
            if !modules.contains_key(module) {
                continue;
            }
            for n in names.trim_matches(|c| c == '{' || c == '}' || c == ';').split(',') {
                reexports.insert(n.trim().to_string(), module.to_string());
            }
        }
        Crate { root: root.to_path_buf(), modules, reexports }
    }

    /// The deepest module a `crate::`-relative path names, if it is one of ours.
    fn resolve(&self, segments: &[String]) -> Option<String> {
        let first = segments.first()?;
        if !self.modules.contains_key(first) {
            return self.reexports.get(first).cloned();
        }
        let mut best = first.clone();
        for n in 2..=segments.len() {
            let candidate = segments[..n].join("::");
            if self.modules.contains_key(&candidate) {
                best = candidate;
            }
        }
        Some(best)
    }

    /// Modules declared `#[cfg(test)] mod name;`: test code, not part of the layers.
    fn test_modules(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (module, file) in &self.modules {
            let text = std::fs::read_to_string(file).unwrap();
            let mut rest = text.as_str();
            while let Some(at) = rest.find("#[cfg(test)]") {
                rest = &rest[at + 12..];
                let decl = rest.trim_start();
                if let Some(name) = decl.strip_prefix("mod ").and_then(|d| d.split(';').next()) {
                    if !name.contains('{') {
                        out.insert(format!("{module}::{}", name.trim()));
                    }
                }
            }
        }
        out
    }

    /// Every edge: (from module, to module), self-edges dropped.
    fn edges(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let tests = self.test_modules();
        for (module, file) in &self.modules {
            if tests.iter().any(|t| module == t || module.starts_with(&format!("{t}::"))) {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let here: Vec<String> = module.split("::").map(str::to_string).collect();
            for (kind, path, facade) in paths(&code_of(&text)) {
                // `super` of a.rs or a/mod.rs is the parent of `a` (once more per extra
                // `super`); `self` is `a`.
                let absolute = match kind {
                    Root::Crate => path,
                    Root::Super => {
                        let ups = 1 + path.iter().take_while(|s| *s == "super").count();
                        let base = &here[..here.len().saturating_sub(ups)];
                        [base, &path[ups - 1..]].concat()
                    }
                    Root::SelfMod => [here.clone(), path].concat(),
                };
                let Some(target) = self.resolve(&absolute) else { continue };
                let descendant = target.starts_with(&format!("{module}::"));
                if target == *module || (facade && descendant) {
                    continue;
                }
                out.insert((module.clone(), target));
            }
        }
        out
    }
}

#[derive(Clone, Copy)]
enum Root {
    Crate,
    Super,
    SelfMod,
}

/// The source without comments, string and char literals (replaced by spaces), and without
/// `#[cfg(test)]` items.
fn code_of(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
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
                    i += 1;
                }
            }
            out.push(' ');
            continue;
        }
        // Raw strings: r"…", r#"…"#, br#"…"#.
        if (c == 'r' || (c == 'b' && next == Some('r')))
            && !b.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            let mut j = if c == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) == Some(&'"') {
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
                continue;
            }
        }
        if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
            continue;
        }
        if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let close = if next == Some('\\') {
                (i + 2..b.len().min(i + 12)).find(|&j| b[j] == '\'')
            } else {
                (b.get(i + 2) == Some(&'\'')).then_some(i + 2)
            };
            if let Some(j) = close {
                out.push_str("' '");
                i = j + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    strip_test_modules(&out)
}

/// Drops every item that follows `#[cfg(test)]` (a `mod … { … }` or `mod …;`).
fn strip_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let end = match (after.find('{'), after.find(';')) {
            (Some(brace), semi) if semi.is_none_or(|s| brace < s) => {
                let mut depth = 0;
                let mut end = after.len();
                for (k, ch) in after[brace..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = brace + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (_, Some(semi)) => semi + 1,
            _ => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `crate::…`, `super::…` and `self::…` path of the code, expanded out of `{…}` groups;
/// `facade` marks the paths of a `pub use`.
fn paths(code: &str) -> Vec<(Root, Vec<String>, bool)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = |word: &str| {
            let w: Vec<char> = word.chars().collect();
            chars[i..].starts_with(&w) && (i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':')
        };
        let root = if starts("crate::") {
            Some((Root::Crate, 7))
        } else if starts("super::") {
            Some((Root::Super, 7))
        } else if starts("self::") {
            Some((Root::SelfMod, 6))
        } else if starts("use ") {
            // `use child::…` names a child module (or an external crate, which resolves to
            // nothing of ours).
            let mut j = i + 4;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let k = (j..chars.len()).find(|&k| !is_ident(chars[k])).unwrap_or(chars.len());
            let word: String = chars[j..k].iter().collect();
            let relative =
                chars.get(k) == Some(&':') && !matches!(word.as_str(), "crate" | "super" | "self" | "");
            if relative {
                Some((Root::SelfMod, j - i))
            } else {
                i += 4;
                continue;
            }
        } else {
            None
        };
        let Some((root, len)) = root else {
            i += 1;
            continue;
        };
        let line_start =
            chars[..i].iter().rposition(|&c| c == '\n' || c == ';' || c == '}').map_or(0, |p| p + 1);
        let prefix: String = chars[line_start..i + len].iter().collect();
        let facade =
            prefix.trim_start().starts_with("pub use") || prefix.trim_start().starts_with("pub(crate) use");
        let (trees, end) = parse_tree(&chars, i + len);
        for t in trees {
            out.push((root, t, facade));
        }
        i = end.max(i + 1);
    }
    out
}

/// Parses a path (with `{…}` groups) from `at`; returns each full path and where it ended.
fn parse_tree(c: &[char], mut at: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        let start = at;
        while at < c.len() && is_ident(c[at]) {
            at += 1;
        }
        if at > start {
            prefix.push(c[start..at].iter().collect::<String>());
        }
        if c.get(at) == Some(&':') && c.get(at + 1) == Some(&':') {
            at += 2;
            if c.get(at) == Some(&'{') {
                at += 1;
                let mut all = Vec::new();
                loop {
                    while at < c.len() && c[at].is_whitespace() {
                        at += 1;
                    }
                    if c.get(at) == Some(&'}') {
                        at += 1;
                        break;
                    }
                    let (subs, end) = parse_tree(c, at);
                    for s in subs {
                        all.push([prefix.clone(), s].concat());
                    }
                    at = end;
                    while at < c.len() && (c[at].is_whitespace() || c[at] == ',') {
                        at += 1;
                    }
                    // `x as y`: skip the alias.
                    if c[at..].starts_with(&['a', 's', ' ']) {
                        at += 3;
                        while at < c.len() && is_ident(c[at]) {
                            at += 1;
                        }
                    }
                    if at >= c.len() {
                        break;
                    }
                }
                return (all, at);
            }
            continue;
        }
        return (vec![prefix], at);
    }
}

/// The layers of a crate, from ARCHITECTURE.md's block `<!-- layers: NAME -->`: module →
/// layer number (1 is the lowest).
fn layers(name: &str) -> BTreeMap<String, usize> {
    let arch =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    let start = format!("<!-- layers: {name} -->");
    let at = arch.find(&start).unwrap_or_else(|| panic!("ARCHITECTURE.md has no block {start}"));
    let block = &arch[at + start.len()..];
    let block = &block[..block.find("<!-- end layers -->").expect("the layers block is closed")];
    let mut out = BTreeMap::new();
    for line in block.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(n) =
            cells.get(1).and_then(|c| c.split_whitespace().next()).and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        for m in cells.get(2).unwrap_or(&"").split(',') {
            let m = m.trim().trim_matches('`').trim_end_matches('/');
            if !m.is_empty() {
                assert!(out.insert(m.to_string(), n).is_none(), "{m} is in two layers of {name}");
            }
        }
    }
    out
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap()
}

/// The violations of a crate: imports that point up, and circles between files.
fn violations(krate: &Crate, layer: &BTreeMap<String, usize>) -> Vec<String> {
    let mut bad = Vec::new();
    let tests = krate.test_modules();
    for m in krate.modules.keys().filter(|m| !tests.contains(*m)) {
        if !layer.contains_key(top(m)) {
            bad.push(format!("module {} is in no layer of ARCHITECTURE.md", top(m)));
        }
    }
    bad.dedup();
    let edges = krate.edges();
    for (from, to) in &edges {
        let (a, b) = (top(from), top(to));
        if let (Some(la), Some(lb)) = (layer.get(a), layer.get(b)) {
            if lb > la {
                bad.push(format!("{from} (layer {la}) imports {to} (layer {lb}): an import that points up"));
            }
        }
    }
    // Circles: depth-first search over the file graph.
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in &edges {
        graph.entry(from.as_str()).or_default().push(to.as_str());
    }
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        n: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        bad: &mut Vec<String>,
    ) {
        state.insert(n, 1);
        stack.push(n);
        for &m in graph.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                0 => visit(m, graph, state, stack, bad),
                1 => {
                    let from = stack.iter().position(|&s| s == m).unwrap();
                    let mut circle: Vec<&str> = stack[from..].to_vec();
                    circle.push(m);
                    bad.push(format!("a circle of imports: {}", circle.join(" -> ")));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n, 2);
    }
    for n in graph.keys().copied().collect::<Vec<_>>() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            visit(n, &graph, &mut state, &mut Vec::new(), &mut bad);
        }
    }
    let _ = &krate.root;
    bad
}

fn check(name: &str, src: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
    let krate = Crate::open(&root);
    let bad = violations(&krate, &layers(name));
    assert!(bad.is_empty(), "{name}: {} layering violations:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn the_engine_crate_imports_only_down_its_layers_and_has_no_circle() {
    check("scansync", "src");
}

#[test]
fn the_parse_crate_imports_only_down_its_layers_and_has_no_circle() {
    check("scansync-parse", "parse/src");
}

/// The check itself: an import that points up, and a circle, are both found.
#[test]
fn the_check_finds_an_upward_import_and_a_circle() {
    let dir = std::env::temp_dir().join(format!("scansync-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("low")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod low;\npub mod high;\n").unwrap();
    std::fs::write(
        dir.join("low/mod.rs"),
        "//! low\npub mod a;\npub mod b;\nuse crate::high::Thing; // up\n",
    )
    .unwrap();
    std::fs::write(dir.join("low/a.rs"), "use super::b::X;\nfn f() { let s = \"crate::high\"; }\n").unwrap();
    std::fs::write(dir.join("low/b.rs"), "pub struct X;\nfn g() { crate::low::a::f(); }\n").unwrap();
    std::fs::write(dir.join("high.rs"), "use crate::low::{a, b::X};\npub struct Thing;\n").unwrap();
    let krate = Crate::open(&dir);
    let layer: BTreeMap<String, usize> = [("low".to_string(), 1), ("high".to_string(), 2)].into();
    let bad = violations(&krate, &layer);
    assert!(bad.iter().any(|v| v.contains("low (layer 1) imports high (layer 2)")), "{bad:?}");
    assert!(
        bad.iter().any(|v| v.contains("circle") && v.contains("low::a") && v.contains("low::b")),
        "{bad:?}"
    );
    assert!(
        !bad.iter().any(|v| v.contains("high (layer 2) imports")),
        "imports that point down pass: {bad:?}"
    );
    assert_eq!(bad.len(), 2, "one upward import, one circle: {bad:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
