//! Retrieval-augmented answering: retrieval ([`retrieve`]), the grounded prompt ([`prompt`]),
//! answering ([`answer`]) with its citation markers checked ([`citations`]), the source
//! sentences that answer ranked by meaning and words ([`evidence`]), the relevance gate that
//! decides whether they answer at all ([`gate`]), and every generated sentence checked against
//! them ([`grounding`]); short answers of a number, date, name or place kind ([`typed`]).

pub mod answer;
pub mod citations;
pub mod evidence;
pub mod gate;
pub mod grounding;
pub mod prompt;
pub mod retrieve;
pub mod typed;

pub use answer::{Answer, AnswerConfig, Citation, ShortAnswer};
pub use retrieve::{Hit, Mode, RetrieveOptions, Retriever, StageScores, StageTimes};
