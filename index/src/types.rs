//! Ids and records shared by every store: what callers write ([`DocumentRecord`],
//! [`ChunkInput`]), what searches return ([`ScoredChunk`]) and what is loaded for results
//! ([`ChunkRecord`], [`DocumentInfo`]).
//!
//! **Chunk ids** are `u64`s drawn from a per-collection counter that only grows, in the order
//! writes are sequenced. An id is never reused: re-ingesting a changed document gives its chunks
//! new ids, so an id names one immutable chunk for its whole life. The same number is the
//! tantivy `chunk_id` term and the hnsw_rs `DataId`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Sequence number of a write. Every acknowledged write (upsert that changed something, delete)
/// gets the next one; `0` means "nothing written yet".
pub type Seq = u64;

/// Largest `k` a search honours; larger values are clamped to it (documented, not an error).
pub const MAX_K: usize = 10_000;

/// Stable identifier of a chunk (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChunkId(pub u64);

/// One chunk of a document as given by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkInput {
    /// The chunk's text (indexed by BM25).
    pub text: String,
    /// Start of the chunk in the document, in chars.
    pub span_start: usize,
    /// End (exclusive) of the chunk in the document, in chars.
    pub span_end: usize,
    /// Headings enclosing the chunk, outermost first.
    pub heading_path: Vec<String>,
    /// The chunk's embedding; must have the collection's dimension, be finite and non-zero.
    pub vector: Vec<f32>,
}

impl ChunkInput {
    /// A chunk without heading path.
    pub fn new(
        text: impl Into<String>,
        span_start: usize,
        span_end: usize,
        vector: Vec<f32>,
    ) -> Self {
        Self {
            text: text.into(),
            span_start,
            span_end,
            heading_path: Vec::new(),
            vector,
        }
    }
}

/// A document to upsert, with all its chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRecord {
    /// Caller-chosen document id; non-empty.
    pub id: String,
    /// Title (indexed by BM25 alongside each chunk).
    pub title: String,
    /// Metadata; searches can filter on `key = value`.
    pub metadata: BTreeMap<String, String>,
    /// Hash of the document content; an upsert with an unchanged hash and an unchanged
    /// [`Self::indexed_with`] is a no-op.
    pub content_hash: String,
    /// How the chunks and vectors were made (chunker and embedder settings; any string the
    /// caller chooses, empty when it does not say): re-chunking or re-embedding the same content
    /// another way is a change.
    pub indexed_with: String,
    /// The chunks, in document order.
    pub chunks: Vec<ChunkInput>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// The document id was new.
    Added,
    /// The document existed with another content hash; its chunks were replaced.
    Updated,
    /// The document existed with the same content hash; nothing was written.
    Unchanged,
}

/// A search hit: a chunk id and its score (higher is better; cosine similarity for dense
/// search, BM25 for sparse search).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredChunk {
    /// The chunk.
    pub id: ChunkId,
    /// Its score.
    pub score: f32,
}

/// A stored chunk, loaded for a search result.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRecord {
    /// The chunk id.
    pub id: ChunkId,
    /// The owning document.
    pub doc_id: String,
    /// Position of the chunk in its document (0-based).
    pub ordinal: u32,
    /// The owning document's title.
    pub title: String,
    /// The chunk text.
    pub text: String,
    /// Start of the chunk in the document, in chars.
    pub span_start: usize,
    /// End (exclusive) of the chunk in the document, in chars.
    pub span_end: usize,
    /// Enclosing headings, outermost first.
    pub heading_path: Vec<String>,
    /// The owning document's metadata.
    pub metadata: BTreeMap<String, String>,
}

/// A stored document (without chunk texts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentInfo {
    /// The document id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Content hash given at the last changing upsert.
    pub content_hash: String,
    /// [`DocumentRecord::indexed_with`] of that upsert (empty for documents stored before the
    /// field existed).
    pub indexed_with: String,
    /// Its chunks, in document order.
    pub chunk_ids: Vec<ChunkId>,
    /// Sequence number of the write that stored this version.
    pub seq: Seq,
}

/// A conjunction of metadata `key = value` conditions; the default filter matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Every pair must be present in the document's metadata.
    pub must: Vec<(String, String)>,
}

impl Filter {
    /// Adds the condition `metadata[key] == value`.
    pub fn eq(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.must.push((key.into(), value.into()));
        self
    }

    /// True when the filter has no condition.
    pub fn is_empty(&self) -> bool {
        self.must.is_empty()
    }

    /// True when `metadata` satisfies every condition.
    pub fn matches(&self, metadata: &BTreeMap<String, String>) -> bool {
        self.must
            .iter()
            .all(|(k, v)| metadata.get(k).is_some_and(|m| m == v))
    }
}

/// Counts per store. After a commit (and after every open) the three chunk counts are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Documents in the meta store.
    pub documents: u64,
    /// Chunks in the meta store (the source of truth, includes uncommitted writes).
    pub meta_chunks: u64,
    /// Chunks visible to BM25 search in this snapshot.
    pub bm25_chunks: u64,
    /// Chunks visible to dense search in this snapshot.
    pub dense_chunks: u64,
    /// Points in this snapshot's HNSW graph, deleted (tombstoned) ones included: a compaction
    /// brings it back to `dense_chunks`.
    pub dense_points: u64,
    /// Dense searches of this snapshot run on the frozen search copy (false until the
    /// background freeze after a commit has caught up: they then search the hnsw_rs graph).
    pub dense_frozen: bool,
    /// Last sequence number written to the meta store.
    pub last_seq: Seq,
    /// Sequence number this snapshot reflects.
    pub snapshot_seq: Seq,
    /// Records of removed chunks kept for snapshots that still return them (purged at the
    /// first commit after the last such snapshot is dropped).
    pub retired_chunks: u64,
}
