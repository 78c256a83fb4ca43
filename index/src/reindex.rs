//! Re-embedding a collection into a new generation while it is served: [`Store::reindex`].
//!
//! The new generation is a collection of its own, built in `<root>/.reindex-<name>/` with the
//! target embedder's model, dimension and fingerprint and the source's index settings. Every
//! document is copied from the source's store (the latest acknowledged state): the same id,
//! title, metadata, content hash and chunks (text, span, headings), with vectors the caller's
//! [`Reembed`] makes from the stored chunk text. Writes go on meanwhile, so copying runs in
//! rounds: each copies the documents whose stored version (seq) differs from the one copied and
//! deletes the ones gone, until a round finds little to do. The last round runs under the
//! source's writer lock, so writes wait only for that round; then the new generation is
//! checkpointed, closed and marked complete ([`DONE`]).
//!
//! The switch, in the name's store slot (new requests for the name wait for it; searches
//! already holding the source go on): the source folder is renamed to
//! `<root>/.replaced-<name>-<ms>/`, the new one to `<root>/<name>/`, the root is synced, the new
//! generation is opened and handed out. The source is retired: writes still waiting on its lock
//! fail with [`IndexError::Reindexed`] (retry them), and its folder is removed when the last
//! search on it ends.
//!
//! A crash before the marker leaves an incomplete build, which `retire::sweep_reindexes` removes
//! on the next open of the store; a crash after it is finished there: the complete build takes the name (the source had no write
//! after the last round, whose writer lock the crash released). Replaced folders are removed.
//! What another process holds open (sled's lock says so) is left alone.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::durable::fsync;
use crate::meta::MetaStore;
use crate::retire::{now_ms, remove_dir, swap_in, BUILD_PREFIX, DONE, REPLACED_PREFIX};
use crate::types::{ChunkInput, DocumentInfo, DocumentRecord, Seq};
use crate::{Collection, IndexError, Result, Store};

/// Documents copied together: their chunks are embedded in one call.
const GROUP_CHUNKS: usize = 256;
/// A round that finds at most this many documents to copy or delete is followed by the last
/// one, under the writer lock.
const LAST_ROUND_UNDER: usize = 256;
/// Rounds run without the writer lock before the last one, however busy the writes.
const MAX_OPEN_ROUNDS: u32 = 8;

/// The embedder the new generation is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReindexTarget {
    /// Model id (recorded in the manifest).
    pub embedding_model: String,
    /// Vector dimension.
    pub dimension: usize,
    /// The embedder's fingerprint (recorded in the manifest).
    pub embedder_fingerprint: String,
}

/// What a reindex asks of its caller: vectors for chunk texts, and a say in its progress.
pub trait Reembed {
    /// The caller's error; index errors convert into it.
    type Error: From<IndexError>;

    /// One vector per text, in order, of the target's dimension.
    fn embed(&mut self, texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, Self::Error>;

    /// What a copied document records as made with (see [`DocumentRecord::indexed_with`]),
    /// given what the source recorded.
    fn indexed_with(&self, source: &str) -> String;

    /// Called as each round starts and after each group of documents it copies; an error stops
    /// the reindex (nothing changes: the build is removed).
    fn progress(&mut self, progress: &ReindexProgress) -> std::result::Result<(), Self::Error>;
}

/// How far a reindex is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReindexProgress {
    /// The round (0: the first copy; later ones catch up on writes made meanwhile).
    pub round: u32,
    /// Documents this round copied so far.
    pub documents_done: u64,
    /// Documents this round copies.
    pub documents_total: u64,
    /// Chunks embedded so far, all rounds.
    pub chunks_embedded: u64,
}

/// What a reindex did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReindexReport {
    /// Documents in the new generation.
    pub documents: u64,
    /// Chunks in the new generation.
    pub chunks: u64,
    /// Chunks embedded, all rounds (more than `chunks` when documents changed meanwhile).
    pub chunks_embedded: u64,
    /// Rounds run, the last included.
    pub rounds: u32,
    /// Documents copied (or deleted) again because writes changed them during the reindex.
    pub caught_up: u64,
    /// The source's last write, which the new generation holds.
    pub seq: Seq,
    /// How long writes waited for the last round, in ms.
    pub writes_waited_ms: f64,
    /// How long new requests for the name waited for the switch, in ms.
    pub switch_ms: f64,
    /// Wall time, in ms.
    pub total_ms: f64,
}

impl Store {
    /// Re-embeds collection `name` with `target` into a new generation and switches to it (see
    /// the module docs); searches are served from the source until the switch and from the new
    /// generation after it. Returns the new generation. Refused while another reindex of `name`
    /// runs ([`IndexError::ReindexRunning`]). On any error the source stays as it was.
    pub fn reindex<R: Reembed>(
        &self,
        name: &str,
        target: &ReindexTarget,
        with: &mut R,
    ) -> std::result::Result<(Arc<Collection>, ReindexReport), R::Error> {
        let start = Instant::now();
        let source = self.collection(name)?;
        let _running = Running::begin(self, name)?;
        let build = self.root().join(format!("{BUILD_PREFIX}{name}"));
        remove_dir(&build)?;
        let result = self.build_and_switch(&source, &build, target, with);
        if result.is_err() && self.root().join(name).exists() {
            // Nothing of the build is kept; the source is untouched. (Were the name without a
            // folder, a switch failed halfway: the next open of the store sorts it out.)
            if let Err(e) = remove_dir(&build) {
                tracing::warn!(
                    collection = name,
                    "removing an abandoned reindex build: {e}"
                );
            }
        }
        let (collection, mut report) = result?;
        report.total_ms = ms(start);
        Ok((collection, report))
    }

    fn build_and_switch<R: Reembed>(
        &self,
        source: &Arc<Collection>,
        build: &Path,
        target: &ReindexTarget,
        with: &mut R,
    ) -> std::result::Result<(Arc<Collection>, ReindexReport), R::Error> {
        let name = source.name().to_owned();
        let mut config = source.config().clone();
        config.embedding_model.clone_from(&target.embedding_model);
        config.dimension = target.dimension;
        config
            .embedder_fingerprint
            .clone_from(&target.embedder_fingerprint);
        config.maintenance = self.maintenance();
        let built = Collection::create(build, config)?;
        let mut copy = Copy {
            source: source.meta(),
            built: &built,
            copied: HashMap::new(),
            report: ReindexReport::default(),
        };
        loop {
            let todo = copy.round(with)?;
            copy.report.rounds += 1;
            if todo <= LAST_ROUND_UNDER || copy.report.rounds >= MAX_OPEN_ROUNDS {
                break;
            }
        }
        // The last round, with writes held: wait out a dump of the source first (it writes
        // into the folder about to be renamed) and take the lock when none runs.
        let writer = source.writer();
        let state = loop {
            source.settle();
            let state = writer.lock()?;
            if !state.dense.dumping() {
                break state;
            }
            drop(state);
        };
        let held = Instant::now();
        copy.round(with)?;
        copy.report.rounds += 1;
        copy.report.seq = state.last_seq;
        let counts = built.counts()?;
        copy.report.documents = counts.documents;
        copy.report.chunks = counts.chunks;
        let mut report = copy.report;
        built.writer().checkpoint()?;
        close(built)?;
        mark_done(build)?;

        let dir = self.root().join(&name);
        let switch = Instant::now();
        let slot = self.slot(&name);
        let mut open = slot.open.lock();
        if !open.as_ref().is_some_and(|c| Arc::ptr_eq(c, source)) {
            return Err(
                IndexError::corrupt("reindex", "the source was closed during the switch").into(),
            );
        }
        let replaced = self
            .root()
            .join(format!("{REPLACED_PREFIX}{name}-{}", now_ms()));
        let opened = swap_in(build, &dir, &replaced, self.root())
            .and_then(|()| Collection::open_existing_with(&dir, self.maintenance()));
        let collection = match opened {
            Ok(c) => Arc::new(c),
            Err(e) => {
                // Put the source back where it was; the build is kept only if that fails.
                if !replaced.exists() || swap_back(build, &dir, &replaced).is_ok() {
                    let _ = remove_dir(build);
                }
                return Err(e.into());
            }
        };
        source.retire_replaced(&replaced);
        *open = Some(Arc::clone(&collection));
        slot.touch();
        drop(open);
        report.switch_ms = ms(switch);
        drop(state);
        report.writes_waited_ms = ms(held);
        tracing::info!(
            collection = name,
            documents = report.documents,
            rounds = report.rounds,
            switch_ms = report.switch_ms,
            "reindexed"
        );
        Ok((collection, report))
    }
}

/// One reindex's copy from the source store into the build.
struct Copy<'a> {
    source: &'a MetaStore,
    built: &'a Collection,
    /// Document id → the source version (seq) copied.
    copied: HashMap<String, Seq>,
    report: ReindexReport,
}

impl Copy<'_> {
    /// Copies what changed since the last round and deletes what is gone; returns how many
    /// documents that was.
    fn round<R: Reembed>(&mut self, with: &mut R) -> std::result::Result<usize, R::Error> {
        let mut todo = Vec::new();
        let mut present = HashSet::with_capacity(self.copied.len());
        for doc in self.source.documents() {
            let doc = doc?;
            if self.copied.get(&doc.id) != Some(&doc.seq) {
                todo.push(doc.id.clone());
            }
            present.insert(doc.id);
        }
        let gone: Vec<String> = self
            .copied
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        drop(present);
        let first = self.report.rounds == 0;
        if !first {
            self.report.caught_up += (todo.len() + gone.len()) as u64;
        }
        let mut progress = ReindexProgress {
            round: self.report.rounds,
            documents_done: 0,
            documents_total: todo.len() as u64,
            chunks_embedded: self.report.chunks_embedded,
        };
        // Also at the start of each round, the last one included: a caller that stopped meanwhile
        // hears of it before the switch.
        with.progress(&progress)?;
        let writer = self.built.writer();
        let mut group: Vec<(DocumentInfo, Vec<ChunkInput>)> = Vec::new();
        let mut group_chunks = 0;
        let count = todo.len();
        for (i, id) in todo.into_iter().enumerate() {
            // Read again: the list above is a moment old. A document changed between reading
            // it and its chunks is left to the next round (its seq differs from the copied one).
            if let Some((info, chunks)) = self.read(&id)? {
                group_chunks += chunks.len();
                group.push((info, chunks));
            } else if self.copied.remove(&id).is_some() {
                writer.delete_document(&id)?;
            }
            if group_chunks >= GROUP_CHUNKS || i + 1 == count {
                self.write_group(std::mem::take(&mut group), with)?;
                group_chunks = 0;
                progress.documents_done = (i + 1) as u64;
                progress.chunks_embedded = self.report.chunks_embedded;
                with.progress(&progress)?;
            }
        }
        writer.delete_documents(&gone)?;
        for id in &gone {
            self.copied.remove(id);
        }
        writer.commit()?;
        Ok(count + gone.len())
    }

    /// Document `id` with its chunks, as the source stores it now; `None` when it is gone or
    /// changed while being read.
    fn read(&self, id: &str) -> Result<Option<(DocumentInfo, Vec<ChunkInput>)>> {
        let Some(info) = self.source.document_info(id)? else {
            return Ok(None);
        };
        let mut chunks = Vec::with_capacity(info.chunk_ids.len());
        for &cid in &info.chunk_ids {
            let Some(c) = self.source.get_chunk(cid)? else {
                return Ok(None);
            };
            let mut input = ChunkInput::new(c.text, c.span_start, c.span_end, Vec::new());
            input.heading_path = c.heading_path;
            chunks.push(input);
        }
        Ok(Some((info, chunks)))
    }

    fn write_group<R: Reembed>(
        &mut self,
        group: Vec<(DocumentInfo, Vec<ChunkInput>)>,
        with: &mut R,
    ) -> std::result::Result<(), R::Error> {
        if group.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = group
            .iter()
            .flat_map(|(_, cs)| cs.iter().map(|c| c.text.as_str()))
            .collect();
        let vectors = with.embed(&texts)?;
        if vectors.len() != texts.len() {
            // Never store a document with some of its chunks silently missing.
            return Err(IndexError::corrupt(
                "reindex",
                format!("{} vectors for {} chunks", vectors.len(), texts.len()),
            )
            .into());
        }
        self.report.chunks_embedded += vectors.len() as u64;
        let mut vectors = vectors.into_iter();
        let mut records = Vec::with_capacity(group.len());
        let mut versions = Vec::with_capacity(group.len());
        for (info, mut chunks) in group {
            for c in &mut chunks {
                c.vector = vectors.next().unwrap_or_default();
            }
            versions.push((info.id.clone(), info.seq));
            records.push(DocumentRecord {
                indexed_with: with.indexed_with(&info.indexed_with),
                id: info.id,
                title: info.title,
                metadata: info.metadata,
                content_hash: info.content_hash,
                chunks,
            });
        }
        self.built.writer().upsert_documents(records)?;
        self.copied.extend(versions);
        Ok(())
    }
}

/// Marks `name` as being reindexed in this store for as long as it lives.
struct Running<'a> {
    store: &'a Store,
    name: String,
}

impl<'a> Running<'a> {
    fn begin(store: &'a Store, name: &str) -> Result<Self> {
        if !store.reindexing.lock().insert(name.to_owned()) {
            return Err(IndexError::ReindexRunning {
                name: name.to_owned(),
            });
        }
        Ok(Self {
            store,
            name: name.to_owned(),
        })
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.store.reindexing.lock().remove(&self.name);
    }
}

/// Closes the build (it is about to be renamed), waiting out the background work that still
/// holds it so that its files, sled's lock included, are released.
fn close(built: Collection) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !built.is_unused() {
        if Instant::now() > deadline {
            return Err(IndexError::corrupt(
                "reindex",
                "the new generation's background work did not end within 60 s",
            ));
        }
        built.settle();
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(built);
    Ok(())
}

fn mark_done(build: &Path) -> Result<()> {
    let done = build.join(DONE);
    std::fs::write(&done, b"complete\n").map_err(|e| IndexError::io(&done, e))?;
    fsync(&done)?;
    fsync(build)
}

/// Undoes [`swap_in`] after the new generation failed to open.
fn swap_back(build: &Path, dir: &Path, replaced: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::rename(dir, build).map_err(|e| IndexError::io(dir, e))?;
    }
    std::fs::rename(replaced, dir).map_err(|e| IndexError::io(replaced, e))
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
