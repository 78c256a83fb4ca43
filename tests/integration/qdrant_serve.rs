//! `backend = "qdrant"`: ragd servers in front of one real three-node Qdrant cluster (see
//! `qdrant.rs` for the cluster; without a qdrant binary these tests say SKIPPED and pass).
//! What one server writes, the others search, answer from and delete, through the gRPC API and
//! through `ragd serve` processes; what only the embedded store does is refused by name; a
//! cluster that does not answer is UNAVAILABLE per call and a clear error at start.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use index::CollectionConfig;
use ragd::config::Backend;
use ragd::grpc::pb;
use ragd::qdrant::QdrantStore;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::common::pump_manual;
use crate::grpc::{
    ask, code, corpus, ingest_kb, job_request, read_answer, search, until_started, Server,
};
use crate::qdrant::Cluster;

fn kb() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb")
}

/// A job's updates read to the end: the last one.
async fn last_update(mut updates: tonic::Streaming<pb::IngestJob>) -> pb::IngestJob {
    let mut last = None;
    while let Some(update) = updates.next().await {
        last = Some(update.unwrap());
    }
    last.expect("at least one update")
}

/// Searches through `client`, which must answer.
async fn search_on(
    client: &mut pb::rag_client::RagClient<tonic::transport::Channel>,
    request: pb::SearchRequest,
) -> pb::SearchResponse {
    client.search(request).await.unwrap().into_inner()
}

/// Polls job `id` through `client` until it is in `state` (a minute at most).
async fn until_state(
    client: &mut pb::rag_client::RagClient<tonic::transport::Channel>,
    id: &str,
    state: pb::JobState,
) -> pb::IngestJob {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = client
            .get_ingest_job(pb::GetIngestJobRequest { id: id.into() })
            .await
            .map(tonic::Response::into_inner);
        match job {
            Ok(job) if pb::JobState::try_from(job.state).unwrap() == state => return job,
            other => assert!(
                Instant::now() < deadline,
                "job {id} never {state:?}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn top_document(found: &pb::SearchResponse) -> String {
    found.hits[0].chunk.as_ref().unwrap().document_id.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_cluster_serve_the_same_collections() {
    let test = "two_servers_on_one_cluster_serve_the_same_collections";
    let Some(cluster) = Cluster::start(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    let settings = cluster.settings();
    let on_cluster = |cfg: &mut ragd::Config| {
        cfg.index.backend = Backend::Qdrant;
        cfg.qdrant = settings.clone();
        cfg.server.allowed_roots = vec![kb(), root.clone()];
    };
    let a = Server::start_answering_with(&dir.path().join("a"), None, on_cluster).await;
    let b = Server::start_answering_with(&dir.path().join("b"), None, on_cluster).await;
    let (mut ca, mut cb) = (a.client().await, b.client().await);

    // What A ingests, B lists, finds, reads and answers from, citing it.
    let counts = ingest_kb(&mut ca, "kb").await.counts.unwrap();
    assert_eq!((counts.added, counts.failed), (4, 1), "{counts:?}");
    let listed = cb
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .collections;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].name.as_str(), listed[0].documents), ("kb", 4));
    assert_eq!(listed[0].dimension, 384);
    let found = search_on(&mut cb, search("kb", "which seal fits the XJ-9000?", 3)).await;
    assert_eq!(top_document(&found), "pump.md", "{found:?}");
    // Keyword-exact and CJK queries reach the BM25 leg on the cluster too.
    let nf4 = search_on(&mut cb, search("kb", "NF4", 1)).await;
    assert_eq!(top_document(&nf4), "nf4.md", "{nf4:?}");
    let zh = search_on(&mut cb, search("kb", "中文句子", 1)).await;
    assert_eq!(top_document(&zh), "zh.md", "{zh:?}");
    let doc = cb
        .get_document(pb::GetDocumentRequest {
            collection: "kb".into(),
            id: "pump.md".into(),
            include_chunks: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        doc.chunks.iter().any(|c| c.text.contains("SS-441")),
        "{doc:?}"
    );

    let q = ask(
        "kb",
        "Which shaft seal does the XJ-9000 pump built in 2021 use?",
        48,
    );
    let (_, fin) = read_answer(cb.ask(q).await.unwrap().into_inner()).await;
    assert!(!fin.not_found, "{fin:?}");
    assert!(
        fin.citations.iter().any(|c| c.document_id == "pump.md"),
        "{fin:?}"
    );
    // The relevance gate weighs the question's terms by the cluster's own IDF.
    let q = ask("kb", "Who won the 2018 FIFA World Cup?", 48);
    let (_, fin) = read_answer(cb.ask(q).await.unwrap().into_inner()).await;
    assert!(fin.not_found, "{fin:?}");

    // A few hundred documents through IngestDocuments on A, on three shards with two replicas
    // each, searched on B in every mode and with a metadata filter; then one replaced and one
    // deleted through B.
    let manuals: Vec<pb::DocumentInput> = (0..240).map(pump_manual).collect();
    let messages: Vec<pb::IngestDocumentsRequest> = manuals
        .chunks(60)
        .enumerate()
        .map(|(i, documents)| pb::IngestDocumentsRequest {
            collection: if i == 0 {
                "pumps".into()
            } else {
                String::new()
            },
            chunker: String::new(),
            documents: documents.to_vec(),
        })
        .collect();
    let counts = ca
        .ingest_documents(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner()
        .counts
        .unwrap();
    assert_eq!((counts.added, counts.failed), (240, 0), "{counts:?}");
    let part = "impeller-259-11"; // pump-037's, a keyword dense search has no reason to know
    let exact = |mode: pb::SearchMode, query: &str, filter: &[(&str, &str)]| {
        let mut request = search("pumps", query, 5);
        let options = request.options.as_mut().unwrap();
        options.mode = mode as i32;
        options.filter = filter
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        request
    };
    let bm25 = search_on(&mut cb, exact(pb::SearchMode::Bm25, part, &[])).await;
    assert_eq!(top_document(&bm25), "pump-037", "{bm25:?}");
    let hybrid = search_on(
        &mut cb,
        exact(
            pb::SearchMode::Hybrid,
            &format!("which pump uses {part}?"),
            &[],
        ),
    )
    .await;
    assert_eq!(top_document(&hybrid), "pump-037", "{hybrid:?}");
    let stages = hybrid.hits[0].scores.as_ref().unwrap();
    assert!(
        stages.dense.is_some() && stages.bm25.is_some(),
        "{stages:?}"
    );
    let dense = search_on(
        &mut cb,
        exact(
            pb::SearchMode::Dense,
            "Which pump works in the brewery?",
            &[("place", "brewery")],
        ),
    )
    .await;
    assert_eq!(dense.hits.len(), 5, "{dense:?}");
    for hit in &dense.hits {
        let chunk = hit.chunk.as_ref().unwrap();
        assert_eq!(chunk.metadata["place"], "brewery", "{hit:?}");
        assert!(hit.scores.as_ref().unwrap().bm25.is_none(), "{hit:?}");
    }
    // pump-037 works in the boiler room: filtered to the dock, its part number finds nothing of it.
    let elsewhere = search_on(
        &mut cb,
        exact(pb::SearchMode::Bm25, part, &[("place", "dock")]),
    )
    .await;
    assert!(
        elsewhere
            .hits
            .iter()
            .all(|h| h.chunk.as_ref().unwrap().document_id != "pump-037"),
        "{elsewhere:?}"
    );
    let mut changed = pump_manual(5);
    changed.text = "Pump PX-005 was replaced by a diaphragm pump, part DP-5005.".into();
    let counts = cb
        .ingest_documents(tokio_stream::iter(vec![pb::IngestDocumentsRequest {
            collection: "pumps".into(),
            chunker: String::new(),
            documents: vec![changed, pump_manual(6)],
        }]))
        .await
        .unwrap()
        .into_inner()
        .counts
        .unwrap();
    assert_eq!((counts.updated, counts.unchanged), (1, 1), "{counts:?}");
    let replaced = search_on(&mut ca, exact(pb::SearchMode::Bm25, "DP-5005", &[])).await;
    assert_eq!(top_document(&replaced), "pump-005", "{replaced:?}");
    cb.delete_documents(pb::DeleteDocumentsRequest {
        collection: "pumps".into(),
        ids: vec!["pump-037".into()],
    })
    .await
    .unwrap();
    for mode in [pb::SearchMode::Bm25, pb::SearchMode::Dense] {
        let after = search_on(&mut ca, exact(mode, &format!("Pump PX-037 {part}"), &[])).await;
        assert!(
            after
                .hits
                .iter()
                .all(|h| h.chunk.as_ref().unwrap().document_id != "pump-037"),
            "{mode:?}: {after:?}"
        );
    }

    // Unchanged documents are found stored by the other server and written again by neither.
    let counts = ingest_kb(&mut cb, "kb").await.counts.unwrap();
    assert_eq!((counts.added, counts.unchanged, counts.chunks), (0, 4, 0));

    // A bulk job on A (its record in A's data folder), searched on B.
    let job = ca
        .start_ingest_job(pb::StartIngestJobRequest {
            collection: "bulk".into(),
            paths: vec![kb().display().to_string()],
            chunker: String::new(),
            sync: false,
        })
        .await
        .unwrap()
        .into_inner();
    let updates = ca
        .watch_ingest_job(pb::WatchIngestJobRequest { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    let last = last_update(updates).await;
    assert_eq!(
        pb::JobState::try_from(last.state).unwrap(),
        pb::JobState::Succeeded,
        "{last:?}"
    );
    assert_eq!(last.progress.unwrap().documents_done, 6, "{last:?}");
    let found = search_on(
        &mut cb,
        search(
            "bulk",
            "Which shaft seal fits an XJ-9000 pump built in 2021?",
            1,
        ),
    )
    .await;
    assert_eq!(top_document(&found), "parts-catalog.md", "{found:?}");
    // Any server reports any job: B reads A's record as copied to the cluster.
    let seen = until_state(&mut cb, &job.id, pb::JobState::Succeeded).await;
    assert_eq!(seen.progress.unwrap().documents_done, 6, "{seen:?}");
    let jobs = cb
        .list_ingest_jobs(pb::ListIngestJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(jobs.iter().any(|j| j.id == job.id), "{jobs:?}");
    // And cancels it: B watches a long job A runs, asks for the cancel, and sees it end.
    let long = corpus(&root, 3000);
    let job = ca
        .start_ingest_job(pb::StartIngestJobRequest {
            collection: "notes".into(),
            ..job_request(&long)
        })
        .await
        .unwrap()
        .into_inner();
    drop(until_started(&mut ca, &job.id).await);
    until_state(&mut cb, &job.id, pb::JobState::Running).await;
    let watched = cb
        .watch_ingest_job(pb::WatchIngestJobRequest { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    cb.cancel_ingest_job(pb::CancelIngestJobRequest { id: job.id.clone() })
        .await
        .unwrap();
    let last = last_update(watched).await;
    assert_eq!(
        pb::JobState::try_from(last.state).unwrap(),
        pb::JobState::Cancelled,
        "{last:?}"
    );
    let on_a = ca
        .get_ingest_job(pb::GetIngestJobRequest { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(on_a.state, last.state);
    assert!(on_a.progress.unwrap().documents_done < 3000, "{on_a:?}");
    // Folder sync on the cluster: a file removed from the folder takes its document with it,
    // for every server.
    let folder = root.join("manuals");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, text) in [
        ("valve.txt", "The VX-12 valve opens at 4 bar."),
        ("motor.txt", "The MT-7 motor draws 9 amperes."),
        ("filter.txt", "The FL-3 filter is changed every 500 hours."),
    ] {
        std::fs::write(folder.join(name), text).unwrap();
    }
    let sync = |sync| pb::StartIngestJobRequest {
        collection: "manuals".into(),
        paths: vec![folder.display().to_string()],
        chunker: String::new(),
        sync,
    };
    let first = ca.start_ingest_job(sync(true)).await.unwrap().into_inner();
    until_state(&mut ca, &first.id, pb::JobState::Succeeded).await;
    std::fs::remove_file(folder.join("motor.txt")).unwrap();
    let second = ca.start_ingest_job(sync(true)).await.unwrap().into_inner();
    let done = until_state(&mut ca, &second.id, pb::JobState::Succeeded).await;
    let counts = done.progress.unwrap().counts.unwrap();
    assert_eq!((counts.unchanged, counts.deleted), (2, 1), "{counts:?}");
    let manuals = cb
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .collections
        .into_iter()
        .find(|c| c.name == "manuals")
        .unwrap();
    assert_eq!(manuals.documents, 2, "{manuals:?}");
    let motor = cb.search(search("manuals", "MT-7 motor amperes", 3)).await;
    let hits = motor.unwrap().into_inner().hits;
    assert!(
        hits.iter()
            .all(|h| !h.chunk.as_ref().unwrap().text.contains("MT-7")),
        "{hits:?}"
    );

    // Deleted through B, gone for A at once.
    let deleted = cb
        .delete_documents(pb::DeleteDocumentsRequest {
            collection: "kb".into(),
            ids: vec!["kv.md".into(), "no.md".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 1, "{deleted:?}");
    let gone = ca
        .get_document(pb::GetDocumentRequest {
            collection: "kb".into(),
            id: "kv.md".into(),
            include_chunks: false,
        })
        .await;
    assert_eq!(code(gone), Code::NotFound);

    // What only the embedded store does is refused, naming the backend.
    let snapshot = ca
        .create_snapshot(pb::CreateSnapshotRequest {
            collection: "kb".into(),
        })
        .await
        .expect_err("no snapshots on the cluster");
    assert_eq!(snapshot.code(), Code::Unimplemented);
    assert!(snapshot.message().contains("qdrant"), "{snapshot:?}");
    let reindex = match ca
        .reindex_collection(pb::ReindexCollectionRequest { name: "kb".into() })
        .await
    {
        Err(status) => status,
        Ok(events) => events.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(reindex.code(), Code::Unimplemented, "{reindex:?}");

    // A collection made with another embedder is FAILED_PRECONDITION, on every server.
    let store = QdrantStore::connect(&settings).await.unwrap();
    store
        .open_or_create(&CollectionConfig::new("other", "another-model", 8), None)
        .await
        .unwrap();
    let other = cb.search(search("other", "seal", 1)).await;
    assert_eq!(code(other), Code::FailedPrecondition);
    let created = ca
        .create_collection(pb::CreateCollectionRequest {
            name: "other".into(),
        })
        .await;
    assert_eq!(code(created), Code::AlreadyExists);

    // Deleted through A, gone for B.
    ca.delete_collection(pb::DeleteCollectionRequest {
        name: "bulk".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        code(cb.search(search("bulk", "seal", 1)).await),
        Code::NotFound
    );

    // The cluster gone: each call is UNAVAILABLE (retry later), and the servers stay up.
    cluster.run(&["stop"]);
    let down = ca
        .search(search("kb", "seal", 1))
        .await
        .expect_err("no node answers");
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert_eq!(
        code(cb.list_collections(pb::ListCollectionsRequest {}).await),
        Code::Unavailable
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bulk_job_waits_out_two_killed_nodes_and_loses_nothing() {
    let test = "a_bulk_job_waits_out_two_killed_nodes_and_loses_nothing";
    let Some(cluster) = Cluster::start(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    let path = corpus(&root, 400);
    let settings = cluster.settings();
    let server = Server::start_with(&dir.path().join("data"), |cfg| {
        cfg.index.backend = Backend::Qdrant;
        cfg.qdrant = settings.clone();
        cfg.server.allowed_roots = vec![root.clone()];
        cfg.server.job_batch_documents = 8;
    })
    .await;
    let mut c = server.client().await;
    let job = c
        .start_ingest_job(job_request(&path))
        .await
        .unwrap()
        .into_inner();
    let updates = until_started(&mut c, &job.id).await;
    // SIGKILL two of the three nodes while the job writes, the one the client talks to first
    // (and the cluster's bootstrap peer) among them: shards lose every replica, so batches
    // fail UNAVAILABLE and the job waits them out, writing each again, instead of failing.
    cluster.run(&["kill", "1"]);
    cluster.run(&["kill", "2"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = c
        .get_ingest_job(pb::GetIngestJobRequest { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pb::JobState::try_from(waiting.state).unwrap(),
        pb::JobState::Running,
        "{waiting:?}"
    );
    cluster.run(&["restart", "1"]);
    cluster.run(&["restart", "2"]);
    let last = last_update(updates).await;
    assert_eq!(
        pb::JobState::try_from(last.state).unwrap(),
        pb::JobState::Succeeded,
        "{last:?}"
    );
    let counts = last.progress.unwrap().counts.unwrap();
    assert_eq!(counts.added + counts.unchanged, 400, "{counts:?}");
    assert_eq!(counts.failed, 0, "{counts:?}");
    let listed = c
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .collections;
    assert_eq!(
        (listed[0].name.as_str(), listed[0].documents),
        ("bulk", 400)
    );
    let found = search_on(&mut c, search("bulk", "Note number 397", 1)).await;
    assert_eq!(top_document(&found), "d397", "{found:?}");
    server.shutdown().await;
}

/// `ragd serve --data-dir DIR` on the cluster at `urls` (comma-separated): told by the
/// environment, or (`flags`) by the command line.
fn ragd_serve(data: &Path, urls: &str, flags: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ragd"));
    c.arg("--data-dir").arg(data).arg("serve");
    if flags {
        c.args(["--backend", "qdrant"]);
        for url in urls.split(',') {
            c.args(["--qdrant-url", url]);
        }
    } else {
        c.env("RAGD_BACKEND", "qdrant")
            .env("RAGD_QDRANT_URLS", urls);
    }
    c
}

fn wait_for(addr: &str, server: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            server.try_wait().unwrap().is_none(),
            "ragd serve on {addr} exited"
        );
        assert!(
            Instant::now() < deadline,
            "ragd serve on {addr} did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ragd_serve_processes_share_a_cluster_and_one_without_it_does_not_start() {
    let test = "ragd_serve_processes_share_a_cluster_and_one_without_it_does_not_start";
    let Some(cluster) = Cluster::start(test) else {
        return;
    };
    let urls = cluster.settings().urls.join(",");
    let dir = tempfile::tempdir().unwrap();
    let addrs: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", crate::common::free_port()))
        .collect();
    let mut servers: Vec<_> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            ragd_serve(&dir.path().join(format!("server-{i}")), &urls, i == 1)
                .args(["--http-addr", "off", "--addr", addr])
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for (addr, server) in addrs.iter().zip(&mut servers) {
        wait_for(addr, server);
    }
    let client = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ragd"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ragd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let kb = kb();
    let summary = client(&[
        "ingest",
        "--server",
        &addrs[0],
        "--collection",
        "kb",
        "--json",
        kb.to_str().unwrap(),
    ]);
    assert_eq!(summary["added"], 6, "{summary}");
    let found = client(&[
        "search",
        "--server",
        &addrs[1],
        "--collection",
        "kb",
        "--json",
        "-k",
        "1",
        "Which shaft seal fits an XJ-9000 pump built in 2021?",
    ]);
    assert_eq!(found["hits"][0]["doc_id"], "parts-catalog.md", "{found}");
    for server in &mut servers {
        // SAFETY: sending SIGTERM to a child we spawned and have not yet waited for.
        unsafe {
            libc::kill(server.id() as i32, libc::SIGTERM);
        }
        assert!(server.wait().unwrap().success());
    }

    // No node answers: the start fails, naming each node (before any model loads).
    cluster.run(&["stop"]);
    let out = ragd_serve(&dir.path().join("server-0"), &urls, false)
        .args(["--http-addr", "off", "--addr", &addrs[0]])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("qdrant"), "{err}");
    for url in urls.split(',') {
        assert!(err.contains(url), "{url} not named: {err}");
    }
}
