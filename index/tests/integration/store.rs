//! The store of collections: opens that do not hold each other up, listings that open nothing,
//! idle collections closed and reopened.

use std::sync::mpsc;
use std::time::Duration;

use ragd_index::testing::{doc, test_config};
use ragd_index::{CollectionSummary, Filter, Store};

use crate::DIM;

/// Long enough for any open here; a test that waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(60);

fn summary(name: &str, documents: u64, chunks: u64, open: bool) -> CollectionSummary {
    let c = test_config(name, DIM);
    CollectionSummary {
        name: name.into(),
        embedding_model: c.embedding_model,
        dimension: DIM,
        embedder_fingerprint: String::new(),
        documents,
        chunks,
        open,
    }
}

/// Creates `name` with `docs` documents of two chunks each, committed.
fn filled(store: &Store, name: &str, docs: usize) {
    let c = store.create_collection(test_config(name, DIM)).unwrap();
    let w = c.writer();
    for i in 0..docs {
        w.upsert_document(doc(&format!("d{i}"), 1, 2, DIM)).unwrap();
    }
    w.commit().unwrap();
}

/// While one collection is being opened (its slot held, as a long recovery holds it), the
/// others open, list, search and close; that one's own requests wait for it.
#[test]
fn an_open_in_progress_holds_up_only_its_own_collection() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    filled(&store, "big", 3);
    filled(&store, "small", 1);
    drop(store);
    let store = Store::open(dir.path()).unwrap();

    std::thread::scope(|s| {
        let (opening, opened) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let store = &store;
        s.spawn(move || {
            store.while_opening("big", || {
                opening.send(()).unwrap();
                released.recv().unwrap();
            })
        });
        opened.recv_timeout(PATIENCE).unwrap();

        let (done, finished) = mpsc::channel();
        s.spawn(move || {
            let small = store.collection("small").unwrap();
            let found = small.reader().searcher().get_document("d0").unwrap();
            drop(small);
            let listed = store.summaries().unwrap();
            let closed = store.close_idle(Duration::ZERO);
            done.send((found.is_some(), listed, closed)).unwrap();
        });
        let (found, listed, closed) = finished
            .recv_timeout(PATIENCE)
            .expect("the store held 'small' up while 'big' was opening");
        assert!(found);
        assert_eq!(
            listed,
            vec![summary("big", 3, 6, false), summary("small", 1, 2, true)]
        );
        assert_eq!(closed, vec!["small"]);

        // "big" itself waits for its open to finish.
        let (done, finished) = mpsc::channel();
        s.spawn(move || done.send(store.collection("big").is_ok()).unwrap());
        assert!(finished.recv_timeout(Duration::from_millis(300)).is_err());
        release.send(()).unwrap();
        assert!(finished.recv_timeout(PATIENCE).unwrap());
    });
}

/// A listing reads manifests and the counts each commit records: after a restart it shows
/// every collection's counts and opens none; one written before counts were recorded is
/// opened once to learn them.
#[test]
fn listing_opens_no_collection() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    filled(&store, "a", 2);
    filled(&store, "b", 0);
    filled(&store, "c", 1);
    // Deleting a document is a commit that changes the counts too.
    let a = store.collection("a").unwrap();
    a.writer().delete_document("d1").unwrap();
    a.writer().commit().unwrap();
    drop(a);
    drop(store);
    std::fs::remove_file(dir.path().join("c/counts.json")).unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.summaries().unwrap(),
        vec![
            summary("a", 1, 2, false),
            summary("b", 0, 0, false),
            summary("c", 1, 2, true),
        ]
    );
    // An open collection reports its live counts, acknowledged writes included.
    let b = store.collection("b").unwrap();
    b.writer().upsert_document(doc("x", 1, 3, DIM)).unwrap();
    assert_eq!(store.summaries().unwrap()[1], summary("b", 1, 3, true));
}

/// An idle collection is checkpointed and closed (acknowledged writes kept) unless something
/// holds it; the next request opens it again.
#[test]
fn idle_collections_close_unless_held() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    filled(&store, "kb", 1);
    // Acknowledged, not committed: the close commits it.
    let kb = store.collection("kb").unwrap();
    kb.writer().upsert_document(doc("late", 1, 1, DIM)).unwrap();

    // Held by a request: not closed.
    assert!(store.close_idle(Duration::ZERO).is_empty());
    let searcher = kb.reader().searcher();
    drop(kb);
    // A search in progress: not closed.
    assert!(store.close_idle(Duration::ZERO).is_empty());
    drop(searcher);
    // Seen in use by the last look: idle from then on, not from when it was handed out.
    let idle = Duration::from_millis(300);
    assert!(store.close_idle(idle).is_empty());
    std::thread::sleep(idle);
    assert_eq!(store.close_idle(idle), vec!["kb"]);
    assert_eq!(store.summaries().unwrap(), vec![summary("kb", 2, 3, false)]);

    let kb = store.collection("kb").unwrap();
    let s = kb.reader().searcher();
    assert!(s.get_document("late").unwrap().is_some());
    let hits = s.search_bm25("late", 10, &Filter::default()).unwrap();
    assert!(!hits.is_empty());
    kb.writer()
        .upsert_document(doc("after", 1, 1, DIM))
        .unwrap();
    kb.writer().commit().unwrap();
}
