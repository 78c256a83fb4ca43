//! The gRPC server in-process on an ephemeral loopback port, with the real MiniLM embedder and
//! tiny corpora: every RPC, both streaming directions, health, reflection, error codes, deadlines,
//! a cancelled job and a job resumed after a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ragd::grpc::pb::{self, rag_client::RagClient};
use ragd::state::AppState;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

use ragd::serving::{GenerationPool, GenerationPoolConfig};

use crate::common::{config, shared_embedder, shared_generator};

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(data: &Path, roots: Vec<PathBuf>, batch: usize) -> Self {
        Self::start_with(data, |cfg| {
            cfg.server.allowed_roots = roots;
            cfg.server.job_batch_documents = batch;
        })
        .await
    }

    pub(crate) async fn start_with(data: &Path, edit: impl FnOnce(&mut ragd::Config)) -> Self {
        let mut cfg = config();
        cfg.data_dir = data.to_path_buf();
        edit(&mut cfg);
        let state = AppState::new(cfg, shared_embedder(), None).unwrap();
        Self::serve(state).await
    }

    /// A server that can answer: SmolLM2 behind a pool of one thread and a queue of one.
    async fn start_answering(data: &Path) -> Self {
        Self::start_answering_with(data, None, |_| {}).await
    }

    /// [`Self::start_answering`] with `reranker` and the config edited.
    pub(crate) async fn start_answering_with(
        data: &Path,
        reranker: Option<std::sync::Arc<dyn ragd::model::Reranker>>,
        edit: impl FnOnce(&mut ragd::Config),
    ) -> Self {
        let mut cfg = config();
        cfg.data_dir = data.to_path_buf();
        edit(&mut cfg);
        let pool = GenerationPool::new(
            shared_generator(),
            GenerationPoolConfig {
                concurrency: 1,
                queue: 1,
            },
        )
        .unwrap();
        let state = AppState::with_generator(cfg, shared_embedder(), reranker, Some(pool)).unwrap();
        Self::serve(state).await
    }

    pub(crate) async fn serve(state: AppState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(ragd::grpc::serve_with(
            state,
            listener,
            ragd::grpc::Security::none(),
            shutdown,
        ));
        Self { addr, stop, task }
    }

    pub(crate) async fn client(&self) -> RagClient<Channel> {
        RagClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub(crate) async fn shutdown(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

fn doc(id: &str, title: &str, text: &str, lang: &str) -> pb::DocumentInput {
    pb::DocumentInput {
        id: id.into(),
        title: title.into(),
        text: text.into(),
        metadata: [("lang".to_string(), lang.to_string())].into(),
    }
}

pub(crate) fn search(collection: &str, query: &str, k: u32) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: collection.into(),
        query: query.into(),
        options: Some(pb::RetrievalOptions {
            k,
            ..Default::default()
        }),
    }
}

pub(crate) fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    r.expect_err("the call should fail").code()
}

pub(crate) async fn ingest_kb(
    client: &mut RagClient<Channel>,
    collection: &str,
) -> pb::IngestDocumentsResponse {
    let first = pb::IngestDocumentsRequest {
        collection: collection.into(),
        chunker: r#"{"kind":"recursive","size":64}"#.into(),
        documents: vec![
            doc(
                "pump.md",
                "XJ-9000 pump",
                "The XJ-9000 pump built in 2021 uses shaft seal SS-441.",
                "en",
            ),
            doc(
                "kv.md",
                "KV cache",
                "The KV cache stores attention keys and values so decoding reuses them.",
                "en",
            ),
            doc("empty.md", "Empty", "   ", "en"),
        ],
    };
    let second = pb::IngestDocumentsRequest {
        collection: String::new(),
        chunker: String::new(),
        documents: vec![
            doc(
                "nf4.md",
                "NF4",
                "NF4 is a 4-bit NormalFloat data type for quantizing weights.",
                "en",
            ),
            doc("zh.md", "中文", "中文句子以句号结尾。", "zh"),
        ],
    };
    let stream = tokio_stream::iter(vec![first, second]);
    client.ingest_documents(stream).await.unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collections_documents_search_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), vec![], 64).await;
    let mut c = server.client().await;

    let created = c
        .create_collection(pb::CreateCollectionRequest { name: "kb".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((created.name.as_str(), created.dimension), ("kb", 384));
    let again = c
        .create_collection(pb::CreateCollectionRequest { name: "kb".into() })
        .await;
    assert_eq!(code(again), Code::AlreadyExists);
    for bad in ["../x", "a/b", "", &"x".repeat(129)] {
        let r = c
            .create_collection(pb::CreateCollectionRequest { name: bad.into() })
            .await;
        assert_eq!(code(r), Code::InvalidArgument, "{bad:?}");
    }

    // Client streaming: two messages; the blank document fails alone.
    let out = ingest_kb(&mut c, "kb").await;
    let counts = out.counts.unwrap();
    assert_eq!((counts.added, counts.failed), (4, 1), "{out:?}");
    assert_eq!(out.errors[0].document_id, "empty.md");
    // Idempotent: the same documents again change nothing.
    let counts = ingest_kb(&mut c, "kb").await.counts.unwrap();
    assert_eq!((counts.added, counts.unchanged, counts.chunks), (0, 4, 0));

    let listed = c
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.collections.len(), 1);
    assert_eq!(
        (
            listed.collections[0].documents,
            listed.collections[0].chunks
        ),
        (4, 4)
    );

    // Hybrid search, with per-stage scores, spans and metadata filter.
    let hits = c
        .search(search("kb", "which seal fits the XJ-9000?", 3))
        .await
        .unwrap()
        .into_inner()
        .hits;
    let top = hits[0].chunk.as_ref().unwrap();
    assert_eq!(top.document_id, "pump.md");
    assert_eq!((top.span_start, top.title.as_str()), (0, "XJ-9000 pump"));
    let scores = hits[0].scores.unwrap();
    assert!(scores.dense.is_some() && scores.bm25.is_some() && scores.fused.is_some());
    let mut zh = search("kb", "句子", 5);
    zh.options.as_mut().unwrap().filter = [("lang".to_string(), "zh".to_string())].into();
    let zh = c.search(zh).await.unwrap().into_inner().hits;
    assert!(
        zh.iter()
            .all(|h| h.chunk.as_ref().unwrap().document_id == "zh.md")
            && !zh.is_empty()
    );

    // A query of stop words only: BM25 mode finds nothing and says why.
    let mut stop_words = search("kb", "to be or not to be", 3);
    stop_words.options.as_mut().unwrap().mode = pb::SearchMode::Bm25 as i32;
    let r = c.search(stop_words).await.unwrap().into_inner();
    assert!(r.hits.is_empty());
    assert!(
        r.notes.len() == 1 && r.notes[0].contains("no term BM25 can match"),
        "{:?}",
        r.notes
    );

    // Bad requests.
    assert_eq!(
        code(c.search(search("kb", "  ", 3)).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(c.search(search("kb", "seal", 5000)).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(c.search(search("nope", "seal", 3)).await),
        Code::NotFound
    );
    assert_eq!(
        code(c.search(search("../etc", "seal", 3)).await),
        Code::InvalidArgument
    );
    let mut short = tonic::Request::new(search("kb", "seal", 3));
    // At most the 10 ms margin: the handler gives up as soon as it starts, well before tonic's
    // own timer (CANCELLED) would fire.
    short.set_timeout(Duration::from_millis(10));
    assert_eq!(code(c.search(short).await), Code::DeadlineExceeded);

    // Documents.
    let got = c
        .get_document(pb::GetDocumentRequest {
            collection: "kb".into(),
            id: "kv.md".into(),
            include_chunks: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.title.as_str(), got.chunk_ids.len()), ("KV cache", 1));
    assert!(got.chunks[0].text.contains("attention keys"));
    assert_eq!(got.metadata["lang"], "en");
    let missing = c
        .get_document(pb::GetDocumentRequest {
            collection: "kb".into(),
            id: "no.md".into(),
            include_chunks: false,
        })
        .await;
    assert_eq!(code(missing), Code::NotFound);
    let deleted = c
        .delete_documents(pb::DeleteDocumentsRequest {
            collection: "kb".into(),
            ids: vec!["kv.md".into(), "no.md".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (deleted.deleted, deleted.not_found),
        (1, vec!["no.md".to_string()])
    );
    let hits = c
        .search(search("kb", "KV cache attention keys", 10))
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert!(hits
        .iter()
        .all(|h| h.chunk.as_ref().unwrap().document_id != "kv.md"));

    // Ask is defined but arrives with the generator; bad requests are still caller errors.
    let ask = |q: &str| pb::AskRequest {
        collection: "kb".into(),
        question: q.into(),
        retrieval: None,
        generation: None,
    };
    let r = c.ask(ask("What is NF4?")).await;
    assert_eq!(code(r), Code::Unimplemented);
    assert_eq!(code(c.ask(ask(" ")).await), Code::InvalidArgument);

    // Jobs need allowed roots; unknown jobs are NOT_FOUND.
    let job = pb::StartIngestJobRequest {
        collection: "kb".into(),
        paths: vec!["/etc".into()],
        chunker: String::new(),
        sync: false,
    };
    assert_eq!(code(c.start_ingest_job(job).await), Code::PermissionDenied);
    let r = c
        .get_ingest_job(pb::GetIngestJobRequest {
            id: "job-0000009999".into(),
        })
        .await;
    assert_eq!(code(r), Code::NotFound);

    c.delete_collection(pb::DeleteCollectionRequest { name: "kb".into() })
        .await
        .unwrap();
    assert_eq!(
        code(c.search(search("kb", "seal", 3)).await),
        Code::NotFound
    );
    let r = c
        .delete_collection(pb::DeleteCollectionRequest { name: "kb".into() })
        .await;
    assert_eq!(code(r), Code::NotFound);
    drop(c);
    server.shutdown().await;
}

/// True when the collection's files can be opened beside the server, i.e. the server has
/// released them (sled locks its database while a collection is open).
fn released(data: &Path, name: &str) -> bool {
    index::Store::open(data).unwrap().collection(name).is_ok()
}

/// A collection left idle is closed (its files released); listing does not reopen it, and the
/// next request does, with everything acknowledged before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_collections_are_closed_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that a loaded machine (the whole suite runs at once) does not close it between
    // the ingest and the first look.
    let server = Server::start_with(dir.path(), |cfg| {
        cfg.server.close_idle_collections_after_seconds = 10;
    })
    .await;
    let mut c = server.client().await;
    ingest_kb(&mut c, "kb").await;
    assert!(!released(dir.path(), "kb"), "open while in use");

    let start = std::time::Instant::now();
    while !released(dir.path(), "kb") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the idle collection was never closed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = c
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let kb = &listed.collections[0];
    assert_eq!((kb.name.as_str(), kb.documents, kb.chunks), ("kb", 4, 4));
    assert!(released(dir.path(), "kb"), "listing reopened it");

    let hits = c
        .search(search("kb", "XJ-9000", 3))
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(hits[0].chunk.as_ref().unwrap().document_id, "pump.md");
    assert!(!released(dir.path(), "kb"), "the search reopened it");
    server.shutdown().await;
}

/// With `reranker.kind = "llm"` the judge scores Search candidates on the generation pool's
/// threads (serving/pooled_reranker.rs tests the queueing and refusal); its scores are the
/// judge's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_llm_judge_reranks_through_the_generation_pool() {
    use ragd::model::rerank::{LlmReranker, Reranker};

    let dir = tempfile::tempdir().unwrap();
    let judge = std::sync::Arc::new(LlmReranker::new(shared_generator(), 512).unwrap());
    let server = Server::start_answering_with(dir.path(), Some(judge.clone()), |cfg| {
        cfg.reranker.kind = ragd::config::RerankerKind::Llm;
    })
    .await;
    let mut c = server.client().await;
    ingest_kb(&mut c, "kb").await;

    let query = "which seal fits the XJ-9000?";
    let mut request = search("kb", query, 2);
    let options = request.options.as_mut().unwrap();
    (options.rerank, options.rerank_candidates) = (true, 2);
    let hits = c.search(request).await.unwrap().into_inner().hits;
    assert_eq!(hits.len(), 2);
    let texts: Vec<String> = hits
        .iter()
        .map(|h| h.chunk.as_ref().unwrap().text.clone())
        .collect();
    let direct = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        judge.rerank(query, &refs).unwrap()
    })
    .await
    .unwrap();
    let served: Vec<f32> = hits
        .iter()
        .map(|h| h.scores.unwrap().rerank.unwrap())
        .collect();
    assert_eq!(served, direct);
    assert!(served[0] >= served[1], "ordered by the judge: {served:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn message_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), |c| c.server.max_message_bytes = 16 * 1024).await;
    let mut c = server.client().await;
    let big = pb::IngestDocumentsRequest {
        collection: "kb".into(),
        chunker: String::new(),
        documents: vec![doc("big.md", "Big", &"word ".repeat(8000), "en")],
    };
    let r = c.ingest_documents(tokio_stream::iter(vec![big])).await;
    let status = r.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    drop(c);
    server.shutdown().await;
}

/// `ragd ingest --server` sends messages bounded by bytes, not by a count of documents: 12
/// documents of 6 KB each go to a server whose message limit is 32 KiB (one message of all 12
/// used to be refused whole), and one document over the client's limit fails here, by name,
/// before anything is sent, while the rest are ingested.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_stream_batches_are_bounded_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), |c| {
        c.server.max_message_bytes = 32 * 1024;
    })
    .await;
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..12 {
        let text = format!("Pump {i} manual. ") + &"The seal is checked weekly. ".repeat(220);
        std::fs::write(files.join(format!("pump-{i:02}.txt")), text).unwrap();
    }
    std::fs::write(files.join("zz-huge.txt"), "Huge. ".repeat(6000)).unwrap();
    let addr = format!("http://{}", server.addr);
    let run = move |extra: &'static [&'static str]| {
        let (addr, files) = (addr.clone(), files.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_ragd"))
                .args(["ingest", "--server", &addr, "--collection", "kb", "--json"])
                .args(extra)
                .arg(&files)
                .output()
                .unwrap()
        })
    };
    let out = run(&["--max-message-bytes", "24000"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "one document failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a summary");
    assert_eq!(summary["added"], 12, "{summary} {stderr}");
    assert_eq!(summary["failed"], 1, "{summary}");
    let error = summary["errors"][0].to_string();
    assert!(
        error.contains("zz-huge.txt") && error.contains("--max-message-bytes"),
        "{error}"
    );
    // A client limit above the server's: the server's refusal comes with the flag to change.
    let out = run(&[]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--max-message-bytes"), "{stderr}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_reflection() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), vec![], 64).await;
    crate::common::assert_serving(server.channel().await).await;

    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"ragd.v1.Rag"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    drop((reflection, replies));
    server.shutdown().await;
}

/// A JSONL corpus of `n` short documents in `dir`.
pub(crate) fn corpus(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("corpus.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({"_id": format!("d{i}"), "title": format!("Note {i}"),
                "text": format!("Note number {i} talks about topic {} and item {}.", i % 7, i * 13)})
            .to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

pub(crate) fn job_request(path: &Path) -> pb::StartIngestJobRequest {
    pb::StartIngestJobRequest {
        collection: "bulk".into(),
        paths: vec![path.display().to_string()],
        chunker: String::new(),
        sync: false,
    }
}

fn state(job: &pb::IngestJob) -> pb::JobState {
    pb::JobState::try_from(job.state).unwrap()
}

/// Watches `id` until a record with documents done, returning the stream for later updates.
pub(crate) async fn until_started(
    c: &mut RagClient<Channel>,
    id: &str,
) -> tonic::Streaming<pb::IngestJob> {
    let mut updates = c
        .watch_ingest_job(pb::WatchIngestJobRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner();
    loop {
        let job = updates.next().await.expect("stream ended early").unwrap();
        let s = state(&job);
        assert!(
            matches!(s, pb::JobState::Queued | pb::JobState::Running),
            "{job:?}"
        );
        if job.progress.unwrap().documents_done > 0 {
            return updates;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    let path = corpus(&root, 300);
    let server = Server::start(&dir.path().join("data"), vec![root.clone()], 2).await;
    let mut c = server.client().await;

    let relative = pb::StartIngestJobRequest {
        paths: vec!["files/corpus.jsonl".into()],
        ..job_request(&path)
    };
    assert_eq!(
        code(c.start_ingest_job(relative).await),
        Code::InvalidArgument
    );
    let outside = pb::StartIngestJobRequest {
        paths: vec![dir.path().display().to_string()],
        ..job_request(&path)
    };
    assert_eq!(
        code(c.start_ingest_job(outside).await),
        Code::PermissionDenied
    );
    let sneaky = format!("{}/../", root.display());
    let escape = pb::StartIngestJobRequest {
        paths: vec![sneaky],
        ..job_request(&path)
    };
    assert_eq!(
        code(c.start_ingest_job(escape).await),
        Code::PermissionDenied
    );

    let job = c
        .start_ingest_job(job_request(&path))
        .await
        .unwrap()
        .into_inner();
    let mut updates = until_started(&mut c, &job.id).await;
    c.cancel_ingest_job(pb::CancelIngestJobRequest { id: job.id.clone() })
        .await
        .unwrap();
    let mut last = None;
    while let Some(u) = updates.next().await {
        last = Some(u.unwrap());
    }
    let last = last.unwrap();
    assert_eq!(state(&last), pb::JobState::Cancelled);
    let p = last.progress.unwrap();
    // Progress is in bytes of input: the scan sizes the corpus without parsing it.
    assert!(p.documents_done > 0 && p.documents_done < 300, "{p:?}");
    assert!(p.bytes_done > 0 && p.bytes_done < p.bytes_total, "{p:?}");
    assert_eq!(p.bytes_total, std::fs::metadata(&path).unwrap().len());
    assert_eq!(
        p.documents_total, 0,
        "unknown until the job has read everything"
    );
    assert_eq!(p.counts.unwrap().added, p.documents_done);
    let listed = c
        .list_ingest_jobs(pb::ListIngestJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.jobs[0].id, job.id);
    // Cancelling a finished job returns it unchanged.
    let again = c
        .cancel_ingest_job(pb::CancelIngestJobRequest { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&again), pb::JobState::Cancelled);
    drop((c, updates));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_resumes_after_restart_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    let path = corpus(&root, 300);
    let data = dir.path().join("data");

    let server = Server::start(&data, vec![root.clone()], 2).await;
    let mut c = server.client().await;
    let job = c
        .start_ingest_job(job_request(&path))
        .await
        .unwrap()
        .into_inner();
    let updates = until_started(&mut c, &job.id).await;
    drop((c, updates));
    server.shutdown().await; // the job stops after its current batch, still RUNNING

    let server = Server::start(&data, vec![root.clone()], 2).await;
    let mut c = server.client().await;
    let mut updates = c
        .watch_ingest_job(pb::WatchIngestJobRequest { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    let first = updates.next().await.unwrap().unwrap();
    assert_eq!(first.resumed, 1, "the job was interrupted and resumed");
    let resumed_at = first.progress.unwrap().documents_done;
    assert!(resumed_at > 0 && resumed_at < 300, "{resumed_at}");
    let mut last = first;
    while let Some(u) = updates.next().await {
        last = u.unwrap();
    }
    assert_eq!(state(&last), pb::JobState::Succeeded, "{last:?}");
    let p = last.progress.unwrap();
    let counts = p.counts.unwrap();
    assert_eq!((p.documents_done, p.documents_total), (300, 300));
    // Exactly the corpus: nothing added twice across the restart.
    assert_eq!(counts.added + counts.unchanged, 300, "{counts:?}");
    let listed = c
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.collections[0].documents, 300);

    // Re-running the job adds nothing.
    let rerun = c
        .start_ingest_job(job_request(&path))
        .await
        .unwrap()
        .into_inner();
    let mut updates = c
        .watch_ingest_job(pb::WatchIngestJobRequest {
            id: rerun.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = rerun;
    while let Some(u) = updates.next().await {
        last = u.unwrap();
    }
    let counts = last.progress.unwrap().counts.unwrap();
    assert_eq!((counts.added, counts.unchanged, counts.chunks), (0, 300, 0));
    drop((c, updates));
    server.shutdown().await;
}

/// The binary end to end: `ragd serve`, `ragd ingest --server`, `ragd search --server`, and a
/// graceful exit on SIGTERM.
#[cfg(unix)]
#[test]
fn cli_serve_ingest_search_and_sigterm() {
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let ragd = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ragd"));
        c.arg("--data-dir").arg(dir.path());
        c
    };
    let mut server = ragd()
        .args(["serve", "--http-addr", "off", "--addr", &addr])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let kb = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb");
    let out = ragd()
        .args(["ingest", "--server", &addr, "--collection", "kb", "--json"])
        .arg(&kb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["added"], 6, "{summary}");
    let out = ragd()
        .args([
            "search",
            "--server",
            &addr,
            "--collection",
            "kb",
            "--json",
            "-k",
            "1",
        ])
        .arg("Which shaft seal fits an XJ-9000 pump built in 2021?")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["hits"][0]["doc_id"], "parts-catalog.md", "{found}");
    // SAFETY: sending SIGTERM to a child we spawned and have not yet waited for.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    assert!(
        server.wait().unwrap().success(),
        "graceful shutdown exits 0"
    );
    // The clean shutdown checkpointed the collection: its HNSW graph was dumped, so the next
    // start replays nothing (a handful of documents is far below the dump thresholds).
    let dumps: Vec<String> = std::fs::read_dir(dir.path().join("kb"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dense-") && !n.ends_with(".tmp"))
        .collect();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
}

pub(crate) fn ask(collection: &str, question: &str, max_tokens: u32) -> pb::AskRequest {
    pb::AskRequest {
        collection: collection.into(),
        question: question.into(),
        retrieval: None,
        generation: Some(pb::GenerationOptions {
            max_tokens,
            temperature: Some(0.0),
            seed: None,
            stop: Vec::new(),
        }),
    }
}

/// Reads an Ask stream to its end: the concatenated deltas and the final message, which must
/// come last and once.
pub(crate) async fn read_answer(
    mut stream: tonic::Streaming<pb::AskResponse>,
) -> (String, pb::AskFinal) {
    let mut text = String::new();
    let mut last = None;
    while let Some(msg) = stream.next().await {
        assert!(last.is_none(), "a message after the final one");
        match msg.unwrap().event.unwrap() {
            pb::ask_response::Event::Delta(d) => text.push_str(&d),
            pb::ask_response::Event::Final(f) => last = Some(f),
        }
    }
    (text, last.expect("a final message"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ask_streams_a_cited_answer_and_refuses_off_topic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_answering(dir.path()).await;
    let mut c = server.client().await;
    ingest_kb(&mut c, "kb").await;

    let q = ask(
        "kb",
        "Which shaft seal does the XJ-9000 pump built in 2021 use?",
        48,
    );
    let stream = c.ask(q).await.unwrap().into_inner();
    let (streamed, fin) = read_answer(stream).await;
    assert!(!fin.answer.trim().is_empty());
    // Only checked sentences are streamed: the deltas are the final answer.
    assert_eq!(streamed, fin.answer);
    let usage = fin.usage.unwrap();
    assert!(usage.prompt_tokens > 50, "{usage:?}");
    assert!((1..=48).contains(&usage.completion_tokens), "{usage:?}");
    // The answer is in pump.md: it must be answered, not refused, and cite that source.
    assert!(!fin.not_found, "{fin:?}");
    assert!(
        fin.citations.iter().any(|c| c.document_id == "pump.md"),
        "{fin:?}"
    );
    let known = ["pump.md", "kv.md", "nf4.md", "zh.md"];
    for cit in &fin.citations {
        assert!(known.contains(&cit.document_id.as_str()), "{cit:?}");
        assert!((1..=5).contains(&cit.source_number) && cit.span_end > cit.span_start);
        assert!(
            fin.answer.contains(&format!("{}]", cit.source_number)),
            "{fin:?}"
        );
    }
    let timings = fin.timings.unwrap();
    assert!(timings.total_ms >= timings.time_to_first_token_ms);
    // The short answer, when given, is exact text of a cited document at the offsets given.
    if let Some(short) = &fin.short_answer {
        assert!(
            fin.citations
                .iter()
                .any(|c| c.source_number == short.source_number
                    && c.document_id == short.document_id),
            "{fin:?}"
        );
        let doc = c
            .get_document(pb::GetDocumentRequest {
                collection: "kb".into(),
                id: short.document_id.clone(),
                include_chunks: true,
            })
            .await
            .unwrap()
            .into_inner();
        let (start, end) = (short.span_start as usize, short.span_end as usize);
        let chunk = doc
            .chunks
            .iter()
            .find(|ch| ch.span_start as usize <= start && end <= ch.span_end as usize)
            .expect("the span lies in one chunk");
        let at: String = chunk
            .text
            .chars()
            .skip(start - chunk.span_start as usize)
            .take(end - start)
            .collect();
        assert_eq!(at, short.text);
    }

    // Nothing in the knowledge base is near this: answered without the model.
    let q = ask("kb", "Who won the 2018 FIFA World Cup?", 48);
    let (streamed, fin) = read_answer(c.ask(q).await.unwrap().into_inner()).await;
    assert!(fin.not_found, "{fin:?}");
    assert_eq!(streamed, ragd::rag::prompt::NOT_FOUND);
    assert_eq!(fin.answer, ragd::rag::prompt::NOT_FOUND);
    assert_eq!(fin.usage.unwrap().prompt_tokens, 0);
    assert!(fin.citations.is_empty());

    assert_eq!(code(c.ask(ask("kb", "  ", 8)).await), Code::InvalidArgument);
    assert_eq!(code(c.ask(ask("nope", "what?", 8)).await), Code::NotFound);
    let mut hot = ask("kb", "what?", 8);
    hot.generation.as_mut().unwrap().temperature = Some(5.0);
    assert_eq!(code(c.ask(hot).await), Code::InvalidArgument);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ask_beyond_the_generation_limit_is_refused_and_cancel_frees_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_answering(dir.path()).await;
    let mut c = server.client().await;
    ingest_kb(&mut c, "kb").await;
    let long = "What does the KV cache store, and why does it make decoding faster?";
    // Keep asking: one generation runs, one waits in the queue, and the next is refused at
    // once (RESOURCE_EXHAUSTED) rather than piling up.
    let probe = c.ask(ask("kb", long, 16)).await.unwrap().into_inner();
    let (_, fin) = read_answer(probe).await;
    assert!(
        fin.usage.unwrap().prompt_tokens > 0,
        "the question must reach the model: {fin:?}"
    );
    let mut accepted = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        match c.ask(ask("kb", long, 3000)).await {
            Ok(r) => accepted.push(r.into_inner()),
            Err(status) => {
                refused = Some(status.code());
                break;
            }
        }
    }
    assert_eq!(refused, Some(Code::ResourceExhausted));
    assert!(accepted.len() >= 2, "{}", accepted.len());
    // Every client leaves: their generations stop at the next token, so capacity returns
    // long before 3000 tokens could have been generated.
    drop(accepted);
    let started = std::time::Instant::now();
    let fin = loop {
        match c.ask(ask("kb", long, 4)).await {
            Ok(r) => break read_answer(r.into_inner()).await.1,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "capacity never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(fin.usage.unwrap().completion_tokens <= 4);
    server.shutdown().await;
}
