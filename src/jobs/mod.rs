//! Ingestion: the document → chunk → embed → index pipeline.

pub mod pipeline;

pub use pipeline::{IngestSummary, Pipeline};
