//! The relevance gate: whether the knowledge base holds an answer at all, decided before the
//! model is called.
//!
//! A small model given unrelated sources tends to answer anyway, so a question whose sources do
//! not bear on it is answered [`super::prompt::NOT_FOUND`] without generating. One signal is not
//! enough on a large collection: among thousands of chunks some chunk is always loosely similar
//! to anything (on SciFact's 5,183 abstracts the best chunk's cosine refused 8% of off-topic
//! questions at the threshold that kept every answerable one). The gate combines four signals
//! of the sources an answer would get ([`GateFeatures`]):
//! - **dense**: the best retrieved chunk's cosine similarity to the question;
//! - **sentence**: the best source sentence's cosine similarity (a chunk can be loosely about
//!   the topic while no sentence of it is about the question);
//! - **coverage**: how much of the question the sources hold, each question term weighted by
//!   its BM25 inverse document frequency in the collection, so "the best way to cook pasta"
//!   is not covered by sources that hold "best" and "way";
//! - **sentence coverage**: the same for the single best-covering sentence.
//!
//! A logistic model turns them into the probability that the question is answerable
//! ([`RelevanceGate::probability`]); under [`RelevanceGate::min_probability`] the answer is
//! "not found". The default weights were fitted by `ragd eval gate-fit` on answerable and
//! off-topic questions of SciFact and squad-qa (tuning slices) and the threshold chosen to keep
//! 97.5% of the answerable ones of each; BENCHMARKS.md ("Answer relevance gate on large
//! collections") has the data and the held-out results. A team fits its own the same way and
//! sets it as `answer.gate` in the configuration. The generator's own "not found" still
//! applies after the gate.

use std::collections::HashSet;

use index::ChunkSource;
use serde::{Deserialize, Serialize};

use super::evidence::Evidence;
use super::Hit;
pub use crate::config::{RelevanceGate, DEFAULT_GATE};
use crate::error::Result;

/// What the gate judges a question by (each in 0..=1, cosines clamped at 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GateFeatures {
    /// Best cosine similarity of a retrieved chunk.
    pub dense: f32,
    /// Best cosine similarity of a source sentence.
    pub sentence: f32,
    /// IDF-weighted share of the question's terms found in the sources.
    pub coverage: f32,
    /// IDF-weighted share of the question's terms found in its best-covering sentence.
    pub sentence_coverage: f32,
}

impl GateFeatures {
    /// The features in a fixed order (that of [`RelevanceGate::weights`]).
    pub fn to_array(self) -> [f32; 4] {
        [
            self.dense,
            self.sentence,
            self.coverage,
            self.sentence_coverage,
        ]
    }

    /// Computes the features of `question` against `hits` (the sources) and their ranked
    /// `evidence`, weighting terms by their IDF in `searcher`'s collection; `None` without a
    /// dense score (BM25-only retrieval: the gate cannot judge, the model decides).
    pub fn measure(
        searcher: &dyn ChunkSource,
        question: &str,
        hits: &[Hit],
        evidence: &Evidence,
    ) -> Result<Option<Self>> {
        let Some(dense) = hits
            .iter()
            .filter_map(|h| h.stages.dense)
            .max_by(f32::total_cmp)
        else {
            return Ok(None);
        };
        let weights = searcher.term_idf(question)?;
        let mut sources = HashSet::new();
        for h in hits {
            sources.extend(searcher.analyze(&h.chunk.text)?);
            sources.extend(searcher.analyze(&h.chunk.title)?);
        }
        let mut sentence_coverage = 0.0f32;
        for s in &evidence.sentences {
            let own: HashSet<String> = searcher.analyze(&s.text)?.into_iter().collect();
            sentence_coverage = sentence_coverage.max(weighted_share(&weights, &own));
        }
        let sentence = evidence
            .sentences
            .iter()
            .map(|s| s.meaning)
            .fold(0.0f32, f32::max);
        Ok(Some(Self {
            dense: dense.max(0.0),
            sentence: sentence.max(0.0),
            coverage: weighted_share(&weights, &sources),
            sentence_coverage,
        }))
    }
}

/// The weighted share of `terms` that `within` holds (0 for a question without terms).
pub fn weighted_share(terms: &[(String, f32)], within: &HashSet<String>) -> f32 {
    let total: f32 = terms.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let found: f32 = terms
        .iter()
        .filter(|(t, _)| within.contains(t))
        .map(|(_, w)| w)
        .sum();
    found / total
}

impl RelevanceGate {
    /// The probability that the sources answer, by the model.
    pub fn probability(&self, f: &GateFeatures) -> f32 {
        let z = self.bias
            + self
                .weights
                .iter()
                .zip(f.to_array())
                .map(|(w, x)| w * x)
                .sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }

    /// Whether a question with these features is answered.
    pub fn admits(&self, f: &GateFeatures) -> bool {
        self.probability(f) >= self.min_probability
    }
}

/// One labelled question for [`fit`].
#[derive(Debug, Clone, Copy)]
pub struct Labelled {
    /// Its features.
    pub features: GateFeatures,
    /// True for an answerable question.
    pub answerable: bool,
}

/// Fits the logistic model to the labelled questions of `groups` (e.g. one group per
/// collection) by gradient descent on the log loss with a little L2 (both classes weighted
/// equally, whatever their counts), and sets `min_probability` to the highest value that still
/// admits `keep` of the answerable questions of every group.
pub fn fit(groups: &[Vec<Labelled>], keep: f64) -> RelevanceGate {
    let rows: Vec<Labelled> = groups.iter().flatten().copied().collect();
    let positives = rows.iter().filter(|r| r.answerable).count().max(1) as f64;
    let negatives = rows.iter().filter(|r| !r.answerable).count().max(1) as f64;
    let mut w = [0.0f64; 4];
    let mut b = 0.0f64;
    let lambda = 1e-3;
    let rate = 0.5;
    for _ in 0..20_000 {
        let mut gw = [0.0f64; 4];
        let mut gb = 0.0f64;
        for r in &rows {
            let x = r.features.to_array().map(f64::from);
            let z = b + w.iter().zip(&x).map(|(w, x)| w * x).sum::<f64>();
            let p = 1.0 / (1.0 + (-z).exp());
            let (y, weight) = if r.answerable {
                (1.0, 0.5 / positives)
            } else {
                (0.0, 0.5 / negatives)
            };
            let err = (p - y) * weight;
            for (g, x) in gw.iter_mut().zip(&x) {
                *g += err * x;
            }
            gb += err;
        }
        for (wi, g) in w.iter_mut().zip(&gw) {
            *wi -= rate * (g + lambda * *wi);
        }
        b -= rate * gb;
    }
    let mut gate = RelevanceGate {
        bias: b as f32,
        weights: w.map(|w| w as f32),
        min_probability: 0.0,
    };
    gate.min_probability = groups
        .iter()
        .filter_map(|group| {
            let mut kept: Vec<f32> = group
                .iter()
                .filter(|r| r.answerable)
                .map(|r| gate.probability(&r.features))
                .collect();
            kept.sort_by(f32::total_cmp);
            let drop = ((1.0 - keep) * kept.len() as f64).floor() as usize;
            kept.get(drop.min(kept.len().saturating_sub(1))).copied()
        })
        .fold(f32::INFINITY, f32::min);
    if !gate.min_probability.is_finite() {
        gate.min_probability = DEFAULT_GATE.min_probability;
    }
    gate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(dense: f32, sentence: f32, coverage: f32, sentence_coverage: f32) -> GateFeatures {
        GateFeatures {
            dense,
            sentence,
            coverage,
            sentence_coverage,
        }
    }

    #[test]
    fn weighted_share_counts_rare_terms_more() {
        let terms = vec![("pasta".to_string(), 8.0), ("best".to_string(), 1.0)];
        let within: HashSet<String> = ["best".to_string()].into();
        assert!((weighted_share(&terms, &within) - 1.0 / 9.0).abs() < 1e-6);
        assert_eq!(weighted_share(&[], &within), 0.0);
    }

    #[test]
    fn fit_separates_the_classes_and_keeps_the_asked_share() {
        let mut rows = Vec::new();
        for i in 0..100 {
            let t = i as f32 / 100.0;
            rows.push(Labelled {
                features: f(0.5 + 0.3 * t, 0.5 + 0.3 * t, 0.6 + 0.4 * t, 0.5),
                answerable: true,
            });
            rows.push(Labelled {
                features: f(0.2 + 0.3 * t, 0.2 + 0.3 * t, 0.1 + 0.3 * t, 0.2),
                answerable: false,
            });
        }
        let gate = fit(&[rows.clone()], 0.97);
        let kept = rows
            .iter()
            .filter(|r| r.answerable && gate.admits(&r.features))
            .count();
        assert!(kept >= 97, "{kept}");
        let refused = rows
            .iter()
            .filter(|r| !r.answerable && !gate.admits(&r.features))
            .count();
        assert!(refused >= 90, "{refused} {gate:?}");
        assert!(gate.weights.iter().all(|&w| w >= 0.0), "{gate:?}");
    }
}
