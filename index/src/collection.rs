//! [`Collection`]: one named knowledge base on disk, and its open/recovery sequence.
//!
//! Layout of a collection directory:
//!
//! ```text
//! <dir>/manifest.json        IndexManifest (checked on every open)
//! <dir>/meta/                sled database (source of truth, see `meta`)
//! <dir>/bm25/                tantivy index (commit payload = last seq contained)
//! <dir>/dense-<seq>/         newest HNSW dump (graph, data, state.json)
//! <dir>/.snapshot-<ms>-<pid>/ a snapshot being written (see `archive`)
//! ```
//!
//! Beside the collection folders, `<root>/.reindex-<name>/` holds a new generation being built
//! and `<root>/.replaced-<name>-<ms>/` an old one that searches still read (see `reindex`).
//!
//! Opening runs recovery (see `recovery`) before the collection is handed out, so the first
//! searcher already sees every acknowledged write.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{validate_config, CollectionConfig, IndexManifest, MaintenanceConfig};
use crate::meta::MetaStore;
use crate::reader::{IndexReader, Shared, Snapshot};
use crate::recovery::{recover_dense, recover_sparse};
use crate::retire::{RemoveOnClose, Removing, Retired, MANIFEST};
use crate::sparse::SparseIndex;
use crate::types::Seq;
use crate::writer::{IndexWriter, WriterState};
use crate::{IndexError, Result};

/// An open collection: its reader and its writer.
pub struct Collection {
    shared: Arc<Shared>,
    writer: IndexWriter,
}

impl Collection {
    /// Creates a new collection in `dir` (which must not hold one already).
    pub fn create(dir: &Path, config: CollectionConfig) -> Result<Self> {
        validate_config(&config)?;
        let manifest_path = dir.join(MANIFEST);
        if manifest_path.exists() {
            return Err(IndexError::CollectionExists { name: config.name });
        }
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        IndexManifest::from_config(&config).store(&manifest_path)?;
        Self::open_checked(dir, config)
    }

    /// Opens the collection in `dir`, failing with [`IndexError::ManifestMismatch`] if `config`
    /// disagrees with the persisted manifest (model, dimension, distance, graph, analyzer).
    /// How chunks were indexed for BM25 (`bm25.title_in_text`) is the stored manifest's, whatever
    /// `config` says: it must match the chunks already in the index.
    pub fn open(dir: &Path, mut config: CollectionConfig) -> Result<Self> {
        validate_config(&config)?;
        let stored = load_manifest(dir, &config.name)?;
        stored.check_compatible(&IndexManifest::from_config(&config))?;
        config.bm25.title_in_text = stored.bm25.title_in_text;
        Self::open_checked(dir, config)
    }

    /// Opens the collection in `dir` with its persisted manifest and default maintenance.
    pub fn open_existing(dir: &Path) -> Result<Self> {
        Self::open_existing_with(dir, MaintenanceConfig::default())
    }

    /// [`Self::open_existing`] with the given runtime maintenance settings.
    pub fn open_existing_with(dir: &Path, maintenance: MaintenanceConfig) -> Result<Self> {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let m = load_manifest(dir, name)?;
        let config = CollectionConfig {
            name: m.name,
            embedding_model: m.embedding_model,
            dimension: m.dimension,
            embedder_fingerprint: m.embedder_fingerprint,
            distance: m.distance,
            hnsw: m.hnsw,
            bm25: m.bm25,
            maintenance,
        };
        validate_config(&config)?;
        Self::open_checked(dir, config)
    }

    fn open_checked(dir: &Path, config: CollectionConfig) -> Result<Self> {
        let meta = MetaStore::open(&dir.join("meta"), config.maintenance.sled_cache_bytes)?;
        // sled's lock is ours: no snapshot of this collection is being written.
        crate::retire::remove_staging(dir)?;
        let sparse = SparseIndex::open(&dir.join("bm25"), config.bm25, &config.name)?;
        let last = meta.last_seq()?;
        let next_chunk = meta.next_chunk_id()?;
        let sparse_writer = recover_sparse(
            &meta,
            &sparse,
            config.maintenance.tantivy_memory_bytes,
            last,
        )?;
        let mut dense = recover_dense(dir, &config, &meta, last)?;
        let snapshot = Snapshot {
            seq: last,
            bm25: sparse.reload()?,
            dense: dense.view(next_chunk),
        };
        dense.request_freeze(next_chunk);
        let shared = Arc::new(Shared {
            dir: PathBuf::from(dir),
            config,
            meta,
            sparse,
            snapshot: ArcSwap::from_pointee(snapshot),
            removal: RemoveOnClose::default(),
        });
        // No snapshot from before this open survives it.
        shared.meta.purge_retired(Seq::MAX)?;
        let first = shared.snapshot.load_full();
        let state = WriterState {
            sparse: sparse_writer,
            dense,
            last_seq: last,
            next_chunk,
            committed_seq: last,
            degraded: false,
            published: vec![(last, Arc::downgrade(&first))],
            counted_seq: None,
        };
        let writer = IndexWriter::new(Arc::clone(&shared), state);
        writer.record_counts();
        Ok(Self { shared, writer })
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &CollectionConfig {
        &self.shared.config
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// A reader (cheap clone).
    pub fn reader(&self) -> IndexReader {
        IndexReader::new(Arc::clone(&self.shared))
    }

    /// The writer (cheap clone; all clones share one lock).
    pub fn writer(&self) -> IndexWriter {
        self.writer.clone()
    }

    /// Blocks until background work has caught up with the last commit (see
    /// [`IndexWriter::settle`]).
    pub fn settle(&self) {
        self.writer.settle();
    }

    /// Its document and chunk counts now (acknowledged writes included).
    pub fn counts(&self) -> Result<crate::Counts> {
        crate::Counts::of(&self.shared.meta)
    }

    /// True when nothing but this handle uses the collection: no reader, searcher or writer
    /// clone is held and no compaction or dump runs (see [`crate::Store::close_idle`]).
    pub(crate) fn is_unused(&self) -> bool {
        // `self.shared` and the writer's own reference.
        Arc::strong_count(&self.shared) == 2
            && self.writer.is_unshared()
            && !self.writer.compacting()
            && !self.writer.dumping()
    }

    /// True while a clone of the writer is held elsewhere (a write in progress).
    pub(crate) fn writer_in_use(&self) -> bool {
        !self.writer.is_unshared()
    }

    /// Marks the collection deleted (its manifest already retired): writes fail from now on,
    /// and the folder is removed when the last handle on it closes, then `name` is freed in
    /// `removing`.
    pub(crate) fn remove_on_close(&self, removing: Removing) {
        let shared = &self.shared;
        shared
            .removal
            .arm(&shared.dir, &shared.config.name, removing, Retired::Deleted);
    }

    /// Marks the collection replaced by a reindex whose new generation took its name: its
    /// folder, renamed to `moved_to`, is removed when the last handle on it closes, and writes
    /// still waiting on its writer fail with [`IndexError::Reindexed`].
    pub(crate) fn retire_replaced(&self, moved_to: &Path) {
        let shared = &self.shared;
        let nobody = Removing::default();
        shared
            .removal
            .arm(moved_to, &shared.config.name, nobody, Retired::Replaced);
    }

    /// Its meta store (for whole-collection passes that read the latest acknowledged state).
    pub(crate) fn meta(&self) -> &MetaStore {
        &self.shared.meta
    }

    /// Bytes used on disk by the sled store.
    pub fn meta_size_on_disk(&self) -> Result<u64> {
        self.shared.meta.size_on_disk()
    }
}

fn load_manifest(dir: &Path, name: &str) -> Result<IndexManifest> {
    let path = dir.join(MANIFEST);
    if !path.exists() {
        return Err(IndexError::CollectionNotFound {
            name: name.to_owned(),
        });
    }
    IndexManifest::load(&path)
}
