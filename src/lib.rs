//! ragd: a retrieval-augmented generation service.
//!
//! The service crate wires the two libraries together — [`ingest`] (documents and chunks) and
//! `index` (storage and search) — and owns the models ([`model`]), configuration ([`config`]),
//! ingestion pipeline and bulk jobs ([`jobs`]), retrieval ([`rag`]), the shared server state
//! ([`state`]), the gRPC API ([`grpc`]), benchmarks ([`bench`]) and the command line ([`cli`]).
//! [`serve`] runs the server; tests start it in-process with [`grpc::serve_with`].

#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod config;
pub mod error;
pub mod eval;
pub mod grpc;
pub mod jobs;
pub mod model;
pub mod rag;
pub mod reindex;
pub mod serving;
pub mod snapshots;
pub mod state;
pub mod wiring;

pub use config::Config;
pub use error::ServiceError;
pub use grpc::serve;
