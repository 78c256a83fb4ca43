//! `ragd chunk`: load a file with the ingest loaders, chunk every document, print the chunks.
//!
//! The flags become one [`ChunkingStrategy`] (unset flags keep ingest's defaults), built once
//! against the real embedder: its tokenizer counts tokens and bounds every chunk, and the
//! semantic chunker also embeds with it. A JSONL file yields one document per line; a bad line
//! or file is reported on stderr and the remaining documents are still chunked. The command
//! fails only when no document could be chunked.
//!
//! Output: per chunk, a header line (document id, ordinal, char span `[start, end)`, tokens,
//! heading path) followed by the text; or, with `--json`, one object per line:
//! `{"doc_id","ordinal","start","end","tokens","heading_path","text"}` with char offsets into
//! the document's normalised text.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ingest::chunk::{FixedConfig, RecursiveConfig, SemanticConfig, SlidingConfig};
use ingest::{Chunk, Chunker, ChunkingStrategy, Document, Embedder, LoadOptions, SizeUnit};
use serde::Serialize;

use crate::config::Config;

/// `ragd chunk`.
#[derive(Debug, Args)]
pub struct ChunkArgs {
    /// The file to chunk: .txt, .md, .html, .pdf, or .jsonl (one document per line).
    pub file: PathBuf,
    /// The chunking strategy.
    #[arg(long, value_enum, default_value_t = ChunkerKind::Recursive)]
    pub chunker: ChunkerKind,
    /// Chunk size in --unit (for semantic: the maximum size) [default: 200].
    #[arg(long)]
    pub size: Option<usize>,
    /// Units shared by consecutive chunks; sliding and recursive only [default: sliding 50, or
    /// a quarter of --size when that is smaller; recursive 0].
    #[arg(long)]
    pub overlap: Option<usize>,
    /// What --size and --overlap count [default: tokens].
    #[arg(long, value_enum)]
    pub unit: Option<UnitArg>,
    /// Print one JSON object per chunk per line.
    #[arg(long)]
    pub json: bool,
}

/// The `--chunker` choices, one per [`ChunkingStrategy`] variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChunkerKind {
    /// Consecutive chunks of at most --size units, cut at word boundaries.
    Fixed,
    /// Windows of --size units, consecutive windows sharing --overlap units.
    Sliding,
    /// Cut where the embedding distance between neighbouring sentences peaks.
    Semantic,
    /// Headings, paragraphs, lines, sentences, words: split only as far as needed.
    Recursive,
}

impl ChunkerKind {
    fn name(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Sliding => "sliding",
            Self::Semantic => "semantic",
            Self::Recursive => "recursive",
        }
    }
}

/// The `--unit` choices, mirroring [`SizeUnit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnitArg {
    /// Content tokens of the embedder's tokenizer.
    Tokens,
    /// Grapheme clusters, whitespace not counted.
    Chars,
    /// UAX #29 words (each CJK ideograph is one word).
    Words,
}

impl From<UnitArg> for SizeUnit {
    fn from(u: UnitArg) -> Self {
        match u {
            UnitArg::Tokens => Self::Tokens,
            UnitArg::Chars => Self::Chars,
            UnitArg::Words => Self::Words,
        }
    }
}

/// One `--json` output line.
#[derive(Debug, Serialize)]
struct ChunkLine<'a> {
    doc_id: &'a str,
    ordinal: usize,
    start: usize,
    end: usize,
    tokens: usize,
    heading_path: &'a [String],
    text: &'a str,
}

/// Runs `ragd chunk`.
pub fn run(cfg: &Config, args: &ChunkArgs) -> anyhow::Result<()> {
    let strategy = strategy(args)?;
    let embedder: Arc<dyn Embedder> =
        Arc::new(crate::wiring::load_embedder(cfg).context("loading the embedding model")?);
    let chunker = strategy
        .build(embedder)
        .with_context(|| format!("invalid --chunker {} settings", args.chunker.name()))?;
    let documents = load(&args.file, &cfg.ingest)?;
    let out = std::io::stdout().lock();
    match print_all(&args.file, &documents, chunker.as_ref(), args.json, out) {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// The strategy the flags describe; unset flags keep ingest's defaults.
fn strategy(args: &ChunkArgs) -> anyhow::Result<ChunkingStrategy> {
    let kind = args.chunker;
    if args.overlap.is_some() && !matches!(kind, ChunkerKind::Sliding | ChunkerKind::Recursive) {
        anyhow::bail!(
            "--overlap applies only to --chunker sliding or recursive, not {}",
            kind.name()
        );
    }
    let unit = args.unit.map(SizeUnit::from);
    Ok(match kind {
        ChunkerKind::Fixed => {
            let d = FixedConfig::default();
            ChunkingStrategy::Fixed(FixedConfig {
                size: args.size.unwrap_or(d.size),
                unit: unit.unwrap_or(d.unit),
            })
        }
        ChunkerKind::Sliding => {
            let d = SlidingConfig::default();
            let size = args.size.unwrap_or(d.size);
            ChunkingStrategy::Sliding(SlidingConfig {
                size,
                overlap: args.overlap.unwrap_or(d.overlap.min(size / 4)),
                unit: unit.unwrap_or(d.unit),
            })
        }
        ChunkerKind::Semantic => ChunkingStrategy::Semantic(semantic(args.size, unit)),
        ChunkerKind::Recursive => {
            let d = RecursiveConfig::default();
            ChunkingStrategy::Recursive(RecursiveConfig {
                size: args.size.unwrap_or(d.size),
                overlap: args.overlap.unwrap_or(d.overlap),
                unit: unit.unwrap_or(d.unit),
            })
        }
    })
}

/// Semantic settings: `--size` is the maximum, and the minimum never exceeds it.
fn semantic(size: Option<usize>, unit: Option<SizeUnit>) -> SemanticConfig {
    let d = SemanticConfig::default();
    let max_size = size.unwrap_or(d.max_size);
    SemanticConfig {
        min_size: d.min_size.min(max_size),
        max_size,
        unit: unit.unwrap_or(d.unit),
        ..d
    }
}

/// Loads `path`; prints each bad document's error and fails only when none loaded.
fn load(path: &Path, opts: &LoadOptions) -> anyhow::Result<Vec<Document>> {
    let report = ingest::load_path(path, opts);
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if report.skipped_total() > 0 {
        eprintln!(
            "note: {}: {:?} entries skipped",
            path.display(),
            report.skipped
        );
    }
    if report.documents.is_empty() {
        anyhow::bail!(
            "{}: no document could be loaded ({} error(s))",
            path.display(),
            report.errors.len()
        );
    }
    Ok(report.documents)
}

/// Chunks and prints every document; a document that fails to chunk is reported and skipped.
fn print_all(
    path: &Path,
    documents: &[Document],
    chunker: &dyn Chunker,
    json: bool,
    mut out: impl Write,
) -> anyhow::Result<()> {
    let mut chunked = 0;
    for doc in documents {
        let chunks = match ingest::chunk_document(doc, chunker) {
            Ok(chunks) => chunks,
            Err(e) => {
                eprintln!("error: {}: document {}: {e}", path.display(), doc.id());
                continue;
            }
        };
        for chunk in &chunks {
            write_chunk(&mut out, chunk, json)?;
        }
        chunked += 1;
    }
    out.flush()?;
    if chunked == 0 {
        anyhow::bail!("{}: no document could be chunked", path.display());
    }
    Ok(())
}

fn write_chunk(out: &mut impl Write, chunk: &Chunk, json: bool) -> anyhow::Result<()> {
    if json {
        let line = ChunkLine {
            doc_id: chunk.doc_id.as_str(),
            ordinal: chunk.ordinal,
            start: chunk.char_span.start,
            end: chunk.char_span.end,
            tokens: chunk.token_count,
            heading_path: &chunk.heading_path,
            text: &chunk.text,
        };
        serde_json::to_writer(&mut *out, &line)?;
        writeln!(out)?;
    } else {
        let heading = match chunk.heading_path_display() {
            h if h.is_empty() => String::new(),
            h => format!("  heading: {h}"),
        };
        writeln!(
            out,
            "--- {} #{}  chars [{}, {})  {} tokens{heading}\n{}\n",
            chunk.doc_id,
            chunk.ordinal,
            chunk.char_span.start,
            chunk.char_span.end,
            chunk.token_count,
            chunk.text
        )?;
    }
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(chunker: ChunkerKind, size: Option<usize>, overlap: Option<usize>) -> ChunkArgs {
        ChunkArgs {
            file: PathBuf::from("x.md"),
            chunker,
            size,
            overlap,
            unit: None,
            json: false,
        }
    }

    #[test]
    fn unset_flags_keep_ingest_defaults() {
        let s = strategy(&args(ChunkerKind::Recursive, None, None)).unwrap();
        assert_eq!(s, ChunkingStrategy::default());
        let s = strategy(&args(ChunkerKind::Sliding, None, None)).unwrap();
        assert_eq!(s, ChunkingStrategy::Sliding(SlidingConfig::default()));
    }

    #[test]
    fn small_sizes_scale_the_implicit_limits() {
        let s = strategy(&args(ChunkerKind::Sliding, Some(32), None)).unwrap();
        assert!(matches!(s, ChunkingStrategy::Sliding(c) if c.overlap == 8));
        let s = strategy(&args(ChunkerKind::Semantic, Some(16), None)).unwrap();
        assert!(matches!(s, ChunkingStrategy::Semantic(c) if c.min_size == 16 && c.max_size == 16));
    }

    #[test]
    fn overlap_only_for_sliding_and_recursive() {
        for kind in [ChunkerKind::Fixed, ChunkerKind::Semantic] {
            let e = strategy(&args(kind, None, Some(4))).unwrap_err();
            assert!(e.to_string().contains("--overlap applies only"), "{e}");
        }
        assert!(strategy(&args(ChunkerKind::Recursive, None, Some(4))).is_ok());
    }
}
