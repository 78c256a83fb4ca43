//! REST JSON for what the CLI and gRPC do: collections, documents, search, ask (plain or as
//! server-sent events) and jobs (with progress as server-sent events). Requests are read into
//! the gRPC request messages and checked by the same conversions ([`crate::grpc::convert`]),
//! then served by the same operations; responses are the domain types' JSON, as the CLI's
//! `--json` prints them.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{extract::State, Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::error::{ApiError, ApiResult, JsonBody, PathParams, QueryParams};
use super::Http;
use crate::api::{self, AskEvent, Finished};
use crate::grpc::{convert, pb};
use crate::jobs::{IngestSummary, JobSpec};
use crate::rag::{Answer, Hit, StageScores};
use crate::state::{AskQuery, SearchQuery};

pub(super) fn routes() -> Router<Http> {
    Router::new()
        .route(
            "/api/v1/collections",
            get(list_collections).post(create_collection),
        )
        .route(
            "/api/v1/collections/{name}",
            get(get_collection).delete(delete_collection),
        )
        .route("/api/v1/collections/{name}/documents", post(ingest))
        .route(
            "/api/v1/collections/{name}/documents/{*id}",
            get(get_document).delete(delete_document),
        )
        .route("/api/v1/collections/{name}/search", post(search))
        .route("/api/v1/collections/{name}/ask", post(ask))
        .route("/api/v1/jobs", get(list_jobs).post(start_job))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/jobs/{id}/events", get(job_events))
}

async fn list_collections(State(h): State<Http>) -> ApiResult<Json<Value>> {
    let list = h.state.blocking(|s| s.list_collections()).await?;
    Ok(Json(json!({ "collections": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCollection {
    name: String,
}

async fn create_collection(
    State(h): State<Http>,
    JsonBody(body): JsonBody<CreateCollection>,
) -> ApiResult<Response> {
    let info = h
        .state
        .blocking(move |s| s.create_collection(&body.name))
        .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn get_collection(
    State(h): State<Http>,
    PathParams(name): PathParams<String>,
) -> ApiResult<Response> {
    let info = h.state.blocking(move |s| s.collection_info(&name)).await?;
    Ok(Json(info).into_response())
}

async fn delete_collection(
    State(h): State<Http>,
    PathParams(name): PathParams<String>,
) -> ApiResult<StatusCode> {
    h.state
        .blocking(move |s| s.delete_collection(&name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentBody {
    id: String,
    #[serde(default)]
    title: String,
    text: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestBody {
    documents: Vec<DocumentBody>,
    /// A chunking strategy, as `ragd ingest --chunker` takes it.
    #[serde(default)]
    chunker: Option<Value>,
}

/// Ingests a batch of documents into `name` (created if missing) and commits it.
async fn ingest(
    State(h): State<Http>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<IngestBody>,
) -> ApiResult<Json<IngestSummary>> {
    let strategy = match &body.chunker {
        Some(v) => convert::chunker(&v.to_string())?,
        None => convert::chunker("")?,
    };
    let mut summary = IngestSummary::default();
    let mut documents = Vec::with_capacity(body.documents.len());
    for d in body.documents {
        match api::document(d.id, &d.title, &d.text, d.metadata) {
            Ok(doc) => documents.push(doc),
            Err(rejected) => summary.fail_all(vec![rejected]),
        }
    }
    let written = h
        .state
        .blocking(move |s| {
            let collection = s.open_or_create(&name)?;
            let pipeline = s.pipeline(&strategy)?;
            s.ingest(&collection, &pipeline, &documents)
        })
        .await?;
    summary.merge(written);
    Ok(Json(summary))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunksParam {
    #[serde(default)]
    chunks: bool,
}

#[derive(Serialize)]
struct ChunkJson {
    chunk_id: u64,
    ordinal: u32,
    text: String,
    span_start: usize,
    span_end: usize,
    heading_path: Vec<String>,
}

impl From<index::ChunkRecord> for ChunkJson {
    fn from(c: index::ChunkRecord) -> Self {
        Self {
            chunk_id: c.id.0,
            ordinal: c.ordinal,
            text: c.text,
            span_start: c.span_start,
            span_end: c.span_end,
            heading_path: c.heading_path,
        }
    }
}

async fn get_document(
    State(h): State<Http>,
    PathParams((collection, id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<ChunksParam>,
) -> ApiResult<Json<Value>> {
    let (collection, id, chunks) = convert::get_document(pb::GetDocumentRequest {
        collection,
        id,
        include_chunks: q.chunks,
    })?;
    let view = h
        .state
        .blocking(move |s| s.get_document(&collection, &id, chunks))
        .await?;
    let chunks: Vec<ChunkJson> = view.chunks.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "document": view.info, "chunks": chunks })))
}

async fn delete_document(
    State(h): State<Http>,
    PathParams((collection, id)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (collection, ids) = convert::delete_documents(pb::DeleteDocumentsRequest {
        collection,
        ids: vec![id.clone()],
    })?;
    let (deleted, missing) = h
        .state
        .blocking(move |s| s.delete_documents(&collection, &ids))
        .await?;
    if deleted == 0 {
        return Err(ApiError::not_found(format!("no document {id:?} is stored")));
    }
    Ok(Json(json!({ "deleted": deleted, "missing": missing })))
}

/// Retrieval settings of a search or ask body; absent fields take the server's defaults.
#[derive(Deserialize, Default)]
pub(super) struct Retrieval {
    #[serde(default)]
    k: u32,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    candidates: u32,
    #[serde(default)]
    rerank: bool,
    #[serde(default)]
    rerank_candidates: u32,
    /// Metadata pairs every hit's document must have.
    #[serde(default)]
    filter: BTreeMap<String, String>,
    /// `{"method": "rrf", "k": 60}` or `{"method": "convex", "alpha": 0.5, "normalization":
    /// "z_score" | "min_max"}`.
    #[serde(default)]
    fusion: Option<FusionBody>,
}

#[derive(Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
enum FusionBody {
    Rrf {
        k: f32,
    },
    Convex {
        alpha: f32,
        #[serde(default)]
        normalization: Option<String>,
    },
}

impl Retrieval {
    pub(super) fn into_pb(self) -> ApiResult<pb::RetrievalOptions> {
        let mode = match self.mode.as_deref() {
            None | Some("hybrid") => pb::SearchMode::Hybrid,
            Some("bm25") => pb::SearchMode::Bm25,
            Some("dense") => pb::SearchMode::Dense,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "mode {other:?}: use hybrid, dense or bm25"
                )))
            }
        };
        let fusion = match self.fusion {
            None => None,
            Some(FusionBody::Rrf { k }) => Some(pb::fusion::Method::Rrf(pb::Rrf { k })),
            Some(FusionBody::Convex {
                alpha,
                normalization,
            }) => {
                let normalization = match normalization.as_deref() {
                    None => pb::Normalization::Unspecified,
                    Some("z_score") => pb::Normalization::ZScore,
                    Some("min_max") => pb::Normalization::MinMax,
                    Some(other) => {
                        return Err(ApiError::invalid(format!(
                            "normalization {other:?}: use z_score or min_max"
                        )))
                    }
                };
                Some(pb::fusion::Method::Convex(pb::Convex {
                    alpha,
                    normalization: normalization as i32,
                }))
            }
        };
        Ok(pb::RetrievalOptions {
            mode: mode as i32,
            fusion: fusion.map(|method| pb::Fusion {
                method: Some(method),
            }),
            rerank: self.rerank,
            k: self.k,
            candidates: self.candidates,
            rerank_candidates: self.rerank_candidates,
            filter: self.filter.into_iter().collect(),
        })
    }
}

#[derive(Deserialize)]
struct SearchBody {
    query: String,
    #[serde(flatten)]
    retrieval: Retrieval,
}

#[derive(Serialize)]
struct HitJson {
    rank: usize,
    doc_id: String,
    chunk_id: u64,
    ordinal: u32,
    title: String,
    text: String,
    span_start: usize,
    span_end: usize,
    heading_path: Vec<String>,
    metadata: BTreeMap<String, String>,
    score: f32,
    stages: StageScores,
}

fn hit_json(rank: usize, h: Hit) -> HitJson {
    let Hit {
        chunk,
        score,
        stages,
    } = h;
    HitJson {
        rank,
        doc_id: chunk.doc_id,
        chunk_id: chunk.id.0,
        ordinal: chunk.ordinal,
        title: chunk.title,
        text: chunk.text,
        span_start: chunk.span_start,
        span_end: chunk.span_end,
        heading_path: chunk.heading_path,
        metadata: chunk.metadata,
        score,
        stages,
    }
}

async fn search(
    State(h): State<Http>,
    PathParams(collection): PathParams<String>,
    JsonBody(body): JsonBody<SearchBody>,
) -> ApiResult<Json<Value>> {
    let query = SearchQuery::try_from(pb::SearchRequest {
        collection,
        query: body.query,
        options: Some(body.retrieval.into_pb()?),
    })?;
    let (hits, took_ms, notes) = h.state.blocking(move |s| s.search(&query)).await?;
    let hits: Vec<HitJson> = hits
        .into_iter()
        .enumerate()
        .map(|(i, hit)| hit_json(i + 1, hit))
        .collect();
    Ok(Json(
        json!({ "hits": hits, "took_ms": took_ms, "notes": notes }),
    ))
}

#[derive(Deserialize)]
struct AskBody {
    question: String,
    #[serde(default)]
    max_tokens: u32,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Vec<String>,
    /// Answer as server-sent events: `delta` (checked text), then `final` (the answer).
    #[serde(default)]
    stream: bool,
    #[serde(flatten)]
    retrieval: Retrieval,
}

/// The answer as the CLI's `ask --json` prints it, with the whole request's time and the model.
#[derive(Serialize)]
struct AnswerJson<'a> {
    #[serde(flatten)]
    answer: &'a Answer,
    total_ms: f64,
    model: &'a str,
}

fn answer_json(done: &Finished) -> AnswerJson<'_> {
    AnswerJson {
        answer: &done.answer,
        total_ms: done.total_ms,
        model: &done.model,
    }
}

async fn ask(
    State(h): State<Http>,
    PathParams(collection): PathParams<String>,
    JsonBody(body): JsonBody<AskBody>,
) -> ApiResult<Response> {
    let query = AskQuery::try_from(pb::AskRequest {
        collection,
        question: body.question,
        retrieval: Some(body.retrieval.into_pb()?),
        generation: Some(pb::GenerationOptions {
            max_tokens: body.max_tokens,
            temperature: body.temperature,
            seed: body.seed,
            stop: body.stop,
        }),
    })?;
    let mut events = api::ask(&h.state, query, None).await?;
    if body.stream {
        return Ok(sse(ask_events(events)).into_response());
    }
    while let Some(event) = events.recv().await {
        match event? {
            AskEvent::Delta(_) => {}
            AskEvent::Final(done) => return Ok(Json(answer_json(&done)).into_response()),
        }
    }
    Err(crate::error::ServiceError::Internal("the answer ended without a result".into()).into())
}

/// An answer as server-sent events: `delta` {"text"}, then `final` (the answer) or `error`.
fn ask_events(events: api::AskEvents) -> impl Stream<Item = Event> {
    ReceiverStream::new(events).map(|event| match event {
        Ok(AskEvent::Delta(text)) => json_event("delta", &json!({ "text": text })),
        Ok(AskEvent::Final(done)) => json_event("final", &answer_json(&done)),
        Err(e) => json_event("error", &ApiError::from(e).body()),
    })
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_else(|e| {
            json!({"error": {"message": format!("encoding failed: {e}"), "code": "INTERNAL"}})
                .to_string()
        }))
}

/// Server-sent events with a keep-alive comment, so proxies keep a quiet stream open.
pub(super) fn sse(
    events: impl Stream<Item = Event> + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(events.map(Ok::<_, Infallible>)).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartJob {
    collection: String,
    paths: Vec<String>,
    #[serde(default)]
    chunker: Option<Value>,
    #[serde(default)]
    sync: bool,
}

async fn start_job(
    State(h): State<Http>,
    JsonBody(body): JsonBody<StartJob>,
) -> ApiResult<Response> {
    let spec = JobSpec::try_from(pb::StartIngestJobRequest {
        collection: body.collection,
        paths: body.paths,
        chunker: body.chunker.map(|v| v.to_string()).unwrap_or_default(),
        sync: body.sync,
    })?;
    let job = h.state.unmetered(move |s| s.jobs().start(spec)).await?;
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

async fn list_jobs(State(h): State<Http>) -> ApiResult<Json<Value>> {
    let jobs = h.state.unmetered(|s| s.jobs().list()).await?;
    Ok(Json(json!({ "jobs": jobs })))
}

async fn get_job(State(h): State<Http>, PathParams(id): PathParams<String>) -> ApiResult<Response> {
    let id = convert::job_id(id)?;
    let job = h.state.unmetered(move |s| s.jobs().get(&id)).await?;
    Ok(Json(job).into_response())
}

async fn cancel_job(
    State(h): State<Http>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Response> {
    let id = convert::job_id(id)?;
    let job = h.state.unmetered(move |s| s.jobs().cancel(&id)).await?;
    Ok(Json(job).into_response())
}

/// The job's record now and after every batch, as `job` events, until it ends.
async fn job_events(
    State(h): State<Http>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Response> {
    let id = convert::job_id(id)?;
    let watch = h.state.unmetered(move |s| s.jobs().watch(&id)).await?;
    let records = ReceiverStream::new(api::watch_job(watch));
    let records = records.map(|record| json_event("job", &record));
    Ok(sse(records).into_response())
}
