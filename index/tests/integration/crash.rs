//! Crash safety: a child process (this test binary, re-executed with `RAGD_CRASH_DIR` set)
//! bulk-loads a collection, printing each acknowledged write; the parent SIGKILLs it after a
//! delay from a fixed list, reopens the collection and checks that the three stores agree and
//! that every acknowledged document is found by both BM25 and dense search.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ragd_index::testing::{doc, marker};
use ragd_index::Filter;

use crate::{create, reopen, DIM};

const ENV: &str = "RAGD_CRASH_DIR";
/// Kill delays (ms); the last one usually lets the child finish.
const DELAYS_MS: [u64; 5] = [150, 400, 700, 1100, 1600];
const BATCHES: usize = 60;
const BATCH: usize = 10;

/// Doc ids `d<n>`: multiples of 7 are deleted later, others may get a second version.
fn batch(b: usize) -> Vec<ragd_index::DocumentRecord> {
    let mut docs: Vec<_> = (0..BATCH)
        .map(|i| doc(&format!("d{}", b * BATCH + i), 1, 3, DIM))
        .collect();
    if b > 0 {
        let old = (b - 1) * BATCH + 1;
        docs.push(doc(&format!("d{old}"), 2, 2, DIM));
    }
    docs
}

/// The child's bulk load (runs only when `RAGD_CRASH_DIR` is set).
#[test]
fn crash_child_bulk_load() {
    let Ok(dir) = std::env::var(ENV) else {
        return;
    };
    let c = create(Path::new(&dir), "bulk");
    let w = c.writer();
    for b in 0..BATCHES {
        let docs = batch(b);
        let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
        w.upsert_documents(docs).unwrap();
        println!("ACK {}", ids.join(" "));
        if b % 4 == 3 {
            let victim = format!("d{}", (b - 3) * BATCH / 7 * 7);
            // A kill between the two lines leaves the delete in flight: either outcome is right.
            println!("DELETING {victim}");
            w.delete_document(&victim).unwrap();
            println!("DEL {victim}");
        }
        if b % 3 == 2 {
            w.commit().unwrap();
        }
        if b % 10 == 9 {
            w.checkpoint().unwrap();
        }
    }
    println!("DONE");
}

fn run_child(dir: &Path, delay: Duration) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash::crash_child_bulk_load",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    reader.join().unwrap()
}

fn check(dir: &Path, lines: &[String]) {
    let mut live = std::collections::BTreeSet::new();
    let mut deleting = None;
    for line in lines {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("ACK") => live.extend(words.map(str::to_owned)),
            Some("DELETING") => deleting = words.next().map(str::to_owned),
            Some("DEL") => {
                for w in words {
                    live.remove(w);
                }
                deleting = None;
            }
            _ => {}
        }
    }
    // A delete the kill interrupted may or may not have landed; nothing else is in doubt.
    if let Some(id) = deleting {
        live.remove(&id);
    }
    if !dir.join("bulk/manifest.json").exists() {
        assert!(live.is_empty());
        return;
    }
    let c = reopen(dir, "bulk");
    let s = c.reader().searcher();
    let st = s.stats().unwrap();
    assert_eq!(st.meta_chunks, st.bm25_chunks, "{st:?}");
    assert_eq!(st.meta_chunks, st.dense_chunks, "{st:?}");
    for id in &live {
        let info = s
            .get_document(id)
            .unwrap()
            .unwrap_or_else(|| panic!("acked {id} lost"));
        let version: u32 = info
            .content_hash
            .rsplit("-v")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let rec = doc(id, version, info.chunk_ids.len(), DIM);
        for (i, chunk) in info.chunk_ids.iter().enumerate() {
            let bm25 = s
                .search_bm25(&marker(id, i), 3, &Filter::default())
                .unwrap();
            assert_eq!(
                bm25.first().map(|h| h.id),
                Some(*chunk),
                "bm25 misses {id}/{i}"
            );
            let dense = s
                .search_dense(&rec.chunks[i].vector, 3, &Filter::default())
                .unwrap();
            assert_eq!(
                dense.first().map(|h| h.id),
                Some(*chunk),
                "dense misses {id}/{i}"
            );
        }
    }
    // The recovered writer keeps working.
    let w = c.writer();
    w.upsert_document(doc("after-crash", 1, 2, DIM)).unwrap();
    w.commit().unwrap();
    let st = c.reader().searcher().stats().unwrap();
    assert_eq!(
        (st.meta_chunks, st.bm25_chunks),
        (st.dense_chunks, st.dense_chunks)
    );
}

#[test]
fn killed_bulk_load_reopens_consistent() {
    if std::env::var(ENV).is_ok() {
        return;
    }
    for delay in DELAYS_MS {
        let dir = tempfile::tempdir().unwrap();
        let lines = run_child(dir.path(), Duration::from_millis(delay));
        let acked = lines.iter().filter(|l| l.starts_with("ACK")).count();
        eprintln!(
            "kill after {delay} ms: {acked} batches acknowledged, done={}",
            lines.iter().any(|l| l == "DONE")
        );
        check(dir.path(), &lines);
    }
}
