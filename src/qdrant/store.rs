//! ragd's collections on a Qdrant cluster: create, open, list and drop them.

use std::sync::Arc;
use std::time::Duration;

use index::sparse_vectors::Bm25Params;
use index::{CollectionConfig, IndexError};
use qdrant_client::qdrant::{
    CreateCollectionBuilder, DeleteCollectionBuilder, Distance, FieldType, HnswConfigDiffBuilder,
    Modifier, SparseVectorParamsBuilder, SparseVectorsConfigBuilder, VectorParamsBuilder,
    VectorsConfigBuilder,
};

use super::cluster::Cluster;
use super::collection::{QdrantCollection, DENSE, META_PAIRS, SPARSE, TERMS};
use super::error::{QdrantError, Result};
use super::frequencies::FrequencyCache;
use super::ops::{self, StoredSettings, LAYOUT};
use super::settings::{IdfScope, QdrantSettings};

/// The cluster as ragd's store of collections.
#[derive(Debug, Clone)]
pub struct QdrantStore {
    cluster: Arc<Cluster>,
    settings: QdrantSettings,
    frequencies: Arc<FrequencyCache>,
}

impl QdrantStore {
    /// Connects to the cluster in `settings`; [`QdrantError::Unavailable`] naming every node
    /// when none answers.
    pub async fn connect(settings: &QdrantSettings) -> Result<Self> {
        let store = Self::new(settings)?;
        store.check().await?;
        Ok(store)
    }

    /// The cluster in `settings`, without a call yet (clients connect on first use); errors
    /// only for unusable settings.
    pub fn new(settings: &QdrantSettings) -> Result<Self> {
        Ok(Self {
            cluster: Arc::new(Cluster::new(settings)?),
            settings: settings.clone(),
            frequencies: Arc::new(FrequencyCache::new(Duration::from_millis(
                settings.idf_cache_ms,
            ))),
        })
    }

    /// Asks the cluster for its version; [`QdrantError::Unavailable`] naming every node when
    /// none answers.
    pub async fn check(&self) -> Result<String> {
        let version = self.cluster.check().await?;
        tracing::info!(
            urls = ?self.cluster.urls().collect::<Vec<_>>(),
            %version,
            "connected to the Qdrant cluster"
        );
        Ok(version)
    }

    pub(super) fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub(super) fn settings(&self) -> &QdrantSettings {
        &self.settings
    }

    /// The Qdrant name of ragd collection `name`.
    pub fn qdrant_name(&self, name: &str) -> String {
        format!("{}{name}", self.settings.collection_prefix)
    }

    /// Opens ragd collection `name`; `CollectionNotFound` when the cluster has none.
    pub async fn open(&self, name: &str) -> Result<QdrantCollection> {
        let qname = self.qdrant_name(name);
        let Some(described) = ops::describe(&self.cluster, &qname).await? else {
            return Err(IndexError::CollectionNotFound { name: name.into() }.into());
        };
        let Some(settings) = described.settings else {
            return Err(QdrantError::FailedPrecondition(format!(
                "Qdrant collection {qname:?} was not made by ragd (its metadata has no \
                 {:?} settings): choose another collection name or qdrant.collection_prefix",
                ops::SETTINGS_KEY
            )));
        };
        if settings.layout != LAYOUT {
            return Err(QdrantError::FailedPrecondition(format!(
                "Qdrant collection {qname:?} has ragd layout {}, this version reads {LAYOUT}",
                settings.layout
            )));
        }
        Ok(QdrantCollection::new(
            self.cluster.clone(),
            qname,
            settings,
            described.shards,
            self.frequencies.clone(),
        ))
    }

    /// Opens collection `config.name`, creating it if the cluster has none. An existing one
    /// keeps its own settings; one made with another embedding model or dimension is
    /// [`QdrantError::FailedPrecondition`]. `bm25`: the sparse vectors' parameters for a new
    /// collection, or `None` to measure them on its first write.
    pub async fn open_or_create(
        &self,
        config: &CollectionConfig,
        bm25: Option<Bm25Params>,
    ) -> Result<QdrantCollection> {
        index::config::validate_collection_name(&config.name)?;
        match self.open(&config.name).await {
            Ok(c) => {
                check_compatible(c.config(), config)?;
                return Ok(c);
            }
            Err(QdrantError::Index(IndexError::CollectionNotFound { .. })) => {}
            Err(e) => return Err(e),
        }
        self.create(config, bm25).await?;
        let c = self.open(&config.name).await?;
        // Another process may have created it first, with its own configuration.
        check_compatible(c.config(), config)?;
        Ok(c)
    }

    async fn create(&self, config: &CollectionConfig, bm25: Option<Bm25Params>) -> Result<()> {
        if let Some(p) = &bm25 {
            p.validate()?;
        }
        let qname = self.qdrant_name(&config.name);
        let settings = StoredSettings {
            layout: LAYOUT,
            config: config.clone(),
            bm25,
            idf: self.settings.idf,
        };
        // With collection-wide IDF ragd weighs the query's terms itself: the stored vectors
        // are used as they are.
        let modifier = match settings.idf {
            IdfScope::Shard => Modifier::Idf,
            IdfScope::Collection => Modifier::None,
        };
        let metadata = settings.metadata()?;
        let s = &self.settings;
        let created = self
            .cluster
            .call(|c| {
                let mut vectors = VectorsConfigBuilder::default();
                vectors.add_named_vector_params(
                    DENSE,
                    VectorParamsBuilder::new(config.dimension as u64, Distance::Cosine)
                        .hnsw_config(
                            HnswConfigDiffBuilder::default()
                                .m(config.hnsw.m as u64)
                                .ef_construct(config.hnsw.ef_construction as u64),
                        ),
                );
                let mut sparse = SparseVectorsConfigBuilder::default();
                sparse.add_named_vector_params(
                    SPARSE,
                    SparseVectorParamsBuilder::default().modifier(modifier as i32),
                );
                let request = CreateCollectionBuilder::new(&qname)
                    .vectors_config(vectors)
                    .sparse_vectors_config(sparse)
                    .shard_number(s.shard_number)
                    .replication_factor(s.replication_factor)
                    .write_consistency_factor(s.write_consistency_factor)
                    .metadata(metadata.clone());
                async move { c.create_collection(request).await }
            })
            .await;
        match created {
            Ok(_) => {}
            // Created meanwhile by another ragd process (or a retried call that had landed).
            Err(QdrantError::FailedPrecondition(m)) if m.contains("already exists") => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        ops::create_keyword_index(&self.cluster, &qname, "doc_id").await?;
        ops::create_keyword_index(&self.cluster, &qname, META_PAIRS).await?;
        ops::create_index(&self.cluster, &qname, "ordinal", FieldType::Integer).await?;
        if settings.idf == IdfScope::Collection {
            ops::create_lookup_index(&self.cluster, &qname, TERMS).await?;
        }
        // Counts kept from a collection of this name that was dropped are not this one's.
        self.frequencies.forget(&qname);
        tracing::info!(collection = %config.name, qdrant = %qname, "created the Qdrant collection");
        Ok(())
    }

    /// Deletes ragd collection `name` from the cluster; false when there was none.
    pub async fn drop_collection(&self, name: &str) -> Result<bool> {
        let qname = self.qdrant_name(name);
        // Only a collection ragd made: the prefix may be shared with others' collections.
        match self.open(name).await {
            Ok(_) => {}
            Err(QdrantError::Index(IndexError::CollectionNotFound { .. })) => return Ok(false),
            Err(e) => return Err(e),
        }
        let got = self
            .cluster
            .call(|c| {
                let request = DeleteCollectionBuilder::new(&qname);
                async move { c.delete_collection(request).await }
            })
            .await?;
        self.frequencies.forget(&qname);
        Ok(got.result)
    }

    /// Names of ragd's collections on the cluster, sorted.
    pub async fn list(&self) -> Result<Vec<String>> {
        let got = self
            .cluster
            .call(|c| async move { c.list_collections().await })
            .await?;
        let mut names: Vec<String> = got
            .collections
            .into_iter()
            .filter_map(|c| {
                c.name
                    .strip_prefix(&self.settings.collection_prefix)
                    .map(str::to_string)
            })
            // Not a ragd collection's name: the job records' `<prefix>.jobs`, say.
            .filter(|name| index::config::validate_collection_name(name).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// An existing collection serves `requested` only with the same embedder and dimension.
fn check_compatible(stored: &CollectionConfig, requested: &CollectionConfig) -> Result<()> {
    let mut want = stored.clone();
    want.embedding_model = requested.embedding_model.clone();
    want.dimension = requested.dimension;
    want.embedder_fingerprint = requested.embedder_fingerprint.clone();
    match index::IndexManifest::from_config(stored)
        .check_compatible(&index::IndexManifest::from_config(&want))
    {
        Ok(()) => Ok(()),
        Err(e) => Err(QdrantError::FailedPrecondition(format!(
            "collection {:?} on the Qdrant cluster cannot be used with this embedder: {e}",
            stored.name
        ))),
    }
}
