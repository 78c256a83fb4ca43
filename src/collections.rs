//! Where a server's collections live, chosen by `backend`: the embedded [`Store`] in the data
//! folder, or a Qdrant cluster ([`crate::qdrant`]) that any number of ragd servers share.
//!
//! [`Collections`] lists, creates, opens and deletes them; an [`Opened`] collection is written
//! through [`DocumentSink`] and read through [`ChunkSource`] (a [`Searcher`] snapshot, or the
//! cluster itself), so ingestion, retrieval and answering run the same code on both. What only
//! the embedded store does (snapshots, reindexing, closing idle collections, checkpoints) is
//! reached through [`Collections::embedded`], which names the backend that lacks it.
//!
//! Every method blocks: call them from the blocking pool (the Qdrant backend waits for its
//! calls on the runtime it was made on, which tokio forbids from the runtime's own workers).
//! A Qdrant collection is opened afresh, one small call, for every request, so a collection
//! another server created, dropped or wrote its BM25 parameters to is seen at once.

use std::sync::Arc;

use index::{
    ChunkSource, Collection, CollectionConfig, DocumentInfo, DocumentSink, IndexError, Searcher,
    Store,
};
use ingest::Embedder;
use tokio::runtime::Handle;

use crate::config::{Backend, Config};
use crate::error::{Result, ServiceError};
use crate::qdrant::{Blocking, QdrantError, QdrantJobRecords, QdrantStore};

/// A collection and its counts, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CollectionInfo {
    /// Its name.
    pub name: String,
    /// The embedding model it was made with.
    pub embedding_model: String,
    /// Vector dimension.
    pub dimension: usize,
    /// The embedder's fingerprint it was made with (empty when not recorded).
    pub embedder_fingerprint: String,
    /// Documents stored.
    pub documents: u64,
    /// Chunks stored.
    pub chunks: u64,
}

impl From<index::CollectionSummary> for CollectionInfo {
    fn from(s: index::CollectionSummary) -> Self {
        let index::CollectionSummary {
            name,
            embedding_model,
            dimension,
            embedder_fingerprint,
            documents,
            chunks,
            open: _,
        } = s;
        Self {
            name,
            embedding_model,
            dimension,
            embedder_fingerprint,
            documents,
            chunks,
        }
    }
}

impl CollectionInfo {
    fn of(config: &CollectionConfig, documents: u64, chunks: u64) -> Self {
        Self {
            name: config.name.clone(),
            embedding_model: config.embedding_model.clone(),
            dimension: config.dimension,
            embedder_fingerprint: config.embedder_fingerprint.clone(),
            documents,
            chunks,
        }
    }
}

/// The configuration of a new collection `name` for `embedder`: its model, dimension and
/// fingerprint recorded in the manifest.
pub fn collection_config(name: &str, embedder: &dyn Embedder) -> CollectionConfig {
    let mut config = CollectionConfig::new(name, embedder.model_id(), embedder.dimension());
    config.embedder_fingerprint = embedder.fingerprint();
    config
}

/// Refuses a collection configured as `stored` for an embedder other than the one its vectors
/// were made with (another model or dimension, or another fingerprint where the collection
/// recorded one).
///
/// Called on every search: the match is compared field by field, and the manifests that name
/// the difference are built only when there is one.
pub fn check_embedder_config(
    stored: &CollectionConfig,
    embedder: &dyn Embedder,
) -> index::Result<()> {
    let fingerprint = embedder.fingerprint();
    let recorded = &stored.embedder_fingerprint;
    if stored.embedding_model == embedder.model_id()
        && stored.dimension == embedder.dimension()
        && (recorded.is_empty() || fingerprint.is_empty() || *recorded == fingerprint)
    {
        return Ok(());
    }
    let mut requested = stored.clone();
    requested.embedding_model = embedder.model_id().to_string();
    requested.dimension = embedder.dimension();
    requested.embedder_fingerprint = fingerprint;
    index::IndexManifest::from_config(stored)
        .check_compatible(&index::IndexManifest::from_config(&requested))
}

/// Opens collection `name` for `embedder`, creating it (with the default index settings) if
/// it does not exist. An existing collection keeps the index settings it was created with (its
/// BM25 analyzer, HNSW graph); one made with another embedder or dimension is an error
/// (`ManifestMismatch`).
pub fn open_or_create(
    store: &Store,
    name: &str,
    embedder: &dyn Embedder,
) -> index::Result<Arc<Collection>> {
    match store.collection(name) {
        Ok(existing) => {
            check_embedder_config(existing.config(), embedder)?;
            Ok(existing)
        }
        Err(IndexError::CollectionNotFound { .. }) => {
            let mut wanted = collection_config(name, embedder);
            wanted.maintenance = store.maintenance();
            store.create_collection(wanted)
        }
        Err(e) => Err(e),
    }
}

/// The server's collections.
#[derive(Clone)]
pub enum Collections {
    /// In the data folder.
    Embedded(Arc<Store>),
    /// On a Qdrant cluster.
    Qdrant(QdrantCollections),
}

/// The collections of a Qdrant cluster, used from blocking threads.
#[derive(Clone)]
pub struct QdrantCollections {
    store: QdrantStore,
    handle: Handle,
}

impl QdrantCollections {
    fn wait<T>(
        &self,
        call: impl std::future::Future<Output = crate::qdrant::Result<T>>,
    ) -> Result<T> {
        Ok(crate::qdrant::wait_on(&self.handle, call)?)
    }
}

/// An open collection of either backend.
#[derive(Clone)]
pub enum Opened {
    /// In the data folder.
    Embedded(Arc<Collection>),
    /// On the cluster.
    Qdrant(Blocking),
}

/// A collection's reading side: a snapshot of an embedded one, or the cluster.
pub enum Reading {
    /// A snapshot that never waits on writers.
    Embedded(Searcher),
    /// The cluster, which serves each call as it stands then.
    Qdrant(Blocking),
}

impl Reading {
    /// As the retriever and the answer read it.
    pub fn source(&self) -> &dyn ChunkSource {
        match self {
            Self::Embedded(s) => s,
            Self::Qdrant(b) => b,
        }
    }

    /// Document `id` as stored.
    pub fn get_document(&self, id: &str) -> Result<Option<DocumentInfo>> {
        Ok(match self {
            Self::Embedded(s) => s.get_document(id)?,
            Self::Qdrant(b) => b.stored_documents(&[id])?.pop().flatten(),
        })
    }
}

impl Collections {
    /// The backend `config.backend` names: the embedded store is opened (its folder locked);
    /// a cluster is only set up here (`ragd serve` checks that it answers before it loads
    /// anything), its calls made on `handle`'s runtime.
    pub fn open(config: &Config, handle: Option<Handle>) -> anyhow::Result<Self> {
        use anyhow::Context;
        Ok(match config.index.backend {
            Backend::Embedded => Self::Embedded(Arc::new(
                Store::open(&config.data_dir)
                    .with_context(|| format!("data folder {}", config.data_dir.display()))?
                    .with_maintenance(config.index.maintenance),
            )),
            Backend::Qdrant => {
                let handle = handle.context(
                    "index.backend = \"qdrant\" needs a tokio runtime to make its calls on",
                )?;
                let _in_runtime = handle.enter();
                let store = QdrantStore::new(&config.qdrant).context("the [qdrant] settings")?;
                Self::Qdrant(QdrantCollections { store, handle })
            }
        })
    }

    /// On a cluster, where every server's bulk-job records are copied, and the runtime their
    /// calls wait on.
    pub fn job_copies(&self) -> Option<(QdrantJobRecords, Handle)> {
        match self {
            Self::Embedded(_) => None,
            Self::Qdrant(q) => Some((QdrantJobRecords::new(&q.store), q.handle.clone())),
        }
    }

    /// Which backend this is, for messages.
    pub fn kind(&self) -> Backend {
        match self {
            Self::Embedded(_) => Backend::Embedded,
            Self::Qdrant(_) => Backend::Qdrant,
        }
    }

    /// The embedded store, for what only it does (`what`, e.g. "snapshots"); refused on a
    /// cluster, naming the backend.
    pub fn embedded(&self, what: &'static str) -> Result<&Arc<Store>> {
        match self {
            Self::Embedded(store) => Ok(store),
            Self::Qdrant(_) => Err(ServiceError::Unimplemented(what)),
        }
    }

    /// Every collection, sorted by name, with its counts.
    pub fn list(&self) -> Result<Vec<CollectionInfo>> {
        match self {
            Self::Embedded(store) => Ok(store
                .summaries()?
                .into_iter()
                .map(CollectionInfo::from)
                .collect()),
            Self::Qdrant(q) => q.wait(async {
                let mut out = Vec::new();
                for name in q.store.list().await? {
                    let c = match q.store.open(&name).await {
                        Ok(c) => c,
                        // Dropped since the listing, or not ragd's: not one of ours to list.
                        Err(QdrantError::Index(IndexError::CollectionNotFound { .. }))
                        | Err(QdrantError::FailedPrecondition(_)) => continue,
                        Err(e) => return Err(e),
                    };
                    let (documents, chunks) = c.counts().await?;
                    out.push(CollectionInfo::of(c.config(), documents, chunks));
                }
                Ok(out)
            }),
        }
    }

    /// Opens collection `name`.
    pub fn get(&self, name: &str) -> Result<Opened> {
        match self {
            Self::Embedded(store) => Ok(Opened::Embedded(store.collection(name)?)),
            Self::Qdrant(q) => {
                let c = q.wait(q.store.open(name))?;
                Ok(Opened::Qdrant(Blocking::new(Arc::new(c), q.handle.clone())))
            }
        }
    }

    /// Creates an empty collection `name` for `embedder`; `CollectionExists` when there is one.
    pub fn create(&self, name: &str, embedder: &dyn Embedder) -> Result<CollectionInfo> {
        let config = collection_config(name, embedder);
        match self {
            Self::Embedded(store) => {
                let mut config = config;
                config.maintenance = store.maintenance();
                describe(&Opened::Embedded(store.create_collection(config)?))
            }
            Self::Qdrant(q) => {
                index::config::validate_collection_name(name)?;
                q.wait(async {
                    match q.store.open(name).await {
                        Ok(_) => {
                            return Err(IndexError::CollectionExists { name: name.into() }.into())
                        }
                        Err(QdrantError::Index(IndexError::CollectionNotFound { .. })) => {}
                        Err(e) => return Err(e),
                    }
                    let c = q.store.open_or_create(&config, None).await?;
                    Ok(CollectionInfo::of(c.config(), 0, 0))
                })
            }
        }
    }

    /// Opens `name`, creating it for `embedder` if missing; refused when it was made with
    /// another embedder.
    pub fn open_or_create(&self, name: &str, embedder: &dyn Embedder) -> Result<Opened> {
        match self {
            Self::Embedded(store) => Ok(Opened::Embedded(open_or_create(store, name, embedder)?)),
            Self::Qdrant(q) => {
                let config = collection_config(name, embedder);
                let c = q.wait(q.store.open_or_create(&config, None))?;
                check_embedder_config(c.config(), embedder)?;
                Ok(Opened::Qdrant(Blocking::new(Arc::new(c), q.handle.clone())))
            }
        }
    }

    /// Deletes collection `name` (on the embedded store, refused while a job or request holds
    /// it; on a cluster, at once for every server).
    pub fn delete(&self, name: &str) -> Result<()> {
        match self {
            Self::Embedded(store) => Ok(store.delete_collection(name)?),
            Self::Qdrant(q) => {
                if q.wait(q.store.drop_collection(name))? {
                    Ok(())
                } else {
                    Err(IndexError::CollectionNotFound { name: name.into() }.into())
                }
            }
        }
    }
}

impl Opened {
    /// Its configuration: the embedder it was made with, and how it indexes.
    pub fn config(&self) -> &CollectionConfig {
        match self {
            Self::Embedded(c) => c.config(),
            Self::Qdrant(b) => b.collection().config(),
        }
    }

    /// Where ingestion writes it.
    pub fn sink(&self) -> &dyn DocumentSink {
        match self {
            Self::Embedded(c) => c,
            Self::Qdrant(b) => b,
        }
    }

    /// Its reading side now.
    pub fn reading(&self) -> Reading {
        match self {
            Self::Embedded(c) => Reading::Embedded(c.reader().searcher()),
            Self::Qdrant(b) => Reading::Qdrant(b.clone()),
        }
    }

    /// The embedded collection, for what only the embedded store does.
    pub fn embedded(&self, what: &'static str) -> Result<&Arc<Collection>> {
        match self {
            Self::Embedded(c) => Ok(c),
            Self::Qdrant(_) => Err(ServiceError::Unimplemented(what)),
        }
    }

    /// Calls `f` with each stored document's id and metadata (the latest acknowledged state).
    pub fn for_each_document(
        &self,
        f: &mut dyn FnMut(&str, &std::collections::BTreeMap<String, String>),
    ) -> Result<()> {
        match self {
            Self::Embedded(c) => Ok(c.reader().for_each_document(|d| f(&d.id, &d.metadata))?),
            Self::Qdrant(b) => Ok(b.for_each_document(f)?),
        }
    }

    /// Deletes documents `ids` and publishes the deletion; whether each was stored, in order.
    pub fn delete_documents(&self, ids: &[String]) -> Result<Vec<bool>> {
        match self {
            Self::Embedded(c) => {
                let writer = c.writer();
                let existed = writer.delete_documents(ids)?;
                writer.commit()?;
                Ok(existed)
            }
            Self::Qdrant(b) => {
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let stored = b.stored_documents(&refs)?;
                let present: Vec<String> = ids
                    .iter()
                    .zip(&stored)
                    .filter(|(_, s)| s.is_some())
                    .map(|(id, _)| id.clone())
                    .collect();
                if !present.is_empty() {
                    b.delete_documents(&present)?;
                }
                Ok(stored.iter().map(Option::is_some).collect())
            }
        }
    }
}

/// A collection's name, embedder and counts.
pub fn describe(opened: &Opened) -> Result<CollectionInfo> {
    match opened {
        Opened::Embedded(c) => {
            let stats = c.reader().searcher().stats()?;
            Ok(CollectionInfo::of(
                c.config(),
                stats.documents,
                stats.meta_chunks,
            ))
        }
        Opened::Qdrant(b) => {
            let (documents, chunks) = b.counts()?;
            Ok(CollectionInfo::of(
                b.collection().config(),
                documents,
                chunks,
            ))
        }
    }
}
