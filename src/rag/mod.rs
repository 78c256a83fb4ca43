//! Retrieval-augmented answering: retrieval ([`retrieve`]), the grounded prompt ([`prompt`]),
//! answering ([`answer`]) with its citation markers checked ([`citations`]), the source
//! sentences that answer ranked by meaning and words ([`evidence`]), and every generated
//! sentence checked against them ([`grounding`]).

pub mod answer;
pub mod citations;
pub mod evidence;
pub mod grounding;
pub mod prompt;
pub mod retrieve;

pub use answer::{Answer, AnswerConfig, Citation, ShortAnswer};
pub use retrieve::{Hit, Mode, RetrieveOptions, Retriever, StageScores, StageTimes};
