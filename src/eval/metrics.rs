//! Retrieval metrics with trec_eval semantics.
//!
//! Relevance is binary (a qrel score > 0 is relevant). Each metric is computed per query and
//! averaged over every query of the qrels; a query the run has no results for scores 0, as
//! `trec_eval -c` does.
//! - nDCG@k (Järvelin & Kekäläinen, 2002): DCG = Σ_{i ≤ k, d_i relevant} 1 / log2(i + 1), divided
//!   by the ideal DCG of min(|relevant|, k) relevant documents at the top.
//! - Recall@k: |relevant ∩ top k| / |relevant|.
//! - MRR@k: 1 / rank of the first relevant document in the top k, else 0.

use std::collections::{BTreeMap, HashSet};

/// Relevant document ids per query id.
pub type Qrels = BTreeMap<String, HashSet<String>>;

/// Ranked document ids per query id (best first, no duplicates).
pub type Run = BTreeMap<String, Vec<String>>;

/// nDCG@k of one ranking.
pub fn ndcg_at_k(ranked: &[String], relevant: &HashSet<String>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, d)| relevant.contains(*d))
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(k))
        .map(|i| 1.0 / ((i + 2) as f64).log2())
        .sum();
    if ideal > 0.0 {
        dcg / ideal
    } else {
        0.0
    }
}

/// Recall@k of one ranking.
pub fn recall_at_k(ranked: &[String], relevant: &HashSet<String>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|d| relevant.contains(*d))
        .count();
    found as f64 / relevant.len() as f64
}

/// Reciprocal rank of the first relevant document within the top k.
pub fn mrr_at_k(ranked: &[String], relevant: &HashSet<String>, k: usize) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|d| relevant.contains(d))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Mean metrics of a run over the queries of `qrels`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// Mean nDCG@10.
    pub ndcg_at_10: f64,
    /// Mean Recall@100.
    pub recall_at_100: f64,
    /// Mean MRR@10.
    pub mrr_at_10: f64,
    /// Number of queries averaged over.
    pub queries: usize,
}

/// Averages the three metrics over every query in `qrels`.
pub fn evaluate(run: &Run, qrels: &Qrels) -> Metrics {
    let empty = Vec::new();
    let mut sums = (0.0, 0.0, 0.0);
    for (qid, relevant) in qrels {
        let ranked = run.get(qid).unwrap_or(&empty);
        sums.0 += ndcg_at_k(ranked, relevant, 10);
        sums.1 += recall_at_k(ranked, relevant, 100);
        sums.2 += mrr_at_k(ranked, relevant, 10);
    }
    let n = qrels.len().max(1) as f64;
    Metrics {
        ndcg_at_10: sums.0 / n,
        recall_at_100: sums.1 / n,
        mrr_at_10: sums.2 / n,
        queries: qrels.len(),
    }
}

/// Percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn set(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ndcg_by_hand() {
        // Relevant {a, b}; ranking x a y b: DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3).
        let got = ndcg_at_k(&ids(&["x", "a", "y", "b"]), &set(&["a", "b"]), 10);
        let want = (1.0 / 3f64.log2() + 1.0 / 5f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((got - want).abs() < 1e-12);
        assert_eq!(ndcg_at_k(&ids(&["a", "b"]), &set(&["a", "b"]), 10), 1.0);
        // Cut-off: the relevant document at rank 3 does not count at k = 2.
        assert_eq!(ndcg_at_k(&ids(&["x", "y", "a"]), &set(&["a"]), 2), 0.0);
        // Ideal DCG is capped at k relevant documents.
        let many: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        let rel: HashSet<String> = many.iter().cloned().collect();
        assert!((ndcg_at_k(&many, &rel, 10) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn recall_and_mrr_by_hand() {
        let rel = set(&["a", "b", "c"]);
        assert!((recall_at_k(&ids(&["a", "x", "c"]), &rel, 100) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(recall_at_k(&ids(&["a", "x", "c"]), &rel, 1), 1.0 / 3.0);
        assert_eq!(mrr_at_k(&ids(&["x", "y", "b"]), &rel, 10), 1.0 / 3.0);
        assert_eq!(mrr_at_k(&ids(&["x", "y", "b"]), &rel, 2), 0.0);
    }

    #[test]
    fn missing_queries_score_zero() {
        let mut qrels = Qrels::new();
        qrels.insert("q1".into(), set(&["a"]));
        qrels.insert("q2".into(), set(&["b"]));
        let mut run = Run::new();
        run.insert("q1".into(), ids(&["a"]));
        let m = evaluate(&run, &qrels);
        assert_eq!(m.queries, 2);
        assert!((m.ndcg_at_10 - 0.5).abs() < 1e-12);
        assert!((m.mrr_at_10 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn percentiles_by_hand() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 10.0);
        assert_eq!(percentile(&v, 95.0), 19.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
