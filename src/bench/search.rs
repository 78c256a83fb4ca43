//! `ragd bench search`: search latency and throughput with N concurrent clients, either
//! in-process (threads calling the [`Retriever`](crate::rag::Retriever) on a snapshot) or over
//! gRPC (`--server`: N tasks, each with its own connection, calling Search). Same queries, same
//! options, so the difference is the RPC overhead (encoding, HTTP/2, scheduling).
//!
//! Queries come from a BEIR queries.jsonl, cycled until `--requests` calls are made; each
//! client takes the next query from a shared counter. One warm-up pass of `--concurrency`
//! queries is not timed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use index::Store;

use crate::config::Config;
use crate::eval::dataset::read_query_texts;
use crate::eval::metrics::percentile;
use crate::rag::{Mode, RetrieveOptions};
use crate::state::SearchQuery;
use crate::wiring::{Models, RerankChoice};

/// What `ragd bench search` measures.
#[derive(Debug, Clone)]
pub struct SearchBench {
    /// The collection to search.
    pub collection: String,
    /// BEIR queries.jsonl; `None`: SciFact's.
    pub queries: Option<PathBuf>,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Timed requests in all.
    pub requests: usize,
    /// First-stage retrieval.
    pub mode: Mode,
    /// Results per query.
    pub k: usize,
    /// Call this server over gRPC instead of searching in-process.
    pub server: Option<String>,
}

/// Latency percentiles and throughput of one run.
#[derive(Debug, serde::Serialize)]
pub struct SearchBenchResult {
    /// `local` or `grpc`.
    pub transport: &'static str,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Timed requests.
    pub requests: usize,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Mean latency, ms.
    pub mean_ms: f64,
    /// Requests per second over the whole run.
    pub requests_per_s: f64,
}

fn read_queries(args: &SearchBench) -> anyhow::Result<Vec<String>> {
    let path = args
        .queries
        .clone()
        .unwrap_or_else(|| crate::eval::dataset::default_scifact_dir().join("queries.jsonl"));
    read_query_texts(&path)
}

fn summarize(
    transport: &'static str,
    args: &SearchBench,
    lat: Vec<Duration>,
    wall: Duration,
) -> SearchBenchResult {
    let mut ms: Vec<f64> = lat.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    SearchBenchResult {
        transport,
        concurrency: args.concurrency,
        requests: lat.len(),
        p50_ms: percentile(&ms, 50.0),
        p99_ms: percentile(&ms, 99.0),
        mean_ms: ms.iter().sum::<f64>() / lat.len() as f64,
        requests_per_s: lat.len() as f64 / wall.as_secs_f64(),
    }
}

fn options(args: &SearchBench) -> RetrieveOptions {
    RetrieveOptions {
        mode: args.mode,
        k: args.k,
        ..RetrieveOptions::default()
    }
}

/// `ragd bench search`.
pub fn run(cfg: &Config, args: &SearchBench) -> anyhow::Result<SearchBenchResult> {
    anyhow::ensure!(
        args.concurrency > 0 && args.requests > 0,
        "concurrency and requests must be positive"
    );
    let queries = Arc::new(read_queries(args)?);
    let r = match &args.server {
        Some(url) => grpc(url, args, queries)?,
        None => local(cfg, args, queries)?,
    };
    Ok(r)
}

fn local(
    cfg: &Config,
    args: &SearchBench,
    queries: Arc<Vec<String>>,
) -> anyhow::Result<SearchBenchResult> {
    let store = Store::open(&cfg.data_dir)?;
    let collection = store.collection(&args.collection)?;
    let retriever = Models::load(cfg, false, &RerankChoice::None)?.retriever();
    let opts = options(args);
    // Measure the steady state: the dense index's search copy is made in the background
    // after the collection opens.
    collection.settle();
    let searcher = collection.reader().searcher();
    let one = |i: usize| -> anyhow::Result<Duration> {
        let start = Instant::now();
        retriever.retrieve(&searcher, &queries[i % queries.len()], &opts)?;
        Ok(start.elapsed())
    };
    for i in 0..args.concurrency {
        one(i)?;
    }
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let lat = std::thread::scope(|s| -> anyhow::Result<Vec<Duration>> {
        let workers: Vec<_> = (0..args.concurrency)
            .map(|_| {
                s.spawn(|| {
                    let mut lat = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= args.requests {
                            return Ok::<_, anyhow::Error>(lat);
                        }
                        lat.push(one(i)?);
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??);
        }
        Ok(all)
    })?;
    Ok(summarize("local", args, lat, start.elapsed()))
}

fn grpc(
    url: &str,
    args: &SearchBench,
    queries: Arc<Vec<String>>,
) -> anyhow::Result<SearchBenchResult> {
    let requests: Arc<Vec<SearchQuery>> = Arc::new(
        queries
            .iter()
            .map(|q| SearchQuery {
                collection: args.collection.clone(),
                query: q.clone(),
                options: options(args),
            })
            .collect(),
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut clients = Vec::new();
        for i in 0..args.concurrency {
            let mut c = crate::grpc::client::connect(url).await?;
            let warm = requests[i % requests.len()].clone();
            c.search(crate::grpc::pb::SearchRequest::from(warm))
                .await
                .context("warm-up search")?;
            clients.push(c);
        }
        let next = Arc::new(AtomicUsize::new(0));
        let total = args.requests;
        let start = Instant::now();
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                let (next, requests) = (next.clone(), requests.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return Ok::<_, anyhow::Error>(lat);
                        }
                        let request = requests[i % requests.len()].clone();
                        let t = Instant::now();
                        c.search(crate::grpc::pb::SearchRequest::from(request))
                            .await?;
                        lat.push(t.elapsed());
                    }
                })
            })
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await??);
        }
        Ok(summarize("grpc", args, lat, start.elapsed()))
    })
}
