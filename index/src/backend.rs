//! The seam between the service and an index: what retrieval reads ([`ChunkSource`]) and what
//! ingestion writes ([`DocumentSink`]). The embedded index (a [`Searcher`] snapshot and a
//! [`Collection`]) implements both; so does the service's Qdrant backend, whose calls cross the
//! network (errors [`IndexError::Unavailable`] and [`IndexError::Remote`]).
//!
//! Both traits are synchronous: the service calls them from its blocking threads, and this
//! crate knows no async runtime.

use crate::reader::Searcher;
use crate::types::{ChunkId, ChunkRecord, DocumentInfo, DocumentRecord, Filter, ScoredChunk};
use crate::{Collection, IndexError, Result, UpsertOutcome};

/// What a retrieval reads: both legs' rankings and the chunks they name.
pub trait ChunkSource: Send + Sync {
    /// Top `k` chunks by cosine similarity to `vector`, restricted by `filter`.
    fn search_dense(&self, vector: &[f32], k: usize, filter: &Filter) -> Result<Vec<ScoredChunk>>;

    /// Top `k` chunks by BM25 for `query`, restricted by `filter`;
    /// [`IndexError::EmptyQuery`] when the query has no searchable term.
    fn search_bm25(&self, query: &str, k: usize, filter: &Filter) -> Result<Vec<ScoredChunk>>;

    /// The chunks `ids`, in order (`None` for one not stored).
    fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<ChunkRecord>>>;

    /// The distinct terms of `text`, in order, as the collection's BM25 analyzer makes them.
    fn analyze(&self, text: &str) -> Result<Vec<String>>;

    /// The distinct terms of `text` (as [`Self::analyze`] makes them) with the inverse
    /// document frequency BM25 weighs each by in this index: how much finding the term says
    /// about a chunk.
    fn term_idf(&self, text: &str) -> Result<Vec<(String, f32)>>;

    /// Whether searches and [`Self::get_chunks`] read one consistent snapshot (the embedded
    /// index), so that every hit has its record; a remote index may lose a chunk to a deletion
    /// between the two calls.
    fn reads_one_snapshot(&self) -> bool {
        true
    }

    /// Whether [`Self::search_both`] is one call (a remote index) rather than two local
    /// searches that are better run in parallel with the query's embedding.
    fn batches_legs(&self) -> bool {
        false
    }

    /// Both legs at once: dense for `vector` (top `k_dense`) and BM25 for `query` (top
    /// `k_sparse`, empty when the query has no searchable term).
    fn search_both(
        &self,
        vector: &[f32],
        query: &str,
        k_dense: usize,
        k_sparse: usize,
        filter: &Filter,
    ) -> Result<(Vec<ScoredChunk>, Vec<ScoredChunk>)> {
        let dense = self.search_dense(vector, k_dense, filter)?;
        let sparse = match self.search_bm25(query, k_sparse, filter) {
            Ok(hits) => hits,
            Err(IndexError::EmptyQuery) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok((dense, sparse))
    }
}

impl ChunkSource for Searcher {
    fn search_dense(&self, vector: &[f32], k: usize, filter: &Filter) -> Result<Vec<ScoredChunk>> {
        Searcher::search_dense(self, vector, k, filter)
    }

    fn search_bm25(&self, query: &str, k: usize, filter: &Filter) -> Result<Vec<ScoredChunk>> {
        Searcher::search_bm25(self, query, k, filter)
    }

    fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<ChunkRecord>>> {
        Searcher::get_chunks(self, ids)
    }

    fn analyze(&self, text: &str) -> Result<Vec<String>> {
        Searcher::analyze(self, text)
    }

    fn term_idf(&self, text: &str) -> Result<Vec<(String, f32)>> {
        Searcher::term_idf(self, text)
    }
}

/// What ingestion writes: documents, each with all its chunks and vectors.
pub trait DocumentSink: Send + Sync {
    /// Documents `ids` as stored, in order (`None` for one not stored), to skip those whose
    /// content has not changed: every acknowledged write counts, published or not. One call
    /// for the lot, so that a remote index answers a batch in one round trip.
    fn stored_documents(&self, ids: &[&str]) -> Result<Vec<Option<DocumentInfo>>>;

    /// Writes `docs` (an unchanged content hash and `indexed_with` write nothing); returns what
    /// happened to each, in order. Acknowledged writes are durable; [`Self::publish`] makes
    /// them visible to searches where the backend needs that.
    fn upsert_documents(&self, docs: Vec<DocumentRecord>) -> Result<Vec<UpsertOutcome>>;

    /// Makes everything written so far visible to new searches.
    fn publish(&self) -> Result<()>;
}

impl DocumentSink for Collection {
    fn stored_documents(&self, ids: &[&str]) -> Result<Vec<Option<DocumentInfo>>> {
        let searcher = self.reader().searcher();
        ids.iter().map(|id| searcher.get_document(id)).collect()
    }

    fn upsert_documents(&self, docs: Vec<DocumentRecord>) -> Result<Vec<UpsertOutcome>> {
        self.writer().upsert_documents(docs)
    }

    fn publish(&self) -> Result<()> {
        self.writer().commit().map(|_| ())
    }
}

impl<T: DocumentSink + ?Sized> DocumentSink for std::sync::Arc<T> {
    fn stored_documents(&self, ids: &[&str]) -> Result<Vec<Option<DocumentInfo>>> {
        (**self).stored_documents(ids)
    }

    fn upsert_documents(&self, docs: Vec<DocumentRecord>) -> Result<Vec<UpsertOutcome>> {
        (**self).upsert_documents(docs)
    }

    fn publish(&self) -> Result<()> {
        (**self).publish()
    }
}
