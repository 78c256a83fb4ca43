//! The `[qdrant]` table: where the cluster is and how ragd's collections are laid out on it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Prefix of the Qdrant collection names ragd creates and lists, so ragd shares a cluster
    /// with other users: ragd's collection `docs` is Qdrant's `ragd_docs`. Default: `ragd_`.
    pub collection_prefix: String,
    /// Shards of each new collection. Default: 3 (spread over up to three nodes).
    pub shard_number: u32,
    /// Copies of each shard. Default: 2 (a node may fail without losing data or searches).
    pub replication_factor: u32,
    /// Replicas that must acknowledge a write before ragd acknowledges it. Default: 1.
    pub write_consistency_factor: u32,
    /// Longest a call may take before it counts as failed, in milliseconds. Default: 30000.
    pub timeout_ms: u64,
    /// Longest a connection may take to open, in milliseconds. Default: 2000.
    pub connect_timeout_ms: u64,
}

impl Default for QdrantSettings {
    fn default() -> Self {
        Self {
            urls: vec!["http://127.0.0.1:6334".into()],
            api_key: None,
            api_key_file: None,
            collection_prefix: "ragd_".into(),
            shard_number: 3,
            replication_factor: 2,
            write_consistency_factor: 1,
            timeout_ms: 30_000,
            connect_timeout_ms: 2_000,
        }
    }
}

impl QdrantSettings {
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
