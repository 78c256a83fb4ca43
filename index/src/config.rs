//! Collection configuration and the persisted manifest.
//!
//! [`CollectionConfig`] is what a caller passes to create or open a collection. Its index-shaping
//! part is persisted as [`IndexManifest`] (`manifest.json` next to the data) and checked on every
//! open: a different embedding model, dimension, distance, HNSW graph parameters or BM25 analyzer
//! is a [`crate::IndexError::ManifestMismatch`], never a silent mismatch. `ef_search` and
//! [`MaintenanceConfig`] only tune runtime behaviour and may change between opens.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{IndexError, Result};

/// Format version written into new manifests.
pub const MANIFEST_FORMAT: u32 = 1;

/// Longest accepted collection name, in bytes.
pub const MAX_COLLECTION_NAME: usize = 128;

/// Similarity used by the dense index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    /// Cosine similarity: vectors are normalised on the way in and compared with hnsw_rs's
    /// `DistDot` (`1 - a·b`).
    #[default]
    Cosine,
}

/// HNSW parameters (Malkov & Yashunin 2018). `m` and `ef_construction` shape the graph and are
/// checked against the manifest; `ef_search` is a search-time knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswConfig {
    /// Max neighbours per node and layer (`M`); hnsw_rs requires `<= 256`.
    #[serde(default = "default_m")]
    pub m: usize,
    /// Candidate list size while building (`efConstruction`).
    #[serde(default = "default_ef_construction")]
    pub ef_construction: usize,
    /// Candidate list size while searching (`ef`); raised to `k` when `k` is larger.
    #[serde(default = "default_ef_search")]
    pub ef_search: usize,
}

fn default_m() -> usize {
    16
}
fn default_ef_construction() -> usize {
    200
}
fn default_ef_search() -> usize {
    200
}

impl Default for HnswConfig {
    fn default() -> Self {
        Self {
            m: default_m(),
            ef_construction: default_ef_construction(),
            ef_search: default_ef_search(),
        }
    }
}

/// Text analysis for BM25.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Bm25Analyzer {
    /// Words split on non-alphanumerics, lower-cased, English stop words removed, English
    /// (Snowball/Porter) stemming.
    English,
    /// Script-aware: overlapping bigrams over Han/Kana/Hangul runs, lower-cased word tokens for
    /// everything else (see [`crate::sparse::CjkTokenizer`]).
    Cjk,
    /// The default, chosen per script inside one text: bigrams over Han/Kana/Hangul runs as
    /// [`Self::Cjk`], and for other words what [`Self::English`] does (lower-case, stop words,
    /// stemming). English text gets exactly the English terms; Chinese, Japanese and
    /// mixed-script text is searchable too.
    #[default]
    Multilingual,
}

/// BM25 configuration. tantivy scores with `k1 = 1.2`, `b = 0.75` (Robertson & Zaragoza 2009):
/// `idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bm25Config {
    /// The analyzer for title and text.
    #[serde(default)]
    pub analyzer: Bm25Analyzer,
    /// Whether each chunk's text field is indexed with its document's title in front (the
    /// title field then weighs [`crate::sparse::TITLE_BOOST_WITH_TITLE_IN_TEXT`], else
    /// [`crate::sparse::TITLE_BOOST`]). On for new collections; a manifest written before this
    /// setting existed reads `false`, so an existing collection keeps the scoring its chunks were
    /// indexed for until it is rebuilt.
    #[serde(default)]
    pub title_in_text: bool,
}

impl Default for Bm25Config {
    fn default() -> Self {
        Self {
            analyzer: Bm25Analyzer::default(),
            title_in_text: true,
        }
    }
}

/// Runtime maintenance knobs (not part of the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// A commit also dumps the HNSW graph once this many writes happened since the last dump
    /// (and, whatever this says, once the points added since it reach a quarter of the graph
    /// and 1,024: see `DenseWriter::dump_lagging`).
    #[serde(default = "default_dump_every")]
    pub dump_every_writes: u64,
    /// A commit rebuilds the HNSW graph without tombstones once they exceed this fraction of its
    /// points (and [`Self::compact_min_tombstones`]).
    #[serde(default = "default_compact_ratio")]
    pub compact_tombstone_ratio: f32,
    /// Minimum tombstones before a compaction is considered.
    #[serde(default = "default_compact_min")]
    pub compact_min_tombstones: usize,
    /// sled page cache size in bytes.
    #[serde(default = "default_sled_cache")]
    pub sled_cache_bytes: u64,
    /// tantivy indexing memory budget in bytes (at least 15 MB).
    #[serde(default = "default_tantivy_budget")]
    pub tantivy_memory_bytes: usize,
}

fn default_dump_every() -> u64 {
    10_000
}
fn default_compact_ratio() -> f32 {
    0.2
}
fn default_compact_min() -> usize {
    256
}
fn default_sled_cache() -> u64 {
    64 << 20
}
fn default_tantivy_budget() -> usize {
    32 << 20
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            dump_every_writes: default_dump_every(),
            compact_tombstone_ratio: default_compact_ratio(),
            compact_min_tombstones: default_compact_min(),
            sled_cache_bytes: default_sled_cache(),
            tantivy_memory_bytes: default_tantivy_budget(),
        }
    }
}

/// Everything needed to create or open a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// Collection name (see [`validate_collection_name`]).
    pub name: String,
    /// Id of the embedding model that produced the vectors.
    pub embedding_model: String,
    /// Vector dimension.
    pub dimension: usize,
    /// Everything that decides the vectors, as the embedder states it (model, weights' digest,
    /// dimension, precision); opaque here, compared for equality. Empty: unknown (collections
    /// made before it was recorded), which any embedder of the same model and dimension may use.
    #[serde(default)]
    pub embedder_fingerprint: String,
    /// Dense similarity.
    #[serde(default)]
    pub distance: Distance,
    /// HNSW parameters.
    #[serde(default)]
    pub hnsw: HnswConfig,
    /// BM25 parameters.
    #[serde(default)]
    pub bm25: Bm25Config,
    /// Runtime maintenance knobs.
    #[serde(default)]
    pub maintenance: MaintenanceConfig,
}

impl CollectionConfig {
    /// A config with defaults for everything but name, model and dimension.
    pub fn new(
        name: impl Into<String>,
        embedding_model: impl Into<String>,
        dimension: usize,
    ) -> Self {
        Self {
            name: name.into(),
            embedding_model: embedding_model.into(),
            dimension,
            embedder_fingerprint: String::new(),
            distance: Distance::default(),
            hnsw: HnswConfig::default(),
            bm25: Bm25Config::default(),
            maintenance: MaintenanceConfig::default(),
        }
    }
}

/// The persisted, index-shaping part of a [`CollectionConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexManifest {
    /// Manifest format version ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// Collection name.
    pub name: String,
    /// Embedding model id.
    pub embedding_model: String,
    /// Vector dimension.
    pub dimension: usize,
    /// See [`CollectionConfig::embedder_fingerprint`]; empty in manifests written before it.
    #[serde(default)]
    pub embedder_fingerprint: String,
    /// Dense similarity.
    pub distance: Distance,
    /// HNSW parameters as created (`ef_search` is informational).
    pub hnsw: HnswConfig,
    /// BM25 analyzer.
    pub bm25: Bm25Config,
}

impl IndexManifest {
    /// The manifest of `config`.
    pub fn from_config(config: &CollectionConfig) -> Self {
        Self {
            format: MANIFEST_FORMAT,
            name: config.name.clone(),
            embedding_model: config.embedding_model.clone(),
            dimension: config.dimension,
            embedder_fingerprint: config.embedder_fingerprint.clone(),
            distance: config.distance,
            hnsw: config.hnsw,
            bm25: config.bm25,
        }
    }

    /// Errors with [`IndexError::ManifestMismatch`] on the first index-shaping field where
    /// `requested` differs from `self`.
    pub fn check_compatible(&self, requested: &IndexManifest) -> Result<()> {
        fn cmp<T: PartialEq + std::fmt::Debug>(field: &'static str, a: &T, b: &T) -> Result<()> {
            if a == b {
                return Ok(());
            }
            Err(IndexError::ManifestMismatch {
                field,
                stored: format!("{a:?}"),
                requested: format!("{b:?}"),
            })
        }
        cmp("name", &self.name, &requested.name)?;
        cmp(
            "embedding_model",
            &self.embedding_model,
            &requested.embedding_model,
        )?;
        cmp("dimension", &self.dimension, &requested.dimension)?;
        let (stored, wanted) = (&self.embedder_fingerprint, &requested.embedder_fingerprint);
        if !stored.is_empty() && !wanted.is_empty() && stored != wanted {
            return Err(IndexError::EmbedderMismatch {
                collection: self.name.clone(),
                stored: stored.clone(),
                requested: wanted.clone(),
            });
        }
        cmp("distance", &self.distance, &requested.distance)?;
        cmp("hnsw.m", &self.hnsw.m, &requested.hnsw.m)?;
        cmp(
            "hnsw.ef_construction",
            &self.hnsw.ef_construction,
            &requested.hnsw.ef_construction,
        )?;
        cmp(
            "bm25.analyzer",
            &self.bm25.analyzer,
            &requested.bm25.analyzer,
        )
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| IndexError::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| IndexError::corrupt("manifest.json", e))
    }

    /// Writes `path` atomically (temp file, fsync, rename).
    pub fn store(&self, path: &Path) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| IndexError::corrupt("manifest.json", e))?;
        crate::durable::write_atomically(path, &json)
    }
}

/// Checks the config before anything touches the disk.
pub(crate) fn validate_config(config: &CollectionConfig) -> Result<()> {
    validate_collection_name(&config.name)?;
    let bad = |field: &'static str, value: String| IndexError::ManifestMismatch {
        field,
        stored: "a valid value".into(),
        requested: value,
    };
    if config.dimension == 0 {
        return Err(bad("dimension", "0".into()));
    }
    if config.hnsw.m < 2 || config.hnsw.m > 256 {
        return Err(bad("hnsw.m", config.hnsw.m.to_string()));
    }
    if config.hnsw.ef_construction == 0 {
        return Err(bad("hnsw.ef_construction", "0".into()));
    }
    Ok(())
}

/// Accepts names of 1..=128 chars from `[A-Za-z0-9_.-]` that do not start with `.`; this rules
/// out `/`, `..`, empty names and hidden directories.
pub fn validate_collection_name(name: &str) -> Result<()> {
    let reject = |reason| {
        Err(IndexError::InvalidCollectionName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return reject("empty");
    }
    if name.len() > MAX_COLLECTION_NAME {
        return reject("longer than 128 characters");
    }
    if name.starts_with('.') {
        return reject("starts with '.'");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !name.chars().all(allowed) {
        return reject("only [A-Za-z0-9_.-] allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "docs_v2", "A-b.c", &"x".repeat(128)] {
            assert!(validate_collection_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "é",
            "../x",
            &"x".repeat(129),
        ] {
            assert!(validate_collection_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifest_mismatch_names_field() {
        let a = IndexManifest::from_config(&CollectionConfig::new("c", "m1", 8));
        let mut b = a.clone();
        b.dimension = 9;
        let err = a.check_compatible(&b).unwrap_err();
        assert!(matches!(
            err,
            IndexError::ManifestMismatch {
                field: "dimension",
                ..
            }
        ));
        let mut c = a.clone();
        c.hnsw.ef_search = 999;
        a.check_compatible(&c).unwrap();
    }

    #[test]
    fn fingerprints_must_match_where_recorded() {
        let old = IndexManifest::from_config(&CollectionConfig::new("c", "m1", 8));
        let with = |f: &str| IndexManifest {
            embedder_fingerprint: f.into(),
            ..old.clone()
        };
        // A collection from before fingerprints accepts any embedder of its model and dimension.
        old.check_compatible(&with("model=m1 precision=q8"))
            .unwrap();
        with("model=m1 precision=q8")
            .check_compatible(&with("model=m1 precision=q8"))
            .unwrap();
        let err = with("model=m1 precision=f32")
            .check_compatible(&with("model=m1 precision=q8"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, IndexError::EmbedderMismatch { .. }), "{msg}");
        assert!(
            msg.contains("precision=f32") && msg.contains("precision=q8"),
            "{msg}"
        );
    }
}
