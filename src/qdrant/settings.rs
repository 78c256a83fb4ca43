//! The `[qdrant]` table: where the cluster is and how ragd's collections are laid out on it.

use std::path::PathBuf;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use tonic::transport::Certificate;

use super::error::{QdrantError, Result};

/// How ragd reaches a Qdrant cluster and shapes the collections it creates there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QdrantSettings {
    /// gRPC URLs of the cluster's nodes (`http://` or `https://`, Qdrant's gRPC port, 6334 by
    /// default). Calls go to one node and move to the next when it does not answer, so list
    /// several. Default: `["http://127.0.0.1:6334"]`. Env `RAGD_QDRANT_URLS` (comma-separated).
    pub urls: Vec<String>,
    /// API key sent with every call. Default: none. Env `RAGD_QDRANT_API_KEY`.
    pub api_key: Option<String>,
    /// A file holding the API key (one line; wins over `api_key`), so it stays out of the
    /// configuration. Default: none.
    pub api_key_file: Option<PathBuf>,
    /// A PEM file of certificate authorities trusted, beside the platform's roots, for
    /// `https://` nodes: a cluster whose certificates a private CA signed. Default: none.
    /// Env `RAGD_QDRANT_TLS_CA`.
    pub tls_ca: Option<PathBuf>,
    /// Prefix of the Qdrant collection names ragd creates and lists, so ragd shares a cluster
    /// with other users: ragd's collection `docs` is Qdrant's `ragd_docs`. Default: `ragd_`.
    pub collection_prefix: String,
    /// Shards of each new collection. Default: 3 (spread over up to three nodes).
    pub shard_number: u32,
    /// Copies of each shard. Default: 2 (a node may fail without losing data or searches).
    pub replication_factor: u32,
    /// Replicas that must acknowledge a write before ragd acknowledges it. Default: 1.
    pub write_consistency_factor: u32,
    /// Where the BM25 leg of a new collection takes its inverse document frequencies from
    /// (an existing collection keeps its own): `collection` (default) counts each query term's
    /// chunks over the whole collection, so BM25 scores as on the embedded index whatever the
    /// shard count, at the price of one indexed list of term ids per chunk and one count per
    /// query term; `shard` lets Qdrant weigh each term by its shard's own frequencies
    /// (`modifier: idf`), which costs nothing more and converges on the collection's as
    /// shards grow.
    pub idf: IdfScope,
    /// How long a server reuses the document frequencies it counted for collection-wide IDF,
    /// in milliseconds (0: count for every query). Default: 10000.
    pub idf_cache_ms: u64,
    /// Longest a call may take before it counts as failed, in milliseconds; also how long a
    /// call is tried again while the cluster fails over (a node answers that a shard's leader
    /// is unreachable). Default: 30000.
    pub timeout_ms: u64,
    /// Longest a connection may take to open, in milliseconds. Default: 2000.
    pub connect_timeout_ms: u64,
}

/// Whose document frequencies weigh a query term in a collection's BM25 leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdfScope {
    /// The shard's that holds the chunk (Qdrant's `modifier: idf`). What a collection made
    /// before the setting existed has.
    #[default]
    Shard,
    /// The whole collection's, counted by ragd at query time.
    Collection,
}

impl Default for QdrantSettings {
    fn default() -> Self {
        Self {
            urls: vec!["http://127.0.0.1:6334".into()],
            api_key: None,
            api_key_file: None,
            tls_ca: None,
            collection_prefix: "ragd_".into(),
            shard_number: 3,
            replication_factor: 2,
            write_consistency_factor: 1,
            idf: IdfScope::Collection,
            idf_cache_ms: 10_000,
            timeout_ms: 30_000,
            connect_timeout_ms: 2_000,
        }
    }
}

impl QdrantSettings {
    /// The certificates of `tls_ca`, read and checked now so that a wrong path or a file with
    /// no certificate stops ragd at start rather than at its first call.
    pub fn tls_ca_certificate(&self) -> Result<Option<Certificate>> {
        let Some(path) = &self.tls_ca else {
            return Ok(None);
        };
        let bad =
            |why: String| QdrantError::Settings(format!("qdrant.tls_ca {}: {why}", path.display()));
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            cert.map_err(|e| bad(format!("not a PEM certificate file ({e})")))?;
            found += 1;
        }
        if found == 0 {
            return Err(bad("holds no PEM certificate".into()));
        }
        Ok(Some(Certificate::from_pem(pem)))
    }

    /// What is wrong with these settings, if anything: `(field, reason)`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.urls.is_empty() {
            return Some(("qdrant.urls", "list at least one node".into()));
        }
        if let Some(bad) = self
            .urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Some((
                "qdrant.urls",
                format!("{bad:?} is not an http:// or https:// URL"),
            ));
        }
        let prefix_ok = self
            .collection_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !prefix_ok {
            return Some((
                "qdrant.collection_prefix",
                "use letters, digits, '_' and '-' only".into(),
            ));
        }
        if self.shard_number == 0 {
            return Some(("qdrant.shard_number", "must be at least 1".into()));
        }
        if self.replication_factor == 0 {
            return Some(("qdrant.replication_factor", "must be at least 1".into()));
        }
        if self.write_consistency_factor == 0
            || self.write_consistency_factor > self.replication_factor
        {
            return Some((
                "qdrant.write_consistency_factor",
                format!(
                    "must be between 1 and replication_factor ({})",
                    self.replication_factor
                ),
            ));
        }
        if self.timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Some(("qdrant.timeout_ms", "timeouts must be positive".into()));
        }
        None
    }
}
