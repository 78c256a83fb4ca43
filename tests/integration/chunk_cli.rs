//! `ragd chunk` end to end: the built binary, the real embedder's tokenizer, a Markdown file with
//! headings and a Chinese paragraph. Char spans in the output must reproduce the text of the
//! document as the ingest loader normalises it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

/// MiniLM's limit: 256 positions less `[CLS]` and `[SEP]`.
const MAX_CONTENT_TOKENS: usize = 254;

const GUIDE: &str = "# Guide\n\nragd turns documents into chunks, embeds them and answers \
questions.\n\n## Install\n\nRun `cargo build --release`. The binary lands in target/release.\r\n\
Models are fetched on first use.\n\n## 中文说明\n\n这是一个中文段落。分块器必须在字符边界上切分，\
并且保留标题路径；每个块的词元数量都不能超过模型的上限。检索时，引用使用字符偏移。\n";

/// One `--json` output line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    doc_id: String,
    ordinal: usize,
    start: usize,
    end: usize,
    tokens: usize,
    heading_path: Vec<String>,
    text: String,
}

fn ragd_chunk(file: &Path, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ragd"))
        .arg("chunk")
        .arg(file)
        .args(flags)
        .output()
        .expect("run ragd")
}

fn write_guide(dir: &Path) -> PathBuf {
    let path = dir.join("guide.md");
    std::fs::write(&path, GUIDE).unwrap();
    path
}

/// Runs `ragd chunk --json`, checks exit status, parsing, spans, ordinals and token counts.
fn chunk_json(file: &Path, flags: &[&str]) -> Vec<Line> {
    let out = ragd_chunk(file, &[flags, &["--json"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ragd chunk {flags:?} failed: {stderr}"
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let lines: Vec<Line> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect();
    assert!(!lines.is_empty(), "no chunks for {flags:?}");

    let report = ingest::load_path(file, &ingest::LoadOptions::default());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let chars: Vec<char> = report.documents[0].text().chars().collect();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.doc_id, "guide.md");
        assert_eq!(line.ordinal, i);
        assert!(line.start < line.end && line.end <= chars.len(), "{line:?}");
        let span: String = chars[line.start..line.end].iter().collect();
        assert_eq!(span, line.text, "span [{}, {})", line.start, line.end);
        assert!(
            line.tokens > 0 && line.tokens <= MAX_CONTENT_TOKENS,
            "{line:?}"
        );
    }
    lines
}

#[test]
fn recursive_json_spans_tokens_and_headings() {
    let dir = tempfile::tempdir().unwrap();
    let lines = chunk_json(&write_guide(dir.path()), &["--chunker", "recursive"]);
    assert!(
        lines.iter().all(|l| !l.heading_path.is_empty()),
        "{lines:?}"
    );
    let chinese = lines
        .iter()
        .find(|l| l.text.contains("中文段落"))
        .expect("the Chinese paragraph is chunked");
    assert_eq!(chinese.heading_path, ["Guide", "中文说明"]);
    assert!(lines
        .iter()
        .any(|l| l.heading_path == ["Guide", "Install"] && l.text.contains("cargo build")));
}

#[test]
fn sliding_json_windows_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--chunker", "sliding", "--size", "32", "--overlap", "8"];
    let lines = chunk_json(&write_guide(dir.path()), &flags);
    assert!(lines.len() >= 3, "{lines:?}");
    for pair in lines.windows(2) {
        assert!(pair[1].start < pair[0].end, "windows overlap: {pair:?}");
        assert!(pair[0].tokens <= 32, "{:?}", pair[0]);
    }
}

#[test]
fn empty_file_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.md");
    std::fs::write(&path, "").unwrap();
    let out = ragd_chunk(&path, &["--chunker", "recursive"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("empty.md"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn overlap_not_below_size_fails_explaining_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_guide(dir.path());
    let out = ragd_chunk(
        &path,
        &["--chunker", "sliding", "--size", "32", "--overlap", "40"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("overlap 40") && stderr.contains("32"),
        "{stderr}"
    );
    let out = ragd_chunk(&path, &["--chunker", "fixed", "--overlap", "4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--overlap"), "{stderr}");
}

#[test]
fn jsonl_bad_line_is_reported_and_the_rest_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.jsonl");
    let jsonl = "{\"_id\":\"a\",\"text\":\"Alpha is first.\"}\nnot json\n\
                 {\"_id\":\"b\",\"text\":\"第二个文档。\"}\n";
    std::fs::write(&path, jsonl).unwrap();
    let out = ragd_chunk(&path, &["--chunker", "fixed", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("docs.jsonl:2"), "{stderr}");
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Line>(l).unwrap().doc_id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
}
