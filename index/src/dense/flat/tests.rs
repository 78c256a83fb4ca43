//! Unit tests of `flat.rs`.

use super::*;
use proptest::prelude::*;

fn exact_dist(a: &[f32], b: &[f32]) -> f32 {
    1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

/// Deterministic pseudo-random unit vectors (xorshift), no extra dependencies.
fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..dim).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn exact_top(data: &[Vec<f32>], q: &[f32], k: usize, keep: impl Fn(u64) -> bool) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = data
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i as u64))
        .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i as u64))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

/// A graph whose layer 0 links every point to its `degree` exact nearest neighbours and
/// whose layer 1 (every tenth point) is fully linked.
fn knn_graph(data: &[Vec<f32>], degree: usize) -> FlatGraph {
    let top: Vec<u64> = (0..data.len() as u64).step_by(10).collect();
    let points = data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let near: Vec<u64> = exact_top(data, v, degree + 1, |j| j != i as u64);
            let level = usize::from(i % 10 == 0);
            let mut links = vec![near];
            if level == 1 {
                links.push(top.iter().copied().filter(|&j| j != i as u64).collect());
            }
            FrozenPoint {
                id: i as u64,
                level,
                exact: Arc::new(v.clone()),
                links,
            }
        })
        .collect();
    FlatGraph::new(points, data[0].len(), exact_dist)
}

fn recall(found: &[(u64, f32)], truth: &[u64]) -> f64 {
    let hits = found.iter().filter(|(id, _)| truth.contains(id)).count();
    hits as f64 / truth.len() as f64
}

#[test]
fn search_finds_the_exact_neighbours_of_a_knn_graph() {
    let data = vectors(600, 16, 1);
    let graph = knn_graph(&data, 12);
    assert_eq!(graph.len(), 600);
    assert_eq!(graph.level_of(10), Some(1));
    assert_eq!(graph.level_of(11), Some(0));
    let mut total = 0.0;
    for q in vectors(50, 16, 2) {
        let found = graph.search(&q, 10, 64, |_| true);
        assert_eq!(found.len(), 10);
        assert!(found.windows(2).all(|w| w[0].1 <= w[1].1), "nearest first");
        for (id, dist) in &found {
            let exact = 1.0
                - data[*id as usize]
                    .iter()
                    .zip(&q)
                    .map(|(a, b)| a * b)
                    .sum::<f32>();
            assert!(
                (dist - exact).abs() < 1e-3,
                "f16 distance {dist} vs {exact}"
            );
        }
        total += recall(&found, &exact_top(&data, &q, 10, |_| true));
    }
    assert!(total / 50.0 >= 0.95, "recall@10 {}", total / 50.0);
}

#[test]
fn filtered_search_returns_only_and_enough_accepted_points() {
    let data = vectors(600, 16, 3);
    let graph = knn_graph(&data, 12);
    for (i, q) in vectors(20, 16, 4).iter().enumerate() {
        // Keeps one point in 7 (the start point is usually rejected).
        let keep = |id: u64| id % 7 == (i % 7) as u64;
        let found = graph.search(q, 10, 32, keep);
        assert_eq!(
            found.len(),
            10,
            "the search runs until it holds ef accepted points"
        );
        assert!(found.iter().all(|(id, _)| keep(*id)));
        let truth = exact_top(&data, q, 10, keep);
        assert!(recall(&found, &truth) >= 0.8, "query {i}");
    }
    assert!(graph.search(&data[0], 10, 32, |_| false).is_empty());
}

#[test]
fn links_below_their_layer_or_outside_the_copy_are_dropped() {
    let data = vectors(3, 4, 5);
    let point = |id: u64, level: usize, links: Vec<Vec<u64>>| FrozenPoint {
        id,
        level,
        exact: Arc::new(data[id as usize].clone()),
        links,
    };
    // Point 0 (layer 1) lists point 1 (layer 0 only) and a point 9 that is not copied.
    let graph = FlatGraph::new(
        vec![
            point(0, 1, vec![vec![1, 2, 9], vec![1, 9]]),
            point(1, 0, vec![vec![0, 2]]),
            point(2, 0, vec![vec![0, 1]]),
        ],
        4,
        exact_dist,
    );
    assert_eq!(graph.neighbours(0, 1), &[] as &[u32]);
    assert_eq!(graph.neighbours(0, 0), &[1, 2]);
    assert_eq!(
        graph.neighbours(1, 1),
        &[] as &[u32],
        "no list above a point's level"
    );
    let found = graph.search(&data[2], 3, 8, |_| true);
    assert_eq!(found.len(), 3);
    assert_eq!(found[0].0, 2);
}

#[test]
fn visited_tags_survive_wrapping() {
    let data = vectors(300, 8, 6);
    let graph = knn_graph(&data, 8);
    let q = &vectors(1, 8, 7)[0];
    let before = graph.search(q, 10, 40, |_| true);
    SCRATCH.with(|s| s.borrow_mut().tag = u16::MAX - 1);
    for _ in 0..4 {
        assert_eq!(graph.search(q, 10, 40, |_| true), before);
    }
    SCRATCH.with(|s| assert!(s.borrow().tag < 10, "the tag wrapped"));
}

#[test]
fn empty_graph_zero_k_and_wrong_dimension_find_nothing() {
    let empty = FlatGraph::new(Vec::new(), 4, exact_dist);
    assert!(empty.is_empty());
    assert!(empty
        .search(&[1.0, 0.0, 0.0, 0.0], 5, 10, |_| true)
        .is_empty());
    let data = vectors(20, 4, 8);
    let graph = knn_graph(&data, 4);
    assert!(graph.search(&data[0], 0, 10, |_| true).is_empty());
    assert!(graph.search(&[1.0, 0.0], 5, 10, |_| true).is_empty());
}

fn f16_round(v: &[f32]) -> Vec<u16> {
    v.iter()
        .map(|x| half::f16::from_f32(*x).to_bits())
        .collect()
}

fn reference(a: &[f32], b: &[u16]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(half::f16::from_bits(*y).to_f32()))
        .sum()
}

proptest! {
    #[test]
    fn dot_kernels_match_the_reference(
        pairs in prop::collection::vec((-1.0f32..1.0, -1.0f32..1.0), 0..700),
    ) {
        let a: Vec<f32> = pairs.iter().map(|p| p.0).collect();
        let b = f16_round(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
        let want = reference(&a, &b);
        let scale: f64 = a.iter().map(|x| f64::from(x.abs())).sum::<f64>() + 1.0;
        let mut kernels: Vec<(&str, DotFn)> = vec![("portable", dot_portable), ("chosen", dot_fn())];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push(("avx512", dot_avx512));
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                kernels.push(("avx2", dot_avx2));
            }
        }
        for (name, dot) in kernels {
            let got = f64::from(dot(&a, &b));
            prop_assert!((got - want).abs() <= 1e-5 * scale, "{name}: {got} vs {want}");
        }
    }
}
