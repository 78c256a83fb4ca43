//! The ingestion pipeline shared by `ragd ingest`, `ragd eval` and (later) bulk jobs:
//! documents → chunks → embeddings in batches → one upsert per batch into a
//! [`DocumentSink`] (an embedded collection, or a Qdrant one).
//!
//! Documents whose content hash is already stored, chunked and embedded the same way
//! ([`indexed_with`]), are skipped before chunking and embedding, so re-ingesting an unchanged
//! corpus costs one lookup per document and indexes nothing twice, while the same corpus
//! ingested with another chunker is re-chunked.

use std::sync::Arc;

use index::{ChunkInput, Collection, DocumentInfo, DocumentRecord, DocumentSink, UpsertOutcome};
use ingest::{chunk_document, Chunk, Chunker, ChunkingStrategy, Document, Embedder};

use crate::collections::check_embedder_config;
use crate::error::{Result, ServiceError};

/// Counts of one ingestion run.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestSummary {
    /// New documents.
    pub added: usize,
    /// Documents whose content changed and were replaced.
    pub updated: usize,
    /// Documents already stored with the same content hash, made the same way.
    pub unchanged: usize,
    /// Documents that could not be chunked or embedded (each reported in `errors`).
    pub failed: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Documents deleted by a sync (their files are gone).
    pub deleted: usize,
    /// Per-document errors: (document id, message).
    pub errors: Vec<(String, String)>,
}

/// What the pipeline needs: the chunker and the embedder.
pub struct Pipeline {
    /// Splits documents.
    pub chunker: Box<dyn Chunker>,
    /// Embeds chunks.
    pub embedder: Arc<dyn Embedder>,
    /// Chunks embedded together (several documents' worth when they are short).
    pub embed_batch: usize,
    /// Documents with more bytes of text than this are reported as failed, not indexed.
    pub max_document_bytes: usize,
    /// How this pipeline makes chunks and vectors ([`indexed_with`]), stored with each
    /// document: the same content ingested another way is re-indexed, not skipped.
    pub indexed_with: String,
}

/// Chunks embedded together by default.
pub const EMBED_BATCH: usize = 64;

/// Documents per committed batch when a stream of files is ingested locally (`ragd ingest`,
/// `ragd eval`): memory holds one batch, and each commit makes its documents durable.
pub const STREAM_BATCH_DOCUMENTS: usize = 256;

/// Bytes of text per committed batch when a stream is ingested locally.
pub const STREAM_BATCH_TEXT_BYTES: usize = 8 << 20;

/// The settings that shape a document's chunks and vectors: the chunking strategy with all its
/// parameters and the embedder (model, dimension, token limit), as one readable line.
pub fn indexed_with(chunking: &ChunkingStrategy, embedder: &dyn Embedder) -> String {
    let chunking = serde_json::to_string(chunking).unwrap_or_else(|_| format!("{chunking:?}"));
    format!("chunking={chunking}{}", embedder_part(embedder))
}

/// The embedder's part of [`indexed_with`] (a reindex replaces it, see `crate::reindex`).
pub fn embedder_part(embedder: &dyn Embedder) -> String {
    format!(
        " embedder={}/{}d/{}t",
        embedder.model_id(),
        embedder.dimension(),
        embedder.max_content_tokens()
    )
}

impl Pipeline {
    /// A pipeline chunking with `chunking` and embedding with `embedder`, [`EMBED_BATCH`] chunks
    /// at a time; documents over `max_document_bytes` of text fail. Fails on invalid chunker
    /// parameters.
    pub fn new(
        chunking: &ChunkingStrategy,
        embedder: Arc<dyn Embedder>,
        max_document_bytes: usize,
    ) -> Result<Self> {
        Ok(Self {
            chunker: chunking.build(embedder.clone())?,
            indexed_with: indexed_with(chunking, embedder.as_ref()),
            embedder,
            embed_batch: EMBED_BATCH,
            max_document_bytes,
        })
    }

    /// Ingests everything `items` yields into `collection`, one committed batch at a time (at
    /// most [`STREAM_BATCH_DOCUMENTS`] documents and [`STREAM_BATCH_TEXT_BYTES`] of text), so
    /// memory stays flat however large the input. Files and lines that do not load count as
    /// failed; `progress` gets each batch's input bytes and the counts so far, and `skipped`
    /// each entry skipped unread.
    pub fn ingest_stream(
        &self,
        collection: &dyn DocumentSink,
        items: impl Iterator<Item = ingest::Loaded>,
        mut progress: impl FnMut(u64, &IngestSummary),
        mut skipped: impl FnMut(ingest::SkipReason),
    ) -> Result<IngestSummary> {
        let mut total = IngestSummary::default();
        for batch in ingest::batches(items, STREAM_BATCH_DOCUMENTS, STREAM_BATCH_TEXT_BYTES) {
            batch.skipped.iter().for_each(|&r| skipped(r));
            total.merge(self.ingest_batch(collection, &batch)?);
            progress(batch.input_bytes, &total);
        }
        Ok(total)
    }

    /// Ingests one batch of a loader stream and commits: its documents, plus its files and
    /// lines that did not load, counted as failed.
    pub fn ingest_batch(
        &self,
        collection: &dyn DocumentSink,
        batch: &ingest::Batch,
    ) -> Result<IngestSummary> {
        let mut summary = if batch.documents.is_empty() {
            IngestSummary::default()
        } else {
            self.ingest(collection, &batch.documents, |_, _| {})?
        };
        batch.errors.iter().for_each(|e| summary.fail_input(e));
        Ok(summary)
    }

    /// Ingests `docs` into `collection` and commits; `progress` is called after each group of
    /// documents with (documents done, chunks written so far). Chunks of several documents are
    /// embedded together, so short documents still fill the embedder's batches.
    pub fn ingest(
        &self,
        collection: &dyn DocumentSink,
        docs: &[Document],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<IngestSummary> {
        let mut summary = IngestSummary::default();
        let mut pending: Vec<(&Document, Vec<Chunk>)> = Vec::new();
        let mut pending_chunks = 0;
        let ids: Vec<&str> = docs.iter().map(|d| d.id().as_str()).collect();
        let stored_docs = collection.stored_documents(&ids)?;
        for (i, (doc, stored)) in docs.iter().zip(stored_docs).enumerate() {
            if doc.text().len() > self.max_document_bytes {
                let why = format!(
                    "the document has {} bytes of text, over the limit of {} \
                     (server.max_document_bytes)",
                    doc.text().len(),
                    self.max_document_bytes
                );
                summary.fail(doc, &why);
            } else if stored.is_some_and(|d| self.unchanged(&d, doc)) {
                summary.unchanged += 1;
            } else {
                match chunk_document(doc, self.chunker.as_ref()) {
                    Ok(chunks) => {
                        pending_chunks += chunks.len();
                        pending.push((doc, chunks));
                    }
                    Err(e) => summary.fail(doc, &e),
                }
            }
            if pending_chunks >= self.embed_batch || i + 1 == docs.len() {
                self.flush(collection, std::mem::take(&mut pending), &mut summary)?;
                pending_chunks = 0;
                progress(i + 1, summary.chunks);
            }
        }
        collection.publish()?;
        Ok(summary)
    }

    /// Whether `doc` is stored as `stored` already: same content, made the same way. A document
    /// stored before `indexed_with` was recorded (empty) counts as made this way, so upgrading
    /// ragd does not re-embed a whole collection.
    fn unchanged(&self, stored: &DocumentInfo, doc: &Document) -> bool {
        stored.content_hash == doc.content_hash()
            && (stored.indexed_with == self.indexed_with || stored.indexed_with.is_empty())
    }

    /// Embeds the chunks of `group` together and upserts the documents in one write.
    fn flush(
        &self,
        sink: &dyn DocumentSink,
        group: Vec<(&Document, Vec<Chunk>)>,
        summary: &mut IngestSummary,
    ) -> Result<()> {
        let texts: Vec<&str> = group
            .iter()
            .flat_map(|(_, cs)| cs.iter().map(|c| c.text.as_str()))
            .collect();
        let vectors = self.embedder.embed(&texts)?;
        if vectors.len() != texts.len() {
            // Never store a document with some of its chunks silently missing.
            return Err(ServiceError::Internal(format!(
                "the embedder returned {} vectors for {} chunks",
                vectors.len(),
                texts.len()
            )));
        }
        let mut vectors = vectors.into_iter();
        let mut records = Vec::with_capacity(group.len());
        for (doc, chunks) in group {
            let inputs = chunks
                .iter()
                .zip(vectors.by_ref())
                .map(|(c, e)| {
                    let mut input = ChunkInput::new(
                        c.text.clone(),
                        c.char_span.start,
                        c.char_span.end,
                        e.vector,
                    );
                    input.heading_path.clone_from(&c.heading_path);
                    input
                })
                .collect::<Vec<_>>();
            summary.chunks += inputs.len();
            records.push(DocumentRecord {
                id: doc.id().as_str().to_string(),
                title: doc.title().to_string(),
                metadata: doc.metadata().clone(),
                content_hash: doc.content_hash().to_string(),
                indexed_with: self.indexed_with.clone(),
                chunks: inputs,
            });
        }
        for outcome in sink.upsert_documents(records)? {
            match outcome {
                UpsertOutcome::Added => summary.added += 1,
                UpsertOutcome::Updated => summary.updated += 1,
                UpsertOutcome::Unchanged => summary.unchanged += 1,
            }
        }
        Ok(())
    }
}

impl IngestSummary {
    /// Adds another run's counts and errors.
    pub fn merge(&mut self, other: IngestSummary) {
        self.added += other.added;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.failed += other.failed;
        self.chunks += other.chunks;
        self.deleted += other.deleted;
        self.errors.extend(other.errors);
    }

    /// Counts documents rejected before ingestion, with their (id, message).
    pub fn fail_all(&mut self, rejected: Vec<(String, String)>) {
        self.failed += rejected.len();
        self.errors.extend(rejected);
    }

    /// Counts a file or JSONL line that could not be loaded; its message names it.
    pub fn fail_input(&mut self, error: &ingest::IngestError) {
        let what = error
            .path()
            .map_or_else(|| "input".to_string(), |p| p.display().to_string());
        self.failed += 1;
        self.errors.push((what, error.to_string()));
    }

    fn fail(&mut self, doc: &Document, error: &dyn std::fmt::Display) {
        self.failed += 1;
        self.errors
            .push((doc.id().as_str().to_string(), error.to_string()));
    }
}

/// Refuses to use `collection` with an embedder other than the one its vectors were made with
/// (see [`check_embedder_config`]).
pub fn check_embedder(collection: &Collection, embedder: &dyn Embedder) -> index::Result<()> {
    check_embedder_config(collection.config(), embedder)
}
