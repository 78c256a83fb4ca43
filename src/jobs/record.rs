//! [`JobRecord`]: everything persisted about a bulk ingestion job — its spec, state, progress
//! counters, the cursor of the last acknowledged batch, and its errors.

use std::path::PathBuf;

use ingest::ChunkingStrategy;
use serde::{Deserialize, Serialize};

use super::IngestSummary;

/// Errors kept per job; later ones are counted but not stored.
pub const MAX_JOB_ERRORS: usize = 100;

/// What a job ingests, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Target collection (created if missing).
    pub collection: String,
    /// Canonical files or folders, each under an allowed root.
    pub paths: Vec<PathBuf>,
    /// How documents are split.
    pub chunker: ChunkingStrategy,
    /// Delete, once all paths are ingested, the documents whose files under them are gone.
    #[serde(default)]
    pub sync: bool,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Recorded, not yet started.
    Queued,
    /// Working (or interrupted by a shutdown: resumed on the next start).
    Running,
    /// Every document was processed (some may have failed; see the errors).
    Succeeded,
    /// Stopped by an error that was not one document's fault.
    Failed,
    /// Stopped on request after an acknowledged batch.
    Cancelled,
}

impl JobState {
    /// The state's name, as it is serialized (`queued`, `running`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// True once the job will never change again.
    pub fn is_terminal(self) -> bool {
        match self {
            Self::Queued | Self::Running => false,
            Self::Succeeded | Self::Failed | Self::Cancelled => true,
        }
    }
}

/// Counters of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Documents in all paths: known once the job has read them all (0 until then; the scan
    /// sizes files without parsing them, so progress and the ETA are in bytes).
    pub documents_total: u64,
    /// Documents processed in acknowledged batches.
    pub documents_done: u64,
    /// Bytes of input (file sizes) found by the scan.
    pub bytes_total: u64,
    /// Bytes of input processed in acknowledged batches.
    pub bytes_done: u64,
    /// New documents.
    pub added: u64,
    /// Changed documents replaced.
    pub updated: u64,
    /// Documents already stored with the same content hash.
    pub unchanged: u64,
    /// Documents or files that failed.
    pub failed: u64,
    /// Chunks written.
    pub chunks: u64,
    /// Documents deleted by a sync.
    #[serde(default)]
    pub deleted: u64,
    /// Documents per second in the current run.
    pub documents_per_second: f64,
    /// Seconds left at that rate (0 when unknown or done).
    pub eta_seconds: f64,
}

/// The next unprocessed document: everything before it is acknowledged (committed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Index into [`JobSpec::paths`].
    pub path_index: usize,
    /// Documents of that path already acknowledged, in load order.
    pub document_index: usize,
}

/// A persisted job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Unique, sortable id (`job-0000000042`).
    pub id: String,
    /// What to ingest.
    pub spec: JobSpec,
    /// Where it is.
    pub state: JobState,
    /// Whether the scan (document and byte totals) is done.
    pub scanned: bool,
    /// Counters.
    pub progress: JobProgress,
    /// Resume point.
    pub cursor: Cursor,
    /// (document id or path, message), at most [`MAX_JOB_ERRORS`].
    pub errors: Vec<(String, String)>,
    /// Why the job failed.
    pub failure: Option<String>,
    /// Unix milliseconds.
    pub created_unix_ms: u64,
    /// Unix milliseconds, once terminal.
    pub finished_unix_ms: Option<u64>,
    /// Times resumed after a restart.
    pub resumed: u32,
}

impl JobRecord {
    /// A queued job.
    pub fn new(id: String, spec: JobSpec) -> Self {
        Self {
            id,
            spec,
            state: JobState::Queued,
            scanned: false,
            progress: JobProgress::default(),
            cursor: Cursor::default(),
            errors: Vec::new(),
            failure: None,
            created_unix_ms: unix_ms(),
            finished_unix_ms: None,
            resumed: 0,
        }
    }

    /// Records an error (stored while fewer than [`MAX_JOB_ERRORS`] are).
    pub fn push_error(&mut self, what: String, message: String) {
        if self.errors.len() < MAX_JOB_ERRORS {
            self.errors.push((what, message));
        }
    }

    /// Adds one acknowledged batch's counts.
    pub fn add_batch(&mut self, s: IngestSummary, documents: usize, bytes: u64) {
        let p = &mut self.progress;
        p.added += s.added as u64;
        p.updated += s.updated as u64;
        p.unchanged += s.unchanged as u64;
        p.failed += s.failed as u64;
        p.chunks += s.chunks as u64;
        p.deleted += s.deleted as u64;
        p.documents_done += documents as u64;
        p.bytes_done += bytes;
        self.cursor.document_index += documents;
        for (id, e) in s.errors {
            self.push_error(id, e);
        }
    }

    /// Updates the rate and the ETA from `documents` and `bytes` of input processed in
    /// `seconds` of this run (the ETA is in bytes: the scan sizes files without parsing them).
    pub fn set_rate(&mut self, documents: u64, bytes: u64, seconds: f64) {
        let p = &mut self.progress;
        let per_second = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        p.documents_per_second = per_second(documents);
        let bytes_per_second = per_second(bytes);
        let left = p.bytes_total.saturating_sub(p.bytes_done) as f64;
        p.eta_seconds = if bytes_per_second > 0.0 {
            left / bytes_per_second
        } else {
            0.0
        };
    }

    /// Moves to a terminal state.
    pub fn finish(&mut self, state: JobState) {
        self.state = state;
        self.finished_unix_ms = Some(unix_ms());
        self.progress.eta_seconds = 0.0;
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_the_serialized_ones() {
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
    }
}
