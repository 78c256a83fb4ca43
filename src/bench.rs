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

pub mod generate;
pub mod search;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use ingest::Embedder;

use crate::config::Config;

/// `ragd bench embed`.
#[derive(Debug, Args)]
pub struct EmbedBenchArgs {
    /// BEIR corpus.jsonl [default: ../shared/eval/scifact/corpus.jsonl].
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Number of passages.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Passages per `embed` call.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Default location of the SciFact corpus, relative to the repository root.
pub fn default_scifact_dir() -> PathBuf {
    std::env::var_os("SCIFACT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/scifact"))
}

/// Reads up to `limit` passages (`title + " " + text`) from a BEIR corpus.jsonl.
pub fn read_passages(path: &Path, limit: usize) -> anyhow::Result<Vec<String>> {
    let text = fs_err::read_to_string(path)?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(limit)
        .enumerate()
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let title = v["title"].as_str().unwrap_or("");
        let body = v["text"].as_str().unwrap_or("");
        out.push(format!("{title} {body}").trim().to_string());
    }
    Ok(out)
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

/// `ragd bench embed`.
pub fn run_embed_bench(cfg: &Config, args: &EmbedBenchArgs) -> anyhow::Result<()> {
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| default_scifact_dir().join("corpus.jsonl"));
    let passages = read_passages(&corpus, args.limit)?;
    let embedder = crate::wiring::load_embedder(cfg)?;
    let r = measure_embed(&embedder, &passages, args.batch)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} passages, {} tokens in {:.2} s: {:.1} passages/s, {:.0} tokens/s (batch {}, {} threads)",
            r.passages, r.tokens, r.seconds, r.passages_per_s, r.tokens_per_s, r.batch, r.threads
        );
    }
    Ok(())
}
