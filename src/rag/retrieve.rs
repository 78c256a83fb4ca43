//! Two-stage retrieval: query → (embed + dense search) ∥ BM25 → fusion → optional rerank → top k.
//!
//! The first stage is cheap and wide: `candidates` hits per retriever (default 100), fused into
//! one deduplicated list ([`index::fusion`]). The second stage is expensive and narrow: the
//! cross-encoder scores only the best `rerank_candidates` fused hits (default 50), so its cost is
//! bounded by that number and the passage token budget, whatever the collection size.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use index::fusion::{self, Fusion, Normalization};
use index::{ChunkId, ChunkRecord, ChunkSource, Filter, ScoredChunk};
use ingest::Embedder;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ServiceError};
use crate::model::rerank::{Reader, Reranker};

/// Which first-stage retrievers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// BM25 only.
    Bm25,
    /// Dense (embedding) search only.
    Dense,
    /// Both, fused.
    #[default]
    Hybrid,
}

/// The default fusion: a convex combination of z-score-normalised scores with equal weights,
/// chosen on SciFact's train split over RRF (k 10–100), min-max (α 0.5–0.6) and other α; test
/// nDCG@10 0.726 against 0.708 for RRF k = 60 (BENCHMARKS.md).
pub const DEFAULT_FUSION: Fusion = Fusion::Convex {
    alpha: 0.5,
    normalization: Normalization::ZScore,
};

/// The note a BM25-mode search gets when its query has no term BM25 can match.
pub const NOTE_NO_TERMS_BM25: &str = "the query has no term BM25 can match (only stop words, \
     punctuation or emoji), so BM25 mode finds nothing; search in dense or hybrid mode";

/// The note a hybrid search gets when its query has no term BM25 can match.
pub const NOTE_NO_TERMS_HYBRID: &str = "the query has no term BM25 can match (only stop words, \
     punctuation or emoji); ranked by dense search alone";

/// Remarks on how `query` was served in `mode`, for the caller to show beside `hits`: today,
/// that BM25 had no term to match (BM25 mode then finds nothing; hybrid falls back to dense).
/// Costs a query parse only when the BM25 leg contributed nothing.
pub fn notes(searcher: &dyn ChunkSource, query: &str, mode: Mode, hits: &[Hit]) -> Vec<String> {
    let bm25_silent = match mode {
        Mode::Dense => false,
        Mode::Bm25 => hits.is_empty(),
        Mode::Hybrid => hits.iter().all(|h| h.stages.bm25.is_none()),
    };
    if !bm25_silent {
        return Vec::new();
    }
    match searcher.search_bm25(query, 1, &Filter::default()) {
        Err(index::IndexError::EmptyQuery) => vec![match mode {
            Mode::Bm25 => NOTE_NO_TERMS_BM25.to_string(),
            Mode::Dense | Mode::Hybrid => NOTE_NO_TERMS_HYBRID.to_string(),
        }],
        Ok(_) | Err(_) => Vec::new(),
    }
}

/// Parameters of one retrieval.
#[derive(Debug, Clone)]
pub struct RetrieveOptions {
    /// First-stage retrievers.
    pub mode: Mode,
    /// How hybrid lists are fused.
    pub fusion: Fusion,
    /// Hits taken from each first-stage retriever.
    pub candidates: usize,
    /// Whether the cross-encoder reorders the fused candidates.
    pub rerank: bool,
    /// Fused candidates the reranker scores.
    pub rerank_candidates: usize,
    /// Results returned.
    pub k: usize,
    /// Metadata filter applied by both retrievers.
    pub filter: Filter,
    /// When the caller stops waiting (a call's deadline): the work stops at its next safe
    /// point (between stages) with `DeadlineExceeded` instead of running on for nobody.
    pub deadline: Option<Deadline>,
}

/// When a call started and when its work must stop.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the call started.
    pub started: Instant,
    /// When its work stops.
    pub stop: Instant,
}

impl RetrieveOptions {
    /// `DeadlineExceeded` once [`deadline`](Self::deadline) has passed.
    pub fn check_deadline(&self) -> Result<()> {
        match self.deadline {
            Some(d) if Instant::now() >= d.stop => Err(ServiceError::DeadlineExceeded {
                elapsed_ms: d.started.elapsed().as_millis() as u64,
            }),
            _ => Ok(()),
        }
    }
}

impl Default for RetrieveOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Hybrid,
            fusion: DEFAULT_FUSION,
            candidates: 100,
            rerank: false,
            rerank_candidates: 50,
            k: 10,
            filter: Filter::default(),
            deadline: None,
        }
    }
}

/// Scores a hit received at each stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageScores {
    /// Cosine similarity from dense search.
    pub dense: Option<f32>,
    /// BM25 score.
    pub bm25: Option<f32>,
    /// Fused score (hybrid mode).
    pub fused: Option<f32>,
    /// Cross-encoder logit.
    pub rerank: Option<f32>,
}

/// How long each stage of one retrieval took; `None` for a stage the request did not run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Embedding the query.
    pub embed: Option<Duration>,
    /// The dense search.
    pub dense: Option<Duration>,
    /// The BM25 search.
    pub bm25: Option<Duration>,
    /// Fusing the lists (hybrid mode).
    pub fusion: Option<Duration>,
    /// Reranking.
    pub rerank: Option<Duration>,
}

impl StageTimes {
    /// Records the stages that ran in the process's metrics.
    fn record(&self) {
        use crate::metrics::{global, Stage};
        let stages = [
            (Stage::Embed, self.embed),
            (Stage::Dense, self.dense),
            (Stage::Bm25, self.bm25),
            (Stage::Fusion, self.fusion),
            (Stage::Rerank, self.rerank),
        ];
        for (stage, took) in stages {
            if let Some(took) = took {
                global().stage(stage, took);
            }
        }
    }
}

/// One retrieved chunk with its final score and per-stage scores.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The chunk, loaded from the store.
    pub chunk: ChunkRecord,
    /// The score the results are ordered by (the last stage's).
    pub score: f32,
    /// Every stage's score.
    pub stages: StageScores,
}

/// Runs retrievals against a collection snapshot.
#[derive(Clone)]
pub struct Retriever {
    embedder: Arc<dyn Embedder>,
    reranker: Option<Arc<dyn Reranker>>,
    reader: Option<Arc<dyn Reader>>,
}

type Ranked = Vec<(ChunkId, f32)>;

fn pairs(hits: Vec<ScoredChunk>) -> Ranked {
    hits.into_iter().map(|h| (h.id, h.score)).collect()
}

impl Retriever {
    /// A retriever embedding queries with `embedder`, reranking with `reranker` when given.
    pub fn new(embedder: Arc<dyn Embedder>, reranker: Option<Arc<dyn Reranker>>) -> Self {
        Self {
            embedder,
            reranker,
            reader: None,
        }
    }

    /// This retriever, with `reader` finding the short answers of answers built on it.
    pub fn with_reader(mut self, reader: Option<Arc<dyn Reader>>) -> Self {
        self.reader = reader;
        self
    }

    /// The reading-comprehension reader, when one is configured.
    pub fn reader(&self) -> Option<&Arc<dyn Reader>> {
        self.reader.as_ref()
    }

    /// The embedder queries are embedded with.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// Retrieves the top `opts.k` chunks for `query`.
    pub fn retrieve(
        &self,
        searcher: &dyn ChunkSource,
        query: &str,
        opts: &RetrieveOptions,
    ) -> Result<Vec<Hit>> {
        Ok(self.retrieve_timed(searcher, query, opts)?.0)
    }

    /// [`Retriever::retrieve`], also returning how long each stage took (also recorded in
    /// [`crate::metrics`]).
    pub fn retrieve_timed(
        &self,
        searcher: &dyn ChunkSource,
        query: &str,
        opts: &RetrieveOptions,
    ) -> Result<(Vec<Hit>, StageTimes)> {
        if query.trim().is_empty() {
            return Err(ServiceError::InvalidArgument("the query is empty".into()));
        }
        if opts.k == 0 || opts.candidates == 0 {
            return Err(ServiceError::InvalidArgument(
                "k and candidates must be at least 1".into(),
            ));
        }
        // Refused before any work: a request that cannot be served costs nothing.
        let rerank_n = match (&self.reranker, opts.rerank) {
            (None, true) => {
                return Err(ServiceError::InvalidArgument(
                    "reranking was requested but no reranker is configured".into(),
                ))
            }
            (Some(r), true) => opts.rerank_candidates.min(r.max_candidates()),
            (_, false) => 0,
        };
        opts.check_deadline()?;
        let mut times = StageTimes::default();
        let (dense, bm25) = self.first_stage(searcher, query, opts, &mut times)?;
        opts.check_deadline()?;
        let fusing = Instant::now();
        let fused: Ranked = match opts.mode {
            Mode::Bm25 => bm25.clone(),
            Mode::Dense => dense.clone(),
            Mode::Hybrid => fusion::fuse(opts.fusion, &dense, &bm25),
        };
        if opts.mode == Mode::Hybrid {
            times.fusion = Some(fusing.elapsed());
        }
        let keep = rerank_n.max(opts.k);
        let top: Ranked = fused.into_iter().take(keep).collect();
        let records = self.load(searcher, &top)?;
        let lookup = |list: &Ranked| list.iter().copied().collect::<HashMap<ChunkId, f32>>();
        let (dense_map, bm25_map) = (lookup(&dense), lookup(&bm25));
        let mut hits: Vec<Hit> = top
            .iter()
            .zip(records)
            .filter_map(|(&(id, score), chunk)| Some((id, score, chunk?)))
            .map(|(id, score, chunk)| Hit {
                chunk,
                score,
                stages: StageScores {
                    dense: dense_map.get(&id).copied(),
                    bm25: bm25_map.get(&id).copied(),
                    fused: (opts.mode == Mode::Hybrid).then_some(score),
                    rerank: None,
                },
            })
            .collect();
        if opts.rerank {
            opts.check_deadline()?;
            let n = rerank_n.min(hits.len());
            let started = Instant::now();
            self.rerank(query, &mut hits[..n])?;
            times.rerank = Some(started.elapsed());
        }
        hits.truncate(opts.k);
        times.record();
        Ok((hits, times))
    }

    /// Dense and BM25 candidate lists, computed in parallel (only those the mode needs).
    fn first_stage(
        &self,
        searcher: &dyn ChunkSource,
        query: &str,
        opts: &RetrieveOptions,
        times: &mut StageTimes,
    ) -> Result<(Ranked, Ranked)> {
        let want_dense = opts.mode != Mode::Bm25;
        let want_bm25 = opts.mode != Mode::Dense;
        if want_dense && want_bm25 && searcher.batches_legs() {
            // A remote index answers both legs in one call: embed, then ask once.
            let embedding = Instant::now();
            let vector = self.embed_query(query)?;
            times.embed = Some(embedding.elapsed());
            let searching = Instant::now();
            let (dense, bm25) = searcher.search_both(
                &vector,
                query,
                opts.candidates,
                opts.candidates,
                &opts.filter,
            )?;
            let took = searching.elapsed();
            (times.dense, times.bm25) = (Some(took), Some(took));
            return Ok((pairs(dense), pairs(bm25)));
        }
        let (dense, bm25) = rayon::join(
            || -> Result<(Ranked, Duration, Duration)> {
                if !want_dense {
                    return Ok((Vec::new(), Duration::ZERO, Duration::ZERO));
                }
                let embedding = Instant::now();
                let vector = self.embed_query(query)?;
                let embed = embedding.elapsed();
                let searching = Instant::now();
                let hits = pairs(searcher.search_dense(&vector, opts.candidates, &opts.filter)?);
                Ok((hits, embed, searching.elapsed()))
            },
            || -> Result<(Ranked, Duration)> {
                if !want_bm25 {
                    return Ok((Vec::new(), Duration::ZERO));
                }
                let searching = Instant::now();
                let hits = match searcher.search_bm25(query, opts.candidates, &opts.filter) {
                    Ok(hits) => pairs(hits),
                    // Only stop words, punctuation or emoji ("to be or not to be"): BM25 has
                    // nothing to match, so hybrid ranks by the dense list alone and BM25 mode
                    // finds nothing; neither is the caller's error.
                    Err(index::IndexError::EmptyQuery) => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                Ok((hits, searching.elapsed()))
            },
        );
        let (dense, embed, dense_time) = dense?;
        let (bm25, bm25_time) = bm25?;
        if want_dense {
            times.embed = Some(embed);
            times.dense = Some(dense_time);
        }
        if want_bm25 {
            times.bm25 = Some(bm25_time);
        }
        Ok((dense, bm25))
    }

    fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        let vector = self.embedder.embed(&[query])?.into_iter().next();
        vector.map(|e| e.vector).ok_or_else(|| {
            ServiceError::Internal("the embedder returned no vector for the query".into())
        })
    }

    /// The records of `ranked`'s chunks, in order. A chunk deleted between the search and this
    /// read is `None` where the source has no snapshots (a remote index: the hit is dropped);
    /// in a snapshot it would be an index bug, reported.
    fn load(
        &self,
        searcher: &dyn ChunkSource,
        ranked: &Ranked,
    ) -> Result<Vec<Option<ChunkRecord>>> {
        let ids: Vec<ChunkId> = ranked.iter().map(|x| x.0).collect();
        let records = searcher.get_chunks(&ids)?;
        if searcher.reads_one_snapshot() {
            if let Some(pos) = records.iter().position(Option::is_none) {
                return Err(ServiceError::Internal(format!(
                    "chunk {} is indexed but has no record",
                    ids[pos].0
                )));
            }
        }
        Ok(records)
    }

    /// Reranks `hits` (the first `opts.rerank_candidates` fused hits, at most the reranker's
    /// [`max_candidates`](Reranker::max_candidates)) by reranker score; later hits keep their
    /// fused order after them.
    fn rerank(&self, query: &str, hits: &mut [Hit]) -> Result<()> {
        let Some(reranker) = &self.reranker else {
            return Ok(());
        };
        let passages: Vec<&str> = hits.iter().map(|h| h.chunk.text.as_str()).collect();
        let scores = reranker
            .rerank(query, &passages)
            .map_err(ServiceError::from)?;
        for (hit, s) in hits.iter_mut().zip(scores) {
            hit.stages.rerank = Some(s);
            hit.score = s;
        }
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.chunk.id.cmp(&b.chunk.id))
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use index::Store;
    use ingest::testing::HashEmbedder;

    use super::*;
    use crate::model::rerank::RerankError;

    /// Scores passages by length and remembers how many it was asked to score.
    struct Counting {
        max: usize,
        seen: AtomicUsize,
    }

    impl Reranker for Counting {
        fn rerank(
            &self,
            _query: &str,
            passages: &[&str],
        ) -> std::result::Result<Vec<f32>, RerankError> {
            self.seen.fetch_add(passages.len(), Ordering::Relaxed);
            Ok(passages.iter().map(|p| p.len() as f32).collect())
        }
        fn model_id(&self) -> &str {
            "counting"
        }
        fn max_candidates(&self) -> usize {
            self.max
        }
    }

    /// 30 one-chunk documents about pumps, embedded by `embedder`, written straight to the
    /// index (the ingestion pipeline lives in a higher layer).
    fn collection(dir: &std::path::Path, embedder: &Arc<HashEmbedder>) -> Arc<index::Collection> {
        let store = Store::open(dir).unwrap();
        let config = index::CollectionConfig::new("c", embedder.model_id(), embedder.dimension());
        let collection = store.create_collection(config).unwrap();
        let writer = collection.writer();
        for i in 0..30 {
            let text = format!("pump seal {} note {i}", "word ".repeat(i));
            let vector = embedder.embed(&[text.as_str()]).unwrap().remove(0).vector;
            let len = text.chars().count();
            writer
                .upsert_document(index::DocumentRecord {
                    id: format!("d{i}"),
                    title: String::new(),
                    metadata: Default::default(),
                    content_hash: format!("h{i}"),
                    indexed_with: String::new(),
                    chunks: vec![index::ChunkInput::new(text, 0, len, vector)],
                })
                .unwrap();
        }
        writer.commit().unwrap();
        collection
    }

    #[test]
    fn rerank_without_a_reranker_is_refused_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let embedder = Arc::new(HashEmbedder::new());
        let collection = collection(dir.path(), &embedder);
        let retriever = Retriever::new(embedder.clone(), None);
        let calls = embedder.calls();
        let opts = RetrieveOptions {
            rerank: true,
            ..RetrieveOptions::default()
        };
        let err = retriever
            .retrieve(&collection.reader().searcher(), "pump seal", &opts)
            .unwrap_err();
        assert!(err.to_string().contains("no reranker"), "{err}");
        assert_eq!(embedder.calls(), calls, "the query was not even embedded");
    }

    #[test]
    fn a_passed_deadline_stops_the_work_at_the_next_stage() {
        let dir = tempfile::tempdir().unwrap();
        let embedder = Arc::new(HashEmbedder::new());
        let collection = collection(dir.path(), &embedder);
        let reranker = Arc::new(Counting {
            max: 50,
            seen: AtomicUsize::new(0),
        });
        let retriever = Retriever::new(embedder.clone(), Some(reranker.clone()));
        let calls = embedder.calls();
        let opts = RetrieveOptions {
            rerank: true,
            deadline: Some(Deadline {
                started: Instant::now(),
                stop: Instant::now(),
            }),
            ..RetrieveOptions::default()
        };
        let err = retriever
            .retrieve(&collection.reader().searcher(), "pump seal", &opts)
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::DeadlineExceeded { .. }),
            "{err}"
        );
        assert_eq!(embedder.calls(), calls, "not embedded");
        assert_eq!(reranker.seen.load(Ordering::Relaxed), 0, "not reranked");
    }

    #[test]
    fn a_reranker_scores_at_most_its_max_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let embedder = Arc::new(HashEmbedder::new());
        let collection = collection(dir.path(), &embedder);
        let reranker = Arc::new(Counting {
            max: 3,
            seen: AtomicUsize::new(0),
        });
        let retriever = Retriever::new(embedder, Some(reranker.clone()));
        let opts = RetrieveOptions {
            rerank: true,
            rerank_candidates: 25,
            k: 10,
            ..RetrieveOptions::default()
        };
        let hits = retriever
            .retrieve(&collection.reader().searcher(), "pump seal", &opts)
            .unwrap();
        assert_eq!(reranker.seen.load(Ordering::Relaxed), 3);
        assert_eq!(hits.len(), 10);
        assert!(hits[..3].iter().all(|h| h.stages.rerank.is_some()));
        assert!(hits[3..].iter().all(|h| h.stages.rerank.is_none()));
    }
}
