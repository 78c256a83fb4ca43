//! [`JobStore`]: job records in a sled tree, one JSON value per job id, flushed on every save
//! so an acknowledged batch is never forgotten by a crash.
//!
//! The database lives in `<data_dir>/.jobs/`: a hidden folder, so it can never collide with a
//! collection (collection names cannot start with `.`). It is the source of truth for the jobs
//! this server runs: a restart resumes them from here.
//!
//! On a Qdrant cluster (`index.backend = "qdrant"`) each save is also copied to the cluster
//! ([`crate::qdrant::QdrantJobRecords`]) by a background task, so that every server on it
//! reports every job, and a server can ask the one running a job to cancel it. The copy never
//! holds up a save: it is written after it, the latest record of each job winning, and retried
//! every second while the cluster does not answer. Ids then carry the server's node tag (kept in
//! this database), so two servers never make the same one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::record::JobRecord;
use crate::error::{Result, ServiceError};
use crate::qdrant::QdrantJobRecords;

/// The persisted jobs.
pub struct JobStore {
    db: sled::Db,
    jobs: sled::Tree,
    shared: Option<Shared>,
}

/// The cluster's copies of every server's records.
struct Shared {
    copies: QdrantJobRecords,
    handle: Handle,
    /// This server's tag in its job ids.
    node: String,
    queue: Arc<CopyQueue>,
    /// When each running job last asked the cluster for a cancel request.
    cancel_checked: Mutex<HashMap<String, Instant>>,
}

/// Records waiting to be copied: the latest per job.
#[derive(Default)]
struct CopyQueue {
    /// Job id → its record as saved (JSON text).
    pending: Mutex<HashMap<String, String>>,
    in_flight: AtomicUsize,
    wake: Notify,
}

/// How often a running job asks the cluster whether another server cancelled it.
const CANCEL_CHECK_EVERY: Duration = Duration::from_secs(1);

impl JobStore {
    /// Opens (creating) the job database under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let config = sled::Config::new().path(data_dir.join(".jobs"));
        let db = index::meta::open_sled(&config)?;
        let jobs = db.open_tree("jobs")?;
        Ok(Self {
            db,
            jobs,
            shared: None,
        })
    }

    /// [`Self::open`], every save also copied to `copies` by a task on `handle`'s runtime;
    /// the copies of this server's records are written again now (those a cluster outage or a
    /// stop left behind).
    pub fn open_shared(data_dir: &Path, copies: QdrantJobRecords, handle: Handle) -> Result<Self> {
        let mut store = Self::open(data_dir)?;
        let node = match store.db.get("node")? {
            Some(tag) => String::from_utf8_lossy(&tag).into_owned(),
            None => {
                let tag = node_tag(data_dir);
                store.db.insert("node", tag.as_bytes())?;
                store.db.flush()?;
                tag
            }
        };
        let queue = Arc::new(CopyQueue::default());
        handle.spawn(copy_records(copies.clone(), queue.clone()));
        store.shared = Some(Shared {
            copies,
            handle,
            node,
            queue,
            cancel_checked: Mutex::new(HashMap::new()),
        });
        for entry in store.jobs.iter() {
            let (id, value) = entry?;
            store.copy(&String::from_utf8_lossy(&id), &value);
        }
        Ok(store)
    }

    /// A new unique id, increasing across restarts (on a cluster, with this server's tag).
    pub fn next_id(&self) -> Result<String> {
        let n = self.db.generate_id()? + 1;
        Ok(match &self.shared {
            Some(s) => format!("job-{n:010}-{}", s.node),
            None => format!("job-{n:010}"),
        })
    }

    /// Writes `record` durably (and queues its copy for the cluster).
    pub fn save(&self, record: &JobRecord) -> Result<()> {
        let value = serde_json::to_vec(record)
            .map_err(|e| ServiceError::Internal(format!("encoding job {}: {e}", record.id)))?;
        self.jobs.insert(record.id.as_bytes(), value.as_slice())?;
        self.jobs.flush()?;
        if let Some(shared) = &self.shared {
            if record.state.is_terminal() {
                // Its cancel requests are read no more.
                shared.cancel_checked.lock().remove(&record.id);
            }
        }
        self.copy(&record.id, &value);
        Ok(())
    }

    /// Queues the copy of job `id`'s record as saved (JSON).
    fn copy(&self, id: &str, saved: &[u8]) {
        let Some(shared) = &self.shared else {
            return;
        };
        let text = String::from_utf8_lossy(saved).into_owned();
        shared.queue.pending.lock().insert(id.to_owned(), text);
        shared.queue.wake.notify_one();
    }

    /// The record of job `id`: this server's, or another's copy on the cluster. Blocks on the
    /// cluster: call it from the blocking pool.
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        if let Some(local) = self.get_local(id)? {
            return Ok(Some(local));
        }
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        shared
            .wait(shared.copies.get(id))?
            .map(|text| decode(text.as_bytes()))
            .transpose()
    }

    /// The record of job `id` if this server runs (or ran) it.
    pub fn get_local(&self, id: &str) -> Result<Option<JobRecord>> {
        self.jobs
            .get(id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Every job, newest first: this server's and, on a cluster, the other servers' copies.
    /// Blocks on the cluster: call it from the blocking pool.
    pub fn list(&self) -> Result<Vec<JobRecord>> {
        let mut out = self.list_local()?;
        if let Some(shared) = &self.shared {
            let own: std::collections::HashSet<String> = out.iter().map(|r| r.id.clone()).collect();
            for text in shared.wait(shared.copies.list())? {
                let record = decode(text.as_bytes())?;
                if !own.contains(&record.id) {
                    out.push(record);
                }
            }
            out.sort_by(|a, b| (b.created_unix_ms, &b.id).cmp(&(a.created_unix_ms, &a.id)));
        }
        Ok(out)
    }

    /// This server's jobs, newest first.
    pub fn list_local(&self) -> Result<Vec<JobRecord>> {
        let mut out = Vec::new();
        for entry in self.jobs.iter().rev() {
            let (_, v) = entry?;
            out.push(decode(&v)?);
        }
        Ok(out)
    }

    /// Asks the server running job `id` (another one, on the cluster) to cancel it; false
    /// without a cluster.
    pub fn request_cancel(&self, id: &str) -> Result<bool> {
        match &self.shared {
            Some(shared) => {
                shared.wait(shared.copies.request_cancel(id))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether another server asked to cancel job `id`: asks the cluster at most once a second
    /// per job (a cluster that does not answer counts as no). Blocks: call it from the
    /// blocking pool.
    pub fn cancel_requested(&self, id: &str) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        {
            let mut checked = shared.cancel_checked.lock();
            let now = Instant::now();
            match checked.get(id) {
                Some(at) if now.duration_since(*at) < CANCEL_CHECK_EVERY => return false,
                _ => {
                    checked.insert(id.to_owned(), now);
                }
            }
        }
        match shared.wait(shared.copies.cancel_requested(id)) {
            Ok(asked) => asked,
            Err(e) => {
                tracing::warn!(job = id, error = %e, "cannot read cancel requests from the cluster");
                false
            }
        }
    }

    /// Waits (up to `grace`) until every queued copy is on the cluster.
    pub async fn flush_copies(&self, grace: Duration) {
        let Some(shared) = &self.shared else {
            return;
        };
        let deadline = Instant::now() + grace;
        let queue = &shared.queue;
        while (!queue.pending.lock().is_empty() || queue.in_flight.load(Ordering::SeqCst) > 0)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Shared {
    fn wait<T>(
        &self,
        call: impl std::future::Future<Output = crate::qdrant::Result<T>>,
    ) -> Result<T> {
        Ok(crate::qdrant::wait_on(&self.handle, call)?)
    }
}

/// Copies queued records to the cluster for as long as the runtime runs.
async fn copy_records(copies: QdrantJobRecords, queue: Arc<CopyQueue>) {
    loop {
        queue.wake.notified().await;
        loop {
            let batch: Vec<(String, String)> = {
                let mut pending = queue.pending.lock();
                queue.in_flight.fetch_add(pending.len(), Ordering::SeqCst);
                pending.drain().collect()
            };
            if batch.is_empty() {
                break;
            }
            let mut failed = false;
            for (id, record) in batch {
                if let Err(e) = copies.put(&id, &record).await {
                    tracing::warn!(job = %id, error = %e, "cannot copy the job record to the cluster; retrying");
                    // Unless a newer record of the job came meanwhile.
                    queue.pending.lock().entry(id).or_insert(record);
                    failed = true;
                }
                queue.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            if failed {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A tag for this server's job ids: 8 hex digits of a hash of its data folder, the time and
/// the process.
fn node_tag(data_dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(data_dir.as_os_str().as_encoded_bytes());
    h.update(std::process::id().to_be_bytes());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(nanos.to_be_bytes());
    h.finalize()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode(bytes: &[u8]) -> Result<JobRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| ServiceError::Internal(format!("corrupt job record: {e}")))
}
