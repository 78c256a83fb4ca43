//! Reindex over gRPC: a collection made with one embedder (f32) is re-embedded by a server
//! running another (q8) while searches hit it without pause. No search fails, the new
//! generation answers as a fresh ingest with the new embedder does, a re-ingest of the same
//! documents then finds them unchanged, and a client that goes away stops the reindex without
//! changing anything.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ragd::grpc::pb;
use ragd::model::encoder::Precision;
use ragd::state::AppState;
use tonic::Code;

use crate::common::{config, pump_manual as document};
use crate::grpc::Server;

type Client = pb::rag_client::RagClient<tonic::transport::Channel>;

const DOCS: usize = 120;

const QUERIES: &[&str] = &[
    "Which part number is the seal of pump PX-004?",
    "how often should the bearing be inspected",
    "replace the gasket after how many hours",
    "impeller in the cooling tower",
    "the mine pump inspection interval",
];

/// A server over `data` whose embedder runs at `precision`.
async fn server(data: &Path, precision: Precision) -> Server {
    let mut cfg = config();
    cfg.data_dir = data.to_path_buf();
    cfg.embedder.precision = precision;
    let embedder = Arc::new(ragd::wiring::load_embedder(&cfg).unwrap());
    Server::serve(AppState::new(cfg, embedder, None).unwrap()).await
}

async fn ingest(client: &mut Client, collection: &str) -> pb::IngestDocumentsResponse {
    let message = pb::IngestDocumentsRequest {
        collection: collection.into(),
        chunker: String::new(),
        documents: (0..DOCS).map(document).collect(),
    };
    client
        .ingest_documents(tokio_stream::iter(vec![message]))
        .await
        .unwrap()
        .into_inner()
}

fn search(collection: &str, query: &str) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: collection.into(),
        query: query.into(),
        options: Some(pb::RetrievalOptions {
            k: 5,
            ..Default::default()
        }),
    }
}

/// (document id, span, score) of each hit for every query.
async fn answers(client: &mut Client, collection: &str) -> Vec<Vec<(String, u64, u64, f32)>> {
    let mut out = Vec::new();
    for q in QUERIES {
        let hits = client.search(search(collection, q)).await.unwrap();
        let hits = hits.into_inner().hits.into_iter().map(|h| {
            let c = h.chunk.unwrap();
            (c.document_id, c.span_start, c.span_end, h.score)
        });
        out.push(hits.collect());
    }
    out
}

async fn start_reindex(client: &mut Client, name: &str) -> tonic::Streaming<pb::ReindexEvent> {
    let request = pb::ReindexCollectionRequest { name: name.into() };
    client
        .reindex_collection(request)
        .await
        .unwrap()
        .into_inner()
}

/// Reads a reindex's events to the end; returns its result.
async fn finish(mut events: tonic::Streaming<pb::ReindexEvent>) -> pb::ReindexResult {
    let mut result = None;
    while let Some(event) = events.message().await.unwrap() {
        if let Some(pb::reindex_event::Event::Done(d)) = event.event {
            result = Some(d);
        }
    }
    result.expect("a final message")
}

async fn collection(client: &mut Client, name: &str) -> pb::Collection {
    let list = client
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap();
    let found = list
        .into_inner()
        .collections
        .into_iter()
        .find(|c| c.name == name);
    found.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reindex_to_another_embedder_serves_every_search_and_answers_as_a_fresh_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = server(&data, Precision::F32).await;
    let mut client = made.client().await;
    assert_eq!(
        ingest(&mut client, "pumps").await.counts.unwrap().added as usize,
        DOCS
    );
    let before = collection(&mut client, "pumps").await;
    assert!(
        before.embedder_fingerprint.contains("precision=f32"),
        "{before:?}"
    );
    made.shutdown().await;

    let served = server(&data, Precision::Q8).await;
    let mut client = served.client().await;
    // The other embedder is refused, and the refusal says what to do.
    let refused = client
        .search(search("pumps", QUERIES[0]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("ragd collections reindex pumps"),
        "{refused:?}"
    );
    assert_eq!(
        ingest(&mut client, "fresh").await.counts.unwrap().added as usize,
        DOCS
    );

    // A client that goes away stops the reindex; nothing changes.
    let mut events = start_reindex(&mut client, "pumps").await;
    assert!(events.message().await.unwrap().is_some());
    drop(events);
    let deadline = Instant::now() + Duration::from_secs(120);
    while data.join(".reindex-pumps").exists() {
        assert!(
            Instant::now() < deadline,
            "the abandoned reindex did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(collection(&mut client, "pumps").await, before);

    // Searches without pause while the reindex runs, from its first event to after its end.
    let events = loop {
        let mut events = start_reindex(&mut client, "pumps").await;
        match events.message().await {
            Ok(Some(_)) => break events,
            // The abandoned one is still letting go of the name.
            Err(e) if e.message().contains("being reindexed already") => {
                assert!(Instant::now() < deadline, "{e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("{other:?}"),
        }
    };
    let done = Arc::new(AtomicBool::new(false));
    let load = {
        let (mut client, done) = (served.client().await, done.clone());
        tokio::spawn(async move {
            let (mut served, mut failed, mut after) = (0, Vec::new(), 0);
            while after < 10 {
                let q = QUERIES[served % QUERIES.len()];
                match client.search(search("pumps", q)).await {
                    Ok(r) if !r.get_ref().hits.is_empty() => served += 1,
                    other => failed.push(format!("{other:?}")),
                }
                if done.load(Ordering::SeqCst) {
                    after += 1;
                }
            }
            (served, failed)
        })
    };
    let result = finish(events).await;
    done.store(true, Ordering::SeqCst);
    let (searches, failed) = load.await.unwrap();
    assert!(failed.is_empty(), "failed searches: {failed:?}");
    eprintln!("{searches} searches during and after the reindex; {result:?}");
    assert!(searches > 10);
    assert!(result.searches_served, "{result:?}");
    assert_eq!(result.previous_fingerprint, before.embedder_fingerprint);
    let after = result.collection.unwrap();
    assert!(
        after.embedder_fingerprint.contains("precision=q8"),
        "{after:?}"
    );
    assert_eq!(
        (after.documents, after.chunks),
        (before.documents, before.chunks)
    );
    assert_eq!(after, collection(&mut client, "pumps").await);
    assert_eq!(result.chunks_embedded, before.chunks);
    assert!(!data.join(".reindex-pumps").exists());

    // The new generation answers as a fresh ingest with the new embedder does (the same
    // vectors; scores equal up to the batch's rounding).
    let (reindexed, fresh) = (
        answers(&mut client, "pumps").await,
        answers(&mut client, "fresh").await,
    );
    for (q, (a, b)) in QUERIES.iter().zip(reindexed.iter().zip(&fresh)) {
        let ids = |hits: &[(String, u64, u64, f32)]| -> Vec<(String, u64, u64)> {
            hits.iter().map(|h| (h.0.clone(), h.1, h.2)).collect()
        };
        assert_eq!(ids(a), ids(b), "{q}");
        for (x, y) in a.iter().zip(b) {
            assert!((x.3 - y.3).abs() < 2e-3, "{q}: {} vs {}", x.3, y.3);
        }
    }
    // The copied documents count as made with the new embedder: nothing is embedded again.
    let again = ingest(&mut client, "pumps").await;
    assert_eq!(again.counts.unwrap().unchanged as usize, DOCS, "{again:?}");
    served.shutdown().await;
}

/// A bulk job writing while the same collection is reindexed finishes, and every document it
/// read lands once: batches that met the switch go on in the new generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bulk_job_running_through_a_reindex_finishes_with_every_document() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..DOCS {
        let d = document(i);
        std::fs::write(files.join(format!("{}.txt", d.id)), d.text).unwrap();
    }
    let mut cfg = config();
    cfg.data_dir = dir.path().join("data");
    cfg.server.allowed_roots = vec![files.canonicalize().unwrap()];
    cfg.server.job_batch_documents = 2;
    let served =
        Server::serve(AppState::new(cfg, crate::common::shared_embedder(), None).unwrap()).await;
    let mut client = served.client().await;
    // A first batch, so that the collection exists to reindex.
    let first = pb::IngestDocumentsRequest {
        collection: "bulk".into(),
        chunker: String::new(),
        documents: vec![document(0)],
    };
    client
        .ingest_documents(tokio_stream::iter(vec![first]))
        .await
        .unwrap();
    let job = client
        .start_ingest_job(pb::StartIngestJobRequest {
            collection: "bulk".into(),
            paths: vec![files.canonicalize().unwrap().display().to_string()],
            chunker: String::new(),
            sync: false,
        })
        .await
        .unwrap()
        .into_inner();
    // The reindex starts once the job has written through its handle on the collection.
    let mut watch = client
        .watch_ingest_job(pb::WatchIngestJobRequest { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    while let Some(j) = watch.message().await.unwrap() {
        if j.progress.is_some_and(|p| p.documents_done >= 4) {
            break;
        }
    }
    drop(watch);
    let result = finish(start_reindex(&mut client, "bulk").await).await;
    eprintln!("{result:?}");
    // The switch came while the job was still writing: its later batches met it.
    assert!(result.caught_up > 0, "{result:?}");
    assert!((result.collection.unwrap().documents as usize) < DOCS + 1);
    let mut watch = client
        .watch_ingest_job(pb::WatchIngestJobRequest { id: job.id })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(j) = watch.message().await.unwrap() {
        last = Some(j);
    }
    let last = last.unwrap();
    assert_eq!(
        pb::JobState::try_from(last.state).unwrap(),
        pb::JobState::Succeeded,
        "{last:?}"
    );
    // The files' documents (ids from their paths) and the streamed one.
    assert_eq!(
        collection(&mut client, "bulk").await.documents as usize,
        DOCS + 1
    );
    served.shutdown().await;
}

/// A reindex of what is not there, or of a name that cannot be one, is refused at once with the
/// usual codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reindex_of_a_missing_or_invalid_collection_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let served = Server::start_with(&dir.path().join("data"), |_| {}).await;
    let mut client = served.client().await;
    for (name, code) in [
        ("missing", Code::NotFound),
        ("../etc", Code::InvalidArgument),
        ("", Code::InvalidArgument),
    ] {
        let mut events = start_reindex(&mut client, name).await;
        let refused = events.message().await.unwrap_err();
        assert_eq!(refused.code(), code, "{name:?}: {refused:?}");
    }
    served.shutdown().await;
}
