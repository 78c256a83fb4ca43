//! `ragd bench api`: the same requests to one running `ragd serve` over gRPC and over HTTP,
//! one at a time and alternating, so that both see the same server, models and load: Search
//! (gRPC `Search` beside `POST /api/v1/collections/{c}/search`) and answers (gRPC `Ask` beside
//! a streamed `POST /v1/chat/completions`), timing the first text a client receives and the
//! whole answer. Clients: tonic and hyper (HTTP/1.1, plain TCP), each with one connection kept
//! alive, as a service calling ragd would.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use crate::eval::metrics::percentile;
use crate::grpc::pb;

/// What `ragd bench api` measures.
#[derive(Debug, Clone)]
pub struct ApiBench {
    /// The gRPC address (`http://host:port`).
    pub grpc: String,
    /// The HTTP base URL (`http://host:port`).
    pub http: String,
    /// The collection.
    pub collection: String,
    /// Search queries, cycled.
    pub queries: Vec<String>,
    /// Searches per protocol.
    pub searches: usize,
    /// Questions, cycled.
    pub questions: Vec<String>,
    /// Answers per protocol.
    pub answers: usize,
    /// Most tokens per answer.
    pub max_tokens: u32,
    /// Bearer token, if the server wants one.
    pub token: Option<String>,
}

/// Percentiles of one kind of request over one protocol.
#[derive(Debug, Default, serde::Serialize)]
pub struct Timing {
    /// Requests timed.
    pub requests: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
}

impl Timing {
    fn of(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        Self {
            requests: ms.len(),
            p50_ms: percentile(&ms, 50.0),
            p95_ms: percentile(&ms, 95.0),
            mean_ms: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
        }
    }
}

/// Answers over one protocol.
#[derive(Debug, Default, serde::Serialize)]
pub struct AnswerTiming {
    /// From sending the request to the first text received.
    pub first_text: Timing,
    /// The whole answer.
    pub total: Timing,
    /// Completion tokens over the summed whole-answer times.
    pub tokens_per_s: f64,
}

/// The result: each measure over gRPC and over HTTP.
#[derive(Debug, Default, serde::Serialize)]
pub struct ApiBenchResult {
    /// gRPC Search.
    pub search_grpc: Timing,
    /// REST search.
    pub search_http: Timing,
    /// gRPC Ask.
    pub answer_grpc: AnswerTiming,
    /// OpenAI chat completions, streamed.
    pub answer_http: AnswerTiming,
}

type Http = HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Runs the benchmark (see the module docs).
pub async fn measure_api(spec: &ApiBench) -> anyhow::Result<ApiBenchResult> {
    if spec.queries.is_empty() || spec.questions.is_empty() {
        bail!("no queries or questions to send");
    }
    let mut grpc = crate::grpc::client::connect(&spec.grpc).await?;
    let http: Http = HttpClient::builder(TokioExecutor::new()).build_http();
    // One untimed request of each kind: connections, caches.
    search_grpc(&mut grpc, spec, &spec.queries[0]).await?;
    search_http(&http, spec, &spec.queries[0]).await?;
    let (mut sg, mut sh) = (Vec::new(), Vec::new());
    for i in 0..spec.searches {
        let q = &spec.queries[i % spec.queries.len()];
        // Alternate which goes first, so neither always finds the other's caches warm.
        if i % 2 == 0 {
            sg.push(search_grpc(&mut grpc, spec, q).await?);
            sh.push(search_http(&http, spec, q).await?);
        } else {
            sh.push(search_http(&http, spec, q).await?);
            sg.push(search_grpc(&mut grpc, spec, q).await?);
        }
    }
    let (mut ag, mut ah) = (Vec::new(), Vec::new());
    for i in 0..spec.answers {
        let q = &spec.questions[i % spec.questions.len()];
        if i % 2 == 0 {
            ag.push(ask_grpc(&mut grpc, spec, q).await?);
            ah.push(chat_http(&http, spec, q).await?);
        } else {
            ah.push(chat_http(&http, spec, q).await?);
            ag.push(ask_grpc(&mut grpc, spec, q).await?);
        }
    }
    Ok(ApiBenchResult {
        search_grpc: Timing::of(sg),
        search_http: Timing::of(sh),
        answer_grpc: answer_timing(&ag),
        answer_http: answer_timing(&ah),
    })
}

/// One answer: (first text, total, completion tokens).
type Answered = (Duration, Duration, u64);

fn answer_timing(runs: &[Answered]) -> AnswerTiming {
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let total_s: f64 = runs.iter().map(|r| r.1.as_secs_f64()).sum();
    let tokens: u64 = runs.iter().map(|r| r.2).sum();
    AnswerTiming {
        first_text: Timing::of(runs.iter().map(|r| ms(&r.0)).collect()),
        total: Timing::of(runs.iter().map(|r| ms(&r.1)).collect()),
        tokens_per_s: tokens as f64 / total_s.max(1e-9),
    }
}

async fn search_grpc(
    client: &mut crate::grpc::client::Client,
    spec: &ApiBench,
    query: &str,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let found = client
        .search(pb::SearchRequest {
            collection: spec.collection.clone(),
            query: query.to_owned(),
            options: Some(pb::RetrievalOptions::default()),
        })
        .await?
        .into_inner();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if found.hits.is_empty() {
        bail!("gRPC search for {query:?} found nothing");
    }
    Ok(ms)
}

fn request(
    spec: &ApiBench,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
    let mut req = hyper::Request::post(format!("{}{path}", spec.http.trim_end_matches('/')))
        .header("content-type", "application/json");
    if let Some(t) = &spec.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    Ok(req.body(Full::new(Bytes::from(body.to_string())))?)
}

async fn search_http(client: &Http, spec: &ApiBench, query: &str) -> anyhow::Result<f64> {
    let req = request(
        spec,
        &format!("/api/v1/collections/{}/search", spec.collection),
        serde_json::json!({ "query": query }),
    )?;
    let started = Instant::now();
    let response = client.request(req).await.context("HTTP search")?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if !status.is_success() {
        bail!("HTTP search: {status}: {}", String::from_utf8_lossy(&body));
    }
    let found: serde_json::Value = serde_json::from_slice(&body)?;
    if found["hits"].as_array().is_none_or(Vec::is_empty) {
        bail!("HTTP search for {query:?} found nothing");
    }
    Ok(ms)
}

async fn ask_grpc(
    client: &mut crate::grpc::client::Client,
    spec: &ApiBench,
    question: &str,
) -> anyhow::Result<Answered> {
    let started = Instant::now();
    let mut stream = client
        .ask(pb::AskRequest {
            collection: spec.collection.clone(),
            question: question.to_owned(),
            retrieval: None,
            generation: Some(pb::GenerationOptions {
                max_tokens: spec.max_tokens,
                temperature: Some(0.0),
                seed: None,
                stop: Vec::new(),
            }),
        })
        .await?
        .into_inner();
    let mut first = None;
    while let Some(message) = stream.message().await? {
        match message.event {
            Some(pb::ask_response::Event::Delta(text)) if first.is_none() && !text.is_empty() => {
                first = Some(started.elapsed());
            }
            Some(pb::ask_response::Event::Delta(_)) => {}
            Some(pb::ask_response::Event::Final(f)) => {
                let total = started.elapsed();
                let tokens = f.usage.map_or(0, |u| u64::from(u.completion_tokens));
                return Ok((first.unwrap_or(total), total, tokens));
            }
            None => {}
        }
    }
    bail!("the Ask stream ended without its final message")
}

async fn chat_http(client: &Http, spec: &ApiBench, question: &str) -> anyhow::Result<Answered> {
    let req = request(
        spec,
        "/v1/chat/completions",
        serde_json::json!({
            "model": format!("ragd/{}", spec.collection),
            "messages": [{"role": "user", "content": question}],
            "max_tokens": spec.max_tokens,
            "temperature": 0.0,
            "stream": true,
        }),
    )?;
    let started = Instant::now();
    let response = client.request(req).await.context("HTTP chat")?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        bail!("HTTP chat: {status}: {}", String::from_utf8_lossy(&body));
    }
    let mut body = response.into_body();
    let (mut first, mut tokens, mut pending) = (None, 0, String::new());
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            for line in event.lines() {
                let Some(data) = line.strip_prefix("data: ") else {
                    continue;
                };
                if data == "[DONE]" {
                    let total = started.elapsed();
                    return Ok((first.unwrap_or(total), total, tokens));
                }
                let chunk: serde_json::Value = serde_json::from_str(data)?;
                if let Some(e) = chunk.get("error") {
                    bail!("HTTP chat failed: {e}");
                }
                let text = chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or("");
                if first.is_none() && !text.is_empty() {
                    first = Some(started.elapsed());
                }
                if let Some(n) = chunk["usage"]["completion_tokens"].as_u64() {
                    tokens = n;
                }
            }
        }
    }
    bail!("the chat stream ended without [DONE]")
}
