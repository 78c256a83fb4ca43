//! Deleting a collection that searches still read.
//!
//! [`crate::Store::delete_collection`] retires the manifest first (renames it to
//! [`RETIRED_MANIFEST`], then syncs the folder): from that moment the collection is gone for
//! listing, opening and new searches, and its writer refuses writes. Searches that took a
//! snapshot before finish on it; the folder is removed when the last handle on the collection
//! closes ([`RemoveOnClose`], the last field of the shared state, so it runs after sled, tantivy
//! and the dense index have closed). Until then the name cannot be created again. A crash
//! between retiring and removing leaves a folder holding only the retired manifest, which the
//! next [`crate::Store::open`] removes ([`sweep`]). Likewise the staging folder of a snapshot a
//! crash interrupted is removed when its collection next opens ([`remove_staging`]), and
//! the reindexes a crash interrupted are finished or removed when the store opens
//! ([`sweep_reindexes`]; see `reindex`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::validate_collection_name;
use crate::durable::fsync;
use crate::meta::MetaStore;
use crate::{IndexError, Result};

/// A collection's manifest.
pub(crate) const MANIFEST: &str = "manifest.json";
/// The manifest of a deleted collection whose folder is not yet removed.
pub(crate) const RETIRED_MANIFEST: &str = "manifest.deleted";

/// Names of retired collections whose folders are still open; shared by a store and the
/// [`RemoveOnClose`] guards it armed.
pub(crate) type Removing = Arc<Mutex<HashSet<String>>>;

/// Removes a retired collection's folder when dropped (see the module docs); unarmed, does
/// nothing.
#[derive(Default)]
pub(crate) struct RemoveOnClose(Mutex<Option<Removal>>);

struct Removal {
    dir: PathBuf,
    name: String,
    removing: Removing,
    why: Retired,
}

/// Why a collection was retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retired {
    /// It was deleted.
    Deleted,
    /// A reindex replaced it with a new generation under the same name (see `reindex`).
    Replaced,
}

impl RemoveOnClose {
    /// Arms the guard: dropping it removes `dir`, then frees `name` in `removing`.
    pub fn arm(&self, dir: &Path, name: &str, removing: Removing, why: Retired) {
        *self.0.lock() = Some(Removal {
            dir: dir.to_owned(),
            name: name.to_owned(),
            removing,
            why,
        });
    }

    /// Why the collection was retired; `None` while it is live.
    pub fn retired(&self) -> Option<Retired> {
        self.0.lock().as_ref().map(|r| r.why)
    }
}

impl Drop for RemoveOnClose {
    fn drop(&mut self) {
        if let Some(r) = self.0.get_mut().take() {
            if let Err(e) = remove_folder(&r.dir) {
                tracing::error!(collection = r.name, "removing a deleted collection: {e}");
            }
            r.removing.lock().remove(&r.name);
        }
    }
}

/// Renames `dir`'s manifest to [`RETIRED_MANIFEST`] and syncs `dir`: after this returns, the
/// collection is deleted even if the process dies before its folder is removed.
pub(crate) fn retire_manifest(dir: &Path) -> Result<()> {
    let (from, to) = (dir.join(MANIFEST), dir.join(RETIRED_MANIFEST));
    std::fs::rename(&from, &to).map_err(|e| IndexError::io(&from, e))?;
    fsync(dir)
}

/// Removes a collection folder, its retired manifest last, so that a removal cut short leaves
/// a folder [`sweep`] still recognises. A folder already gone is not an error.
pub(crate) fn remove_folder(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(IndexError::io(dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| IndexError::io(dir, e))?.path();
        if path.file_name().is_some_and(|n| n == RETIRED_MANIFEST) {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(IndexError::io(&path, e))
            }
            _ => {}
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(IndexError::io(dir, e)),
        _ => Ok(()),
    }
}

/// Removes the folders under `root` that hold a retired manifest and no live one (deletions a
/// crash or another process's open handles left unfinished); returns how many.
pub(crate) fn sweep(root: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(root).map_err(|e| IndexError::io(root, e))? {
        let dir = entry.map_err(|e| IndexError::io(root, e))?.path();
        if dir.join(RETIRED_MANIFEST).is_file() && !dir.join(MANIFEST).exists() {
            remove_folder(&dir)?;
            tracing::info!(folder = %dir.display(), "removed a collection deleted before a restart");
            removed += 1;
        }
    }
    Ok(removed)
}

/// Prefix of the staging folders snapshots use inside a collection's folder (same file system,
/// so the graph dump is hard-linked, not copied); left over only by a crash, removed on open.
pub(crate) const STAGING_PREFIX: &str = ".snapshot-";

/// Removes the staging folders a snapshot interrupted by a crash left in a collection's folder.
pub(crate) fn remove_staging(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| IndexError::io(dir, e))? {
        let path = entry.map_err(|e| IndexError::io(dir, e))?.path();
        let staging = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(STAGING_PREFIX));
        if staging {
            std::fs::remove_dir_all(&path).map_err(|e| IndexError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Prefix of the folder a new generation is built in.
pub(crate) const BUILD_PREFIX: &str = ".reindex-";
/// Prefix of a replaced generation's folder, removed when its last search ends.
pub(crate) const REPLACED_PREFIX: &str = ".replaced-";
/// Written into a build folder once the new generation is complete.
pub(crate) const DONE: &str = "reindex.done";

/// Moves the source folder `dir` aside to `replaced` (if it is there) and the complete build
/// into its place, durably.
pub(crate) fn swap_in(build: &Path, dir: &Path, replaced: &Path, root: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::rename(dir, replaced).map_err(|e| IndexError::io(dir, e))?;
    }
    std::fs::rename(build, dir).map_err(|e| IndexError::io(build, e))?;
    let done = dir.join(DONE);
    std::fs::remove_file(&done).map_err(|e| IndexError::io(&done, e))?;
    fsync(root)
}

/// Finishes or removes what reindexes a crash interrupted under `root` (see `reindex`);
/// returns how many folders it handled.
pub(crate) fn sweep_reindexes(root: &Path) -> Result<usize> {
    let mut handled = 0;
    let mut replaced = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| IndexError::io(root, e))? {
        let path = entry.map_err(|e| IndexError::io(root, e))?.path();
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file.starts_with(REPLACED_PREFIX) {
            replaced.push(path);
            continue;
        }
        let Some(name) = file.strip_prefix(BUILD_PREFIX) else {
            continue;
        };
        if validate_collection_name(name).is_err() || !unlocked(&path.join("meta")) {
            continue;
        }
        let dir = root.join(name);
        if !path.join(DONE).exists() {
            remove_dir(&path)?;
            tracing::info!(collection = name, "removed a reindex a restart interrupted");
        } else if !dir.exists() || unlocked(&dir.join("meta")) {
            let replaced = root.join(format!("{REPLACED_PREFIX}{name}-{}", now_ms()));
            swap_in(&path, &dir, &replaced, root)?;
            remove_dir(&replaced)?;
            tracing::info!(
                collection = name,
                "finished a reindex a restart interrupted"
            );
        } else {
            continue;
        }
        handled += 1;
    }
    // After the builds: a replaced generation is removed once a collection holds its name, and
    // put back if none does (a switch that failed halfway), never lost.
    for path in replaced {
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(REPLACED_PREFIX))
            .and_then(|n| n.rsplit_once('-'))
            .map(|(name, _)| name.to_owned())
        else {
            continue;
        };
        if !unlocked(&path.join("meta")) {
            continue;
        }
        let dir = root.join(&name);
        if validate_collection_name(&name).is_ok() && !dir.exists() {
            std::fs::rename(&path, &dir).map_err(|e| IndexError::io(&path, e))?;
            fsync(root)?;
            tracing::warn!(
                collection = name,
                "put back a generation a failed reindex left aside"
            );
        } else {
            remove_dir(&path)?;
        }
        handled += 1;
    }
    Ok(handled)
}

/// Whether nobody holds the sled store at `meta` (opening it takes sled's lock, and fails while
/// another handle, in this process or another, holds it).
fn unlocked(meta: &Path) -> bool {
    if !meta.exists() {
        return true;
    }
    MetaStore::open(meta, 1 << 20).is_ok()
}

/// Removes a folder; one already gone is not an error.
pub(crate) fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(IndexError::io(path, e)),
        _ => Ok(()),
    }
}

/// Milliseconds since the epoch (names of replaced generations).
pub(crate) fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
