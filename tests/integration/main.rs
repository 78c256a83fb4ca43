//! ragd's integration tests: one binary, one module per scenario.

mod common;
mod embedder;
