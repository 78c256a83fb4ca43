//! `--server` variants of `ragd ingest` and `ragd search`: the same commands over gRPC.
//!
//! `ragd ingest --server URL PATH...` loads the files here and streams them to the server in
//! batches (IngestDocuments); with `--job` the paths are read by the server instead
//! (StartIngestJob, then WatchIngestJob drives the progress bar).

use std::path::Path;

use anyhow::Context;
use ingest::{Document, LoadOptions};
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::kb::IngestArgs;
use crate::grpc::convert::{self, JobView};
use crate::grpc::pb::rag_client::RagClient;
use crate::grpc::security::{self, BearerToken};
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

/// A client of the `Rag` service that sends the bearer token, if one is set.
pub type Client = RagClient<InterceptedService<Channel, BearerToken>>;

/// Connects to `url` (`http://host:port`, or `https://` for TLS; a bare `host:port` gets
/// `http://`). The bearer token comes from `RAGD_AUTH_TOKEN` or the file named by
/// `RAGD_AUTH_TOKEN_FILE`; `https` trusts the system roots plus the PEM CA file named by
/// `RAGD_TLS_CA` (for a self-signed server certificate).
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    connect_with(url, |k| std::env::var(k).ok()).await
}

/// [`connect`] with the environment given.
pub async fn connect_with(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Client> {
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid server address `{url}`"))?;
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = env(security::TLS_CA_ENV) {
            let pem =
                fs_err::read(&ca).with_context(|| format!("reading {}", security::TLS_CA_ENV))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).context("TLS settings")?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let token = security::client_token(&env)?;
    let bearer = BearerToken::new(token.as_deref())?;
    Ok(RagClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// `ragd search --server`.
pub fn search(url: &str, query: crate::state::SearchQuery) -> anyhow::Result<Vec<Hit>> {
    runtime()?.block_on(async {
        let mut client = connect(url).await?;
        let response = client.search(tonic::Request::new(query.into())).await?;
        Ok(convert::hits(response.into_inner()))
    })
}

/// `ragd ingest --server` (streamed from here) or `--server --job` (read by the server).
pub fn ingest(url: &str, args: &IngestArgs) -> anyhow::Result<IngestSummary> {
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
    args: &IngestArgs,
    chunker: String,
) -> anyhow::Result<IngestSummary> {
    let docs = load_local(&args.paths);
    let bar = super::progress_bar(docs.len() as u64, "sending");
    let (collection, mut first) = (args.collection.clone(), true);
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
    args: &IngestArgs,
    chunker: String,
) -> anyhow::Result<IngestSummary> {
    let paths = args
        .paths
        .iter()
        .map(|p| std::path::absolute(p).map(|p| p.display().to_string()))
        .collect::<std::io::Result<Vec<_>>>()?;
    let request = convert::job_request(args.collection.clone(), paths, chunker);
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
