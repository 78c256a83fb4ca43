//! Ingestion: the document → chunk → embed → index pipeline.

pub mod pipeline;

pub use pipeline::{open_or_create, IngestSummary, Pipeline};
