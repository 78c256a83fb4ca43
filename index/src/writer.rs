//! The write side: [`IndexWriter`] sequences every write through sled and then applies it to
//! tantivy and the HNSW.
//!
//! Protocol of one write (`upsert_document(s)`, `delete_document`), under the writer lock:
//!
//! 1. validate and normalise the input (before taking the lock);
//! 2. plan it: next seq, fresh chunk ids, the chunks it removes; an upsert whose content hash
//!    and `indexed_with` equal the stored ones plans nothing ([`UpsertOutcome::Unchanged`]);
//! 3. apply the plans to sled in one atomic batch and flush: **the write is now durable and is
//!    acknowledged when the call returns**;
//! 4. apply it to tantivy's writer (delete-by-term + add, uncommitted) and to the graph
//!    (insert, tombstones), both invisible to searchers until the next commit.
//!
//! [`IndexWriter::commit`] commits tantivy with payload `{"seq": last}`, publishes a new
//! snapshot (tantivy searcher + dense view) atomically, starts a background compaction of the
//! graph when tombstones pass the configured ratio (the rebuild runs without the writer lock,
//! so writes go on meanwhile; when it is built the thread publishes it if no acknowledged write
//! awaits a commit, and otherwise the next commit takes it),
//! dumps it every `dump_every_writes` writes (also in the background: new points wait beside
//! the graph, searched exactly, until the dump ends; see `dense::dumping`; a checkpoint dumps
//! at once), and prunes the op log below
//! what both indexes have persisted. A crash anywhere loses nothing acknowledged: the next open
//! replays sled's op log into whatever tantivy or the dump lack (see `recovery`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, MutexGuard};

use crate::dense::{normalise, CompactionState, DenseWriter};
use crate::meta::{NewChunk, StoredChunk, StoredDoc, WritePlan};
use crate::reader::{Shared, Snapshot};
use crate::retire::Retired;
use crate::sparse::SparseWriter;
use crate::types::{ChunkId, ChunkInput, DocumentRecord, Seq, UpsertOutcome};
use crate::{IndexError, Result};

/// The single writer of a collection. Clones share it; calls from many threads are serialized.
#[derive(Clone)]
pub struct IndexWriter {
    // `state` first: fields drop in order, and its tantivy writer and dense index must close
    // before the last `Shared` can remove a deleted collection's folder.
    state: Arc<Mutex<WriterState>>,
    shared: Arc<Shared>,
}

/// Mutable writer state, behind the writer lock.
pub(crate) struct WriterState {
    pub sparse: SparseWriter,
    pub dense: DenseWriter,
    /// Last seq written to sled and applied to both indexes.
    pub last_seq: Seq,
    /// Next chunk id to hand out.
    pub next_chunk: u64,
    /// Seq in the last tantivy commit payload.
    pub committed_seq: Seq,
    /// Set when a write reached sled but not the indexes.
    pub degraded: bool,
    /// Every snapshot published (seq, handle) that may still be held: retired chunk records
    /// are purged up to the oldest one alive.
    pub published: Vec<(Seq, Weak<Snapshot>)>,
    /// The seq of the counts last recorded for listings (see `summary`).
    pub counted_seq: Option<Seq>,
}

/// A validated document with normalised vectors.
struct Prepared {
    doc: DocumentRecord,
    vectors: Vec<Vec<f32>>,
}

/// Checks `doc` as every index must before storing it (a non-empty id, spans with
/// `start <= end`, vectors of `dimension` finite components and non-zero norm) and returns its
/// chunks' vectors normalised (see [`crate::dense::normalise`]).
pub fn validate_document(doc: &DocumentRecord, dimension: usize) -> Result<Vec<Vec<f32>>> {
    if doc.id.is_empty() {
        return Err(IndexError::EmptyDocumentId);
    }
    doc.chunks
        .iter()
        .map(|c| {
            if c.span_start > c.span_end {
                return Err(IndexError::InvalidSpan {
                    start: c.span_start,
                    end: c.span_end,
                });
            }
            normalise(&c.vector, dimension)
        })
        .collect()
}

impl IndexWriter {
    pub(crate) fn new(shared: Arc<Shared>, state: WriterState) -> Self {
        Self {
            shared,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// True when this is the only handle on the writer.
    pub(crate) fn is_unshared(&self) -> bool {
        Arc::strong_count(&self.state) == 1
    }

    /// Takes the writer lock: refused once the collection is retired (deleted, or replaced by
    /// a reindex) or degraded.
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, WriterState>> {
        let state = self.state.lock();
        let name = || self.shared.config.name.clone();
        match self.shared.removal.retired() {
            Some(Retired::Deleted) => return Err(IndexError::CollectionNotFound { name: name() }),
            Some(Retired::Replaced) => return Err(IndexError::Reindexed { name: name() }),
            None => {}
        }
        if state.degraded {
            return Err(IndexError::NeedsRecovery);
        }
        Ok(state)
    }

    fn prepare(&self, doc: DocumentRecord) -> Result<Prepared> {
        let vectors = validate_document(&doc, self.shared.config.dimension)?;
        Ok(Prepared { doc, vectors })
    }

    /// Upserts one document; durable when it returns. See [`UpsertOutcome`].
    pub fn upsert_document(&self, doc: DocumentRecord) -> Result<UpsertOutcome> {
        let mut outcomes = self.upsert_documents(vec![doc])?;
        outcomes
            .pop()
            .ok_or_else(|| IndexError::corrupt("upsert", "no outcome"))
    }

    /// Upserts many documents with one sled flush and a parallel HNSW insert (bulk loads).
    /// Either all are validated and written or none is. Later entries win over earlier ones
    /// with the same id.
    pub fn upsert_documents(&self, docs: Vec<DocumentRecord>) -> Result<Vec<UpsertOutcome>> {
        let prepared = docs
            .into_iter()
            .map(|d| self.prepare(d))
            .collect::<Result<Vec<_>>>()?;
        let mut state = self.lock()?;
        let mut planner = Planner::new(&self.shared, &state);
        let mut outcomes = Vec::with_capacity(prepared.len());
        for p in prepared {
            outcomes.push(planner.upsert(p)?);
        }
        self.write(&mut state, planner)?;
        Ok(outcomes)
    }

    /// Deletes document `id` and its chunks; `false` if it did not exist. Durable when it
    /// returns.
    pub fn delete_document(&self, id: &str) -> Result<bool> {
        let mut state = self.lock()?;
        let mut planner = Planner::new(&self.shared, &state);
        let existed = planner.delete(id)?;
        self.write(&mut state, planner)?;
        Ok(existed)
    }

    /// Deletes documents `ids` and their chunks with one flush; for each, `false` if it did not
    /// exist (or was deleted earlier in `ids`). Durable when it returns.
    pub fn delete_documents<S: AsRef<str>>(&self, ids: &[S]) -> Result<Vec<bool>> {
        let mut state = self.lock()?;
        let mut planner = Planner::new(&self.shared, &state);
        let existed = ids
            .iter()
            .map(|id| planner.delete(id.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        self.write(&mut state, planner)?;
        Ok(existed)
    }

    /// Steps 3 and 4 of the protocol.
    fn write(&self, state: &mut WriterState, planner: Planner) -> Result<()> {
        if planner.plans.is_empty() {
            return Ok(());
        }
        self.shared.meta.apply(&planner.plans, planner.next_chunk)?;
        state.next_chunk = planner.next_chunk;
        if let Err(e) = apply_to_indexes(state, &planner.plans) {
            state.degraded = true;
            return Err(e);
        }
        state.last_seq = planner.seq;
        Ok(())
    }

    /// Makes every acknowledged write visible to new searchers, atomically across both
    /// indexes; returns the seq of the published snapshot.
    pub fn commit(&self) -> Result<Seq> {
        self.commit_inner(false)
    }

    /// [`Self::commit`], then dumps the HNSW graph regardless of `dump_every_writes` and prunes
    /// the op log, so that the next open replays nothing. Call after a bulk load or at shutdown.
    pub fn checkpoint(&self) -> Result<Seq> {
        self.commit_inner(true)
    }

    fn commit_inner(&self, force_dump: bool) -> Result<Seq> {
        let mut state = self.lock()?;
        self.commit_locked(&mut state, force_dump)
    }

    /// Publishes the compacted graph once its rebuild is done, if nothing acknowledged awaits a
    /// commit: publishing then shows exactly what the last commit did. Otherwise the next
    /// commit, which those writes' writer will make, takes it (publishing here would make
    /// uncommitted writes visible early).
    fn publish_compacted(&self) -> Result<()> {
        let mut state = self.lock()?;
        if state.last_seq == state.committed_seq {
            self.commit_locked(&mut state, false)?;
        }
        Ok(())
    }

    fn commit_locked(&self, st: &mut WriterState, force_dump: bool) -> Result<Seq> {
        let seq = st.last_seq;
        if st.committed_seq != seq {
            st.sparse.commit(seq)?;
            st.committed_seq = seq;
        }
        let bm25 = self.shared.sparse.reload()?;
        let maint = &self.shared.config.maintenance;
        // Dumps and compactions run in the background; finished ones are taken here.
        st.dense.finish_dump();
        let compact = st.dense.finish_compaction() == CompactionState::Replaced;
        if st
            .dense
            .needs_compaction(maint.compact_tombstone_ratio, maint.compact_min_tombstones)
        {
            tracing::info!(seq, live = st.dense.live(), "compacting the HNSW graph");
            let shared = Arc::downgrade(&self.shared);
            let writer = (Arc::downgrade(&self.state), Arc::downgrade(&self.shared));
            st.dense.start_compaction(
                move || {
                    let shared = shared.upgrade().ok_or(IndexError::CompactionAbandoned)?;
                    crate::recovery::live_vectors(&shared.meta)
                },
                // Publish the new graph now rather than at the next write, which may not come.
                move || {
                    if let (Some(state), Some(shared)) = (writer.0.upgrade(), writer.1.upgrade()) {
                        if let Err(e) = (IndexWriter { state, shared }).publish_compacted() {
                            tracing::warn!("publishing the compacted HNSW graph failed: {e}");
                        }
                    }
                },
            );
        }
        let due = seq - st.dense.dumped_seq() >= maint.dump_every_writes || st.dense.dump_lagging();
        if force_dump {
            st.dense.dump(&self.shared.dir, seq)?;
        } else if (compact || due) && st.dense.dumped_seq() != seq {
            let state = Arc::downgrade(&self.state);
            // The held-back points join the graph now rather than at the next commit (which
            // would also publish writes nobody has committed yet).
            st.dense.start_dump(self.shared.dir.clone(), seq, move || {
                if let Some(state) = state.upgrade() {
                    let mut st = state.lock();
                    if st.dense.finish_dump() {
                        let covers = st.next_chunk;
                        st.dense.request_freeze(covers);
                    }
                }
            });
        }
        let dense = st.dense.view(st.next_chunk);
        let snapshot = Arc::new(Snapshot { seq, bm25, dense });
        st.published.push((seq, Arc::downgrade(&snapshot)));
        self.shared.snapshot.store(snapshot);
        st.dense.request_freeze(st.next_chunk);
        // After `store`, a searcher of an older snapshot holds it (arc_swap settles its loads).
        st.published.retain(|(_, s)| s.strong_count() > 0);
        let oldest = st.published.iter().map(|p| p.0).min().unwrap_or(seq);
        self.shared.meta.purge_retired(oldest)?;
        self.shared.meta.prune_ops(seq.min(st.dense.dumped_seq()))?;
        if st.counted_seq != Some(seq) {
            self.record_counts_locked(st);
        }
        Ok(seq)
    }

    /// Records the counts for listings (see `summary`), as an open does after recovery.
    pub(crate) fn record_counts(&self) {
        self.record_counts_locked(&mut self.state.lock());
    }

    /// A report for listings: its failure is logged and does not fail the commit, which is
    /// durable already.
    fn record_counts_locked(&self, st: &mut WriterState) {
        match crate::Counts::of(&self.shared.meta) {
            Ok(counts) => {
                counts.store(&self.shared.dir);
                st.counted_seq = Some(counts.seq);
            }
            Err(e) => tracing::warn!("reading the collection's counts: {e}"),
        }
    }

    /// Blocks until a background dump of the graph has ended and the dense index's search copy
    /// has caught up with the last commit (it is refreshed in the background; until then
    /// searches use the hnsw_rs graph, slower but exact to the same snapshot). For benchmarks
    /// and tests that measure the steady state.
    pub fn settle(&self) {
        // Wait outside the writer lock: writes go on meanwhile. A background dump ends by
        // putting its held-back points into the graph and asking for a new copy.
        while self.dumping() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let waiter = self.state.lock().dense.freeze_waiter();
        waiter.wait_idle();
    }

    /// True while the HNSW graph is being compacted in the background.
    pub fn compacting(&self) -> bool {
        self.state.lock().dense.compacting()
    }

    /// True while a dump of the HNSW graph is being written in the background.
    pub fn dumping(&self) -> bool {
        self.state.lock().dense.dumping()
    }

    /// Makes dumps started from now on wait before they write anything (`true`), until called
    /// with `false`: for tests that need writes to land during a dump.
    #[doc(hidden)]
    pub fn hold_dumps(&self, hold: bool) {
        self.state.lock().dense.hold_dumps(hold);
    }

    /// Makes compactions started from now on wait before they read anything (`true`), until
    /// called with `false`: for tests that need writes to land during a compaction.
    #[doc(hidden)]
    pub fn hold_compactions(&self, hold: bool) {
        self.state.lock().dense.hold_compactions(hold);
    }

    /// Writes the store's records to `out` (`path` names it in errors) as of the last
    /// acknowledged write and links the newest HNSW dump at or before it into `dumps_into`,
    /// holding the writer lock so that no write lands halfway (searches do not wait); returns
    /// the counts the export holds and the dump linked (its seq and file names). See `archive`.
    pub(crate) fn export_store(
        &self,
        out: &mut impl std::io::Write,
        path: &std::path::Path,
        dumps_into: &std::path::Path,
    ) -> Result<(crate::Counts, Option<crate::dense::LinkedDump>)> {
        let _state = self.lock()?;
        let counts = crate::Counts::of(&self.shared.meta)?;
        self.shared.meta.export_to(out, path)?;
        let dump = crate::dense::link_latest(&self.shared.dir, counts.seq, dumps_into)?;
        Ok((counts, dump))
    }

    /// Seq of the last acknowledged write.
    pub fn last_seq(&self) -> Seq {
        self.state.lock().last_seq
    }
}

/// Steps 4 of the protocol, in seq order.
fn apply_to_indexes(state: &mut WriterState, plans: &[WritePlan]) -> Result<()> {
    let mut inserts = Vec::new();
    for plan in plans {
        for id in &plan.removed {
            state.sparse.delete_chunk(*id);
        }
        state.dense.tombstone(plan.removed.iter().map(|c| c.0));
        if let Some(doc) = &plan.doc {
            for c in &plan.added {
                state.sparse.add_chunk(c.id, &c.chunk, doc)?;
                inserts.push((c.id.0, c.vector.clone()));
            }
        }
    }
    state.dense.insert(&inserts);
    Ok(())
}

/// Turns requests into [`WritePlan`]s, tracking seq, chunk ids and in-batch document versions.
struct Planner<'a> {
    shared: &'a Shared,
    seq: Seq,
    next_chunk: u64,
    plans: Vec<WritePlan>,
    overlay: HashMap<String, Option<StoredDoc>>,
}

impl<'a> Planner<'a> {
    fn new(shared: &'a Shared, state: &WriterState) -> Self {
        Self {
            shared,
            seq: state.last_seq,
            next_chunk: state.next_chunk,
            plans: Vec::new(),
            overlay: HashMap::new(),
        }
    }

    fn current(&self, id: &str) -> Result<Option<StoredDoc>> {
        match self.overlay.get(id) {
            Some(doc) => Ok(doc.clone()),
            None => self.shared.meta.get_doc(id),
        }
    }

    fn upsert(&mut self, p: Prepared) -> Result<UpsertOutcome> {
        let Prepared { doc, vectors } = p;
        let old = self.current(&doc.id)?;
        if old.as_ref().is_some_and(|o| {
            o.content_hash == doc.content_hash && o.indexed_with == doc.indexed_with
        }) {
            return Ok(UpsertOutcome::Unchanged);
        }
        self.seq += 1;
        let added = self.new_chunks(&doc.id, doc.chunks, vectors);
        let stored = StoredDoc {
            title: doc.title,
            metadata: doc.metadata,
            content_hash: doc.content_hash,
            indexed_with: doc.indexed_with,
            chunk_ids: added.iter().map(|c| c.id).collect(),
            seq: self.seq,
        };
        let outcome = if old.is_some() {
            UpsertOutcome::Updated
        } else {
            UpsertOutcome::Added
        };
        self.push(doc.id, Some(stored), old, added);
        Ok(outcome)
    }

    /// Assigns fresh ids to the chunks of document `doc_id`.
    fn new_chunks(
        &mut self,
        doc_id: &str,
        chunks: Vec<ChunkInput>,
        vectors: Vec<Vec<f32>>,
    ) -> Vec<NewChunk> {
        let mut out = Vec::with_capacity(chunks.len());
        for (ordinal, (c, vector)) in chunks.into_iter().zip(vectors).enumerate() {
            let id = ChunkId(self.next_chunk);
            self.next_chunk += 1;
            let chunk = StoredChunk {
                doc_id: doc_id.to_owned(),
                ordinal: ordinal as u32,
                text: c.text,
                span_start: c.span_start,
                span_end: c.span_end,
                heading_path: c.heading_path,
            };
            out.push(NewChunk { id, chunk, vector });
        }
        out
    }

    fn delete(&mut self, id: &str) -> Result<bool> {
        let Some(old) = self.current(id)? else {
            return Ok(false);
        };
        self.seq += 1;
        self.push(id.to_owned(), None, Some(old), Vec::new());
        Ok(true)
    }

    fn push(
        &mut self,
        doc_id: String,
        doc: Option<StoredDoc>,
        old: Option<StoredDoc>,
        added: Vec<NewChunk>,
    ) {
        self.overlay.insert(doc_id.clone(), doc.clone());
        self.plans.push(WritePlan {
            seq: self.seq,
            doc_id,
            doc,
            existed: old.is_some(),
            removed: old.map(|o| o.chunk_ids).unwrap_or_default(),
            added,
        });
    }
}
