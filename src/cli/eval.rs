//! `ragd eval beir DIR`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use index::fusion::Fusion;
use ingest::{ChunkingStrategy, Embedder};

use crate::config::Config;
use crate::eval::beir::{self, EvalConfig};
use crate::rag::{Mode, RetrieveOptions, Retriever};

/// `ragd eval ...`.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Retrieval quality on a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).
    Beir(BeirArgs),
}

/// What a reranking stage uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RerankChoice {
    /// No second stage.
    None,
    /// The cross-encoder configured as `reranker.model` / `--reranker-path`.
    CrossEncoder,
}

/// `ragd eval beir`.
#[derive(Debug, Args)]
pub struct BeirArgs {
    /// The BEIR data set folder.
    pub dir: PathBuf,
    /// Which qrels split to score.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// First-stage retrieval.
    #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
    pub mode: Mode,
    /// Fusion for hybrid mode: rrf[:K], minmax[:ALPHA] or zscore[:ALPHA] (ALPHA weighs dense).
    /// The default, z-score convex combination with alpha 0.5, was chosen on SciFact's train
    /// split (nDCG@10 0.726 vs 0.712 for RRF k = 60); see BENCHMARKS.md.
    #[arg(long, default_value = "zscore:0.5", value_parser = beir::parse_fusion)]
    pub fusion: Fusion,
    /// Candidates from each retriever.
    #[arg(long, default_value_t = 200)]
    pub candidates: usize,
    /// Second stage.
    #[arg(long, value_enum, default_value_t = RerankChoice::None)]
    pub rerank: RerankChoice,
    /// Fused candidates the reranker scores.
    #[arg(long, default_value_t = 50)]
    pub rerank_candidates: usize,
    /// A cross-encoder folder (config.json, tokenizer.json, *.safetensors).
    #[arg(long)]
    pub reranker_path: Option<PathBuf>,
    /// Chunking strategy as JSON, e.g. '{"kind":"recursive","size":200}'.
    #[arg(long, default_value = r#"{"kind":"recursive"}"#, value_parser = super::kb::parse_strategy)]
    pub chunker: ChunkingStrategy,
    /// Scratch collection name [default: beir-<folder name>].
    #[arg(long)]
    pub collection: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs an eval command.
pub fn run(cfg: &Config, cmd: EvalCommand) -> anyhow::Result<()> {
    let EvalCommand::Beir(args) = cmd;
    let embedder: Arc<dyn Embedder> = Arc::new(crate::model::load_embedder(cfg)?);
    let reranker = match args.rerank {
        RerankChoice::None => None,
        RerankChoice::CrossEncoder => Some(crate::model::load_reranker(
            cfg,
            args.reranker_path.as_deref(),
        )?),
    };
    let name = args
        .dir
        .file_name()
        .map_or("beir".into(), |n| n.to_string_lossy().to_lowercase());
    let eval = EvalConfig {
        collection: args
            .collection
            .clone()
            .unwrap_or_else(|| format!("beir-{name}")),
        dir: args.dir.clone(),
        split: args.split.clone(),
        chunking: args.chunker.clone(),
        retrieve: RetrieveOptions {
            mode: args.mode,
            fusion: args.fusion,
            candidates: args.candidates,
            rerank: reranker.is_some(),
            rerank_candidates: args.rerank_candidates,
            k: args.candidates,
            ..RetrieveOptions::default()
        },
    };
    let retriever = Retriever::new(embedder.clone(), reranker);
    let report = beir::run(cfg, &eval, embedder, &retriever)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let m = &report.metrics;
        println!(
            "{} queries ({} split), mode {:?}, rerank {}",
            m.queries, report.split, report.mode, report.rerank
        );
        println!(
            "nDCG@10 {:.4}  Recall@100 {:.4}  MRR@10 {:.4}",
            m.ndcg_at_10, m.recall_at_100, m.mrr_at_10
        );
        println!(
            "query latency p50 {:.1} ms, p95 {:.1} ms",
            report.latency_ms_p50, report.latency_ms_p95
        );
        println!(
            "{} documents; ingested {} chunks in {:.1} s",
            report.documents, report.chunks_ingested, report.ingest_seconds
        );
    }
    Ok(())
}
