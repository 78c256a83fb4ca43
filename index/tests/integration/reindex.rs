//! Reindex: a collection re-embedded into a new generation while writes and searches go on
//! holds every acknowledged write, fails no search, and a crash at any point leaves either the
//! source or the complete new generation under the name.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ragd_index::testing::{doc, marker, test_config, unit};
use ragd_index::{Collection, Filter, IndexError, Reembed, ReindexProgress, ReindexTarget, Store};

use crate::DIM;

/// A vector made from a chunk's text alone, as an embedder would make it.
fn text_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; DIM];
    for (i, b) in text.bytes().enumerate() {
        v[(i * 7 + usize::from(b)) % DIM] += f32::from(b % 13) + 1.0;
    }
    unit(v)
}

fn target() -> ReindexTarget {
    ReindexTarget {
        embedding_model: "new-embedder".into(),
        dimension: DIM,
        embedder_fingerprint: "model=new-embedder dim=16".into(),
    }
}

/// Embeds with [`text_vector`]; calls `during` after each group (to write or search meanwhile).
struct ByText<F: FnMut(&ReindexProgress) -> Result<(), IndexError>> {
    during: F,
}

impl<F: FnMut(&ReindexProgress) -> Result<(), IndexError>> Reembed for ByText<F> {
    type Error = IndexError;

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError> {
        Ok(texts.iter().map(|t| text_vector(t)).collect())
    }

    fn indexed_with(&self, source: &str) -> String {
        format!("reindexed from [{source}]")
    }

    fn progress(&mut self, progress: &ReindexProgress) -> Result<(), IndexError> {
        (self.during)(progress)
    }
}

fn by_text() -> ByText<impl FnMut(&ReindexProgress) -> Result<(), IndexError>> {
    ByText { during: |_| Ok(()) }
}

/// A collection `src` of `n` documents of two chunks each.
fn source(root: &Path, n: usize) -> Arc<Store> {
    let store = Arc::new(Store::open(root).unwrap());
    let c = store.create_collection(test_config("src", DIM)).unwrap();
    let docs = (0..n).map(|i| doc(&format!("d{i}"), 1, 2, DIM)).collect();
    c.writer().upsert_documents(docs).unwrap();
    c.writer().commit().unwrap();
    store
}

/// The documents of a collection: id → content hash.
fn documents(c: &Collection) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    c.reader()
        .for_each_document(|d| {
            out.insert(d.id, d.content_hash);
        })
        .unwrap();
    out
}

fn refused<T>(r: Result<T, IndexError>) -> IndexError {
    match r {
        Ok(_) => panic!("must be refused"),
        Err(e) => e,
    }
}

/// Folders of the store's root that are not collections.
fn leftovers(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn a_reindex_under_writes_and_searches_holds_every_write_and_fails_no_search() {
    let dir = tempfile::tempdir().unwrap();
    let store = source(dir.path(), 300);
    let stop = Arc::new(AtomicBool::new(false));
    // What the writes acknowledged: id → content hash, `None` once deleted.
    let written: Arc<Mutex<BTreeMap<String, Option<String>>>> = Arc::default();
    let landed = Arc::new(AtomicUsize::new(0));
    // What the writer is doing now, for the message of a test that would otherwise hang.
    let doing = Arc::new(Mutex::new(String::from("starting")));
    let writer = {
        let (store, stop, written, landed, doing) = (
            store.clone(),
            stop.clone(),
            written.clone(),
            landed.clone(),
            doing.clone(),
        );
        std::thread::spawn(move || {
            let mut i = 0u32;
            let mut retried = 0;
            while !stop.load(Ordering::SeqCst) {
                // New documents, new versions of old ones, and deletions.
                let (id, version) = match i % 3 {
                    0 => (format!("n{i}"), 1),
                    1 => (format!("d{}", 1 + i % 250), 2 + i),
                    _ => (format!("d{}", 1 + (i * 7) % 250), 0),
                };
                *doing.lock() = format!("opening src for {id}");
                let c = store.collection("src").unwrap();
                let w = c.writer();
                *doing.lock() = format!("writing {id} v{version} (retried {retried})");
                let result = if version == 0 {
                    w.delete_document(&id).map(|_| None)
                } else {
                    let d = doc(&id, version, 2, DIM);
                    let hash = d.content_hash.clone();
                    w.upsert_document(d).map(|_| Some(hash))
                };
                match result {
                    Ok(state) => {
                        written.lock().insert(id, state);
                        landed.fetch_add(1, Ordering::SeqCst);
                        if i.is_multiple_of(5) {
                            *doing.lock() = format!("committing after write {i}");
                            match w.commit() {
                                // The switch came between the write and its commit: the write
                                // was copied across, and the new generation opened with it.
                                Ok(_) | Err(IndexError::Reindexed { .. }) => {}
                                Err(e) => panic!("commit after write {i}: {e}"),
                            }
                        }
                        i += 1;
                    }
                    // The write waited through the switch: retry it on the new generation.
                    Err(IndexError::Reindexed { .. }) => retried += 1,
                    Err(e) => panic!("write {id}: {e}"),
                }
            }
            *doing.lock() = "the last commit".into();
            store.collection("src").unwrap().writer().commit().unwrap();
            *doing.lock() = "done".into();
            (i, retried)
        })
    };
    let searches = Arc::new(AtomicUsize::new(0));
    let searcher = {
        let (store, stop, searches) = (store.clone(), stop.clone(), searches.clone());
        std::thread::spawn(move || {
            let query = doc("d0", 1, 1, DIM).chunks[0].vector.clone();
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let s = store.collection("src").unwrap().reader().searcher();
                let bm25 = s.search_bm25(&marker("d0", 0), 3, &Filter::default());
                let dense = s.search_dense(&query, 3, &Filter::default());
                match (bm25, dense) {
                    (Ok(b), Ok(d)) if !b.is_empty() && !d.is_empty() => {
                        let got = s.get_chunks(&[b[0].id]).unwrap();
                        if got[0].as_ref().map(|c| c.doc_id.as_str()) != Some("d0") {
                            failures.push(format!("bm25 top hit {got:?}"));
                        }
                    }
                    other => failures.push(format!("{other:?}")),
                }
                searches.fetch_add(1, Ordering::SeqCst);
            }
            failures
        })
    };
    let stuck = |what: &str| {
        format!(
            "{what}: {} writes landed, {} searches ran, the writer is {}",
            landed.load(Ordering::SeqCst),
            searches.load(Ordering::SeqCst),
            doing.lock()
        )
    };
    // The reindex runs on a thread of its own, so that a hang fails this test with what each
    // thread was doing instead of holding up the whole run.
    let reindexed = {
        let store = store.clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Slow the copy down a little so that writes land in every round.
            let mut reembed = ByText {
                during: |_: &ReindexProgress| {
                    std::thread::sleep(Duration::from_millis(2));
                    Ok(())
                },
            };
            let _ = sender.send(store.reindex("src", &target(), &mut reembed));
        });
        receiver
    };
    let (collection, report) = match reindexed.recv_timeout(Duration::from_secs(300)) {
        Ok(result) => result.unwrap(),
        Err(RecvTimeoutError::Timeout) => panic!("{}", stuck("no reindex after 300 s")),
        Err(RecvTimeoutError::Disconnected) => panic!("{}", stuck("the reindex panicked")),
    };
    // Writes and searches go on against the new generation for a moment (and, on a loaded
    // machine where the copy outran the writer, until more than 30 writes have landed).
    // The wait is bounded, and ends at once if either thread has stopped (a panic in
    // it surfaces at the join below instead of leaving this loop spinning forever).
    let after = searches.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(120);
    while (searches.load(Ordering::SeqCst) < after + 20 || landed.load(Ordering::SeqCst) <= 30)
        && !writer.is_finished()
        && !searcher.is_finished()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(writer.is_finished() && searcher.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "{}",
            stuck("the writer or the searcher did not stop in 120 s")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (writes, retried) = writer.join().unwrap();
    let failures = searcher.join().unwrap();
    assert!(failures.is_empty(), "failed searches: {failures:?}");
    let searched = searches.load(Ordering::SeqCst);
    assert!(searched > 20, "only {searched} searches ran ({report:?})");
    assert!(
        writes > 30,
        "only {writes} writes landed, {retried} retried after the switch ({report:?})"
    );
    assert!(report.rounds >= 2, "{report:?}");
    eprintln!("{writes} writes ({retried} retried after the switch), {report:?}");

    // Every acknowledged write is in the new generation, and nothing else.
    let mut expected: BTreeMap<String, String> = (0..300)
        .map(|i| (format!("d{i}"), format!("d{i}-v1")))
        .collect();
    for (id, state) in written.lock().iter() {
        match state {
            Some(hash) => expected.insert(id.clone(), hash.clone()),
            None => expected.remove(id),
        };
    }
    let now = store.collection("src").unwrap();
    assert!(Arc::ptr_eq(&now, &collection));
    assert_eq!(documents(&now), expected);
    assert_eq!(
        now.config().embedder_fingerprint,
        target().embedder_fingerprint
    );
    assert_eq!(now.config().embedding_model, "new-embedder");

    // What the reindex copied carries vectors made from its stored text.
    let s = now.reader().searcher();
    let mut copied = 0;
    now.reader()
        .for_each_document(|d| {
            if !d.indexed_with.starts_with("reindexed from") {
                // Written to the new generation after the switch.
                assert!(
                    written.lock().contains_key(&d.id),
                    "{} was not copied",
                    d.id
                );
                return;
            }
            copied += 1;
            for (id, chunk) in d.chunk_ids.iter().zip(s.get_chunks(&d.chunk_ids).unwrap()) {
                let chunk = chunk.unwrap();
                // Compared by direction: the store keeps vectors at its own scale.
                let stored = unit(s.get_vector(*id).unwrap().unwrap());
                let cosine: f32 = stored
                    .iter()
                    .zip(text_vector(&chunk.text))
                    .map(|(a, b)| a * b)
                    .sum();
                assert!(cosine > 0.9999, "{}: cosine {cosine}", chunk.text);
            }
        })
        .unwrap();
    assert!(copied > 250, "{copied}");

    // The replaced generation's folder went with its last search; a reopen finds the new one.
    drop((s, now, collection));
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let reopened = store.collection("src").unwrap();
    assert_eq!(documents(&reopened), expected);
    assert_eq!(reopened.config().embedding_model, "new-embedder");
}

#[test]
fn a_write_waiting_on_the_replaced_generation_is_told_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let store = source(dir.path(), 20);
    let old = store.collection("src").unwrap().writer();
    store.reindex("src", &target(), &mut by_text()).unwrap();
    let err = old.upsert_document(doc("late", 1, 1, DIM)).unwrap_err();
    assert!(matches!(err, IndexError::Reindexed { .. }), "{err}");
    assert!(err.to_string().contains("retry"), "{err}");
    // The retry on the collection the name holds now lands.
    let now = store.collection("src").unwrap();
    now.writer()
        .upsert_document(doc("late", 1, 1, DIM))
        .unwrap();
    assert_eq!(now.counts().unwrap().documents, 21);
}

#[test]
fn a_second_reindex_of_the_same_collection_is_refused_and_a_failed_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = source(dir.path(), 600);
    let before = documents(&store.collection("src").unwrap());
    let mut tried = false;
    let inner = store.clone();
    let mut reembed = ByText {
        during: move |_: &ReindexProgress| {
            if !tried {
                tried = true;
                let err = refused(inner.reindex("src", &target(), &mut by_text()));
                assert!(matches!(err, IndexError::ReindexRunning { .. }), "{err}");
            }
            // Then the caller gives up: the reindex stops.
            Err(IndexError::corrupt("test", "stopped by the caller"))
        },
    };
    let err = refused(store.reindex("src", &target(), &mut reembed));
    assert!(err.to_string().contains("stopped by the caller"), "{err}");
    let c = store.collection("src").unwrap();
    assert_eq!(c.config().embedding_model, "test-embedder");
    assert_eq!(documents(&c), before);
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    // And the name can be reindexed again.
    drop(c);
    store.reindex("src", &target(), &mut by_text()).unwrap();
    assert_eq!(
        store.collection("src").unwrap().config().embedding_model,
        "new-embedder"
    );
}

/// A build folder as a crash would leave it: a collection `src` with `n` documents, complete
/// (marked) or not.
fn crashed_build(root: &Path, n: usize, complete: bool) {
    let build = root.join(".reindex-src");
    let mut config = test_config("src", DIM);
    config.embedding_model = "new-embedder".into();
    let c = Collection::create(&build, config).unwrap();
    let docs = (0..n).map(|i| doc(&format!("b{i}"), 1, 1, DIM)).collect();
    c.writer().upsert_documents(docs).unwrap();
    c.writer().checkpoint().unwrap();
    drop(c);
    if complete {
        std::fs::write(build.join("reindex.done"), b"complete\n").unwrap();
    }
}

#[test]
fn a_restart_removes_an_unfinished_build_and_finishes_a_complete_one() {
    let dir = tempfile::tempdir().unwrap();
    let before = documents(&source(dir.path(), 10).collection("src").unwrap());

    // Unfinished: the source stays.
    crashed_build(dir.path(), 3, false);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(documents(&store.collection("src").unwrap()), before);
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    drop(store);

    // Complete, the crash before the switch: the build takes the name.
    crashed_build(dir.path(), 3, true);
    let store = Store::open(dir.path()).unwrap();
    let c = store.collection("src").unwrap();
    assert_eq!(c.config().embedding_model, "new-embedder");
    assert_eq!(documents(&c).len(), 3);
    assert!(!c.dir().join("reindex.done").exists());
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    drop((c, store));

    // Complete, the crash between the two renames: the source is aside, the build takes the
    // name and the source's folder goes.
    crashed_build(dir.path(), 5, true);
    std::fs::rename(dir.path().join("src"), dir.path().join(".replaced-src-1")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(documents(&store.collection("src").unwrap()).len(), 5);
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    drop(store);

    // A switch that failed halfway, the source aside and no build: the source comes back.
    std::fs::rename(dir.path().join("src"), dir.path().join(".replaced-src-2")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(documents(&store.collection("src").unwrap()).len(), 5);
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn a_restart_leaves_alone_a_build_another_handle_holds() {
    let dir = tempfile::tempdir().unwrap();
    drop(source(dir.path(), 4));
    crashed_build(dir.path(), 2, false);
    let held = Collection::open_existing(&dir.path().join(".reindex-src")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(leftovers(dir.path()), vec![".reindex-src".to_string()]);
    assert_eq!(documents(&store.collection("src").unwrap()).len(), 4);
    drop((held, store));
    Store::open(dir.path()).unwrap();
    assert!(leftovers(dir.path()).is_empty());
}
