//! The operator's command line against a live `ragd serve` process: `collections`, `jobs` and
//! `ask --server`, each compared with the same command on the local data folder once the
//! server has stopped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Served {
    pub(crate) dir: tempfile::TempDir,
    config: PathBuf,
    server: Child,
    addr: String,
}

impl Served {
    /// Starts `ragd serve` on a free port, with the examples folder and its own temporary
    /// folder as allowed job roots.
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let config = dir.path().join("ragd.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nallowed_roots = [{:?}, {:?}]\n",
                examples.display().to_string(),
                dir.path().canonicalize().unwrap().display().to_string()
            ),
        )
        .unwrap();
        let port = crate::common::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut served = Self {
            server: Command::new(env!("CARGO_BIN_EXE_ragd"))
                .arg("--config")
                .arg(&config)
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(["serve", "--http-addr", "off", "--addr", &addr])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
            dir,
            config,
            addr: format!("http://{addr}"),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            assert!(served.server.try_wait().unwrap().is_none(), "server exited");
            std::thread::sleep(Duration::from_millis(100));
        }
        served
    }

    /// `ragd ARGS` on the same data folder and configuration.
    pub(crate) fn ragd(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ragd"))
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(args)
            .env_remove("RAGD_SERVER")
            .output()
            .unwrap()
    }

    /// `ragd ARGS --server URL`.
    pub(crate) fn remote(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--server", &self.addr]);
        self.ragd(&all)
    }

    fn stop(&mut self) {
        // SAFETY: sending SIGTERM to a child we spawned and have not yet waited for.
        unsafe {
            libc::kill(self.server.id() as i32, libc::SIGTERM);
        }
        assert!(self.server.wait().unwrap().success(), "graceful shutdown");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub(crate) fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[cfg(unix)]
#[test]
fn collections_jobs_and_ask_against_a_live_server() {
    let mut served = Served::start();
    let kb = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb");
    let kb = kb.to_str().unwrap();

    // Collections: create, list, info.
    let created = json(&served.remote(&["collections", "create", "kb", "--json"]));
    assert_eq!(created["name"], "kb", "{created}");
    assert_eq!(created["documents"], 0, "{created}");
    let again = failed(&served.remote(&["collections", "create", "kb"]));
    assert!(again.contains("kb"), "{again}");

    // A bulk job through the server, then the jobs commands on it.
    ok(&served.remote(&["ingest", "--job", "--collection", "kb", kb]));
    let jobs = json(&served.remote(&["jobs", "list", "--json"]));
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["collection"], "kb", "{job}");
    assert_eq!(job["summary"]["added"], 6, "{job}");
    assert_eq!(job["bytes_done"], job["bytes_total"], "{job}");
    assert_eq!(&json(&served.remote(&["jobs", "get", &id, "--json"])), job);
    let watched = ok(&served.remote(&["jobs", "watch", &id, "--json"]));
    let last: serde_json::Value = serde_json::from_str(watched.lines().last().unwrap()).unwrap();
    assert_eq!(&last, job);
    // Cancelling a finished job changes nothing.
    let cancelled = json(&served.remote(&["jobs", "cancel", &id, "--json"]));
    assert_eq!(&cancelled, job);
    let human = ok(&served.remote(&["jobs", "get", &id]));
    assert!(
        human.contains(&format!("job {id} (succeeded)")) && human.contains("6 added"),
        "{human}"
    );
    let missing = failed(&served.remote(&["jobs", "get", "job-9999999999"]));
    assert!(missing.contains("job-9999999999"), "{missing}");

    let listed = json(&served.remote(&["collections", "list", "--json"]));
    assert_eq!(listed[0]["name"], "kb", "{listed}");
    assert_eq!(listed[0]["documents"], 6, "{listed}");
    let info = ok(&served.remote(&["collections", "info", "kb"]));
    assert!(info.contains("documents  6"), "{info}");

    // Reindex through the server (the same embedder here: a new generation all the same).
    let reindexed = json(&served.remote(&["collections", "reindex", "kb", "--json"]));
    assert_eq!(reindexed["collection"]["documents"], 6, "{reindexed}");
    assert_eq!(reindexed["searches_served"], true, "{reindexed}");
    assert_eq!(
        reindexed["chunks_embedded"], reindexed["collection"]["chunks"],
        "{reindexed}"
    );
    let running_locally = failed(&served.ragd(&["collections", "reindex", "kb"]));
    assert!(running_locally.contains("--server"), "{running_locally}");

    // Ask over gRPC, printed as the local command prints.
    let question = "Which shaft seal fits an XJ-9000 pump built in 2021?";
    // The same question, asked the same way, over gRPC and (below) locally.
    let ask = [
        "ask",
        question,
        "--collection",
        "kb",
        "--json",
        "--max-tokens",
        "48",
        "--temperature",
        "0",
    ];
    let remote_answer = json(&served.remote(&ask));
    assert_eq!(remote_answer["question"], question);
    assert!(
        !remote_answer["answer"].as_str().unwrap().trim().is_empty(),
        "{remote_answer}"
    );
    // Each citation carries its chunk's text (which the local command prints), exactly the
    // span it names.
    let citations = remote_answer["citations"].as_array().unwrap();
    assert!(!citations.is_empty(), "{remote_answer}");
    for c in citations {
        let chars = c["text"].as_str().unwrap().chars().count() as u64;
        let span = c["span_end"].as_u64().unwrap() - c["span_start"].as_u64().unwrap();
        assert_eq!(chars, span, "{c}");
    }
    assert!(
        remote_answer["model"].as_str().unwrap().contains("SmolLM2"),
        "{remote_answer}"
    );
    assert!(remote_answer["timings"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(remote_answer["timings"]["sources_used"].as_u64().unwrap() > 0);
    let streamed = ok(&served.remote(&[
        "ask",
        question,
        "--collection",
        "kb",
        "--stream",
        "--max-tokens",
        "48",
    ]));
    assert!(streamed.contains("Sources:"), "{streamed}");

    // Snapshots through the server: create, list, restore under a new name.
    let mut snap = json(&served.remote(&["snapshot", "create", "kb", "--json"]));
    // Listings do not know how long the export took.
    snap["export_ms"] = 0.0.into();
    assert_eq!(snap["collection"], "kb", "{snap}");
    assert_eq!(snap["documents"], 6, "{snap}");
    let name = snap["name"].as_str().unwrap().to_string();
    let snaps = json(&served.remote(&["snapshot", "list", "--json"]));
    assert_eq!(snaps, serde_json::json!([snap]));
    let restored = json(&served.remote(&[
        "snapshot",
        "restore",
        &name,
        "--collection",
        "kb-copy",
        "--json",
    ]));
    assert_eq!(restored["collection"]["name"], "kb-copy", "{restored}");
    assert_eq!(restored["collection"]["documents"], 6, "{restored}");
    let bad = failed(&served.remote(&["snapshot", "restore", &name, "--collection", "kb"]));
    assert!(bad.contains("already exists"), "{bad}");
    ok(&served.remote(&["collections", "delete", "kb-copy"]));

    // Deleting locally a collection the server holds is refused, naming the way out.
    let refused = failed(&served.ragd(&["collections", "delete", "kb"]));
    assert!(refused.contains("--server"), "{refused}");

    let remote_jobs = ok(&served.remote(&["jobs", "list", "--json"]));
    let remote_list = ok(&served.remote(&["collections", "list", "--json"]));
    served.stop();

    // The same commands on the data folder once the server is gone read the same.
    assert_eq!(ok(&served.ragd(&["jobs", "list", "--json"])), remote_jobs);
    assert_eq!(
        ok(&served.ragd(&["collections", "list", "--json"])),
        remote_list
    );
    let local_answer = json(&served.ragd(&ask));
    let keys = |v: &serde_json::Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<String>>()
    };
    assert_eq!(keys(&local_answer), keys(&remote_answer));
    assert_eq!(
        keys(&local_answer["timings"]),
        keys(&remote_answer["timings"])
    );
    assert_eq!(
        local_answer["timings"]["sources_used"],
        remote_answer["timings"]["sources_used"]
    );
    assert_eq!(
        local_answer["citations"][0]["doc_id"],
        remote_answer["citations"][0]["doc_id"]
    );

    // The snapshot folder read locally lists the same archive, which restores here too.
    assert_eq!(
        json(&served.ragd(&["snapshot", "list", "--json"])),
        serde_json::json!([snap])
    );
    let restored = ok(&served.ragd(&["snapshot", "restore", &name, "--collection", "kb-local"]));
    assert!(restored.contains("6 documents"), "{restored}");
    ok(&served.ragd(&["collections", "delete", "kb-local"]));

    ok(&served.ragd(&["collections", "delete", "kb"]));
    assert_eq!(ok(&served.ragd(&["collections", "list", "--json"])), "[]\n");
    let gone = failed(&served.ragd(&["collections", "info", "kb"]));
    assert!(gone.contains("not found"), "{gone}");
}

/// A job left unfinished in the data folder can be cancelled locally, so no server resumes it.
#[cfg(unix)]
#[test]
fn a_local_cancel_keeps_an_interrupted_job_from_resuming() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    {
        let store = ragd::jobs::store::JobStore::open(&data).unwrap();
        let spec = ragd::jobs::JobSpec {
            collection: "kb".into(),
            paths: vec![PathBuf::from("/nowhere")],
            chunker: ingest::ChunkingStrategy::default(),
            sync: false,
        };
        let mut record = ragd::jobs::JobRecord::new(store.next_id().unwrap(), spec);
        record.state = ragd::jobs::JobState::Running;
        store.save(&record).unwrap();
    }
    let ragd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ragd"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env_remove("RAGD_SERVER")
            .output()
            .unwrap()
    };
    let listed = json(&ragd(&["jobs", "list", "--json"]));
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["state"], "running");
    let watched = ragd(&["jobs", "watch", &id]);
    let note = String::from_utf8_lossy(&watched.stderr).into_owned();
    assert!(
        ok(&watched).contains("(running)") && note.contains("--server"),
        "{note}"
    );
    let cancelled = json(&ragd(&["jobs", "cancel", &id, "--json"]));
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["finished_unix_ms"].as_u64().unwrap() > 0);
    let store = ragd::jobs::store::JobStore::open(&data).unwrap();
    let record = store.get(&id).unwrap().unwrap();
    assert_eq!(record.state, ragd::jobs::JobState::Cancelled);
}

/// A collection records its embedder's fingerprint: searching, asking or ingesting it with an
/// embedder that makes other vectors (here: another precision policy) is refused, naming both.
#[test]
fn a_collection_refuses_another_embedder() {
    let dir = tempfile::tempdir().unwrap();
    let kb = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb");
    let ragd = |precision: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ragd"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("RAGD_EMBEDDER_PRECISION", precision)
            .env_remove("RAGD_SERVER")
            .output()
            .unwrap()
    };
    ok(&ragd(
        "f32",
        &["ingest", "--collection", "kb", kb.to_str().unwrap()],
    ));
    let info = json(&ragd("f32", &["collections", "info", "kb", "--json"]));
    let fingerprint = info["embedder_fingerprint"].as_str().unwrap();
    assert!(
        fingerprint.contains("weights=sha256:") && fingerprint.contains("precision=f32"),
        "{info}"
    );
    let search = ["search", "XJ-9000 seal", "--collection", "kb", "--json"];
    let found = json(&ragd("f32", &search));
    assert_eq!(found["hits"][0]["doc_id"], "parts-catalog.md", "{found}");
    for args in [
        &search[..],
        &["ingest", "--collection", "kb", kb.to_str().unwrap()],
    ] {
        let refused = failed(&ragd("q8", args));
        assert!(
            refused.contains("precision=f32")
                && refused.contains("precision=q8")
                && refused.contains("ragd collections reindex kb"),
            "{refused}"
        );
    }
    // Reindexed with the q8 embedder, the collection serves it and refuses the f32 one.
    let reindex = ragd("q8", &["collections", "reindex", "kb"]);
    let report = ok(&reindex);
    assert!(
        report.contains("reindexed collection kb: 6 documents")
            && report.contains("precision=f32")
            && report.contains("precision=q8"),
        "{report}"
    );
    let progress = String::from_utf8_lossy(&reindex.stderr);
    assert!(progress.contains("round 1: copied"), "{progress}");
    let found = json(&ragd("q8", &search));
    assert_eq!(found["hits"][0]["doc_id"], "parts-catalog.md", "{found}");
    let refused = failed(&ragd("f32", &search));
    assert!(refused.contains("precision=q8"), "{refused}");
}
