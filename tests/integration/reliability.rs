//! Crash safety and load, against the real `ragd serve` binary as a child process on a loopback
//! port (models from RAGD_MODELS_DIR, data in a temp folder).
//!
//! * [`crash_kill9_during_bulk_job_and_compaction`]: a bulk job over 3,000 synthetic documents
//!   (each with a unique keyword) is SIGKILLed at the moments of a fixed delay list, twelve
//!   times. After every kill the dead server's data folder is copied and opened here with the
//!   index crate (the same recovery a restart runs): every document the job had acknowledged
//!   must be found by BM25 (its keyword: exactly one hit) and by dense search (its own text),
//!   the documents present must be exactly a prefix of the corpus reaching at most one batch
//!   past the acknowledged cursor, sled, tantivy and the HNSW must hold the same number of
//!   chunks, and no chunk may appear twice. The server is then restarted on the original folder
//!   and the job resumes; at the end exactly N documents are indexed and a second job adds 0.
//!   Then enough documents are deleted to trigger an HNSW compaction, and the server is killed
//!   while it compacts (detected by its log line), several times: deleted documents stay
//!   deleted, the rest stay found, the counts agree.
//! * [`load_16_searchers_during_bulk_ingest_and_ask_overload`]: 16 clients (one asking, the
//!   others searching) call the server for `RAGD_LOAD_SECS` (default 60) seconds while a bulk
//!   job ingests and another client re-ingests changed versions of documents and deletes
//!   documents; no call may fail and every hit's text must be a version of its document;
//!   p50/p99, requests/s and the server's peak RSS are printed. Then Ask beyond the generation limit
//!   (one generation thread, a queue of one) must be refused with RESOURCE_EXHAUSTED, and a
//!   burst of 200 such Asks must not grow the server's memory.
//!
//! Both tests measure time and memory of a child process, so they take a lock and run one at a
//! time. Run with `--nocapture` to see the numbers.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use index::{ChunkId, Collection, Filter, Stats};
use ragd::grpc::pb::{self, rag_client::RagClient};
use ragd::jobs::store::JobStore;
use ragd::jobs::JobRecord;
use tonic::transport::Channel;
use tonic::Code;

use crate::common::runtime;

/// The two tests time and measure a child process: never both at once.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---- the synthetic corpus ----

/// A small deterministic generator (splitmix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[(self.next() % words.len() as u64) as usize]
    }
}

fn doc_id(i: usize) -> String {
    format!("d{i:05}")
}

/// The one word only document `i` contains (letters and digits: one token for BM25, and no
/// English suffix for the stemmer to cut).
fn keyword(i: usize) -> String {
    format!("zx{i:05}q")
}

/// 1–3 short sentences; the first names the document's keyword.
fn doc_text(i: usize) -> String {
    const ADJ: &[&str] = &[
        "amber", "quiet", "rusty", "bright", "hollow", "northern", "patient", "copper", "silent",
        "crimson", "gentle", "frozen",
    ];
    const NOUN: &[&str] = &[
        "falcon",
        "engineer",
        "lighthouse",
        "orchard",
        "valve",
        "harbor",
        "glacier",
        "ledger",
        "turbine",
        "meadow",
        "archive",
        "compass",
        "bakery",
        "violin",
    ];
    const VERB: &[&str] = &[
        "repairs",
        "measures",
        "guards",
        "paints",
        "records",
        "inspects",
        "follows",
        "polishes",
        "describes",
        "carries",
    ];
    let mut r = Mix(i as u64 ^ 0x5eed);
    let mut text = format!(
        "Record {}: the {} {} {} a {} {}.",
        keyword(i),
        r.pick(ADJ),
        r.pick(NOUN),
        r.pick(VERB),
        r.pick(ADJ),
        r.pick(NOUN),
    );
    for _ in 0..r.next() % 3 {
        text.push_str(&format!(
            " The {} {} {}.",
            r.pick(NOUN),
            r.pick(VERB),
            r.pick(NOUN)
        ));
    }
    text
}

/// Writes documents `0..n` as BEIR JSONL at `path`.
fn write_corpus(path: &Path, n: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let line = serde_json::json!({ "_id": doc_id(i), "text": doc_text(i) });
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
}

// ---- the server child ----

/// `secs` from now, or the deadline if that comes first.
fn soon(deadline: Instant, secs: u64) -> Instant {
    deadline.min(Instant::now() + Duration::from_secs(secs))
}

/// How to start `ragd serve`; every start uses the same folder, config and port.
struct Spec {
    data: PathBuf,
    config: PathBuf,
    roots: Vec<PathBuf>,
    addr: String,
}

impl Spec {
    fn new(root: &Path, config_toml: &str, roots: Vec<PathBuf>) -> Self {
        let config = root.join("ragd.toml");
        std::fs::write(&config, config_toml).unwrap();
        let port = crate::common::free_port();
        Self {
            data: root.join("data"),
            config,
            roots,
            addr: format!("127.0.0.1:{port}"),
        }
    }

    /// Starts the server and waits until it listens.
    fn start(&self, deadline: Instant) -> Ragd {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ragd"));
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data)
            .args([
                "--log-level",
                "info",
                "serve",
                "--http-addr",
                "off",
                "--addr",
                &self.addr,
            ])
            .env_remove("RAGD_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for root in &self.roots {
            cmd.arg("--allow-root").arg(root);
        }
        let mut child = cmd.spawn().expect("spawning ragd serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let tail = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut t = tail.lock().unwrap_or_else(PoisonError::into_inner);
                if t.len() == 200 {
                    t.pop_front();
                }
                t.push_back(line.clone());
                drop(t);
                let _ = tx.send(line);
            }
        });
        let mut server = Ragd {
            child: Some(child),
            addr: self.addr.clone(),
            log,
            lines,
        };
        if !server.wait_line("ragd: serving gRPC on", soon(deadline, 120)) {
            panic!("ragd serve did not start in time\n{}", server.tail());
        }
        server
    }
}

/// A running `ragd serve`; killed (SIGKILL) when dropped, so a failing test leaves no child.
struct Ragd {
    child: Option<Child>,
    addr: String,
    log: Arc<Mutex<VecDeque<String>>>,
    lines: mpsc::Receiver<String>,
}

impl Ragd {
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits for a log line containing `pattern`; false at the deadline or if the server
    /// exited.
    fn wait_line(&mut self, pattern: &str, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) if line.contains(pattern) => return true,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                        panic!("ragd serve exited ({status})\n{}", self.tail());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// The log lines received so far that were not yet read; true if one contains `pattern`.
    /// Lets a background HNSW compaction the logs show running finish (within `deadline`).
    fn settle_compaction(&mut self, deadline: Instant) {
        let mut running = false;
        while let Ok(line) = self.lines.try_recv() {
            if line.contains("compacting the HNSW graph") {
                running = true;
            } else if line.contains("HNSW graph compacted") {
                running = false;
            }
        }
        if running {
            assert!(
                self.wait_line("HNSW graph compacted", deadline),
                "a compaction never ended\n{}",
                self.tail()
            );
        }
    }

    fn drain_seen(&self, pattern: &str) -> bool {
        let mut seen = false;
        while let Ok(line) = self.lines.try_recv() {
            seen |= line.contains(pattern);
        }
        seen
    }

    fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own child, which has not been waited for (so its pid is ours).
        unsafe {
            libc::kill(self.pid() as i32, signal);
        }
    }

    /// SIGKILL, then reap.
    fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        self.child.take().unwrap().wait().unwrap();
    }

    /// SIGTERM; waits up to `grace` for a clean exit.
    fn terminate(mut self, grace: Duration) {
        self.signal(libc::SIGTERM);
        let until = Instant::now() + grace;
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "graceful shutdown: {status}\n{}",
                    self.tail()
                );
                return;
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ragd serve did not stop within {grace:?}\n{}", self.tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines the server logged.
    fn tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = log.len().saturating_sub(40);
        log.iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    async fn client(&self) -> RagClient<Channel> {
        RagClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connecting to ragd serve")
    }
}

impl Drop for Ragd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---- gRPC helpers ----

/// A request that gives up after 60 s rather than hang the test.
fn req<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(60));
    r
}

fn search_req(collection: &str, query: &str, mode: pb::SearchMode, k: u32) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: collection.into(),
        query: query.into(),
        options: Some(pb::RetrievalOptions {
            mode: mode as i32,
            k,
            ..Default::default()
        }),
    }
}

/// The document ids of a search's hits, best first.
async fn search_docs(
    c: &mut RagClient<Channel>,
    collection: &str,
    query: &str,
    mode: pb::SearchMode,
    k: u32,
) -> Vec<String> {
    let r = c
        .search(req(search_req(collection, query, mode, k)))
        .await
        .unwrap_or_else(|s| panic!("search {query:?} ({mode:?}): {s}"))
        .into_inner();
    r.hits
        .into_iter()
        .map(|h| h.chunk.unwrap().document_id)
        .collect()
}

/// Checks over gRPC that document `i` is found by its keyword (BM25, exactly one hit) and by
/// its text (dense, in the top 10).
async fn assert_served(c: &mut RagClient<Channel>, collection: &str, i: usize) {
    let bm25 = search_docs(c, collection, &keyword(i), pb::SearchMode::Bm25, 10).await;
    assert_eq!(bm25, vec![doc_id(i)], "BM25 for {}", keyword(i));
    let dense = search_docs(c, collection, &doc_text(i), pb::SearchMode::Dense, 10).await;
    assert!(
        dense.contains(&doc_id(i)),
        "dense for {}: {dense:?}",
        doc_id(i)
    );
}

async fn list_documents(c: &mut RagClient<Channel>, collection: &str) -> u64 {
    let list = c
        .list_collections(req(pb::ListCollectionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let found = list.collections.iter().find(|c| c.name == collection);
    found
        .unwrap_or_else(|| panic!("no collection {collection}"))
        .documents
}

async fn get_job(c: &mut RagClient<Channel>, id: &str) -> pb::IngestJob {
    c.get_ingest_job(req(pb::GetIngestJobRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

/// Follows the job until it ends; `None` if the stream broke first.
async fn watch_to_end(
    c: &mut RagClient<Channel>,
    id: &str,
    acked: Option<Arc<AtomicU64>>,
) -> Option<pb::IngestJob> {
    let mut stream = c
        .watch_ingest_job(pb::WatchIngestJobRequest { id: id.into() })
        .await
        .ok()?
        .into_inner();
    while let Ok(Some(job)) = stream.message().await {
        if let Some(a) = &acked {
            a.fetch_max(
                job.progress.as_ref().unwrap().documents_done,
                Ordering::SeqCst,
            );
        }
        if job.state != pb::JobState::Running as i32 && job.state != pb::JobState::Queued as i32 {
            return Some(job);
        }
    }
    None
}

fn counts(job: &pb::IngestJob) -> pb::IngestCounts {
    job.progress.as_ref().unwrap().counts.unwrap()
}

// ---- the data folder of a dead server, opened here ----

/// Copies `from` into `to` recursively (the dead server's files, so that opening them here
/// cannot alter what the restarted server recovers from).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What a document must be after a crash.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Present,
    Absent,
    Either,
}

/// What [`inspect`] found.
struct Inspection {
    /// Corpus indices of the documents stored.
    present: Vec<usize>,
    stats: Stats,
    /// Present documents whose first chunk dense search ranked first for its own vector.
    dense_top1: usize,
    /// The job record as persisted, when asked for.
    job: Option<JobRecord>,
}

/// Opens a copy of `data` (collection `name`, and the job store when `job` is given) and checks
/// documents `docs` against `want` (and that the collection holds no others): stored ones must be found by their keyword (BM25: exactly
/// one hit, theirs) and by their chunks' stored vectors (dense: the chunk in the top 10),
/// missing ones must leave no BM25 trace, chunk ids must be unique, and sled, tantivy and the HNSW must count the same
/// chunks.
fn inspect(
    data: &Path,
    scratch: &Path,
    name: &str,
    docs: std::ops::Range<usize>,
    want: impl Fn(usize) -> Want,
    job: Option<&str>,
) -> Inspection {
    let _ = std::fs::remove_dir_all(scratch);
    copy_dir(&data.join(name), &scratch.join(name));
    let job = job.map(|id| {
        copy_dir(&data.join(".jobs"), &scratch.join(".jobs"));
        let store = JobStore::open(scratch).unwrap();
        store.get(id).unwrap().expect("the job record survives")
    });
    let collection = Collection::open_existing(&scratch.join(name)).expect("reopening");
    let searcher = collection.reader().searcher();
    let stats = searcher.stats().unwrap();
    let none = Filter::default();
    let mut present = Vec::new();
    let mut chunk_ids = HashSet::new();
    for i in docs {
        let info = searcher.get_document(&doc_id(i)).unwrap();
        let hits = searcher.search_bm25(&keyword(i), 10, &none).unwrap();
        match (&info, want(i)) {
            (Some(_), Want::Absent) => panic!("{} is stored but must not be", doc_id(i)),
            (None, Want::Present) => panic!("{} was acknowledged but is lost", doc_id(i)),
            _ => {}
        }
        let Some(info) = info else {
            assert!(
                hits.is_empty(),
                "{} is gone but BM25 still finds it",
                doc_id(i)
            );
            continue;
        };
        present.push(i);
        assert!(!info.chunk_ids.is_empty(), "{} has no chunks", doc_id(i));
        assert_eq!(hits.len(), 1, "BM25 hits for {}: {hits:?}", keyword(i));
        for id in &info.chunk_ids {
            assert!(chunk_ids.insert(*id), "chunk {id:?} stored twice");
        }
        let chunks = searcher.get_chunks(&info.chunk_ids).unwrap();
        for c in &chunks {
            let c = c.as_ref().expect("a stored document's chunk exists");
            assert_eq!(c.doc_id, doc_id(i));
        }
        let hit = searcher.get_chunks(&[hits[0].id]).unwrap().remove(0);
        assert_eq!(hit.map(|c| c.doc_id), Some(doc_id(i)), "BM25 hit");
    }
    let mut dense_top1 = 0;
    for &i in &present {
        let info = searcher.get_document(&doc_id(i)).unwrap().unwrap();
        let chunks = searcher.get_chunks(&info.chunk_ids).unwrap();
        for (k, c) in chunks.into_iter().flatten().enumerate() {
            let vector = searcher
                .get_vector(c.id)
                .unwrap()
                .expect("a chunk's vector");
            let hits = searcher.search_dense(&vector, 10, &none).unwrap();
            let ids: Vec<ChunkId> = hits.iter().map(|h| h.id).collect();
            let unique: HashSet<_> = ids.iter().collect();
            assert_eq!(
                unique.len(),
                ids.len(),
                "dense hits repeat a chunk: {ids:?}"
            );
            assert!(
                ids.contains(&c.id),
                "dense search misses {} chunk {k}",
                doc_id(i)
            );
            if k == 0 && ids[0] == c.id {
                dense_top1 += 1;
            }
        }
    }
    assert_eq!(stats.documents, present.len() as u64, "{stats:?}");
    let chunks = chunk_ids.len() as u64;
    assert_eq!(
        (stats.meta_chunks, stats.bm25_chunks, stats.dense_chunks),
        (chunks, chunks, chunks),
        "chunk counts of sled, tantivy and HNSW: {stats:?}"
    );
    assert_eq!(stats.snapshot_seq, stats.last_seq, "{stats:?}");
    Inspection {
        present,
        stats,
        dense_top1,
        job,
    }
}

// ---- crash safety ----

/// The collection that IngestDocuments calls fill during the crash trials.
const STREAM: &str = "stream";

/// What the IngestDocuments client of the crash test knows: documents `CRASH_DOCS..acked` were
/// acknowledged (their call returned OK), documents up to `sent` were sent.
#[derive(Default)]
struct Streamed {
    acked: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
}

/// Streams documents from `s.acked` on into [`STREAM`], four per IngestDocuments call, one
/// call at a time, until the server goes away.
async fn stream_docs(addr: String, s: Arc<Streamed>) {
    let Ok(mut c) = RagClient::connect(format!("http://{addr}")).await else {
        return;
    };
    loop {
        let from = s.acked.load(Ordering::SeqCst) as usize;
        let to = from + 4;
        s.sent.fetch_max(to as u64, Ordering::SeqCst);
        let message = pb::IngestDocumentsRequest {
            collection: STREAM.into(),
            chunker: String::new(),
            documents: (from..to)
                .map(|i| pb::DocumentInput {
                    id: doc_id(i),
                    title: String::new(),
                    text: doc_text(i),
                    metadata: Default::default(),
                })
                .collect(),
        };
        match c.ingest_documents(req(tokio_stream::iter([message]))).await {
            Ok(r) => {
                let k = r.into_inner().counts.unwrap_or_default();
                if k.failed > 0 || k.added + k.unchanged != 4 {
                    s.failed.fetch_add(1, Ordering::SeqCst);
                }
                s.acked.store(to as u64, Ordering::SeqCst);
            }
            Err(_) => return,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Documents in the crash corpus.
const CRASH_DOCS: usize = 3000;
/// Documents per acknowledged job batch in the crash test.
const CRASH_BATCH: usize = 16;
/// Milliseconds between a start (or the job's start) and the SIGKILL, trial by trial: the
/// fixed seed list. Short ones land in startup and recovery, long ones mid-ingest.
const KILL_DELAYS_MS: [u64; 12] = [
    1300, 50, 2900, 700, 150, 2200, 400, 3000, 90, 1700, 600, 2500,
];
/// Writes between HNSW dumps in the crash trials (the default is 10,000).
const CRASH_DUMP_EVERY: u64 = 64;
/// Milliseconds between the "compacting" log line and the SIGKILL.
const COMPACTION_KILL_DELAYS_MS: [u64; 5] = [0, 40, 120, 300, 700];

#[test]
fn crash_kill9_during_bulk_job_and_compaction() {
    let _serial = serial();
    let started = Instant::now();
    let budget = std::env::var("RAGD_CRASH_BUDGET_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let deadline = started + Duration::from_secs(budget);
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus").join("docs.jsonl");
    write_corpus(&corpus, CRASH_DOCS);
    let spec = Spec::new(
        dir.path(),
        // Frequent HNSW dumps, so that kills also land mid-dump and restarts load a dump
        // rather than always rebuilding the graph from sled.
        &format!(
            "[server]\njob_batch_documents = {CRASH_BATCH}\n[index]\ndump_every_writes = {CRASH_DUMP_EVERY}\n"
        ),
        vec![corpus.parent().unwrap().to_path_buf()],
    );
    let scratch = dir.path().join("scratch");
    let name = "crash";
    let n = CRASH_DOCS;

    let mut server = spec.start(deadline);
    let job_id = rt.block_on(async {
        let mut c = server.client().await;
        let job = c
            .start_ingest_job(req(pb::StartIngestJobRequest {
                collection: name.into(),
                paths: vec![corpus.display().to_string()],
                chunker: String::new(),
                sync: false,
            }))
            .await
            .unwrap()
            .into_inner();
        job.id
    });
    let acked = Arc::new(AtomicU64::new(0));
    let streamed = Arc::new(Streamed::default());
    streamed.acked.store(n as u64, Ordering::SeqCst);
    streamed.sent.store(n as u64, Ordering::SeqCst);
    let mut resumes_expected = 0;
    let mut last_resumed = 0;
    // Trials whose kill landed while the job was running: it acknowledged batches during the
    // trial and was not finished.
    let (mut mid_run, mut done_before) = (0, 0);
    for (trial, &delay) in KILL_DELAYS_MS.iter().enumerate() {
        assert!(Instant::now() < deadline, "crash test over its time budget");
        let watcher = {
            let addr = spec.addr.clone();
            let (id, acked) = (job_id.clone(), acked.clone());
            rt.spawn(async move {
                if let Ok(mut c) = RagClient::connect(format!("http://{addr}")).await {
                    watch_to_end(&mut c, &id, Some(acked)).await;
                }
            })
        };
        let streamer = rt.spawn(stream_docs(spec.addr.clone(), streamed.clone()));
        std::thread::sleep(Duration::from_millis(delay));
        server.kill9();
        watcher.abort();
        streamer.abort();
        let seen = acked.load(Ordering::SeqCst);
        // The job record as the dead server left it: what it will resume from.
        let record = {
            let _ = std::fs::remove_dir_all(&scratch);
            copy_dir(&spec.data.join(".jobs"), &scratch.join(".jobs"));
            JobStore::open(&scratch)
                .unwrap()
                .get(&job_id)
                .unwrap()
                .unwrap()
        };
        let done = record.progress.documents_done as usize;
        let want = |i: usize| {
            if i < done {
                Want::Present
            } else if i < done + CRASH_BATCH {
                Want::Either
            } else {
                Want::Absent
            }
        };
        assert!(
            record.progress.documents_done >= seen,
            "trial {trial}: the server reported {seen} documents done, its record says {}",
            record.progress.documents_done
        );
        assert!(record.resumed >= last_resumed);
        last_resumed = record.resumed;
        let found = if spec.data.join(name).exists() {
            let found = inspect(&spec.data, &scratch, name, 0..n, want, Some(&job_id));
            assert_eq!(found.job.as_ref(), Some(&record));
            found
        } else {
            // Killed before the job created the collection: nothing may have been acknowledged.
            assert_eq!(record.progress.documents_done, 0, "trial {trial}");
            Inspection {
                present: Vec::new(),
                stats: Stats {
                    documents: 0,
                    meta_chunks: 0,
                    bm25_chunks: 0,
                    dense_chunks: 0,
                    dense_points: 0,
                    dense_frozen: true,
                    last_seq: 0,
                    snapshot_seq: 0,
                    retired_chunks: 0,
                },
                dense_top1: 0,
                job: None,
            }
        };
        // What IngestDocuments acknowledged, in its own collection.
        let (s_acked, s_sent) = (
            streamed.acked.load(Ordering::SeqCst) as usize,
            streamed.sent.load(Ordering::SeqCst) as usize,
        );
        assert_eq!(
            streamed.failed.load(Ordering::SeqCst),
            0,
            "a streamed call failed"
        );
        let s_stored = if spec.data.join(STREAM).join("manifest.json").exists() {
            let want = |i: usize| {
                if i < s_acked {
                    Want::Present
                } else {
                    Want::Either
                }
            };
            inspect(&spec.data, &scratch, STREAM, n..s_sent, want, None)
                .present
                .len()
        } else {
            assert_eq!(s_acked, n, "acknowledged but no collection");
            0
        };
        let m = found.present.len();
        assert_eq!(
            found.present,
            (0..m).collect::<Vec<_>>(),
            "trial {trial}: the stored documents are not a prefix of the corpus"
        );
        println!(
            "crash trial {trial:2}: SIGKILL after {delay:4} ms; job {:?} (resumed {}), \
             {seen:4} acknowledged by Watch, {:4} in its record; {m:4} documents stored, \
             chunks sled = tantivy = HNSW = {}; dense top-1 for {}/{m}; IngestDocuments: \
             {} acknowledged, {s_stored} stored",
            record.state,
            record.resumed,
            record.progress.documents_done,
            found.stats.meta_chunks,
            found.dense_top1,
            s_acked - n,
        );
        if !record.state.is_terminal() {
            resumes_expected += 1;
            if record.progress.documents_done > done_before {
                mid_run += 1;
            }
        }
        done_before = record.progress.documents_done;
        server = spec.start(deadline);
        if trial % 3 == 2 {
            // Through the restarted server: the record it reports, and a sample of the
            // acknowledged documents.
            rt.block_on(async {
                let mut c = server.client().await;
                let now = get_job(&mut c, &job_id).await;
                assert!(now.progress.unwrap().documents_done >= record.progress.documents_done);
                let d = record.progress.documents_done as usize;
                let mut r = Mix(trial as u64);
                for i in (0..8)
                    .filter(|_| d > 0)
                    .map(|_| (r.next() % d as u64) as usize)
                {
                    assert_served(&mut c, name, i).await;
                }
                if d > 0 {
                    assert_served(&mut c, name, d - 1).await;
                }
            });
        }
    }

    // Without this the trials could all have landed in startup or after the job's end, and
    // the test would prove nothing about a kill mid-ingest.
    println!(
        "crash: {mid_run} of {} kills landed while the job was ingesting",
        KILL_DELAYS_MS.len()
    );
    assert!(
        mid_run >= 3,
        "only {mid_run} kills landed mid-run; the delays no longer reach the ingest"
    );

    // The job runs to its end after the last restart.
    let chunks_total = rt.block_on(async {
        let mut c = server.client().await;
        let left = deadline.saturating_duration_since(Instant::now());
        let end = tokio::time::timeout(left, watch_to_end(&mut c, &job_id, None))
            .await
            .unwrap_or_else(|_| panic!("the resumed job did not finish\n{}", server.tail()))
            .expect("watching the job");
        let p = end.progress.unwrap();
        let k = counts(&end);
        assert_eq!(end.state, pb::JobState::Succeeded as i32, "{end:?}");
        assert_eq!((p.documents_total, p.documents_done), (n as u64, n as u64));
        assert_eq!((k.failed, k.updated), (0, 0), "{k:?}");
        assert_eq!(
            k.added + k.unchanged,
            n as u64,
            "each document counted once: {k:?}"
        );
        assert!(end.resumed >= last_resumed && end.resumed <= resumes_expected);
        println!(
            "crash: job finished after {} resumes: {} added, {} unchanged (redone after a kill), \
             {} chunks written",
            end.resumed, k.added, k.unchanged, k.chunks
        );
        let list = c
            .list_collections(req(pb::ListCollectionsRequest {}))
            .await
            .unwrap()
            .into_inner();
        let col = list.collections.iter().find(|c| c.name == name).unwrap();
        assert_eq!(col.documents, n as u64, "{col:?}");
        for i in 0..n {
            let hits = search_docs(&mut c, name, &keyword(i), pb::SearchMode::Bm25, 10).await;
            assert_eq!(hits, vec![doc_id(i)], "BM25 for {}", keyword(i));
        }
        for i in (0..n).step_by(97) {
            assert_served(&mut c, name, i).await;
        }
        // The streamed documents: the call the last kill interrupted is made again.
        let (s_acked, s_sent) = (
            streamed.acked.load(Ordering::SeqCst) as usize,
            streamed.sent.load(Ordering::SeqCst) as usize,
        );
        if s_sent > s_acked {
            let message = pb::IngestDocumentsRequest {
                collection: STREAM.into(),
                chunker: String::new(),
                documents: (s_acked..s_sent)
                    .map(|i| pb::DocumentInput {
                        id: doc_id(i),
                        text: doc_text(i),
                        ..Default::default()
                    })
                    .collect(),
            };
            let r = c
                .ingest_documents(req(tokio_stream::iter([message])))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.counts.unwrap().failed, 0);
        }
        let streamed_docs = list_documents(&mut c, STREAM).await;
        assert_eq!(streamed_docs, (s_sent - n) as u64);
        for i in n..s_sent {
            let hits = search_docs(&mut c, STREAM, &keyword(i), pb::SearchMode::Bm25, 10).await;
            assert_eq!(hits, vec![doc_id(i)], "BM25 for {}", keyword(i));
        }
        println!("crash: {streamed_docs} documents streamed by IngestDocuments, all found");
        // The same corpus again: nothing to add.
        let again = c
            .start_ingest_job(req(pb::StartIngestJobRequest {
                collection: name.into(),
                paths: vec![corpus.display().to_string()],
                chunker: String::new(),
                sync: false,
            }))
            .await
            .unwrap()
            .into_inner();
        let again = watch_to_end(&mut c, &again.id, None).await.unwrap();
        let k = counts(&again);
        assert_eq!(again.state, pb::JobState::Succeeded as i32);
        assert_eq!(
            (k.added, k.updated, k.unchanged, k.chunks),
            (0, 0, n as u64, 0)
        );
        col.chunks
    });

    // Compaction: delete just under the threshold (tombstones >= 256 and > 20% of the graph,
    // the defaults), then a few more, and SIGKILL while the commit of those compacts. After a
    // restart the graph is rebuilt from sled (no tombstones), so every trial deletes anew.
    assert_eq!(chunks_total, n as u64, "one chunk per synthetic document");
    let mut order: Vec<usize> = (0..n).collect();
    let mut r = Mix(42);
    for i in (1..n).rev() {
        order.swap(i, (r.next() % (i as u64 + 1)) as usize);
    }
    let mut order = order.into_iter();
    let delete = |ids: &[usize]| pb::DeleteDocumentsRequest {
        collection: name.into(),
        ids: ids.iter().map(|&i| doc_id(i)).collect(),
    };
    let mut deleted = HashSet::new();
    let mut live = n;
    let mut mid_compaction = 0;
    for (trial, &delay) in COMPACTION_KILL_DELAYS_MS.iter().enumerate() {
        assert!(Instant::now() < deadline, "crash test over its time budget");
        // A restart loads the last dump, tombstones included, and opening the collection then
        // compacts it in the background: let that end, so the trial starts from a graph
        // without tombstones and its threshold arithmetic holds.
        rt.block_on(async {
            let mut c = server.client().await;
            c.list_collections(req(pb::ListCollectionsRequest {}))
                .await
                .unwrap();
        });
        std::thread::sleep(Duration::from_millis(300));
        server.settle_compaction(soon(deadline, 60));
        let needed = 256.max(live / 5 + 1);
        let below: Vec<usize> = order.by_ref().take(needed - 10).collect();
        let last: Vec<usize> = order.by_ref().take(20).collect();
        server.drain_seen("");
        rt.block_on(async {
            let mut c = server.client().await;
            let r = c.delete_documents(req(delete(&below))).await.unwrap();
            assert_eq!(r.into_inner().deleted, below.len() as u64);
        });
        deleted.extend(below.iter().copied());
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !server.drain_seen("compacting the HNSW graph"),
            "compacted below the threshold"
        );
        let call = {
            let addr = spec.addr.clone();
            let request = delete(&last);
            rt.spawn(async move {
                let mut c = RagClient::connect(format!("http://{addr}")).await.ok()?;
                c.delete_documents(req(request)).await.ok()
            })
        };
        let compacting = server.wait_line("compacting the HNSW graph", soon(deadline, 60));
        assert!(compacting, "no compaction started\n{}", server.tail());
        std::thread::sleep(Duration::from_millis(delay));
        let rebuilt = server.drain_seen("HNSW graph compacted");
        let answered = call.is_finished();
        server.kill9();
        let answered = answered && rt.block_on(call).unwrap().is_some();
        // The rebuild runs in the background: the deleting call may have answered long before.
        mid_compaction += usize::from(!rebuilt);
        let last_set: HashSet<usize> = last.iter().copied().collect();
        let want = |i: usize| {
            if deleted.contains(&i) {
                Want::Absent
            } else if last_set.contains(&i) {
                Want::Either
            } else {
                Want::Present
            }
        };
        let found = inspect(&spec.data, &scratch, name, 0..n, want, None);
        let durable = last.iter().filter(|i| !found.present.contains(i)).count();
        println!(
            "compaction trial {trial}: SIGKILL {delay:3} ms after the compaction of {live} \
             points started ({}); {durable}/{} of the last deletions durable; {} documents, \
             chunks sled = tantivy = HNSW = {}",
            match (rebuilt, answered) {
                (true, _) => "after the new graph replaced the old",
                (false, true) => "while rebuilding the graph, the call answered",
                (false, false) => "while rebuilding the graph, before the call answered",
            },
            last.len(),
            found.stats.documents,
            found.stats.meta_chunks,
        );
        // Restart and finish the interrupted call: now every deletion so far is acknowledged.
        server = spec.start(deadline);
        rt.block_on(async {
            let mut c = server.client().await;
            let r = c.delete_documents(req(delete(&last))).await.unwrap();
            let r = r.into_inner();
            assert_eq!(r.deleted + r.not_found.len() as u64, last.len() as u64);
            assert_eq!(r.not_found.len(), durable, "{r:?}");
        });
        deleted.extend(last.iter().copied());
        live = n - deleted.len();
    }
    assert!(
        mid_compaction > 0,
        "no SIGKILL landed during a compaction (every rebuild had finished)"
    );
    rt.block_on(async {
        let mut c = server.client().await;
        let list = c
            .list_collections(req(pb::ListCollectionsRequest {}))
            .await
            .unwrap()
            .into_inner();
        let col = list.collections.iter().find(|c| c.name == name).unwrap();
        assert_eq!(col.documents, live as u64, "{col:?}");
        for &i in deleted.iter().step_by(5) {
            let hits = search_docs(&mut c, name, &keyword(i), pb::SearchMode::Bm25, 10).await;
            assert!(hits.is_empty(), "deleted {} is found: {hits:?}", doc_id(i));
        }
        for i in (0..n).filter(|i| !deleted.contains(i)).step_by(41) {
            assert_served(&mut c, name, i).await;
        }
    });
    server.kill9();
    let want = |i: usize| {
        if deleted.contains(&i) {
            Want::Absent
        } else {
            Want::Present
        }
    };
    let found = inspect(&spec.data, &scratch, name, 0..n, want, None);
    assert_eq!(found.present.len(), live);
    let s_sent = streamed.sent.load(Ordering::SeqCst) as usize;
    let present = |_| Want::Present;
    inspect(&spec.data, &scratch, STREAM, n..s_sent, present, None);
    println!(
        "crash: {mid_compaction} of {} kills landed during a compaction; done in {:.0} s; \
         final {} documents, chunks sled = tantivy = HNSW = {}",
        COMPACTION_KILL_DELAYS_MS.len(),
        started.elapsed().as_secs_f64(),
        found.stats.documents,
        found.stats.meta_chunks
    );
}

// ---- load ----

/// The `p` (0–1) percentile of sorted durations, in ms (ragd's nearest-rank percentile).
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let ms: Vec<f64> = sorted.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ragd::eval::metrics::percentile(&ms, p * 100.0)
}

fn ask_req(question: &str, max_tokens: u32) -> pb::AskRequest {
    pb::AskRequest {
        collection: "kb".into(),
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

/// Version `v` of document `i` as the churn writer of the load test re-ingests it.
fn revised_text(i: usize, v: u64) -> String {
    format!("{} Revision {v} of {}.", doc_text(i), keyword(i))
}

/// Whether `text`, a hit of document `id`, is a version of it: the corpus text or a revision
/// (or a part of one, should a chunker split it).
fn is_version_of(id: &str, text: &str) -> bool {
    let Some(i) = id.strip_prefix('d').and_then(|n| n.parse::<usize>().ok()) else {
        return false;
    };
    let base = doc_text(i);
    if base.contains(text) {
        return true;
    }
    let Some(rev) = text
        .find(" Revision ")
        .and_then(|at| text[at + 10..].split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return false;
    };
    revised_text(i, rev).contains(text)
}

/// What the churn writer of the load test did.
#[derive(Default)]
struct Churn {
    reingested: u64,
    deleted: u64,
    errors: Vec<String>,
}

/// Until `stop_at`: re-ingests a changed version of one of documents `0..n` of `collection`
/// (deleted ones come back), then deletes another, one call at a time.
async fn churn(
    addr: String,
    collection: &'static str,
    n: usize,
    stop_at: tokio::time::Instant,
) -> Churn {
    let mut out = Churn::default();
    let mut c = RagClient::connect(format!("http://{addr}")).await.unwrap();
    let mut r = Mix(0xc4u64);
    let mut version = 0u64;
    while tokio::time::Instant::now() < stop_at {
        version += 1;
        let i = (r.next() % n as u64) as usize;
        let message = pb::IngestDocumentsRequest {
            collection: collection.into(),
            chunker: String::new(),
            documents: vec![pb::DocumentInput {
                id: doc_id(i),
                title: String::new(),
                text: revised_text(i, version),
                metadata: Default::default(),
            }],
        };
        match c.ingest_documents(req(tokio_stream::iter([message]))).await {
            Ok(_) => out.reingested += 1,
            Err(s) => out
                .errors
                .push(format!("ingest: {:?}: {}", s.code(), s.message())),
        }
        let j = (r.next() % n as u64) as usize;
        let delete = pb::DeleteDocumentsRequest {
            collection: collection.into(),
            ids: vec![doc_id(j)],
        };
        match c.delete_documents(req(delete)).await {
            Ok(d) => out.deleted += d.into_inner().deleted,
            Err(s) => out
                .errors
                .push(format!("delete: {:?}: {}", s.code(), s.message())),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

#[test]
fn load_16_searchers_during_bulk_ingest_and_ask_overload() {
    let _serial = serial();
    let secs: u64 = std::env::var("RAGD_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    const CLIENTS: usize = 16;
    const BURST: usize = 200;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    // More documents than the job can ingest in the window, so it runs throughout.
    let docs = (secs as usize * 1000).max(5000);
    let corpus = dir.path().join("corpus").join("docs.jsonl");
    write_corpus(&corpus, docs);
    let kb = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb");
    let spec = Spec::new(
        dir.path(),
        "[generator]\nconcurrency = 1\nqueue = 1\n",
        vec![corpus.parent().unwrap().to_path_buf(), kb.clone()],
    );
    let deadline = Instant::now() + Duration::from_secs(secs + 300);
    let server = spec.start(deadline);
    let (rss_start, _) = server.memory_kib();
    let mut c = rt.block_on(server.client());
    let start_job = |c: &mut RagClient<Channel>, collection: &str, path: &Path| {
        let r = pb::StartIngestJobRequest {
            collection: collection.into(),
            paths: vec![path.display().to_string()],
            chunker: String::new(),
            sync: false,
        };
        rt.block_on(c.start_ingest_job(req(r)))
            .unwrap()
            .into_inner()
    };
    let kb_job = start_job(&mut c, "kb", &kb);
    let end = rt.block_on(watch_to_end(&mut c, &kb_job.id, None)).unwrap();
    assert_eq!(end.state, pb::JobState::Succeeded as i32, "{end:?}");
    let bulk = start_job(&mut c, "bulk", &corpus);
    let first_batch = loop {
        let job = rt.block_on(get_job(&mut c, &bulk.id));
        let done = job.progress.unwrap().documents_done;
        if done > 0 {
            break done;
        }
        assert!(Instant::now() < deadline, "the bulk job made no progress");
        std::thread::sleep(Duration::from_millis(100));
    };

    // 16 clients, each on its own connection, for `secs` seconds.
    let window = Duration::from_secs(secs);
    let t0 = Instant::now();
    let stop_at = tokio::time::Instant::now() + window;
    let peak_rss = Arc::new(AtomicU64::new(0));
    let pid = server.pid();
    let sampler = {
        let peak = peak_rss.clone();
        rt.spawn(async move {
            while tokio::time::Instant::now() < stop_at {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    let rss = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next()?.parse().ok())
                        .unwrap_or(0);
                    peak.fetch_max(rss, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Meanwhile another client re-ingests changed versions of the first batch's documents and
    // deletes documents among them; a third of the queries aim at those.
    let churned = first_batch as usize;
    let churner = rt.spawn(churn(spec.addr.clone(), "bulk", churned, stop_at));
    let pick = move |r: &mut Mix| {
        let n = if r.next().is_multiple_of(3) {
            churned
        } else {
            docs
        };
        (r.next() % n as u64) as usize
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let addr = spec.addr.clone();
            rt.spawn(async move {
                let mut c = RagClient::connect(format!("http://{addr}")).await.unwrap();
                let mut r = Mix(k as u64 * 7919);
                let mut lat = Vec::new();
                let mut errors = Vec::new();
                let mut foreign = Vec::new();
                let mut asked = 0usize;
                while tokio::time::Instant::now() < stop_at {
                    let i = pick(&mut r);
                    let q = if r.next().is_multiple_of(2) {
                        doc_text(i)
                    } else {
                        format!("which record mentions {}", keyword(i))
                    };
                    // Client 0 asks (one Ask at a time fits the generation limit of one), the
                    // others search.
                    if k == 0 {
                        let mut ask = ask_req(&q, 8);
                        ask.collection = "bulk".into();
                        let outcome = async {
                            let mut stream = c.ask(req(ask)).await?.into_inner();
                            while stream.message().await?.is_some() {}
                            Ok::<_, tonic::Status>(())
                        };
                        match outcome.await {
                            Ok(()) => asked += 1,
                            Err(s) => errors.push(format!("Ask {:?}: {}", s.code(), s.message())),
                        }
                        continue;
                    }
                    let started = Instant::now();
                    let request = search_req("bulk", &q, pb::SearchMode::Hybrid, 10);
                    match c.search(req(request)).await {
                        Ok(found) => {
                            lat.push(started.elapsed());
                            for h in found.into_inner().hits {
                                let chunk = h.chunk.unwrap_or_default();
                                if !is_version_of(&chunk.document_id, &chunk.text) {
                                    foreign
                                        .push(format!("{}: {:?}", chunk.document_id, chunk.text));
                                }
                            }
                        }
                        Err(s) => errors.push(format!("{:?}: {}", s.code(), s.message())),
                    }
                }
                (lat, errors, foreign, asked)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let mut foreign = Vec::new();
    let mut asked = 0;
    for client in clients {
        let (lat, err, wrong, a) = rt.block_on(client).unwrap();
        latencies.extend(lat);
        errors.extend(err);
        foreign.extend(wrong);
        asked += a;
    }
    let churn = rt.block_on(churner).unwrap();
    let wall = t0.elapsed();
    rt.block_on(sampler).unwrap();
    let (_, hwm_load) = server.memory_kib();
    let job = rt.block_on(get_job(&mut c, &bulk.id));
    let ingested = job.progress.as_ref().unwrap().documents_done - first_batch;
    assert_eq!(
        job.state,
        pb::JobState::Running as i32,
        "the bulk job must ingest throughout the window: {job:?}"
    );
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let rps = latencies.len() as f64 / wall.as_secs_f64();

    // Stop the job, then overload the generator: one generation runs, one waits, the rest must
    // be refused at once.
    let cancelled = rt
        .block_on(c.cancel_ingest_job(req(pb::CancelIngestJobRequest {
            id: bulk.id.clone(),
        })))
        .unwrap();
    drop(cancelled);
    let end = rt.block_on(watch_to_end(&mut c, &bulk.id, None)).unwrap();
    assert_eq!(end.state, pb::JobState::Cancelled as i32, "{end:?}");
    let long = "What does the KV cache store, and why does it make decoding faster?";
    let mut held = Vec::new();
    let mut refused = false;
    for _ in 0..8 {
        match rt.block_on(c.ask(req(ask_req(long, 3000)))) {
            Ok(stream) => held.push(stream.into_inner()),
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                refused = true;
                break;
            }
        }
    }
    assert!(
        refused && !held.is_empty(),
        "the generation limit was never reached"
    );
    std::thread::sleep(Duration::from_secs(1));
    let (rss_before, _) = server.memory_kib();
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let addr = spec.addr.clone();
            rt.spawn(async move {
                let mut c = RagClient::connect(format!("http://{addr}")).await.unwrap();
                let mut out = Vec::new();
                let mut accepted = Vec::new();
                for _ in 0..BURST / 8 {
                    let started = Instant::now();
                    match c.ask(req(ask_req(long, 3000))).await {
                        Ok(s) => accepted.push(s.into_inner()),
                        Err(s) => out.push((s.code(), started.elapsed())),
                    }
                }
                (out, accepted)
            })
        })
        .collect();
    let mut refusals = Vec::new();
    let mut other_codes = Vec::new();
    let mut accepted = Vec::new();
    for b in burst {
        let (out, acc) = rt.block_on(b).unwrap();
        for (code, took) in out {
            if code == Code::ResourceExhausted {
                refusals.push(took);
            } else {
                other_codes.push(code);
            }
        }
        accepted.extend(acc);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (rss_after, hwm_end) = server.memory_kib();
    drop(held);
    drop(accepted);
    refusals.sort();
    let gib = |kib: u64| kib as f64 / (1024.0 * 1024.0);
    println!(
        "load: {} Search clients for {:.1} s (hybrid, k=10) while a bulk job ingested \
         {ingested} documents ({:.0}/s): {} requests, {} errors, p50 {p50:.1} ms, \
         p99 {p99:.1} ms, {rps:.1} req/s",
        CLIENTS - 1,
        wall.as_secs_f64(),
        ingested as f64 / wall.as_secs_f64(),
        latencies.len(),
        errors.len(),
    );
    println!(
        "load: meanwhile {} Asks answered and one client re-ingested {} changed documents and \
         deleted {} ({} write errors); {} hits not from a version of their document",
        asked,
        churn.reingested,
        churn.deleted,
        churn.errors.len(),
        foreign.len(),
    );
    println!(
        "load: server RSS {:.2} GiB after start, peak sampled {:.2} GiB, VmHWM {:.2} GiB after \
         the window, {:.2} GiB at the end",
        gib(rss_start),
        gib(peak_rss.load(Ordering::SeqCst)),
        gib(hwm_load),
        gib(hwm_end)
    );
    println!(
        "load: Ask over the limit: {}/{BURST} RESOURCE_EXHAUSTED (p50 {:.1} ms, p99 {:.1} ms, \
         max {:.1} ms), {} accepted when a slot came free; RSS {:.0} MiB before, {:.0} MiB \
         after the burst",
        refusals.len(),
        percentile(&refusals, 0.5),
        percentile(&refusals, 0.99),
        percentile(&refusals, 1.0),
        BURST - refusals.len() - other_codes.len(),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
    );
    assert!(
        errors.is_empty(),
        "{} of {} searches failed, e.g. {:?}",
        errors.len(),
        latencies.len() + errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(
        churn.errors.is_empty(),
        "churn writes failed: {:?}",
        churn.errors
    );
    assert!(
        foreign.is_empty(),
        "{} hits were not a version of their document, e.g. {:?}",
        foreign.len(),
        &foreign[..foreign.len().min(3)]
    );
    assert!(
        asked > 0 && churn.reingested > 0 && churn.deleted > 0,
        "the window saw {asked} Asks, {} re-ingests, {} deletes",
        churn.reingested,
        churn.deleted
    );
    assert!(
        latencies.len() >= CLIENTS,
        "too few searches: {}",
        latencies.len()
    );
    assert!(other_codes.is_empty(), "unexpected codes: {other_codes:?}");
    // Held streams keep both slots busy unless a generation ends by itself; each slot then
    // takes one more request, which the burst holds to its end as well.
    assert!(refusals.len() >= BURST - 10, "{} refused", refusals.len());
    assert!(
        percentile(&refusals, 0.5) < 5_000.0,
        "refusals are not quick: p50 {:.0} ms",
        percentile(&refusals, 0.5)
    );
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over {BURST} refused Asks"
    );
    server.terminate(Duration::from_secs(60));
}
