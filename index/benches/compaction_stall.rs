//! The longest write stall while the HNSW graph is compacted (issue 21).
//!
//! Builds a collection of `RAGD_BENCH_POINTS` (default 200,000) one-chunk documents with random
//! 384-dimensional vectors and the default settings (HNSW m 16, ef_construction 200; compaction
//! past 20% tombstones; a dump every 10,000 writes), checkpoints it, deletes just over the
//! compaction threshold (20% of the points plus 1,000), then times the commit that triggers the compaction and, for
//! `RAGD_BENCH_WINDOW_SECS` (default 240) from that commit's start, one-document writes, each
//! upsert + commit, back to back: what a client writing during a compaction waits. Prints the
//! trigger commit's time, the writes done in the window and their p50 / p99 / max. Uses only the
//! writer's public calls, so the same file measures the code before and after a change. Run:
//! `cargo bench -p ragd-index --bench compaction_stall --profile dev` (dependencies are
//! optimised in the dev profile; hnsw_rs does the work).

use std::time::{Duration, Instant};

use ragd_index::testing::doc;
use ragd_index::{CollectionConfig, Store};

const DIM: usize = 384;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let n = env_or("RAGD_BENCH_POINTS", 200_000) as usize;
    let window = Duration::from_secs(env_or("RAGD_BENCH_WINDOW_SECS", 240));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = CollectionConfig::new("stall", "bench", DIM);
    let collection = store.create_collection(config).unwrap();
    let w = collection.writer();
    let started = Instant::now();
    let ids: Vec<usize> = (0..n).collect();
    for batch in ids.chunks(2000) {
        let docs = batch
            .iter()
            .map(|i| doc(&format!("d{i}"), 1, 1, DIM))
            .collect();
        w.upsert_documents(docs).unwrap();
    }
    w.checkpoint().unwrap();
    println!(
        "built {n} points in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let deleted = n / 5 + 1000;
    let started = Instant::now();
    for i in 0..deleted {
        w.delete_document(&format!("d{i}")).unwrap();
    }
    println!(
        "deleted {deleted} documents in {:.0} s (uncommitted)",
        started.elapsed().as_secs_f64()
    );
    let t0 = Instant::now();
    w.commit().unwrap();
    let trigger = t0.elapsed();
    let mut latencies = Vec::new();
    while t0.elapsed() < window {
        let s = Instant::now();
        w.upsert_document(doc(&format!("new{}", latencies.len()), 1, 1, DIM))
            .unwrap();
        w.commit().unwrap();
        latencies.push(s.elapsed());
    }
    latencies.sort();
    let pick = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let stats = collection.reader().searcher().stats().unwrap();
    println!(
        "compaction-stall: points {n}, deleted {deleted}; trigger commit {:.0} ms; {} writes \
         (upsert + commit) in the {} s window: p50 {:.1} ms, p99 {:.1} ms, max {:.0} ms; \
         longest stall {:.0} ms; dense chunks visible at the end {}",
        ms(trigger),
        latencies.len(),
        window.as_secs(),
        ms(pick(0.5)),
        ms(pick(0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        ms(trigger.max(latencies.last().copied().unwrap_or_default())),
        stats.dense_chunks,
    );
}
