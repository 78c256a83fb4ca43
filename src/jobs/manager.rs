//! [`JobManager`]: starts, resumes, cancels and watches bulk ingestion jobs.
//!
//! Each job is a tokio task that drives the blocking work of [`run_job`](super::runner) on the
//! blocking pool. The task publishes its record on a `watch` channel after every acknowledged
//! batch; [`JobManager::watch`] hands out receivers. Cancelling sets the job's flag, which the
//! runner checks between batches. On shutdown every runner stops after its current batch and
//! leaves its job `Running`, so [`JobManager::resume_all`] picks it up on the next start.
//!
//! At most `server.max_running_jobs` jobs run at once; the others wait `Queued`, in the order
//! they were started (a fair semaphore), and can be cancelled while they wait.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ingest::Embedder;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::record::{JobRecord, JobSpec, JobState};
use super::runner::{run_job, RunContext};
use super::store::JobStore;
use crate::collections::Collections;
use crate::config::Config;
use crate::error::{Result, ServiceError};

/// What [`JobManager::watch`] returns.
pub enum JobWatch {
    /// The job is running: its record after every batch, the last one terminal (or paused).
    Live(watch::Receiver<JobRecord>),
    /// The job is not running here: its stored record.
    Done(Box<JobRecord>),
    /// Another server on the cluster runs the job: its record as copied there, each change,
    /// the last one terminal.
    Polled(tokio::sync::mpsc::Receiver<JobRecord>),
}

/// How often a job another server runs is read from the cluster while watched.
const REMOTE_WATCH_EVERY: Duration = Duration::from_secs(1);

/// A job in progress.
struct LiveJob {
    cancel: Arc<AtomicBool>,
    updates: watch::Receiver<JobRecord>,
}

/// Owns the job store and the running jobs.
pub struct JobManager {
    store: Arc<JobStore>,
    context: RunContext,
    allowed_roots: Vec<PathBuf>,
    live: Arc<Mutex<HashMap<String, LiveJob>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// One permit per job allowed to run at once.
    slots: Arc<tokio::sync::Semaphore>,
}

impl JobManager {
    /// Opens the job store in the data folder.
    /// Jobs write into `collections` (records stay in the data folder whatever the backend).
    pub fn open(
        config: &Config,
        collections: Collections,
        embedder: Arc<dyn Embedder>,
    ) -> Result<Self> {
        let jobs = Arc::new(match collections.job_copies() {
            Some((copies, handle)) => JobStore::open_shared(&config.data_dir, copies, handle)?,
            None => JobStore::open(&config.data_dir)?,
        });
        Ok(Self {
            context: RunContext {
                jobs: jobs.clone(),
                collections,
                embedder,
                batch: config.server.job_batch_documents,
                max_document_bytes: config.server.max_document_bytes,
                load: config.ingest.clone(),
                shutdown: Arc::new(AtomicBool::new(false)),
            },
            store: jobs,
            allowed_roots: config.server.allowed_roots.clone(),
            live: Arc::new(Mutex::new(HashMap::new())),
            tasks: Mutex::new(Vec::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(
                (config.server.max_running_jobs).min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
        })
    }

    /// Validates `spec`, records the job and starts it. Paths are made canonical and must lie
    /// under an allowed root.
    pub fn start(&self, mut spec: JobSpec) -> Result<JobRecord> {
        index::config::validate_collection_name(&spec.collection)?;
        if spec.paths.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "a job needs at least one path".into(),
            ));
        }
        spec.paths = spec
            .paths
            .iter()
            .map(|p| self.check_path(p))
            .collect::<Result<_>>()?;
        let record = JobRecord::new(self.store.next_id()?, spec);
        self.store.save(&record)?;
        self.spawn(record.clone());
        Ok(record)
    }

    fn check_path(&self, path: &Path) -> Result<PathBuf> {
        let bad = |why: &str| ServiceError::InvalidArgument(format!("{}: {why}", path.display()));
        if self.allowed_roots.is_empty() {
            return Err(ServiceError::PermissionDenied(format!(
                "{}: this server allows no job paths (server.allowed_roots is empty)",
                path.display()
            )));
        }
        if !path.is_absolute() {
            return Err(bad("job paths must be absolute"));
        }
        // The same answer for a missing file and a file outside the roots, so that a client
        // cannot probe which paths exist elsewhere on the server.
        let denied = || {
            ServiceError::PermissionDenied(format!(
                "{}: not under an allowed root (server.allowed_roots)",
                path.display()
            ))
        };
        let roots: Vec<PathBuf> = self
            .allowed_roots
            .iter()
            .filter_map(|r| r.canonicalize().ok())
            .collect();
        match path.canonicalize() {
            // Symbolic links are resolved first: a link inside a root that points out of it is
            // outside.
            Ok(canonical) if roots.iter().any(|root| canonical.starts_with(root)) => Ok(canonical),
            Ok(_) => Err(denied()),
            Err(e) if roots.iter().any(|root| lexically_under(path, root)) => {
                Err(bad(&e.to_string()))
            }
            Err(_) => Err(denied()),
        }
    }

    /// Restarts every job a previous run left queued or running.
    pub fn resume_all(&self) -> Result<usize> {
        let mut n = 0;
        for mut record in self.store.list_local()? {
            if !record.state.is_terminal() {
                record.resumed += 1;
                record.state = JobState::Queued;
                tracing::info!(job = %record.id, cursor = ?record.cursor, "resuming job");
                self.store.save(&record)?;
                self.spawn(record);
                n += 1;
            }
        }
        Ok(n)
    }

    fn spawn(&self, record: JobRecord) {
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel(record.clone());
        let id = record.id.clone();
        self.live.lock().insert(
            id.clone(),
            LiveJob {
                cancel: cancel.clone(),
                updates: rx,
            },
        );
        let context = self.context.clone();
        let live = self.live.clone();
        let slots = self.slots.clone();
        let task = tokio::spawn(async move {
            let Some(_slot) = wait_for_slot(&slots, &context, &cancel, &tx).await else {
                live.lock().remove(&id);
                return;
            };
            let run = tokio::task::spawn_blocking(move || {
                let run = AssertUnwindSafe(|| run_job(&context, record, &cancel, &tx));
                if let Err(panic) = std::panic::catch_unwind(run) {
                    fail_panicked(&context, &tx, panic.as_ref());
                }
            });
            if let Err(e) = run.await {
                tracing::error!(job = %id, error = %e, "job task failed");
            }
            live.lock().remove(&id);
        });
        self.tasks.lock().push(task);
    }

    /// The job's current record.
    pub fn get(&self, id: &str) -> Result<JobRecord> {
        if let Some(job) = self.live.lock().get(id) {
            return Ok(job.updates.borrow().clone());
        }
        self.store.get(id)?.ok_or_else(|| not_found(id))
    }

    /// Every job, newest first (on a cluster, every server's).
    pub fn list(&self) -> Result<Vec<JobRecord>> {
        // Read before the live jobs are locked: on a cluster this waits on the network.
        let stored = self.store.list()?;
        Ok(self.with_live(stored))
    }

    /// The jobs this server runs or ran, newest first.
    pub fn list_local(&self) -> Result<Vec<JobRecord>> {
        let stored = self.store.list_local()?;
        Ok(self.with_live(stored))
    }

    /// `stored`, each running job's record replaced by its latest update.
    fn with_live(&self, stored: Vec<JobRecord>) -> Vec<JobRecord> {
        let live = self.live.lock();
        stored
            .into_iter()
            .map(|r| match live.get(&r.id) {
                Some(job) => job.updates.borrow().clone(),
                None => r,
            })
            .collect()
    }

    /// Asks a running job to stop after its current batch; a finished job is returned as is.
    /// A job another server on the cluster runs is asked through the cluster (it looks between
    /// batches).
    pub fn cancel(&self, id: &str) -> Result<JobRecord> {
        if let Some(job) = self.live.lock().get(id) {
            job.cancel.store(true, Ordering::SeqCst);
            return Ok(job.updates.borrow().clone());
        }
        if let Some(own) = self.store.get_local(id)? {
            return Ok(own);
        }
        let record = self.get(id)?;
        if !record.state.is_terminal() {
            self.store.request_cancel(id)?;
        }
        Ok(record)
    }

    /// A receiver of the job's updates while it runs, or its final record. A job another
    /// server on the cluster runs is followed through its copy there, read every second.
    pub fn watch(&self, id: &str) -> Result<JobWatch> {
        if let Some(job) = self.live.lock().get(id) {
            return Ok(JobWatch::Live(job.updates.clone()));
        }
        if let Some(own) = self.store.get_local(id)? {
            return Ok(JobWatch::Done(Box::new(own)));
        }
        let record = self.get(id)?;
        if record.state.is_terminal() {
            return Ok(JobWatch::Done(Box::new(record)));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut last = record;
            loop {
                let terminal = last.state.is_terminal();
                if tx.send(last.clone()).await.is_err() || terminal {
                    return;
                }
                loop {
                    tokio::time::sleep(REMOTE_WATCH_EVERY).await;
                    let (store, id) = (store.clone(), last.id.clone());
                    match tokio::task::spawn_blocking(move || store.get(&id)).await {
                        Ok(Ok(Some(now))) if now != last => {
                            last = now;
                            break;
                        }
                        Ok(Ok(Some(_))) => {}
                        Ok(Ok(None)) | Err(_) => return,
                        Ok(Err(e)) => {
                            tracing::warn!(job = %last.id, error = %e, "cannot read the job's copy");
                        }
                    }
                    if tx.is_closed() {
                        return;
                    }
                }
            }
        });
        Ok(JobWatch::Polled(rx))
    }

    /// Tells every job to stop after its current batch, leaving it to resume on the next start.
    pub fn stop(&self) {
        self.context.shutdown.store(true, Ordering::SeqCst);
    }

    /// [`stop`](Self::stop)s the jobs and waits up to `grace` for them.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        let all = async {
            for t in tasks {
                if let Err(e) = t.await {
                    tracing::error!(error = %e, "job task failed");
                }
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("jobs did not stop within the grace period");
        }
        // The last records, on their way to the cluster's copies.
        self.store.flush_copies(COPY_GRACE).await;
    }
}

/// How long a shutdown waits for the cluster to take the last job record copies.
const COPY_GRACE: Duration = Duration::from_secs(5);

/// Waits, `Queued`, for a slot to run in. A job cancelled while it waits ends `Cancelled`
/// without running; at shutdown it stays `Queued`, for the next start. `None` in both cases.
async fn wait_for_slot(
    slots: &Arc<tokio::sync::Semaphore>,
    cx: &RunContext,
    cancel: &AtomicBool,
    tx: &watch::Sender<JobRecord>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let acquire = slots.clone().acquire_owned();
    tokio::pin!(acquire);
    loop {
        tokio::select! {
            permit = &mut acquire => return permit.ok(),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if cancel.load(Ordering::SeqCst) {
            let mut record = tx.borrow().clone();
            record.finish(JobState::Cancelled);
            if let Err(e) = cx.jobs.save(&record) {
                tracing::error!(job = %record.id, error = %e, "cannot save job record");
            }
            tx.send_replace(record);
            return None;
        }
        if cx.shutdown.load(Ordering::SeqCst) {
            return None;
        }
    }
}

/// Marks a job whose runner panicked `Failed`, with the panic's message as the reason, from its
/// last published record (everything acknowledged before the panic is kept). Without this the
/// job would stay `Running` and be re-run, and panic again, on every restart.
fn fail_panicked(
    cx: &RunContext,
    tx: &watch::Sender<JobRecord>,
    panic: &(dyn std::any::Any + Send),
) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    let mut record = tx.borrow().clone();
    tracing::error!(job = %record.id, panic = %message, "job runner panicked");
    record.failure = Some(format!(
        "internal error: the job's runner panicked: {message}"
    ));
    record.finish(JobState::Failed);
    if let Err(e) = cx.jobs.save(&record) {
        tracing::error!(job = %record.id, error = %e, "cannot save job record");
    }
    tx.send_replace(record);
}

/// Whether `path`, with `.` and `..` resolved as text (no file system access), lies under
/// `root`.
fn lexically_under(path: &Path, root: &Path) -> bool {
    use std::path::Component;
    let mut parts: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.len() > 1 {
                    parts.pop();
                }
            }
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => parts.push(c),
        }
    }
    parts.iter().collect::<PathBuf>().starts_with(root)
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound {
        kind: "job",
        id: id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use index::Store;
    use ingest::testing::HashEmbedder;
    use ingest::{ChunkingStrategy, EmbedError, Embedding, TokenCounter};

    /// What [`Hooked`] runs before each call.
    type Hook = Box<dyn Fn(&[&str]) + Send + Sync>;

    /// The hash embedder with a hook run before every call: a bug (a panic) or a gate.
    struct Hooked {
        inner: HashEmbedder,
        before: Hook,
    }

    impl Embedder for Hooked {
        fn model_id(&self) -> &str {
            self.inner.model_id()
        }
        fn dimension(&self) -> usize {
            self.inner.dimension()
        }
        fn max_content_tokens(&self) -> usize {
            self.inner.max_content_tokens()
        }
        fn token_counter(&self) -> &dyn TokenCounter {
            self.inner.token_counter()
        }
        fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<Embedding>, EmbedError> {
            (self.before)(texts);
            self.inner.embed(texts)
        }
    }

    fn hooked(before: impl Fn(&[&str]) + Send + Sync + 'static) -> Arc<Hooked> {
        Arc::new(Hooked {
            inner: HashEmbedder::new(),
            before: Box::new(before),
        })
    }

    async fn state_becomes(jobs: &JobManager, id: &str, want: JobState) -> JobRecord {
        for _ in 0..600 {
            let record = jobs.get(id).unwrap();
            if record.state == want {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "job {id} never became {want:?}: {:?}",
            jobs.get(id).unwrap()
        );
    }

    /// A folder `docs` under `dir` with one text file, and a config whose data folder is under
    /// `dir` and whose jobs may read `docs`.
    fn docs_and_config(dir: &Path) -> (PathBuf, Config) {
        let docs = dir.join("docs");
        std::fs::create_dir(&docs).unwrap();
        std::fs::write(docs.join("a.txt"), "Pumps move water.").unwrap();
        let mut config = Config {
            data_dir: dir.join("data"),
            ..Config::default()
        };
        config.server.allowed_roots = vec![docs.clone()];
        (docs, config)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_over_the_limit_wait_queued_and_can_be_cancelled_while_they_wait() {
        let dir = tempfile::tempdir().unwrap();
        let (docs, mut config) = docs_and_config(dir.path());
        config.server.max_running_jobs = 1;
        let store = Arc::new(Store::open(&config.data_dir).unwrap());
        let open = Arc::new(AtomicBool::new(false));
        let gate = open.clone();
        let embedder = hooked(move |_| {
            while !gate.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let jobs = JobManager::open(&config, Collections::Embedded(store), embedder).unwrap();
        let spec = |collection: &str| JobSpec {
            collection: collection.into(),
            paths: vec![docs.canonicalize().unwrap()],
            chunker: ChunkingStrategy::default(),
            sync: false,
        };
        let first = jobs.start(spec("one")).unwrap().id;
        let second = jobs.start(spec("two")).unwrap().id;
        let third = jobs.start(spec("three")).unwrap().id;
        state_becomes(&jobs, &first, JobState::Running).await;
        // The first holds the only slot (its embedder is blocked): the others wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(jobs.get(&second).unwrap().state, JobState::Queued);
        assert_eq!(jobs.get(&third).unwrap().state, JobState::Queued);
        jobs.cancel(&third).unwrap();
        let cancelled = state_becomes(&jobs, &third, JobState::Cancelled).await;
        assert_eq!(cancelled.progress.documents_done, 0, "it never ran");
        open.store(true, Ordering::SeqCst);
        state_becomes(&jobs, &first, JobState::Succeeded).await;
        let done = state_becomes(&jobs, &second, JobState::Succeeded).await;
        assert_eq!(done.progress.added, 1);
        jobs.shutdown(Duration::from_secs(5)).await;
    }

    /// A manager whose embedder has a bug: it panics on any text containing `POISON`.
    fn manager(config: &Config) -> JobManager {
        let store = Arc::new(Store::open(&config.data_dir).unwrap());
        let embedder = hooked(|texts| {
            assert!(
                !texts.iter().any(|t| t.contains("POISON")),
                "embedder bug on a poisoned text"
            );
        });
        JobManager::open(config, Collections::Embedded(store), embedder).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_runner_panics_fails_with_the_reason_and_is_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let (docs, config) = docs_and_config(dir.path());
        std::fs::write(docs.join("b.txt"), "POISON for the embedder.").unwrap();
        let jobs = manager(&config);
        let spec = JobSpec {
            collection: "c".into(),
            paths: vec![docs.canonicalize().unwrap()],
            chunker: ChunkingStrategy::default(),
            sync: false,
        };
        let id = jobs.start(spec).unwrap().id;
        let ended = async {
            loop {
                match jobs.watch(&id).unwrap() {
                    JobWatch::Done(record) => return *record,
                    JobWatch::Live(mut updates) => {
                        let record = updates.borrow_and_update().clone();
                        if record.state.is_terminal() {
                            return record;
                        }
                        let _ = updates.changed().await;
                    }
                    JobWatch::Polled(_) => unreachable!("no cluster in this test"),
                }
            }
        };
        let record = tokio::time::timeout(Duration::from_secs(60), ended)
            .await
            .expect("the job ends instead of staying Running");
        assert_eq!(record.state, JobState::Failed);
        let failure = record.failure.unwrap_or_default();
        assert!(failure.contains("embedder bug"), "{failure}");
        assert_eq!(jobs.get(&id).unwrap().state, JobState::Failed);
        jobs.shutdown(Duration::from_secs(5)).await;
        drop(jobs);

        // The next start does not run it again.
        let jobs = manager(&config);
        assert_eq!(jobs.resume_all().unwrap(), 0);
        assert_eq!(jobs.get(&id).unwrap().state, JobState::Failed);
    }

    #[test]
    fn lexical_containment() {
        let root = Path::new("/data/docs");
        assert!(lexically_under(Path::new("/data/docs/a.txt"), root));
        assert!(lexically_under(Path::new("/data/docs/./x/../b.md"), root));
        assert!(!lexically_under(
            Path::new("/data/docs/../../etc/passwd"),
            root
        ));
        assert!(!lexically_under(Path::new("/data/docs2/a.txt"), root));
        assert!(!lexically_under(Path::new("/../../data"), root));
        assert!(lexically_under(Path::new("/../data/docs/a"), root));
    }
}
