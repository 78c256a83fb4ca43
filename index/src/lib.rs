//! ragd index: stores and searches chunks. It knows nothing of chunking, models or protobuf.
//!
//! A [`Store`] is a directory of named [`Collection`]s (knowledge bases). Each collection keeps
//! three stores that always describe the same set of chunks:
//!
//! * the **meta store** ([`meta`], sled): documents, chunks, vectors and a `seq -> op` log. It is the
//!   source of truth; a write is acknowledged only after sled has flushed it to disk;
//! * the **sparse index** ([`sparse`], tantivy): BM25 over chunk text and document title;
//! * the **dense index** ([`dense`], hnsw_rs): cosine similarity on normalised vectors.
//!
//! Writes go through the single [`IndexWriter`] of a collection (clones share it, calls are
//! serialized). [`IndexWriter::commit`] makes everything written so far visible, atomically, to
//! new [`Searcher`]s; an [`IndexReader`] hands out searchers (consistent snapshots) without ever
//! waiting on the writer. On open, whatever tantivy or the HNSW dump lack relative to sled is
//! replayed from the op log (see [`Collection`] and `recovery`).
//!
//! ```
//! use std::collections::BTreeMap;
//! use ragd_index::{ChunkInput, Collection, CollectionConfig, DocumentRecord, Filter};
//!
//! # fn main() -> ragd_index::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let config = CollectionConfig::new("docs", "test-embedder", 3);
//! let collection = Collection::create(&dir.path().join("docs"), config)?;
//! let writer = collection.writer();
//! writer.upsert_document(DocumentRecord {
//!     id: "a".into(),
//!     title: "Cats".into(),
//!     metadata: BTreeMap::new(),
//!     content_hash: "h1".into(),
//!     indexed_with: String::new(),
//!     chunks: vec![ChunkInput::new("cats purr loudly", 0, 16, vec![1.0, 0.0, 0.0])],
//! })?;
//! writer.commit()?;
//! let searcher = collection.reader().searcher();
//! let hits = searcher.search_bm25("cat", 5, &Filter::default())?;
//! assert_eq!(hits.len(), 1);
//! let dense = searcher.search_dense(&[0.9, 0.1, 0.0], 5, &Filter::default())?;
//! assert_eq!(dense[0].id, hits[0].id);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

use std::path::PathBuf;

mod archive;
pub mod backend;
mod collection;
pub mod config;
pub mod dense;
mod durable;
pub mod fusion;
pub mod meta;
pub mod reader;
mod recovery;
mod reindex;
mod retire;
pub mod sparse;
pub mod sparse_vectors;
mod store;
mod summary;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;
pub mod vecfile;
pub mod writer;

pub use archive::{
    list_snapshots, read_snapshot_info, ArchivedFile, SnapshotFile, SnapshotInfo, SNAPSHOT_FORMAT,
    SNAPSHOT_SUFFIX,
};
pub use backend::{ChunkSource, DocumentSink};
pub use collection::Collection;
pub use config::{
    Bm25Analyzer, Bm25Config, CollectionConfig, Distance, HnswConfig, IndexManifest,
    MaintenanceConfig,
};
pub use reader::{IndexReader, Searcher};
pub use reindex::{Reembed, ReindexProgress, ReindexReport, ReindexTarget};
pub use store::Store;
pub use summary::{CollectionSummary, Counts};
pub use types::{
    ChunkId, ChunkInput, ChunkRecord, DocumentInfo, DocumentRecord, Filter, ScoredChunk, Seq,
    Stats, UpsertOutcome, MAX_K,
};
pub use writer::IndexWriter;

/// Errors of the index crate. Variants say whose fault they are: the caller's (bad input) or ours
/// (I/O, corruption, a failing store).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A collection name broke the naming rules (caller's fault): see
    /// [`config::validate_collection_name`].
    #[error("invalid collection name {name:?}: {reason}")]
    InvalidCollectionName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// The named collection does not exist in the store (caller's fault).
    #[error("collection {name:?} not found")]
    CollectionNotFound {
        /// The requested name.
        name: String,
    },
    /// `create` was asked for a collection that already exists (caller's fault).
    #[error("collection {name:?} already exists")]
    CollectionExists {
        /// The existing collection's name.
        name: String,
    },
    /// The collection cannot be deleted while a write holds its writer (an ingestion in
    /// progress: wait for it or cancel it, and retry). Searches do not hold it up.
    #[error("collection {name:?} is in use by a write in progress")]
    CollectionInUse {
        /// The collection's name.
        name: String,
    },
    /// `create` was asked for the name of a deleted collection whose folder searches that
    /// started before the deletion still hold (transient: retry once they finish).
    #[error(
        "collection {name:?} is still being deleted (searches begun before hold it); retry shortly"
    )]
    CollectionBeingDeleted {
        /// The collection's name.
        name: String,
    },
    /// Opening a collection with a configuration that contradicts its persisted manifest, e.g. a
    /// different embedding model or dimension (caller's fault; nothing is changed on disk).
    #[error("manifest mismatch on {field}: stored {stored}, requested {requested}")]
    ManifestMismatch {
        /// The manifest field that differs.
        field: &'static str,
        /// The value persisted with the collection.
        stored: String,
        /// The value the caller asked for.
        requested: String,
    },
    /// A collection is used with another embedder than the one its vectors were made with
    /// (caller's fault; nothing is changed): its queries would not be comparable.
    #[error(
        "collection {collection:?} was made with the embedder [{stored}], and this one is \
         [{requested}]: re-embed it with this one (`ragd collections reindex {collection}`; \
         searches go on meanwhile), or configure the embedder it was made with \
         (embedder.model, embedder.precision)"
    )]
    EmbedderMismatch {
        /// The collection.
        collection: String,
        /// The fingerprint it was made with.
        stored: String,
        /// The fingerprint of the embedder in use.
        requested: String,
    },
    /// A write waited on a collection that a reindex replaced meanwhile (transient: retry it;
    /// the name now holds the new generation).
    #[error("collection {name:?} was reindexed while this write waited; retry it")]
    Reindexed {
        /// The collection's name.
        name: String,
    },
    /// A reindex was asked for a collection that is being reindexed already.
    #[error("collection {name:?} is being reindexed already")]
    ReindexRunning {
        /// The collection's name.
        name: String,
    },
    /// A vector (chunk or query) has the wrong number of components (caller's fault).
    #[error("vector dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch {
        /// The collection's dimension.
        expected: usize,
        /// The length of the rejected vector.
        got: usize,
    },
    /// A vector contains NaN or an infinity at `position` (caller's fault).
    #[error("vector has a non-finite component at position {position}")]
    NonFiniteVector {
        /// Index of the first bad component.
        position: usize,
    },
    /// A vector has zero norm and so no direction for cosine similarity (caller's fault).
    #[error("vector has zero norm")]
    ZeroVector,
    /// A document id is empty (caller's fault).
    #[error("document id must not be empty")]
    EmptyDocumentId,
    /// A chunk's span has `start > end` (caller's fault).
    #[error("invalid chunk span {start}..{end}")]
    InvalidSpan {
        /// Span start (char offset).
        start: usize,
        /// Span end (char offset).
        end: usize,
    },
    /// A BM25 query has no searchable term after analysis: empty, blank or only stop words
    /// (caller's fault).
    #[error("query has no searchable terms")]
    EmptyQuery,
    /// A search asked for `k = 0` results (caller's fault). Huge `k` is clamped to [`MAX_K`].
    #[error("k must be at least 1")]
    ZeroK,
    /// A file-system operation failed (ours or the environment's).
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A snapshot archive cannot be restored: truncated, altered, not a ragd snapshot or of
    /// another format (the archive's fault, not the store's; nothing was restored).
    #[error("snapshot {path}: {reason}")]
    BadSnapshot {
        /// The archive.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The sled meta store failed (ours or the environment's).
    #[error("meta store error: {0}")]
    Meta(#[from] sled::Error),
    /// tantivy failed (ours or the environment's).
    #[error("bm25 index error: {0}")]
    Bm25(#[from] tantivy::TantivyError),
    /// hnsw_rs failed to dump or load a graph (ours or the environment's).
    #[error("dense index error: {reason}")]
    Dense {
        /// What hnsw_rs reported.
        reason: String,
    },
    /// A persisted record could not be decoded: the data on disk is damaged (not the caller's
    /// fault).
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// Which record or file.
        what: String,
        /// Why it could not be decoded.
        reason: String,
    },
    /// An earlier write was made durable in sled but could not be applied to tantivy or the
    /// HNSW; the writer refuses further work until the collection is reopened (which replays it).
    #[error("writer needs recovery: reopen the collection")]
    NeedsRecovery,
    /// A remote index (the service's Qdrant backend) did not answer: transient, retry.
    #[error("the index is unavailable: {reason}")]
    Unavailable {
        /// Which nodes failed, and how.
        reason: String,
    },
    /// A remote index answered with an error ragd did not expect (ours or the cluster's).
    #[error("the remote index failed: {reason}")]
    Remote {
        /// What it said.
        reason: String,
    },
    /// A remote index holds something that cannot be used as asked: a collection made with
    /// another embedder or dimension, or one ragd did not make.
    #[error("{reason}")]
    Incompatible {
        /// What, and what to do about it.
        reason: String,
    },
    /// A background HNSW compaction found its collection closed before it could read it.
    #[error("the HNSW compaction was abandoned: the collection was closed")]
    CompactionAbandoned,
}

impl IndexError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A damaged persisted record.
    pub fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// An hnsw_rs failure.
    pub fn dense(reason: impl ToString) -> Self {
        Self::Dense {
            reason: reason.to_string(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;
