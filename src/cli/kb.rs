//! Local knowledge-base commands: `ragd ingest`, `ragd search` and `ragd demo`.
//!
//! They open the collection in the data folder directly, or, with `--server URL`, call a running
//! `ragd serve` over gRPC (see `remote`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use index::fusion::Fusion;
use index::{Collection, Filter, Store};
use ingest::{ChunkingStrategy, Embedder};

use super::args::{ModeArg, RerankerArg};
use crate::config::Config;
use crate::jobs::{open_or_create, Pipeline};
use crate::model::llm::Generator;
use crate::rag::answer::{self, AnswerConfig};
use crate::rag::{Hit, Mode, RetrieveOptions};
use crate::state::SearchQuery;
use crate::wiring::{Models, RerankChoice};

/// `ragd ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or folders (walked recursively) to ingest.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The collection to ingest into (created if missing).
    #[arg(long, default_value = "default")]
    pub collection: String,
    /// Chunking strategy as JSON, e.g. '{"kind":"sliding","size":128,"overlap":32}'.
    #[arg(long, default_value = r#"{"kind":"recursive"}"#, value_parser = parse_strategy)]
    pub chunker: ChunkingStrategy,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Send the documents to this server (e.g. http://127.0.0.1:50051) instead of writing the
    /// local data folder.
    #[arg(long, env = "RAGD_SERVER")]
    pub server: Option<String>,
    /// With --server: let the server read PATHs itself as a bulk job (they must lie under one
    /// of its allowed roots).
    #[arg(long, requires = "server")]
    pub job: bool,
    /// With --server: the largest message sent, in bytes; documents go in messages of at most
    /// this size, and one larger than it fails here with its name, before anything is sent.
    /// Keep it under the server's `server.max_message_bytes` (16 MiB by default).
    #[arg(long, default_value_t = crate::cli::remote::DEFAULT_MESSAGE_BYTES, requires = "server")]
    pub max_message_bytes: usize,
    /// Keep the collection in step with PATHs: after ingesting them (changed files replaced,
    /// unchanged ones skipped), delete the documents whose files under PATHs are gone. With
    /// --server it needs --job (the server must read the folder to see what is gone).
    #[arg(long)]
    pub sync: bool,
    /// Keep syncing: after the first pass, watch PATHs and sync again whenever files are
    /// created, changed, renamed or deleted (debounced), until stopped (Ctrl-C). Local only.
    #[arg(long, conflicts_with = "server")]
    pub watch: bool,
    /// With --watch: how long the folder must be quiet before a sync starts, in milliseconds.
    #[arg(long, default_value_t = 1000, requires = "watch")]
    pub debounce_ms: u64,
}

/// `ragd search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The query.
    pub query: String,
    /// The collection to search.
    #[arg(long, default_value = "default")]
    pub collection: String,
    /// First-stage retrieval.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    pub mode: ModeArg,
    /// Fusion for hybrid mode: rrf[:K], minmax[:ALPHA] or zscore[:ALPHA] (ALPHA weighs dense;
    /// the default was chosen on SciFact's train split, see BENCHMARKS.md).
    #[arg(long, default_value = "zscore:0.5")]
    pub fusion: Fusion,
    /// Results to print.
    #[arg(long, short, default_value_t = 5)]
    pub k: usize,
    /// Rerank the fused candidates with the configured reranker (`reranker.kind`).
    #[arg(long)]
    pub rerank: bool,
    /// Rerank with this reranker (implies --rerank; local only, a server uses its own config):
    /// a `cross-encoder` (`reranker.model`) or the generator as a relevance judge (`llm`).
    #[arg(long, value_enum)]
    pub reranker: Option<RerankerArg>,
    /// Only chunks whose document metadata has KEY=VALUE (repeatable).
    #[arg(long = "filter", value_parser = parse_filter)]
    pub filters: Vec<(String, String)>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Search on this server (e.g. http://127.0.0.1:50051) instead of the local data folder.
    #[arg(long, env = "RAGD_SERVER")]
    pub server: Option<String>,
}

/// `ragd demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The knowledge base to ingest [default: examples/kb].
    #[arg(long)]
    pub kb: Option<PathBuf>,
}

/// Parses a JSON chunking strategy.
pub fn parse_strategy(s: &str) -> Result<ChunkingStrategy, String> {
    serde_json::from_str(s).map_err(|e| format!("invalid chunking strategy: {e}"))
}

fn parse_filter(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))
}

struct Kb {
    embedder: Arc<dyn Embedder>,
    collection: Arc<Collection>,
}

fn open_kb(cfg: &Config, name: &str) -> anyhow::Result<Kb> {
    let embedder: Arc<dyn Embedder> = Arc::new(crate::wiring::load_embedder(cfg)?);
    let store = super::open_store(cfg)?;
    let collection = open_or_create(&store, name, embedder.as_ref())?;
    Ok(Kb {
        embedder,
        collection,
    })
}

/// Streams `paths` into the collection batch by batch (memory holds one batch), with a progress
/// bar in bytes of input; files and lines that do not load count as failed.
fn ingest_paths(
    cfg: &Config,
    kb: &Kb,
    paths: &[PathBuf],
    chunking: &ChunkingStrategy,
) -> anyhow::Result<crate::jobs::IngestSummary> {
    // Local ingestion: the user's own files, however large.
    let pipeline = Pipeline::new(chunking, kb.embedder.clone(), usize::MAX)?;
    let total: u64 = paths
        .iter()
        .map(|p| ingest::scan_path(p, &cfg.ingest, &mut || false).bytes)
        .sum();
    let bar = super::bytes_bar(total, "ingesting");
    let mut summary = crate::jobs::IngestSummary::default();
    for path in paths {
        let mut skipped = std::collections::BTreeMap::new();
        let s = pipeline.ingest_stream(
            &kb.collection,
            ingest::stream_path(path, &cfg.ingest),
            |bytes, _| bar.inc(bytes),
            |reason| *skipped.entry(reason).or_insert(0) += 1,
        )?;
        summary.merge(s);
        for (reason, n) in skipped {
            bar.suspend(|| eprintln!("skipped {n} file(s) under {}: {reason:?}", path.display()));
        }
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// Ingests `paths` into the local collection and, with `sync`, deletes the documents whose
/// files under them are gone.
fn ingest_local(
    cfg: &Config,
    kb: &Kb,
    args: &IngestArgs,
    sync: bool,
) -> anyhow::Result<crate::jobs::IngestSummary> {
    let mut s = ingest_paths(cfg, kb, &args.paths, &args.chunker)?;
    if sync {
        for path in &args.paths {
            s.deleted += crate::jobs::sync::remove_gone(
                &crate::collections::Opened::Embedded(kb.collection.clone()),
                path,
                &cfg.ingest,
            )?;
        }
    }
    Ok(s)
}

/// `ragd ingest`.
pub fn ingest(cfg: &Config, args: &IngestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !(args.sync && args.server.is_some() && !args.job),
        "--sync with --server needs --job: the server must read the folder itself to see which \
         files are gone"
    );
    let started = std::time::Instant::now();
    let s = match &args.server {
        Some(url) => super::remote::ingest(
            url,
            &super::remote::Upload {
                collection: &args.collection,
                paths: &args.paths,
                chunker: &args.chunker,
                job: args.job,
                sync: args.sync,
                load: &cfg.ingest,
                max_message_bytes: args.max_message_bytes,
            },
        )?,
        None if args.watch => return watch(cfg, args),
        None => ingest_local(cfg, &open_kb(cfg, &args.collection)?, args, args.sync)?,
    };
    report(args, &s, started.elapsed().as_secs_f64())
}

/// `ragd ingest --watch`: a first sync, then one after every quiet spell following changes
/// under the paths. Each pass reads the folder again: unchanged files cost a content-hash
/// lookup, not an embedding. A pass that fails is reported and the watch goes on.
fn watch(cfg: &Config, args: &IngestArgs) -> anyhow::Result<()> {
    use notify_debouncer_full::notify::RecursiveMode;

    let kb = open_kb(cfg, &args.collection)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        std::time::Duration::from_millis(args.debounce_ms),
        None,
        move |events| {
            let _ = tx.send(events);
        },
    )
    .context("starting the file watcher")?;
    for path in &args.paths {
        debouncer
            .watch(path, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", path.display()))?;
    }
    if !args.json {
        eprintln!(
            "watching {} for changes (Ctrl-C stops)",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let pass = || {
        let started = std::time::Instant::now();
        match ingest_local(cfg, &kb, args, true) {
            Ok(s) => {
                if let Err(e) = report(args, &s, started.elapsed().as_secs_f64()) {
                    eprintln!("{e:#}");
                }
            }
            Err(e) => eprintln!("sync failed (the watch goes on): {e:#}"),
        }
    };
    pass();
    for events in rx {
        match events {
            // Reads change nothing.
            Ok(events) if events.iter().all(|e| e.kind.is_access()) => continue,
            Ok(_) => {}
            Err(errors) => {
                for e in errors {
                    eprintln!("file watcher: {e}");
                }
            }
        }
        pass();
    }
    Ok(())
}

/// Prints an ingest's counts; an ingest with failures fails the command.
fn report(args: &IngestArgs, s: &crate::jobs::IngestSummary, seconds: f64) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        let docs = s.added + s.updated + s.unchanged + s.failed;
        let deleted = if args.sync || args.watch {
            format!(", {} deleted", s.deleted)
        } else {
            String::new()
        };
        println!(
            "collection {}: {} added, {} updated, {} unchanged, {} failed{deleted}; {} chunks \
             written ({docs} documents in {seconds:.1} s, {:.0}/s)",
            args.collection,
            s.added,
            s.updated,
            s.unchanged,
            s.failed,
            s.chunks,
            docs as f64 / seconds.max(1e-9)
        );
        for (id, e) in &s.errors {
            if e.starts_with(id.as_str()) {
                println!("  failed {e}");
            } else {
                println!("  failed {id}: {e}");
            }
        }
    }
    // Everything that loaded is ingested; a failure still fails the command, so that a script
    // (or a user reading only the exit status) learns that part of the input is missing.
    anyhow::ensure!(
        s.failed == 0,
        "{} of the inputs failed (listed above); everything else was ingested",
        s.failed
    );
    Ok(())
}

/// `ragd search`.
pub fn search(cfg: &Config, args: &SearchArgs) -> anyhow::Result<()> {
    let opts = RetrieveOptions {
        mode: args.mode.into(),
        fusion: args.fusion,
        k: args.k,
        rerank: args.rerank || args.reranker.is_some(),
        filter: Filter {
            must: args.filters.clone(),
        },
        ..RetrieveOptions::default()
    };
    let (hits, notes) = match &args.server {
        Some(url) => super::remote::search(
            url,
            SearchQuery {
                collection: args.collection.clone(),
                query: args.query.clone(),
                options: opts,
            },
        )?,
        None => search_local(cfg, args, &opts)?,
    };
    if args.json {
        let hits: Vec<_> = hits.iter().map(hit_json).collect();
        println!(
            "{}",
            serde_json::json!({
                "query": args.query, "mode": Mode::from(args.mode), "hits": hits, "notes": notes
            })
        );
    } else {
        print_hits(&hits);
        for note in &notes {
            println!("  note: {note}");
        }
    }
    Ok(())
}

fn search_local(
    cfg: &Config,
    args: &SearchArgs,
    opts: &RetrieveOptions,
) -> anyhow::Result<(Vec<Hit>, Vec<String>)> {
    let store = Store::open(&cfg.data_dir)?;
    let collection = store.collection(&args.collection)?;
    let rerank = RerankChoice::requested(cfg, opts.rerank, args.reranker.map(Into::into));
    let models = Models::load(cfg, false, &rerank)?;
    crate::jobs::check_embedder(&collection, models.embedder.as_ref())?;
    let retriever = models.retriever();
    let searcher = collection.reader().searcher();
    let hits = retriever.retrieve(&searcher, &args.query, opts)?;
    let notes = crate::rag::retrieve::notes(&searcher, &args.query, opts.mode, &hits);
    Ok((hits, notes))
}

fn hit_json(h: &Hit) -> serde_json::Value {
    let c = &h.chunk;
    serde_json::json!({
        "doc_id": c.doc_id, "chunk_id": c.id.0, "title": c.title, "start": c.span_start,
        "end": c.span_end, "heading_path": c.heading_path, "score": h.score, "scores": h.stages,
        "text": c.text,
    })
}

fn print_hits(hits: &[Hit]) {
    if hits.is_empty() {
        println!("  (nothing found)");
    }
    for (i, h) in hits.iter().enumerate() {
        let c = &h.chunk;
        // The first heading usually repeats the title.
        let path = match c.heading_path.split_first() {
            Some((first, rest)) if *first == c.title => rest,
            _ => &c.heading_path[..],
        };
        let heading = if path.is_empty() {
            String::new()
        } else {
            format!(" > {}", path.join(" > "))
        };
        println!(
            "  [{}] {} ({}{heading}) chars {}..{}  score {:.4}",
            i + 1,
            c.doc_id,
            c.title,
            c.span_start,
            c.span_end,
            h.score
        );
        let snippet: String = c
            .text
            .chars()
            .take(220)
            .collect::<String>()
            .replace('\n', " ");
        let more = if c.text.chars().count() > 220 {
            "…"
        } else {
            ""
        };
        println!("      \"{snippet}{more}\"");
    }
}

/// Answered by the generator in `ragd demo`.
const DEMO_ASKED: &[&str] = &[
    "What does the KV cache store, and why does it make decoding faster?",
    "Which shaft seal fits an XJ-9000 pump built in 2021?",
    "Who won the 2018 FIFA World Cup?",
];

/// Shown as retrieval results in `ragd demo`: an acronym BM25 finds, and a Chinese question.
const DEMO_SEARCHED: &[&str] = &["What is NF4?", "中文句子以什么标点结尾？"];

fn default_kb() -> PathBuf {
    let local = Path::new("examples/kb");
    if local.is_dir() {
        local.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb")
    }
}

/// `ragd demo`: ingest the bundled knowledge base and retrieve cited sources for a few questions.
pub fn demo(cfg: &Config, args: &DemoArgs) -> anyhow::Result<()> {
    let kb_dir = args.kb.clone().unwrap_or_else(default_kb);
    println!(
        "ragd demo: knowledge base {}, data folder {}",
        kb_dir.display(),
        cfg.data_dir.display()
    );
    let kb = open_kb(cfg, "demo")?;
    let s = ingest_paths(cfg, &kb, &[kb_dir], &ChunkingStrategy::default())?;
    println!(
        "ingested into collection `demo`: {} added, {} updated, {} unchanged ({} chunks written)\n",
        s.added, s.updated, s.unchanged, s.chunks
    );
    let retriever = crate::wiring::retriever(kb.embedder.clone(), None);
    let searcher = kb.collection.reader().searcher();
    let generator = crate::wiring::load_generator(cfg)?;
    let mut acfg = AnswerConfig::default();
    acfg.retrieve.k = 3;
    acfg.generation = cfg.generator.params();
    acfg.gate = cfg.answer.gate;
    acfg.generation.max_tokens = acfg.generation.max_tokens.min(120);
    for q in DEMO_ASKED {
        println!("Q: {q}");
        let a = answer::answer(
            &retriever,
            &searcher,
            generator.as_ref(),
            q,
            &acfg,
            &mut |_: &str| ControlFlow::Continue(()),
        )?;
        println!("A: {}", a.text);
        super::ask::print_sources(&a);
        println!();
    }
    let opts = RetrieveOptions {
        k: 2,
        ..RetrieveOptions::default()
    };
    for q in DEMO_SEARCHED {
        println!("Search: {q}");
        print_hits(&retriever.retrieve(&searcher, q, &opts)?);
        println!();
    }
    println!(
        "Answers come from {} on this machine, grounded in hybrid retrieval (BM25 + MiniLM).",
        generator.info().model_id
    );
    println!("Ask your own question, or serve the collection over gRPC and HTTP:");
    println!(
        "  cargo run --release -- ask \"how does reranking work?\" --collection demo --stream"
    );
    println!(
        "  cargo run --release -- serve --data-dir {}   # gRPC 127.0.0.1:50051; open http://127.0.0.1:8080/ to ask from a page",
        cfg.data_dir.display()
    );
    println!(
        "  cargo run --release -- search \"NF4\" --collection demo --server http://127.0.0.1:50051"
    );
    println!("  scripts/python-client                         # a Python grpcio client against a live server");
    println!(
        "  curl -s 127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' -d '{{\"model\": \"ragd/demo\", \"messages\": [{{\"role\": \"user\", \"content\": \"What is NF4?\"}}]}}'"
    );
    Ok(())
}
