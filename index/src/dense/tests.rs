//! Unit tests of the dense writer: compactions and dumps racing the writes.

use super::*;

/// Waits until `w`'s background compaction has replaced the graph.
fn replaced(w: &mut DenseWriter) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while w.finish_compaction() != CompactionState::Replaced {
        assert!(
            std::time::Instant::now() < deadline,
            "the rebuild never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn point(id: u64) -> (u64, Vec<f32>) {
    let v = crate::testing::random_unit_vectors(1, 16, id).remove(0);
    (id, normalise(&v, 16).unwrap())
}

/// Every way a point can meet a running compaction, with the rebuild's reading fixed:
/// it "read" ids 5..12, so it saw 10 and 11 (inserted after it started) and 9 (deleted
/// after it started), but not 12 (inserted after) or 13 (inserted and deleted after).
#[test]
fn a_compaction_replays_what_the_writer_did_while_it_ran() {
    let first: Vec<_> = (0..10).map(point).collect();
    let mut w = DenseWriter::build(HnswConfig::default(), &first);
    w.tombstone(0..5);
    w.hold_compactions(true);
    let read: Vec<_> = (5..12).map(point).collect();
    w.start_compaction(move || Ok(read), || {});
    assert!(!w.needs_compaction(0.0, 1), "one compaction at a time");
    w.insert(&[point(10), point(11), point(12), point(13)]);
    w.tombstone([9, 13]);
    assert_eq!(w.finish_compaction(), CompactionState::Running);
    w.hold_compactions(false);
    replaced(&mut w);
    // 5..=12 once each (10 and 11 not twice, 13 never), 9 tombstoned.
    assert_eq!(w.graph.len(), 8);
    assert_eq!(w.tombstones, HashSet::from([9]));
    assert_eq!(w.live(), 7);
    let view = w.view(100);
    for id in [5, 8, 10, 11, 12] {
        let hits = view.search_graph(&point(id).1, 1, 32, None);
        assert_eq!(hits[0].id, ChunkId(id));
    }
    let hits = view.search_graph(&point(9).1, 8, 32, None);
    assert!(hits.iter().all(|h| h.id != ChunkId(9)));
}

/// Waits until `w`'s background dump has ended and been taken.
fn finish(w: &mut DenseWriter) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !w.finish_dump() {
        assert!(std::time::Instant::now() < deadline, "the dump never ended");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// While the graph is dumped, new points wait beside it and are searched exactly (bounds and
/// tombstones included); when the dump ends they join the graph, views taken meanwhile find
/// them once, and the dump holds exactly the points of its seq.
#[test]
fn a_dump_holds_new_points_back_and_searches_them() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<_> = (0..10).map(point).collect();
    let mut w = DenseWriter::build(HnswConfig::default(), &first);
    w.hold_dumps(true);
    w.start_dump(dir.path().to_owned(), 7, || {});
    assert!(w.dumping());
    w.insert(&[point(10), point(11), point(12)]);
    w.tombstone([11, 3]);
    assert_eq!((w.graph.len(), w.live()), (10, 11));
    let view = w.view(100);
    let top = |v: &DenseView, id: u64| v.search(&point(id).1, 1, 32, None)[0].id;
    for id in [0, 5, 10, 12] {
        assert_eq!(top(&view, id), ChunkId(id));
    }
    let all = view.search(&point(11).1, 20, 64, None);
    assert_eq!(all.len(), 11);
    assert!(all
        .iter()
        .all(|h| h.id != ChunkId(11) && h.id != ChunkId(3)));
    // A view bounded below 12 does not see it; one filtered to {12} sees only it.
    assert!(w
        .view(12)
        .search(&point(12).1, 20, 64, None)
        .iter()
        .all(|h| h.id.0 < 12));
    let only = HashSet::from([12]);
    let hits = view.search(&point(0).1, 5, 32, Some(&only));
    assert_eq!(hits.iter().map(|h| h.id.0).collect::<Vec<_>>(), vec![12]);
    assert!(!w.finish_dump(), "held");

    w.hold_dumps(false);
    finish(&mut w);
    assert_eq!((w.graph.len(), w.live(), w.dumped_seq()), (13, 11, 7));
    assert!(w.pending.is_empty() && !w.dumping());
    let once = view.search(&point(10).1, 20, 64, None);
    assert_eq!(once.iter().filter(|h| h.id == ChunkId(10)).count(), 1);
    assert_eq!(top(&w.view(100), 12), ChunkId(12));

    let loaded = DenseWriter::load(dir.path(), HnswConfig::default(), 7)
        .unwrap()
        .unwrap();
    assert_eq!((loaded.graph.len(), loaded.dumped_seq()), (10, 7));
}

/// A synchronous dump (a checkpoint) first waits for the background one.
#[test]
fn a_checkpoint_dump_waits_for_the_background_dump() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<_> = (0..10).map(point).collect();
    let mut w = DenseWriter::build(HnswConfig::default(), &first);
    w.start_dump(dir.path().to_owned(), 1, || {});
    w.insert(&[point(10)]);
    w.dump(dir.path(), 2).unwrap();
    assert!(!w.dumping());
    assert_eq!((w.graph.len(), w.dumped_seq()), (11, 2));
    let loaded = DenseWriter::load(dir.path(), HnswConfig::default(), 2)
        .unwrap()
        .unwrap();
    assert_eq!(loaded.graph.len(), 11);
}

/// A compaction that replaces the graph during a dump takes the held-back points with it (its
/// replay has them); later points go straight into the new graph, and the old graph's dump,
/// when it ends, is recorded without inserting anything twice.
#[test]
fn a_compaction_during_a_dump_takes_the_held_back_points() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<_> = (0..10).map(point).collect();
    let mut w = DenseWriter::build(HnswConfig::default(), &first);
    w.hold_dumps(true);
    w.start_dump(dir.path().to_owned(), 5, || {});
    w.tombstone([0]);
    w.start_compaction(|| Ok((1..10).map(point).collect()), || {});
    w.insert(&[point(10)]);
    replaced(&mut w);
    assert!(w.pending.is_empty());
    assert_eq!(w.graph.len(), 10);
    w.insert(&[point(11)]);
    assert_eq!(
        w.graph.len(),
        11,
        "the new graph is not the one being dumped"
    );
    w.hold_dumps(false);
    finish(&mut w);
    assert_eq!((w.graph.len(), w.live(), w.dumped_seq()), (11, 11, 5));
    // The new graph counts as not dumped at all.
    assert_eq!(w.dumped_points, 0);
}

/// Dropping the writer (closing the collection) waits for its background dump, which writes
/// into and prunes the folder that the next open reads.
#[test]
fn dropping_the_writer_waits_for_its_dump() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<_> = (0..10).map(point).collect();
    let mut w = DenseWriter::build(HnswConfig::default(), &first);
    w.hold_dumps(true);
    w.start_dump(dir.path().to_owned(), 3, || {});
    let hold = Arc::clone(&w.hold_dumps);
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        hold.store(false, std::sync::atomic::Ordering::SeqCst);
    });
    drop(w);
    release.join().unwrap();
    let loaded = DenseWriter::load(dir.path(), HnswConfig::default(), 3)
        .unwrap()
        .expect("the dump was in place when the writer was gone");
    assert_eq!(loaded.graph.len(), 10);
}
