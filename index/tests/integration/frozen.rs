//! The dense index's frozen search copy: refreshed in the background after commits, used only
//! when it holds everything a snapshot can see, safe to take while points are inserted.

use std::sync::Arc;

use ragd_index::config::HnswConfig;
use ragd_index::dense::{normalise, Graph};
use ragd_index::testing::{doc, random_unit_vectors};
use ragd_index::Filter;

use crate::{create, reopen, DIM};

/// `(id, normalised vector)` pairs, ids `0..`.
fn normalised(data: &[Vec<f32>], dim: usize) -> Vec<(u64, Vec<f32>)> {
    data.iter()
        .enumerate()
        .map(|(i, v)| (i as u64, normalise(v, dim).unwrap()))
        .collect()
}

#[test]
fn commits_are_searchable_at_once_and_frozen_after_settling() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "f");
    let w = c.writer();
    let filter = Filter::default();
    for round in 0..3u32 {
        let batch: Vec<_> = (0..40)
            .map(|i| doc(&format!("r{round}-{i}"), round, 3, DIM))
            .collect();
        w.upsert_documents(batch).unwrap();
        w.commit().unwrap();
        // Whether or not the background copy has caught up, the newest chunks are found.
        let probe = doc(&format!("r{round}-7"), round, 3, DIM).chunks[1]
            .vector
            .clone();
        let s = c.reader().searcher();
        let want = s
            .get_document(&format!("r{round}-7"))
            .unwrap()
            .unwrap()
            .chunk_ids[1];
        assert_eq!(s.search_dense(&probe, 1, &filter).unwrap()[0].id, want);
        c.settle();
        let st = s.stats().unwrap();
        assert!(st.dense_frozen, "round {round}: {st:?}");
        assert_eq!(st.dense_chunks, 120 * (u64::from(round) + 1));
        let hit = &s.search_dense(&probe, 1, &filter).unwrap()[0];
        assert_eq!(hit.id, want, "round {round}, frozen copy");
        assert!((hit.score - 1.0).abs() < 1e-3, "{}", hit.score);
    }
    // Deletes need no new copy: the snapshot's tombstones filter the frozen copy.
    assert!(w.delete_document("r2-7").unwrap());
    w.commit().unwrap();
    let s = c.reader().searcher();
    assert!(s.stats().unwrap().dense_frozen);
    let probe = doc("r2-7", 2, 3, DIM).chunks[1].vector.clone();
    let hits = s.search_dense(&probe, 360, &filter).unwrap();
    assert_eq!(hits.len(), 357);
    let gone = c.reader().searcher().get_document("r2-7").unwrap();
    assert!(gone.is_none());
    drop((s, w, c));
    // Reopened: recovered from the dump, frozen in the background again.
    let c = reopen(dir.path(), "f");
    c.settle();
    let s = c.reader().searcher();
    assert!(s.stats().unwrap().dense_frozen);
    assert_eq!(s.search_dense(&probe, 400, &filter).unwrap().len(), 357);
}

#[test]
fn an_older_copy_is_not_used_for_a_newer_snapshot() {
    let dim = 8;
    let data = random_unit_vectors(200, dim, 9);
    let items = normalised(&data, dim);
    let graph = Graph::new(&HnswConfig::default(), 200);
    graph.insert(&items[..100]);
    graph.publish_frozen(100);
    assert!(graph.frozen_for(100).is_some());
    assert!(graph.frozen_for(50).is_some());
    graph.insert(&items[100..]);
    assert!(graph.frozen_for(101).is_none(), "the copy lacks ids 100..");
    let copy = graph.frozen().unwrap();
    assert_eq!(copy.flat.len(), 100);
    graph.publish_frozen(200);
    assert_eq!(graph.frozen_for(200).unwrap().flat.len(), 200);
}

/// Copies taken while two threads insert: never a panic, every copy searchable, and each
/// copy holds every point inserted before it was started.
#[test]
fn freezing_while_inserting() {
    let dim = 24;
    let n = 4000;
    let data = random_unit_vectors(n, dim, 10);
    let items = normalised(&data, dim);
    let graph = Arc::new(Graph::new(&HnswConfig::default(), n));
    graph.insert(&items[..200]);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Parallel inserts of 100 points at a time (hnsw_rs's threads).
            for chunk in items[200..].chunks(100) {
                graph.insert(chunk);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut copies = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) || copies == 0 {
            let before = graph.len();
            let flat = graph.freeze();
            assert!(flat.len() >= before, "{} < {before}", flat.len());
            let q = &items[copies % 200].1;
            let found = flat.search(q, 5, 64, |_| true);
            assert_eq!(found[0].0, (copies % 200) as u64);
            copies += 1;
        }
        eprintln!("{copies} copies taken during the inserts");
    });
    let flat = graph.freeze();
    assert_eq!(flat.len(), n);
    let misses = (0..n)
        .step_by(37)
        .filter(|&i| flat.search(&items[i].1, 1, 64, |_| true)[0].0 != i as u64)
        .count();
    assert!(
        misses <= 2,
        "{misses} points not found as their own nearest neighbour"
    );
}

fn dumps(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dense-"))
        .collect();
    names.sort();
    names
}

/// A commit dumps the graph once the points added since the last dump reach a quarter of it
/// (and 1,024), whatever `dump_every_writes` says, so an open never replays most of a graph;
/// `Store::checkpoint_all` dumps whatever is behind.
#[test]
fn dumps_follow_the_graph_size_and_checkpoint_all_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let mut cfg = ragd_index::testing::test_config("d", DIM);
    cfg.maintenance.dump_every_writes = 1_000_000;
    let c = ragd_index::Collection::create(&path, cfg).unwrap();
    let w = c.writer();
    let batch = |from: usize, to: usize| -> Vec<_> {
        (from..to)
            .map(|i| doc(&format!("x{i}"), 0, 1, DIM))
            .collect()
    };
    w.upsert_documents(batch(0, 1000)).unwrap();
    w.commit().unwrap();
    assert!(
        dumps(&path).is_empty(),
        "1,000 points: below the minimum lag"
    );
    w.upsert_documents(batch(1000, 1100)).unwrap();
    w.commit().unwrap();
    // Dumps are written in the background.
    c.settle();
    assert_eq!(dumps(&path), vec![format!("dense-{:020}", 1100)]);
    w.upsert_documents(batch(1100, 1300)).unwrap();
    w.commit().unwrap();
    c.settle();
    assert_eq!(dumps(&path).len(), 1, "200 of 1,300: under a quarter");
    drop((w, c));

    let store = ragd_index::Store::open(dir.path()).unwrap();
    let c = store.collection("d").unwrap();
    assert_eq!(c.reader().searcher().stats().unwrap().dense_chunks, 1300);
    store.checkpoint_all().unwrap();
    assert_eq!(dumps(&path), vec![format!("dense-{:020}", 1300)]);
    store.checkpoint_all().unwrap();
    assert_eq!(
        dumps(&path),
        vec![format!("dense-{:020}", 1300)],
        "nothing behind"
    );
}

/// The frozen copy searches on f16 vectors but reports the full-precision distance of the
/// graph itself: a result found by both searches has the same score, to the bit, so scores do
/// not move when the background copy catches up.
#[test]
fn the_copy_reports_the_graphs_own_scores() {
    let dim = 32;
    let data = random_unit_vectors(3000, dim, 11);
    let items = normalised(&data, dim);
    let dense = ragd_index::dense::DenseWriter::build(HnswConfig::default(), &items);
    dense.freeze_now(3000);
    let view = dense.view(3000);
    let mut same_sets = 0;
    for q in random_unit_vectors(50, dim, 12) {
        let q = normalise(&q, dim).unwrap();
        let copy = view.search(&q, 10, 400, None);
        let graph = view.search_graph(&q, 10, 400, None);
        if copy.iter().map(|h| h.id).eq(graph.iter().map(|h| h.id)) {
            same_sets += 1;
            for (a, b) in copy.iter().zip(&graph) {
                assert_eq!(a.score.to_bits(), b.score.to_bits(), "{a:?} vs {b:?}");
            }
        }
    }
    assert!(
        same_sets >= 48,
        "only {same_sets} of 50 queries found the same top 10"
    );
}

/// `settle` waits outside the writer lock: writes and commits go on while another thread
/// waits, and every wait ends.
#[test]
fn settling_never_blocks_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "s");
    let w = c.writer();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut waits = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                c.settle();
                waits += 1;
            }
            waits
        });
        for round in 0..20 {
            let batch: Vec<_> = (0..10)
                .map(|i| doc(&format!("s{round}-{i}"), 0, 2, DIM))
                .collect();
            w.upsert_documents(batch).unwrap();
            w.commit().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(waiter.join().unwrap() >= 1);
    });
    c.settle();
    let st = c.reader().searcher().stats().unwrap();
    assert!(st.dense_frozen);
    assert_eq!(st.dense_chunks, 400);
}

/// A commit that starts a dump returns without waiting for it: writes and commits go on while
/// it is written, their points are found at once (exactly, beside the graph), and after the
/// dump and a reopen everything is there.
#[test]
fn writes_go_on_while_the_graph_is_dumped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let mut cfg = ragd_index::testing::test_config("d", DIM);
    cfg.maintenance.dump_every_writes = 20;
    let c = ragd_index::Collection::create(&path, cfg.clone()).unwrap();
    let w = c.writer();
    w.hold_dumps(true);
    for i in 0..20 {
        w.upsert_document(doc(&format!("a{i}"), 0, 1, DIM)).unwrap();
    }
    w.commit().unwrap();
    assert!(w.dumping(), "20 writes: a dump is due");

    let late: Vec<_> = (0..5)
        .map(|i| doc(&format!("late{i}"), 0, 1, DIM))
        .collect();
    for d in &late {
        w.upsert_document(d.clone()).unwrap();
        w.commit().unwrap();
    }
    assert!(w.dumping(), "still held");
    let s = c.reader().searcher();
    assert_eq!(s.stats().unwrap().dense_chunks, 25);
    for d in &late {
        let hit = &s
            .search_dense(&d.chunks[0].vector, 1, &Filter::default())
            .unwrap()[0];
        let found = s.get_chunks(&[hit.id]).unwrap().remove(0).unwrap();
        assert_eq!(found.doc_id, d.id);
    }

    w.hold_dumps(false);
    c.settle();
    assert!(!w.dumping());
    let names = dumps(&path);
    assert_eq!(names, vec![format!("dense-{:020}", 20)]);
    drop((s, w, c));
    let c = ragd_index::Collection::open(&path, cfg).unwrap();
    let s = c.reader().searcher();
    assert_eq!(s.stats().unwrap().dense_chunks, 25);
    let d = &late[4];
    let hit = &s
        .search_dense(&d.chunks[0].vector, 1, &Filter::default())
        .unwrap()[0];
    assert_eq!(
        s.get_chunks(&[hit.id]).unwrap().remove(0).unwrap().doc_id,
        d.id
    );
}
