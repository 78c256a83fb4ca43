//! Models, in five rooms, each behind the face its `mod.rs` exports:
//!
//! - [`source`]: where a model comes from: the catalogue of packaged models, fetching and
//!   verifying them, a [`ModelSource`] (catalogue name or local path), the device.
//! - [`encoder`]: the BERT encoder and the sentence embedder ([`CandleEmbedder`]).
//! - [`rerank`]: the [`Reranker`] trait, the cross-encoder and the LLM relevance judge; the
//!   question-answering reader ([`rerank::CandleReader`]) that finds short answers.
//! - [`llm`]: the [`Generator`] contract and the GGUF generator ([`GgufGenerator`]), with its
//!   tokenizer, chat template and text stream.
//! - [`cpu`]: the `unsafe` SIMD kernels and the int8 GEMM the encoder and the LLM run on.
//!
//! [`ModelError`] is the one error type of all five. Nothing here knows the service's
//! configuration: [`crate::wiring`] builds models from it.

pub mod cpu;
pub mod encoder;
mod error;
pub mod llm;
pub mod rerank;
pub mod source;

pub use encoder::{CandleEmbedder, Precision};
pub use error::ModelError;
pub use llm::{Generator, GgufGenerator};
pub use rerank::Reranker;
pub use source::ModelSource;
