//! Retrieval-augmented answering: retrieval ([`retrieve`]) today; prompt building and answering
//! follow.

pub mod retrieve;

pub use retrieve::{Hit, Mode, RetrieveOptions, Retriever, StageScores};
