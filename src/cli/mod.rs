//! The command line: clap definitions and one small function per command.
//!
//! Global options (`--config`, `--data-dir`, `--models-dir`) apply to every command and override
//! the configuration file and the environment (see [`crate::config`]).

mod args;
mod ask;
mod bench;
mod chunk;
mod collections;
mod eval;
mod generate;
mod jobs;
mod kb;
mod models;
mod remote;

mod serve;
mod snapshot;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// ragd: retrieval-augmented generation over your documents, served over gRPC.
#[derive(Debug, Parser)]
#[command(name = "ragd", version, about, long_about = None)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (see ragd.example.toml).
    #[arg(long, global = true, env = "RAGD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where collections live [default: $XDG_DATA_HOME/ragd].
    #[arg(long, global = true, env = "RAGD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where models are cached [default: $XDG_CACHE_HOME/ragd/models].
    #[arg(long, global = true, env = "RAGD_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// Log filter when RAGD_LOG is unset (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    /// Log as JSON lines (structured) instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (until SIGINT/SIGTERM).
    Serve(serve::ServeArgs),
    /// Ingest files or folders into a collection.
    Ingest(kb::IngestArgs),
    /// Split a file into chunks and print them.
    Chunk(chunk::ChunkArgs),
    /// Search a collection (BM25, dense or hybrid).
    Search(kb::SearchArgs),
    /// Answer a question from a collection, citing sources.
    Ask(ask::AskArgs),
    /// Evaluate retrieval on a BEIR data set.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Fetch, list and verify models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Ingest the bundled sample knowledge base and answer questions about it.
    Demo(kb::DemoArgs),
    /// Embed text with the embedding model and print the vector.
    Embed(EmbedArgs),
    /// Chat once with the generator (no retrieval) and print token rates.
    Generate(generate::GenerateArgs),
    /// Measure throughput (prints one JSON object with --json).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// List, inspect, create and delete collections (locally or with --server).
    #[command(subcommand)]
    Collections(collections::CollectionsCommand),
    /// List, inspect, follow and cancel bulk ingestion jobs (locally or with --server).
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Archive a collection at a point in time, list archives, restore one (locally or with
    /// --server).
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
}

/// `ragd embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The texts to embed.
    #[arg(required = true)]
    pub texts: Vec<String>,
    /// Print `{"embedding":[...]}` (one object per line per text).
    #[arg(long)]
    pub json: bool,
}

fn load_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let mut cfg = Config::load(global.config.as_deref())?;
    if let Some(d) = &global.data_dir {
        cfg.data_dir.clone_from(d);
    }
    if let Some(d) = &global.models_dir {
        cfg.models_dir.clone_from(d);
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = load_config(&cli.global)?;
    match cli.command {
        Command::Models(cmd) => models::run(&cfg, cmd),
        Command::Embed(args) => embed(&cfg, &args),
        Command::Generate(args) => generate::run(&cfg, &args),
        Command::Bench(cmd) => bench::run(&cfg, cmd),
        Command::Serve(args) => serve::run(cfg, &args),
        Command::Ingest(args) => kb::ingest(&cfg, &args),
        Command::Chunk(args) => chunk::run(&cfg, &args),
        Command::Search(args) => kb::search(&cfg, &args),
        Command::Ask(args) => ask::run(&cfg, &args),
        Command::Eval(cmd) => eval::run(&cfg, cmd),
        Command::Demo(args) => kb::demo(&cfg, &args),
        Command::Collections(cmd) => collections::run(&cfg, cmd),
        Command::Jobs(cmd) => jobs::run(&cfg, cmd),
        Command::Snapshot(cmd) => snapshot::run(&cfg, cmd),
    }
}

/// The store of the local data folder.
fn open_store(cfg: &Config) -> anyhow::Result<index::Store> {
    index::Store::open(&cfg.data_dir)
        .with_context(|| format!("data folder {}", cfg.data_dir.display()))
}

/// `e`, with the way out added when collection `name`'s lock is held by another process (a
/// running server): do `what` through that server.
fn in_use_hint(e: anyhow::Error, name: &str, what: &str) -> anyhow::Error {
    if format!("{e:#}").contains("could not acquire lock") {
        e.context(format!(
            "collection {name} is in use by another process (a running `ragd serve`?); \
             {what} through that server with --server URL"
        ))
    } else {
        e
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    styled_bar(
        len,
        what,
        "{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
    )
}

/// A progress bar counting bytes of input.
pub fn bytes_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    styled_bar(
        len,
        what,
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    )
}

fn styled_bar(len: u64, what: &str, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(what.to_string());
    bar
}

fn embed(cfg: &Config, args: &EmbedArgs) -> anyhow::Result<()> {
    use ingest::Embedder;
    let embedder = crate::wiring::load_embedder(cfg)?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let out = embedder.embed(&texts).context("embedding failed")?;
    for (text, e) in texts.iter().zip(out) {
        if e.truncated {
            eprintln!(
                "note: input truncated to the model's {} tokens: {:.40}…",
                embedder.max_tokens_with_specials(),
                text
            );
        }
        if args.json {
            println!("{}", serde_json::json!({ "embedding": e.vector }));
        } else {
            let head: Vec<String> = e.vector.iter().take(8).map(|v| format!("{v:.6}")).collect();
            println!(
                "dim={} tokens={} [{} …]",
                e.vector.len(),
                e.tokens,
                head.join(", ")
            );
        }
    }
    Ok(())
}
