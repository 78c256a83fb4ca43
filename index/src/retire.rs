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
//! crash interrupted is removed when its collection next opens ([`remove_staging`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::durable::fsync;
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
}

impl RemoveOnClose {
    /// Arms the guard: dropping it removes `dir`, then frees `name` in `removing`.
    pub fn arm(&self, dir: &Path, name: &str, removing: Removing) {
        *self.0.lock() = Some(Removal {
            dir: dir.to_owned(),
            name: name.to_owned(),
            removing,
        });
    }

    /// True once the collection is retired.
    pub fn is_armed(&self) -> bool {
        self.0.lock().is_some()
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
