//! Evaluation: BEIR-style retrieval benchmarks ([`beir`]) scored with trec_eval semantics
//! ([`metrics`]), the calibration of the answer relevance gate ([`gate`]), and how often
//! answers cite a gold document ([`answers`]).

pub mod answers;
pub mod beir;
pub mod dataset;
pub mod gate;
pub mod metrics;
pub mod qa;
