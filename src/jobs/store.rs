//! [`JobStore`]: job records in a sled tree, one JSON value per job id, flushed on every save
//! so an acknowledged batch is never forgotten by a crash.
//!
//! The database lives in `<data_dir>/.jobs/`: a hidden folder, so it can never collide with a
//! collection (collection names cannot start with `.`).

use std::path::Path;

use super::record::JobRecord;
use crate::error::{Result, ServiceError};

/// The persisted jobs.
pub struct JobStore {
    db: sled::Db,
    jobs: sled::Tree,
}

impl JobStore {
    /// Opens (creating) the job database under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let config = sled::Config::new().path(data_dir.join(".jobs"));
        let db = index::meta::open_sled(&config)?;
        let jobs = db.open_tree("jobs")?;
        Ok(Self { db, jobs })
    }

    /// A new unique id, increasing across restarts.
    pub fn next_id(&self) -> Result<String> {
        Ok(format!("job-{:010}", self.db.generate_id()? + 1))
    }

    /// Writes `record` durably.
    pub fn save(&self, record: &JobRecord) -> Result<()> {
        let value = serde_json::to_vec(record)
            .map_err(|e| ServiceError::Internal(format!("encoding job {}: {e}", record.id)))?;
        self.jobs.insert(record.id.as_bytes(), value)?;
        self.jobs.flush()?;
        Ok(())
    }

    /// The record of job `id`.
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        self.jobs
            .get(id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Every job, newest first.
    pub fn list(&self) -> Result<Vec<JobRecord>> {
        let mut out = Vec::new();
        for entry in self.jobs.iter().rev() {
            let (_, v) = entry?;
            out.push(decode(&v)?);
        }
        Ok(out)
    }
}

fn decode(bytes: &[u8]) -> Result<JobRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| ServiceError::Internal(format!("corrupt job record: {e}")))
}
