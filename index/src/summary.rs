//! What a collection's listing shows without opening it: `<dir>/counts.json`.
//!
//! Each commit that changed the collection records its document and chunk counts there, and an
//! open records them after recovery. The file is written to a temporary name and renamed into
//! place but not fsynced: it is a report, not data. After a crash it may show the counts of an
//! earlier commit until the collection is next opened (recovery replays the rest and rewrites
//! it); it never shows a half-written file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::meta::MetaStore;
use crate::types::Seq;

const COUNTS: &str = "counts.json";

/// A collection as listed (see [`crate::Store::summaries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSummary {
    /// Its name.
    pub name: String,
    /// The embedding model its vectors come from.
    pub embedding_model: String,
    /// Vector dimension.
    pub dimension: usize,
    /// The fingerprint of the embedder it was made with (empty when not recorded).
    pub embedder_fingerprint: String,
    /// Documents stored.
    pub documents: u64,
    /// Chunks stored.
    pub chunks: u64,
    /// Whether it is open in this process now (else the counts are its last commit's).
    pub open: bool,
}

/// A collection's counts as of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Documents stored.
    pub documents: u64,
    /// Chunks stored.
    pub chunks: u64,
    /// The last write they include.
    pub seq: Seq,
}

impl Counts {
    /// The counts `meta` holds now (acknowledged writes included).
    pub(crate) fn of(meta: &MetaStore) -> crate::Result<Self> {
        Ok(Self {
            documents: meta.doc_count()?,
            chunks: meta.chunk_count()?,
            seq: meta.last_seq()?,
        })
    }

    /// The counts recorded in `dir`, if there are readable ones.
    pub fn load(dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(dir.join(COUNTS)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records these counts in `dir` (see the module docs); a failure is logged, not returned:
    /// the collection's data does not depend on it.
    pub fn store(&self, dir: &Path) {
        let path = dir.join(COUNTS);
        let tmp = dir.join(format!("{COUNTS}.tmp"));
        let written = serde_json::to_vec(self)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&tmp, json))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "recording the collection's counts: {e}");
        }
    }
}
