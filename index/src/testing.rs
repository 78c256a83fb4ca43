//! Fixtures and oracles for tests and benches (feature `testing`): seeded synthetic vectors,
//! exact nearest-neighbour search, recall, and small documents.

use std::collections::{BTreeMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{CollectionConfig, MaintenanceConfig};
use crate::types::{ChunkInput, DocumentRecord};

/// A seeded RNG.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Scales `v` to unit norm.
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// `n` isotropic random unit vectors of dimension `dim`.
pub fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| unit((0..dim).map(|_| gaussian(&mut r)).collect()))
        .collect()
}

/// `n` unit vectors around `clusters` random centres; `spread` is the noise scale relative to
/// the centre (0.5 to 1.0 gives realistic, embedding-like neighbourhoods).
pub fn clustered_vectors(
    n: usize,
    dim: usize,
    clusters: usize,
    spread: f32,
    seed: u64,
) -> Vec<Vec<f32>> {
    let centres = random_unit_vectors(clusters.max(1), dim, seed ^ 0x9e37_79b9);
    let mut r = rng(seed);
    let noise = spread / (dim as f32).sqrt();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            unit(c.iter().map(|x| x + noise * gaussian(&mut r)).collect())
        })
        .collect()
}

/// `n` unit vectors with low intrinsic dimension, like text embeddings: a seeded random linear
/// map of `rank`-dimensional Gaussian codes into `dim` dimensions, plus isotropic noise of
/// relative scale `noise`.
pub fn low_rank_vectors(n: usize, dim: usize, rank: usize, noise: f32, seed: u64) -> Vec<Vec<f32>> {
    let basis = random_unit_vectors(rank, dim, 0x5eed_ba5e);
    let mut r = rng(seed);
    let noise = noise / (dim as f32).sqrt();
    (0..n)
        .map(|_| {
            let mut v: Vec<f32> = (0..dim).map(|_| noise * gaussian(&mut r)).collect();
            for b in &basis {
                let z = gaussian(&mut r) / (rank as f32).sqrt();
                v.iter_mut().zip(b).for_each(|(x, bx)| *x += z * bx);
            }
            unit(v)
        })
        .collect()
}

/// Exact top-`k` indices of `data` by dot product with `query` (the oracle).
pub fn brute_force_knn(data: &[Vec<f32>], query: &[f32], k: usize) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>(), i))
        .collect();
    let k = k.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// Fraction of `truth` found in `found` (order ignored).
pub fn recall(found: &[u64], truth: &[usize]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let found: HashSet<u64> = found.iter().copied().collect();
    let hits = truth
        .iter()
        .filter(|t| found.contains(&(**t as u64)))
        .count();
    hits as f64 / truth.len() as f64
}

/// A collection config for tests: dimension `dim`, small caches, frequent dumps.
pub fn test_config(name: &str, dim: usize) -> CollectionConfig {
    let mut c = CollectionConfig::new(name, "test-embedder", dim);
    c.maintenance = MaintenanceConfig {
        dump_every_writes: 50,
        compact_tombstone_ratio: 0.3,
        compact_min_tombstones: 8,
        sled_cache_bytes: 4 << 20,
        tantivy_memory_bytes: 15_000_000,
    };
    c
}

/// The unique searchable word of document `id` chunk `ordinal` (survives the analyzers).
pub fn marker(id: &str, ordinal: usize) -> String {
    format!("mk{id}x{ordinal}").replace(|c: char| !c.is_ascii_alphanumeric(), "q")
}

/// A document whose chunk `i` has text containing [`marker`] and a vector derived from
/// `(id, version, i)`; `version` changes the content hash and vectors.
pub fn doc(id: &str, version: u32, chunks: usize, dim: usize) -> DocumentRecord {
    let seed = id.bytes().fold(u64::from(version) * 1_000_003, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let vectors = random_unit_vectors(chunks, dim, seed);
    let mut metadata = BTreeMap::new();
    metadata.insert("parity".to_owned(), (id.len() % 2).to_string());
    DocumentRecord {
        id: id.to_owned(),
        title: format!("title of {id}"),
        metadata,
        content_hash: format!("{id}-v{version}"),
        indexed_with: String::new(),
        chunks: vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let text = format!("chunk {i} about {} version {version}", marker(id, i));
                let len = text.chars().count();
                ChunkInput::new(text, i * 100, i * 100 + len, v)
            })
            .collect(),
    }
}
