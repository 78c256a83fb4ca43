//! Collection-level calls shared by the store and its collections: ragd's settings in a Qdrant
//! collection's metadata, and payload indexes.

use std::collections::HashMap;

use index::sparse_vectors::Bm25Params;
use index::CollectionConfig;
use qdrant_client::qdrant::{
    CreateFieldIndexCollectionBuilder, FieldType, IntegerIndexParamsBuilder,
    UpdateCollectionBuilder,
};
use serde::{Deserialize, Serialize};

use super::cluster::Cluster;
use super::error::{QdrantError, Result};
use super::settings::IdfScope;

/// Key of ragd's settings in a Qdrant collection's metadata.
pub const SETTINGS_KEY: &str = "ragd";
/// Version of the point layout (see `collection.rs`).
pub const LAYOUT: u32 = 1;

/// What ragd keeps in a Qdrant collection's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSettings {
    /// [`LAYOUT`] of the points.
    pub layout: u32,
    /// The collection as ragd configured it.
    pub config: CollectionConfig,
    /// The BM25 parameters the sparse vectors are made with; `None` until the first write
    /// measures them.
    pub bm25: Option<Bm25Params>,
    /// Whose document frequencies the BM25 leg uses (`shard` for a collection made before
    /// the choice existed).
    #[serde(default)]
    pub idf: IdfScope,
}

impl StoredSettings {
    /// The collection metadata holding these settings.
    pub fn metadata(&self) -> Result<HashMap<String, serde_json::Value>> {
        let json = serde_json::to_value(self).map_err(|e| QdrantError::Internal(e.to_string()))?;
        Ok(HashMap::from([(SETTINGS_KEY.to_string(), json)]))
    }
}

/// What the cluster knows of a Qdrant collection ragd uses.
#[derive(Debug, Clone)]
pub struct Described {
    /// ragd's settings, `None` when the collection has none (ragd did not make it).
    pub settings: Option<StoredSettings>,
    /// How many shards the collection is cut into.
    pub shards: u32,
}

/// Reads the collection `qname`; `Ok(None)` when it does not exist.
pub async fn describe(cluster: &Cluster, qname: &str) -> Result<Option<Described>> {
    let got = cluster
        .call(|c| async move { c.collection_info(qname).await })
        .await;
    let info = match got {
        Ok(r) => r.result,
        Err(QdrantError::Missing(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(info) = info else {
        return Ok(None);
    };
    let settings = match info
        .config
        .as_ref()
        .and_then(|c| c.metadata.get(SETTINGS_KEY))
    {
        Some(value) => Some(
            serde_json::from_value(serde_json::Value::from(value.clone())).map_err(|e| {
                QdrantError::FailedPrecondition(format!(
                    "Qdrant collection {qname:?} holds ragd settings this version cannot read: {e}"
                ))
            })?,
        ),
        None => None,
    };
    let shards = info
        .config
        .as_ref()
        .and_then(|c| c.params.as_ref())
        .map_or(1, |p| p.shard_number.max(1));
    Ok(Some(Described { settings, shards }))
}

/// The ragd settings of collection `qname`.
pub async fn read_settings(cluster: &Cluster, qname: &str) -> Result<StoredSettings> {
    describe(cluster, qname)
        .await?
        .and_then(|d| d.settings)
        .ok_or_else(|| QdrantError::Missing(format!("collection {qname:?}")))
}

/// Stores `settings` in collection `qname`'s metadata.
pub async fn write_settings(
    cluster: &Cluster,
    qname: &str,
    settings: &StoredSettings,
) -> Result<()> {
    let metadata = settings.metadata()?;
    cluster
        .call(|c| {
            let request = UpdateCollectionBuilder::new(qname).metadata(metadata.clone());
            async move { c.update_collection(request).await }
        })
        .await?;
    Ok(())
}

/// Creates a payload index of `kind` on `field` (nothing happens if it exists).
pub async fn create_index(
    cluster: &Cluster,
    qname: &str,
    field: &str,
    kind: FieldType,
) -> Result<()> {
    cluster
        .call(|c| {
            let request = CreateFieldIndexCollectionBuilder::new(qname, field, kind).wait(true);
            async move { c.create_field_index(request).await }
        })
        .await?;
    Ok(())
}

/// Creates an integer payload index on `field` for exact matches only (no ranges), the
/// lighter of Qdrant's two integer indexes.
pub async fn create_lookup_index(cluster: &Cluster, qname: &str, field: &str) -> Result<()> {
    cluster
        .call(|c| {
            let request = CreateFieldIndexCollectionBuilder::new(qname, field, FieldType::Integer)
                .field_index_params(IntegerIndexParamsBuilder::new(true, false))
                .wait(true);
            async move { c.create_field_index(request).await }
        })
        .await?;
    Ok(())
}

/// Creates a keyword payload index on `field`.
pub async fn create_keyword_index(cluster: &Cluster, qname: &str, field: &str) -> Result<()> {
    create_index(cluster, qname, field, FieldType::Keyword).await
}
