//! Evaluation: BEIR-style retrieval benchmarks ([`beir`]) scored with trec_eval semantics
//! ([`metrics`]).

pub mod beir;
pub mod metrics;
