//! The HTTP API's router, in process (`tower::ServiceExt::oneshot`): routes, the bearer token,
//! the error table, REST over a real collection, embeddings and metrics. The OpenAI client
//! library, a Prometheus parser and a real browser drive a live server in
//! `scripts/http-clients` (tests/http).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::Engine;
use ragd::grpc::security::{AuthToken, Authenticator};
use ragd::state::AppState;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::common;

const TOKEN: &str = "a-test-token-0123456789";

fn state(dir: &std::path::Path, max_message_bytes: usize) -> AppState {
    let mut cfg = common::config();
    cfg.data_dir = dir.to_path_buf();
    cfg.server.max_message_bytes = max_message_bytes;
    AppState::new(cfg, common::shared_embedder(), None).unwrap()
}

fn router(state: &AppState, token: bool) -> Router {
    let auth = Authenticator::new(token.then(|| AuthToken::new(TOKEN).unwrap()));
    ragd::http::router(state.clone(), auth)
}

/// Sends a request; returns the status, the content type and the body (JSON when it parses,
/// else a string).
async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, String, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    raw(app, req).await
}

async fn raw(app: &Router, req: Request<Body>) -> (StatusCode, String, Value) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 26)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, value)
}

fn assert_error(got: &(StatusCode, String, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "{:?}", got.2);
    assert_eq!(got.2["error"]["code"], code, "{:?}", got.2);
    assert!(
        !got.2["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{:?}",
        got.2
    );
}

async fn ingest_pumps(app: &Router, collection: &str, n: usize) {
    let documents: Vec<Value> = (0..n)
        .map(|i| {
            let d = common::pump_manual(i);
            json!({"id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata})
        })
        .collect();
    let (status, _, body) = call(
        app,
        Method::POST,
        &format!("/api/v1/collections/{collection}/documents"),
        Some(json!({ "documents": documents })),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["added"], n, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_collections_documents_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), 1 << 20);
    let app = router(&state, true);
    let t = Some(TOKEN);

    let created = call(
        &app,
        Method::POST,
        "/api/v1/collections",
        Some(json!({"name": "kb"})),
        t,
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED, "{:?}", created.2);
    assert_eq!(created.2["dimension"], 384);
    let again = call(
        &app,
        Method::POST,
        "/api/v1/collections",
        Some(json!({"name": "kb"})),
        t,
    )
    .await;
    assert_error(&again, 409, "ALREADY_EXISTS");

    ingest_pumps(&app, "kb", 12).await;
    // Re-sending the same documents writes nothing.
    let (_, _, second) = call(
        &app,
        Method::POST,
        "/api/v1/collections/kb/documents",
        Some(json!({"documents": [
            {"id": "pump-000", "title": "Pump PX-000 manual", "text": common::pump_manual(0).text,
             "metadata": common::pump_manual(0).metadata},
            {"id": "", "text": "x"},
        ]})),
        t,
    )
    .await;
    assert_eq!(second["unchanged"], 1, "{second}");
    assert_eq!(second["failed"], 1, "an empty id fails alone: {second}");

    let listed = call(&app, Method::GET, "/api/v1/collections", None, t).await;
    assert_eq!(listed.2["collections"][0]["name"], "kb");
    assert_eq!(listed.2["collections"][0]["documents"], 12);

    // BM25 finds the exact part number; the filter keeps one place; stage scores are reported.
    let (status, _, found) = call(
        &app,
        Method::POST,
        "/api/v1/collections/kb/search",
        Some(json!({"query": "bearing-14-02", "mode": "bm25", "k": 3})),
        t,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["hits"][0]["doc_id"], "pump-002", "{found}");
    assert!(found["hits"][0]["stages"]["bm25"].as_f64().unwrap() > 0.0);
    assert!(found["hits"][0]["stages"]["dense"].is_null());
    let (_, _, filtered) = call(
        &app,
        Method::POST,
        "/api/v1/collections/kb/search",
        Some(json!({"query": "which pump serves the cooling tower?", "filter": {"place": "cooling tower"}, "k": 20})),
        t,
    )
    .await;
    let hits = filtered["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{filtered}");
    assert!(
        hits.iter()
            .all(|h| h["metadata"]["place"] == "cooling tower"),
        "{filtered}"
    );
    assert!(hits[0]["stages"]["fused"].is_number(), "hybrid by default");

    // A document with its chunks; deleting it removes it from both legs.
    let (status, _, doc) = call(
        &app,
        Method::GET,
        "/api/v1/collections/kb/documents/pump-002?chunks=true",
        None,
        t,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["document"]["id"], "pump-002");
    let chunk_text = doc["chunks"][0]["text"].as_str().unwrap();
    assert!(chunk_text.contains("bearing-14-02"), "{doc}");
    let deleted = call(
        &app,
        Method::DELETE,
        "/api/v1/collections/kb/documents/pump-002",
        None,
        t,
    )
    .await;
    assert_eq!(deleted.2["deleted"], 1, "{:?}", deleted.2);
    let gone = call(
        &app,
        Method::GET,
        "/api/v1/collections/kb/documents/pump-002",
        None,
        t,
    )
    .await;
    assert_error(&gone, 404, "NOT_FOUND");
    let again = call(
        &app,
        Method::DELETE,
        "/api/v1/collections/kb/documents/pump-002",
        None,
        t,
    )
    .await;
    assert_error(&again, 404, "NOT_FOUND");
    let (_, _, after) = call(
        &app,
        Method::POST,
        "/api/v1/collections/kb/search",
        Some(json!({"query": "bearing-14-02", "mode": "bm25"})),
        t,
    )
    .await;
    assert!(
        after["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["doc_id"] != "pump-002"),
        "{after}"
    );

    // The metrics count the routes by pattern and time the search stages.
    let (status, content_type, metrics) = call(&app, Method::GET, "/metrics", None, t).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let metrics = metrics.as_str().unwrap().to_owned();
    for want in [
        "ragd_requests_total{protocol=\"http\",route=\"/api/v1/collections/{name}/search\",status=\"200\"}",
        "ragd_stage_duration_seconds_count{stage=\"bm25\"}",
        "ragd_stage_duration_seconds_count{stage=\"embed\"}",
        "ragd_collection_documents{collection=\"kb\"} 11",
        "ragd_build_info{",
    ] {
        assert!(metrics.contains(want), "{want} missing:\n{metrics}");
    }
    assert!(metrics.ends_with("# EOF\n"));

    let dropped = call(&app, Method::DELETE, "/api/v1/collections/kb", None, t).await;
    assert_eq!(dropped.0, StatusCode::NO_CONTENT, "{:?}", dropped.2);
    let missing = call(&app, Method::GET, "/api/v1/collections/kb", None, t).await;
    assert_error(&missing, 404, "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_credentials_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), 64 * 1024);
    let app = router(&state, true);
    let t = Some(TOKEN);
    ingest_pumps(&app, "kb", 3).await;

    // Credentials: missing, wrong, and not a bearer token; the probes and the page need none.
    let missing = call(&app, Method::GET, "/api/v1/collections", None, None).await;
    assert_error(&missing, 401, "UNAUTHENTICATED");
    let wrong = call(
        &app,
        Method::GET,
        "/v1/models",
        None,
        Some("wrong-token-0123456789"),
    )
    .await;
    assert_error(&wrong, 401, "UNAUTHENTICATED");
    let basic = raw(
        &app,
        Request::get("/metrics")
            .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_error(&basic, 401, "UNAUTHENTICATED");
    for open in [
        "/healthz",
        "/readyz",
        "/",
        "/assets/app.js",
        "/assets/style.css",
    ] {
        let got = call(&app, Method::GET, open, None, None).await;
        assert_eq!(got.0, StatusCode::OK, "{open}: {:?}", got.2);
    }
    let page = call(&app, Method::GET, "/", None, None).await;
    assert!(page.1.starts_with("text/html"), "{}", page.1);

    // Malformed JSON, wrong types, a missing field, the wrong content type.
    let malformed = raw(
        &app,
        Request::post("/api/v1/collections/kb/search")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"query\": "))
            .unwrap(),
    )
    .await;
    assert_error(&malformed, 400, "INVALID_ARGUMENT");
    let typed = call(
        &app,
        Method::POST,
        "/api/v1/collections/kb/search",
        Some(json!({"query": "seal", "k": "ten"})),
        t,
    )
    .await;
    assert_error(&typed, 400, "INVALID_ARGUMENT");
    assert!(
        typed.2["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"ten\""),
        "{:?}",
        typed.2
    );
    let no_query = call(
        &app,
        Method::POST,
        "/api/v1/collections/kb/search",
        Some(json!({"k": 3})),
        t,
    )
    .await;
    assert_error(&no_query, 400, "INVALID_ARGUMENT");
    let text_plain = raw(
        &app,
        Request::post("/api/v1/collections/kb/search")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("{\"query\": \"seal\"}"))
            .unwrap(),
    )
    .await;
    assert_eq!(
        text_plain.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{:?}",
        text_plain.2
    );
    let bad_mode = call(
        &app,
        Method::POST,
        "/api/v1/collections/kb/search",
        Some(json!({"query": "seal", "mode": "fuzzy"})),
        t,
    )
    .await;
    assert_error(&bad_mode, 400, "INVALID_ARGUMENT");
    let too_many = call(
        &app,
        Method::POST,
        "/api/v1/collections/kb/search",
        Some(json!({"query": "seal", "k": 100000})),
        t,
    )
    .await;
    assert_error(&too_many, 400, "INVALID_ARGUMENT");

    // A body over server.max_message_bytes.
    let big = "x".repeat(100 * 1024);
    let oversized = call(
        &app,
        Method::POST,
        "/v1/embeddings",
        Some(json!({"input": big})),
        t,
    )
    .await;
    assert_error(&oversized, 413, "RESOURCE_EXHAUSTED");

    // Unknown collection, model, job, route.
    let nope = call(
        &app,
        Method::POST,
        "/api/v1/collections/nope/search",
        Some(json!({"query": "seal"})),
        t,
    )
    .await;
    assert_error(&nope, 404, "NOT_FOUND");
    let model = call(&app, Method::GET, "/v1/models/ragd/nope", None, t).await;
    assert_error(&model, 404, "NOT_FOUND");
    let job = call(&app, Method::GET, "/api/v1/jobs/job-404", None, t).await;
    assert_error(&job, 404, "NOT_FOUND");
    let route = call(&app, Method::GET, "/v2/everything", None, t).await;
    assert_error(&route, 404, "NOT_FOUND");
    let invalid_name = call(
        &app,
        Method::POST,
        "/api/v1/collections",
        Some(json!({"name": "../etc"})),
        t,
    )
    .await;
    assert_error(&invalid_name, 400, "INVALID_ARGUMENT");

    // A job outside the allowed roots is refused; without a generator or a reranker, chat and
    // rerank say what is missing.
    let job = call(
        &app,
        Method::POST,
        "/api/v1/jobs",
        Some(json!({"collection": "kb", "paths": ["/etc"]})),
        t,
    )
    .await;
    assert!(job.0.is_client_error(), "{:?}", job.2);
    let chat = call(
        &app,
        Method::POST,
        "/v1/chat/completions",
        Some(json!({"model": "ragd/kb", "messages": [{"role": "user", "content": "Which part?"}]})),
        t,
    )
    .await;
    assert_error(&chat, 501, "UNIMPLEMENTED");
    let assistant_last = call(
        &app,
        Method::POST,
        "/v1/chat/completions",
        Some(json!({"model": "ragd/kb", "messages": [{"role": "assistant", "content": "hi"}]})),
        t,
    )
    .await;
    assert_error(&assistant_last, 400, "INVALID_ARGUMENT");
    let rerank = call(
        &app,
        Method::POST,
        "/v1/rerank",
        Some(json!({"query": "q", "documents": ["a"]})),
        t,
    )
    .await;
    assert_error(&rerank, 501, "UNIMPLEMENTED");
    let tokens = call(
        &app,
        Method::POST,
        "/v1/embeddings",
        Some(json!({"input": [[1, 2, 3]]})),
        t,
    )
    .await;
    assert_error(&tokens, 400, "INVALID_ARGUMENT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_float_and_base64_agree_with_the_embedder() {
    use ingest::Embedder;

    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), 1 << 20);
    let app = router(&state, false);
    let texts = ["pump seal replacement", "密封件更换"];
    let (status, _, floats) = call(
        &app,
        Method::POST,
        "/v1/embeddings",
        Some(json!({"input": texts})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{floats}");
    let (_, _, b64) = call(
        &app,
        Method::POST,
        "/v1/embeddings",
        Some(json!({"input": texts, "encoding_format": "base64", "model": "whatever"})),
        None,
    )
    .await;
    let want = common::shared_embedder().embed(&texts).unwrap();
    for (i, w) in want.iter().enumerate() {
        let f: Vec<f32> = floats["data"][i]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(f, w.vector, "input {i} as floats");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64["data"][i]["embedding"].as_str().unwrap())
            .unwrap();
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(decoded, w.vector, "input {i} as base64");
    }
    assert_eq!(floats["data"][1]["index"], 1);
    assert!(floats["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(floats["model"], common::shared_embedder().model_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_once_the_shutdown_begins() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), 1 << 20);
    let app = router(&state, true);
    let ready = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.2["status"], "ready");
    state.start_draining();
    let draining = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(draining.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(draining.2["status"], "shutting_down");
    let alive = call(&app, Method::GET, "/healthz", None, None).await;
    assert_eq!(alive.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerank_scores_are_the_cross_encoders_in_the_cohere_shape() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config();
    cfg.data_dir = dir.path().to_path_buf();
    let reranker: Arc<dyn ragd::model::Reranker> = Arc::new(crate::reranker::fixture_reranker());
    let state = AppState::new(cfg, common::shared_embedder(), Some(reranker)).unwrap();
    let app = router(&state, false);
    let refs = crate::reranker::references();
    let query = refs[0].query.clone();
    let group: Vec<_> = refs.iter().filter(|r| r.query == query).collect();
    assert!(
        group.len() >= 2,
        "the fixture has several passages per query"
    );
    // Strings and {"text"} objects both count as documents.
    let documents: Vec<Value> = group
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i % 2 == 0 {
                json!(r.passage)
            } else {
                json!({ "text": r.passage })
            }
        })
        .collect();
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/v1/rerank",
        Some(json!({"model": "fixture", "query": query, "documents": documents, "top_n": 2})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "top_n: {body}");
    let mut want: Vec<(usize, f32)> = group.iter().map(|r| r.logit).enumerate().collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (got, (index, logit)) in results.iter().zip(want) {
        assert_eq!(got["index"], index, "{body}");
        let score = got["relevance_score"].as_f64().unwrap();
        let sigmoid = 1.0 / (1.0 + (-f64::from(logit)).exp());
        assert!(
            (score - sigmoid).abs() < 1e-3,
            "{score} vs sigmoid({logit}) = {sigmoid}"
        );
        assert_eq!(got["document"]["text"], group[index].passage.as_str());
    }
    let (_, _, bare) = call(
        &app,
        Method::POST,
        "/v1/rerank",
        Some(json!({"query": query, "documents": documents, "return_documents": false})),
        None,
    )
    .await;
    let bare = bare["results"].as_array().unwrap();
    assert_eq!(bare.len(), group.len());
    assert!(bare.iter().all(|r| r.get("document").is_none()));
    let empty = call(
        &app,
        Method::POST,
        "/v1/rerank",
        Some(json!({"query": query, "documents": []})),
        None,
    )
    .await;
    assert_error(&empty, 400, "INVALID_ARGUMENT");
}
