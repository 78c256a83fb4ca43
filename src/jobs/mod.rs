//! Ingestion: the document → chunk → embed → index [`pipeline`], and bulk ingestion jobs.
//!
//! A job ([`record`]) is persisted in a sled tree ([`store`]), run by [`runner`] on the blocking
//! pool and driven by the [`manager`] (start, resume on restart, cancel, watch).

pub mod manager;
pub mod pipeline;
pub mod record;
pub mod runner;
pub mod store;
pub mod sync;

pub use crate::collections::{collection_config, open_or_create};
pub use manager::{JobManager, JobWatch};
pub use pipeline::{check_embedder, embedder_part, IngestSummary, Pipeline, EMBED_BATCH};
pub use record::{JobProgress, JobRecord, JobSpec, JobState};
