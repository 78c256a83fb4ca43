//! ragd ingestion: turns input files into normalised [`Document`]s and documents into chunks.
//!
//! This crate reads input and nothing else: it knows nothing of storage, gRPC or candle. The
//! embedding model reaches it only through the [`Embedder`] / [`TokenCounter`] traits.
//!
//! - [`parse`]: loaders for `.txt`, `.md`, `.html`, `.pdf`, `.jsonl` and directories
//!   ([`load_path`] → [`LoadReport`]);
//! - [`document`]: [`Document`] and text normalisation ([`normalize_text`]);
//! - [`chunk`]: the [`Chunker`] trait, its four strategies and [`ChunkingStrategy`];
//! - [`embed`]: the model seam; [`testing`]: test doubles that need no weights.
//!
//! ```
//! use std::sync::Arc;
//! use ragd_ingest::{chunk_document, ChunkingStrategy, Document, testing::HashEmbedder};
//!
//! let doc = Document::new("guide.md".into(), "Guide", "# Guide\n\nHello world.", Default::default())
//!     .expect("non-empty");
//! let chunker = ChunkingStrategy::default().build(Arc::new(HashEmbedder::new())).unwrap();
//! let chunks = chunk_document(&doc, chunker.as_ref()).unwrap();
//! assert_eq!(chunks[0].text, "# Guide\n\nHello world.");
//! assert_eq!(chunks[0].heading_path_display(), "Guide");
//! ```
#![warn(missing_docs)]

pub mod chunk;
pub mod document;
pub mod embed;
pub mod error;
pub mod normalize;
pub mod parse;
pub mod sentences;
pub mod testing;

pub use chunk::{
    Chunk, ChunkSpan, Chunker, ChunkingStrategy, FixedChunker, RecursiveChunker, SemanticChunker,
    SizeUnit, SlidingChunker, TokenBudget,
};
pub use document::{Document, SourceId};
pub use embed::{EmbedError, Embedder, Embedding, HfTokenCounter, TokenCounter};
pub use error::{ChunkError, IngestError, Result};
pub use normalize::normalize_text;
pub use parse::{
    batches, load_bytes, load_path, present_documents, scan_path, stream_path, Batch,
    DocumentStream, Format, LoadOptions, LoadReport, Loaded, Present, ScanTotals, SkipReason,
};

/// Chunks a document with any chunker: ids, ordinals, texts, byte and char spans, token counts.
pub fn chunk_document(doc: &Document, chunker: &dyn Chunker) -> Result<Vec<Chunk>> {
    Ok(chunker.chunk(doc)?)
}
