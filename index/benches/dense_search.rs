//! HNSW build time, recall@10 and single-threaded queries/s at several `ef`, on seeded,
//! normalised synthetic vectors of low intrinsic dimension (embedding-like); writes the same vectors for
//! `benches/peer_hnswlib.py` (hnswlib with the same M / ef_construction).
//!
//! `RAGD_BENCH_N` (default 50 000), `RAGD_BENCH_DIM` (384), `RAGD_BENCH_DIR`
//! (/tmp/ragd-bench). Run: `cargo bench -p ragd-index --bench dense_search`, then
//! `python3 index/benches/peer_hnswlib.py /tmp/ragd-bench`. With `RAGD_BENCH_INPUT=DIR` the
//! vectors are read from `DIR/base.f32` and `DIR/queries.f32` instead (e.g. SciFact's chunk
//! and query embeddings, written by `ragd eval vectors`), and results go to `DIR`.
//!
//! Both searches of ragd are measured: the frozen copy searches use by default, and the hnsw_rs
//! graph itself (what a snapshot searches until the background freeze catches up).

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use ragd_index::config::HnswConfig;
use ragd_index::dense::{normalise, DenseWriter};
use ragd_index::testing::{brute_force_knn, low_rank_vectors, recall};
use ragd_index::types::ScoredChunk;
use ragd_index::vecfile;

const M: usize = 16;
const EF_CONSTRUCTION: usize = 200;
const K: usize = 10;
const QUERIES: usize = 1000;
const EFS: [usize; 7] = [16, 32, 64, 96, 128, 256, 512];
const SEED: u64 = 2024;
/// Intrinsic dimension and noise of the synthetic, embedding-like vectors.
const RANK: usize = 32;
const NOISE: f32 = 0.3;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn out_dir() -> PathBuf {
    PathBuf::from(std::env::var("RAGD_BENCH_DIR").unwrap_or_else(|_| "/tmp/ragd-bench".into()))
}

/// Exact top-k of every query, two threads.
fn ground_truth(data: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<Vec<usize>> {
    let half = queries.len() / 2;
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            queries[..half]
                .iter()
                .map(|q| brute_force_knn(data, q, K))
                .collect::<Vec<_>>()
        });
        let mut b: Vec<Vec<usize>> = queries[half..]
            .iter()
            .map(|q| brute_force_knn(data, q, K))
            .collect();
        let mut all = a.join().unwrap();
        all.append(&mut b);
        all
    })
}

/// Recall@10 and queries/s of `search` over all queries at width `ef`.
fn measure(
    search: &dyn Fn(&[f32], usize) -> Vec<ScoredChunk>,
    queries: &[Vec<f32>],
    truth: &[Vec<usize>],
    ef: usize,
) -> (f64, f64) {
    let start = Instant::now();
    let mut total = 0.0;
    for (q, t) in queries.iter().zip(truth) {
        let hits = search(q, ef);
        total += recall(&hits.iter().map(|h| h.id.0).collect::<Vec<_>>(), t);
    }
    let qps = queries.len() as f64 / start.elapsed().as_secs_f64();
    (total / queries.len() as f64, qps)
}

fn bench(c: &mut Criterion) {
    let (dir, data, queries) = match std::env::var_os("RAGD_BENCH_INPUT") {
        Some(input) => {
            let dir = PathBuf::from(input);
            let data = vecfile::read(&dir.join("base.f32")).unwrap();
            let queries = vecfile::read(&dir.join("queries.f32")).unwrap();
            (dir, data, queries)
        }
        None => {
            let n = env_or("RAGD_BENCH_N", 50_000);
            let dim = env_or("RAGD_BENCH_DIM", 384);
            let dir = out_dir();
            fs::create_dir_all(&dir).unwrap();
            let data = low_rank_vectors(n, dim, RANK, NOISE, SEED);
            let queries = low_rank_vectors(QUERIES, dim, RANK, NOISE, SEED + 1);
            vecfile::write(&dir.join("base.f32"), &data).unwrap();
            vecfile::write(&dir.join("queries.f32"), &queries).unwrap();
            (dir, data, queries)
        }
    };
    let (n, dim) = (data.len(), data[0].len());
    let truth = ground_truth(&data, &queries);
    let gt: Vec<u8> = truth
        .iter()
        .flatten()
        .flat_map(|i| (*i as u32).to_le_bytes())
        .collect();
    fs::write(dir.join("gt.u32"), gt).unwrap();

    let items: Vec<(u64, Vec<f32>)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, normalise(v, dim).unwrap()))
        .collect();
    let config = HnswConfig {
        m: M,
        ef_construction: EF_CONSTRUCTION,
        ef_search: 64,
    };
    // The graph is cached beside the vectors (`graph-<n>/`), so reruns skip the build; the
    // build time recorded is the one measured when the cache was made.
    let cache = dir.join(format!("graph-{n}"));
    let build_file = cache.join("build_s");
    let (dense, build) = match DenseWriter::load(&cache, config, 1).ok().flatten() {
        Some(dense) if dense.live() == n as u64 => {
            let build = fs::read_to_string(&build_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(f64::NAN);
            (dense, build)
        }
        _ => {
            let start = Instant::now();
            let mut dense = DenseWriter::build(config, &items);
            let build = start.elapsed().as_secs_f64();
            fs::create_dir_all(&cache).unwrap();
            dense.dump(&cache, 1).unwrap();
            fs::write(&build_file, format!("{build}")).unwrap();
            (dense, build)
        }
    };
    let view = dense.view(n as u64);
    let start = Instant::now();
    dense.freeze_now(n as u64);
    let freeze = start.elapsed().as_secs_f64();
    let frozen = view.graph().frozen().unwrap();
    let flat_mib = frozen.flat.memory_bytes() as f64 / (1 << 20) as f64;
    println!("freeze: {:.0} ms, {flat_mib:.0} MiB", freeze * 1e3);
    let by_hnsw_rs = |q: &[f32], ef: usize| view.search_graph(q, K, ef, None);
    let by_flat = |q: &[f32], ef: usize| view.search(q, K, ef, None);
    let nq: Vec<Vec<f32>> = queries.iter().map(|q| normalise(q, dim).unwrap()).collect();
    let mut report = format!("{{\"n\":{n},\"dim\":{dim},\"m\":{M},\"ef_construction\":{EF_CONSTRUCTION},\"build_s\":{build:.2},\"freeze_s\":{freeze:.3},\"flat_mib\":{flat_mib:.1},\"runs\":[");
    println!("ragd/hnsw_rs n={n} dim={dim} M={M} efC={EF_CONSTRUCTION} build={build:.1}s (parallel insert, {} threads)", std::thread::available_parallelism().map_or(1, |p| p.get()));
    for (i, ef) in EFS.iter().enumerate() {
        let (r0, qps0) = measure(&by_hnsw_rs, &nq, &truth, *ef);
        let (r, qps) = measure(&by_flat, &nq, &truth, *ef);
        println!("ragd ef={ef:4} flat: recall@10={r:.4} qps={qps:.0} | hnsw_rs search: recall@10={r0:.4} qps={qps0:.0} (1 thread)");
        let sep = if i == 0 { "" } else { "," };
        report.push_str(&format!(
            "{sep}{{\"ef\":{ef},\"recall\":{r:.4},\"qps\":{qps:.0},\"hnsw_rs_recall\":{r0:.4},\"hnsw_rs_qps\":{qps0:.0}}}"
        ));
    }
    report.push_str("]}");
    fs::write(dir.join("ragd_results.json"), report).unwrap();

    let mut group = c.benchmark_group("dense_search");
    group.sample_size(20);
    for ef in [64, 128] {
        group.bench_function(format!("k10_ef{ef}_n{n}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % nq.len();
                view.search(&nq[i], K, ef, None)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
