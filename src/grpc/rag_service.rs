//! The `ragd.v1.Rag` service: thin handlers. Each one reads the deadline, converts the request
//! ([`convert`]), calls a plain function on [`AppState`] or the job manager — on the blocking
//! pool when it embeds, searches or writes — and converts the result back. Errors become
//! statuses in one place (`From<ServiceError> for Status`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::instrument;

use super::convert::{self, IngestBatch};
use super::pb;
use super::{deadline, stop_at, within};
use crate::error::{Result, ServiceError};
use crate::jobs::{IngestSummary, JobSpec, JobWatch, Pipeline};
use crate::model::llm::Generation;
use crate::rag::answer::{self, Prepared};
use crate::serving::{GenerationEvent, GenerationPool, GenerationStream};
use crate::state::{AppState, AskQuery, SearchQuery};

type RpcResult<T> = std::result::Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

/// The `Rag` service over shared state.
pub struct RagService {
    state: AppState,
}

impl RagService {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl pb::rag_server::Rag for RagService {
    #[instrument(skip_all, fields(name = %req.get_ref().name))]
    async fn create_collection(
        &self,
        req: Request<pb::CreateCollectionRequest>,
    ) -> RpcResult<pb::Collection> {
        let limit = deadline(&req);
        let name = convert::create_collection(req.into_inner());
        let info = within(
            limit,
            self.state.blocking(move |s| s.create_collection(&name)),
        )
        .await?;
        Ok(Response::new(info.into()))
    }

    #[instrument(skip_all)]
    async fn create_snapshot(
        &self,
        req: Request<pb::CreateSnapshotRequest>,
    ) -> RpcResult<pb::Snapshot> {
        let limit = deadline(&req);
        let name = convert::create_snapshot(req.into_inner())?;
        let view = within(
            limit,
            self.state.blocking(move |s| s.create_snapshot(&name)),
        )
        .await?;
        Ok(Response::new(view.into()))
    }

    #[instrument(skip_all)]
    async fn list_snapshots(
        &self,
        req: Request<pb::ListSnapshotsRequest>,
    ) -> RpcResult<pb::ListSnapshotsResponse> {
        let limit = deadline(&req);
        let only = convert::list_snapshots(req.into_inner())?;
        let list = within(
            limit,
            self.state
                .unmetered(move |s| s.list_snapshots(only.as_deref())),
        )
        .await?;
        Ok(Response::new(pb::ListSnapshotsResponse {
            snapshots: list.into_iter().map(Into::into).collect(),
        }))
    }

    #[instrument(skip_all)]
    async fn restore_snapshot(
        &self,
        req: Request<pb::RestoreSnapshotRequest>,
    ) -> RpcResult<pb::RestoreSnapshotResponse> {
        let limit = deadline(&req);
        let (snapshot, name) = convert::restore_snapshot(req.into_inner())?;
        let (collection, view) = within(
            limit,
            self.state
                .blocking(move |s| s.restore_snapshot(&snapshot, &name)),
        )
        .await?;
        Ok(Response::new(pb::RestoreSnapshotResponse {
            collection: Some(collection.into()),
            snapshot: Some(view.into()),
        }))
    }

    #[instrument(skip_all)]
    async fn list_collections(
        &self,
        req: Request<pb::ListCollectionsRequest>,
    ) -> RpcResult<pb::ListCollectionsResponse> {
        let limit = deadline(&req);
        let list = within(limit, self.state.blocking(|s| s.list_collections())).await?;
        Ok(Response::new(convert::list_collections(
            req.into_inner(),
            || Ok(list),
        )?))
    }

    type ReindexCollectionStream = BoxStream<pb::ReindexEvent>;

    #[instrument(skip_all, fields(name = %req.get_ref().name))]
    async fn reindex_collection(
        &self,
        req: Request<pb::ReindexCollectionRequest>,
    ) -> RpcResult<Self::ReindexCollectionStream> {
        let pb::ReindexCollectionRequest { name } = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let state = self.state.clone();
        tokio::spawn(async move {
            let progress = tx.clone();
            let done = state
                .blocking(move |s| {
                    s.reindex(&name, |p| match progress.try_send(Ok(p.clone().into())) {
                        // A slow client misses progress messages, never holds the reindex up.
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
                        Err(mpsc::error::TrySendError::Closed(_)) => Err(ServiceError::Cancelled(
                            "the client went away: the reindex stopped and changed nothing".into(),
                        )),
                    })
                })
                .await;
            let _ = tx.send(done.map(Into::into).map_err(Status::from)).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[instrument(skip_all, fields(name = %req.get_ref().name))]
    async fn delete_collection(
        &self,
        req: Request<pb::DeleteCollectionRequest>,
    ) -> RpcResult<pb::DeleteCollectionResponse> {
        let limit = deadline(&req);
        let name = convert::delete_collection(req.into_inner());
        within(
            limit,
            self.state.blocking(move |s| s.delete_collection(&name)),
        )
        .await?;
        Ok(Response::new(pb::DeleteCollectionResponse {}))
    }

    #[instrument(skip_all)]
    async fn ingest_documents(
        &self,
        req: Request<Streaming<pb::IngestDocumentsRequest>>,
    ) -> RpcResult<pb::IngestDocumentsResponse> {
        let limit = deadline(&req);
        let summary = within(limit, ingest_stream(&self.state, req.into_inner())).await?;
        Ok(Response::new(summary.into()))
    }

    #[instrument(skip_all, fields(collection = %req.get_ref().collection))]
    async fn start_ingest_job(
        &self,
        req: Request<pb::StartIngestJobRequest>,
    ) -> RpcResult<pb::IngestJob> {
        let spec = JobSpec::try_from(req.into_inner())?;
        let job = self.state.unmetered(move |s| s.jobs().start(spec)).await?;
        Ok(Response::new(job.into()))
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn get_ingest_job(
        &self,
        req: Request<pb::GetIngestJobRequest>,
    ) -> RpcResult<pb::IngestJob> {
        let pb::GetIngestJobRequest { id } = req.into_inner();
        let id = convert::job_id(id)?;
        let job = self.state.unmetered(move |s| s.jobs().get(&id)).await?;
        Ok(Response::new(job.into()))
    }

    #[instrument(skip_all)]
    async fn list_ingest_jobs(
        &self,
        req: Request<pb::ListIngestJobsRequest>,
    ) -> RpcResult<pb::ListIngestJobsResponse> {
        let jobs = self.state.unmetered(|s| s.jobs().list()).await?;
        Ok(Response::new(convert::list_jobs(req.into_inner(), jobs)))
    }

    type WatchIngestJobStream = BoxStream<pb::IngestJob>;

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn watch_ingest_job(
        &self,
        req: Request<pb::WatchIngestJobRequest>,
    ) -> RpcResult<Self::WatchIngestJobStream> {
        let pb::WatchIngestJobRequest { id } = req.into_inner();
        let id = convert::job_id(id)?;
        let watch = self.state.unmetered(move |s| s.jobs().watch(&id)).await?;
        Ok(Response::new(watch_stream(watch)))
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn cancel_ingest_job(
        &self,
        req: Request<pb::CancelIngestJobRequest>,
    ) -> RpcResult<pb::IngestJob> {
        let pb::CancelIngestJobRequest { id } = req.into_inner();
        let id = convert::job_id(id)?;
        let job = self.state.unmetered(move |s| s.jobs().cancel(&id)).await?;
        Ok(Response::new(job.into()))
    }

    #[instrument(skip_all, fields(collection = %req.get_ref().collection, n = req.get_ref().ids.len()))]
    async fn delete_documents(
        &self,
        req: Request<pb::DeleteDocumentsRequest>,
    ) -> RpcResult<pb::DeleteDocumentsResponse> {
        let limit = deadline(&req);
        let (collection, ids) = convert::delete_documents(req.into_inner())?;
        let out = self
            .state
            .blocking(move |s| s.delete_documents(&collection, &ids));
        Ok(Response::new(convert::deleted(within(limit, out).await?)))
    }

    #[instrument(skip_all, fields(collection = %req.get_ref().collection))]
    async fn get_document(&self, req: Request<pb::GetDocumentRequest>) -> RpcResult<pb::Document> {
        let limit = deadline(&req);
        let (collection, id, chunks) = convert::get_document(req.into_inner())?;
        let doc = self
            .state
            .blocking(move |s| s.get_document(&collection, &id, chunks));
        Ok(Response::new(within(limit, doc).await?.into()))
    }

    #[instrument(skip_all, fields(collection = %req.get_ref().collection))]
    async fn search(&self, req: Request<pb::SearchRequest>) -> RpcResult<pb::SearchResponse> {
        let limit = deadline(&req);
        let mut query = SearchQuery::try_from(req.into_inner())?;
        query.options.deadline = stop_at(limit);
        let found = self.state.blocking(move |s| s.search(&query));
        let (hits, took_ms, notes) = within(limit, found).await?;
        Ok(Response::new(convert::search_response(
            hits, took_ms, notes,
        )))
    }

    type AskStream = BoxStream<pb::AskResponse>;

    #[instrument(skip_all, fields(collection = %req.get_ref().collection))]
    async fn ask(&self, req: Request<pb::AskRequest>) -> RpcResult<Self::AskStream> {
        let started = Instant::now();
        let limit = deadline(&req);
        let mut query = AskQuery::try_from(req.into_inner())?;
        query.retrieval.deadline = stop_at(limit);
        let pool = self.state.generation()?.clone();
        let prepared = self.state.blocking(move |s| s.prepare_answer(&query));
        let (prepared, params) = within(limit, prepared).await?;
        let events = match &prepared.prompt {
            Some(prompt) => Some(
                pool.generate(prompt.messages.clone(), params)
                    .map_err(ServiceError::from)?,
            ),
            None => None,
        };
        Ok(Response::new(answer_stream(
            prepared, events, pool, started,
        )))
    }
}

/// Streams the answer: the checked text one sentence at a time as each passes its check
/// ([`answer::AnswerBuilder`]), then the final message with the citations and the short answer.
/// The deltas, joined, are the final answer's text. A client that goes away drops the
/// generation stream, which cancels the generation at its next token.
fn answer_stream(
    prepared: Prepared,
    events: Option<GenerationStream>,
    pool: GenerationPool,
    started: Instant,
) -> BoxStream<pb::AskResponse> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let prepared = Arc::new(prepared);
        let builder = answer::AnswerBuilder::new();
        let (builder, generation) = match events {
            None => (builder, None),
            Some(events) => match relay(events, builder, &prepared, &tx).await {
                Some((builder, g)) => (builder, Some(g)),
                None => return,
            },
        };
        // Checking embeds the generated sentences: off the async runtime.
        let finishing = prepared.clone();
        let finished =
            tokio::task::spawn_blocking(move || builder.finish(&finishing, generation.as_ref()))
                .await;
        let (mut answer, tail) = match finished {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
            Err(e) => {
                let e = ServiceError::Internal(format!("checking the answer failed: {e}"));
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        if !tail.is_empty() && tx.send(Ok(convert::ask_delta(tail))).await.is_err() {
            return;
        }
        shorten(&prepared, &mut answer, &pool).await;
        let total_ms = started.elapsed().as_secs_f64() * 1e3;
        let _ = tx
            .send(Ok(convert::ask_final(
                &answer,
                total_ms,
                &pool.generator().info().model_id,
            )))
            .await;
    });
    Box::pin(ReceiverStream::new(rx))
}

/// The short-answer step through the generation pool. When the pool is full or the step fails,
/// the answer keeps its word-level short answer: the step refines, it never fails the answer.
async fn shorten(prepared: &Prepared, answer: &mut answer::Answer, pool: &GenerationPool) {
    let Some(request) = answer::short_request(prepared, answer) else {
        return;
    };
    let mut events = match pool.generate(request.messages.clone(), request.params.clone()) {
        Ok(events) => events,
        Err(refused) => {
            tracing::debug!(%refused, "short answer left word-level");
            return;
        }
    };
    while let Some(event) = events.recv().await {
        match event {
            Ok(GenerationEvent::Text(_)) => {}
            Ok(GenerationEvent::Finished(g)) => {
                answer::apply_short(prepared, answer, &request, &g);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the short-answer generation failed");
                return;
            }
        }
    }
}

/// Feeds the generated pieces to `builder` and sends the client each checked sentence as it
/// passes; returns the builder and the finished generation, or `None` when the client left or
/// the generation or a check failed (the failure is sent as the stream's status).
async fn relay(
    mut events: GenerationStream,
    mut builder: answer::AnswerBuilder,
    prepared: &Arc<Prepared>,
    tx: &mpsc::Sender<std::result::Result<pb::AskResponse, Status>>,
) -> Option<(answer::AnswerBuilder, Generation)> {
    while let Some(event) = events.recv().await {
        match event {
            Ok(GenerationEvent::Text(piece)) => {
                if !builder.push(&piece) {
                    if tx.is_closed() {
                        return None;
                    }
                    continue;
                }
                // Checking embeds the sentence: off the async runtime, while the model goes on.
                let p = prepared.clone();
                let settled = tokio::task::spawn_blocking(move || {
                    let shown = builder.settle(&p);
                    (builder, shown)
                })
                .await;
                let shown = match settled {
                    Ok((b, Ok(shown))) => {
                        builder = b;
                        shown
                    }
                    Ok((_, Err(e))) => {
                        let _ = tx.send(Err(e.into())).await;
                        return None;
                    }
                    Err(e) => {
                        let e = ServiceError::Internal(format!("checking the answer failed: {e}"));
                        let _ = tx.send(Err(e.into())).await;
                        return None;
                    }
                };
                if !shown.is_empty() && tx.send(Ok(convert::ask_delta(shown))).await.is_err() {
                    return None;
                }
            }
            Ok(GenerationEvent::Finished(g)) => return Some((builder, g)),
            Err(e) => {
                let _ = tx.send(Err(ServiceError::from(e).into())).await;
                return None;
            }
        }
    }
    let lost = ServiceError::Internal("the generation ended without a result".into());
    let _ = tx.send(Err(lost.into())).await;
    None
}

/// Reads a client stream batch by batch; each batch is ingested and committed before the next
/// message is read, so memory stays bounded by one message.
async fn ingest_stream(
    state: &AppState,
    mut stream: Streaming<pb::IngestDocumentsRequest>,
) -> Result<IngestSummary> {
    let mut target: Option<(String, Arc<index::Collection>, Arc<Pipeline>)> = None;
    let mut total = IngestSummary::default();
    while let Some(msg) = stream.message().await.map_err(stream_error)? {
        let batch = IngestBatch::from(msg);
        let (name, collection, pipeline) = match target.take() {
            Some(t) => check_same(t, &batch)?,
            None => open_target(state, &batch).await?,
        };
        total.fail_all(batch.rejected);
        let (c, p) = (collection.clone(), pipeline.clone());
        let docs = batch.documents;
        let summary = state.blocking(move |s| s.ingest(&c, &p, &docs)).await?;
        total.merge(summary);
        target = Some((name, collection, pipeline));
    }
    if target.is_none() {
        return Err(ServiceError::InvalidArgument(
            "the request stream carried no message".into(),
        ));
    }
    Ok(total)
}

type Target = (String, Arc<index::Collection>, Arc<Pipeline>);

/// A failed read of the request stream: an over-long message (tonic reports OUT_OF_RANGE) is
/// the caller's RESOURCE_EXHAUSTED, as gRPC conventionally reports message size limits; a
/// message that does not decode (tonic reports INTERNAL) is malformed; anything else means the
/// caller went away.
fn stream_error(status: Status) -> ServiceError {
    let code = status.code();
    if code == tonic::Code::OutOfRange {
        ServiceError::MessageTooLarge(status.message().to_string())
    } else if code == tonic::Code::Internal {
        ServiceError::MalformedRequest(status.message().to_string())
    } else {
        ServiceError::Cancelled(format!("the request stream failed: {}", status.message()))
    }
}

async fn open_target(state: &AppState, batch: &IngestBatch) -> Result<Target> {
    if batch.collection.is_empty() {
        return Err(ServiceError::InvalidArgument(
            "the first message must name the collection".into(),
        ));
    }
    let strategy = convert::chunker(&batch.chunker)?;
    let name = batch.collection.clone();
    state
        .blocking(move |s| {
            let collection = s.open_or_create(&name)?;
            let pipeline = Arc::new(s.pipeline(&strategy)?);
            Ok((name, collection, pipeline))
        })
        .await
}

fn check_same(target: Target, batch: &IngestBatch) -> Result<Target> {
    if !batch.collection.is_empty() && batch.collection != target.0 {
        return Err(ServiceError::InvalidArgument(format!(
            "the stream started on collection {:?} and then named {:?}",
            target.0, batch.collection
        )));
    }
    if !batch.chunker.is_empty() {
        return Err(ServiceError::InvalidArgument(
            "the chunker may only be set in the first message".into(),
        ));
    }
    Ok(target)
}

/// The job's record now, then after each batch, until a terminal (or paused) record.
fn watch_stream(watch: JobWatch) -> BoxStream<pb::IngestJob> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        match watch {
            JobWatch::Done(record) => {
                let _ = tx.send(Ok((*record).into())).await;
            }
            JobWatch::Live(mut updates) => loop {
                let record = updates.borrow_and_update().clone();
                let terminal = record.state.is_terminal();
                if tx.send(Ok(record.into())).await.is_err() || terminal {
                    break;
                }
                if updates.changed().await.is_err() {
                    break;
                }
            },
        }
    });
    Box::pin(ReceiverStream::new(rx))
}
