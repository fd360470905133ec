//! Issue #13's bar for the layout, checked on the source text: the agent's layers and the
//! direction of their imports, no import circle between the modules of proto or server, no
//! file over 800 lines and no function over 80. Each rule is its own test, and a failure
//! names the file, the line and the rule, so a red run says what to fix.
//!
//! The scanner blanks comments and the insides of string and char literals first, so a
//! `crate::` in a doc comment or a `{` in a format string counts for nothing. `#[cfg(test)]`
//! code is scanned like any other: a test module must respect the layers too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 80;

/// The agent's layers, lowest first. A file in a layer may use `crate::X` only for X in its
/// own layer or a lower one.
const AGENT_LAYERS: &[&[&str]] = &[&["error", "platform"], &["store"], &["repo"], &["engine"], &["service"], &["cli"]];

/// The crates whose files and functions are held to the size limits.
const SIZED_CRATES: &[&str] = &["agent", "server", "proto", "tests"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lies in the workspace").to_path_buf()
}

/// A source file: its path relative to the workspace root, its text, and its code with
/// comments and literal contents blanked (same lines, same length).
struct Source {
    path: String,
    text: String,
    code: String,
}

impl Source {
    fn read(root: &Path, path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let rel = path.strip_prefix(root).unwrap_or(path).to_string_lossy().replace('\\', "/");
        Self { path: rel, code: code_only(&text), text }
    }

    /// The 1-based line of a byte offset in `code` (equal to the offset's line in `text`).
    fn line_of(&self, offset: usize) -> usize {
        self.code[..offset].matches('\n').count() + 1
    }
}

/// Every `.rs` file below `dir`, skipping build output, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && !name.to_string_lossy().starts_with('.') {
                    todo.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn sources(dir: &Path) -> Vec<Source> {
    let root = workspace_root();
    rust_files(dir).iter().map(|p| Source::read(&root, p)).collect()
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Replaces each character from `from` to `to` (exclusive) with a space, keeping newlines.
fn blank(out: &mut [char], from: usize, to: usize) {
    let to = to.min(out.len());
    for c in &mut out[from..to] {
        if *c != '\n' {
            *c = ' ';
        }
    }
}

/// `text` with comments and the insides of string, byte-string, raw-string and char literals
/// replaced by spaces. Lines, and the characters that remain, stay where they were.
fn code_only(text: &str) -> String {
    let s: Vec<char> = text.chars().collect();
    let mut out = s.clone();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = s[i..].iter().position(|&c| c == '\n').map_or(s.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if c == '/' && next == Some('*') {
            let end = block_comment_end(&s, i);
            blank(&mut out, i, end);
            i = end;
        } else if c == '"' {
            let end = string_end(&s, i + 1);
            blank(&mut out, i + 1, end - 1);
            i = end;
        } else if c == '\'' {
            i = char_literal(&s, &mut out, i);
        } else if is_ident_char(c) {
            let start = i;
            while i < s.len() && is_ident_char(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            if matches!(word.as_str(), "r" | "br" | "cr") {
                if let Some((body_start, end)) = raw_string(&s, i) {
                    blank(&mut out, body_start, end);
                    i = end;
                }
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// The index just past the `*/` closing the (nestable) block comment opened at `start`.
fn block_comment_end(s: &[char], start: usize) -> usize {
    let (mut depth, mut i) = (0usize, start);
    while i + 1 < s.len() {
        if s[i] == '/' && s[i + 1] == '*' {
            depth += 1;
            i += 2;
        } else if s[i] == '*' && s[i + 1] == '/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

/// The index just past the closing quote of a string whose contents start at `i`.
fn string_end(s: &[char], mut i: usize) -> usize {
    while i < s.len() {
        match s[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

/// For `r`, `br` or `cr` just read up to `i`: if a raw string follows (`#*"`), the range of
/// its contents and the index just past its closing `"#*`.
fn raw_string(s: &[char], i: usize) -> Option<(usize, usize)> {
    let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
    if s.get(i + hashes) != Some(&'"') {
        return None; // a raw identifier (`r#type`) or a plain name
    }
    let body = i + hashes + 1;
    let mut j = body;
    while j < s.len() {
        if s[j] == '"' && s[j + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes {
            return Some((body, j + 1 + hashes));
        }
        j += 1;
    }
    Some((body, s.len()))
}

/// At a `'`: blanks a char literal (`'x'`, `'\n'`, `'\u{1F600}'`) and returns the index past
/// it; a lifetime or label (`'a`) is left as it is.
fn char_literal(s: &[char], out: &mut [char], i: usize) -> usize {
    if s.get(i + 1) == Some(&'\\') {
        let close = s[i + 3..].iter().position(|&c| c == '\'').map_or(s.len(), |p| i + 3 + p);
        blank(out, i + 1, close);
        close + 1
    } else if s.get(i + 2) == Some(&'\'') {
        blank(out, i + 1, i + 2);
        i + 3
    } else {
        i + 1
    }
}

/// The identifier at byte offset `at` of `code` (empty if none).
fn ident_at(code: &str, at: usize) -> &str {
    let rest = &code[at..];
    let len = rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len());
    &rest[..len]
}

/// Each `crate::X` in code, as (byte offset, X). A group `crate::{a::b, c}` yields `a` and
/// `c`; `$crate::` in macros counts too.
fn crate_refs(code: &str) -> Vec<(usize, String)> {
    let mut refs = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].chars().next_back().is_some_and(is_ident_char) {
            continue; // `my_crate::`
        }
        let after = at + "crate::".len();
        let rest = code[after..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let group_at = code.len() - group.len();
            let mut depth = 0;
            let mut expect_name = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expect_name = true,
                    c if expect_name && is_ident_char(c) => {
                        refs.push((at, ident_at(code, group_at + k).to_string()));
                        expect_name = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(code, code.len() - rest.len());
            if !name.is_empty() {
                refs.push((at, name.to_string()));
            }
        }
    }
    refs
}

/// The names a crate root re-exports (`pub use m::{A, B as C};`), each mapped to its module.
fn root_reexports(lib: &Source) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for (at, _) in lib.code.match_indices("pub use ") {
        let stmt = &lib.code[at + "pub use ".len()..];
        let stmt = &stmt[..stmt.find(';').unwrap_or(stmt.len())];
        let stmt = stmt.trim_start().trim_start_matches("self::");
        let module = ident_at(stmt, 0).to_string();
        let tokens: Vec<&str> = stmt.split(|c: char| !is_ident_char(c) && c != ':').filter(|t| !t.is_empty()).collect();
        for (k, t) in tokens.iter().enumerate() {
            let renamed = tokens.get(k + 1) == Some(&"as");
            if !t.ends_with("::") && *t != "as" && !renamed {
                let name = t.rsplit("::").next().unwrap_or(t);
                names.insert(name.to_string(), module.clone());
            }
        }
    }
    names
}

/// The top-level module a file of `src` belongs to (`src/x.rs` and `src/x/**` are `x`), or
/// `None` for the crate roots `lib.rs` and `main.rs`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().to_string();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.strip_suffix(".rs").unwrap_or(f).to_string()),
    }
}

/// The top-level modules of a crate's `src`: its files and folders other than the roots.
fn modules(src: &Path) -> BTreeSet<String> {
    let entries = std::fs::read_dir(src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| module_of(src, &p))
        .collect()
}

/// A use of one module by another: where it is written.
struct Edge {
    at: String,
    what: String,
}

/// The module graph of a crate: for each module, the modules it names through `crate::`
/// (directly or through a re-export of the crate root), with the first place it does.
fn module_graph(krate: &str) -> BTreeMap<String, BTreeMap<String, Edge>> {
    let src = workspace_root().join(krate).join("src");
    let mods = modules(&src);
    let reexports = root_reexports(&Source::read(&workspace_root(), &src.join("lib.rs")));
    let mut graph: BTreeMap<String, BTreeMap<String, Edge>> =
        mods.iter().map(|m| (m.clone(), BTreeMap::new())).collect();
    for file in rust_files(&src) {
        let Some(from) = module_of(&src, &file) else { continue };
        let source = Source::read(&workspace_root(), &file);
        for (at, name) in crate_refs(&source.code) {
            let to = if mods.contains(&name) { Some(name.clone()) } else { reexports.get(&name).cloned() };
            let Some(to) = to.filter(|t| *t != from) else { continue };
            let edge = Edge { at: format!("{}:{}", source.path, source.line_of(at)), what: format!("crate::{name}") };
            graph.entry(from.clone()).or_default().entry(to).or_insert(edge);
        }
    }
    graph
}

/// The shortest path of edges from `from` back to `from`, if there is one.
fn cycle_through(graph: &BTreeMap<String, BTreeMap<String, Edge>>, from: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(m) = queue.pop_front() {
        for to in graph.get(m).into_iter().flat_map(|e| e.keys()) {
            if to == from {
                let mut path = vec![from.to_string(), m.to_string()];
                let mut at = m;
                while at != from {
                    at = came_from[at];
                    path.push(at.to_string());
                }
                path.reverse();
                return Some(path);
            }
            if !came_from.contains_key(to.as_str()) && to != from {
                came_from.insert(to, m);
                queue.push_back(to);
            }
        }
    }
    None
}

/// One line per import circle among the modules of `krate/src`, each with where every step
/// is written. Modules on a circle already reported are not reported again.
fn import_circles(krate: &str) -> Vec<String> {
    let graph = module_graph(krate);
    let mut seen = BTreeSet::new();
    let mut circles = Vec::new();
    for m in graph.keys() {
        if seen.contains(m) {
            continue;
        }
        let Some(path) = cycle_through(&graph, m) else { continue };
        let steps: Vec<String> = path
            .windows(2)
            .map(|w| {
                let e = &graph[&w[0]][&w[1]];
                format!("{} -> {} ({}: `{}`)", w[0], w[1], e.at, e.what)
            })
            .collect();
        seen.extend(path);
        circles.push(format!("import circle in {krate}/src: {}", steps.join(", ")));
    }
    circles
}

/// Each function with a body in the code: (byte offset of `fn`, name, lines from the `fn`
/// line to the closing brace's line, both included).
fn functions(source: &Source) -> Vec<(usize, String, usize)> {
    let code = &source.code;
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    for (at, _) in code.match_indices("fn") {
        let before_ok = !code[..at].chars().next_back().is_some_and(is_ident_char);
        let after = &code[at + 2..];
        let gap = after.len() - after.trim_start().len();
        let name = ident_at(code, at + 2 + gap);
        if !before_ok || gap == 0 || name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            continue; // not the keyword, or a `fn(..)` pointer type
        }
        let (mut nest, mut k) = (0i32, at + 2 + gap + name.len());
        let open = loop {
            match bytes.get(k) {
                None => break None,
                Some(b';') if nest == 0 => break None,
                Some(b'(' | b'[') => nest += 1,
                Some(b')' | b']') => nest -= 1,
                Some(b'{') if nest == 0 => break Some(k),
                _ => {}
            }
            k += 1;
        };
        let Some(open) = open else { continue };
        let mut depth = 0usize;
        let close = (open..bytes.len()).find(|&j| {
            match bytes[j] {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                _ => {}
            }
            depth == 0
        });
        let close = close.unwrap_or(bytes.len() - 1);
        out.push((at, name.to_string(), source.line_of(close) - source.line_of(at) + 1));
    }
    out
}

/// Fails the test with every violation of `rule`, one per line.
fn report(rule: &str, violations: Vec<String>) {
    if !violations.is_empty() {
        panic!("{} violation(s) of the rule: {rule}\n{}\n", violations.len(), violations.join("\n"));
    }
}

/// The layer of an agent module, 0 for the lowest.
fn agent_layer(module: &str) -> Option<usize> {
    AGENT_LAYERS.iter().position(|layer| layer.contains(&module))
}

fn agent_layer_names(up_to: usize) -> String {
    AGENT_LAYERS[..=up_to].iter().flat_map(|l| l.iter()).copied().collect::<Vec<_>>().join(", ")
}

#[test]
fn agent_src_holds_the_layer_folders_and_nothing_else() {
    let rule = "agent/src holds the layer folders platform, store, repo, engine, service, cli (each with its \
                mod.rs), and besides them only error.rs, lib.rs, main.rs";
    let src = workspace_root().join("agent/src");
    let folders = ["platform", "store", "repo", "engine", "service", "cli"];
    let mut violations: Vec<String> =
        folders.iter().filter(|f| !src.join(f).is_dir()).map(|f| format!("agent/src/{f}/: missing")).collect();
    let mut entries: Vec<_> = std::fs::read_dir(&src).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let ok = if path.is_dir() {
            folders.contains(&name.as_str())
        } else {
            ["error.rs", "lib.rs", "main.rs"].contains(&name.as_str())
        };
        if !ok {
            violations.push(format!("agent/src/{name}{}: not a layer", if path.is_dir() { "/" } else { "" }));
        }
    }
    report(rule, violations);
}

#[test]
fn agent_layers_use_only_their_own_or_lower_layers() {
    let rule = "in the agent, error/platform < store < repo < engine < service < cli: a file may use \
                `crate::X` only for X in its own layer or a lower one";
    let src = workspace_root().join("agent/src");
    let reexports = root_reexports(&Source::read(&workspace_root(), &src.join("lib.rs")));
    let mut violations = Vec::new();
    for file in rust_files(&src) {
        let Some(module) = module_of(&src, &file) else { continue };
        let source = Source::read(&workspace_root(), &file);
        let Some(own) = agent_layer(&module) else {
            violations.push(format!("{}: `{module}` is in no layer", source.path));
            continue;
        };
        for (at, name) in crate_refs(&source.code) {
            let target = match agent_layer(&name) {
                Some(_) => name.clone(),
                None => reexports.get(&name).cloned().unwrap_or_else(|| name.clone()),
            };
            let place = format!("{}:{}", source.path, source.line_of(at));
            match agent_layer(&target) {
                None => violations.push(format!("{place}: `crate::{name}` is in no layer")),
                Some(l) if l > own => violations.push(format!(
                    "{place}: `crate::{name}` ({target}) from {module}, which may use only {}",
                    agent_layer_names(own)
                )),
                Some(_) => {}
            }
        }
    }
    report(rule, violations);
}

#[test]
fn proto_modules_import_no_circle() {
    report("the modules of proto/src import each other without a circle", import_circles("proto"));
}

#[test]
fn server_modules_import_no_circle() {
    report("the modules of server/src import each other without a circle", import_circles("server"));
}

#[test]
fn no_source_file_is_over_800_lines() {
    let rule = format!("no .rs file in {} is over {MAX_FILE_LINES} lines", SIZED_CRATES.join(", "));
    let root = workspace_root();
    let violations = SIZED_CRATES
        .iter()
        .flat_map(|c| sources(&root.join(c)))
        .filter_map(|s| {
            let n = s.text.lines().count();
            (n > MAX_FILE_LINES).then(|| format!("{}:{}: {n} lines", s.path, MAX_FILE_LINES + 1))
        })
        .collect();
    report(&rule, violations);
}

#[test]
fn no_function_is_over_80_lines() {
    let rule = format!(
        "no function in {} is over {MAX_FN_LINES} lines (from its `fn` line to its closing brace)",
        SIZED_CRATES.join(", ")
    );
    let root = workspace_root();
    let mut violations = Vec::new();
    for source in SIZED_CRATES.iter().flat_map(|c| sources(&root.join(c))) {
        for (at, name, lines) in functions(&source) {
            if lines > MAX_FN_LINES {
                violations.push(format!("{}:{}: fn {name} is {lines} lines", source.path, source.line_of(at)));
            }
        }
    }
    report(&rule, violations);
}

// The scanner itself: a miscount here would make the rules above lie.

fn scan(text: &str) -> Source {
    Source { path: "test.rs".into(), text: text.into(), code: code_only(text) }
}

#[test]
fn scanner_blanks_comments_strings_and_chars_but_not_lifetimes() {
    const INPUT: &str = r##"a // crate::x {
b /* c /* crate::y */ { */ "crate::z {\"}" '{' '\'' '\u{7B}' <'a> r#"}"# br"{" r#fn"##;
    let code = code_only(INPUT);
    assert!(!code.contains("crate::") && !code.contains('{') && !code.contains('}'), "{code}");
    assert!(code.contains("<'a>") && code.contains("r#fn") && code.starts_with("a "), "{code}");
    assert_eq!(code.lines().count(), 2);
    assert_eq!(code.chars().count(), INPUT.chars().count());
}

#[test]
fn crate_references_include_groups_and_skip_other_crates() {
    let code = code_only(
        "use crate::{store::{A, B}, repo};\nuse arka_crate::x;\nlet e = crate::Error::X;\n$crate::engine::f()",
    );
    let names: Vec<String> = crate_refs(&code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["store", "repo", "Error", "engine"]);
}

#[test]
fn function_lengths_match_braces_outside_literals() {
    let s = scan("fn a() {\n    let s = \"}}}\";\n    let c = '}';\n}\ntrait T { fn b(&self); }\nfn c(x: [u8; 2]) -> fn(u8) {\n\n}\n");
    let found: Vec<(String, usize)> = functions(&s).into_iter().map(|(_, n, l)| (n, l)).collect();
    assert_eq!(found, [("a".to_string(), 4), ("c".to_string(), 3)]);
}

#[test]
fn circles_are_found_with_every_step() {
    let edge = |at: &str| Edge { at: at.into(), what: String::new() };
    let mut graph: BTreeMap<String, BTreeMap<String, Edge>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into(), edge("a.rs:1"));
    graph.entry("b".into()).or_default().insert("c".into(), edge("b.rs:1"));
    graph.entry("c".into()).or_default().insert("a".into(), edge("c.rs:1"));
    graph.entry("d".into()).or_default().insert("a".into(), edge("d.rs:1"));
    assert_eq!(cycle_through(&graph, "a").unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(cycle_through(&graph, "d"), None);
}
