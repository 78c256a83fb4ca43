//! [`Store`]: a directory of named collections, `<root>/<name>/`.
//!
//! The store opens each collection at most once (sled and tantivy lock their files) and hands
//! out shared handles. Names are validated before they touch a path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{validate_collection_name, CollectionConfig, MaintenanceConfig};
use crate::retire::{remove_folder, retire_manifest, sweep, Removing, MANIFEST};
use crate::{Collection, IndexError, Result};

/// A root directory of collections.
pub struct Store {
    root: PathBuf,
    open: Mutex<HashMap<String, Arc<Collection>>>,
    /// Deleted collections whose folders searches still hold (see `retire`).
    removing: Removing,
    maintenance: MaintenanceConfig,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, finishing the removal of collections
    /// deleted before a crash.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| IndexError::io(root, e))?;
        sweep(root)?;
        Ok(Self {
            root: root.to_owned(),
            open: Mutex::new(HashMap::new()),
            removing: Removing::default(),
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

    fn dir(&self, name: &str) -> Result<PathBuf> {
        validate_collection_name(name)?;
        Ok(self.root.join(name))
    }

    /// Creates collection `config.name`.
    pub fn create_collection(&self, config: CollectionConfig) -> Result<Arc<Collection>> {
        let dir = self.dir(&config.name)?;
        let mut open = self.open.lock();
        let name = config.name.clone();
        if self.removing.lock().contains(&name) {
            return Err(IndexError::CollectionBeingDeleted { name });
        }
        let collection = Arc::new(Collection::create(&dir, config)?);
        open.insert(name, Arc::clone(&collection));
        Ok(collection)
    }

    /// Opens collection `config.name`, checking `config` against its manifest (a different
    /// embedder or dimension is [`IndexError::ManifestMismatch`]).
    pub fn open_collection(&self, config: CollectionConfig) -> Result<Arc<Collection>> {
        let dir = self.dir(&config.name)?;
        let mut open = self.open.lock();
        if let Some(c) = open.get(&config.name) {
            let stored = crate::IndexManifest::from_config(c.config());
            stored.check_compatible(&crate::IndexManifest::from_config(&config))?;
            return Ok(Arc::clone(c));
        }
        let name = config.name.clone();
        let collection = Arc::new(Collection::open(&dir, config)?);
        open.insert(name, Arc::clone(&collection));
        Ok(collection)
    }

    /// The collection `name` with its persisted manifest; [`IndexError::CollectionNotFound`]
    /// if it does not exist.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        let dir = self.dir(name)?;
        let mut open = self.open.lock();
        if let Some(c) = open.get(name) {
            return Ok(Arc::clone(c));
        }
        let collection = Arc::new(Collection::open_existing_with(&dir, self.maintenance)?);
        open.insert(name.to_owned(), Arc::clone(&collection));
        Ok(collection)
    }

    /// Checkpoints every open collection ([`crate::IndexWriter::checkpoint`]: commit, dump the
    /// HNSW graph if it is behind, prune the op log), so the next open replays nothing. For a
    /// clean shutdown; returns the first error after trying them all.
    pub fn checkpoint_all(&self) -> Result<()> {
        let open: Vec<Arc<Collection>> = self.open.lock().values().cloned().collect();
        let mut first = None;
        for c in open {
            if let Err(e) = c.writer().checkpoint() {
                tracing::error!(collection = c.name(), "checkpoint failed: {e}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
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
        let mut open = self.open.lock();
        if self.removing.lock().contains(name) || !dir.join(MANIFEST).exists() {
            return Err(IndexError::CollectionNotFound {
                name: name.to_owned(),
            });
        }
        if open.get(name).is_some_and(|c| c.writer_in_use()) {
            return Err(IndexError::CollectionInUse {
                name: name.to_owned(),
            });
        }
        retire_manifest(&dir)?;
        match open.remove(name) {
            Some(c) => {
                self.removing.lock().insert(name.to_owned());
                c.remove_on_close(Arc::clone(&self.removing));
                // Removes the folder now unless a search still holds the collection.
                drop(c);
                Ok(())
            }
            None => remove_folder(&dir),
        }
    }
}
