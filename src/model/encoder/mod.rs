//! The BERT encoder and the sentence embedder built on it.
//!
//! [`BertEncoder`] runs packed sequences (no padding on the CPU; one batched, masked product per
//! pass on a GPU) at f32 or int8 [`Precision`]. [`CandleEmbedder`] turns passages into
//! normalised sentence vectors with it (mean or CLS pooling, as the checkpoint says) and is the
//! service's [`ingest::Embedder`]. The cross-encoder reranker
//! ([`rerank`](crate::model::rerank)) reuses the same encoder.

mod bert;
mod embedder;

pub use bert::{
    bert_root, l2_normalize, mean_pool, BertConfig, BertEncoder, Precision, AUTO_Q8_MAX_TOKENS,
    DTYPE,
};
pub use embedder::{BatchLimits, CandleEmbedder, EmbedderOptions};
