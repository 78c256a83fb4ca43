//! The house rules of ARCHITECTURE.md, checked on the source: the service crate's modules form
//! layers, and every `crate::`/`super::` path in a file may only point down them; the rooms of
//! `src/model` likewise; and no two files of one folder import each other, directly or round a
//! longer circle (a folder's `mod.rs`, its face, may re-export its children).
//!
//! Paths are read from the text with comments removed, `use` groups (`{a, b::c}`) expanded, tests
//! included: a test of a low layer must not reach up either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The service crate's top-level modules, lowest first. A module may use those of lower layers
/// only (`lib.rs`, which starts the server, is above them all).
const LAYERS: &[&[&str]] = &[
    &["model", "metrics"],
    &["serving"],
    &["qdrant"],
    &["config"],
    &["error"],
    &["collections"],
    &["jobs", "rag", "snapshots"],
    &["wiring", "eval", "reindex"],
    &["state"],
    &["api"],
    &["grpc"],
    &["http"],
    &["server"],
    &["bench"],
    &["cli"],
];

/// The rooms of `src/model`, lowest first (`model/mod.rs` is their face).
const MODEL_ROOMS: &[&[&str]] = &[
    &["error", "cpu"],
    &["source"],
    &["encoder", "llm"],
    &["rerank"],
];

/// A module path, e.g. `["model", "llm", "gguf", "model"]`.
type ModPath = Vec<String>;

struct SourceFile {
    module: ModPath,
    /// Whether it is a folder's `mod.rs` (or `lib.rs`).
    face: bool,
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn crate_files(root: &Path) -> Vec<SourceFile> {
    let mut paths = Vec::new();
    rust_files(root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.file_name().unwrap() != "main.rs")
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().with_extension("");
            let mut module: ModPath = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let face = matches!(module.last().map(String::as_str), Some("mod" | "lib"));
            if face {
                module.pop();
            }
            let text = strip_comments(&std::fs::read_to_string(&p).unwrap());
            SourceFile { module, face, text }
        })
        .collect()
}

/// Removes `//` and `/* */` comments (doc comments included) and the contents of string
/// literals, so that prose and messages naming a module are not read as paths.
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let end = src[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            i = end;
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            let c = src[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path in `text` starting at `crate::` or `super::`, resolved against `module`, with
/// `use` groups expanded to their first segment.
fn referenced(text: &str, module: &[String]) -> BTreeSet<ModPath> {
    let mut out = BTreeSet::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_path = i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':');
        let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
        if !(starts_path && (rest.starts_with("crate::") || rest.starts_with("super::"))) {
            i += 1;
            continue;
        }
        // The module the path starts from: the crate root, or this file's module, which each
        // `super` climbs out of (a face's module is its folder, so its `super` is the folder's
        // parent, as in Rust).
        let mut base: ModPath = Vec::new();
        if rest.starts_with("super::") {
            base = module.to_vec();
        }
        let mut segs: ModPath = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            let seg: String = chars[start..j].iter().collect();
            match seg.as_str() {
                "crate" => base.clear(),
                "super" => {
                    base.pop();
                }
                "self" => {}
                "" => break,
                _ => segs.push(seg),
            }
            if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
                j += 2;
                if chars.get(j) == Some(&'{') {
                    for first in group_heads(&chars[j + 1..]) {
                        let mut p = base.clone();
                        p.extend(segs.iter().cloned());
                        p.push(first);
                        out.insert(p);
                    }
                    break;
                }
            } else {
                break;
            }
        }
        if !segs.is_empty() {
            let mut p = base;
            p.extend(segs);
            out.insert(p);
        }
        i = j.max(i + 1);
    }
    out
}

/// The first identifier of each item of a `{a::b, c, d::{e}}` group (after the `{`).
fn group_heads(chars: &[char]) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expecting = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expecting = true,
            c if is_ident(c) && expecting && depth == 0 => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word != "self" {
                    heads.push(word);
                }
                expecting = false;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// What each face re-exports: `model::ModelError` → `model::error` for `pub use error::ModelError`
/// in `model/mod.rs` (and `Config` → `config` for `pub use config::Config` in `lib.rs`).
fn re_exports(files: &[SourceFile]) -> BTreeMap<ModPath, ModPath> {
    let mut map = BTreeMap::new();
    for f in files.iter().filter(|f| f.face) {
        for stmt in f.text.split(';') {
            let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
                continue;
            };
            let Some((child, items)) = rest.split_once("::") else {
                continue;
            };
            if matches!(child, "crate" | "super" | "self") {
                continue;
            }
            // Every identifier that names an exported item: the last one of each path.
            for path in items.split([',', '{', '}']).map(str::trim) {
                if path.contains(" as ") || path.ends_with("self") {
                    continue;
                }
                let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
                if let Some(name) = path.rsplit("::").next().filter(|n| !n.is_empty()) {
                    let mut from = f.module.clone();
                    from.push(name.to_string());
                    let mut to = f.module.clone();
                    to.push(child.to_string());
                    map.insert(from, to);
                }
            }
        }
    }
    map
}

/// `path` with re-exported names replaced by the modules that define them.
fn resolve(mut path: ModPath, aliases: &BTreeMap<ModPath, ModPath>) -> ModPath {
    'again: for _ in 0..8 {
        for n in (1..=path.len()).rev() {
            if let Some(to) = aliases.get(&path[..n]) {
                let mut p = to.clone();
                p.extend_from_slice(&path[n..]);
                path = p;
                continue 'again;
            }
        }
        break;
    }
    path
}

fn rank(layers: &[&[&str]], name: &str) -> Option<usize> {
    layers.iter().position(|l| l.contains(&name))
}

/// `(from, to)` for every reference that goes sideways or up `layers`, among the modules at
/// `depth` under `prefix`.
fn layer_violations(files: &[SourceFile], prefix: &[&str], layers: &[&[&str]]) -> Vec<String> {
    let depth = prefix.len();
    let aliases = re_exports(files);
    let mut bad = Vec::new();
    for f in files {
        if f.module.len() <= depth || f.module[..depth] != *prefix {
            continue;
        }
        let from = &f.module[depth];
        let Some(from_rank) = rank(layers, from) else {
            bad.push(format!("{} is in no layer", f.module.join("::")));
            continue;
        };
        for path in referenced(&f.text, &f.module) {
            let path = resolve(path, &aliases);
            if path.len() <= depth || path[..depth] != *prefix || path[depth] == *from {
                continue;
            }
            match rank(layers, &path[depth]) {
                Some(r) if r < from_rank => {}
                _ => bad.push(format!(
                    "{} uses {} (not in a lower layer)",
                    f.module.join("::"),
                    path.join("::")
                )),
            }
        }
    }
    bad
}

/// Circles among the files of one folder: file → sibling edges from the paths each uses.
fn sibling_circles(files: &[SourceFile]) -> Vec<String> {
    let modules: BTreeSet<&ModPath> = files.iter().map(|f| &f.module).collect();
    let aliases = re_exports(files);
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for f in files.iter().filter(|f| !f.face && !f.module.is_empty()) {
        let parent = &f.module[..f.module.len() - 1];
        for path in referenced(&f.text, &f.module) {
            let path = resolve(path, &aliases);
            // The sibling module the path runs through, if any.
            if path.len() > parent.len() && path[..parent.len()] == *parent {
                let sibling: ModPath = path[..=parent.len()].to_vec();
                if sibling != f.module && modules.contains(&sibling) {
                    edges.entry(f.module.clone()).or_default().insert(sibling);
                }
            }
        }
    }
    let mut circles = Vec::new();
    for (start, _) in edges.iter() {
        // Depth-first search for a way back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    let names: Vec<String> = trail.iter().map(|m| m.join("::")).collect();
                    circles.push(format!("{} -> {}", names.join(" -> "), start.join("::")));
                } else if seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    circles
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

#[test]
fn service_modules_only_use_lower_layers() {
    let files = crate_files(&root().join("src"));
    let bad = layer_violations(&files, &[], LAYERS);
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn model_rooms_only_use_lower_rooms() {
    let files = crate_files(&root().join("src"));
    let bad = layer_violations(&files, &["model"], MODEL_ROOMS);
    assert!(bad.is_empty(), "model rooms broken:\n{}", bad.join("\n"));
}

#[test]
fn no_import_circles_between_files() {
    for krate in ["src", "index/src", "ingest/src"] {
        let files = crate_files(&root().join(krate));
        let circles = sibling_circles(&files);
        assert!(
            circles.is_empty(),
            "import circles in {krate}:\n{}",
            circles.join("\n")
        );
    }
}

#[test]
fn only_the_front_ends_know_their_transports() {
    // gRPC (tonic) is spoken by the API skins (grpc/, http/), by api/ (whose error codes are
    // gRPC's `Code`, which HTTP maps to its statuses) and by cli/; the command line (clap) in cli/
    // only: domain types and errors carry no status codes or argument parsers.
    let files = crate_files(&root().join("src"));
    let mut bad = Vec::new();
    for f in &files {
        let top = f.module.first().map(String::as_str);
        let allowed: &[&str] = match top {
            // qdrant/ is a gRPC client of Qdrant and reads its status codes.
            Some("grpc" | "http" | "api" | "qdrant") => &["tonic::"],
            Some("cli") => &["tonic::", "clap::"],
            _ => &[],
        };
        for word in ["tonic::", "clap::"] {
            if !allowed.contains(&word) && f.text.contains(word) {
                bad.push(format!("{} uses {word}", f.module.join("::")));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_unsafe_fn_says_what_its_caller_must_uphold() {
    // clippy checks that every `unsafe` block has its `// SAFETY:` note
    // (`undocumented_unsafe_blocks`) and public `unsafe fn`s their `# Safety` section; this
    // covers the private ones too.
    let mut bad = Vec::new();
    for krate in ["src", "index/src", "ingest/src"] {
        let mut paths = Vec::new();
        rust_files(&root().join(krate), &mut paths);
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") || !code.contains("unsafe fn ") {
                    continue;
                }
                let above = lines[..i]
                    .iter()
                    .rev()
                    .map(|l| l.trim_start())
                    .take_while(|l| l.starts_with("//") || l.starts_with("#["));
                if !above
                    .into_iter()
                    .any(|l| l.contains("# Safety") || l.contains("SAFETY:"))
                {
                    bad.push(format!("{}:{}: {}", path.display(), i + 1, code));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "unsafe fn without a safety note:\n{}",
        bad.join("\n")
    );
}

/// A file over this many lines keeps its unit tests in a sibling `tests.rs`, so that the code a
/// reader came for is not buried under them.
const INLINE_TESTS_MAX_LINES: usize = 600;

#[test]
fn long_files_keep_their_unit_tests_beside_them() {
    let mut bad = Vec::new();
    for krate in ["src", "index/src", "ingest/src"] {
        let mut paths = Vec::new();
        rust_files(&root().join(krate), &mut paths);
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = text.lines().count();
            if lines > INLINE_TESTS_MAX_LINES && text.contains("\nmod tests {") {
                bad.push(format!("{} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "files over {INLINE_TESTS_MAX_LINES} lines with inline unit tests (move them to a \
         sibling tests.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_sees_what_it_must() {
    // A path up the layers, a `use` group, `super`, a doc comment and a string that are not
    // code: the checker must flag exactly the real reference.
    let files = vec![SourceFile {
        module: vec!["model".into(), "encoder".into(), "bert".into()],
        face: false,
        text: strip_comments(
            "//! see crate::cli\nuse crate::{rag::Hit, model::cpu::kernels};\n\
             use super::super::super::serving::Gate;\
             use super::super::llm::Generator;\nfn f() { let _ = \"crate::grpc\"; }\n",
        ),
    }];
    let bad = layer_violations(&files, &[], LAYERS);
    assert_eq!(
        bad,
        [
            "model::encoder::bert uses rag (not in a lower layer)",
            "model::encoder::bert uses serving::Gate (not in a lower layer)",
        ]
    );
    let circle = vec![
        SourceFile {
            module: vec!["rag".into(), "answer".into()],
            face: false,
            text: "use super::grounding::ground;".into(),
        },
        SourceFile {
            module: vec!["rag".into(), "grounding".into()],
            face: false,
            text: "use crate::rag::answer::check;".into(),
        },
    ];
    assert_eq!(sibling_circles(&circle).len(), 2);
}
