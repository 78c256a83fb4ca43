//! `ragd eval beir DIR`: ingest a BEIR data set into a scratch collection (reused when it is
//! already there), run the queries of one split, and score the document rankings.
//!
//! Layout: `DIR/corpus.jsonl` (`{"_id","title","text"}`), `DIR/queries.jsonl` (`{"_id","text"}`),
//! `DIR/qrels/<split>.tsv` (`query-id  corpus-id  score`, with a header). Documents are ranked by
//! their best chunk (max aggregation), so chunking never double-counts a document.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use index::fusion::Fusion;
use index::{ChunkSource, Collection, DocumentSink, Store};
use ingest::{ChunkingStrategy, Embedder};

use super::dataset::read_split;
use super::metrics::{evaluate, percentile, Metrics, Run};
use crate::jobs::{IngestSummary, Pipeline};
use crate::qdrant::{Blocking, QdrantSettings, QdrantStore};
use crate::rag::{Mode, RetrieveOptions, Retriever};

/// What [`run`] reports as it goes (it prints nothing itself).
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// Corpus lines that did not load (reported once ingestion ends); the run goes on without
    /// them.
    Rejected {
        /// How many.
        lines: usize,
        /// The first one's error.
        first: &'a str,
    },
    /// Bytes of the corpus ingested so far.
    Ingesting {
        /// Done.
        done: u64,
        /// Of.
        total: u64,
    },
    /// Ingestion finished; the queries run next.
    Ingested,
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// The BEIR folder.
    pub dir: PathBuf,
    /// `test`, `train` or `dev`.
    pub split: String,
    /// Retrieval parameters (k is the number of ranked chunks kept per query).
    pub retrieve: RetrieveOptions,
    /// How documents are chunked.
    pub chunking: ChunkingStrategy,
    /// Collection name (scratch; reused if present).
    pub collection: String,
    /// Score only the first N queries of the split (by id); `None`: all.
    pub max_queries: Option<usize>,
    /// Where the collection lives.
    pub backend: Backend,
}

/// Where an evaluated collection lives.
#[derive(Debug, Clone, Default)]
pub enum Backend {
    /// In `data_dir`, in this process (sled, tantivy, hnsw_rs).
    #[default]
    Embedded,
    /// On a Qdrant cluster.
    Qdrant(QdrantSettings),
}

/// Results of a run.
#[derive(Debug, serde::Serialize)]
pub struct EvalReport {
    /// The split evaluated.
    pub split: String,
    /// Retrieval mode.
    pub mode: Mode,
    /// Whether the cross-encoder reranked.
    pub rerank: bool,
    /// Fusion used in hybrid mode.
    pub fusion: Fusion,
    /// The metrics.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Documents in the collection.
    pub documents: u64,
    /// Chunks written by this run's ingestion (0 when the collection was reused).
    pub chunks_ingested: usize,
    /// Seconds spent ingesting (near 0 when reused).
    pub ingest_seconds: f64,
    /// Per-query latency percentiles in milliseconds (embed + search + fusion + rerank).
    pub latency_ms_p50: f64,
    /// 95th percentile.
    pub latency_ms_p95: f64,
}

/// Ingests `dir/corpus.jsonl` into the collection `name` (created for `embedder` if missing;
/// documents already stored with the same content and chunking are skipped, so a second run
/// costs a scan, while a run with another `--chunker` re-chunks them).
/// Returns the collection, what was written, and the seconds it took.
pub fn ingest_corpus(
    cfg: &crate::Config,
    dir: &Path,
    name: &str,
    chunking: &ChunkingStrategy,
    embedder: Arc<dyn Embedder>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> anyhow::Result<(Arc<Collection>, IngestSummary, f64)> {
    let store = Store::open(&cfg.data_dir)?;
    let collection = crate::jobs::open_or_create(&store, name, embedder.as_ref())?;
    let (summary, seconds) = ingest_into(cfg, dir, &collection, chunking, embedder, progress)?;
    Ok((collection, summary, seconds))
}

/// Ingests `dir/corpus.jsonl` into `sink` (see [`ingest_corpus`]); returns what was written
/// and the seconds it took.
pub fn ingest_into(
    cfg: &crate::Config,
    dir: &Path,
    sink: &dyn DocumentSink,
    chunking: &ChunkingStrategy,
    embedder: Arc<dyn Embedder>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> anyhow::Result<(IngestSummary, f64)> {
    let corpus = dir.join("corpus.jsonl");
    // Streamed a line at a time: a corpus of any size loads in the memory of one batch.
    let total = ingest::scan_path(&corpus, &cfg.ingest, &mut || false).bytes;
    let pipeline = Pipeline::new(chunking, embedder, usize::MAX)?;
    let started = Instant::now();
    let mut done = 0;
    let summary = pipeline.ingest_stream(
        sink,
        ingest::stream_path(&corpus, &cfg.ingest),
        |bytes, _| {
            done += bytes;
            progress(Progress::Ingesting { done, total });
        },
        |_| {},
    )?;
    if let Some((_, first)) = summary.errors.first() {
        progress(Progress::Rejected {
            lines: summary.failed,
            first,
        });
    }
    // Scoring an empty collection would report zeros as if they were results.
    anyhow::ensure!(
        summary.added + summary.updated + summary.unchanged > 0,
        "{}: no document of the corpus could be ingested{}",
        corpus.display(),
        summary
            .errors
            .first()
            .map(|(_, e)| format!(" (first error: {e})"))
            .unwrap_or_default()
    );
    progress(Progress::Ingested);
    Ok((summary, started.elapsed().as_secs_f64()))
}

/// Ingests (or reuses) the corpus, runs the split's queries and scores them.
pub fn run(
    cfg: &crate::Config,
    eval: &EvalConfig,
    embedder: Arc<dyn Embedder>,
    retriever: &Retriever,
    progress: &mut dyn FnMut(Progress<'_>),
) -> anyhow::Result<EvalReport> {
    match &eval.backend {
        Backend::Embedded => {
            let (collection, summary, ingest_seconds) = ingest_corpus(
                cfg,
                &eval.dir,
                &eval.collection,
                &eval.chunking,
                embedder,
                progress,
            )?;
            // Latency is measured in the steady state: after ingest, the dense index's search
            // copy is refreshed in the background (see `index::dense`); wait for it.
            collection.settle();
            let searcher = collection.reader().searcher();
            let documents = searcher.stats()?.documents;
            score(
                eval,
                &searcher,
                retriever,
                summary,
                ingest_seconds,
                documents,
            )
        }
        Backend::Qdrant(settings) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let store = runtime.block_on(QdrantStore::connect(settings))?;
            let config = crate::jobs::collection_config(&eval.collection, embedder.as_ref());
            let collection = runtime.block_on(store.open_or_create(&config, None))?;
            let blocking = Blocking::new(Arc::new(collection), runtime.handle().clone());
            let (summary, ingest_seconds) = ingest_into(
                cfg,
                &eval.dir,
                &blocking,
                &eval.chunking,
                embedder,
                progress,
            )?;
            let (documents, _) = runtime.block_on(blocking.collection().counts())?;
            score(
                eval,
                &blocking,
                retriever,
                summary,
                ingest_seconds,
                documents,
            )
        }
    }
}

/// Runs the split's queries against `source` and scores them.
fn score(
    eval: &EvalConfig,
    source: &dyn ChunkSource,
    retriever: &Retriever,
    summary: IngestSummary,
    ingest_seconds: f64,
    documents: u64,
) -> anyhow::Result<EvalReport> {
    let mut split = read_split(&eval.dir, &eval.split)?;
    if let Some(n) = eval.max_queries {
        split.keep_first(n);
    }
    let mut run = Run::new();
    let mut latencies = Vec::with_capacity(split.queries.len());
    for (qid, text) in &split.queries {
        let t = Instant::now();
        let hits = retriever.retrieve(source, text, &eval.retrieve)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        let scored: Vec<(String, f32)> = hits
            .into_iter()
            .map(|h| (h.chunk.doc_id, h.score))
            .collect();
        let mut docs: Vec<String> = Vec::new();
        for (doc, _) in scored {
            if !docs.contains(&doc) {
                docs.push(doc);
            }
        }
        docs.truncate(100);
        run.insert(qid.clone(), docs);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(EvalReport {
        split: eval.split.clone(),
        mode: eval.retrieve.mode,
        rerank: eval.retrieve.rerank,
        fusion: eval.retrieve.fusion,
        metrics: evaluate(&run, &split.qrels),
        documents,
        chunks_ingested: summary.chunks,
        ingest_seconds,
        latency_ms_p50: percentile(&latencies, 50.0),
        latency_ms_p95: percentile(&latencies, 95.0),
    })
}
