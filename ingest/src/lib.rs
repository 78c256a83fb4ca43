//! ragd ingestion: turns input files into normalised [`Document`]s and documents into chunks.
//!
//! This crate reads input and nothing else: it knows nothing of storage, gRPC or candle. The
//! embedding model reaches it only through the [`Embedder`] / [`TokenCounter`] traits.
#![warn(missing_docs)]

pub mod embed;

pub use embed::{EmbedError, Embedder, Embedding, HfTokenCounter, TokenCounter};
