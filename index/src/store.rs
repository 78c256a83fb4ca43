//! [`Store`]: a directory of named collections, `<root>/<name>/`.
//!
//! The store opens each collection at most once (sled and tantivy lock their files) and hands
//! out shared handles; collections open one beside the other, list from their manifests
//! without opening, and close when idle ([`Store::close_idle`]). Names are validated before
//! they touch a path.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::{validate_collection_name, CollectionConfig, IndexManifest, MaintenanceConfig};
use crate::retire::{remove_folder, retire_manifest, sweep, sweep_reindexes, Removing, MANIFEST};
use crate::summary::{CollectionSummary, Counts};
use crate::{Collection, IndexError, Result};

/// A root directory of collections.
///
/// Each name has its own slot, locked while that collection opens, recovers, closes or is
/// deleted; the map of slots is locked only to find one. So opening a large collection (replaying
/// its op log, loading its graph) never holds up requests for the others.
pub struct Store {
    root: PathBuf,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Deleted collections whose folders searches still hold (see `retire`).
    removing: Removing,
    /// Names being reindexed (see `reindex`).
    pub(crate) reindexing: Mutex<HashSet<String>>,
    maintenance: MaintenanceConfig,
}

/// One collection name's place in the store.
pub(crate) struct Slot {
    /// The open collection, if it is open.
    pub(crate) open: Mutex<Option<Arc<Collection>>>,
    /// When it was last handed out (see [`Store::close_idle`]).
    used: Mutex<Instant>,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            open: Mutex::new(None),
            used: Mutex::new(Instant::now()),
        }
    }
}

impl Slot {
    fn hand_out(&self, c: &Arc<Collection>) -> Arc<Collection> {
        self.touch();
        Arc::clone(c)
    }

    /// Counts the collection as used now (see [`Store::close_idle`]).
    pub(crate) fn touch(&self) {
        *self.used.lock() = Instant::now();
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root`, finishing the removal of collections
    /// deleted before a crash and finishing or removing reindexes a crash interrupted.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| IndexError::io(root, e))?;
        sweep(root)?;
        sweep_reindexes(root)?;
        Ok(Self {
            root: root.to_owned(),
            slots: Mutex::new(HashMap::new()),
            removing: Removing::default(),
            reindexing: Mutex::new(HashSet::new()),
            maintenance: MaintenanceConfig::default(),
        })
    }

    /// Opens existing collections (see [`Self::collection`]) with `maintenance` instead of the
    /// defaults.
    #[must_use]
    pub fn with_maintenance(mut self, maintenance: MaintenanceConfig) -> Self {
        self.maintenance = maintenance;
        self
    }

    /// The maintenance settings collections opened through [`Self::collection`] get.
    pub fn maintenance(&self) -> MaintenanceConfig {
        self.maintenance
    }

    /// The folder of collections.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether collection `name` was deleted and its folder awaits the end of searches.
    pub(crate) fn is_being_removed(&self, name: &str) -> bool {
        self.removing.lock().contains(name)
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        validate_collection_name(name)?;
        Ok(self.root.join(name))
    }

    pub(crate) fn slot(&self, name: &str) -> Arc<Slot> {
        Arc::clone(self.slots.lock().entry(name.to_owned()).or_default())
    }

    /// Drops `name`'s slot if it holds no collection and nobody else has it, so that names that
    /// failed to open (or were closed or deleted) do not pile up.
    fn forget_if_empty(&self, name: &str, slot: Arc<Slot>) {
        let mut slots = self.slots.lock();
        let Some(held) = slots.get(name) else { return };
        // The map's reference and `slot`: nobody else is about to lock it.
        if Arc::ptr_eq(held, &slot)
            && Arc::strong_count(&slot) == 2
            && slot.open.try_lock().is_some_and(|c| c.is_none())
        {
            slots.remove(name);
        }
    }

    /// Runs `open` in `name`'s slot unless the collection is open already, and keeps what it
    /// opens.
    pub(crate) fn open_with(
        &self,
        name: &str,
        if_open: impl FnOnce(&Arc<Collection>) -> Result<()>,
        open: impl FnOnce() -> Result<Collection>,
    ) -> Result<Arc<Collection>> {
        let slot = self.slot(name);
        let result = {
            let mut held = slot.open.lock();
            match &*held {
                Some(c) => if_open(c).map(|()| slot.hand_out(c)),
                None => open().map(|c| {
                    let c = Arc::new(c);
                    *held = Some(Arc::clone(&c));
                    slot.hand_out(&c)
                }),
            }
        };
        if result.is_err() {
            self.forget_if_empty(name, slot);
        }
        result
    }

    /// Creates collection `config.name`.
    pub fn create_collection(&self, config: CollectionConfig) -> Result<Arc<Collection>> {
        let dir = self.dir(&config.name)?;
        let name = config.name.clone();
        self.open_with(
            &name,
            |_| Err(IndexError::CollectionExists { name: name.clone() }),
            || {
                if self.removing.lock().contains(&name) {
                    return Err(IndexError::CollectionBeingDeleted { name: name.clone() });
                }
                Collection::create(&dir, config)
            },
        )
    }

    /// Opens collection `config.name`, checking `config` against its manifest (a different
    /// embedder or dimension is [`IndexError::ManifestMismatch`]).
    pub fn open_collection(&self, config: CollectionConfig) -> Result<Arc<Collection>> {
        let dir = self.dir(&config.name)?;
        let name = config.name.clone();
        let wanted = IndexManifest::from_config(&config);
        self.open_with(
            &name,
            |c| IndexManifest::from_config(c.config()).check_compatible(&wanted),
            || Collection::open(&dir, config),
        )
    }

    /// The collection `name` with its persisted manifest; [`IndexError::CollectionNotFound`]
    /// if it does not exist.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        let dir = self.dir(name)?;
        self.open_with(
            name,
            |_| Ok(()),
            || Collection::open_existing_with(&dir, self.maintenance),
        )
    }

    /// The collections open now, each once.
    fn open_collections(&self) -> Vec<Arc<Collection>> {
        let slots: Vec<Arc<Slot>> = self.slots.lock().values().cloned().collect();
        slots.iter().filter_map(|s| s.open.lock().clone()).collect()
    }

    /// Checkpoints every open collection ([`crate::IndexWriter::checkpoint`]: commit, dump the
    /// HNSW graph if it is behind, prune the op log), so the next open replays nothing. For a
    /// clean shutdown; returns the first error after trying them all.
    pub fn checkpoint_all(&self) -> Result<()> {
        let mut first = None;
        for c in self.open_collections() {
            if let Err(e) = c.writer().checkpoint() {
                tracing::error!(collection = c.name(), "checkpoint failed: {e}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Closes the collections nobody has asked for or held in `idle` (no search, write or job in
    /// progress, no compaction running; as seen by this and earlier calls), after a checkpoint so that their next
    /// open replays nothing; returns their names. Their files (sled's cache, tantivy's
    /// readers, the graph in memory) are released; the next request opens them again.
    ///
    /// The checkpoint (which may dump a graph) runs outside the slot's lock, so a request that
    /// arrives meanwhile is served at once and the collection stays open.
    pub fn close_idle(&self, idle: Duration) -> Vec<String> {
        let slots: Vec<(String, Arc<Slot>)> = self
            .slots
            .lock()
            .iter()
            .map(|(n, s)| (n.clone(), Arc::clone(s)))
            .collect();
        let mut closed = Vec::new();
        for (name, slot) in slots {
            // `holders`: the slot's reference plus the ones this loop holds. New references are
            // handed out only under the slot's lock, so the count cannot rise while it is held.
            let idle_now = |c: &Arc<Collection>, holders: usize| {
                Arc::strong_count(c) == holders
                    && c.is_unused()
                    && slot.used.lock().elapsed() >= idle
            };
            // A slot being opened or deleted is not idle; one in use is used now, so its idle
            // time counts from the last look that saw it in use, not from when it was handed
            // out (a long ingest stream holds it throughout).
            let candidate = match slot.open.try_lock() {
                Some(held) => match held.as_ref() {
                    Some(c) if Arc::strong_count(c) > 1 || !c.is_unused() => {
                        *slot.used.lock() = Instant::now();
                        None
                    }
                    Some(c) => idle_now(c, 1).then(|| Arc::clone(c)),
                    None => None,
                },
                None => None,
            };
            let Some(c) = candidate else { continue };
            if let Err(e) = c.writer().checkpoint() {
                tracing::warn!(collection = name, "not closed: checkpoint failed: {e}");
                continue;
            }
            let Some(mut held) = slot.open.try_lock() else {
                continue;
            };
            if !held.as_ref().is_some_and(|h| Arc::ptr_eq(h, &c)) || !idle_now(&c, 2) {
                continue;
            }
            // Dropped under the slot's lock: its files are released before anyone reopens it.
            let taken = held.take();
            drop(c);
            drop(taken);
            drop(held);
            tracing::info!(collection = name, "closed after {} s idle", idle.as_secs());
            closed.push(name.clone());
            self.forget_if_empty(&name, slot);
        }
        closed
    }

    /// Runs `f` while `name`'s slot is locked, as an open, close or deletion of `name` in
    /// progress would hold it: for tests of what the store still serves meanwhile.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn while_opening<R>(&self, name: &str, f: impl FnOnce() -> R) -> R {
        let slot = self.slot(name);
        let held = slot.open.lock();
        let r = f();
        drop(held);
        self.forget_if_empty(name, slot);
        r
    }

    /// Every collection on disk with its manifest and counts, sorted by name, without opening
    /// any: an open collection reports its live counts, a closed one the counts its last
    /// commit recorded (see `summary`). A collection written before the counts were recorded
    /// is opened once to learn them.
    pub fn summaries(&self) -> Result<Vec<CollectionSummary>> {
        let mut out = Vec::new();
        for name in self.list()? {
            let dir = self.root.join(&name);
            let open = self
                .slots
                .lock()
                .get(&name)
                .cloned()
                .and_then(|s| s.open.try_lock().and_then(|c| c.clone()));
            let (manifest, counts, is_open) = match open {
                Some(c) => (IndexManifest::from_config(c.config()), c.counts()?, true),
                None => {
                    let manifest = match IndexManifest::load(&dir.join(MANIFEST)) {
                        Ok(m) => m,
                        // Deleted since it was listed.
                        Err(_) if !dir.join(MANIFEST).exists() => continue,
                        Err(e) => return Err(e),
                    };
                    match Counts::load(&dir) {
                        Some(counts) => (manifest, counts, false),
                        None => match self.collection(&name) {
                            Ok(c) => (manifest, c.counts()?, true),
                            Err(IndexError::CollectionNotFound { .. }) => continue,
                            Err(e) => return Err(e),
                        },
                    }
                }
            };
            out.push(CollectionSummary {
                name,
                embedding_model: manifest.embedding_model,
                dimension: manifest.dimension,
                embedder_fingerprint: manifest.embedder_fingerprint,
                documents: counts.documents,
                chunks: counts.chunks,
                open: is_open,
            });
        }
        Ok(out)
    }

    /// Names of the collections on disk, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(|e| IndexError::io(&self.root, e))? {
            let path = entry.map_err(|e| IndexError::io(&self.root, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if validate_collection_name(name).is_ok() && path.join("manifest.json").exists() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Deletes collection `name` and all its data. Fails with [`IndexError::CollectionInUse`]
    /// while a clone of its writer is held elsewhere (a write in progress). Searches do not hold
    /// it up: the collection is gone when this returns (for listing, opening and writes; a crash
    /// from here on cannot bring it back), searches already running finish on their snapshot,
    /// and the folder is removed as the last of them ends (see `retire`).
    pub fn delete_collection(&self, name: &str) -> Result<()> {
        let dir = self.dir(name)?;
        let slot = self.slot(name);
        let result = self.delete_in(name, &dir, &slot);
        self.forget_if_empty(name, slot);
        result
    }

    fn delete_in(&self, name: &str, dir: &Path, slot: &Slot) -> Result<()> {
        let mut open = slot.open.lock();
        if self.removing.lock().contains(name) || !dir.join(MANIFEST).exists() {
            return Err(IndexError::CollectionNotFound {
                name: name.to_owned(),
            });
        }
        if open.as_ref().is_some_and(|c| c.writer_in_use()) {
            return Err(IndexError::CollectionInUse {
                name: name.to_owned(),
            });
        }
        retire_manifest(dir)?;
        match open.take() {
            Some(c) => {
                self.removing.lock().insert(name.to_owned());
                c.remove_on_close(Arc::clone(&self.removing));
                // Removes the folder now unless a search still holds the collection.
                drop(c);
                Ok(())
            }
            None => remove_folder(dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> CollectionConfig {
        CollectionConfig::new(name, "test-model", 4)
    }

    /// Names that failed to open, were deleted or closed leave no slot behind.
    #[test]
    fn slots_do_not_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..10 {
            assert!(store.collection(&format!("missing-{i}")).is_err());
        }
        assert!(store.delete_collection("missing").is_err());
        assert_eq!(store.slots.lock().len(), 0);

        store.create_collection(config("a")).unwrap();
        assert!(store.create_collection(config("a")).is_err());
        assert_eq!(store.slots.lock().len(), 1);
        assert_eq!(store.close_idle(Duration::ZERO), vec!["a"]);
        assert_eq!(store.slots.lock().len(), 0);
        store.collection("a").unwrap();
        store.delete_collection("a").unwrap();
        assert_eq!(store.slots.lock().len(), 0);
    }
}
