//! Command-line spellings of domain choices: clap's `ValueEnum` lives here, so the domain types
//! ([`Mode`], [`RerankerKind`]) know nothing of the command line. Also [`Target`], the options
//! every operator command shares.

use clap::{Args, ValueEnum};

use crate::config::RerankerKind;
use crate::rag::Mode;

/// Where an operator command (`collections`, `jobs`, `snapshot`) works, and how it prints.
#[derive(Debug, Args)]
pub struct Target {
    /// Use this server (e.g. http://127.0.0.1:50051) instead of the local data folder.
    #[arg(long, env = "RAGD_SERVER")]
    pub server: Option<String>,
    /// Print JSON (one object; a listing prints an array).
    #[arg(long)]
    pub json: bool,
}

/// `--mode`: which first-stage retrievers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// BM25 only.
    Bm25,
    /// Dense (embedding) search only.
    Dense,
    /// Both, fused.
    Hybrid,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Bm25 => Mode::Bm25,
            ModeArg::Dense => Mode::Dense,
            ModeArg::Hybrid => Mode::Hybrid,
        }
    }
}

/// `--reranker`: which model scores the fused candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RerankerArg {
    /// A BERT cross-encoder from `reranker.model`.
    CrossEncoder,
    /// The generator asked whether each passage is relevant (slow on a CPU).
    Llm,
}

impl From<RerankerArg> for RerankerKind {
    fn from(r: RerankerArg) -> Self {
        match r {
            RerankerArg::CrossEncoder => RerankerKind::CrossEncoder,
            RerankerArg::Llm => RerankerKind::Llm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_spellings_match_the_configuration_file() {
        // The same words in `--mode`/`--reranker` as in the TOML and JSON output.
        for m in ModeArg::value_variants() {
            let name = m.to_possible_value().unwrap().get_name().to_string();
            let json = serde_json::to_value(Mode::from(*m)).unwrap();
            assert_eq!(json, serde_json::Value::String(name));
        }
        for r in RerankerArg::value_variants() {
            let name = r.to_possible_value().unwrap().get_name().to_string();
            let json = serde_json::to_value(RerankerKind::from(*r)).unwrap();
            assert_eq!(json, serde_json::Value::String(name));
        }
    }
}
