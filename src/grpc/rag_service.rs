//! The `ragd.v1.Rag` service: thin handlers. Each one reads the deadline, converts the request
//! ([`convert`]), calls a plain function on [`AppState`] or the job manager — on the blocking
//! pool when it embeds, searches or writes — and converts the result back. Errors become
//! statuses in one place (`From<ServiceError> for Status`).

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::instrument;

use super::convert::{self, IngestBatch};
use super::deadline;
use super::pb;
use crate::api::{self, stop_at, within, AskEvent};
use crate::collections::Opened;
use crate::error::{Result, ServiceError};
use crate::jobs::{IngestSummary, JobSpec, JobWatch, Pipeline};
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
        let limit = deadline(&req);
        let query = AskQuery::try_from(req.into_inner())?;
        let events = api::ask(&self.state, query, limit).await?;
        let stream = ReceiverStream::new(events).map(|event| match event {
            Ok(AskEvent::Delta(text)) => Ok(convert::ask_delta(text)),
            Ok(AskEvent::Final(done)) => {
                Ok(convert::ask_final(&done.answer, done.total_ms, &done.model))
            }
            Err(e) => Err(Status::from(e)),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Reads a client stream batch by batch; each batch is ingested and committed before the next
/// message is read, so memory stays bounded by one message.
async fn ingest_stream(
    state: &AppState,
    mut stream: Streaming<pb::IngestDocumentsRequest>,
) -> Result<IngestSummary> {
    let mut target: Option<Target> = None;
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

type Target = (String, Arc<Opened>, Arc<Pipeline>);

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
            let collection = Arc::new(s.open_or_create(&name)?);
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
    Box::pin(ReceiverStream::new(api::watch_job(watch)).map(|r| Ok(r.into())))
}
