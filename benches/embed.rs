//! Embedding throughput of the candle MiniLM embedder on SciFact passages (criterion).
//!
//! Criterion repeats the measurement, so this uses a small slice of the corpus; the full
//! 1,000-passage comparison with sentence-transformers is `ragd bench embed` next to
//! `benches/peer_embed.py` (see BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest::Embedder;

const PASSAGES: usize = 64;
const BATCH: usize = 32;

fn bench_embed(c: &mut Criterion) {
    let mut cfg = ragd::Config::default();
    cfg.apply_env(|k| std::env::var(k).ok())
        .expect("valid RAGD_* environment");
    let embedder = ragd::model::load_embedder(&cfg).expect("load embedder");
    let corpus = ragd::bench::default_scifact_dir().join("corpus.jsonl");
    let passages = ragd::bench::read_passages(&corpus, PASSAGES).expect("read SciFact corpus");
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
}

criterion_group!(benches, bench_embed);
criterion_main!(benches);
