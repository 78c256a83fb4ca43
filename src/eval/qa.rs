//! `ragd eval qa`: are the answers right? Each question of a split is answered as Ask answers it
//! (retrieve, gate, prompt, generate, check citations and grounding) and the final answer is
//! scored against the gold answer strings of `answers.jsonl` with SQuAD v1.1's metrics:
//!
//! - exact match and token F1 after SQuAD's normalisation ([`normalize`]: lower case, ASCII
//!   punctuation and the articles a/an/the removed, whitespace collapsed), the best over the gold
//!   strings. The answer is scored as the user reads it, citation markers removed; a long
//!   answer that contains the gold string scores a low F1, which is why
//! - "contains a gold string" (as whole tokens) is reported beside them,
//! - with its ceilings: a gold string in a cited chunk, and in any source the model was given;
//! - citation precision: of the chunks an answer cites, the share from a judged document (the
//!   SQuAD paragraph the question was written on), averaged over answers that cite;
//! - the short answer (the minimal span the answer names, [`crate::rag::ShortAnswer`]) scored
//!   the same way (exact match, F1; no short answer scores 0), the measure of the issue's
//!   "short answer F1";
//! - whether the best evidence sentence, and one of the best two, contains a gold string (how
//!   well sentences are chosen: [`crate::rag::evidence`]);
//! - the not-found and extractive (quoted, no generated sentence survived) shares, and seconds
//!   per answer and time to first token at p50 / p95.
//!
//! Questions run in query-id order, so a range of them is the same on every run.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Instant;

use index::Searcher;
use serde::Serialize;

use super::dataset::Split;
use super::metrics::percentile;
use crate::error::Result;
use crate::model::llm::Generator;
use crate::rag::answer::{self, AnswerConfig};
use crate::rag::citations::check_citations;
use crate::rag::Retriever;

/// One question's outcome (`ragd eval qa --rows`).
#[derive(Debug, Clone, Serialize)]
pub struct QaRow {
    /// Query id.
    pub id: String,
    /// The question.
    pub question: String,
    /// Its gold answers.
    pub gold: Vec<String>,
    /// The final answer, citation markers removed.
    pub answer: String,
    /// The short answer, if any.
    pub short_answer: Option<String>,
    /// The short answer is in the judged paragraph (`None` without a short answer).
    pub short_in_judged: Option<bool>,
    /// The short answer matches a gold answer exactly (normalised).
    pub short_exact: bool,
    /// Best token F1 of the short answer against a gold answer (0 without one).
    pub short_f1: f64,
    /// The best evidence sentence contains a gold answer.
    pub gold_in_evidence: bool,
    /// One of the best two evidence sentences contains a gold answer.
    pub gold_in_evidence_top2: bool,
    /// Exact match with a gold answer (normalised).
    pub exact: bool,
    /// Best token F1 against a gold answer.
    pub f1: f64,
    /// The answer contains a gold answer (normalised, as whole tokens).
    pub contains_gold: bool,
    /// A cited chunk contains a gold answer.
    pub gold_in_cited: bool,
    /// A source in the prompt contains a gold answer.
    pub gold_in_sources: bool,
    /// Documents cited, in order of first citation.
    pub cited_docs: Vec<String>,
    /// Of the cited chunks, those from a judged document; `None` without citations.
    pub citation_precision: Option<f64>,
    /// Answered "not found".
    pub not_found: bool,
    /// Answered by quoting the sources.
    pub extractive: bool,
    /// Seconds from the question to the final answer.
    pub seconds: f64,
    /// From the generation call to the first streamed text, in ms (0 when the model did not run).
    pub time_to_first_token_ms: f64,
    /// From the generation call to the first checked text shown, in ms (0 when the model did not
    /// run).
    pub first_text_ms: f64,
    /// Time the reader took, in ms (0 without a reader).
    pub read_ms: f64,
}

/// Totals over the questions asked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QaReport {
    /// Questions asked.
    pub questions: usize,
    /// Mean exact match.
    pub exact_match: f64,
    /// Mean token F1.
    pub f1: f64,
    /// Mean exact match of the short answers (none counts 0).
    pub short_exact_match: f64,
    /// Mean token F1 of the short answers (none counts 0).
    pub short_f1: f64,
    /// Share with a short answer.
    pub has_short_answer: f64,
    /// Share whose short answer is in the judged paragraph.
    pub short_in_judged: f64,
    /// Share whose best evidence sentence contains a gold answer.
    pub gold_in_evidence: f64,
    /// Share with a gold answer in one of the two best evidence sentences.
    pub gold_in_evidence_top2: f64,
    /// Share of answers containing a gold answer.
    pub contains_gold: f64,
    /// Share with a gold answer in a cited chunk (the ceiling of `contains_gold` for a cited
    /// answer).
    pub gold_in_cited: f64,
    /// Share with a gold answer in a source given to the model (retrieval's ceiling).
    pub gold_in_sources: f64,
    /// Mean citation precision over the answers that cite.
    pub citation_precision: f64,
    /// Share of answers citing anything.
    pub cites_any: f64,
    /// Share answered "not found".
    pub not_found: f64,
    /// Share answered by quoting the sources.
    pub extractive: f64,
    /// Seconds per answer, median.
    pub seconds_p50: f64,
    /// Seconds per answer, 95th percentile.
    pub seconds_p95: f64,
    /// Time to first token in ms, median (answers the model wrote).
    pub time_to_first_token_ms_p50: f64,
    /// Time to first token in ms, 95th percentile.
    pub time_to_first_token_ms_p95: f64,
    /// Time to the first checked text shown in ms, median (answers the model wrote).
    pub first_text_ms_p50: f64,
    /// Time to the first checked text shown in ms, 95th percentile.
    pub first_text_ms_p95: f64,
    /// Time the reader took in ms, median (answers it read for; 0 without a reader).
    pub read_ms_p50: f64,
    /// Time the reader took in ms, 95th percentile.
    pub read_ms_p95: f64,
}

/// Questions with their judged paragraphs and gold answers.
pub struct QaSet {
    /// Questions and judged documents.
    pub split: Split,
    /// Gold answers by query id.
    pub answers: BTreeMap<String, Vec<String>>,
}

/// Answers the questions of `set` with gold answers whose places (in query-id order) are in
/// `questions`, and scores them;
/// `on_row` sees each question's outcome as it is scored.
pub fn run(
    retriever: &Retriever,
    searcher: &Searcher,
    generator: &dyn Generator,
    set: &QaSet,
    cfg: &AnswerConfig,
    questions: std::ops::Range<usize>,
    on_row: &mut dyn FnMut(&QaRow),
) -> Result<QaReport> {
    let (split, answers) = (&set.split, &set.answers);
    let mut rows = Vec::new();
    let asked = split
        .queries
        .iter()
        .filter_map(|(id, q)| answers.get(id).map(|gold| (id, q, gold)))
        .skip(questions.start)
        .take(questions.len());
    for (id, question, gold) in asked {
        let started = Instant::now();
        let prepared = answer::prepare(retriever, searcher, generator, question, cfg)?;
        let a =
            answer::answer_prepared(
                &prepared,
                generator,
                cfg,
                &mut |_| ControlFlow::Continue(()),
            )?;
        let seconds = started.elapsed().as_secs_f64();
        let judged = split.qrels.get(id);
        let (text, _) = check_citations(&a.text, 0);
        let sources: Vec<&str> = prepared
            .prompt
            .iter()
            .flat_map(|p| &p.sources)
            .map(|s| s.hit.chunk.text.as_str())
            .collect();
        let cited_judged = a
            .citations
            .iter()
            .filter(|c| judged.is_some_and(|j| j.contains(&c.doc_id)))
            .count();
        let mut cited_docs: Vec<String> = Vec::new();
        for c in &a.citations {
            if !cited_docs.contains(&c.doc_id) {
                cited_docs.push(c.doc_id.clone());
            }
        }
        let evidence: Vec<&str> = prepared
            .evidence
            .iter()
            .flat_map(|e| e.sentences.iter().take(2))
            .map(|s| s.text.as_str())
            .collect();
        let short = a.short_answer.as_ref().map(|s| s.text.clone());
        let short_text = short.as_deref().unwrap_or_default();
        let row = QaRow {
            id: id.clone(),
            short_exact: short.is_some()
                && gold.iter().any(|g| normalize(g) == normalize(short_text)),
            short_f1: match &short {
                Some(s) => gold.iter().map(|g| token_f1(s, g)).fold(0.0, f64::max),
                None => 0.0,
            },
            short_in_judged: a
                .short_answer
                .as_ref()
                .map(|s| judged.is_some_and(|j| j.contains(&s.doc_id))),
            short_answer: short,
            gold_in_evidence: evidence.first().is_some_and(|s| contains_any(s, gold)),
            gold_in_evidence_top2: evidence.iter().any(|s| contains_any(s, gold)),
            question: question.clone(),
            gold: gold.clone(),
            exact: gold.iter().any(|g| normalize(g) == normalize(&text)),
            f1: gold.iter().map(|g| token_f1(&text, g)).fold(0.0, f64::max),
            contains_gold: contains_any(&text, gold),
            gold_in_cited: a.citations.iter().any(|c| contains_any(&c.text, gold)),
            gold_in_sources: sources.iter().any(|s| contains_any(s, gold)),
            cited_docs,
            citation_precision: (!a.citations.is_empty())
                .then(|| cited_judged as f64 / a.citations.len() as f64),
            not_found: a.not_found,
            extractive: a.stats.extractive,
            seconds,
            time_to_first_token_ms: a.stats.time_to_first_token_ms,
            first_text_ms: a.stats.first_text_ms,
            read_ms: a.stats.read_ms,
            answer: text,
        };
        on_row(&row);
        rows.push(row);
    }
    Ok(report(&rows))
}

fn report(rows: &[QaRow]) -> QaReport {
    let n = rows.len().max(1) as f64;
    let share = |f: fn(&QaRow) -> bool| rows.iter().filter(|r| f(r)).count() as f64 / n;
    let precisions: Vec<f64> = rows.iter().filter_map(|r| r.citation_precision).collect();
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let seconds = sorted(rows.iter().map(|r| r.seconds).collect());
    let ttft = sorted(
        rows.iter()
            .map(|r| r.time_to_first_token_ms)
            .filter(|&t| t > 0.0)
            .collect(),
    );
    let first_text = sorted(
        rows.iter()
            .map(|r| r.first_text_ms)
            .filter(|&t| t > 0.0)
            .collect(),
    );
    let read = sorted(
        rows.iter()
            .map(|r| r.read_ms)
            .filter(|&t| t > 0.0)
            .collect(),
    );
    QaReport {
        questions: rows.len(),
        exact_match: share(|r| r.exact),
        f1: rows.iter().map(|r| r.f1).sum::<f64>() / n,
        short_exact_match: share(|r| r.short_exact),
        short_f1: rows.iter().map(|r| r.short_f1).sum::<f64>() / n,
        has_short_answer: share(|r| r.short_answer.is_some()),
        short_in_judged: share(|r| r.short_in_judged == Some(true)),
        gold_in_evidence: share(|r| r.gold_in_evidence),
        gold_in_evidence_top2: share(|r| r.gold_in_evidence_top2),
        contains_gold: share(|r| r.contains_gold),
        gold_in_cited: share(|r| r.gold_in_cited),
        gold_in_sources: share(|r| r.gold_in_sources),
        citation_precision: precisions.iter().sum::<f64>() / precisions.len().max(1) as f64,
        cites_any: precisions.len() as f64 / n,
        not_found: share(|r| r.not_found),
        extractive: share(|r| r.extractive),
        seconds_p50: percentile(&seconds, 50.0),
        seconds_p95: percentile(&seconds, 95.0),
        time_to_first_token_ms_p50: percentile(&ttft, 50.0),
        time_to_first_token_ms_p95: percentile(&ttft, 95.0),
        first_text_ms_p50: percentile(&first_text, 50.0),
        first_text_ms_p95: percentile(&first_text, 95.0),
        read_ms_p50: percentile(&read, 50.0),
        read_ms_p95: percentile(&read, 95.0),
    }
}

/// SQuAD v1.1's answer normalisation (`normalize_answer` in its evaluation script): lower case,
/// ASCII punctuation removed, the articles "a", "an", "the" removed, whitespace collapsed.
pub fn normalize(s: &str) -> String {
    let lower: String = s
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    lower
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// SQuAD's token F1 of `prediction` against one `gold` answer, on normalised tokens.
pub fn token_f1(prediction: &str, gold: &str) -> f64 {
    let (p, g) = (normalize(prediction), normalize(gold));
    let (p, g): (Vec<&str>, Vec<&str>) = (p.split(' ').collect(), g.split(' ').collect());
    if p == [""] || g == [""] {
        return f64::from(u8::from(p == g));
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &g {
        *counts.entry(t).or_default() += 1;
    }
    let mut common = 0;
    for t in &p {
        if let Some(c) = counts.get_mut(t).filter(|c| **c > 0) {
            *c -= 1;
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / p.len() as f64;
    let recall = common as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Whether `text` contains one of `gold`, normalised, as whole tokens.
pub fn contains_any(text: &str, gold: &[String]) -> bool {
    let text = format!(" {} ", normalize(text));
    gold.iter()
        .map(|g| normalize(g))
        .any(|g| !g.is_empty() && text.contains(&format!(" {g} ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_is_squads() {
        assert_eq!(normalize("The  Killer-T cells."), "killert cells");
        assert_eq!(normalize("an apple, a pear"), "apple pear");
        assert_eq!(normalize("Théâtre (1920)"), "théâtre 1920");
    }

    #[test]
    fn f1_by_hand() {
        assert_eq!(token_f1("killer T cells", "The killer T cells"), 1.0);
        // 2 common tokens; precision 2/4, recall 2/3.
        let f = token_f1("cells and killer cows", "killer T cells");
        assert!((f - 2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0)).abs() < 1e-12);
        assert_eq!(token_f1("nothing shared", "killer T cells"), 0.0);
        // Repeated tokens count once per occurrence in the gold answer.
        let f = token_f1("cells cells", "cells");
        assert!((f - 2.0 * 0.5 / 1.5).abs() < 1e-12);
        assert_eq!(token_f1("the", "a"), 1.0, "both normalise to nothing");
    }

    #[test]
    fn containment_is_on_whole_tokens() {
        let gold = vec!["T cells".to_string()];
        assert!(contains_any("Killer T cells [1] destroy them.", &gold));
        assert!(!contains_any("Killer T cellsmith", &gold));
        assert!(!contains_any("anything", &[String::new()]));
    }
}
