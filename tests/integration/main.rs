//! ragd's integration tests: one binary, one module per scenario.

mod chunk_cli;
mod cli;
mod common;
mod embedder;
mod generator;
mod fast_llama;
mod reranker;
mod retrieval;
