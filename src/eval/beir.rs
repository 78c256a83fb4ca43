//! `ragd eval beir DIR`: ingest a BEIR data set into a scratch collection (reused when it is
//! already there), run the queries of one split, and score the document rankings.
//!
//! Layout: `DIR/corpus.jsonl` (`{"_id","title","text"}`), `DIR/queries.jsonl` (`{"_id","text"}`),
//! `DIR/qrels/<split>.tsv` (`query-id  corpus-id  score`, with a header). Documents are ranked by
//! their best chunk (max aggregation), so chunking never double-counts a document.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use index::fusion::{Fusion, Normalization};
use index::Store;
use ingest::{ChunkingStrategy, Embedder};

use super::metrics::{evaluate, Metrics, Qrels, Run};
use crate::jobs::Pipeline;
use crate::rag::{Mode, RetrieveOptions, Retriever};

/// Queries (id → text) and relevance judgements of one split.
pub struct Split {
    /// Query texts by id, for the queries judged in the split.
    pub queries: BTreeMap<String, String>,
    /// Relevant documents per query.
    pub qrels: Qrels,
}

impl Split {
    /// Keeps the first `n` queries (by id) and their judgements only, so that metrics average
    /// over exactly the queries run.
    pub fn keep_first(&mut self, n: usize) {
        self.queries = std::mem::take(&mut self.queries)
            .into_iter()
            .take(n)
            .collect();
        self.qrels.retain(|qid, _| self.queries.contains_key(qid));
    }
}

/// Reads `qrels/<split>.tsv` and the texts of its queries.
pub fn read_split(dir: &Path, split: &str) -> anyhow::Result<Split> {
    let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
    let text = fs_err::read_to_string(&qrels_path)?;
    let mut qrels = Qrels::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let [qid, did, score] = cols[..] else {
            anyhow::bail!(
                "{}:{}: expected 3 tab-separated columns",
                qrels_path.display(),
                i + 1
            );
        };
        let score: i64 = score
            .trim()
            .parse()
            .with_context(|| format!("{}:{}: bad score", qrels_path.display(), i + 1))?;
        if score > 0 {
            qrels
                .entry(qid.to_string())
                .or_default()
                .insert(did.to_string());
        }
    }
    let mut queries = read_queries(dir)?;
    queries.retain(|id, _| qrels.contains_key(id));
    Ok(Split { queries, qrels })
}

/// Every query of `dir/queries.jsonl`, by id.
pub fn read_queries(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let queries_path = dir.join("queries.jsonl");
    let mut queries = BTreeMap::new();
    for (i, line) in fs_err::read_to_string(&queries_path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}", queries_path.display(), i + 1))?;
        if let (Some(id), Some(t)) = (v["_id"].as_str(), v["text"].as_str()) {
            queries.insert(id.to_string(), t.to_string());
        }
    }
    Ok(queries)
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

/// Percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Ingests (or reuses) the corpus, runs the split's queries and scores them.
pub fn run(
    cfg: &crate::Config,
    eval: &EvalConfig,
    embedder: Arc<dyn Embedder>,
    retriever: &Retriever,
) -> anyhow::Result<EvalReport> {
    let store = Store::open(&cfg.data_dir)?;
    let collection = crate::jobs::open_or_create(&store, &eval.collection, embedder.as_ref())?;
    let corpus = eval.dir.join("corpus.jsonl");
    let report = ingest::load_path(&corpus, &ingest::LoadOptions::default());
    if let Some(e) = report.errors.first() {
        eprintln!(
            "warning: {} corpus lines rejected, first: {e}",
            report.errors.len()
        );
    }
    let pipeline = Pipeline {
        chunker: eval.chunking.build(embedder.clone())?,
        embedder,
        embed_batch: 64,
        max_document_bytes: usize::MAX,
    };
    let bar = crate::cli::progress_bar(report.documents.len() as u64, "ingesting");
    let started = Instant::now();
    let summary = pipeline.ingest(&collection, &report.documents, |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let ingest_seconds = started.elapsed().as_secs_f64();
    let mut split = read_split(&eval.dir, &eval.split)?;
    if let Some(n) = eval.max_queries {
        split.keep_first(n);
    }
    // Latency is measured in the steady state: after ingest, the dense index's search copy
    // is refreshed in the background (see `index::dense`); wait for it.
    collection.settle();
    let searcher = collection.reader().searcher();
    let mut run = Run::new();
    let mut latencies = Vec::with_capacity(split.queries.len());
    for (qid, text) in &split.queries {
        let t = Instant::now();
        let hits = retriever.retrieve(&searcher, text, &eval.retrieve)?;
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
        documents: searcher.stats()?.documents,
        chunks_ingested: summary.chunks,
        ingest_seconds,
        latency_ms_p50: percentile(&latencies, 50.0),
        latency_ms_p95: percentile(&latencies, 95.0),
    })
}

/// Parses `rrf`, `rrf:K`, `minmax:ALPHA` or `zscore:ALPHA`.
pub fn parse_fusion(s: &str) -> Result<Fusion, String> {
    let (name, arg) = s.split_once(':').map_or((s, None), |(a, b)| (a, Some(b)));
    let num = |default: f32| -> Result<f32, String> {
        arg.map_or(Ok(default), |a| {
            a.parse::<f32>().map_err(|e| format!("`{a}`: {e}"))
        })
    };
    match name {
        "rrf" => Ok(Fusion::Rrf { k: num(60.0)? }),
        "minmax" => Ok(Fusion::Convex {
            alpha: num(0.5)?,
            normalization: Normalization::MinMax,
        }),
        "zscore" => Ok(Fusion::Convex {
            alpha: num(0.5)?,
            normalization: Normalization::ZScore,
        }),
        other => Err(format!(
            "unknown fusion `{other}`: use rrf[:K], minmax[:ALPHA] or zscore[:ALPHA]"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeping_the_first_queries_keeps_their_judgements_only() {
        let mut split = Split {
            queries: [("q1", "a"), ("q2", "b"), ("q3", "c")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            qrels: ["q1", "q2", "q3"]
                .into_iter()
                .map(|q| (q.to_string(), [format!("d-{q}")].into_iter().collect()))
                .collect(),
        };
        split.keep_first(2);
        assert_eq!(split.queries.keys().collect::<Vec<_>>(), ["q1", "q2"]);
        assert_eq!(split.qrels.keys().collect::<Vec<_>>(), ["q1", "q2"]);
        // A run scored against the kept judgements averages over two queries, not three.
        let run: Run = [("q1", "d-q1"), ("q2", "x")]
            .into_iter()
            .map(|(q, d)| (q.to_string(), vec![d.to_string()]))
            .collect();
        let m = evaluate(&run, &split.qrels);
        assert_eq!(m.queries, 2);
        assert!((m.ndcg_at_10 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn percentiles_by_hand() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 10.0);
        assert_eq!(percentile(&v, 95.0), 19.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn fusion_specs_parse() {
        assert_eq!(parse_fusion("rrf").unwrap(), Fusion::Rrf { k: 60.0 });
        assert_eq!(parse_fusion("rrf:20").unwrap(), Fusion::Rrf { k: 20.0 });
        assert!(matches!(
            parse_fusion("zscore:0.3").unwrap(),
            Fusion::Convex {
                normalization: Normalization::ZScore,
                ..
            }
        ));
        assert!(parse_fusion("borda").is_err());
    }
}
