//! `ragd bench embed | search | generate | api`: the clap arguments and the printing; the
//! measurements themselves are in [`crate::bench`].

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::args::ModeArg;
use crate::bench::api::ApiBench;
use crate::bench::generate::GenerateBench;
use crate::bench::search::SearchBench;
use crate::bench::EmbedBench;
use crate::config::Config;

/// `ragd bench`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Embedding throughput on a BEIR corpus.
    Embed(EmbedBenchArgs),
    /// Search latency and throughput with concurrent clients, in-process or over gRPC.
    Search(SearchBenchArgs),
    /// The generator's prefill and decode speed on the configured device.
    Generate(GenerateBenchArgs),
    /// One running server over gRPC beside HTTP: search latency, and answers' first text and
    /// tokens/s (gRPC Ask beside streamed OpenAI chat completions), alternating requests.
    Api(ApiBenchArgs),
}

/// `ragd bench api`.
#[derive(Debug, Args)]
pub struct ApiBenchArgs {
    /// The server's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub grpc: String,
    /// The server's HTTP address (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub http: String,
    /// The collection.
    #[arg(long, default_value = "demo")]
    pub collection: String,
    /// A text file, one query or question per line [default: examples/demo-questions.txt].
    #[arg(long)]
    pub questions: Option<PathBuf>,
    /// Searches per protocol.
    #[arg(long, default_value_t = 400)]
    pub searches: usize,
    /// Answers per protocol.
    #[arg(long, default_value_t = 20)]
    pub answers: usize,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

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

/// `ragd bench search`.
#[derive(Debug, Args)]
pub struct SearchBenchArgs {
    /// The collection to search.
    #[arg(long, default_value = "beir-scifact")]
    pub collection: String,
    /// BEIR queries.jsonl [default: ../shared/eval/scifact/queries.jsonl].
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Timed requests in all.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// First-stage retrieval.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    pub mode: ModeArg,
    /// Results per query.
    #[arg(long, short, default_value_t = 10)]
    pub k: usize,
    /// Call this server over gRPC instead of searching in-process.
    #[arg(long)]
    pub server: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `ragd bench generate`.
#[derive(Debug, Args)]
pub struct GenerateBenchArgs {
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 600)]
    pub prompt_tokens: usize,
    /// Greedy tokens generated per sequence.
    #[arg(long, default_value_t = 128)]
    pub decode_tokens: usize,
    /// Concurrent sequences to measure, comma-separated (e.g. `1,4,16`); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub concurrency: Vec<usize>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `ragd bench` command.
pub fn run(cfg: &Config, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Embed(args) => embed(cfg, &args),
        BenchCommand::Search(args) => search(cfg, &args),
        BenchCommand::Generate(args) => generate(cfg, &args),
        BenchCommand::Api(args) => api(&args),
    }
}

fn api(args: &ApiBenchArgs) -> anyhow::Result<()> {
    let path = args
        .questions
        .clone()
        .unwrap_or_else(|| PathBuf::from("examples/demo-questions.txt"));
    let text = fs_err::read_to_string(&path)?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let spec = ApiBench {
        grpc: args.grpc.clone(),
        http: args.http.clone(),
        collection: args.collection.clone(),
        queries: lines.clone(),
        searches: args.searches,
        questions: lines,
        answers: args.answers,
        max_tokens: args.max_tokens,
        token: crate::grpc::security::client_token(|k| std::env::var(k).ok())?,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let r = runtime.block_on(crate::bench::api::measure_api(&spec))?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let ratio = |http: f64, grpc: f64| http / grpc.max(1e-9);
    println!(
        "search p50 / p95 ms: gRPC {:.2} / {:.2}, HTTP {:.2} / {:.2} (HTTP/gRPC p50 {:.2}x)",
        r.search_grpc.p50_ms,
        r.search_grpc.p95_ms,
        r.search_http.p50_ms,
        r.search_http.p95_ms,
        ratio(r.search_http.p50_ms, r.search_grpc.p50_ms)
    );
    println!(
        "answer first text p50 ms: gRPC {:.0}, HTTP {:.0} ({:.2}x); tokens/s: gRPC {:.1}, HTTP {:.1} ({:.2}x)",
        r.answer_grpc.first_text.p50_ms,
        r.answer_http.first_text.p50_ms,
        ratio(r.answer_http.first_text.p50_ms, r.answer_grpc.first_text.p50_ms),
        r.answer_grpc.tokens_per_s,
        r.answer_http.tokens_per_s,
        ratio(r.answer_http.tokens_per_s, r.answer_grpc.tokens_per_s)
    );
    Ok(())
}

fn embed(cfg: &Config, args: &EmbedBenchArgs) -> anyhow::Result<()> {
    let spec = EmbedBench {
        corpus: args.corpus.clone(),
        limit: args.limit,
        batch: args.batch,
    };
    let r = crate::bench::run_embed(cfg, &spec)?;
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

fn search(cfg: &Config, args: &SearchBenchArgs) -> anyhow::Result<()> {
    let spec = SearchBench {
        collection: args.collection.clone(),
        queries: args.queries.clone(),
        concurrency: args.concurrency,
        requests: args.requests,
        mode: args.mode.into(),
        k: args.k,
        server: args.server.clone(),
    };
    let r = crate::bench::search::run(cfg, &spec)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} search, {} clients, {} requests: p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms, {:.1} req/s",
            r.transport, r.concurrency, r.requests, r.p50_ms, r.p99_ms, r.mean_ms, r.requests_per_s
        );
    }
    Ok(())
}

fn generate(cfg: &Config, args: &GenerateBenchArgs) -> anyhow::Result<()> {
    let spec = GenerateBench {
        prompt_tokens: args.prompt_tokens,
        decode_tokens: args.decode_tokens,
        concurrency: args.concurrency.clone(),
    };
    let r = crate::bench::generate::run(cfg, &spec)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "{} ({}) on {}: prefill {} tokens in {:.3} s ({:.0} tokens/s), decode {} tokens in {:.3} s \
         ({:.1} tokens/s), load {:.2} s",
        r.model,
        r.architecture,
        r.device,
        r.prompt_tokens,
        r.prefill_s,
        r.prefill_tokens_per_s,
        r.decode_tokens,
        r.decode_s,
        r.decode_tokens_per_s,
        r.load_s
    );
    for c in &r.concurrent {
        println!(
            "  {} concurrent sequences: {:.1} tokens/s aggregate ({:.2} s)",
            c.sequences, c.aggregate_tokens_per_s, c.seconds
        );
    }
    Ok(())
}
