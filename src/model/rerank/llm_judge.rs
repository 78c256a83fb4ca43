//! Relevance scoring with the local instruction model: a pointwise "yes/no" LLM reranker.
//!
//! For each (query, passage) pair the chat model reads a relevance question and the score is how
//! much more it would answer "yes" than "no": `log Σ p(yes-variants) − log Σ p(no-variants)` at
//! the first position of its answer, taken from the logits after one prefill. This is the
//! pointwise scheme of LLM rerankers (e.g. Liang et al., 2022, "Holistic Evaluation of Language
//! Models", and the yes/no relevance prompts of Sun et al., 2023, "Is ChatGPT Good at Search?"),
//! and of monoT5's "true"/"false" (Nogueira et al., 2020) with an instruction model in place of a
//! fine-tuned one.
//!
//! The passage is data: it is encoded with [`GgufTokenizer::encode_plain`], so no control token
//! can come out of it, and it sits inside the user turn after the query. Passages are truncated
//! to the pair budget; the query never is. Cost: one prefill of the whole prompt per passage
//! (≈ 250 tokens for a SciFact chunk), i.e. about half a second per passage on two cores with the
//! default 135M-parameter model; BENCHMARKS.md has what it buys.

use std::sync::Arc;

use super::{RerankError, Reranker};
use crate::model::llm::{Generator, GgufGenerator, GgufTokenizer, Message, Role};
use crate::model::ModelError;

/// What the model is told it is doing.
const SYSTEM: &str =
    "You judge search results. Given a search query and a passage, decide whether \
                      the passage contains information that answers, supports or refutes the \
                      query. Reply with one word: yes or no.";

/// Spellings of the two answers whose first token is scored.
const YES: [&str; 4] = ["yes", "Yes", " yes", " Yes"];
const NO: [&str; 4] = ["no", "No", " no", " No"];

/// Most passages scored per query (about ten seconds on two cores with the default model):
/// requests for more rerank these and keep the rest in fused order.
pub const LLM_MAX_CANDIDATES: usize = 20;

/// Fewest passage tokens a pair keeps, whatever the budget says.
const MIN_PASSAGE_TOKENS: usize = 16;

/// Scores passages with an instruction-tuned GGUF model ([`GgufGenerator`]).
pub struct LlmReranker {
    generator: Arc<GgufGenerator>,
    yes: Vec<u32>,
    no: Vec<u32>,
    max_length: usize,
    model_id: String,
}

impl LlmReranker {
    /// A reranker on `generator`; prompts are kept within `max_length` tokens by truncating the
    /// passage (never below 16 tokens).
    pub fn new(generator: Arc<GgufGenerator>, max_length: usize) -> Result<Self, ModelError> {
        let tok = generator.tokenizer();
        let (yes, no) = (answer_ids(tok, &YES)?, answer_ids(tok, &NO)?);
        if yes.is_empty() || no.is_empty() || yes.iter().any(|id| no.contains(id)) {
            return Err(ModelError::Tokenizer(format!(
                "the generator's vocabulary has no distinct one-token \"yes\"/\"no\" answers \
                 (yes {yes:?}, no {no:?}); pick another generator for --reranker llm"
            )));
        }
        let model_id = format!("llm:{}", generator.info().model_id);
        Ok(Self {
            generator,
            yes,
            no,
            max_length,
            model_id,
        })
    }

    /// The prompt ids for one pair.
    pub fn prompt(&self, query: &str, passage: &str) -> Result<Vec<u32>, ModelError> {
        self.prompt_within(query, passage, self.passage_budget(query)?)
    }

    /// The prompt for `query` and `passage`.
    fn build(&self, query: &str, passage: &str) -> Result<Vec<u32>, ModelError> {
        self.generator.prompt_ids(&[
            Message::new(Role::System, SYSTEM),
            Message::new(
                Role::User,
                format!(
                    "Query: {query}\n\nPassage: {passage}\n\nIs the passage relevant to the \
                     query? Reply yes or no."
                ),
            ),
        ])
    }

    /// Passage tokens a prompt for `query` may hold (the same for every passage of a call).
    fn passage_budget(&self, query: &str) -> Result<usize, ModelError> {
        let overhead = self.build(query, "")?.len();
        Ok(self
            .max_length
            .saturating_sub(overhead)
            .max(MIN_PASSAGE_TOKENS))
    }

    /// The prompt with `passage` cut to `budget` tokens.
    fn prompt_within(
        &self,
        query: &str,
        passage: &str,
        budget: usize,
    ) -> Result<Vec<u32>, ModelError> {
        let tok = self.generator.tokenizer();
        let passage_ids = tok.encode_plain(passage)?;
        if passage_ids.len() <= budget {
            return self.build(query, passage);
        }
        let cut = tok.decode(&passage_ids[..budget]);
        self.build(query, cut.trim_end_matches(char::REPLACEMENT_CHARACTER))
    }

    /// `log Σ exp(yes logits) − log Σ exp(no logits)` after the prompt.
    fn score(&self, ids: &[u32]) -> Result<f32, ModelError> {
        let logits = self.generator.prefill_logits(ids)?;
        let lse = |set: &[u32]| {
            let vals: Vec<f32> = set.iter().map(|&id| logits[id as usize]).collect();
            let max = vals.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            max + vals.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
        };
        Ok(lse(&self.yes) - lse(&self.no))
    }
}

/// The ids of the answer spellings that are one token each (deduplicated).
fn answer_ids(tok: &GgufTokenizer, spellings: &[&str]) -> Result<Vec<u32>, ModelError> {
    let mut ids = Vec::new();
    for s in spellings {
        if let [id] = tok.encode_plain(s)?[..] {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

impl Reranker for LlmReranker {
    fn rerank(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, RerankError> {
        let tokenize = |e: ModelError| RerankError::Tokenize(e.to_string());
        let budget = self.passage_budget(query).map_err(tokenize)?;
        passages
            .iter()
            .map(|p| {
                let ids = self.prompt_within(query, p, budget).map_err(tokenize)?;
                self.score(&ids)
                    .map_err(|e| RerankError::Model(e.to_string()))
            })
            .collect()
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn max_candidates(&self) -> usize {
        LLM_MAX_CANDIDATES
    }
}
