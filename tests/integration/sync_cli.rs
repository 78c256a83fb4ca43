//! Folder sync from the command line: `ragd ingest DIR --sync` follows creates, edits, renames
//! and deletes (JSONL lines included) and leaves other folders' documents alone;
//! `ragd ingest DIR --watch` does the same as files change; a bulk job with `--sync` does it on
//! a live server.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ops_cli::{json, ok, Served};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn ragd(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ragd"));
    c.arg("--data-dir").arg(data).env_remove("RAGD_SERVER");
    c
}

/// Documents in `collection`, read from the recorded counts (opens nothing, so it works
/// while another process holds the collection).
fn documents(data: &Path, collection: &str) -> u64 {
    let out = ragd(data)
        .args(["collections", "list", "--json"])
        .output()
        .unwrap();
    let list = json(&out);
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == collection)
        .map_or(0, |c| c["documents"].as_u64().unwrap())
}

fn sync(data: &Path, dir: &Path) -> serde_json::Value {
    let out = ragd(data)
        .args(["ingest", "--collection", "kb", "--sync", "--json"])
        .arg(dir)
        .output()
        .unwrap();
    json(&out)
}

fn counts(v: &serde_json::Value) -> [u64; 5] {
    ["added", "updated", "unchanged", "failed", "deleted"].map(|k| v[k].as_u64().unwrap())
}

#[test]
fn sync_follows_creates_edits_renames_and_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dir, other) = (
        tmp.path().join("data"),
        tmp.path().join("docs"),
        tmp.path().join("other"),
    );
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    write(&dir, "a.md", "# Pumps\n\nThe XJ-9000 pump uses seal S-12.");
    write(&dir, "b.md", "# Valves\n\nValve V-3 is checked monthly.");
    write(&dir, "c.txt", "Gasket G-7 fits the old boiler.");
    write(
        &dir,
        "corpus.jsonl",
        "{\"_id\":\"j1\",\"text\":\"Bearing B-1 is greased weekly.\"}\n\
         {\"_id\":\"j2\",\"text\":\"Impeller I-4 is bronze.\"}\n\
         {\"_id\":\"j3\",\"text\":\"Shaft H-9 is stainless.\"}\n",
    );
    write(&other, "x.md", "# Other\n\nA document from another folder.");
    ok(&ragd(&data)
        .args(["ingest", "--collection", "kb"])
        .arg(&other)
        .output()
        .unwrap());
    assert_eq!(counts(&sync(&data, &dir)), [6, 0, 0, 0, 0]);
    // Nothing changed: nothing to do.
    assert_eq!(counts(&sync(&data, &dir)), [0, 0, 6, 0, 0]);

    write(
        &dir,
        "a.md",
        "# Pumps\n\nThe XJ-9000 pump now uses seal S-14.",
    );
    std::fs::remove_file(dir.join("b.md")).unwrap();
    std::fs::rename(dir.join("c.txt"), dir.join("d.txt")).unwrap();
    write(
        &dir,
        "corpus.jsonl",
        "{\"_id\":\"j1\",\"text\":\"Bearing B-1 is greased weekly.\"}\n\
         {\"_id\":\"j3\",\"text\":\"Shaft H-9 is stainless.\"}\n",
    );
    write(&dir, "e.md", "# New\n\nCoupling C-5 joins the shafts.");
    // Added d.txt and e.md, updated a.md, j1 and j3 unchanged; b.md, c.txt and j2 deleted.
    assert_eq!(counts(&sync(&data, &dir)), [2, 1, 2, 0, 3]);
    // 5 from the folder, and the other folder's document untouched.
    assert_eq!(documents(&data, "kb"), 6);
    let found = json(
        &ragd(&data)
            .args(["search", "stainless shaft", "--collection", "kb", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(found["hits"][0]["doc_id"], "j3", "{found}");

    // A JSONL file with an unreadable line keeps all its documents: the sync cannot tell
    // which are gone.
    write(
        &dir,
        "corpus.jsonl",
        "{\"_id\":\"j1\",\"text\":\"Bearing B-1 is greased weekly.\"}\nnot json\n",
    );
    let out = ragd(&data)
        .args(["ingest", "--collection", "kb", "--sync", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a bad line fails the command");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["deleted"], 0, "{s}");
    assert_eq!(documents(&data, "kb"), 6);
}

/// Lines a child prints on stdout, as they come.
fn lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits until `data`'s `kb` holds `expected` documents.
fn wait_for(data: &Path, expected: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = documents(data, "kb");
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {now} documents, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(unix)]
#[test]
fn watch_keeps_a_collection_in_step_with_its_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dir) = (tmp.path().join("data"), tmp.path().join("docs"));
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir, "a.md", "# Pumps\n\nThe XJ-9000 pump uses seal S-12.");
    write(&dir, "b.md", "# Valves\n\nValve V-3 is checked monthly.");
    let mut child = ragd(&data)
        .args([
            "ingest",
            "--collection",
            "kb",
            "--watch",
            "--debounce-ms",
            "200",
            "--json",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = lines(&mut child);
    let first: serde_json::Value =
        serde_json::from_str(&out.recv_timeout(Duration::from_secs(120)).unwrap()).unwrap();
    assert_eq!(first["added"], 2, "{first}");

    write(&dir, "c.md", "# Seals\n\nSeal S-12 is made of viton.");
    wait_for(&data, 3, "after a create");
    std::fs::remove_file(dir.join("a.md")).unwrap();
    wait_for(&data, 2, "after a delete");
    // The delete's pass prints its line right after its commit: let it, then forget the lines
    // so far.
    std::thread::sleep(Duration::from_secs(1));
    while out.try_recv().is_ok() {}
    std::fs::rename(dir.join("b.md"), dir.join("valves.md")).unwrap();
    // A rename: the old document goes and the new one comes; wait for the sync that did it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut added, mut deleted) = (0, 0);
    while (added, deleted) != (1, 1) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = out.recv_timeout(left).expect("a sync after the rename");
        let s: serde_json::Value = serde_json::from_str(&line).unwrap();
        added += s["added"].as_u64().unwrap();
        deleted += s["deleted"].as_u64().unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    let found = json(
        &ragd(&data)
            .args([
                "search",
                "valve checked monthly",
                "--collection",
                "kb",
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(found["hits"][0]["doc_id"], "valves.md", "{found}");
    assert_eq!(documents(&data, "kb"), 2);
}

#[cfg(unix)]
#[test]
fn a_sync_job_on_a_live_server_deletes_what_is_gone() {
    let served = Served::start();
    let dir = served.dir.path().canonicalize().unwrap().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        ("one.md", "# One\n\nPump P-1 is blue."),
        ("two.md", "# Two\n\nPump P-2 is red."),
        ("three.md", "# Three\n\nPump P-3 is green."),
    ] {
        write(&dir, name, text);
    }
    let dir = dir.to_str().unwrap();
    let run = || {
        let out = served.remote(&[
            "ingest",
            "--job",
            "--sync",
            "--collection",
            "kb",
            "--json",
            dir,
        ]);
        json(&out)
    };
    assert_eq!(counts(&run()), [3, 0, 0, 0, 0]);
    std::fs::remove_file(Path::new(dir).join("two.md")).unwrap();
    assert_eq!(counts(&run()), [0, 0, 2, 0, 1]);
    let jobs = json(&served.remote(&["jobs", "list", "--json"]));
    assert_eq!(jobs[0]["summary"]["deleted"], 1, "{jobs}");
    let refused = served.remote(&["ingest", "--sync", "--collection", "kb", dir]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--job"));
}
