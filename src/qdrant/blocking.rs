//! A Qdrant collection behind the index crate's synchronous seam ([`ChunkSource`],
//! [`DocumentSink`]), for the retriever and the ingestion pipeline, which run on blocking
//! threads: each call runs on the tokio runtime of `handle` and waits for it. Never call these
//! from inside an async task (tokio forbids blocking on a runtime from its own workers).

use std::sync::Arc;

use index::{
    ChunkId, ChunkRecord, ChunkSource, DocumentInfo, DocumentRecord, DocumentSink, Filter,
    IndexError, ScoredChunk, UpsertOutcome,
};
use tokio::runtime::Handle;

use super::collection::QdrantCollection;
use super::error::QdrantError;

impl From<QdrantError> for IndexError {
    fn from(e: QdrantError) -> Self {
        match e {
            QdrantError::Index(e) => e,
            QdrantError::Unavailable(reason) => IndexError::Unavailable { reason },
            QdrantError::FailedPrecondition(reason) => IndexError::Incompatible { reason },
            other @ (QdrantError::Unauthenticated(_)
            | QdrantError::Missing(_)
            | QdrantError::Settings(_)
            | QdrantError::Internal(_)) => IndexError::Remote {
                reason: other.to_string(),
            },
        }
    }
}

/// Waits on `handle`'s runtime for `call`, its error in the index crate's terms. Never call it
/// from inside an async task (tokio forbids blocking on a runtime from its own workers).
pub fn wait_on<T>(
    handle: &Handle,
    call: impl std::future::Future<Output = super::error::Result<T>>,
) -> index::Result<T> {
    handle.block_on(call).map_err(IndexError::from)
}

/// A Qdrant collection used synchronously.
#[derive(Debug, Clone)]
pub struct Blocking {
    collection: Arc<QdrantCollection>,
    handle: Handle,
}

impl Blocking {
    /// `collection`, its calls run on `handle`'s runtime.
    pub fn new(collection: Arc<QdrantCollection>, handle: Handle) -> Self {
        Self { collection, handle }
    }

    /// The collection.
    pub fn collection(&self) -> &Arc<QdrantCollection> {
        &self.collection
    }

    /// Deletes documents `ids` (those stored; the rest are no-ops); returns how many points
    /// went.
    pub fn delete_documents(&self, ids: &[String]) -> index::Result<u64> {
        self.wait(self.collection.delete_documents(ids))
    }

    /// Calls `f` with each stored document's id and metadata, a page at a time.
    pub fn for_each_document(
        &self,
        f: &mut dyn FnMut(&str, &std::collections::BTreeMap<String, String>),
    ) -> index::Result<()> {
        let mut offset = None;
        loop {
            let (documents, next) = self.wait(self.collection.documents_page(offset))?;
            for (id, metadata) in &documents {
                f(id, metadata);
            }
            match next {
                Some(next) => offset = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Documents and chunks stored (exact counts).
    pub fn counts(&self) -> index::Result<(u64, u64)> {
        self.wait(self.collection.counts())
    }

    fn wait<T>(
        &self,
        call: impl std::future::Future<Output = super::error::Result<T>>,
    ) -> index::Result<T> {
        wait_on(&self.handle, call)
    }
}

impl ChunkSource for Blocking {
    fn search_dense(
        &self,
        vector: &[f32],
        k: usize,
        filter: &Filter,
    ) -> index::Result<Vec<ScoredChunk>> {
        self.wait(self.collection.search_dense(vector, k, filter))
    }

    fn search_bm25(
        &self,
        query: &str,
        k: usize,
        filter: &Filter,
    ) -> index::Result<Vec<ScoredChunk>> {
        self.wait(self.collection.search_bm25(query, k, filter))
    }

    fn get_chunks(&self, ids: &[ChunkId]) -> index::Result<Vec<Option<ChunkRecord>>> {
        self.wait(self.collection.get_chunks(ids))
    }

    fn analyze(&self, text: &str) -> index::Result<Vec<String>> {
        Ok(self.collection.analyze(text))
    }

    fn term_idf(&self, text: &str) -> index::Result<Vec<(String, f32)>> {
        self.wait(self.collection.term_idf(text))
    }

    fn batches_legs(&self) -> bool {
        true
    }

    /// A deletion may land between a search and the chunks' read.
    fn reads_one_snapshot(&self) -> bool {
        false
    }

    fn search_both(
        &self,
        vector: &[f32],
        query: &str,
        k_dense: usize,
        k_sparse: usize,
        filter: &Filter,
    ) -> index::Result<(Vec<ScoredChunk>, Vec<ScoredChunk>)> {
        self.wait(
            self.collection
                .search_both(vector, query, k_dense, k_sparse, filter),
        )
    }
}

impl DocumentSink for Blocking {
    fn stored_documents(&self, ids: &[&str]) -> index::Result<Vec<Option<DocumentInfo>>> {
        self.wait(self.collection.get_documents(ids))
    }

    fn upsert_documents(&self, docs: Vec<DocumentRecord>) -> index::Result<Vec<UpsertOutcome>> {
        self.wait(self.collection.upsert_documents(&docs))
    }

    /// Nothing to do: Qdrant searches see a write once it is acknowledged.
    fn publish(&self) -> index::Result<()> {
        Ok(())
    }
}
