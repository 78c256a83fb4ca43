//! Models that read the question with each passage. Reranking: the [`Reranker`] trait, the
//! second stage of retrieval, and its two implementations: a BERT cross-encoder
//! ([`CandleCrossEncoder`]) and the generator used as a relevance judge ([`LlmReranker`]).
//! Reading: a BERT question-answering reader ([`CandleReader`]) that finds the span of a
//! passage answering the question (the short answer).

mod cross_encoder;
mod llm_judge;
mod reader;

pub use cross_encoder::{CandleCrossEncoder, CrossEncoderOptions};
pub use llm_judge::LlmReranker;
pub use reader::{CandleReader, ReadSpan, ReaderOptions, WindowLogits};

/// Errors from scoring query–passage pairs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RerankError {
    /// The tokenizer rejected an input (not expected for valid UTF-8 text; our fault).
    #[error("tokenization failed: {0}")]
    Tokenize(String),
    /// The model failed while running (device or shape error; our fault, not the caller's).
    #[error("reranker model failed: {0}")]
    Model(String),
    /// The threads that run the model are all busy and their queue is full (the LLM judge,
    /// which shares the generator's threads); retry later.
    #[error("the {0} is overloaded: too many requests are in flight; retry later")]
    Overloaded(&'static str),
    /// The threads that run the model have stopped.
    #[error("the {0} has stopped")]
    Stopped(&'static str),
}

impl From<candle_core::Error> for RerankError {
    fn from(e: candle_core::Error) -> Self {
        Self::Model(e.to_string())
    }
}

/// Scores passages against a query: the second stage of retrieval.
///
/// Implementations are synchronous and may be slow (a transformer forward pass per batch); the
/// service calls them on tokio's blocking pool, never on the async runtime. Scores are comparable only within one call's passages for the same query; higher
/// means more relevant. Implementations must be deterministic for the same inputs, and the
/// result must not depend on how the passages are batched.
pub trait Reranker: Send + Sync {
    /// Returns one score per passage, in the order of `passages`. An empty slice gives an empty
    /// result.
    fn rerank(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, RerankError>;

    /// A stable identifier of the model, for logs and responses.
    fn model_id(&self) -> &str;

    /// Most passages scored per query: retrieval reranks at most this many of the fused hits
    /// and keeps the rest in fused order after them, so one request's cost is bounded.
    /// Default: no bound beyond the request's own `rerank_candidates`.
    fn max_candidates(&self) -> usize {
        usize::MAX
    }
}

/// Finds the span of each passage that answers a question (extractive reading comprehension).
///
/// Synchronous and slow like a [`Reranker`]: call it off the async runtime. Deterministic for
/// the same inputs; a passage's result does not depend on the other passages of the call.
pub trait Reader: Send + Sync {
    /// The best span of each passage, in the order of `passages` (`None` for a passage with no
    /// tokens). Spans' scores are comparable across the passages of one call.
    fn read(&self, question: &str, passages: &[&str])
        -> Result<Vec<Option<ReadSpan>>, RerankError>;

    /// A stable identifier of the model, for logs.
    fn model_id(&self) -> &str;
}
