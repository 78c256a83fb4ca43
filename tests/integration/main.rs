//! ragd's integration tests: one binary, one module per scenario.

mod bad_input;
mod chunk_cli;
mod cli;
mod common;
mod embedder;
mod fast_llama;
mod generator;
mod grpc;
mod http;
mod ops_cli;
mod qdrant;
mod qdrant_serve;
mod reader;
mod reindex;
mod reliability;
mod reranker;
mod retrieval;
mod security;
mod snapshots;
mod sync_cli;
