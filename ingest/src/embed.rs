//! The embedding-model seam: [`Embedder`] and [`TokenCounter`].
//!
//! The ingest crate needs two things from an embedding model and nothing more: to count tokens
//! exactly as the model will (so that no chunk is ever truncated at embedding time), and, for the
//! semantic chunker, to embed sentences. Both are expressed as small synchronous traits. The
//! implementations live elsewhere (the candle MiniLM embedder in the service crate); the traits
//! stay here so that this crate knows nothing of candle.
//!
//! Contract for implementors:
//! - calls are blocking and may take a long time; callers in async code must run them on a
//!   blocking thread (the service uses tokio's blocking pool);
//! - implementations are `Send + Sync` and may be called from several threads at once;
//! - [`Embedder::embed`] returns one [`Embedding`] per input, in input order, each L2-normalised
//!   (unless [`Embedder::normalized`] says otherwise), and reports truncation instead of hiding it.

use std::ops::Range;

/// Error from an embedding backend.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The tokenizer rejected the input (the caller's text could not be encoded).
    #[error("tokenization failed: {0}")]
    Tokenize(String),
    /// The model failed while running (a backend fault, not the caller's).
    #[error("embedding model failed: {0}")]
    Model(String),
}

/// One embedded input.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The vector, of [`Embedder::dimension`] components.
    pub vector: Vec<f32>,
    /// Tokens of the input that the model saw, special tokens included.
    pub tokens: usize,
    /// True when the input was longer than the model's limit and its tail was cut off.
    pub truncated: bool,
}

/// Counts tokens the way an embedding model will.
pub trait TokenCounter: Send + Sync {
    /// Byte spans in `text` of each content token (special tokens such as `[CLS]` excluded), in
    /// order. Spans lie on char boundaries.
    fn token_spans(&self, text: &str) -> Vec<Range<usize>>;

    /// Number of content tokens in `text`.
    fn count(&self, text: &str) -> usize {
        self.token_spans(text).len()
    }
}

/// A batched, synchronous text embedder.
pub trait Embedder: Send + Sync {
    /// Identifier of the model, persisted in index manifests (e.g. `all-MiniLM-L6-v2`).
    fn model_id(&self) -> &str;

    /// Length of every vector this embedder returns.
    fn dimension(&self) -> usize;

    /// Everything that decides this embedder's vectors, as one string recorded with each
    /// collection (model, weights' digest, dimension, precision): two embedders with the same
    /// fingerprint make the same vectors. The default names only the model and the dimension.
    fn fingerprint(&self) -> String {
        format!("model={} dim={}", self.model_id(), self.dimension())
    }

    /// The most content tokens (excluding special tokens) one input may have without truncation.
    fn max_content_tokens(&self) -> usize;

    /// Whether returned vectors have unit L2 norm.
    fn normalized(&self) -> bool {
        true
    }

    /// The tokenizer the model uses, for exact token counting.
    fn token_counter(&self) -> &dyn TokenCounter;

    /// Embeds `texts`, returning one [`Embedding`] per input in the same order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>, EmbedError>;
}

/// A [`TokenCounter`] backed by a Hugging Face `tokenizers` tokenizer (the embedder's own).
pub struct HfTokenCounter {
    tokenizer: tokenizers::Tokenizer,
}

impl HfTokenCounter {
    /// Wraps a tokenizer. Truncation and padding are switched off: counting must see everything.
    pub fn new(mut tokenizer: tokenizers::Tokenizer) -> Self {
        tokenizer.with_padding(None);
        // Disabling truncation cannot fail; the error type only exists for invalid strides.
        let _ = tokenizer.with_truncation(None);
        Self { tokenizer }
    }

    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &std::path::Path) -> Result<Self, EmbedError> {
        tokenizers::Tokenizer::from_file(path)
            .map(Self::new)
            .map_err(|e| EmbedError::Tokenize(format!("{}: {e}", path.display())))
    }
}

impl TokenCounter for HfTokenCounter {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        let Ok(encoding) = self.tokenizer.encode(text, false) else {
            return Vec::new();
        };
        encoding
            .get_offsets()
            .iter()
            .zip(encoding.get_special_tokens_mask())
            .filter(|(_, special)| **special == 0)
            .map(|(&(start, end), _)| start..end)
            .filter(|r| r.start < r.end)
            .collect()
    }
}
