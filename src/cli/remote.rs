//! `--server` variants of `ragd ingest` and `ragd search`: the same commands over gRPC.
//!
//! `ragd ingest --server URL PATH...` loads the files here and streams them to the server in
//! batches (IngestDocuments); with `--job` the paths are read by the server instead
//! (StartIngestJob, then WatchIngestJob drives the progress bar).

use std::path::{Path, PathBuf};

use ingest::{ChunkingStrategy, Document, LoadOptions};
use tokio_stream::StreamExt;

use crate::grpc::client::{connect, Client};
use crate::grpc::convert::{self, JobView};
use crate::jobs::{IngestSummary, JobState};
use crate::rag::Hit;

/// Documents per streamed message.
const STREAM_BATCH: usize = 64;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `ragd search --server`.
pub fn search(url: &str, query: crate::state::SearchQuery) -> anyhow::Result<Vec<Hit>> {
    runtime()?.block_on(async {
        let mut client = connect(url).await?;
        let response = client.search(tonic::Request::new(query.into())).await?;
        Ok(convert::hits(response.into_inner()))
    })
}

/// What `ragd ingest --server` sends.
pub struct Upload<'a> {
    /// The collection to ingest into.
    pub collection: &'a str,
    /// Files and folders.
    pub paths: &'a [PathBuf],
    /// How the server chunks them.
    pub chunker: &'a ChunkingStrategy,
    /// Let the server read the paths (a job) instead of streaming them from here.
    pub job: bool,
}

/// `ragd ingest --server` (streamed from here) or `--server --job` (read by the server).
pub fn ingest(url: &str, args: &Upload<'_>) -> anyhow::Result<IngestSummary> {
    let chunker = serde_json::to_string(&args.chunker)?;
    runtime()?.block_on(async {
        let client = connect(url).await?;
        if args.job {
            run_job(client, args, chunker).await
        } else {
            stream_docs(client, args, chunker).await
        }
    })
}

async fn stream_docs(
    mut client: Client,
    args: &Upload<'_>,
    chunker: String,
) -> anyhow::Result<IngestSummary> {
    let docs = load_local(args.paths);
    let bar = super::progress_bar(docs.len() as u64, "sending");
    let (collection, mut first) = (args.collection.to_string(), true);
    let batches: Vec<Vec<Document>> = docs.chunks(STREAM_BATCH).map(<[_]>::to_vec).collect();
    let progress = bar.clone();
    let requests = tokio_stream::iter(batches).map(move |batch| {
        progress.inc(batch.len() as u64);
        let chunker = if first {
            chunker.clone()
        } else {
            String::new()
        };
        first = false;
        convert::ingest_request(collection.clone(), chunker, batch)
    });
    let response = client.ingest_documents(requests).await?;
    bar.finish_and_clear();
    Ok(convert::summary(response.into_inner()))
}

async fn run_job(
    mut client: Client,
    args: &Upload<'_>,
    chunker: String,
) -> anyhow::Result<IngestSummary> {
    let paths = args
        .paths
        .iter()
        .map(|p| std::path::absolute(p).map(|p| p.display().to_string()))
        .collect::<std::io::Result<Vec<_>>>()?;
    let request = convert::job_request(args.collection.to_string(), paths, chunker);
    let job = JobView::from(client.start_ingest_job(request).await?.into_inner());
    eprintln!("started job {}", job.id);
    let bar = super::progress_bar(0, "ingesting");
    let watch = crate::grpc::pb::WatchIngestJobRequest { id: job.id.clone() };
    let mut updates = client.watch_ingest_job(watch).await?.into_inner();
    let mut last = job;
    while let Some(update) = updates.next().await {
        last = JobView::from(update?);
        bar.set_length(last.total);
        bar.set_position(last.done);
    }
    bar.finish_and_clear();
    match last.state {
        Some(JobState::Succeeded) => Ok(last.summary),
        Some(JobState::Failed) => anyhow::bail!("job {} failed: {}", last.id, last.failure),
        other => anyhow::bail!("job {} ended {other:?}", last.id),
    }
}

/// Loads `paths` here, reporting bad files on stderr.
pub fn load_local(paths: &[impl AsRef<Path>]) -> Vec<Document> {
    let mut docs = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let report = ingest::load_path(path, &LoadOptions::default());
        for e in &report.errors {
            eprintln!("skipped: {e}");
        }
        for (reason, n) in &report.skipped {
            eprintln!("skipped {n} file(s) under {}: {reason:?}", path.display());
        }
        docs.extend(report.documents);
    }
    docs
}
