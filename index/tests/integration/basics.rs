//! Upsert / update / delete semantics, filters, snapshots, manifest checks and the store.

use ragd_index::testing::{doc, marker, test_config};
use ragd_index::{ChunkId, Filter, IndexError, Searcher, Store, UpsertOutcome};

use crate::{create, reopen, DIM};

fn bm25_ids(s: &Searcher, q: &str) -> Vec<ChunkId> {
    s.search_bm25(q, 10, &Filter::default())
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect()
}

#[test]
fn upsert_unchanged_update_delete() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    assert_eq!(
        w.upsert_document(doc("a", 1, 2, DIM)).unwrap(),
        UpsertOutcome::Added
    );
    assert_eq!(
        w.upsert_document(doc("a", 1, 2, DIM)).unwrap(),
        UpsertOutcome::Unchanged
    );
    assert_eq!(w.last_seq(), 1);
    w.commit().unwrap();
    let s1 = c.reader().searcher();
    let old = s1.get_document("a").unwrap().unwrap();
    assert_eq!(bm25_ids(&s1, &marker("a", 1)), vec![old.chunk_ids[1]]);

    assert_eq!(
        w.upsert_document(doc("a", 2, 3, DIM)).unwrap(),
        UpsertOutcome::Updated
    );
    // Not committed yet: a new searcher still sees the old version in both indexes.
    let s2 = c.reader().searcher();
    assert_eq!(s2.stats().unwrap().bm25_chunks, 2);
    assert_eq!(s2.stats().unwrap().dense_chunks, 2);
    let new_vec = doc("a", 2, 3, DIM).chunks[2].vector.clone();
    let dense = s2.search_dense(&new_vec, 10, &Filter::default()).unwrap();
    assert!(dense.iter().all(|h| old.chunk_ids.contains(&h.id)));
    w.commit().unwrap();
    let s3 = c.reader().searcher();
    let new = s3.get_document("a").unwrap().unwrap();
    assert_eq!(new.chunk_ids.len(), 3);
    assert_eq!(bm25_ids(&s3, &marker("a", 2)), vec![new.chunk_ids[2]]);
    let dense = s3.search_dense(&new_vec, 1, &Filter::default()).unwrap();
    assert_eq!(dense[0].id, new.chunk_ids[2]);
    assert!((dense[0].score - 1.0).abs() < 1e-3, "{}", dense[0].score);
    let st = s3.stats().unwrap();
    assert_eq!((st.meta_chunks, st.bm25_chunks, st.dense_chunks), (3, 3, 3));
    // The old snapshot is unaffected.
    assert_eq!(s1.stats().unwrap().bm25_chunks, 2);

    assert!(w.delete_document("a").unwrap());
    assert!(!w.delete_document("a").unwrap());
    w.commit().unwrap();
    let s4 = c.reader().searcher();
    assert!(s4.get_document("a").unwrap().is_none());
    assert!(bm25_ids(&s4, &marker("a", 2)).is_empty());
    assert!(s4
        .search_dense(&new_vec, 5, &Filter::default())
        .unwrap()
        .is_empty());
    assert_eq!(
        s4.get_chunks(&new.chunk_ids).unwrap(),
        vec![None, None, None]
    );
}

#[test]
fn a_snapshot_reads_the_chunk_records_it_was_published_with() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    w.upsert_document(doc("a", 1, 2, DIM)).unwrap();
    w.upsert_document(doc("b", 1, 2, DIM)).unwrap();
    w.commit().unwrap();
    let old = c.reader().searcher();
    let a1 = old.get_document("a").unwrap().unwrap().chunk_ids;
    let b1 = old.get_document("b").unwrap().unwrap().chunk_ids;

    // Replace "a" (new title and text) and delete "b", then publish.
    let mut a2 = doc("a", 2, 2, DIM);
    a2.title = "renamed".into();
    w.upsert_document(a2).unwrap();
    w.delete_document("b").unwrap();
    w.commit().unwrap();

    // The old snapshot still returns the old ids, and reads them as they were.
    let hits = bm25_ids(&old, &marker("b", 1));
    assert_eq!(hits, vec![b1[1]]);
    let records = old.get_chunks(&[a1[0], b1[1]]).unwrap();
    let a = records[0]
        .as_ref()
        .expect("replaced chunk readable from its snapshot");
    assert_eq!((a.title.as_str(), a.doc_id.as_str()), ("title of a", "a"));
    assert!(a.text.contains("version 1"), "{}", a.text);
    let b = records[1]
        .as_ref()
        .expect("deleted chunk readable from its snapshot");
    assert_eq!(b.text, doc("b", 1, 2, DIM).chunks[1].text);
    assert_eq!(b.metadata.get("parity").map(String::as_str), Some("1"));
    // Filtered dense search reads vectors of this snapshot too.
    let v = doc("b", 1, 2, DIM).chunks[1].vector.clone();
    let filter = Filter::default().eq("parity", "1");
    let exact = old.search_dense(&v, 1, &filter).unwrap();
    assert_eq!(exact[0].id, b1[1]);

    // A newer snapshot never held them.
    let new = c.reader().searcher();
    assert_eq!(new.get_chunks(&[a1[0], b1[1]]).unwrap(), vec![None, None]);
    assert_eq!(new.stats().unwrap().retired_chunks, 4);

    // Kept while the old snapshot is held, purged at the first commit after it is dropped.
    w.commit().unwrap();
    assert_eq!(new.stats().unwrap().retired_chunks, 4);
    drop(old);
    w.commit().unwrap();
    assert_eq!(new.stats().unwrap().retired_chunks, 0);
}

#[test]
fn retired_records_do_not_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    w.upsert_document(doc("a", 1, 3, DIM)).unwrap();
    w.commit().unwrap();
    let held = c.reader().searcher();
    w.delete_document("a").unwrap();
    w.commit().unwrap();
    assert_eq!(held.stats().unwrap().retired_chunks, 3);
    drop((held, w, c));
    let c = reopen(dir.path(), "c");
    let st = c.reader().searcher().stats().unwrap();
    assert_eq!((st.retired_chunks, st.meta_chunks, st.documents), (0, 0, 0));
}

#[test]
fn chunk_records_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    let docs: Vec<_> = ["a", "bb", "ccc", "dddd"]
        .iter()
        .map(|id| doc(id, 1, 2, DIM))
        .collect();
    w.upsert_documents(docs).unwrap();
    w.commit().unwrap();
    let s = c.reader().searcher();
    let info = s.get_document("bb").unwrap().unwrap();
    let rec = s.get_chunks(&info.chunk_ids).unwrap();
    let r1 = rec[1].as_ref().unwrap();
    assert_eq!(
        (r1.doc_id.as_str(), r1.ordinal, r1.title.as_str()),
        ("bb", 1, "title of bb")
    );
    assert!(r1.text.contains(&marker("bb", 1)));
    assert_eq!(r1.metadata.get("parity").map(String::as_str), Some("0"));

    // "chunk" is in every chunk; the filter keeps only even-length ids.
    let even = Filter::default().eq("parity", "0");
    let hits = s.search_bm25("chunk", 100, &even).unwrap();
    assert_eq!(hits.len(), 4);
    let recs = s
        .get_chunks(&hits.iter().map(|h| h.id).collect::<Vec<_>>())
        .unwrap();
    assert!(recs
        .iter()
        .all(|r| r.as_ref().unwrap().doc_id.len() % 2 == 0));
    let q = doc("a", 1, 2, DIM).chunks[0].vector.clone();
    let dense = s.search_dense(&q, 3, &even).unwrap();
    assert_eq!(dense.len(), 3);
    let none = Filter::default().eq("parity", "7");
    assert!(s.search_dense(&q, 3, &none).unwrap().is_empty());
    assert!(s.search_bm25("chunk", 3, &none).unwrap().is_empty());
}

#[test]
fn manifest_mismatch_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = create(dir.path(), "c");
        c.writer().upsert_document(doc("a", 1, 1, DIM)).unwrap();
    } // dropped without commit: reopen must replay
    let mut other = test_config("c", DIM + 1);
    let err = ragd_index::Collection::open(&dir.path().join("c"), other.clone())
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            IndexError::ManifestMismatch {
                field: "dimension",
                ..
            }
        ),
        "{err}"
    );
    other.dimension = DIM;
    other.embedding_model = "another-model".into();
    let err = ragd_index::Collection::open(&dir.path().join("c"), other)
        .err()
        .unwrap();
    assert!(matches!(
        err,
        IndexError::ManifestMismatch {
            field: "embedding_model",
            ..
        }
    ));
    let c = reopen(dir.path(), "c");
    let st = c.reader().searcher().stats().unwrap();
    assert_eq!(
        (
            st.documents,
            st.meta_chunks,
            st.bm25_chunks,
            st.dense_chunks
        ),
        (1, 1, 1, 1)
    );
}

/// `bm25.title_in_text` is on for new collections and read from the manifest on open: a
/// collection whose manifest predates the setting keeps the old layout (title in its own field
/// only), whatever the opener asks for, so its chunks stay scored the way they were indexed.
#[test]
fn title_in_text_is_a_stored_setting() {
    let dir = tempfile::tempdir().unwrap();
    let title_score = |c: &ragd_index::Collection| {
        let hits = c
            .reader()
            .searcher()
            .search_bm25("title", 1, &Filter::default())
            .unwrap();
        hits[0].score
    };
    let add = |c: &ragd_index::Collection| {
        c.writer().upsert_document(doc("a", 1, 1, DIM)).unwrap();
        c.writer().commit().unwrap();
    };
    let new = create(dir.path(), "new");
    assert!(new.config().bm25.title_in_text);
    add(&new);

    // An old collection: its manifest has no `title_in_text` field.
    drop(create(dir.path(), "old"));
    let manifest = dir.path().join("old/manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    json["bm25"]
        .as_object_mut()
        .unwrap()
        .remove("title_in_text");
    std::fs::write(&manifest, serde_json::to_vec(&json).unwrap()).unwrap();
    let old = reopen(dir.path(), "old");
    assert!(!old.config().bm25.title_in_text, "read from the manifest");
    add(&old);

    // "title" occurs in the document's title only (chunk text: "chunk 0 about ..."). With the
    // title in the text field it scores there too (weight 1 + 0.1 on the title field) against
    // 0.4 on the title field alone: about 2.75 times as much, the same idf and tf factors.
    let (with, without) = (title_score(&new), title_score(&old));
    assert!(with > 2.0 * without, "{with} vs {without}");
    drop(new);
    assert!(reopen(dir.path(), "new").config().bm25.title_in_text);
}

#[test]
fn store_collections() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store.create_collection(test_config("alpha", DIM)).unwrap();
    store.create_collection(test_config("beta", DIM)).unwrap();
    assert!(matches!(
        store
            .create_collection(test_config("beta", DIM))
            .err()
            .unwrap(),
        IndexError::CollectionExists { .. }
    ));
    assert!(matches!(
        store
            .create_collection(test_config("../x", DIM))
            .err()
            .unwrap(),
        IndexError::InvalidCollectionName { .. }
    ));
    assert_eq!(store.list().unwrap(), vec!["alpha", "beta"]);
    let w = a.writer();
    w.upsert_document(doc("d", 1, 1, DIM)).unwrap();
    w.commit().unwrap();
    // A write in progress (a writer clone held) holds the deletion up.
    assert!(matches!(
        store.delete_collection("alpha").unwrap_err(),
        IndexError::CollectionInUse { .. }
    ));
    drop(w);
    store.delete_collection("alpha").unwrap();
    assert_eq!(store.list().unwrap(), vec!["beta"]);
    assert!(matches!(
        store.collection("alpha").err().unwrap(),
        IndexError::CollectionNotFound { .. }
    ));
    assert!(dir.path().join("alpha").exists(), "a handle still holds it");
    drop(a);
    assert!(
        !dir.path().join("alpha").exists(),
        "removed with the last handle"
    );
    let mut wrong = test_config("beta", DIM);
    wrong.embedding_model = "x".into();
    assert!(store.open_collection(wrong).is_err());
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.collection("beta").unwrap().name(), "beta");
}

/// A search that began before its collection was deleted finishes on its snapshot; the
/// collection is gone at once for everything else, and its folder goes with the last search.
#[test]
fn deleting_a_collection_that_a_search_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let c = store.create_collection(test_config("kb", DIM)).unwrap();
    let w = c.writer();
    w.upsert_document(doc("d", 1, 2, DIM)).unwrap();
    w.commit().unwrap();
    drop(w);
    let searcher = c.reader().searcher();

    store.delete_collection("kb").unwrap();
    assert_eq!(store.list().unwrap(), Vec::<String>::new());
    assert!(matches!(
        store.collection("kb").err().unwrap(),
        IndexError::CollectionNotFound { .. }
    ));
    assert!(matches!(
        store.delete_collection("kb").unwrap_err(),
        IndexError::CollectionNotFound { .. }
    ));
    // The running search still reads everything it saw, from sled and both indexes.
    assert_eq!(bm25_ids(&searcher, &marker("d", 1)).len(), 1);
    assert_eq!(
        searcher.get_document("d").unwrap().unwrap().chunk_ids.len(),
        2
    );
    // A handle on the deleted collection no longer writes.
    assert!(matches!(
        c.writer().upsert_document(doc("e", 1, 1, DIM)).unwrap_err(),
        IndexError::CollectionNotFound { .. }
    ));
    // The name is free only once the folder is gone.
    let again = store
        .create_collection(test_config("kb", DIM))
        .err()
        .unwrap();
    assert!(
        matches!(again, IndexError::CollectionBeingDeleted { .. }),
        "{again}"
    );
    assert!(dir.path().join("kb").exists());
    drop(c);
    assert!(dir.path().join("kb").exists(), "the search still holds it");
    drop(searcher);
    assert!(!dir.path().join("kb").exists());
    let fresh = store.create_collection(test_config("kb", DIM)).unwrap();
    assert_eq!(fresh.reader().searcher().stats().unwrap().documents, 0);
}

/// A deletion cut short after it was acknowledged (the process died while a search held the
/// folder) is finished by the next open of the store; live collections are left alone.
#[test]
fn a_deletion_interrupted_by_a_crash_is_finished_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let c = store.create_collection(test_config("gone", DIM)).unwrap();
    store.create_collection(test_config("kept", DIM)).unwrap();
    c.writer().upsert_document(doc("d", 1, 1, DIM)).unwrap();
    let searcher = c.reader().searcher();
    store.delete_collection("gone").unwrap();
    drop(c);
    // "Crash": the search's handles are never closed, so the folder is never removed.
    std::mem::forget(searcher);
    drop(store);
    assert!(dir.path().join("gone/manifest.deleted").exists());
    std::fs::create_dir(dir.path().join("not-a-collection")).unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert!(!dir.path().join("gone").exists());
    assert!(dir.path().join("not-a-collection").exists());
    assert_eq!(store.list().unwrap(), vec!["kept"]);
    store.create_collection(test_config("gone", DIM)).unwrap();
}

/// [`forty_documents`], then compactions held and d0..d29 deleted (uncommitted): the next
/// commit starts a compaction that waits.
fn forty_documents_thirty_deleted(w: &ragd_index::IndexWriter) -> Vec<String> {
    let ids = forty_documents(w);
    w.hold_compactions(true);
    for id in &ids[..30] {
        w.delete_document(id).unwrap();
    }
    ids
}

/// Writes and commits documents d0..d39 of two chunks each; returns their ids.
fn forty_documents(w: &ragd_index::IndexWriter) -> Vec<String> {
    let ids: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
    w.upsert_documents(ids.iter().map(|id| doc(id, 1, 2, DIM)).collect())
        .unwrap();
    w.commit().unwrap();
    ids
}

#[test]
fn tombstone_compaction_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    let ids = forty_documents(&w);
    for id in &ids[..30] {
        w.delete_document(id).unwrap();
    }
    w.commit().unwrap(); // 60 tombstones of 80 points: compacts
    let s = c.reader().searcher();
    let st = s.stats().unwrap();
    assert_eq!(
        (st.meta_chunks, st.bm25_chunks, st.dense_chunks),
        (20, 20, 20)
    );
    let q = doc("d35", 1, 2, DIM).chunks[1].vector.clone();
    let hits = s.search_dense(&q, 20, &Filter::default()).unwrap();
    assert_eq!(hits.len(), 20);
    let want = s.get_document("d35").unwrap().unwrap().chunk_ids[1];
    assert_eq!(hits[0].id, want);
    drop((s, w, c));
    let c = reopen(dir.path(), "c");
    let st = c.reader().searcher().stats().unwrap();
    assert_eq!(
        (st.meta_chunks, st.bm25_chunks, st.dense_chunks),
        (20, 20, 20)
    );
}

/// A compaction that ends while an acknowledged write awaits its commit publishes nothing (that
/// would show the write before its writer commits it); the commit takes the compacted graph.
#[test]
fn a_compaction_does_not_publish_uncommitted_writes() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    forty_documents_thirty_deleted(&w);
    w.commit().unwrap();
    assert!(w.compacting());
    w.upsert_document(doc("late", 1, 2, DIM)).unwrap();
    w.delete_document("d39").unwrap();
    let before = c.reader().searcher().stats().unwrap();
    w.hold_compactions(false);
    // The rebuild of 20 points takes milliseconds; nothing may be published meanwhile.
    for _ in 0..100 {
        let now = c.reader().searcher().stats().unwrap();
        assert_eq!(
            (now.snapshot_seq, now.dense_chunks, now.bm25_chunks),
            (before.snapshot_seq, 20, 20),
            "published without a commit"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    w.commit().unwrap();
    assert!(!w.compacting(), "the commit takes the compacted graph");
    let st = c.reader().searcher().stats().unwrap();
    assert_eq!(
        (st.dense_chunks, st.bm25_chunks, st.dense_points),
        (20, 20, 20)
    );
}

/// The compaction rebuilds the graph in the background: writes and commits go on meanwhile
/// (inserts, and deletes of old and new points), and the compacted graph that replaces the old
/// one has every live point once and no deleted one.
#[test]
fn compaction_runs_in_the_background_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    let ids = forty_documents_thirty_deleted(&w);
    w.commit().unwrap(); // 60 tombstones of 80 points: a compaction starts, and waits
    assert!(w.compacting());
    // Writes during the compaction: new documents, a deleted old one, a deleted new one.
    let new: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    w.upsert_documents(new.iter().map(|id| doc(id, 2, 2, DIM)).collect())
        .unwrap();
    w.delete_document("d30").unwrap();
    w.delete_document("n9").unwrap();
    w.commit().unwrap();
    let during = c.reader().searcher().stats().unwrap();
    assert!(w.compacting(), "the commits did not wait for the rebuild");
    assert!(during.dense_points > during.dense_chunks, "{during:?}");
    w.hold_compactions(false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while w.compacting() {
        assert!(
            std::time::Instant::now() < deadline,
            "the compaction never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Taken and published by the compaction itself: no further write was needed.
    let s = c.reader().searcher();
    let st = s.stats().unwrap();
    let live = 2 * (9 + 9);
    assert_eq!(
        (
            st.meta_chunks,
            st.bm25_chunks,
            st.dense_chunks,
            st.dense_points
        ),
        (live, live, live, live),
        "{st:?}"
    );
    for (id, n) in ids[31..]
        .iter()
        .map(|i| (i, 1))
        .chain(new[..9].iter().map(|i| (i, 2)))
    {
        let q = doc(id, n, 2, DIM).chunks[0].vector.clone();
        let hits = s.search_dense(&q, 3, &Filter::default()).unwrap();
        let want = s.get_document(id).unwrap().unwrap().chunk_ids[0];
        assert_eq!(hits[0].id, want, "{id}");
    }
    for gone in ["d0", "d30", "n9"] {
        assert!(s.get_document(gone).unwrap().is_none());
    }
}

#[test]
fn concurrent_searches_while_writing() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    w.upsert_documents((0..20).map(|i| doc(&format!("s{i}"), 1, 2, DIM)).collect())
        .unwrap();
    w.commit().unwrap();
    let reader = c.reader();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for t in 0..3 {
            let reader = reader.clone();
            let stop = &stop;
            scope.spawn(move || {
                let q = doc(&format!("s{t}"), 1, 2, DIM).chunks[0].vector.clone();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 10 {
                    let s = reader.searcher();
                    let st = s.stats().unwrap();
                    // Snapshot counts are always consistent between the two indexes.
                    assert_eq!(st.bm25_chunks, st.dense_chunks);
                    assert!(!s
                        .search_dense(&q, 5, &Filter::default())
                        .unwrap()
                        .is_empty());
                    assert!(!s
                        .search_bm25("chunk", 5, &Filter::default())
                        .unwrap()
                        .is_empty());
                    n += 1;
                }
            });
        }
        for i in 20..80 {
            w.upsert_document(doc(&format!("s{i}"), 1, 2, DIM)).unwrap();
            if i % 10 == 0 {
                w.commit().unwrap();
            }
        }
        w.commit().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let st = reader.searcher().stats().unwrap();
    assert_eq!(
        (st.documents, st.bm25_chunks, st.dense_chunks),
        (80, 160, 160)
    );
}

#[test]
fn cjk_collection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config("cjk", DIM);
    cfg.bm25.analyzer = ragd_index::Bm25Analyzer::Cjk;
    let c = ragd_index::Collection::create(&dir.path().join("cjk"), cfg).unwrap();
    let w = c.writer();
    let mut d = doc("j", 1, 2, DIM);
    d.chunks[0].text = "東京都に行きます Rust programming".into();
    d.chunks[1].text = "京都の大学".into();
    w.upsert_document(d).unwrap();
    w.commit().unwrap();
    let s = c.reader().searcher();
    let ids = s.get_document("j").unwrap().unwrap().chunk_ids;
    assert_eq!(bm25_ids(&s, "東京"), vec![ids[0]]);
    assert_eq!(bm25_ids(&s, "RUST").len(), 1);
    let both = bm25_ids(&s, "京都");
    assert_eq!(both.len(), 2);
}

/// The same content indexed another way (`indexed_with`: another chunker or embedder) is an
/// update that replaces the chunks, not a no-op; the same way again is unchanged.
#[test]
fn the_same_content_indexed_another_way_is_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    let made = |how: &str, chunks: usize| {
        let mut d = doc("a", 1, chunks, DIM);
        d.indexed_with = how.to_owned();
        d
    };
    assert_eq!(
        w.upsert_document(made("fixed", 2)).unwrap(),
        UpsertOutcome::Added
    );
    assert_eq!(
        w.upsert_document(made("fixed", 2)).unwrap(),
        UpsertOutcome::Unchanged
    );
    assert_eq!(
        w.upsert_document(made("recursive", 3)).unwrap(),
        UpsertOutcome::Updated
    );
    w.commit().unwrap();
    let stored = c.reader().searcher().get_document("a").unwrap().unwrap();
    assert_eq!(stored.indexed_with, "recursive");
    assert_eq!(stored.chunk_ids.len(), 3);
    drop(w);
    drop(c);
    let c = reopen(dir.path(), "c");
    let stored = c.reader().searcher().get_document("a").unwrap().unwrap();
    assert_eq!(
        stored.indexed_with, "recursive",
        "indexed_with survives a reopen"
    );
}

/// A batch delete removes what exists, says which ids were not stored (a repeated id counts
/// once), gives each deletion its own seq, and survives a reopen.
#[test]
fn a_batch_delete_removes_each_document_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    let docs = (0..5).map(|i| doc(&format!("d{i}"), 1, 2, DIM)).collect();
    w.upsert_documents(docs).unwrap();
    let before = w.last_seq();
    let existed = w.delete_documents(&["d1", "missing", "d3", "d1"]).unwrap();
    assert_eq!(existed, vec![true, false, true, false]);
    assert_eq!(w.last_seq(), before + 2);
    w.commit().unwrap();
    let s = c.reader().searcher();
    assert!(s.get_document("d1").unwrap().is_none());
    assert!(bm25_ids(&s, &marker("d3", 0)).is_empty());
    assert_eq!(s.stats().unwrap().dense_chunks, 6);
    drop((s, w, c));
    let c = reopen(dir.path(), "c");
    assert_eq!(c.counts().unwrap().documents, 3);
}

#[test]
fn term_idf_weighs_a_rare_term_above_a_common_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    for id in ["a", "b", "c"] {
        w.upsert_document(doc(id, 1, 2, DIM)).unwrap();
    }
    w.commit().unwrap();
    let s = c.reader().searcher();
    // Every chunk says "about"; one chunk holds a's first marker; none holds "zebra".
    let rare = marker("a", 0);
    let weights = s.term_idf(&format!("about {rare} zebra the")).unwrap();
    let terms: Vec<&str> = weights.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(terms, ["about", rare.as_str(), "zebra"], "stop words go");
    let idf = |n: f32| (1.0 + (6.0 - n + 0.5) / (n + 0.5)).ln();
    for ((_, got), want) in weights.iter().zip([idf(6.0), idf(1.0), idf(0.0)]) {
        assert!((got - want).abs() < 1e-5, "{weights:?}");
    }
    assert_eq!(s.analyze("The Zebras about").unwrap(), ["zebra", "about"]);
}

#[test]
fn the_backend_seam_serves_the_embedded_index() {
    use ragd_index::{ChunkSource, DocumentSink};
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let outcomes =
        DocumentSink::upsert_documents(&c, vec![doc("a", 1, 2, DIM), doc("b", 1, 2, DIM)]).unwrap();
    assert_eq!(outcomes, [UpsertOutcome::Added, UpsertOutcome::Added]);
    // An acknowledged write is stored (sled has it) before it is published to searches.
    let stored = c.stored_documents(&["a", "nope"]).unwrap();
    assert_eq!(stored[0].as_ref().unwrap().chunk_ids.len(), 2);
    assert!(stored[1].is_none());
    assert!(c
        .reader()
        .searcher()
        .search_bm25(&marker("a", 1), 3, &Filter::default())
        .unwrap()
        .is_empty());
    c.publish().unwrap();

    let s = c.reader().searcher();
    let source: &dyn ChunkSource = &s;
    assert!(!source.batches_legs() && source.reads_one_snapshot());
    let vector = doc("a", 1, 2, DIM).chunks[0].vector.clone();
    let (dense, sparse) = source
        .search_both(&vector, &marker("a", 1), 3, 3, &Filter::default())
        .unwrap();
    assert_eq!(dense.len(), 3);
    let top = source
        .get_chunks(&[sparse[0].id])
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(top.doc_id, "a");
    // A query BM25 cannot match leaves its leg empty instead of failing both.
    let (dense, sparse) = source
        .search_both(&vector, "the of", 3, 3, &Filter::default())
        .unwrap();
    assert_eq!((dense.len(), sparse.len()), (3, 0));
}
