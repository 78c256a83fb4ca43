//! OpenAI-compatible routes, so the tools teams already run (the `openai` client libraries,
//! LangChain, LlamaIndex, LiteLLM, Open WebUI) use ragd without custom code:
//!
//! - `POST /v1/chat/completions`: the model names the collection (`ragd/<collection>`, or the
//!   bare name). The last message must be the user's question. When the conversation has an
//!   earlier user turn, the one just before is put ahead of the question, so a follow-up
//!   ("and how much memory does it save?") retrieves what it refers to; assistant and system
//!   messages are not used (ragd's own prompt keeps the model to the sources). The answer is
//!   Ask's checked answer with its `[n]` markers; the cited sources come back in the message's
//!   `citations` extension (with `short_answer` and `not_found`). `stream: true` sends the
//!   checked text as `chat.completion.chunk`s and ends with `data: [DONE]`.
//! - `POST /v1/embeddings` (string or list input; float or base64), `GET /v1/models` (each
//!   collection as `ragd/<name>`), `POST /v1/rerank` (the Cohere/Jina shape, when a reranker
//!   is configured).
//!
//! Unknown request fields are ignored, as OpenAI clients expect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures_util::stream;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;

use super::error::{ApiError, ApiResult, JsonBody, PathParams};
use super::rest::sse;
use super::Http;
use crate::api::{self, AskEvent, Finished};
use crate::grpc::pb;
use crate::model::llm::FinishReason;
use crate::state::AskQuery;

/// Most inputs one embeddings request may carry (OpenAI's limit).
const MAX_EMBEDDING_INPUTS: usize = 2048;
/// Most documents one rerank request may carry.
const MAX_RERANK_DOCUMENTS: usize = 1000;
/// The prefix of the model names that stand for collections.
const MODEL_PREFIX: &str = "ragd/";

pub(super) fn routes() -> Router<Http> {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/v1/rerank", post(rerank))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A response id unique to this process: its start time and a counter.
fn response_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{prefix}-{started:x}{:x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The collection a model name stands for.
fn collection_of(model: &str) -> &str {
    model.strip_prefix(MODEL_PREFIX).unwrap_or(model)
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    n: Option<u32>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<Value>,
}

impl ChatMessage {
    /// The message's text: a string, or the text parts of a list of content parts.
    fn text(&self) -> ApiResult<String> {
        match &self.content {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.get("type").and_then(Value::as_str), part.get("text")) {
                        (Some("text"), Some(Value::String(t))) => {
                            if !text.is_empty() {
                                text.push('\n');
                            }
                            text.push_str(t);
                        }
                        (kind, _) => {
                            return Err(ApiError::invalid(format!(
                                "message content part of type {:?}: only text parts are supported",
                                kind.unwrap_or("?")
                            )))
                        }
                    }
                }
                Ok(text)
            }
            Some(_) => Err(ApiError::invalid(
                "message content must be a string or a list of content parts",
            )),
        }
    }
}

/// The question to answer: the last message (the user's), with the user turn before it, if
/// any, put ahead of it so that a follow-up retrieves what it refers to.
fn question(messages: &[ChatMessage]) -> ApiResult<String> {
    let Some((last, earlier)) = messages.split_last() else {
        return Err(ApiError::invalid("messages is empty"));
    };
    if last.role != "user" {
        return Err(ApiError::invalid(format!(
            "the last message must be the user's question, not a {:?} message",
            last.role
        )));
    }
    let asked = last.text()?;
    let previous = earlier.iter().rev().find(|m| m.role == "user");
    Ok(match previous {
        Some(m) => {
            let before = m.text()?;
            if before.trim().is_empty() {
                asked
            } else {
                format!("{}\n{}", before.trim(), asked.trim())
            }
        }
        None => asked,
    })
}

fn ask_query(req: &ChatRequest) -> ApiResult<AskQuery> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n: ragd writes one answer per request"));
    }
    let stop = match &req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    Ok(AskQuery::try_from(pb::AskRequest {
        collection: collection_of(&req.model).to_owned(),
        question: question(&req.messages)?,
        retrieval: None,
        generation: Some(pb::GenerationOptions {
            max_tokens: req.max_completion_tokens.or(req.max_tokens).unwrap_or(0),
            temperature: req.temperature,
            seed: req.seed,
            stop,
        }),
    })?)
}

/// "length" when the text shown is the model's and it was cut short; "stop" otherwise (also
/// when the answer quotes the sources or says the knowledge base has no answer).
fn finish_reason(done: &Finished) -> &'static str {
    let own_text = !done.answer.stats.extractive && !done.answer.not_found;
    match done.finish {
        Some(FinishReason::Length | FinishReason::ContextFull) if own_text => "length",
        _ => "stop",
    }
}

fn usage(done: &Finished) -> Value {
    let s = &done.answer.stats;
    json!({
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.prompt_tokens + s.completion_tokens,
    })
}

/// The ragd extensions of an answer message: its cited sources, short answer and refusal.
fn extensions(done: &Finished, into: &mut serde_json::Map<String, Value>) {
    let a = &done.answer;
    into.insert("citations".into(), json!(a.citations));
    into.insert("short_answer".into(), json!(a.short_answer));
    into.insert("not_found".into(), json!(a.not_found));
}

async fn chat(State(h): State<Http>, JsonBody(req): JsonBody<ChatRequest>) -> ApiResult<Response> {
    let query = ask_query(&req)?;
    let mut events = api::ask(&h.state, query, None).await?;
    let id = response_id("chatcmpl");
    let created = unix_now();
    if req.stream {
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let chunks = chat_chunks(events, id, created, req.model, include_usage);
        return Ok(sse(chunks).into_response());
    }
    while let Some(event) = events.recv().await {
        if let AskEvent::Final(done) = event? {
            let mut message = serde_json::Map::new();
            message.insert("role".into(), json!("assistant"));
            message.insert("content".into(), json!(done.answer.text));
            extensions(&done, &mut message);
            return Ok(Json(json!({
                "id": id,
                "object": "chat.completion",
                "created": created,
                "model": req.model,
                "choices": [{
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason(&done),
                    "logprobs": null,
                }],
                "usage": usage(&done),
            }))
            .into_response());
        }
    }
    Err(crate::error::ServiceError::Internal("the answer ended without a result".into()).into())
}

/// The answer as OpenAI's stream: a role chunk, a chunk per checked piece of text, a last
/// chunk with the finish reason, the citations and the usage, a usage chunk when asked for,
/// then `[DONE]`. A failure is sent as an `error` object, as OpenAI does.
fn chat_chunks(
    events: api::AskEvents,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
) -> impl futures_util::Stream<Item = Event> + Send + 'static {
    let chunk = move |delta: Value, finish: Option<&str>, usage: Option<Value>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        });
        if let Some(u) = usage {
            c["usage"] = u;
        }
        c
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), None, None);
    let body = ReceiverStream::new(events).flat_map(move |event| {
        let out: Vec<Value> = match event {
            Ok(AskEvent::Delta(text)) => vec![chunk(json!({ "content": text }), None, None)],
            Ok(AskEvent::Final(done)) => {
                let mut delta = serde_json::Map::new();
                extensions(&done, &mut delta);
                let mut out = vec![chunk(
                    Value::Object(delta),
                    Some(finish_reason(&done)),
                    Some(usage(&done)),
                )];
                if include_usage {
                    let mut last = chunk(json!({}), None, Some(usage(&done)));
                    last["choices"] = json!([]);
                    out.push(last);
                }
                out
            }
            Err(e) => vec![ApiError::from(e).body()],
        };
        stream::iter(out)
    });
    stream::iter([first])
        .chain(body)
        .map(|v| Event::default().data(v.to_string()))
        .chain(stream::iter([Event::default().data("[DONE]")]))
}

#[derive(Deserialize)]
struct EmbeddingsRequest {
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
}

fn embedding_inputs(input: Value) -> ApiResult<Vec<String>> {
    let texts = match input {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                Value::Null
                | Value::Bool(_)
                | Value::Number(_)
                | Value::Array(_)
                | Value::Object(_) => Err(ApiError::invalid(
                    "input: a string or a list of strings (token arrays are not accepted: send text)",
                )),
            })
            .collect::<ApiResult<_>>()?,
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_) => {
            return Err(ApiError::invalid("input: a string or a list of strings"))
        }
    };
    if texts.is_empty() || texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::invalid(format!(
            "input: 1 to {MAX_EMBEDDING_INPUTS} strings, got {}",
            texts.len()
        )));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(ApiError::invalid(format!("input[{i}] is empty")));
    }
    Ok(texts)
}

async fn embeddings(
    State(h): State<Http>,
    JsonBody(req): JsonBody<EmbeddingsRequest>,
) -> ApiResult<Json<Value>> {
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "encoding_format {other:?}: use float or base64"
            )))
        }
    };
    let texts = embedding_inputs(req.input)?;
    let dimension = h.state.embedder().dimension();
    if req.dimensions.is_some_and(|d| d != dimension) {
        return Err(ApiError::invalid(format!(
            "dimensions: this embedder gives {dimension}"
        )));
    }
    let vectors = h
        .state
        .blocking(move |s| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            Ok(s.embedder().embed(&refs)?)
        })
        .await?;
    // The tokens the model saw, as the embedder counted them while embedding.
    let tokens: usize = vectors.iter().map(|e| e.tokens).sum();
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = e.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(e.vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": h.state.embedder().model_id(),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}

fn model_json(collection: &str) -> Value {
    json!({
        "id": format!("{MODEL_PREFIX}{collection}"),
        "object": "model",
        "created": 0,
        "owned_by": "ragd",
    })
}

async fn models(State(h): State<Http>) -> ApiResult<Json<Value>> {
    let list = h.state.blocking(|s| s.list_collections()).await?;
    let data: Vec<Value> = list.iter().map(|c| model_json(&c.name)).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

async fn model(
    State(h): State<Http>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let name = collection_of(&id).to_owned();
    let info = h.state.blocking(move |s| s.collection_info(&name)).await?;
    Ok(Json(model_json(&info.name)))
}

#[derive(Deserialize)]
struct RerankRequest {
    #[serde(default)]
    model: Option<String>,
    query: String,
    documents: Vec<Value>,
    #[serde(default)]
    top_n: Option<usize>,
    #[serde(default)]
    return_documents: Option<bool>,
}

async fn rerank(
    State(h): State<Http>,
    JsonBody(req): JsonBody<RerankRequest>,
) -> ApiResult<Json<Value>> {
    if h.state.reranker().is_none() {
        return Err(ApiError::new(
            tonic::Code::Unimplemented,
            "no reranker is configured on this server (reranker.model, RAGD_RERANKER)",
        ));
    }
    if req.query.trim().is_empty() {
        return Err(ApiError::invalid("query is empty"));
    }
    if req.documents.is_empty() || req.documents.len() > MAX_RERANK_DOCUMENTS {
        return Err(ApiError::invalid(format!(
            "documents: 1 to {MAX_RERANK_DOCUMENTS}, got {}",
            req.documents.len()
        )));
    }
    let texts = req
        .documents
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Value::String(s) => Ok(s.clone()),
            Value::Object(o) => match o.get("text") {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(ApiError::invalid(format!("documents[{i}] has no text"))),
            },
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::Array(_) => Err(
                ApiError::invalid(format!("documents[{i}]: a string or an object with a text")),
            ),
        })
        .collect::<ApiResult<Vec<String>>>()?;
    let query = req.query.clone();
    let (texts, scores) = h
        .state
        .blocking(move |s| {
            let reranker = s
                .reranker()
                .ok_or(crate::error::ServiceError::Unimplemented(
                    "no reranker is configured",
                ))?;
            let mut scores = Vec::with_capacity(texts.len());
            for window in texts.chunks(reranker.max_candidates().max(1)) {
                let refs: Vec<&str> = window.iter().map(String::as_str).collect();
                scores.extend(reranker.rerank(&query, &refs)?);
            }
            Ok((texts, scores))
        })
        .await?;
    let mut order: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    order.truncate(req.top_n.unwrap_or(order.len()));
    let with_text = req.return_documents.unwrap_or(true);
    let results: Vec<Value> = order
        .into_iter()
        .map(|(index, logit)| {
            let mut r = json!({
                "index": index,
                // Cohere and Jina scores lie in [0, 1]: the cross-encoder's logit, squashed.
                "relevance_score": 1.0 / (1.0 + (-logit).exp()),
            });
            if with_text {
                r["document"] = json!({ "text": texts[index] });
            }
            r
        })
        .collect();
    let model = req.model.unwrap_or_else(|| {
        h.state
            .config()
            .reranker
            .model
            .as_ref()
            .map(|m| m.display().to_string())
            .unwrap_or_default()
    });
    Ok(Json(json!({
        "id": response_id("rerank"),
        "model": model,
        "results": results,
    })))
}
