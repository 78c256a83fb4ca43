//! ragd: a retrieval-augmented generation service.
//!
//! The service crate wires the two libraries together — [`ingest`] (documents and chunks) and
//! `index` (storage and search) — and owns the models ([`model`]), configuration ([`config`]),
//! benchmarks ([`bench`]) and the command line ([`cli`]).

pub mod bench;
pub mod cli;
pub mod config;
pub mod error;
pub mod eval;
pub mod jobs;
pub mod model;
pub mod rag;

pub use config::Config;
pub use error::ServiceError;
