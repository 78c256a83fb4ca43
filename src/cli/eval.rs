//! `ragd eval beir DIR`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use index::fusion::Fusion;
use ingest::{ChunkingStrategy, Embedder};

use super::args::ModeArg;
use crate::config::Config;
use crate::eval::beir::{self, EvalConfig};
use crate::eval::dataset;
use crate::eval::{gate, qa};
use crate::rag::RetrieveOptions;
use crate::wiring::{Models, RerankChoice};

/// `ragd eval ...`.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Retrieval quality on a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).
    Beir(BeirArgs),
    /// Measures the answer relevance gate on an existing collection: answerable questions (a
    /// BEIR split, or a file) against bundled off-topic ones and, optionally, another corpus's
    /// questions; `--rows` keeps each question's features for `gate-fit`.
    Gate(GateArgs),
    /// Fits the relevance gate's weights to rows written by `eval gate --rows` (several files,
    /// e.g. one per collection) and shows what the fitted gate does on each.
    GateFit(GateFitArgs),
    /// Answer quality: how often grounded answers to a BEIR split's questions cite a judged
    /// relevant document, on an existing collection of its corpus.
    Answers(AnswersArgs),
    /// Answer correctness against gold answers (SQuAD metrics) on a BEIR folder with an
    /// answers.jsonl; ingests the corpus into `beir-<name>` first when that is not done.
    Qa(QaArgs),
    /// Writes a collection's chunk vectors and a BEIR folder's query embeddings for the HNSW
    /// benchmark (`RAGD_BENCH_INPUT=OUT cargo bench -p ragd-index --bench dense_search`, then
    /// `index/benches/peer_hnswlib.py OUT` for hnswlib on the same vectors).
    Vectors(VectorsArgs),
}

/// `ragd eval qa`.
#[derive(Debug, Args)]
pub struct QaArgs {
    /// The BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv and answers.jsonl.
    pub dir: PathBuf,
    /// The collection of its corpus [default: beir-<folder name>, ingested if missing].
    #[arg(long)]
    pub collection: Option<String>,
    /// The split whose questions are asked.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Questions asked (the first by query id).
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    /// Questions passed over first (tune on a later slice, report on the first questions).
    #[arg(long, default_value_t = 0)]
    pub skip: usize,
    /// How each question is answered.
    #[command(flatten)]
    pub answering: AnsweringArgs,
    /// Write one JSON line per question (question, gold, answer, scores) to this file.
    #[arg(long)]
    pub rows: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// How `ragd eval answers` and `ragd eval qa` answer each question.
#[derive(Debug, Args)]
pub struct AnsweringArgs {
    /// Sources offered to the model.
    #[arg(long, short, default_value_t = 3)]
    pub k: usize,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 96)]
    pub max_tokens: usize,
}

impl AnsweringArgs {
    /// The answer settings: these, over the configured generator's.
    fn config(&self, cfg: &Config) -> crate::rag::AnswerConfig {
        let mut a = crate::rag::AnswerConfig::default();
        a.retrieve.k = self.k;
        a.generation = cfg.generator.params();
        a.generation.max_tokens = self.max_tokens;
        a.gate = cfg.answer.gate;
        a
    }
}

/// `beir-<folder name, lower case>`: the collection `ragd eval` makes for a BEIR folder.
fn default_collection(dir: &std::path::Path) -> String {
    let name = dir
        .file_name()
        .map_or("beir".into(), |n| n.to_string_lossy().to_lowercase());
    format!("beir-{name}")
}

/// `ragd eval vectors`.
#[derive(Debug, Args)]
pub struct VectorsArgs {
    /// The BEIR folder whose queries.jsonl is embedded (every query, one at a time).
    pub dir: PathBuf,
    /// The collection whose chunk vectors are written (e.g. `beir-scifact`).
    #[arg(long)]
    pub collection: String,
    /// Output folder: base.f32 and queries.f32 (u32 count, u32 dimension, f32 values, LE).
    #[arg(long)]
    pub out: PathBuf,
}

/// `ragd eval answers`.
#[derive(Debug, Args)]
pub struct AnswersArgs {
    /// The BEIR folder (queries and qrels).
    pub dir: PathBuf,
    /// The collection holding its corpus (e.g. `beir-scifact`, made by `ragd eval beir`).
    #[arg(long)]
    pub collection: String,
    /// The split whose questions are asked.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Questions asked (the first by query id).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// How each question is answered.
    #[command(flatten)]
    pub answering: AnsweringArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `ragd eval gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// The collection to retrieve from (e.g. `beir-scifact`, made by `ragd eval beir`).
    #[arg(long)]
    pub collection: String,
    /// A BEIR folder whose split's queries are the answerable questions.
    #[arg(long, conflicts_with = "questions")]
    pub dir: Option<PathBuf>,
    /// The split of `--dir` (tune on train).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// A file of answerable questions, one per line, instead of `--dir`.
    #[arg(long)]
    pub questions: Option<PathBuf>,
    /// Answerable questions used (the first by query id after `--skip`).
    #[arg(long, default_value_t = usize::MAX, hide_default_value = true)]
    pub limit: usize,
    /// Answerable questions passed over first (fit on a later slice, report on the first).
    #[arg(long, default_value_t = 0)]
    pub skip: usize,
    /// A second BEIR folder whose questions count as off-topic here too (another corpus's
    /// questions: e.g. squad-qa's against SciFact).
    #[arg(long)]
    pub offtopic_dir: Option<PathBuf>,
    /// The split of `--offtopic-dir`.
    #[arg(long, default_value = "train")]
    pub offtopic_split: String,
    /// Questions of `--offtopic-dir` used (the first by query id after `--offtopic-skip`).
    #[arg(long, default_value_t = 300)]
    pub offtopic_limit: usize,
    /// Questions of `--offtopic-dir` passed over first.
    #[arg(long, default_value_t = 0)]
    pub offtopic_skip: usize,
    /// Chunks retrieved per question (the sources an answer would get; Ask's default is 3).
    #[arg(long, short, default_value_t = 3)]
    pub k: usize,
    /// Also answer the questions the gate lets through, to count the model's own "not found"
    /// (one generation each: slow).
    #[arg(long)]
    pub answer: bool,
    /// Write one JSON line per question (answerable, question, features, probability).
    #[arg(long)]
    pub rows: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `ragd eval gate-fit`.
#[derive(Debug, Args)]
pub struct GateFitArgs {
    /// Files written by `ragd eval gate --rows`.
    #[arg(required = true)]
    pub rows: Vec<PathBuf>,
    /// Share of answerable questions the fitted gate must still answer (in every file).
    #[arg(long, default_value_t = 0.975)]
    pub keep: f64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What a reranking stage uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RerankArg {
    /// No second stage.
    None,
    /// The cross-encoder configured as `reranker.model` / `--reranker-path`.
    CrossEncoder,
    /// The generator as a yes/no relevance judge (`reranker.kind = llm`).
    Llm,
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
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    pub mode: ModeArg,
    /// Fusion for hybrid mode: rrf[:K], minmax[:ALPHA] or zscore[:ALPHA] (ALPHA weighs dense).
    /// The default, z-score convex combination with alpha 0.5, was chosen on SciFact's train
    /// split (nDCG@10 0.726 vs 0.712 for RRF k = 60); see BENCHMARKS.md.
    #[arg(long, default_value = "zscore:0.5")]
    pub fusion: Fusion,
    /// Candidates from each retriever.
    #[arg(long, default_value_t = 200)]
    pub candidates: usize,
    /// Second stage.
    #[arg(long, value_enum, default_value_t = RerankArg::None)]
    pub rerank: RerankArg,
    /// Fused candidates the reranker scores.
    #[arg(long, default_value_t = 50)]
    pub rerank_candidates: usize,
    /// A cross-encoder folder (config.json, tokenizer.json, *.safetensors).
    #[arg(long)]
    pub reranker_path: Option<PathBuf>,
    /// Score only the split's first N queries (by id): for slow second stages.
    #[arg(long)]
    pub queries: Option<usize>,
    /// Chunking strategy as JSON, e.g. '{"kind":"recursive","size":200}'.
    #[arg(long, default_value = r#"{"kind":"recursive"}"#, value_parser = super::kb::parse_strategy)]
    pub chunker: ChunkingStrategy,
    /// Scratch collection name [default: beir-<folder name>].
    #[arg(long)]
    pub collection: Option<String>,
    /// Where the collection lives: `embedded` (in data_dir) or `qdrant` (the cluster in the
    /// `[qdrant]` table, e.g. `RAGD_QDRANT_URLS`).
    #[arg(long, value_enum, default_value_t = BackendArg::Embedded)]
    pub backend: BackendArg,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// In data_dir, in this process.
    Embedded,
    /// On the Qdrant cluster of the `[qdrant]` settings.
    Qdrant,
}

/// Runs an eval command.
pub fn run(cfg: &Config, cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Beir(args) => run_beir(cfg, &args),
        EvalCommand::Gate(args) => run_gate(cfg, &args),
        EvalCommand::GateFit(args) => run_gate_fit(&args),
        EvalCommand::Answers(args) => run_answers(cfg, &args),
        EvalCommand::Qa(args) => run_qa(cfg, &args),
        EvalCommand::Vectors(args) => run_vectors(cfg, &args),
    }
}

fn run_vectors(cfg: &Config, args: &VectorsArgs) -> anyhow::Result<()> {
    let store = index::Store::open(&cfg.data_dir)?;
    let searcher = store.collection(&args.collection)?.reader().searcher();
    let base: Vec<Vec<f32>> = searcher
        .dense_vectors()?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    anyhow::ensure!(
        !base.is_empty(),
        "collection {} has no chunks",
        args.collection
    );
    let queries = dataset::read_queries(&args.dir)?;
    let embedder = crate::wiring::load_embedder(cfg)?;
    let mut vectors = Vec::with_capacity(queries.len());
    for text in queries.values() {
        let e = embedder.embed(&[text.as_str()])?.into_iter().next();
        vectors.push(e.context("the embedder returned no vector")?.vector);
    }
    fs_err::create_dir_all(&args.out)?;
    index::vecfile::write(&args.out.join("base.f32"), &base)?;
    index::vecfile::write(&args.out.join("queries.f32"), &vectors)?;
    println!(
        "{} chunk vectors and {} queries ({} dimensions) written to {}",
        base.len(),
        vectors.len(),
        base[0].len(),
        args.out.display()
    );
    Ok(())
}

fn run_answers(cfg: &Config, args: &AnswersArgs) -> anyhow::Result<()> {
    let split = dataset::read_split(&args.dir, &args.split)?;
    let models = Models::load(cfg, true, &RerankChoice::None)?;
    let generator = models.generator()?.clone();
    let store = index::Store::open(&cfg.data_dir)?;
    let collection = store.collection(&args.collection)?;
    crate::jobs::check_embedder(&collection, models.embedder.as_ref())?;
    let searcher = collection.reader().searcher();
    let retriever = models.retriever();
    let acfg = args.answering.config(cfg);
    let r = crate::eval::answers::run(
        &retriever,
        &searcher,
        generator.as_ref(),
        &split,
        &acfg,
        args.limit,
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} questions: cites a gold document {:.1}% (gold among the sources {:.1}%), \
             cites anything {:.1}%, not found {:.1}%, extractive {:.1}%, {:.2} unsupported \
             sentences removed per answer; {:.0} prompt tokens, {:.0} tokens/s, {:.2} s per answer",
            r.questions,
            r.cites_gold * 100.0,
            r.gold_in_sources * 100.0,
            r.cites_any * 100.0,
            r.not_found * 100.0,
            r.extractive * 100.0,
            r.unsupported_removed_per_question,
            r.prompt_tokens,
            r.decode_tokens_per_second,
            r.seconds_per_answer
        );
    }
    Ok(())
}

fn run_qa(cfg: &Config, args: &QaArgs) -> anyhow::Result<()> {
    let set = qa::QaSet {
        split: dataset::read_split(&args.dir, &args.split)?,
        answers: dataset::read_answers(&args.dir)?,
    };
    let models = Models::load(cfg, true, &RerankChoice::None)?;
    let generator = models.generator()?.clone();
    let name = args
        .collection
        .clone()
        .unwrap_or_else(|| default_collection(&args.dir));
    let bar = super::bytes_bar(0, "ingesting");
    let (collection, _, _) = beir::ingest_corpus(
        cfg,
        &args.dir,
        &name,
        &ChunkingStrategy::default(),
        models.embedder.clone(),
        &mut |p| ingest_progress(&bar, p),
    )?;
    collection.settle();
    let searcher = collection.reader().searcher();
    let retriever = models.retriever();
    let acfg = args.answering.config(cfg);
    let mut rows = match &args.rows {
        Some(path) => Some(std::io::BufWriter::new(
            fs_err::File::create(path).with_context(|| format!("--rows {}", path.display()))?,
        )),
        None => None,
    };
    let bar = super::progress_bar(args.limit.min(set.answers.len()) as u64, "answering");
    let mut write_error = None;
    let r = qa::run(
        &retriever,
        &searcher,
        generator.as_ref(),
        &set,
        &acfg,
        args.skip..args.skip + args.limit,
        &mut |row| {
            bar.inc(1);
            if let Some(out) = rows.as_mut() {
                let line = serde_json::to_string(row).map_err(std::io::Error::from);
                if let Err(e) = line.and_then(|l| writeln!(out, "{l}")) {
                    write_error.get_or_insert(e);
                }
            }
        },
    )?;
    bar.finish_and_clear();
    if let Some(e) = write_error {
        anyhow::bail!("writing --rows: {e}");
    }
    if let Some(mut out) = rows {
        out.flush().context("writing --rows")?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "{} questions: exact match {:.1}%, F1 {:.1}%, answer contains a gold answer {:.1}% \
         (gold in a cited chunk {:.1}%, in the sources {:.1}%)",
        r.questions,
        r.exact_match * 100.0,
        r.f1 * 100.0,
        r.contains_gold * 100.0,
        r.gold_in_cited * 100.0,
        r.gold_in_sources * 100.0
    );
    println!(
        "short answer: exact match {:.1}%, F1 {:.1}% (given for {:.1}%, from the judged \
         paragraph {:.1}%); best evidence sentence holds a gold answer {:.1}% (one of the best two \
         {:.1}%)",
        r.short_exact_match * 100.0,
        r.short_f1 * 100.0,
        r.has_short_answer * 100.0,
        r.short_in_judged * 100.0,
        r.gold_in_evidence * 100.0,
        r.gold_in_evidence_top2 * 100.0
    );
    println!(
        "citation precision {:.1}% (cites {:.1}%), not found {:.1}%, extractive {:.1}%; \
         {:.2} / {:.2} s per answer (p50 / p95), first token {:.0} / {:.0} ms, first checked \
         text shown {:.0} / {:.0} ms",
        r.citation_precision * 100.0,
        r.cites_any * 100.0,
        r.not_found * 100.0,
        r.extractive * 100.0,
        r.seconds_p50,
        r.seconds_p95,
        r.time_to_first_token_ms_p50,
        r.time_to_first_token_ms_p95,
        r.first_text_ms_p50,
        r.first_text_ms_p95
    );
    if r.read_ms_p50 > 0.0 {
        println!(
            "the reader took {:.0} / {:.0} ms per answer (p50 / p95), once generation was over",
            r.read_ms_p50, r.read_ms_p95
        );
    }
    Ok(())
}

/// Drives a progress bar from an ingestion's [`beir::Progress`].
fn ingest_progress(bar: &indicatif::ProgressBar, p: beir::Progress<'_>) {
    match p {
        beir::Progress::Rejected { lines, first } => {
            bar.suspend(|| eprintln!("warning: {lines} corpus lines rejected, first: {first}"));
        }
        beir::Progress::Ingesting { done, total } => {
            bar.set_length(total);
            bar.set_position(done);
        }
        beir::Progress::Ingested => bar.finish_and_clear(),
    }
}

fn run_gate(cfg: &Config, args: &GateArgs) -> anyhow::Result<()> {
    let answerable: Vec<String> = match (&args.dir, &args.questions) {
        (Some(dir), _) => dataset::read_split(dir, &args.split)?
            .queries
            .into_values()
            .skip(args.skip)
            .take(args.limit)
            .collect(),
        (None, Some(file)) => fs_err::read_to_string(file)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .skip(args.skip)
            .take(args.limit)
            .map(String::from)
            .collect(),
        (None, None) => anyhow::bail!("give the answerable questions with --dir or --questions"),
    };
    let mut offtopic = gate::offtopic_questions();
    if let Some(dir) = &args.offtopic_dir {
        let other = dataset::read_split(dir, &args.offtopic_split)?;
        offtopic.extend(
            other
                .queries
                .into_values()
                .skip(args.offtopic_skip)
                .take(args.offtopic_limit),
        );
    }
    // Opened before the (long) measurement, so a path that cannot be written fails at once.
    let rows_file = match &args.rows {
        Some(path) => {
            Some(fs_err::File::create(path).with_context(|| format!("--rows {}", path.display()))?)
        }
        None => None,
    };
    let models = Models::load(cfg, true, &RerankChoice::None)?;
    let generator = models.generator()?.clone();
    let retriever = models.retriever();
    let store = index::Store::open(&cfg.data_dir)?;
    let collection = store.collection(&args.collection)?;
    crate::jobs::check_embedder(&collection, models.embedder.as_ref())?;
    let searcher = collection.reader().searcher();
    let mut acfg = crate::rag::AnswerConfig::default();
    acfg.retrieve.k = args.k;
    acfg.generation = cfg.generator.params();
    acfg.gate = cfg.answer.gate;
    let bar = super::progress_bar((answerable.len() + offtopic.len()) as u64, "measuring");
    let run = gate::GateRun {
        retriever: &retriever,
        searcher: &searcher,
        generator: generator.as_ref(),
        cfg: &acfg,
        generate: args.answer,
    };
    let mut rows = run.measure(&answerable, true, &mut || bar.inc(1))?;
    rows.extend(run.measure(&offtopic, false, &mut || bar.inc(1))?);
    bar.finish_and_clear();
    let configured = acfg.gate;
    if let Some(file) = rows_file {
        write_rows(file, &rows).context("writing --rows")?;
    }
    let report = gate::summarise(&rows, &configured);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    print_gate_report(&args.collection, &report);
    Ok(())
}

fn write_rows<T: serde::Serialize>(file: fs_err::File, rows: &[T]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(file);
    for row in rows {
        serde_json::to_writer(&mut out, row)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn print_gate_report(name: &str, report: &gate::GateReport) {
    println!(
        "{name}: {} answerable questions, {:.1}% answered; {} off-topic, {:.1}% refused \
         (least probability {:.3})",
        report.answerable,
        report.answerable_kept * 100.0,
        report.offtopic,
        report.offtopic_refused * 100.0,
        report.gate.min_probability,
    );
    if let Some(m) = &report.with_model {
        println!(
            "  with the model's own \"not found\": {:.1}% answered, {:.1}% refused",
            m.answerable_kept * 100.0,
            m.offtopic_refused * 100.0
        );
    }
    println!("threshold  answerable answered  off-topic refused");
    for row in &report.table {
        println!(
            "{:>9.2}  {:>18.1}%  {:>16.1}%",
            row.threshold,
            row.answerable_kept * 100.0,
            row.offtopic_refused * 100.0
        );
    }
}

fn run_gate_fit(args: &GateFitArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.keep),
        "--keep {} is not a share between 0 and 1",
        args.keep
    );
    let mut files = Vec::new();
    for path in &args.rows {
        let mut rows: Vec<gate::GateQuestion> = Vec::new();
        let text = fs_err::read_to_string(path)?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            rows.push(
                serde_json::from_str(line)
                    .with_context(|| format!("{}:{}: not a gate row", path.display(), i + 1))?,
            );
        }
        files.push((path.display().to_string(), rows));
    }
    let labelled: Vec<Vec<crate::rag::gate::Labelled>> = files
        .iter()
        .map(|(_, rows)| rows.iter().map(gate::GateQuestion::labelled).collect())
        .collect();
    let fitted = crate::rag::gate::fit(&labelled, args.keep);
    let reports: Vec<(String, gate::GateReport)> = files
        .iter()
        .map(|(name, rows)| (name.clone(), gate::summarise(rows, &fitted)))
        .collect();
    if args.json {
        let out = serde_json::json!({
            "gate": fitted,
            "files": reports.iter().map(|(n, r)| serde_json::json!({"file": n, "report": r})).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "# fitted gate: put in the configuration file\n[answer.gate]\nbias = {:.3}\nweights = [{}]\nmin_probability = {:.3}\n",
        fitted.bias,
        fitted
            .weights
            .map(|w| format!("{w:.3}"))
            .join(", "),
        fitted.min_probability,
    );
    for (name, report) in &reports {
        print_gate_report(name, report);
    }
    Ok(())
}

fn run_beir(cfg: &Config, args: &BeirArgs) -> anyhow::Result<()> {
    let rerank = match args.rerank {
        RerankArg::None => RerankChoice::None,
        RerankArg::CrossEncoder => RerankChoice::CrossEncoder {
            path: args.reranker_path.clone(),
        },
        RerankArg::Llm => RerankChoice::Llm,
    };
    let models = Models::load(cfg, false, &rerank)?;
    let eval = EvalConfig {
        collection: args
            .collection
            .clone()
            .unwrap_or_else(|| default_collection(&args.dir)),
        dir: args.dir.clone(),
        split: args.split.clone(),
        max_queries: args.queries,
        chunking: args.chunker.clone(),
        backend: match args.backend {
            BackendArg::Embedded => beir::Backend::Embedded,
            BackendArg::Qdrant => beir::Backend::Qdrant(cfg.qdrant.clone()),
        },
        retrieve: RetrieveOptions {
            mode: args.mode.into(),
            fusion: args.fusion,
            candidates: args.candidates,
            rerank: models.reranker.is_some(),
            rerank_candidates: args.rerank_candidates,
            k: args.candidates,
            ..RetrieveOptions::default()
        },
    };
    let bar = super::bytes_bar(0, "ingesting");
    let mut progress = |p: beir::Progress<'_>| ingest_progress(&bar, p);
    let report = beir::run(
        cfg,
        &eval,
        models.embedder.clone(),
        &models.retriever(),
        &mut progress,
    )?;
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
