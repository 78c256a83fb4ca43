//! Retrieval-augmented answering: retrieval ([`retrieve`]), the grounded prompt ([`prompt`]) and
//! answering with checked citations ([`answer`]).

pub mod answer;
pub mod grounding;
pub mod prompt;
pub mod retrieve;

pub use answer::{Answer, AnswerConfig, Citation};
pub use retrieve::{Hit, Mode, RetrieveOptions, Retriever, StageScores};
