//! Every document loader on arbitrary bytes: `.txt`, `.md`, `.html`, `.pdf` and `.jsonl`, strict
//! and lossy UTF-8, through the same path as `load_path` (decoding, the format's loader,
//! `Document::new`'s normalisation). A loader returns documents or typed errors, never panics.
//!
//! Input: one byte choosing the format and options, then the file's bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ragd_ingest::{load_bytes, normalize_text, Format, LoadOptions};

const FORMATS: [(Format, &str); 5] = [
    (Format::Text, "doc.txt"),
    (Format::Markdown, "doc.md"),
    (Format::Html, "doc.html"),
    (Format::Pdf, "doc.pdf"),
    (Format::Jsonl, "doc.jsonl"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let (format, name) = FORMATS[usize::from(selector) % FORMATS.len()];
    let opts = LoadOptions {
        lossy_utf8: selector & 0x80 != 0,
        ..LoadOptions::default()
    };
    let path = Path::new(name);
    let report = load_bytes(path, format, bytes, &opts);
    // What the loaders promise of every document (document.rs): normalised, non-empty text and
    // a one-line normalised title.
    for doc in &report.documents {
        assert!(!doc.text().is_empty());
        assert_eq!(normalize_text(doc.text()), doc.text());
        assert!(!doc.title().contains('\n'));
        assert_eq!(doc.content_hash().len(), 64);
    }
    // Every error names the file it is about (parse/mod.rs: "nothing is dropped silently").
    for e in &report.errors {
        assert_eq!(e.path(), Some(path), "{e}");
        let _ = e.to_string();
    }
    // One document or one error per file; JSONL: at most one of either per line.
    if format == Format::Jsonl {
        let lines = bytes.split(|&b| b == b'\n').count();
        assert!(report.documents.len() + report.errors.len() <= lines.max(1));
    } else {
        assert_eq!(report.documents.len() + report.errors.len(), 1);
    }
});
