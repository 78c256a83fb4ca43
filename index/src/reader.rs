//! The read side: [`IndexReader`] hands out [`Searcher`]s, consistent snapshots of a collection.
//!
//! A snapshot pairs the tantivy searcher and the [`DenseView`] published by the same commit, so
//! a document replaced by an upsert is seen either entirely old or entirely new, in both
//! indexes. Taking a searcher is a lock-free `ArcSwap` load: readers never wait for the writer,
//! and any number of searches run while the writer ingests. Chunk and document records are read
//! from sled, which is always current; a chunk the snapshot returns but a later write removed
//! is read from its retired record (see [`crate::meta`]), kept until no snapshot that can return
//! it is held, so every hit of a snapshot has its record as it was published.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::CollectionConfig;
use crate::dense::{cosine, normalise, DenseView};
use crate::meta::MetaStore;
use crate::retire::RemoveOnClose;
use crate::sparse::SparseIndex;
use crate::types::{ChunkId, ChunkRecord, DocumentInfo, Filter, ScoredChunk, Seq, Stats, MAX_K};
use crate::{IndexError, Result};

/// A filter matching at most this many chunks is searched exactly (brute force over its
/// vectors) instead of through the graph.
const EXACT_FILTER_MAX: usize = 4096;

/// What one commit published.
pub(crate) struct Snapshot {
    pub seq: Seq,
    pub bm25: tantivy::Searcher,
    pub dense: DenseView,
}

/// State shared by a collection's reader, writer and searchers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub config: CollectionConfig,
    pub meta: MetaStore,
    pub sparse: SparseIndex,
    pub snapshot: ArcSwap<Snapshot>,
    /// Armed when the collection is deleted. Last: it removes the folder after the fields
    /// above have closed their files.
    pub removal: RemoveOnClose,
}

/// Hands out searchers; cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct IndexReader {
    shared: Arc<Shared>,
}

impl IndexReader {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// A searcher over the last committed state. Never blocks.
    pub fn searcher(&self) -> Searcher {
        Searcher {
            snapshot: self.shared.snapshot.load_full(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Calls `f` with every stored document (acknowledged writes included), in id order, for
    /// whole-collection passes such as a folder sync. Reads the store as it goes: writes that
    /// land meanwhile may or may not be seen.
    pub fn for_each_document(&self, mut f: impl FnMut(DocumentInfo)) -> Result<()> {
        for doc in self.shared.meta.documents() {
            f(doc?);
        }
        Ok(())
    }
}

/// Validates `k`: zero is an error, anything above [`MAX_K`] is clamped to it.
pub fn clamp_k(k: usize) -> Result<usize> {
    if k == 0 {
        return Err(IndexError::ZeroK);
    }
    Ok(k.min(MAX_K))
}

/// A consistent, read-only snapshot of a collection.
pub struct Searcher {
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
}

impl Searcher {
    /// The sequence number this snapshot reflects.
    pub fn seq(&self) -> Seq {
        self.snapshot.seq
    }

    /// Top `k` chunks by cosine similarity to `vector` (approximate, HNSW with the collection's
    /// `ef_search`), restricted by `filter`. `k` above [`MAX_K`] is clamped.
    pub fn search_dense(
        &self,
        vector: &[f32],
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<ScoredChunk>> {
        self.search_dense_with_ef(vector, k, self.shared.config.hnsw.ef_search, filter)
    }

    /// [`Self::search_dense`] with an explicit `ef` (raised to `k` if smaller).
    pub fn search_dense_with_ef(
        &self,
        vector: &[f32],
        k: usize,
        ef: usize,
        filter: &Filter,
    ) -> Result<Vec<ScoredChunk>> {
        let k = clamp_k(k)?;
        let query = normalise(vector, self.shared.config.dimension)?;
        if filter.is_empty() {
            return Ok(self.snapshot.dense.search(&query, k, ef, None));
        }
        let allowed = self
            .shared
            .sparse
            .matching_chunks(&self.snapshot.bm25, filter)?;
        let live = self.snapshot.dense.live() as usize;
        if allowed.len() <= EXACT_FILTER_MAX || allowed.len() * 20 < live {
            return self.exact_dense(&query, k, &allowed);
        }
        Ok(self.snapshot.dense.search(&query, k, ef, Some(&allowed)))
    }

    /// Exact top `k` among `allowed` by brute force over their stored vectors.
    fn exact_dense(
        &self,
        query: &[f32],
        k: usize,
        allowed: &HashSet<u64>,
    ) -> Result<Vec<ScoredChunk>> {
        let mut hits = Vec::with_capacity(allowed.len());
        for &id in allowed {
            let id = ChunkId(id);
            let meta = &self.shared.meta;
            // `allowed` comes from this snapshot: a chunk removed since is read retired.
            let vector = match meta.get_vector(id)? {
                Some(v) => Some(v),
                None => meta.get_retired_vector(id)?,
            };
            if let Some(v) = vector {
                hits.push(ScoredChunk {
                    id,
                    score: cosine(query, &v),
                });
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        hits.truncate(k);
        Ok(hits)
    }

    /// Top `k` chunks by BM25 over title and text, restricted by `filter`. A query without any
    /// searchable term (empty, blank, only stop words) is [`IndexError::EmptyQuery`]. `k` above
    /// [`MAX_K`] is clamped.
    pub fn search_bm25(&self, query: &str, k: usize, filter: &Filter) -> Result<Vec<ScoredChunk>> {
        let k = clamp_k(k)?;
        self.shared
            .sparse
            .search(&self.snapshot.bm25, query, k, filter)
    }

    /// The distinct terms of `text` by the collection's BM25 analyzer, in first-seen order.
    pub fn analyze(&self, text: &str) -> Result<Vec<String>> {
        self.shared.sparse.analyze(text)
    }

    /// The distinct terms of `text` (the collection's BM25 analyzer) with their inverse
    /// document frequency in this snapshot, as BM25 weighs them: how much finding each term
    /// says about a chunk.
    pub fn term_idf(&self, text: &str) -> Result<Vec<(String, f32)>> {
        self.shared.sparse.idf(&self.snapshot.bm25, text)
    }

    /// Loads the records of `ids`, in order: live ones, or as they were when a later write
    /// removed them (while a snapshot that can return them is held); `None` for ids this
    /// snapshot never held.
    pub fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<ChunkRecord>>> {
        ids.iter().map(|&id| self.get_chunk(id)).collect()
    }

    fn get_chunk(&self, id: ChunkId) -> Result<Option<ChunkRecord>> {
        let meta = &self.shared.meta;
        let Some(chunk) = meta.get_chunk(id)? else {
            let held = |r: &crate::meta::RetiredChunk| r.removed_at > self.snapshot.seq;
            return Ok(meta.get_retired(id)?.filter(held).map(|r| ChunkRecord {
                id,
                doc_id: r.chunk.doc_id,
                ordinal: r.chunk.ordinal,
                title: r.title,
                text: r.chunk.text,
                span_start: r.chunk.span_start,
                span_end: r.chunk.span_end,
                heading_path: r.chunk.heading_path,
                metadata: r.metadata,
            }));
        };
        let Some(doc) = meta.get_doc(&chunk.doc_id)? else {
            return Ok(None);
        };
        Ok(Some(ChunkRecord {
            id,
            doc_id: chunk.doc_id,
            ordinal: chunk.ordinal,
            title: doc.title,
            text: chunk.text,
            span_start: chunk.span_start,
            span_end: chunk.span_end,
            heading_path: chunk.heading_path,
            metadata: doc.metadata,
        }))
    }

    /// Every stored chunk vector (normalised, as the dense index holds it), by chunk id: read
    /// from the meta store, so it includes writes not yet committed.
    pub fn dense_vectors(&self) -> Result<Vec<(ChunkId, Vec<f32>)>> {
        self.shared.meta.live_vectors().collect()
    }

    /// The stored vector of chunk `id` (normalised, as the dense index holds it), if the chunk
    /// exists: lets a check ask the dense index for exactly what it was given.
    pub fn get_vector(&self, id: ChunkId) -> Result<Option<Vec<f32>>> {
        self.shared.meta.get_vector(id)
    }

    /// The stored document `id`, if any.
    pub fn get_document(&self, id: &str) -> Result<Option<DocumentInfo>> {
        self.shared.meta.document_info(id)
    }

    /// Counts per store.
    pub fn stats(&self) -> Result<Stats> {
        let meta = &self.shared.meta;
        Ok(Stats {
            documents: meta.doc_count()?,
            meta_chunks: meta.chunk_count()?,
            bm25_chunks: self.snapshot.bm25.num_docs(),
            dense_chunks: self.snapshot.dense.live(),
            dense_points: self.snapshot.dense.graph().len() as u64,
            dense_frozen: self.snapshot.dense.is_frozen(),
            last_seq: meta.last_seq()?,
            snapshot_seq: self.snapshot.seq,
            retired_chunks: meta.retired_count() as u64,
        })
    }
}
