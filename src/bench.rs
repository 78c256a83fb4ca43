//! Throughput measurements behind `ragd bench` (and shared with `benches/`).
//!
//! `ragd bench embed` embeds the first `--limit` passages of a BEIR corpus (title + " " + text,
//! as the Python peer does) in batches of `--batch`, after one warm-up batch, and reports
//! passages/s and tokens/s (tokens after truncation, special tokens included — what the model
//! processes). It is the same workload as `peers/scifact_dense.py` and `benches/peer_embed.py`.
//!
//! `ragd bench generate` ([`generate`]) measures the generator's prefill and decode speed on
//! the configured device, alone and with concurrent sequences.
//!
//! `ragd bench search` ([`search`]) measures search latency and throughput with concurrent
//! clients, in-process or over gRPC.

pub mod api;
pub mod generate;
pub mod search;

use std::path::PathBuf;
use std::time::Instant;

use ingest::Embedder;

use crate::config::Config;
use crate::eval::dataset::{default_scifact_dir, read_passages};

/// What `ragd bench embed` measures.
#[derive(Debug, Clone)]
pub struct EmbedBench {
    /// BEIR corpus.jsonl; `None`: SciFact's, from [`default_scifact_dir`].
    pub corpus: Option<PathBuf>,
    /// Number of passages.
    pub limit: usize,
    /// Passages per `embed` call.
    pub batch: usize,
}

/// Result of an embedding throughput run.
#[derive(Debug, serde::Serialize)]
pub struct EmbedBenchResult {
    /// Passages embedded.
    pub passages: usize,
    /// Tokens processed (after truncation, specials included).
    pub tokens: usize,
    /// Wall-clock seconds for the timed part.
    pub seconds: f64,
    /// Passages per second.
    pub passages_per_s: f64,
    /// Tokens per second.
    pub tokens_per_s: f64,
    /// Passages per `embed` call.
    pub batch: usize,
    /// Threads candle's CPU kernels use.
    pub threads: usize,
}

/// Embeds `passages` in batches of `batch` after one warm-up batch and times it.
pub fn measure_embed(
    embedder: &dyn Embedder,
    passages: &[String],
    batch: usize,
) -> anyhow::Result<EmbedBenchResult> {
    let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
    let batch = batch.max(1);
    if let Some(warm) = refs.chunks(batch).next() {
        embedder.embed(warm)?;
    }
    let start = Instant::now();
    let mut tokens = 0;
    for chunk in refs.chunks(batch) {
        tokens += embedder
            .embed(chunk)?
            .iter()
            .map(|e| e.tokens)
            .sum::<usize>();
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(EmbedBenchResult {
        passages: refs.len(),
        tokens,
        seconds,
        passages_per_s: refs.len() as f64 / seconds,
        tokens_per_s: tokens as f64 / seconds,
        batch,
        threads: candle_core::utils::get_num_threads(),
    })
}

/// `ragd bench embed`: loads the configured embedder and measures it.
pub fn run_embed(cfg: &Config, spec: &EmbedBench) -> anyhow::Result<EmbedBenchResult> {
    let corpus = spec
        .corpus
        .clone()
        .unwrap_or_else(|| default_scifact_dir().join("corpus.jsonl"));
    let passages = read_passages(&corpus, spec.limit)?;
    let embedder = crate::wiring::load_embedder(cfg)?;
    measure_embed(&embedder, &passages, spec.batch)
}
