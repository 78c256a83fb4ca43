//! The body of a bulk ingestion job, run on the blocking pool.
//!
//! 1. **Scan** (once per job): size every file the job will read, reading none, so progress has
//!    a total in bytes and an ETA from the first batch. It stops at cancel and shutdown.
//! 2. **Ingest**: path by path, stream the documents (loaders are deterministic: same files,
//!    same order; memory holds one batch, whatever the size of a folder or a JSONL corpus) and
//!    ingest them in batches of at most `server.job_batch_documents` documents and
//!    [`STREAM_BATCH_TEXT_BYTES`] of text. Each batch is committed by the pipeline, then the
//!    record — counters, the batch's file and line errors, and the cursor past the batch — is
//!    saved and flushed: that is the acknowledgement. A restart resumes at the cursor (skipping
//!    the documents, and the errors among them, already acknowledged), redoing at most the
//!    batch that was in flight, and content hashes make even that batch add nothing twice.
//!
//! 3. **Sync** (jobs with `sync`): once every path is ingested, delete the documents whose
//!    files under the paths are gone (see [`super::sync`]).
//!
//! Between batches the runner checks the cancel flag, and on a cluster the cancel requests
//! other servers left there (→ `Cancelled`), and the shutdown flag (→ stays `Running`,
//! resumed on the next start). A batch the index answers `Unavailable` (a cluster shard without
//! a live replica) is written again after a pause, for up to 2 minutes, before the job fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use index::IndexError;
use ingest::{Embedder, LoadOptions, Loaded};
use tokio::sync::watch;

use super::pipeline::STREAM_BATCH_TEXT_BYTES;
use super::record::{JobRecord, JobState};
use super::store::JobStore;
use super::Pipeline;
use crate::collections::Collections;
use crate::error::{Result, ServiceError};

/// What a runner needs; shared by all jobs.
#[derive(Clone)]
pub struct RunContext {
    /// Where records are saved.
    pub jobs: Arc<JobStore>,
    /// The collections.
    pub collections: Collections,
    /// The server's embedder.
    pub embedder: Arc<dyn Embedder>,
    /// Documents per acknowledged batch.
    pub batch: usize,
    /// Largest document ingested (bytes of text).
    pub max_document_bytes: usize,
    /// How files are read.
    pub load: LoadOptions,
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
    let id = record.id.clone();
    let stop = || {
        // On a cluster another server may have asked (read at most once a second).
        if cancel.load(Ordering::SeqCst) || cx.jobs.cancel_requested(&id) {
            Some(Stop::Cancelled)
        } else if cx.shutdown.load(Ordering::SeqCst) {
            Some(Stop::Shutdown)
        } else {
            None
        }
    };
    if !record.scanned {
        if let Some(s) = scan(cx, record, &stop) {
            return Ok(Some(s));
        }
        cx.jobs.save(record)?;
        tx.send_replace(record.clone());
    }
    let name = record.spec.collection.clone();
    let open = || cx.collections.open_or_create(&name, cx.embedder.as_ref());
    let mut collection = open()?;
    let pipeline = Pipeline::new(
        &record.spec.chunker,
        cx.embedder.clone(),
        cx.max_document_bytes,
    )?;
    let run_start = (
        Instant::now(),
        record.progress.documents_done,
        record.progress.bytes_done,
    );
    while record.cursor.path_index < record.spec.paths.len() {
        let path = record.spec.paths[record.cursor.path_index].clone();
        let items = unacknowledged(
            ingest::stream_path(&path, &cx.load),
            record.cursor.document_index,
        );
        for batch in ingest::batches(items, cx.batch, STREAM_BATCH_TEXT_BYTES) {
            if let Some(s) = stop() {
                return Ok(Some(s));
            }
            let mut patience = Patience::default();
            let summary = loop {
                match pipeline.ingest_batch(collection.sink(), &batch) {
                    // A reindex switched the collection to a new generation during the batch:
                    // go on there. The batch's documents that landed before the switch were
                    // copied across, so they count as unchanged now.
                    Err(ServiceError::Index(IndexError::Reindexed { .. })) => {
                        collection = open()?;
                        break pipeline.ingest_batch(collection.sink(), &batch)?;
                    }
                    // A remote index did not answer (a cluster electing new leaders after a
                    // node died, say): the batch is written again, which its content hashes
                    // make idempotent, until it lands or the job's patience runs out.
                    Err(ServiceError::Index(IndexError::Unavailable { reason })) => {
                        let Some(pause) = patience.next() else {
                            return Err(IndexError::Unavailable { reason }.into());
                        };
                        tracing::warn!(job = %record.id, %reason, retry_in = ?pause, "the index is unavailable: retrying the batch");
                        std::thread::sleep(pause);
                        if let Some(s) = stop() {
                            return Ok(Some(s));
                        }
                    }
                    result => break result?,
                }
            };
            record.add_batch(summary, batch.documents.len(), batch.input_bytes);
            record.set_rate(
                record.progress.documents_done - run_start.1,
                record.progress.bytes_done - run_start.2,
                run_start.0.elapsed().as_secs_f64(),
            );
            cx.jobs.save(record)?;
            tx.send_replace(record.clone());
        }
        record.cursor.path_index += 1;
        record.cursor.document_index = 0;
        // Saved now, so that a restart does not count the path's trailing errors again.
        cx.jobs.save(record)?;
    }
    record.progress.documents_total = record.progress.documents_done;
    if record.spec.sync {
        // Idempotent: a restart during it finds the cursor at the end and syncs again.
        for path in &record.spec.paths {
            if let Some(s) = stop() {
                return Ok(Some(s));
            }
            let deleted = super::sync::remove_gone(&collection, path, &cx.load)?;
            record.progress.deleted += deleted as u64;
            cx.jobs.save(record)?;
            tx.send_replace(record.clone());
        }
    }
    Ok(None)
}

/// How long a job waits out an unavailable index before it fails: pauses of 0.5 s doubling to
/// 8 s, two minutes in all.
#[derive(Debug, Default)]
struct Patience {
    waited: std::time::Duration,
    tries: u32,
}

impl Patience {
    const TOTAL: std::time::Duration = std::time::Duration::from_secs(120);

    /// The next pause, or `None` once the total is spent.
    fn next(&mut self) -> Option<std::time::Duration> {
        if self.waited >= Self::TOTAL {
            return None;
        }
        let pause = std::time::Duration::from_millis(500 << self.tries.min(4));
        self.tries += 1;
        self.waited += pause;
        Some(pause)
    }
}

/// The items of a path's stream after the first `acknowledged` documents and the errors met
/// before the last of them (all recorded by earlier batches).
fn unacknowledged(
    items: impl Iterator<Item = Loaded>,
    acknowledged: usize,
) -> impl Iterator<Item = Loaded> {
    let mut seen = 0usize;
    items.filter(move |item| match item {
        Loaded::Document { .. } => {
            seen += 1;
            seen > acknowledged
        }
        Loaded::Error { .. } | Loaded::Skipped(_) => seen >= acknowledged,
    })
}

/// Sizes every path's files into `bytes_total`; stops early (leaving the job unscanned) at
/// cancel or shutdown.
fn scan(cx: &RunContext, record: &mut JobRecord, stop: &dyn Fn() -> Option<Stop>) -> Option<Stop> {
    record.progress.bytes_total = 0;
    let mut stopped = None;
    for path in &record.spec.paths {
        let totals = ingest::scan_path(path, &cx.load, &mut || {
            stopped = stop();
            stopped.is_some()
        });
        if stopped.is_some() {
            return stopped;
        }
        record.progress.bytes_total += totals.bytes;
    }
    record.scanned = true;
    None
}
