//! Embedding throughput of the candle MiniLM embedder on SciFact passages (criterion).
//!
//! Criterion repeats the measurement, so this uses a small slice of the corpus; the full
//! 1,000-passage comparison with sentence-transformers is `ragd bench embed` next to
//! `benches/peer_embed.py` (see BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest::Embedder;
use ragd::config::Precision;

const PASSAGES: usize = 64;
const BATCH: usize = 32;

fn bench_embed(c: &mut Criterion) {
    let mut cfg = ragd::Config::default();
    cfg.apply_env(|k| std::env::var(k).ok())
        .expect("valid RAGD_* environment");
    let embedder = ragd::wiring::load_embedder(&cfg).expect("load embedder");
    let corpus = ragd::eval::dataset::default_scifact_dir().join("corpus.jsonl");
    let passages =
        ragd::eval::dataset::read_passages(&corpus, PASSAGES).expect("read SciFact corpus");
    let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
    let mut group = c.benchmark_group("embed");
    group.sample_size(10);
    group.throughput(Throughput::Elements(refs.len() as u64));
    group.bench_function("minilm_scifact_batch32", |b| {
        b.iter(|| {
            for chunk in refs.chunks(BATCH) {
                embedder.embed(chunk).expect("embed");
            }
        })
    });
    group.finish();

    // One short query at a time, as a search embeds it: f32 against 8-bit dense layers,
    // measured in the same run (`embedder.precision`).
    let queries = read_queries(
        &ragd::eval::dataset::default_scifact_dir().join("queries.jsonl"),
        32,
    );
    let mut group = c.benchmark_group("embed_query");
    group.sample_size(10);
    group.throughput(Throughput::Elements(queries.len() as u64));
    for precision in [Precision::F32, Precision::Q8] {
        let mut cfg = cfg.clone();
        cfg.embedder.precision = precision;
        let embedder = ragd::wiring::load_embedder(&cfg).expect("load embedder");
        group.bench_function(format!("{precision:?}").to_lowercase(), |b| {
            b.iter(|| {
                for q in &queries {
                    embedder.embed(&[q.as_str()]).expect("embed");
                }
            })
        });
    }
    group.finish();
}

/// The first `n` query texts of a BEIR queries.jsonl.
fn read_queries(path: &std::path::Path, n: usize) -> Vec<String> {
    let mut texts = ragd::eval::dataset::read_query_texts(path).expect("read queries.jsonl");
    texts.truncate(n);
    texts
}

criterion_group!(benches, bench_embed);
criterion_main!(benches);
