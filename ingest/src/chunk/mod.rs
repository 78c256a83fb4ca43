//! Chunking: the [`Chunker`] trait, [`Chunk`], the size vocabulary ([`SizeUnit`],
//! [`TokenBudget`]) and the [`ChunkingStrategy`] config enum.
//!
//! # Lifecycle
//! A chunker is built once from configuration ([`ChunkingStrategy::build`]) and then called
//! with [`Chunker::split`] on any number of normalised texts, possibly from several threads at
//! once. `split` returns [`ChunkSpan`]s (byte spans plus token counts and heading paths);
//! [`Chunker::chunk`] / [`chunk_document`](crate::chunk_document) attach the document id,
//! ordinal, chunk text and char offsets.
//!
//! # Guarantees (checked for every chunker by the conformance suite in `chunk/tests.rs`)
//! - spans lie on grapheme-cluster boundaries and `&text[chunk.byte_span] == chunk.text`;
//!   chunk text is never empty and never starts or ends with whitespace;
//! - spans are in document order; except for [`SlidingChunker`] and a [`RecursiveChunker`] with
//!   overlap, they do not overlap and cover every non-whitespace character exactly once;
//! - every chunk has at most [`TokenBudget::max_tokens`] content tokens when re-tokenised on its
//!   own, and at most the configured size in its [`SizeUnit`]: no chunk is ever truncated by the
//!   embedder;
//! - output is deterministic.
//!
//! # Offsets
//! Spans are stored as byte offsets into the document's normalised text ([`Chunk::byte_span`],
//! used for slicing) and also reported as char (Unicode scalar value) offsets
//! ([`Chunk::char_span`]), which is what the user-facing API shows in citations.
//!
//! # Sizes
//! A size is a count of [`SizeUnit`]s. Whatever the unit, the embedder's token limit is also
//! enforced. Chunkers measure candidates against one tokenisation of the whole text (so cost is
//! linear in the text, not quadratic) and then verify each emitted chunk by re-tokenising it,
//! splitting it further in the rare case the in-context count was too low.
//!
//! The strategies live one per file: [`FixedChunker`], [`SlidingChunker`],
//! [`SemanticChunker`], [`RecursiveChunker`]; `measure.rs` holds the shared measuring,
//! splitting and packing machinery.

mod fixed;
mod measure;
mod recursive;
mod semantic;
mod sliding;
mod strategy;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use fixed::{FixedChunker, FixedConfig};
pub use recursive::{RecursiveChunker, RecursiveConfig};
pub use semantic::{BreakpointThreshold, SemanticChunker, SemanticConfig};
pub use sliding::{SlidingChunker, SlidingConfig};
pub use strategy::ChunkingStrategy;

use crate::document::{Document, SourceId};
use crate::embed::{Embedder, TokenCounter};
use crate::error::ChunkError;

/// The unit a chunk size is counted in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeUnit {
    /// Content tokens of the embedder's tokenizer (the default). Note that BERT-style
    /// tokenizers give each CJK ideograph its own token.
    #[default]
    Tokens,
    /// Extended grapheme clusters (user-perceived characters), whitespace not counted.
    Chars,
    /// UAX #29 words (segments containing a letter or digit). UAX #29 makes each Han ideograph
    /// and each hiragana character its own word, as BERT's tokenizer does, so a budget of N
    /// words is about N CJK characters: neither one giant chunk nor one chunk per character.
    Words,
}

/// The embedder's tokenizer and its hard limit: what "no chunk is truncated" is checked against.
#[derive(Clone)]
pub struct TokenBudget {
    counter: Arc<dyn TokenCounter>,
    max_tokens: usize,
}

impl TokenBudget {
    /// A budget of `max_tokens` content tokens as counted by `counter`.
    pub fn new(counter: Arc<dyn TokenCounter>, max_tokens: usize) -> Self {
        Self {
            counter,
            max_tokens,
        }
    }

    /// The budget of an embedder: its tokenizer and [`Embedder::max_content_tokens`].
    pub fn from_embedder(embedder: Arc<dyn Embedder>) -> Self {
        let max_tokens = embedder.max_content_tokens();
        Self::new(Arc::new(EmbedderTokens(embedder)), max_tokens)
    }

    /// The most content tokens one chunk may have.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The tokenizer.
    pub fn counter(&self) -> &dyn TokenCounter {
        self.counter.as_ref()
    }

    /// Checks a configured size against this budget: non-zero, and not above the token limit
    /// when counted in tokens.
    pub(crate) fn check_size(&self, size: usize, unit: SizeUnit) -> Result<(), ChunkError> {
        if size == 0 {
            return Err(ChunkError::ZeroSize { param: "size" });
        }
        if unit == SizeUnit::Tokens && size > self.max_tokens {
            return Err(ChunkError::OverModelLimit {
                size,
                limit: self.max_tokens,
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for TokenBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBudget")
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

/// Adapts an `Arc<dyn Embedder>` into an owned [`TokenCounter`].
struct EmbedderTokens(Arc<dyn Embedder>);

impl TokenCounter for EmbedderTokens {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        self.0.token_counter().token_spans(text)
    }
}

/// The texts of `chunker`'s spans of `text` (unit tests of the individual chunkers).
#[cfg(test)]
pub(crate) fn split_texts(chunker: &dyn Chunker, text: &str) -> Vec<String> {
    let spans = chunker.split(text).expect("split");
    spans
        .iter()
        .map(|s| text[s.byte_span.clone()].to_owned())
        .collect()
}

/// Checks `0 <= overlap < size` for the overlapping chunkers.
pub(crate) fn check_overlap(overlap: usize, size: usize) -> Result<(), ChunkError> {
    if overlap >= size {
        return Err(ChunkError::OverlapTooLarge { overlap, size });
    }
    Ok(())
}

/// A chunk as a [`Chunker`] produces it, before it is attached to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSpan {
    /// Byte span `[start, end)` in the chunked text.
    pub byte_span: Range<usize>,
    /// Content tokens of the chunk text, re-tokenised on its own.
    pub token_count: usize,
    /// Enclosing headings, outermost first (recursive chunker only; empty otherwise).
    pub heading_path: Vec<String>,
}

impl ChunkSpan {
    /// A span without a heading path (every chunker but the recursive one).
    pub fn flat(byte_span: Range<usize>, token_count: usize) -> Self {
        Self {
            byte_span,
            token_count,
            heading_path: Vec::new(),
        }
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The document it came from.
    pub doc_id: SourceId,
    /// 0-based position among the document's chunks.
    pub ordinal: usize,
    /// The chunk text: exactly `&document.text()[byte_span]`.
    pub text: String,
    /// Byte span `[start, end)` in the document's normalised text.
    pub byte_span: Range<usize>,
    /// Char (Unicode scalar value) span `[start, end)` in the normalised text: the offsets
    /// shown to users in citations.
    pub char_span: Range<usize>,
    /// Content tokens by the embedder's tokenizer.
    pub token_count: usize,
    /// Enclosing headings, outermost first (recursive chunker; empty for the others).
    pub heading_path: Vec<String>,
}

impl Chunk {
    /// The heading path joined for display, e.g. `Guide > Install > Linux`.
    pub fn heading_path_display(&self) -> String {
        self.heading_path.join(" > ")
    }
}

/// Splits normalised text into chunks.
///
/// Implementations are cheap to call, `Send + Sync`, and may be shared between threads; they
/// hold their configuration and the embedder's tokenizer. Only the semantic chunker calls the
/// embedding model, in batches. The guarantees every implementation must keep are listed in the
/// [module docs](self).
pub trait Chunker: Send + Sync {
    /// Short name of the strategy (`fixed`, `sliding`, `semantic`, `recursive`); defaults to
    /// the type name.
    fn name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }

    /// Splits `text` into chunk spans, in document order. Empty or whitespace-only text gives
    /// no spans.
    fn split(&self, text: &str) -> Result<Vec<ChunkSpan>, ChunkError>;

    /// Chunks a document: [`split`](Self::split) plus ids, ordinals, texts and char offsets.
    fn chunk(&self, doc: &Document) -> Result<Vec<Chunk>, ChunkError> {
        let spans = self.split(doc.text())?;
        Ok(attach(doc, spans))
    }
}

/// Turns spans into [`Chunk`]s, computing char offsets in one forward pass when spans are in
/// start order (they always are), so the cost stays linear in the text.
fn attach(doc: &Document, spans: Vec<ChunkSpan>) -> Vec<Chunk> {
    let text = doc.text();
    let (mut byte_pos, mut char_pos) = (0usize, 0usize);
    let mut chunks = Vec::with_capacity(spans.len());
    for (ordinal, span) in spans.into_iter().enumerate() {
        let ChunkSpan {
            byte_span,
            token_count,
            heading_path,
        } = span;
        if byte_span.start < byte_pos {
            (byte_pos, char_pos) = (0, 0);
        }
        char_pos += text[byte_pos..byte_span.start].chars().count();
        byte_pos = byte_span.start;
        let chunk_text = &text[byte_span.clone()];
        let char_span = char_pos..char_pos + chunk_text.chars().count();
        chunks.push(Chunk {
            doc_id: doc.id().clone(),
            ordinal,
            text: chunk_text.to_owned(),
            byte_span,
            char_span,
            token_count,
            heading_path,
        });
    }
    chunks
}
