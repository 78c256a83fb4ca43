//! Chunking throughput (MB/s of normalised text) of the four chunkers on SciFact passages.
//!
//! Every chunker counts tokens with the real MiniLM tokenizer (through the candle embedder).
//! The semantic chunker is measured twice on the same passages: `semantic/minilm` embeds its
//! sentence groups with the real model, `semantic/hash_embedder` with
//! `ingest::testing::HashEmbedder` given the same MiniLM tokenizer; the gap between the two is
//! the cost of embedding, the rest is sentence splitting, distances and packing. It uses fewer
//! passages, since the real model dominates and criterion repeats each measurement.

use std::hint::black_box;
use std::sync::Arc;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use ingest::chunk::{FixedConfig, RecursiveConfig, SemanticConfig, SlidingConfig};
use ingest::testing::{minilm_token_counter, HashEmbedder};
use ingest::{Chunker, ChunkingStrategy, Document, Embedder, SourceId};

/// Passages for the fixed, sliding and recursive chunkers.
const PASSAGES: usize = 300;
/// Passages for the two semantic runs (the real model embeds every sentence group).
const SEMANTIC_PASSAGES: usize = 10;
const SAMPLE_SIZE: usize = 10;

/// SciFact passages as documents, and their total size in bytes.
fn documents(limit: usize) -> (Vec<Document>, u64) {
    let corpus = ragd::eval::dataset::default_scifact_dir().join("corpus.jsonl");
    let passages = ragd::eval::dataset::read_passages(&corpus, limit).expect("read SciFact corpus");
    let docs: Vec<Document> = passages
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Document::new(SourceId(format!("p{i}")), "", p, Default::default()))
        .collect();
    let bytes = docs.iter().map(|d| d.text().len() as u64).sum();
    (docs, bytes)
}

fn bench_one(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    chunker: &dyn Chunker,
    docs: &[Document],
) {
    group.bench_function(id, |b| {
        b.iter(|| {
            for doc in docs {
                black_box(ingest::chunk_document(doc, chunker).expect("chunk"));
            }
        })
    });
}

fn bench_chunk(c: &mut Criterion) {
    let cfg = ragd::Config::load(None).expect("valid configuration");
    let minilm: Arc<dyn Embedder> =
        Arc::new(ragd::wiring::load_embedder(&cfg).expect("load embedder"));
    let counter = minilm_token_counter().expect("MiniLM tokenizer in the models folder");
    let hash: Arc<dyn Embedder> = Arc::new(HashEmbedder::new().with_counter(Arc::new(counter)));
    let build =
        |s: ChunkingStrategy, e: &Arc<dyn Embedder>| s.build(e.clone()).expect("build chunker");

    let mut group = c.benchmark_group("chunk");
    group.sample_size(SAMPLE_SIZE);
    let (docs, bytes) = documents(PASSAGES);
    group.throughput(Throughput::Bytes(bytes));
    for (id, strategy) in [
        ("fixed", ChunkingStrategy::Fixed(FixedConfig::default())),
        (
            "sliding",
            ChunkingStrategy::Sliding(SlidingConfig::default()),
        ),
        (
            "recursive",
            ChunkingStrategy::Recursive(RecursiveConfig::default()),
        ),
    ] {
        bench_one(&mut group, id, build(strategy, &minilm).as_ref(), &docs);
    }

    let (docs, bytes) = documents(SEMANTIC_PASSAGES);
    group.throughput(Throughput::Bytes(bytes));
    let semantic = || ChunkingStrategy::Semantic(SemanticConfig::default());
    bench_one(
        &mut group,
        "semantic/minilm",
        build(semantic(), &minilm).as_ref(),
        &docs,
    );
    bench_one(
        &mut group,
        "semantic/hash_embedder",
        build(semantic(), &hash).as_ref(),
        &docs,
    );
    group.finish();
}

criterion_group!(benches, bench_chunk);
criterion_main!(benches);
