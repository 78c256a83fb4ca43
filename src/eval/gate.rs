//! `ragd eval gate`: calibrates the answer relevance gate
//! ([`crate::rag::answer::AnswerConfig::min_relevance`]).
//!
//! For answerable questions (a BEIR split, whose questions all have judged relevant documents in
//! the corpus) and for off-topic questions ([`OFFTOPIC`], written so that no scientific or
//! technical knowledge base answers them), it records the best dense cosine similarity among
//! the retrieved chunks — the score the gate compares — and tabulates, per threshold, the share
//! of answerable questions still answered and of off-topic ones refused.

use serde::Serialize;

use crate::error::Result;
use crate::rag::{RetrieveOptions, Retriever};
use index::Searcher;

/// The bundled off-topic questions, one per line (`#` comments).
pub const OFFTOPIC: &str = include_str!("offtopic.txt");

/// The off-topic questions of [`OFFTOPIC`].
pub fn offtopic_questions() -> Vec<String> {
    OFFTOPIC
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// One threshold and its effect.
#[derive(Debug, Clone, Serialize)]
pub struct GateRow {
    /// Cosine threshold.
    pub threshold: f32,
    /// Share of answerable questions at or above it (answered).
    pub answerable_kept: f64,
    /// Share of off-topic questions below it (refused without calling the model).
    pub offtopic_refused: f64,
}

/// Best-hit similarities of both question sets and the threshold table.
#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    /// Best cosine per answerable question, sorted.
    pub answerable: Vec<f32>,
    /// Best cosine per off-topic question, sorted.
    pub offtopic: Vec<f32>,
    /// Thresholds 0.05..=0.60 in steps of 0.025.
    pub table: Vec<GateRow>,
}

/// Best dense similarity for each question (0 when nothing was retrieved), sorted.
pub fn best_scores(
    retriever: &Retriever,
    searcher: &Searcher,
    questions: &[String],
    opts: &RetrieveOptions,
) -> Result<Vec<f32>> {
    let mut scores = Vec::with_capacity(questions.len());
    for q in questions {
        let hits = retriever.retrieve(searcher, q, opts)?;
        let best = hits
            .iter()
            .filter_map(|h| h.stages.dense)
            .max_by(f32::total_cmp);
        scores.push(best.unwrap_or(0.0));
    }
    scores.sort_by(f32::total_cmp);
    Ok(scores)
}

fn share(scores: &[f32], pred: impl Fn(f32) -> bool) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|&&s| pred(s)).count() as f64 / scores.len() as f64
}

/// Tabulates thresholds for the two score lists.
pub fn report(answerable: Vec<f32>, offtopic: Vec<f32>) -> GateReport {
    let table = (2..=24)
        .map(|i| {
            let threshold = i as f32 * 0.025;
            GateRow {
                threshold,
                answerable_kept: share(&answerable, |s| s >= threshold),
                offtopic_refused: share(&offtopic, |s| s < threshold),
            }
        })
        .collect();
    GateReport {
        answerable,
        offtopic,
        table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_questions_parse() {
        let qs = offtopic_questions();
        assert!(qs.len() >= 60, "{}", qs.len());
        assert!(qs
            .iter()
            .all(|q| !q.starts_with('#') && q.ends_with(['?', '？'])));
    }

    #[test]
    fn table_counts_both_sides_of_each_threshold() {
        let r = report(vec![0.3, 0.5, 0.7, 0.9], vec![0.05, 0.1, 0.2, 0.35]);
        let row = r
            .table
            .iter()
            .find(|row| (row.threshold - 0.25).abs() < 1e-6)
            .unwrap();
        assert_eq!(row.answerable_kept, 1.0);
        assert_eq!(row.offtopic_refused, 0.75);
        let row = r
            .table
            .iter()
            .find(|row| (row.threshold - 0.4).abs() < 1e-6)
            .unwrap();
        assert_eq!(row.answerable_kept, 0.75);
        assert_eq!(row.offtopic_refused, 1.0);
    }
}
