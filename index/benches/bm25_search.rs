//! BM25 query latency (p50 / p95) on SciFact and resident memory per 100k chunks.
//!
//! Reads `<repo>/../shared/eval/scifact/{corpus,queries}.jsonl` (never committed; skipped when
//! absent). Documents are cut into sentence-group chunks (~3 sentences) and the corpus is
//! replicated under fresh ids until it holds at least [`TARGET_CHUNKS`] chunks; vectors are
//! tiny ([`DIM`]) so RSS is dominated by the meta store and tantivy. Run:
//! `cargo bench -p ragd-index --bench bm25_search`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use ragd_index::testing::unit;
use ragd_index::{ChunkInput, Collection, CollectionConfig, DocumentRecord, Filter};

const TARGET_CHUNKS: usize = 100_000;
const DIM: usize = 8;
const SENTENCES_PER_CHUNK: usize = 3;
const K: usize = 10;

fn scifact_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/eval/scifact")
}

fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn field(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_owned()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn chunks_of(text: &str, salt: u64) -> Vec<ChunkInput> {
    let sentences: Vec<&str> = text.split_inclusive(". ").collect();
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, group) in sentences.chunks(SENTENCES_PER_CHUNK).enumerate() {
        let t: String = group.concat();
        let len = t.chars().count();
        let v = unit(
            (0..DIM)
                .map(|d| (((salt + i as u64) * 31 + d as u64) % 17) as f32 + 1.0)
                .collect(),
        );
        out.push(ChunkInput::new(t, offset, offset + len, v));
        offset += len;
    }
    out
}

fn load(c: &Collection, corpus: &[serde_json::Value]) -> usize {
    let w = c.writer();
    let mut chunks = 0;
    let mut copy = 0;
    while chunks < TARGET_CHUNKS {
        for batch in corpus.chunks(500) {
            let docs: Vec<DocumentRecord> = batch
                .iter()
                .enumerate()
                .map(|(i, d)| DocumentRecord {
                    id: format!("{}#{copy}", field(d, "_id")),
                    title: field(d, "title"),
                    metadata: BTreeMap::from([("copy".to_owned(), copy.to_string())]),
                    content_hash: "h".into(),
                    indexed_with: String::new(),
                    chunks: chunks_of(&field(d, "text"), i as u64),
                })
                .collect();
            chunks += docs.iter().map(|d| d.chunks.len()).sum::<usize>();
            w.upsert_documents(docs).unwrap();
        }
        copy += 1;
    }
    w.checkpoint().unwrap();
    chunks
}

fn bench(c: &mut Criterion) {
    let dir = scifact_dir();
    if !dir.join("corpus.jsonl").exists() {
        eprintln!("SciFact not found at {}: skipping", dir.display());
        return;
    }
    let corpus = read_jsonl(&dir.join("corpus.jsonl"));
    let queries: Vec<String> = read_jsonl(&dir.join("queries.jsonl"))
        .iter()
        .map(|q| field(q, "text"))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let rss0 = rss_kib();
    let start = Instant::now();
    let col = Collection::create(
        &tmp.path().join("scifact"),
        CollectionConfig::new("scifact", "none", DIM),
    )
    .unwrap();
    let n = load(&col, &corpus);
    let ingest = start.elapsed().as_secs_f64();
    let rss1 = rss_kib();
    let searcher = col.reader().searcher();
    let mut lat: Vec<f64> = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        let _ = searcher.search_bm25(q, K, &Filter::default());
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    let per100k = (rss1.saturating_sub(rss0)) as f64 / 1024.0 * 100_000.0 / n as f64;
    println!(
        "bm25 scifact: {n} chunks ({} docs x copies), ingest {ingest:.1}s",
        corpus.len()
    );
    println!(
        "bm25 scifact: {} queries k={K}: p50={:.3} ms p95={:.3} ms p99={:.3} ms",
        lat.len(),
        pct(0.5),
        pct(0.95),
        pct(0.99)
    );
    println!("bm25 scifact: RSS +{:.0} MiB for {n} chunks = {per100k:.0} MiB per 100k chunks (dim {DIM}); sled on disk {:.0} MiB",
        (rss1 - rss0) as f64 / 1024.0, col.meta_size_on_disk().unwrap() as f64 / 1048576.0);

    let mut group = c.benchmark_group("bm25_search");
    group.sample_size(30);
    group.bench_function(format!("scifact_k10_{n}_chunks"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % queries.len();
            searcher.search_bm25(&queries[i], K, &Filter::default())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
