//! Evaluation: BEIR-style retrieval benchmarks ([`beir`]) scored with trec_eval semantics
//! ([`metrics`]), and the calibration of the answer relevance gate ([`gate`]).

pub mod beir;
pub mod gate;
pub mod metrics;
