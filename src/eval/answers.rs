//! `ragd eval answers`: how often grounded answers cite a gold document.
//!
//! For the first `limit` questions of a BEIR split (sorted by query id, so runs are comparable),
//! ragd answers from an existing collection of that corpus and records whether any citation of
//! the final, checked answer names a judged-relevant document; also whether the retrieved
//! sources contained one at all (the ceiling for citing), how many answers were "not found",
//! extractive, or had unsupported sentences removed, and the token rates.

use std::time::Instant;

use index::Searcher;
use serde::Serialize;

use super::dataset::Split;
use crate::error::Result;
use crate::model::llm::Generator;
use crate::rag::answer::{self, AnswerConfig};
use crate::rag::Retriever;

/// Outcome over the evaluated questions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnswerReport {
    /// Questions answered.
    pub questions: usize,
    /// Share whose answer cites at least one gold document.
    pub cites_gold: f64,
    /// Share whose prompt sources contained a gold document (the ceiling of `cites_gold`).
    pub gold_in_sources: f64,
    /// Share with at least one citation.
    pub cites_any: f64,
    /// Share answered "not found".
    pub not_found: f64,
    /// Share answered by quoting sources (no generated sentence was supported).
    pub extractive: f64,
    /// Generated sentences removed as unsupported, per question.
    pub unsupported_removed_per_question: f64,
    /// Mean prompt tokens.
    pub prompt_tokens: f64,
    /// Mean decode tokens/s.
    pub decode_tokens_per_second: f64,
    /// Mean seconds per answer, end to end.
    pub seconds_per_answer: f64,
}

#[derive(Default)]
struct Sums {
    n: usize,
    cites_gold: usize,
    gold_in_sources: usize,
    cites_any: usize,
    not_found: usize,
    extractive: usize,
    removed: usize,
    prompt_tokens: usize,
    tps: f64,
    seconds: f64,
}

/// Answers the first `limit` questions of `split` and scores their citations.
pub fn run(
    retriever: &Retriever,
    searcher: &Searcher,
    generator: &dyn Generator,
    split: &Split,
    cfg: &AnswerConfig,
    limit: usize,
) -> Result<AnswerReport> {
    let mut s = Sums::default();
    for (qid, question) in split.queries.iter().take(limit) {
        let gold = split.qrels.get(qid).cloned().unwrap_or_default();
        let started = Instant::now();
        let prepared = answer::prepare(retriever, searcher, generator, question, cfg)?;
        let generation = match &prepared.prompt {
            Some(p) => Some(generator.generate(&p.messages, &cfg.generation, &mut |_| {
                std::ops::ControlFlow::Continue(())
            })?),
            None => None,
        };
        let a = answer::finish(&prepared, generation.as_ref())?;
        s.seconds += started.elapsed().as_secs_f64();
        s.n += 1;
        let sources = prepared.prompt.iter().flat_map(|p| &p.sources);
        s.gold_in_sources += usize::from(
            sources
                .into_iter()
                .any(|x| gold.contains(&x.hit.chunk.doc_id)),
        );
        s.cites_gold += usize::from(a.citations.iter().any(|c| gold.contains(&c.doc_id)));
        s.cites_any += usize::from(!a.citations.is_empty());
        s.not_found += usize::from(a.not_found);
        s.extractive += usize::from(a.stats.extractive);
        s.removed += a.stats.unsupported_removed;
        s.prompt_tokens += a.stats.prompt_tokens;
        s.tps += a.stats.tokens_per_second;
    }
    Ok(report(&s))
}

fn report(s: &Sums) -> AnswerReport {
    let n = s.n.max(1) as f64;
    let share = |x: usize| x as f64 / n;
    AnswerReport {
        questions: s.n,
        cites_gold: share(s.cites_gold),
        gold_in_sources: share(s.gold_in_sources),
        cites_any: share(s.cites_any),
        not_found: share(s.not_found),
        extractive: share(s.extractive),
        unsupported_removed_per_question: s.removed as f64 / n,
        prompt_tokens: s.prompt_tokens as f64 / n,
        decode_tokens_per_second: s.tps / n,
        seconds_per_answer: s.seconds / n,
    }
}
