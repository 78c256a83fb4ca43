//! `ragd eval gate`: measures and calibrates the answer relevance gate ([`crate::rag::gate`]).
//!
//! For answerable questions (a BEIR split, whose questions all have judged relevant documents in
//! the corpus, or a file) and off-topic ones ([`OFFTOPIC`], written so that no scientific or
//! technical knowledge base answers them, plus, optionally, another corpus's questions), it
//! retrieves the sources an answer would get, measures the gate's features and records the
//! probability the configured gate gives. [`summarise`] tabulates, per probability threshold,
//! the share of answerable questions still answered and of off-topic ones refused;
//! `ragd eval gate-fit` fits the gate's weights to such rows ([`crate::rag::gate::fit`]).

use std::ops::ControlFlow;

use index::Searcher;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::llm::Generator;
use crate::rag::answer::{self, AnswerConfig};
use crate::rag::gate::{GateFeatures, Labelled, RelevanceGate};
use crate::rag::Retriever;

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

/// One question's measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateQuestion {
    /// True for an answerable question.
    pub answerable: bool,
    /// The question.
    pub question: String,
    /// The gate's features; `None` when nothing was retrieved.
    pub features: Option<GateFeatures>,
    /// The configured gate's probability (0 when nothing was retrieved).
    pub probability: f32,
    /// Whether the model answered "not found" (when the question passed the configured gate
    /// and was answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_not_found: Option<bool>,
}

impl GateQuestion {
    /// As a row for [`crate::rag::gate::fit`] (a question with nothing retrieved has all
    /// features 0).
    pub fn labelled(&self) -> Labelled {
        Labelled {
            features: self.features.unwrap_or_default(),
            answerable: self.answerable,
        }
    }
}

/// How [`GateRun::measure`] prepares the questions: as Ask does ([`answer::prepare`]).
pub struct GateRun<'a> {
    /// Retrieves the sources.
    pub retriever: &'a Retriever,
    /// The collection.
    pub searcher: &'a Searcher,
    /// Builds the prompt (and answers, with `generate`).
    pub generator: &'a dyn Generator,
    /// The gate and the sources (`retrieve.k`).
    pub cfg: &'a AnswerConfig,
    /// Also answer the questions the gate lets through, to see where the model itself says
    /// "not found".
    pub generate: bool,
}

impl GateRun<'_> {
    /// Records each question's gate features (and the model's verdict, with `generate`).
    pub fn measure(
        &self,
        questions: &[String],
        answerable: bool,
        on_done: &mut dyn FnMut(),
    ) -> Result<Vec<GateQuestion>> {
        let mut out = Vec::with_capacity(questions.len());
        for q in questions {
            let prepared =
                answer::prepare(self.retriever, self.searcher, self.generator, q, self.cfg)?;
            let model_not_found = match &prepared.prompt {
                Some(_) if self.generate => Some(
                    answer::answer_prepared(&prepared, self.generator, self.cfg, &mut |_| {
                        ControlFlow::Continue(())
                    })?
                    .not_found,
                ),
                _ => None,
            };
            out.push(GateQuestion {
                answerable,
                question: q.clone(),
                features: prepared.gate,
                probability: prepared.relevance.unwrap_or(0.0),
                model_not_found,
            });
            on_done();
        }
        Ok(out)
    }
}

/// One threshold and its effect.
#[derive(Debug, Clone, Serialize)]
pub struct GateRow {
    /// Probability threshold.
    pub threshold: f32,
    /// Share of answerable questions at or above it (answered).
    pub answerable_kept: f64,
    /// Share of off-topic questions below it (refused without calling the model).
    pub offtopic_refused: f64,
}

/// The effect of a gate on labelled questions.
#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    /// Answerable questions.
    pub answerable: usize,
    /// Off-topic questions.
    pub offtopic: usize,
    /// The gate judged by.
    pub gate: RelevanceGate,
    /// Share of answerable questions it answers.
    pub answerable_kept: f64,
    /// Share of off-topic questions it refuses.
    pub offtopic_refused: f64,
    /// The same for thresholds 0.05..=0.95 in steps of 0.05 (the weights unchanged).
    pub table: Vec<GateRow>,
    /// With the model's own "not found" counted too (gate and model together): the shares
    /// answered and refused, when the questions the gate let through were answered.
    pub with_model: Option<GateRow>,
}

fn share<T>(items: &[T], pred: impl Fn(&T) -> bool) -> f64 {
    if items.is_empty() {
        return 0.0;
    }
    items.iter().filter(|x| pred(x)).count() as f64 / items.len() as f64
}

/// The effect of `gate` on `rows`, and of other thresholds with its weights.
pub fn summarise(rows: &[GateQuestion], gate: &RelevanceGate) -> GateReport {
    let p = |r: &GateQuestion| r.features.map_or(0.0, |f| gate.probability(&f));
    let answerable: Vec<f32> = rows.iter().filter(|r| r.answerable).map(p).collect();
    let offtopic: Vec<f32> = rows.iter().filter(|r| !r.answerable).map(p).collect();
    let row = |threshold: f32| GateRow {
        threshold,
        answerable_kept: share(&answerable, |&s| s >= threshold),
        offtopic_refused: share(&offtopic, |&s| s < threshold),
    };
    let at = row(gate.min_probability);
    let answered =
        |r: &&GateQuestion| p(r) >= gate.min_probability && r.model_not_found == Some(false);
    let generated = rows
        .iter()
        .filter(|r| p(r) >= gate.min_probability)
        .all(|r| r.model_not_found.is_some());
    let with_model = (generated && rows.iter().any(|r| r.model_not_found.is_some())).then(|| {
        let (yes, no): (Vec<&GateQuestion>, Vec<&GateQuestion>) =
            rows.iter().partition(|r| r.answerable);
        GateRow {
            threshold: gate.min_probability,
            answerable_kept: share(&yes, answered),
            offtopic_refused: 1.0 - share(&no, answered),
        }
    });
    GateReport {
        answerable: answerable.len(),
        offtopic: offtopic.len(),
        gate: *gate,
        answerable_kept: at.answerable_kept,
        offtopic_refused: at.offtopic_refused,
        table: (1..=19).map(|i| row(i as f32 * 0.05)).collect(),
        with_model,
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

    fn question(answerable: bool, dense: f32) -> GateQuestion {
        GateQuestion {
            answerable,
            question: String::new(),
            features: Some(GateFeatures {
                dense,
                ..GateFeatures::default()
            }),
            probability: 0.0,
            model_not_found: None,
        }
    }

    #[test]
    fn summary_counts_both_sides_of_each_threshold() {
        // Probability = sigmoid(10 * dense - 5): 0.5 at dense 0.5.
        let gate = RelevanceGate {
            bias: -5.0,
            weights: [10.0, 0.0, 0.0, 0.0],
            min_probability: 0.5,
        };
        let mut rows: Vec<GateQuestion> = [0.3, 0.6, 0.7, 0.9]
            .into_iter()
            .map(|d| question(true, d))
            .collect();
        rows.extend(
            [0.1, 0.2, 0.4, 0.55]
                .into_iter()
                .map(|d| question(false, d)),
        );
        let r = summarise(&rows, &gate);
        assert_eq!((r.answerable, r.offtopic), (4, 4));
        assert_eq!(r.answerable_kept, 0.75);
        assert_eq!(r.offtopic_refused, 0.75);
        let strict = r
            .table
            .iter()
            .find(|row| (row.threshold - 0.95).abs() < 1e-6)
            .unwrap();
        // sigmoid(10 * dense - 5) >= 0.95 needs dense >= 0.795.
        assert_eq!(strict.answerable_kept, 0.25);
        assert_eq!(strict.offtopic_refused, 1.0);
    }
}
