//! Fusing ranked lists from several retrievers: pure functions, no I/O.
//!
//! - **Reciprocal rank fusion** (Cormack, Clarke & Büttcher, "Reciprocal Rank Fusion outperforms
//!   Condorcet and individual Rank Learning Methods", SIGIR 2009):
//!   `score(d) = Σ_lists w_l / (k + rank_l(d))`, ranks starting at 1, `k = 60` by default (the
//!   paper's value). Only ranks matter, so scores on different scales fuse without calibration.
//! - **Convex combination** of normalised scores (Bruch, Gai & Ingber, "An Analysis of Fusion
//!   Functions for Hybrid Retrieval", TOIS 2023): `score(d) = α·norm(dense(d)) +
//!   (1 − α)·norm(sparse(d))`, where `norm` is min-max (`(s − min) / (max − min)`) or z-score
//!   (`(s − μ) / σ`) over each list. A document missing from a list gets that list's lowest
//!   normalised value (0 for min-max), i.e. it is treated as ranking just below the list's tail.
//!
//! Inputs are lists of `(id, score)` best first; ids may repeat within a list (the best entry
//! counts). Outputs are deduplicated and sorted by fused score, ties broken by id for
//! determinism.

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// How to normalise scores before a convex combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// `(s − min) / (max − min)`; a constant list maps to 1.
    MinMax,
    /// `(s − mean) / std`; a constant list maps to 0.
    ZScore,
}

/// A fusion method and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Fusion {
    /// Reciprocal rank fusion with constant `k`.
    Rrf {
        /// The rank offset; 60 in the paper.
        k: f32,
    },
    /// Convex combination `alpha · dense + (1 − alpha) · sparse` of normalised scores.
    Convex {
        /// Weight of the dense list, in [0, 1].
        alpha: f32,
        /// Score normalisation.
        normalization: Normalization,
    },
}

impl Default for Fusion {
    fn default() -> Self {
        Self::Rrf { k: 60.0 }
    }
}

impl std::str::FromStr for Fusion {
    type Err = String;

    /// Parses `rrf`, `rrf:K`, `minmax:ALPHA` or `zscore:ALPHA` (ALPHA weighs the dense list;
    /// K defaults to 60 and ALPHA to 0.5).
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, arg) = s.split_once(':').map_or((s, None), |(a, b)| (a, Some(b)));
        let num = |default: f32| -> Result<f32, String> {
            arg.map_or(Ok(default), |a| {
                a.parse::<f32>().map_err(|e| format!("`{a}`: {e}"))
            })
        };
        match name {
            "rrf" => Ok(Self::Rrf { k: num(60.0)? }),
            "minmax" => Ok(Self::Convex {
                alpha: num(0.5)?,
                normalization: Normalization::MinMax,
            }),
            "zscore" => Ok(Self::Convex {
                alpha: num(0.5)?,
                normalization: Normalization::ZScore,
            }),
            other => Err(format!(
                "unknown fusion `{other}`: use rrf[:K], minmax[:ALPHA] or zscore[:ALPHA]"
            )),
        }
    }
}

/// Deduplicates a ranked list, keeping each id's first (best) occurrence.
fn dedup<T: Copy + Eq + Hash>(list: &[(T, f32)]) -> Vec<(T, f32)> {
    let mut seen = std::collections::HashSet::new();
    list.iter()
        .copied()
        .filter(|(id, _)| seen.insert(*id))
        .collect()
}

fn sorted<T: Copy + Ord>(scores: HashMap<T, f32>) -> Vec<(T, f32)> {
    let mut out: Vec<(T, f32)> = scores.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// Reciprocal rank fusion of weighted lists.
pub fn rrf<T: Copy + Eq + Hash + Ord>(lists: &[(&[(T, f32)], f32)], k: f32) -> Vec<(T, f32)> {
    let mut scores: HashMap<T, f32> = HashMap::new();
    for (list, weight) in lists {
        for (rank, (id, _)) in dedup(list).into_iter().enumerate() {
            *scores.entry(id).or_default() += weight / (k + rank as f32 + 1.0);
        }
    }
    sorted(scores)
}

/// Normalises the scores of one (deduplicated) list; returns the values and the floor given to
/// ids missing from it.
fn normalize<T: Copy>(list: &[(T, f32)], how: Normalization) -> (Vec<(T, f32)>, f32) {
    if list.is_empty() {
        return (Vec::new(), 0.0);
    }
    let n = list.len() as f32;
    match how {
        Normalization::MinMax => {
            let (lo, hi) = list
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &(_, s)| {
                    (lo.min(s), hi.max(s))
                });
            let span = hi - lo;
            let f = |s: f32| if span > 0.0 { (s - lo) / span } else { 1.0 };
            (list.iter().map(|&(id, s)| (id, f(s))).collect(), 0.0)
        }
        Normalization::ZScore => {
            let mean = list.iter().map(|x| x.1).sum::<f32>() / n;
            let var = list.iter().map(|x| (x.1 - mean).powi(2)).sum::<f32>() / n;
            let sd = var.sqrt();
            let f = |s: f32| if sd > 0.0 { (s - mean) / sd } else { 0.0 };
            let out: Vec<(T, f32)> = list.iter().map(|&(id, s)| (id, f(s))).collect();
            let floor = out.iter().map(|x| x.1).fold(f32::INFINITY, f32::min);
            (out, floor)
        }
    }
}

/// Convex combination `alpha · dense + (1 − alpha) · sparse` of normalised scores.
pub fn convex<T: Copy + Eq + Hash + Ord>(
    dense: &[(T, f32)],
    sparse: &[(T, f32)],
    alpha: f32,
    how: Normalization,
) -> Vec<(T, f32)> {
    let (d, d_floor) = normalize(&dedup(dense), how);
    let (s, s_floor) = normalize(&dedup(sparse), how);
    let d_map: HashMap<T, f32> = d.iter().copied().collect();
    let s_map: HashMap<T, f32> = s.iter().copied().collect();
    let mut scores = HashMap::new();
    for id in d_map.keys().chain(s_map.keys()) {
        let dv = d_map.get(id).copied().unwrap_or(d_floor);
        let sv = s_map.get(id).copied().unwrap_or(s_floor);
        scores.insert(*id, alpha * dv + (1.0 - alpha) * sv);
    }
    sorted(scores)
}

/// Fuses a dense and a sparse list with `method`.
pub fn fuse<T: Copy + Eq + Hash + Ord>(
    method: Fusion,
    dense: &[(T, f32)],
    sparse: &[(T, f32)],
) -> Vec<(T, f32)> {
    match method {
        Fusion::Rrf { k } => rrf(&[(dense, 1.0), (sparse, 1.0)], k),
        Fusion::Convex {
            alpha,
            normalization,
        } => convex(dense, sparse, alpha, normalization),
    }
}

/// Aggregates item scores into group scores by maximum (e.g. chunks into documents), best first.
pub fn max_by_group<T, G: Clone + Eq + Hash + Ord>(
    items: &[(T, f32)],
    group: impl Fn(&T) -> G,
) -> Vec<(G, f32)> {
    let mut best: HashMap<G, f32> = HashMap::new();
    for (item, score) in items {
        let e = best.entry(group(item)).or_insert(f32::NEG_INFINITY);
        *e = e.max(*score);
    }
    let mut out: Vec<(G, f32)> = best.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fusion_specs_parse() {
        let parse = |s: &str| s.parse::<Fusion>();
        assert_eq!(parse("rrf").unwrap(), Fusion::Rrf { k: 60.0 });
        assert_eq!(parse("rrf:20").unwrap(), Fusion::Rrf { k: 20.0 });
        assert_eq!(
            parse("zscore:0.3").unwrap(),
            Fusion::Convex {
                alpha: 0.3,
                normalization: Normalization::ZScore,
            }
        );
        assert!(parse("minmax:x").is_err());
        assert!(parse("borda").is_err());
    }

    #[test]
    fn rrf_by_hand() {
        let dense = [(1u64, 0.9), (2, 0.8), (3, 0.1)];
        let sparse = [(3u64, 12.0), (1, 7.0)];
        let fused = rrf(&[(&dense[..], 1.0), (&sparse[..], 1.0)], 60.0);
        // 1: 1/61 + 1/62; 3: 1/63 + 1/61; 2: 1/62.
        assert_eq!(fused.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-7);
        assert!((fused[2].1 - 1.0 / 62.0).abs() < 1e-7);
    }

    #[test]
    fn duplicates_count_once_at_their_best_rank() {
        let dense = [(1u64, 0.9), (1, 0.5), (2, 0.4)];
        let fused = rrf(&[(&dense[..], 1.0)], 60.0);
        assert_eq!(fused.len(), 2);
        assert!(
            (fused[1].1 - 1.0 / 62.0).abs() < 1e-7,
            "2 is at rank 2 once 1's duplicate is dropped"
        );
    }

    #[test]
    fn convex_min_max_by_hand() {
        let dense = [(1u64, 0.9), (2, 0.5)];
        let sparse = [(2u64, 10.0), (3, 5.0)];
        let fused = convex(&dense, &sparse, 0.5, Normalization::MinMax);
        let get = |id| fused.iter().find(|x| x.0 == id).unwrap().1;
        assert!((get(1) - 0.5).abs() < 1e-6); // dense 1.0, sparse missing -> 0
        assert!((get(2) - 0.5).abs() < 1e-6); // dense 0.0, sparse 1.0
        assert!(get(3).abs() < 1e-6); // dense missing, sparse 0.0
        assert_eq!(convex(&dense, &sparse, 1.0, Normalization::MinMax)[0].0, 1);
        assert_eq!(convex(&dense, &sparse, 0.0, Normalization::MinMax)[0].0, 2);
    }

    #[test]
    fn z_score_missing_gets_list_floor() {
        let dense = [(1u64, 3.0), (2, 1.0)];
        let sparse = [(1u64, 2.0), (3, 0.0)];
        let fused = convex(&dense, &sparse, 0.5, Normalization::ZScore);
        let get = |id| fused.iter().find(|x| x.0 == id).unwrap().1;
        assert!(
            (get(1) - 1.0).abs() < 1e-6
                && (get(2) - (-1.0)).abs() < 1e-6
                && (get(3) - (-1.0)).abs() < 1e-6
        );
    }

    #[test]
    fn max_by_group_aggregates() {
        let items = [((1u32, 'a'), 0.2), ((2, 'b'), 0.9), ((3, 'a'), 0.7)];
        let groups = max_by_group(&items, |(_, g)| *g);
        assert_eq!(groups, vec![('b', 0.9), ('a', 0.7)]);
    }

    fn list() -> impl Strategy<Value = Vec<(u8, f32)>> {
        proptest::collection::vec((0u8..40, -100f32..100.0), 0..30)
    }

    proptest! {
        /// Fused output is deduplicated, covers exactly the union of ids, and is sorted; RRF
        /// matches a naive computation.
        #[test]
        fn fusion_invariants(dense in list(), sparse in list(), alpha in 0f32..=1.0) {
            let union: std::collections::BTreeSet<u8> = dense.iter().chain(&sparse).map(|x| x.0).collect();
            for method in [Fusion::Rrf { k: 60.0 }, Fusion::Convex { alpha, normalization: Normalization::MinMax }, Fusion::Convex { alpha, normalization: Normalization::ZScore }] {
                let fused = fuse(method, &dense, &sparse);
                let ids: std::collections::BTreeSet<u8> = fused.iter().map(|x| x.0).collect();
                prop_assert_eq!(ids.len(), fused.len());
                prop_assert_eq!(&ids, &union);
                prop_assert!(fused.windows(2).all(|w| w[0].1 >= w[1].1));
            }
            let fused = rrf(&[(&dense[..], 1.0), (&sparse[..], 1.0)], 60.0);
            for (id, score) in fused {
                let naive: f32 = [&dense, &sparse].iter().map(|l| {
                    let mut seen = Vec::new();
                    for (id2, _) in l.iter() { if !seen.contains(id2) { seen.push(*id2); } }
                    seen.iter().position(|x| *x == id).map_or(0.0, |r| 1.0 / (61.0 + r as f32))
                }).sum();
                prop_assert!((score - naive).abs() < 1e-6);
            }
        }
    }
}
