//! [`AppState`]: what every request handler shares — the store of collections, the models, the
//! retriever, the job manager — and the plain operations the gRPC handlers call.
//!
//! Everything that embeds, searches or writes runs on tokio's blocking pool through
//! [`AppState::blocking`], behind the [`RequestGate`]'s `embedder.queue` permits: past that many
//! requests in flight a new one is refused at once with [`Refused::Overloaded`](crate::serving::Refused::Overloaded)
//! (RESOURCE_EXHAUSTED) instead of queueing without bound. Job look-ups and control
//! ([`AppState::unmetered`]) take no permit: they read or write one small sled record.
//! Searches read a [`Searcher`](index::Searcher) snapshot and never wait on writers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use index::{Collection, DocumentInfo};
use ingest::{ChunkingStrategy, Document, Embedder};
use parking_lot::Mutex;

use crate::collections::{self, check_embedder_config, Collections, Opened, Reading};
use crate::config::Config;
use crate::error::{Result, ServiceError};
use crate::jobs::{IngestSummary, JobManager, Pipeline};
use crate::model::llm::{GenerationParams, Generator};
use crate::model::rerank::Reader;
use crate::model::Reranker;
use crate::rag::answer::{self, Prepared};
use crate::rag::{AnswerConfig, Hit, RetrieveOptions, Retriever};
use crate::reindex::ReindexView;
use crate::serving::{GenerationPool, PooledReranker, RequestGate};
use crate::snapshots::{self, SnapshotView};
use crate::wiring::{self, Models, RerankChoice};

/// The request gate's name in refusals: it admits every embed, search and write.
const GATE: &str = "server";

/// Why snapshots are refused on a cluster.
const SNAPSHOTS: &str = "snapshots need index.backend = \"embedded\": on the qdrant backend, use \
                         Qdrant's own snapshots of its collections";

/// Shared state of a running server. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    generation: Option<GenerationPool>,
    collections: Collections,
    embedder: Arc<dyn Embedder>,
    retriever: Retriever,
    reranker: Option<Arc<dyn Reranker>>,
    /// Collections being reindexed whose old generation was made with another embedder than
    /// the server's: the retriever over that embedder, loaded for the while (see
    /// [`AppState::reindex`]).
    reindexing: Mutex<HashMap<String, Retriever>>,
    gate: RequestGate,
    jobs: Arc<JobManager>,
    /// Set when the server starts shutting down: readiness probes then fail.
    draining: std::sync::atomic::AtomicBool,
}

pub use crate::collections::CollectionInfo;

/// What a search request asks for.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// The collection.
    pub collection: String,
    /// The query text.
    pub query: String,
    /// Retrieval parameters.
    pub options: RetrieveOptions,
}

/// What an Ask request asks for; unset generation fields take the server's `generator.*`.
#[derive(Debug, Clone)]
pub struct AskQuery {
    /// The collection.
    pub collection: String,
    /// The question.
    pub question: String,
    /// Retrieval parameters (`k` = sources offered to the model).
    pub retrieval: RetrieveOptions,
    /// Most tokens to generate.
    pub max_tokens: Option<usize>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Sampler seed.
    pub seed: Option<u64>,
    /// Strings that end the generation (the string itself is not kept).
    pub stop: Vec<String>,
}

/// A document with (optionally) its chunks.
#[derive(Debug, Clone)]
pub struct DocumentView {
    /// The stored document.
    pub info: DocumentInfo,
    /// Its chunks, when asked for.
    pub chunks: Vec<index::ChunkRecord>,
}

impl AppState {
    /// Loads the configured embedder (fetching it on first use) and reranker, and opens the
    /// data folder. Startup wiring, hence anyhow.
    pub fn load(config: Config) -> anyhow::Result<Self> {
        let models = Models::load(&config, true, &RerankChoice::served(&config))
            .context("loading the models")?;
        let gguf = models.generator()?.clone();
        if !gguf.device().is_cpu() && config.generator.concurrency > 1 {
            tracing::warn!(
                concurrency = config.generator.concurrency,
                "concurrent generations on one GPU share its stream and slow each other down \
                 (BENCHMARKS.md, \"The GPU path\"): generator.concurrency = 1 serves more"
            );
        }
        let generator: Arc<dyn Generator> = gguf;
        let pool = GenerationPool::new(generator, config.generator.pool())
            .context("starting the generation threads")?;
        Self::assemble(
            config,
            models.embedder,
            models.reranker,
            models.reader,
            Some(pool),
        )
    }

    /// State over already loaded models, without a generator (Ask is then refused).
    pub fn new(
        config: Config,
        embedder: Arc<dyn Embedder>,
        reranker: Option<Arc<dyn Reranker>>,
    ) -> anyhow::Result<Self> {
        Self::with_generator(config, embedder, reranker, None)
    }

    /// State over already loaded models (tests pass shared ones). With `reranker.kind = "llm"`
    /// and a pool, the reranker (the LLM judge, on the generator's model) runs on the pool's
    /// threads, within its limits ([`PooledReranker`]).
    pub fn with_generator(
        config: Config,
        embedder: Arc<dyn Embedder>,
        reranker: Option<Arc<dyn Reranker>>,
        generation: Option<GenerationPool>,
    ) -> anyhow::Result<Self> {
        let reader = wiring::load_reader(&config).context("loading the reader")?;
        Self::assemble(config, embedder, reranker, reader, generation)
    }

    fn assemble(
        config: Config,
        embedder: Arc<dyn Embedder>,
        reranker: Option<Arc<dyn Reranker>>,
        reader: Option<Arc<dyn Reader>>,
        generation: Option<GenerationPool>,
    ) -> anyhow::Result<Self> {
        let reranker = match (reranker, &generation) {
            (Some(judge), Some(pool)) if RerankChoice::served(&config) == RerankChoice::Llm => {
                Some(Arc::new(PooledReranker::new(judge, pool.clone())) as Arc<dyn Reranker>)
            }
            (reranker, _) => reranker,
        };
        let collections = Collections::open(&config, tokio::runtime::Handle::try_current().ok())?;
        let jobs = JobManager::open(&config, collections.clone(), embedder.clone())?;
        let inner = Inner {
            gate: RequestGate::new(GATE, config.embedder.queue),
            retriever: wiring::retriever(embedder.clone(), reranker.clone()).with_reader(reader),
            reranker,
            reindexing: Mutex::new(HashMap::new()),
            generation,
            config,
            collections,
            embedder,
            jobs: Arc::new(jobs),
            draining: std::sync::atomic::AtomicBool::new(false),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The job manager.
    pub fn jobs(&self) -> &Arc<JobManager> {
        &self.inner.jobs
    }

    /// The embedder queries and documents are embedded with.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.inner.embedder
    }

    /// The reranker, when one is configured.
    pub fn reranker(&self) -> Option<&Arc<dyn Reranker>> {
        self.inner.reranker.as_ref()
    }

    /// Marks the server as shutting down (see [`Self::draining`]).
    pub fn start_draining(&self) {
        self.inner
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the server is shutting down: it finishes what it has, and readiness fails.
    pub fn draining(&self) -> bool {
        self.inner
            .draining
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// What `/metrics` reports of the state now: generations queued, jobs by state, and the
    /// documents and chunks of every collection (from the manifests: nothing is opened).
    pub fn metrics_snapshot(&self) -> Result<crate::metrics::Snapshot> {
        let mut jobs: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        // This server's jobs only: on a cluster every server lists every job, and a sum over
        // the servers' metrics would count each once per server.
        for job in self.inner.jobs.list_local()? {
            *jobs.entry(job.state.name()).or_default() += 1;
        }
        let collections = self
            .list_collections()?
            .into_iter()
            .map(|c| (c.name, c.documents as i64, c.chunks as i64))
            .collect();
        Ok(crate::metrics::Snapshot {
            generation_queue_depth: self
                .inner
                .generation
                .as_ref()
                .map_or(0, |p| p.depth() as i64),
            jobs: jobs
                .into_iter()
                .map(|(state, n)| (state.to_owned(), n))
                .collect(),
            collections,
        })
    }

    /// One collection's name, embedder and counts, from its manifest (nothing is opened).
    pub fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        self.list_collections()?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| index::IndexError::CollectionNotFound { name: name.into() }.into())
    }

    /// Runs `f` on the blocking pool, refusing at once when `embedder.queue` calls are in flight.
    pub async fn blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&AppState) -> Result<R> + Send + 'static,
    {
        let state = self.clone();
        self.inner
            .gate
            .run(move || f(&state))
            .await?
            .map_err(|e| ServiceError::Internal(format!("blocking task failed: {e}")))?
    }

    /// Runs `f` on the blocking pool without taking a permit: for cheap look-ups (job records)
    /// that must answer even while embedding and search are saturated.
    pub async fn unmetered<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&AppState) -> Result<R> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || f(&state))
            .await
            .map_err(|e| ServiceError::Internal(format!("blocking task failed: {e}")))?
    }

    /// Where the collections live.
    pub fn collections(&self) -> &Collections {
        &self.inner.collections
    }

    /// Creates an empty collection for the server's embedder.
    pub fn create_collection(&self, name: &str) -> Result<CollectionInfo> {
        self.inner
            .collections
            .create(name, self.inner.embedder.as_ref())
    }

    /// Every collection, sorted by name, with its counts (on the embedded store from the
    /// manifests and the counts each commit records: listing opens none, see
    /// `index::Store::summaries`).
    pub fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        self.inner.collections.list()
    }

    /// Closes the embedded collections unused for `idle` (see `index::Store::close_idle`);
    /// returns their names. A cluster's collections hold nothing open here.
    pub fn close_idle_collections(&self, idle: std::time::Duration) -> Vec<String> {
        match &self.inner.collections {
            Collections::Embedded(store) => store.close_idle(idle),
            Collections::Qdrant(_) => Vec::new(),
        }
    }

    /// Deletes a collection (on the embedded store, refused while a job or request holds it).
    pub fn delete_collection(&self, name: &str) -> Result<()> {
        self.inner.collections.delete(name)
    }

    /// Opens `name`, creating it for the server's embedder if missing.
    pub fn open_or_create(&self, name: &str) -> Result<Opened> {
        self.inner
            .collections
            .open_or_create(name, self.inner.embedder.as_ref())
    }

    /// A pipeline with `chunking` over the server's embedder.
    pub fn pipeline(&self, chunking: &ChunkingStrategy) -> Result<Pipeline> {
        Pipeline::new(
            chunking,
            self.inner.embedder.clone(),
            self.inner.config.server.max_document_bytes,
        )
    }

    /// Ingests one batch of documents and commits it.
    pub fn ingest(
        &self,
        collection: &Opened,
        pipeline: &Pipeline,
        docs: &[Document],
    ) -> Result<IngestSummary> {
        pipeline.ingest(collection.sink(), docs, |_, _| {})
    }

    /// Takes a snapshot of `collection` into the snapshot folder (see [`snapshots`]): writes to
    /// it wait while its store is exported, searches do not.
    pub fn create_snapshot(&self, collection: &str) -> Result<SnapshotView> {
        let dir = self.inner.config.snapshot_dir();
        snapshots::create(self.embedded(SNAPSHOTS)?, &dir, collection)
    }

    /// The snapshots in the snapshot folder, of `collection` only when given, newest first.
    pub fn list_snapshots(&self, collection: Option<&str>) -> Result<Vec<SnapshotView>> {
        snapshots::list(&self.inner.config.snapshot_dir(), collection)
    }

    /// Restores the snapshot named `snapshot` (a file in the snapshot folder) as collection
    /// `name`, for this server's embedder.
    pub fn restore_snapshot(
        &self,
        snapshot: &str,
        name: &str,
    ) -> Result<(CollectionInfo, SnapshotView)> {
        let path = snapshots::resolve(&self.inner.config.snapshot_dir(), snapshot)?;
        let embedder = snapshots::EmbedderId::of(self.inner.embedder.as_ref());
        let store = self.embedded(SNAPSHOTS)?;
        let (collection, view) = snapshots::restore(store, &path, name, &embedder)?;
        Ok((describe(&collection)?, view))
    }

    /// Checkpoints every open embedded collection (see `index::Store::checkpoint_all`); a
    /// cluster keeps its own.
    pub fn checkpoint_all(&self) -> Result<()> {
        match &self.inner.collections {
            Collections::Embedded(store) => Ok(store.checkpoint_all()?),
            Collections::Qdrant(_) => Ok(()),
        }
    }

    /// The embedded store, for what only it does; refused on a cluster with `why`.
    fn embedded(&self, why: &'static str) -> Result<&Arc<index::Store>> {
        self.inner.collections.embedded(why)
    }

    /// Deletes documents by id and publishes the deletion; returns (deleted, ids not stored).
    pub fn delete_documents(&self, collection: &str, ids: &[String]) -> Result<(u64, Vec<String>)> {
        let opened = self.inner.collections.get(collection)?;
        let mut deleted = 0;
        let mut missing = Vec::new();
        for (id, existed) in ids.iter().zip(opened.delete_documents(ids)?) {
            if existed {
                deleted += 1;
            } else {
                missing.push(id.clone());
            }
        }
        Ok((deleted, missing))
    }

    /// A stored document, with its chunks when `with_chunks`.
    pub fn get_document(
        &self,
        collection: &str,
        id: &str,
        with_chunks: bool,
    ) -> Result<DocumentView> {
        let reading = self.inner.collections.get(collection)?.reading();
        let info = reading
            .get_document(id)?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "document",
                id: id.to_string(),
            })?;
        let chunks = if with_chunks {
            reading
                .source()
                .get_chunks(&info.chunk_ids)?
                .into_iter()
                .flatten()
                .collect()
        } else {
            Vec::new()
        };
        Ok(DocumentView { info, chunks })
    }

    /// The generation pool; Ask needs one.
    pub fn generation(&self) -> Result<&GenerationPool> {
        self.inner
            .generation
            .as_ref()
            .ok_or(ServiceError::Unimplemented(
                "this server runs without a generator, so it cannot answer questions",
            ))
    }

    /// Retrieves for an Ask request and builds its prompt ([`answer::prepare`]); returns it with
    /// the generation parameters to use.
    ///
    /// Refused at once (RESOURCE_EXHAUSTED) while the generator has no room, before any
    /// retrieval: under overload a refused Ask costs no embedding, search or prompt.
    pub fn prepare_answer(&self, q: &AskQuery) -> Result<(Prepared, GenerationParams)> {
        let pool = self.generation()?;
        pool.check_room()?;
        let mut cfg = AnswerConfig {
            retrieve: q.retrieval.clone(),
            generation: self.inner.config.generator.params(),
            gate: self.inner.config.answer.gate,
            ..AnswerConfig::default()
        };
        let g = &mut cfg.generation;
        g.max_tokens = q.max_tokens.unwrap_or(g.max_tokens);
        g.temperature = q.temperature.unwrap_or(g.temperature);
        g.seed = q.seed.unwrap_or(g.seed);
        g.stop.extend(q.stop.iter().cloned());
        let (reading, retriever) = self.reading(&q.collection)?;
        let prepared = answer::prepare(
            &retriever,
            reading.source(),
            pool.generator().as_ref(),
            &q.question,
            &cfg,
        )?;
        Ok((prepared, cfg.generation))
    }

    /// The reading side of `collection` and the retriever for it: the server's, or, while the
    /// collection is being reindexed from another embedder, one over that embedder. Refused
    /// when the collection was made with another embedder than these (its queries would not be
    /// comparable to its vectors).
    fn reading(&self, collection: &str) -> Result<(Reading, Retriever)> {
        let c = self.inner.collections.get(collection)?;
        let config = c.config();
        let retriever = match check_embedder_config(config, self.inner.embedder.as_ref()) {
            Ok(()) => self.inner.retriever.clone(),
            Err(refused) => {
                let own = self.inner.reindexing.lock().get(collection).cloned();
                match own {
                    Some(r) if check_embedder_config(config, r.embedder().as_ref()).is_ok() => r,
                    _ => return Err(refused.into()),
                }
            }
        };
        Ok((c.reading(), retriever))
    }

    /// Re-embeds collection `name` with the server's embedder into a new generation and
    /// switches to it (see [`crate::reindex`]); `progress` sees each step and stops it with an
    /// error. Searches go on throughout: when the old generation was made with another
    /// embedder, that embedder is loaded (a catalogue model, or a local folder still holding
    /// the same weights) and serves the collection's searches until the switch; when it cannot
    /// be, they are refused as before and the result says why.
    pub fn reindex(
        &self,
        name: &str,
        progress: impl FnMut(&index::ReindexProgress) -> Result<()>,
    ) -> Result<(CollectionInfo, ReindexView)> {
        let store = self.embedded(
            "reindexing needs index.backend = \"embedded\": on the qdrant backend, ingest into a new \
             collection and delete the old one",
        )?;
        let source = store.collection(name)?;
        let previous = source.config().clone();
        let own = crate::jobs::check_embedder(&source, self.inner.embedder.as_ref()).is_ok();
        drop(source);
        let mut note = String::new();
        let serving = if own {
            None
        } else {
            match wiring::load_embedder_of(&self.inner.config, &previous) {
                Ok(embedder) => {
                    let retriever =
                        wiring::retriever(Arc::new(embedder), self.inner.reranker.clone())
                            .with_reader(self.inner.retriever.reader().cloned());
                    Some(ServedWhileReindexing::new(&self.inner, name, retriever))
                }
                Err(e) => {
                    note = format!(
                        "searches of {name:?} were refused until the switch: the embedder it was \
                         made with could not be loaded ({e})"
                    );
                    tracing::warn!(collection = name, "{note}");
                    None
                }
            }
        };
        let result = crate::reindex::reindex(store, name, self.inner.embedder.as_ref(), progress);
        drop(serving);
        let (collection, report) = result?;
        let view = ReindexView {
            previous_fingerprint: previous.embedder_fingerprint,
            searches_served: note.is_empty(),
            note,
            report,
        };
        Ok((describe(&collection)?, view))
    }

    /// Runs a retrieval on a snapshot of the collection; returns the hits and the time taken.
    pub fn search(&self, q: &SearchQuery) -> Result<(Vec<Hit>, f64, Vec<String>)> {
        let start = Instant::now();
        let (reading, retriever) = self.reading(&q.collection)?;
        let hits = retriever.retrieve(reading.source(), &q.query, &q.options)?;
        let notes = crate::rag::retrieve::notes(reading.source(), &q.query, q.options.mode, &hits);
        Ok((hits, start.elapsed().as_secs_f64() * 1e3, notes))
    }
}

/// Registers the retriever serving a collection's searches during its reindex, for as long as
/// it lives. A second reindex of the same name (refused once it starts) leaves the first one's in place.
struct ServedWhileReindexing<'a> {
    inner: &'a Inner,
    name: String,
    registered: bool,
}

impl<'a> ServedWhileReindexing<'a> {
    fn new(inner: &'a Inner, name: &str, retriever: Retriever) -> Self {
        let mut map = inner.reindexing.lock();
        let registered = !map.contains_key(name);
        if registered {
            map.insert(name.to_owned(), retriever);
        }
        Self {
            inner,
            name: name.to_owned(),
            registered,
        }
    }
}

impl Drop for ServedWhileReindexing<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.inner.reindexing.lock().remove(&self.name);
        }
    }
}

/// An embedded collection's name, embedder and counts.
pub fn describe(c: &Arc<Collection>) -> Result<CollectionInfo> {
    collections::describe(&Opened::Embedded(c.clone()))
}

#[cfg(test)]
mod tests;
