//! What a folder (or file) holds now, for a sync: the documents a stream of it would yield,
//! by source file, without parsing anything but JSONL.
//!
//! A file read whole is one document whose id is its path relative to the folder, so listing
//! the folder is enough. A JSONL file holds one document per line, with ids inside the lines,
//! so it is read (not chunked or embedded). Whatever cannot be known for sure — a JSONL file
//! with a bad line, a folder entry that cannot be listed — is marked so, and a sync must keep
//! the documents that came from there rather than delete what it cannot see.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::stream::{FileItem, Files, JsonlLines, Loaded, OwnedSource};
use super::{source_name, Format, LoadOptions};

/// The documents under a path now, by source (see [`source_name`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Present {
    /// Every source file a stream would read, with the ids of its documents, or `None` when
    /// they are not all known (a JSONL line could not be read).
    pub sources: BTreeMap<String, Option<BTreeSet<String>>>,
    /// Entries of the folder that could not be listed: what lies under them is unknown.
    pub unlisted: usize,
}

impl Present {
    /// Whether a stored document `id` from `source` is gone from the folder: its file is not
    /// there any more (or no longer read), or the file no longer yields `id`. Never true while
    /// part of the folder could not be listed.
    pub fn is_gone(&self, source: &str, id: &str) -> bool {
        if self.unlisted > 0 {
            return false;
        }
        match self.sources.get(source) {
            None => true,
            Some(Some(ids)) => !ids.contains(id),
            Some(None) => false,
        }
    }
}

/// Lists what `path` holds now: the same files as [`stream_path`](super::stream_path), in the
/// same way (hidden entries, unknown types, links as `opts` says).
pub fn present_documents(path: &Path, opts: &LoadOptions) -> Present {
    let mut present = Present::default();
    for item in Files::new(path, opts) {
        match item {
            FileItem::File { path, id, format } => {
                let source = source_name(&path);
                let ids = if format == Format::Jsonl {
                    jsonl_ids(&path, &id, &source, opts)
                } else {
                    Some(BTreeSet::from([id]))
                };
                present.sources.insert(source, ids);
            }
            FileItem::Skip(_) => {}
            FileItem::Error(_) => present.unlisted += 1,
        }
    }
    present
}

/// The ids of a JSONL file's documents, or `None` if a line cannot be read.
fn jsonl_ids(path: &Path, id: &str, source: &str, opts: &LoadOptions) -> Option<BTreeSet<String>> {
    let file = File::open(path).ok()?;
    let owned = OwnedSource::new(path, id, Format::Jsonl, source.to_owned());
    let lines = JsonlLines::new(owned, BufReader::with_capacity(1 << 16, file), opts);
    let mut ids = BTreeSet::new();
    for item in lines {
        match item {
            Loaded::Document { document, .. } => {
                ids.insert(document.id().as_str().to_owned());
            }
            Loaded::Error { .. } => return None,
            Loaded::Skipped(_) => {}
        }
    }
    Some(ids)
}
