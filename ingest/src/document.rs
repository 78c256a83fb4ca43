//! [`Document`]: the normalised unit that loaders produce and chunkers consume.
//!
//! A document's text is always normalised ([`normalize_text`]) and never empty; chunk spans
//! point into that text. The [`content_hash`](Document::content_hash) covers id-independent
//! content (title, metadata and text), so re-ingesting an unchanged file is a no-op downstream
//! whatever the path it was reached by.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::normalize::normalize_text;

/// A stable document identifier: given by the source (JSONL `_id`) or derived from the file's
/// path relative to the ingest root, with `/` separators (e.g. `guide/install.md`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceId(pub String);

impl SourceId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SourceId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// A loaded, normalised document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    id: SourceId,
    title: String,
    metadata: BTreeMap<String, String>,
    text: String,
    content_hash: String,
}

impl Document {
    /// Builds a document, normalising `raw_text` and the title. Returns `None` when the text is
    /// empty or whitespace-only after normalisation (loaders turn that into
    /// [`IngestError::Empty`](crate::IngestError::Empty)).
    pub fn new(
        id: SourceId,
        title: &str,
        raw_text: &str,
        metadata: BTreeMap<String, String>,
    ) -> Option<Self> {
        let text = normalize_text(raw_text);
        if text.is_empty() {
            return None;
        }
        let title = normalize_text(title)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let content_hash = content_hash(&title, &metadata, &text);
        Some(Self {
            id,
            title,
            metadata,
            text,
            content_hash,
        })
    }

    /// The stable id.
    pub fn id(&self) -> &SourceId {
        &self.id
    }

    /// The title (normalised, one line; may be empty).
    pub fn title(&self) -> &str {
        &self.title
    }

    /// Metadata, key → string, sorted by key.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The normalised text; never empty.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Hex SHA-256 over title, metadata and text (see [`content_hash`]).
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }
}

/// Hex SHA-256 of a document's content: each field is fed as its byte length (u64 LE) then its
/// bytes, in the order title, each metadata key and value (sorted by key), text. Length
/// prefixes make the encoding unambiguous.
pub fn content_hash(title: &str, metadata: &BTreeMap<String, String>, text: &str) -> String {
    let mut hasher = Sha256::new();
    let mut feed = |s: &str| {
        hasher.update((s.len() as u64).to_le_bytes());
        hasher.update(s.as_bytes());
    };
    feed(title);
    for (k, v) in metadata {
        feed(k);
        feed(v);
    }
    feed(text);
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_hashes() {
        let doc = Document::new("a".into(), "T", "x\r\ny  z", BTreeMap::new()).unwrap();
        assert_eq!(doc.text(), "x\ny z");
        let same = Document::new("b".into(), "T", "x\ny z", BTreeMap::new()).unwrap();
        assert_eq!(doc.content_hash(), same.content_hash());
        let other = Document::new("a".into(), "T2", "x\ny z", BTreeMap::new()).unwrap();
        assert_ne!(doc.content_hash(), other.content_hash());
        assert_eq!(doc.content_hash().len(), 64);
    }

    #[test]
    fn empty_is_none() {
        assert!(Document::new("a".into(), "", " \n\t", BTreeMap::new()).is_none());
    }

    #[test]
    fn hash_is_unambiguous() {
        let m = BTreeMap::new();
        assert_ne!(content_hash("ab", &m, "c"), content_hash("a", &m, "bc"));
    }
}
