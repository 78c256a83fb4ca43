//! `--server` variants of the CLI's commands (`ingest`, `search`, `ask`, `collections`,
//! `jobs`): the same commands over gRPC.
//!
//! `ragd ingest --server URL PATH...` reads the files here, a document at a time, and streams
//! them to the server in messages bounded by bytes (IngestDocuments), so neither side holds
//! more than a few messages; with `--job` the paths are read by the server instead
//! (StartIngestJob, then WatchIngestJob drives the progress bar).

use std::path::PathBuf;

use ingest::{ChunkingStrategy, LoadOptions};
use tokio_stream::StreamExt;

use crate::grpc::client::{connect, Client};
use crate::grpc::convert::{self, JobView, SnapshotLine};
use crate::grpc::pb;
use crate::jobs::{IngestSummary, JobState};
use crate::rag::Hit;
use crate::reindex::ReindexView;
use crate::state::{AskQuery, CollectionInfo};

/// Most documents per streamed message (each message is one commit on the server).
const STREAM_BATCH: usize = 64;

/// Default largest message sent: 4 MiB, well under the server's default limit of 16 MiB.
pub const DEFAULT_MESSAGE_BYTES: usize = 4 << 20;

/// Bytes a message spends besides its documents (collection, chunker, framing).
const MESSAGE_OVERHEAD: usize = 4096;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `ragd search --server`: the hits and the server's notes.
pub fn search(
    url: &str,
    query: crate::state::SearchQuery,
) -> anyhow::Result<(Vec<Hit>, Vec<String>)> {
    with_client(url, async |client| {
        let response = client.search(tonic::Request::new(query.into())).await?;
        Ok(convert::hits(response.into_inner()))
    })
}

/// Runs `f` with a client of the server at `url`, on a small runtime of its own.
pub fn with_client<R>(
    url: &str,
    f: impl AsyncFnOnce(&mut Client) -> anyhow::Result<R>,
) -> anyhow::Result<R> {
    runtime()?.block_on(async {
        let mut client = connect(url).await?;
        f(&mut client).await
    })
}

/// Every collection on the server, sorted by name.
pub fn collections(url: &str) -> anyhow::Result<Vec<CollectionInfo>> {
    with_client(url, async |client| {
        let response = client
            .list_collections(pb::ListCollectionsRequest {})
            .await?;
        let pb::ListCollectionsResponse { collections } = response.into_inner();
        Ok(collections.into_iter().map(CollectionInfo::from).collect())
    })
}

/// Creates an empty collection on the server, for its embedder.
pub fn create_collection(url: &str, name: &str) -> anyhow::Result<CollectionInfo> {
    with_client(url, async |client| {
        let request = pb::CreateCollectionRequest {
            name: name.to_string(),
        };
        Ok(client.create_collection(request).await?.into_inner().into())
    })
}

/// Deletes a collection on the server.
pub fn delete_collection(url: &str, name: &str) -> anyhow::Result<()> {
    with_client(url, async |client| {
        let request = pb::DeleteCollectionRequest {
            name: name.to_string(),
        };
        client.delete_collection(request).await?;
        Ok(())
    })
}

/// Reindexes `name` on the server, calling `progress` as it goes; returns the collection and
/// what the reindex did.
pub fn reindex(
    url: &str,
    name: &str,
    mut progress: impl FnMut(&index::ReindexProgress),
) -> anyhow::Result<(CollectionInfo, ReindexView)> {
    with_client(url, async |client| {
        let request = pb::ReindexCollectionRequest {
            name: name.to_string(),
        };
        let mut events = client.reindex_collection(request).await?.into_inner();
        while let Some(event) = events.message().await? {
            match event.event {
                Some(pb::reindex_event::Event::Progress(p)) => progress(&index::ReindexProgress {
                    round: p.round,
                    documents_done: p.documents_done,
                    documents_total: p.documents_total,
                    chunks_embedded: p.chunks_embedded,
                }),
                Some(pb::reindex_event::Event::Done(done)) => return Ok(done.into()),
                None => {}
            }
        }
        anyhow::bail!("the server ended the reindex stream without a result")
    })
}

/// Takes a snapshot of `collection` on the server.
pub fn create_snapshot(url: &str, collection: &str) -> anyhow::Result<SnapshotLine> {
    with_client(url, async |client| {
        let request = pb::CreateSnapshotRequest {
            collection: collection.to_string(),
        };
        Ok(client.create_snapshot(request).await?.into_inner().into())
    })
}

/// The server's snapshots (of `collection` only, when given), newest first.
pub fn snapshots(url: &str, collection: Option<&str>) -> anyhow::Result<Vec<SnapshotLine>> {
    with_client(url, async |client| {
        let request = pb::ListSnapshotsRequest {
            collection: collection.unwrap_or_default().to_string(),
        };
        let pb::ListSnapshotsResponse { snapshots } =
            client.list_snapshots(request).await?.into_inner();
        Ok(snapshots.into_iter().map(SnapshotLine::from).collect())
    })
}

/// Restores the server's snapshot `snapshot` as collection `name`.
pub fn restore_snapshot(
    url: &str,
    snapshot: &str,
    name: &str,
) -> anyhow::Result<(CollectionInfo, SnapshotLine)> {
    with_client(url, async |client| {
        let request = pb::RestoreSnapshotRequest {
            snapshot: snapshot.to_string(),
            collection: name.to_string(),
        };
        let pb::RestoreSnapshotResponse {
            collection,
            snapshot,
        } = client.restore_snapshot(request).await?.into_inner();
        Ok((
            collection.unwrap_or_default().into(),
            snapshot.unwrap_or_default().into(),
        ))
    })
}

/// Every job the server knows, newest first.
pub fn jobs(url: &str) -> anyhow::Result<Vec<JobView>> {
    with_client(url, async |client| {
        let response = client
            .list_ingest_jobs(pb::ListIngestJobsRequest {})
            .await?;
        let pb::ListIngestJobsResponse { jobs } = response.into_inner();
        Ok(jobs.into_iter().map(JobView::from).collect())
    })
}

/// One job.
pub fn job(url: &str, id: &str) -> anyhow::Result<JobView> {
    with_client(url, async |client| {
        let request = pb::GetIngestJobRequest { id: id.to_string() };
        Ok(client.get_ingest_job(request).await?.into_inner().into())
    })
}

/// Asks the server to cancel a job; the job as it stands after the request.
pub fn cancel_job(url: &str, id: &str) -> anyhow::Result<JobView> {
    with_client(url, async |client| {
        let request = pb::CancelIngestJobRequest { id: id.to_string() };
        Ok(client.cancel_ingest_job(request).await?.into_inner().into())
    })
}

/// Follows a job until it ends, calling `update` with each state the server sends; returns the
/// last.
pub fn watch_job(url: &str, id: &str, update: impl FnMut(&JobView)) -> anyhow::Result<JobView> {
    with_client(url, async |client| watch(client, id, update).await)
}

async fn watch(
    client: &mut Client,
    id: &str,
    mut update: impl FnMut(&JobView),
) -> anyhow::Result<JobView> {
    let request = pb::WatchIngestJobRequest { id: id.to_string() };
    let mut updates = client.watch_ingest_job(request).await?.into_inner();
    let mut last = None;
    while let Some(next) = updates.next().await {
        let view = JobView::from(next?);
        update(&view);
        last = Some(view);
    }
    match last {
        Some(view) => Ok(view),
        None => anyhow::bail!("the server ended the watch of job {id} without sending it"),
    }
}

/// `ragd ask --server`: calls `piece` with each checked piece of the answer as it streams in;
/// returns the final answer and the generator's model id.
pub fn ask(
    url: &str,
    query: AskQuery,
    mut piece: impl FnMut(&str),
) -> anyhow::Result<(crate::rag::Answer, String)> {
    with_client(url, async |client| {
        let request = pb::AskRequest::from(query);
        let mut events = client.ask(request).await?.into_inner();
        while let Some(event) = events.next().await {
            match event?.event {
                Some(pb::ask_response::Event::Delta(text)) => piece(&text),
                Some(pb::ask_response::Event::Final(f)) => return Ok(convert::answer(f)),
                None => {}
            }
        }
        anyhow::bail!("the server ended the answer without its final message")
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
    /// With `job`: delete the documents whose files under the paths are gone.
    pub sync: bool,
    /// How files are read here.
    pub load: &'a LoadOptions,
    /// The largest message sent.
    pub max_message_bytes: usize,
}

/// `ragd ingest --server` (streamed from here) or `--server --job` (read by the server).
pub fn ingest(url: &str, args: &Upload<'_>) -> anyhow::Result<IngestSummary> {
    let chunker = serde_json::to_string(&args.chunker)?;
    with_client(url, async |client| {
        if args.job {
            run_job(client, args, chunker).await
        } else {
            stream_docs(client, args, chunker).await
        }
    })
}

async fn stream_docs(
    client: &mut Client,
    args: &Upload<'_>,
    chunker: String,
) -> anyhow::Result<IngestSummary> {
    let total: u64 = args
        .paths
        .iter()
        .map(|p| ingest::scan_path(p, args.load, &mut || false).bytes)
        .sum();
    let bar = super::bytes_bar(total, "sending");
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let reader = {
        let (paths, load, bar) = (args.paths.to_vec(), args.load.clone(), bar.clone());
        let collection = args.collection.to_string();
        let budget = args.max_message_bytes;
        tokio::task::spawn_blocking(move || {
            send_messages(&paths, &load, budget, &bar, |documents, first| {
                let chunker = if first {
                    chunker.clone()
                } else {
                    String::new()
                };
                let message = pb::IngestDocumentsRequest {
                    collection: collection.clone(),
                    chunker,
                    documents,
                };
                tx.blocking_send(message).is_ok()
            })
        })
    };
    let sent = client
        .ingest_documents(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    // The reader stops at its next send once the call has ended.
    let mut summary = reader.await??;
    bar.finish_and_clear();
    let response = sent.map_err(|status| message_error(status, args.max_message_bytes))?;
    summary.merge(convert::summary(response.into_inner()));
    Ok(summary)
}

/// A failed stream, with a hint when the server refused a message as too large.
fn message_error(status: tonic::Status, budget: usize) -> anyhow::Error {
    if status.code() == tonic::Code::ResourceExhausted && status.message().contains("message") {
        anyhow::anyhow!(
            "{}; this client sent messages of up to {budget} bytes: pass a smaller \
             --max-message-bytes (under the server's server.max_message_bytes)",
            status.message()
        )
    } else {
        status.into()
    }
}

/// Reads `paths` a document at a time and hands `send` messages of at most [`STREAM_BATCH`]
/// documents and `budget` encoded bytes (with whether it is the first); stops early when `send`
/// returns false. Files, lines and documents that cannot be sent are counted as failed in the
/// returned summary (a document over the budget is one: it would fail the whole stream).
fn send_messages(
    paths: &[PathBuf],
    load: &LoadOptions,
    budget: usize,
    bar: &indicatif::ProgressBar,
    mut send: impl FnMut(Vec<pb::DocumentInput>, bool) -> bool,
) -> anyhow::Result<IngestSummary> {
    let mut failed = IngestSummary::default();
    let room = budget.saturating_sub(MESSAGE_OVERHEAD).max(1);
    let (mut message, mut size, mut messages) = (Vec::new(), 0usize, 0usize);
    for path in paths {
        let mut skipped = std::collections::BTreeMap::new();
        for item in ingest::stream_path(path, load) {
            let document = match item {
                ingest::Loaded::Document {
                    document,
                    input_bytes,
                } => {
                    bar.inc(input_bytes);
                    document
                }
                ingest::Loaded::Error { error, input_bytes } => {
                    bar.inc(input_bytes);
                    failed.fail_input(&error);
                    continue;
                }
                ingest::Loaded::Skipped(reason) => {
                    *skipped.entry(reason).or_insert(0) += 1;
                    continue;
                }
            };
            let input = convert::document_input(document);
            // Each document costs its own length plus a tag and a length prefix in the message.
            let cost = prost::Message::encoded_len(&input) + 16;
            if cost > room {
                failed.fail_all(vec![(
                    input.id,
                    format!(
                        "{cost} bytes is over the message limit of {budget} bytes \
                         (--max-message-bytes; the server's is server.max_message_bytes)"
                    ),
                )]);
                continue;
            }
            if size + cost > room || message.len() == STREAM_BATCH {
                if !send(std::mem::take(&mut message), messages == 0) {
                    return Ok(failed);
                }
                (size, messages) = (0, messages + 1);
            }
            size += cost;
            message.push(input);
        }
        for (reason, n) in skipped {
            bar.suspend(|| eprintln!("skipped {n} file(s) under {}: {reason:?}", path.display()));
        }
    }
    // The stream carries at least one message: the server learns the collection from it.
    if !message.is_empty() || messages == 0 {
        send(message, messages == 0);
    }
    Ok(failed)
}

async fn run_job(
    client: &mut Client,
    args: &Upload<'_>,
    chunker: String,
) -> anyhow::Result<IngestSummary> {
    let paths = args
        .paths
        .iter()
        .map(|p| std::path::absolute(p).map(|p| p.display().to_string()))
        .collect::<std::io::Result<Vec<_>>>()?;
    let request = convert::job_request(args.collection.to_string(), paths, chunker, args.sync);
    let job = JobView::from(client.start_ingest_job(request).await?.into_inner());
    eprintln!("started job {}", job.id);
    let bar = super::bytes_bar(0, "ingesting");
    let last = watch(client, &job.id, |view| {
        bar.set_length(view.bytes_total);
        bar.set_position(view.bytes_done);
    })
    .await?;
    bar.finish_and_clear();
    match last.state {
        Some(JobState::Succeeded) => Ok(last.summary),
        Some(JobState::Failed) => anyhow::bail!("job {} failed: {}", last.id, last.failure),
        other => anyhow::bail!("job {} ended {other:?}", last.id),
    }
}
