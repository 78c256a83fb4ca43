//! The body of a bulk ingestion job, run on the blocking pool.
//!
//! 1. **Scan** (once per job): load every path to count documents and text bytes, so progress
//!    has totals and an ETA.
//! 2. **Ingest**: path by path, load the documents (loaders are deterministic: same files, same
//!    order) and, from the cursor on, ingest them in batches of `server.job_batch_documents`.
//!    Each batch is committed by the pipeline, then the record — counters and the cursor past
//!    the batch — is saved and flushed: that is the acknowledgement. A restart resumes at the
//!    cursor, redoing at most the batch that was in flight, and content hashes make even that
//!    batch add nothing twice.
//!
//! Between batches the runner checks the cancel flag (→ `Cancelled`) and the shutdown flag
//! (→ stays `Running`, resumed on the next start).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use index::Store;
use ingest::{Document, Embedder, LoadOptions};
use tokio::sync::watch;

use super::record::{JobRecord, JobState};
use super::store::JobStore;
use super::{open_or_create, Pipeline};
use crate::error::Result;

/// What a runner needs; shared by all jobs.
#[derive(Clone)]
pub struct RunContext {
    /// Where records are saved.
    pub jobs: Arc<JobStore>,
    /// The collections.
    pub store: Arc<Store>,
    /// The server's embedder.
    pub embedder: Arc<dyn Embedder>,
    /// Documents per acknowledged batch.
    pub batch: usize,
    /// Largest document ingested (bytes of text).
    pub max_document_bytes: usize,
    /// Set when the server is shutting down.
    pub shutdown: Arc<AtomicBool>,
}

/// Why the runner stopped before the end.
enum Stop {
    Cancelled,
    Shutdown,
}

/// Runs (or resumes) `record` to a terminal state, or until shutdown.
pub fn run_job(
    cx: &RunContext,
    mut record: JobRecord,
    cancel: &AtomicBool,
    tx: &watch::Sender<JobRecord>,
) {
    record.state = JobState::Running;
    let outcome = run(cx, &mut record, cancel, tx);
    match outcome {
        Ok(None) => record.finish(JobState::Succeeded),
        Ok(Some(Stop::Cancelled)) => record.finish(JobState::Cancelled),
        Ok(Some(Stop::Shutdown)) => tracing::info!(job = %record.id, "job paused for shutdown"),
        Err(e) => {
            tracing::error!(job = %record.id, error = %e, "job failed");
            record.failure = Some(e.to_string());
            record.finish(JobState::Failed);
        }
    }
    if let Err(e) = cx.jobs.save(&record) {
        tracing::error!(job = %record.id, error = %e, "cannot save job record");
    }
    tracing::info!(job = %record.id, state = ?record.state, done = record.progress.documents_done, "job stopped");
    tx.send_replace(record);
}

fn run(
    cx: &RunContext,
    record: &mut JobRecord,
    cancel: &AtomicBool,
    tx: &watch::Sender<JobRecord>,
) -> Result<Option<Stop>> {
    let stop = || {
        if cancel.load(Ordering::SeqCst) {
            Some(Stop::Cancelled)
        } else if cx.shutdown.load(Ordering::SeqCst) {
            Some(Stop::Shutdown)
        } else {
            None
        }
    };
    if !record.scanned {
        scan(record);
        cx.jobs.save(record)?;
        tx.send_replace(record.clone());
    }
    let collection = open_or_create(&cx.store, &record.spec.collection, cx.embedder.as_ref())?;
    let pipeline = Pipeline::new(
        &record.spec.chunker,
        cx.embedder.clone(),
        cx.max_document_bytes,
    )?;
    let run_start = (Instant::now(), record.progress.documents_done);
    while record.cursor.path_index < record.spec.paths.len() {
        let docs = load(record);
        while record.cursor.document_index < docs.len() {
            if let Some(s) = stop() {
                return Ok(Some(s));
            }
            let from = record.cursor.document_index;
            let batch = &docs[from..docs.len().min(from + cx.batch)];
            let summary = pipeline.ingest(&collection, batch, |_, _| {})?;
            let bytes = batch.iter().map(|d| d.text().len() as u64).sum();
            record.add_batch(summary, batch.len(), bytes);
            let done = record.progress.documents_done - run_start.1;
            record.set_rate(done, run_start.0.elapsed().as_secs_f64());
            cx.jobs.save(record)?;
            tx.send_replace(record.clone());
        }
        record.cursor.path_index += 1;
        record.cursor.document_index = 0;
    }
    Ok(None)
}

/// Counts documents and text bytes over every path.
fn scan(record: &mut JobRecord) {
    for path in &record.spec.paths {
        let report = ingest::load_path(path, &LoadOptions::default());
        record.progress.documents_total += report.documents.len() as u64;
        record.progress.bytes_total += report
            .documents
            .iter()
            .map(|d| d.text().len() as u64)
            .sum::<u64>();
    }
    record.scanned = true;
}

/// Loads the cursor's path; its file errors are recorded when the path is entered first.
fn load(record: &mut JobRecord) -> Vec<Document> {
    let path = record.spec.paths[record.cursor.path_index].clone();
    let report = ingest::load_path(&path, &LoadOptions::default());
    if record.cursor.document_index == 0 {
        for e in &report.errors {
            record.progress.failed += 1;
            record.push_error(path.display().to_string(), e.to_string());
        }
    }
    report.documents
}
