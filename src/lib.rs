//! ragd: a retrieval-augmented generation service.
//!
//! The service crate wires the two libraries together — [`ingest`] (documents and chunks) and
//! `index` (storage and search) — and owns the models ([`model`]), configuration ([`config`]),
//! where collections live ([`collections`]: the data folder, or the Qdrant backend for scaling
//! out, [`qdrant`]), ingestion pipeline and bulk jobs ([`jobs`]), retrieval ([`rag`]), the shared server state
//! ([`state`]), the operations both APIs share ([`api`]), the gRPC API ([`grpc`]), the HTTP API
//! ([`http`]), metrics ([`metrics`]), benchmarks ([`bench`]) and the command line ([`cli`]).
//! [`serve`] runs both servers; tests start them in-process with [`grpc::serve_with`] and
//! [`http::router`].

#![warn(missing_docs)]

pub mod api;
pub mod bench;
pub mod cli;
pub mod collections;
pub mod config;
pub mod error;
pub mod eval;
pub mod grpc;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod qdrant;
pub mod rag;
pub mod reindex;
pub mod server;
pub mod serving;
pub mod snapshots;
pub mod state;
pub mod wiring;

pub use config::Config;
pub use error::ServiceError;
pub use server::serve;
