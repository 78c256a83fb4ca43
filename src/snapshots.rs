//! Snapshots as the service offers them: archives of a collection in the configured snapshot
//! folder (`Config::snapshot_dir`), listed, and restored under a new or free name for this
//! service's embedder. The archive itself (consistency, checksums, staging) is the index's
//! (`index::archive`); the gRPC handlers and the local `ragd snapshot` command both call these
//! functions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use index::{Collection, IndexError, SnapshotFile, SnapshotInfo, Store, SNAPSHOT_SUFFIX};

use crate::error::{Result, ServiceError};

/// The embedder a restored collection must have been made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderId {
    /// Its model id, as collections record it.
    pub model: String,
    /// Its vector dimension.
    pub dimension: usize,
    /// Its fingerprint (`ingest::Embedder::fingerprint`).
    pub fingerprint: String,
}

impl EmbedderId {
    /// The identity of `embedder`.
    pub fn of(embedder: &dyn ingest::Embedder) -> Self {
        Self {
            model: embedder.model_id().to_string(),
            dimension: embedder.dimension(),
            fingerprint: embedder.fingerprint(),
        }
    }
}

/// A snapshot as listed: its file name in the snapshot folder, size and contents.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SnapshotView {
    /// The archive's file name (what restore takes).
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// What it holds.
    #[serde(flatten)]
    pub info: SnapshotInfo,
    /// How long writes waited for the export when it was taken here (0 when listed).
    pub export_ms: f64,
}

impl From<SnapshotFile> for SnapshotView {
    fn from(f: SnapshotFile) -> Self {
        let SnapshotFile {
            path,
            bytes,
            info,
            export_ms,
        } = f;
        Self {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes,
            info,
            export_ms,
        }
    }
}

/// Takes a snapshot of `collection` into `dir`.
pub fn create(store: &Store, dir: &Path, collection: &str) -> Result<SnapshotView> {
    let c = store.collection(collection)?;
    Ok(c.write_snapshot(dir)?.into())
}

/// The snapshots in `dir` (of `collection` only, when given), newest first.
pub fn list(dir: &Path, collection: Option<&str>) -> Result<Vec<SnapshotView>> {
    Ok(index::list_snapshots(dir)?
        .into_iter()
        .filter(|f| collection.is_none_or(|c| f.info.collection == c))
        .map(SnapshotView::from)
        .collect())
}

/// The archive called `name` in `dir`. A name is a file name, never a path: a server must not
/// read archives outside its snapshot folder.
pub fn resolve(dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && name.ends_with(SNAPSHOT_SUFFIX);
    if !plain {
        return Err(ServiceError::InvalidArgument(format!(
            "snapshot {name:?}: give the file name of an archive in the snapshot folder (ending \
             in {SNAPSHOT_SUFFIX}), as ListSnapshots names it"
        )));
    }
    let path = dir.join(name);
    if !path.is_file() {
        return Err(ServiceError::NotFound {
            kind: "snapshot",
            id: name.to_string(),
        });
    }
    Ok(path)
}

/// Restores the archive at `path` as collection `name` (which must be free), refusing an
/// archive made with another embedder than `embedder`.
pub fn restore(
    store: &Store,
    path: &Path,
    name: &str,
    embedder: &EmbedderId,
) -> Result<(Arc<Collection>, SnapshotView)> {
    let (collection, info) = store.restore_snapshot(path, name, |info, manifest| {
        if manifest.embedding_model != embedder.model || manifest.dimension != embedder.dimension {
            return Err(IndexError::ManifestMismatch {
                field: "embedding_model",
                stored: format!(
                    "{} ({} dimensions) in snapshot of {}",
                    manifest.embedding_model, manifest.dimension, info.collection
                ),
                requested: format!(
                    "{} ({} dimensions) configured here; restore it where that embedder is \
                     configured",
                    embedder.model, embedder.dimension
                ),
            });
        }
        let stored = &manifest.embedder_fingerprint;
        if !stored.is_empty() && *stored != embedder.fingerprint {
            return Err(IndexError::EmbedderMismatch {
                collection: info.collection.clone(),
                stored: stored.clone(),
                requested: embedder.fingerprint.clone(),
            });
        }
        Ok(())
    })?;
    let view = SnapshotView::from(SnapshotFile {
        path: path.to_path_buf(),
        bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
        info,
        export_ms: 0.0,
    });
    Ok((collection, view))
}
