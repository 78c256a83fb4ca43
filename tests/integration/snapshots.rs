//! Snapshots over gRPC: one taken while a bulk ingest streams in, restored by another server on
//! a fresh data folder, answers a fixed query set exactly as the source did at the snapshot's
//! point; damaged archives and other embedders are refused, and nothing is created then.

use std::path::Path;

use ragd::grpc::pb;
use tonic::Code;

use crate::common::pump_manual as document;
use crate::grpc::Server;

const DOCS: usize = 120;
const PER_MESSAGE: usize = 10;

const QUERIES: &[&str] = &[
    "Which part number is the seal of pump PX-004?",
    "how often should the bearing be inspected",
    "pumps at the brewery",
    "replace the gasket after how many hours",
    "PX-095 valve",
    "impeller in the cooling tower",
    "shaft part number 42",
    "the mine pump inspection interval",
];

/// (document id, span, rounded score) of each hit for every query: what a user sees.
async fn answers(
    client: &mut pb::rag_client::RagClient<tonic::transport::Channel>,
    collection: &str,
) -> Vec<Vec<(String, u64, u64, i64)>> {
    let mut out = Vec::new();
    for q in QUERIES {
        let request = pb::SearchRequest {
            collection: collection.into(),
            query: (*q).into(),
            options: Some(pb::RetrievalOptions {
                k: 5,
                ..Default::default()
            }),
        };
        let hits = client.search(request).await.unwrap().into_inner().hits;
        out.push(
            hits.into_iter()
                .map(|h| {
                    let c = h.chunk.unwrap();
                    (
                        c.document_id,
                        c.span_start,
                        c.span_end,
                        (h.score * 1e4).round() as i64,
                    )
                })
                .collect(),
        );
    }
    out
}

async fn documents(
    client: &mut pb::rag_client::RagClient<tonic::transport::Channel>,
    name: &str,
) -> u64 {
    let list = client
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .collections;
    list.iter()
        .find(|c| c.name == name)
        .map_or(0, |c| c.documents)
}

fn message(collection: &str, range: std::ops::Range<usize>) -> pb::IngestDocumentsRequest {
    pb::IngestDocumentsRequest {
        collection: collection.into(),
        chunker: String::new(),
        documents: range.map(document).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_taken_during_an_ingest_restores_elsewhere_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snapshots");
    let with_snapshots = |cfg: &mut ragd::Config| cfg.snapshot_dir = Some(snapshots.clone());
    let source = Server::start_with(&dir.path().join("a"), with_snapshots).await;
    let mut a = source.client().await;

    // A bulk ingest streams in; the snapshot is taken between its batches while the next ones
    // keep coming.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let ingest = {
        let mut c = a.clone();
        tokio::spawn(async move {
            c.ingest_documents(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        })
    };
    for start in (0..DOCS / 2).step_by(PER_MESSAGE) {
        tx.send(message("kb", start..start + PER_MESSAGE))
            .await
            .unwrap();
    }
    while documents(&mut a, "kb").await < (DOCS / 2) as u64 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let rest = {
        let tx = tx.clone();
        tokio::spawn(async move {
            for start in (DOCS / 2..DOCS).step_by(PER_MESSAGE) {
                tx.send(message("kb", start..start + PER_MESSAGE))
                    .await
                    .unwrap();
            }
        })
    };
    let snap = a
        .create_snapshot(pb::CreateSnapshotRequest {
            collection: "kb".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(snap.export_ms > 0.0, "{snap:?}");
    // As listed later: the export time is the creator's alone.
    let snap = pb::Snapshot {
        export_ms: 0.0,
        ..snap
    };
    rest.await.unwrap();
    drop(tx);
    let summary = ingest.await.unwrap().unwrap().into_inner();
    assert_eq!(summary.counts.unwrap().added, DOCS as u64);
    let held = snap.documents as usize;
    assert!(
        (DOCS / 2..=DOCS).contains(&held) && held.is_multiple_of(PER_MESSAGE),
        "{snap:?}"
    );
    assert_eq!(documents(&mut a, "kb").await, DOCS as u64);
    let listed = a
        .list_snapshots(pb::ListSnapshotsRequest {
            collection: "kb".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(listed, vec![snap.clone()]);

    // The source as it was at the snapshot: the same documents, ingested the same way.
    let reference: Vec<_> = (0..held)
        .step_by(PER_MESSAGE)
        .map(|s| message("reference", s..s + PER_MESSAGE))
        .collect();
    a.ingest_documents(tokio_stream::iter(reference))
        .await
        .unwrap();
    let expected = answers(&mut a, "reference").await;
    source.shutdown().await;

    // Another server, a fresh data folder, the same snapshot folder.
    let target = Server::start_with(&dir.path().join("b"), with_snapshots).await;
    let mut b = target.client().await;
    let restored = b
        .restore_snapshot(pb::RestoreSnapshotRequest {
            snapshot: snap.name.clone(),
            collection: "kb".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(restored.snapshot.unwrap(), snap);
    assert_eq!(restored.collection.unwrap().documents, held as u64);
    assert_eq!(answers(&mut b, "kb").await, expected);

    // The name is taken now; a path instead of a name is refused.
    let taken = b
        .restore_snapshot(pb::RestoreSnapshotRequest {
            snapshot: snap.name.clone(),
            collection: "kb".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    let path = b
        .restore_snapshot(pb::RestoreSnapshotRequest {
            snapshot: "../a/kb/manifest.json".into(),
            collection: "other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(path.code(), Code::InvalidArgument, "{path:?}");

    // A damaged copy of the archive is refused and creates nothing.
    let archive = std::fs::read(snapshots.join(&snap.name)).unwrap();
    let damaged = snap.name.replace("kb-", "damaged-");
    std::fs::write(snapshots.join(&damaged), &archive[..archive.len() - 100]).unwrap();
    let refused = b
        .restore_snapshot(pb::RestoreSnapshotRequest {
            snapshot: damaged,
            collection: "other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(documents(&mut b, "other").await, 0);
    target.shutdown().await;

    // Another embedder is refused, saying which.
    let store = index::Store::open(&dir.path().join("c")).unwrap();
    let other = ragd::snapshots::EmbedderId {
        model: "another-embedder".into(),
        dimension: 768,
        fingerprint: "model=another-embedder dim=768".into(),
    };
    let e = ragd::snapshots::restore(&store, &snapshots.join(&snap.name), "kb", &other)
        .err()
        .expect("refused");
    let message = e.to_string();
    assert!(
        message.contains("another-embedder") && message.contains(&snap.embedding_model),
        "{message}"
    );
    assert!(store.list().unwrap().is_empty());
    assert!(Path::new(&dir.path().join("c"))
        .read_dir()
        .unwrap()
        .all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".restore")
        }));
}
