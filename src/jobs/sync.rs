//! Folder sync: after a folder is ingested, delete the documents that came from files under it
//! which are gone, or which no longer hold them (a line removed from a JSONL file, a file
//! renamed: its new name is a new document, the old one goes).
//!
//! Which files a document came from is its `source` metadata (the file's canonical path, see
//! `ingest::source_name`). What the folder holds now comes from listing it
//! ([`ingest::present_documents`]: only JSONL files are read). Changed files need nothing here:
//! the ingest before the sync replaced them, and skipped the unchanged ones by content hash.
//!
//! A sync deletes only what it can see is gone: nothing when the folder itself or part of it
//! cannot be listed, and never the documents of a JSONL file with a line it could not read.

use std::path::{Path, PathBuf};

use ingest::LoadOptions;

use crate::collections::Opened;
use crate::error::Result;

/// Documents of `path` in `collection` whose files are gone; see the module docs.
pub fn gone_documents(collection: &Opened, path: &Path, load: &LoadOptions) -> Result<Vec<String>> {
    let root = root_of(path);
    let present = ingest::present_documents(path, load);
    let mut gone = Vec::new();
    collection.for_each_document(&mut |id, metadata| {
        let Some(source) = metadata.get("source") else {
            return;
        };
        if is_under(Path::new(source), &root) && present.is_gone(source, id) {
            gone.push(id.to_owned());
        }
    })?;
    Ok(gone)
}

/// Deletes the documents of `path` whose files are gone and publishes the deletion; returns
/// how many.
pub fn remove_gone(collection: &Opened, path: &Path, load: &LoadOptions) -> Result<usize> {
    let gone = gone_documents(collection, path, load)?;
    if gone.is_empty() {
        return Ok(0);
    }
    let deleted = collection
        .delete_documents(&gone)?
        .into_iter()
        .filter(|&existed| existed)
        .count();
    tracing::info!(
        collection = collection.config().name,
        path = %path.display(),
        deleted,
        "sync deleted the documents of files that are gone"
    );
    Ok(deleted)
}

/// The canonical form of `path` (as sources are recorded), or its absolute spelling when it
/// does not exist any more.
fn root_of(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Whether `source` is `root` or lies under it (component-wise: `/a/bc` is not under `/a/b`).
fn is_under(source: &Path, root: &Path) -> bool {
    source.starts_with(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_is_component_wise() {
        assert!(is_under(Path::new("/a/b/c.txt"), Path::new("/a/b")));
        assert!(is_under(Path::new("/a/b"), Path::new("/a/b")));
        assert!(!is_under(Path::new("/a/bc/d.txt"), Path::new("/a/b")));
    }
}
