//! Retrieval-augmented answering: retrieval ([`retrieve`]), the grounded prompt ([`prompt`]),
//! answering ([`answer`]) with its citation markers checked ([`citations`]) and every sentence
//! checked against the sources ([`grounding`]).

pub mod answer;
pub mod citations;
pub mod grounding;
pub mod prompt;
pub mod retrieve;

pub use answer::{Answer, AnswerConfig, Citation};
pub use retrieve::{Hit, Mode, RetrieveOptions, Retriever, StageScores};
