use super::*;

fn plan(seq: Seq, doc: &str, added: &[u64], removed: &[u64]) -> WritePlan {
    WritePlan {
        seq,
        doc_id: doc.into(),
        doc: Some(StoredDoc {
            title: "t".into(),
            metadata: BTreeMap::new(),
            content_hash: "h".into(),
            indexed_with: String::new(),
            chunk_ids: added.iter().copied().map(ChunkId).collect(),
            seq,
        }),
        existed: !removed.is_empty(),
        added: added
            .iter()
            .map(|&id| NewChunk {
                id: ChunkId(id),
                chunk: StoredChunk {
                    doc_id: doc.into(),
                    ordinal: 0,
                    text: "x".into(),
                    span_start: 0,
                    span_end: 1,
                    heading_path: vec![],
                },
                vector: vec![0.5, -1.0],
            })
            .collect(),
        removed: removed.iter().copied().map(ChunkId).collect(),
    }
}

/// A store reopened while the previous handle's lock is still held waits for it; a lock
/// held past [`LOCK_WAIT`] is reported.
#[test]
fn open_waits_for_a_lock_released_soon_and_reports_one_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta");
    let first = MetaStore::open(&path, 1 << 20).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
    });
    rx.recv().unwrap();
    let started = Instant::now();
    let second = MetaStore::open(&path, 1 << 20).expect("opens once the lock is released");
    assert!(started.elapsed() >= Duration::from_millis(200), "it waited");
    holder.join().unwrap();

    let started = Instant::now();
    let err = MetaStore::open(&path, 1 << 20)
        .err()
        .expect("held for good");
    assert!(started.elapsed() >= LOCK_WAIT);
    assert!(err.to_string().contains("could not acquire lock"), "{err}");
    drop(second);
}

/// Closing and at once reopening a store, as a restarted collection does, always works:
/// sled alone refused about one reopen in twenty here (its I/O pool still held the lock).
#[test]
fn immediate_reopens_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta");
    for i in 0..500u32 {
        let store = MetaStore::open(&path, 1 << 20).unwrap_or_else(|e| panic!("reopen {i}: {e}"));
        store.db.insert(i.to_be_bytes(), vec![0u8; 1000]).unwrap();
        store.db.flush().unwrap();
    }
}

#[test]
fn apply_log_prune() {
    let dir = tempfile::tempdir().unwrap();
    let meta = MetaStore::open(dir.path(), 1 << 20).unwrap();
    meta.apply(
        &[plan(1, "a", &[0, 1], &[]), plan(2, "a", &[2], &[0, 1])],
        3,
    )
    .unwrap();
    assert_eq!(meta.last_seq().unwrap(), 2);
    assert_eq!(meta.chunk_count().unwrap(), 1);
    assert_eq!(meta.doc_count().unwrap(), 1);
    assert_eq!(meta.get_vector(ChunkId(2)).unwrap(), Some(vec![0.5, -1.0]));
    assert!(meta.get_chunk(ChunkId(0)).unwrap().is_none());
    let ops = meta.ops_after(0).unwrap().unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[1].1.removed, vec![ChunkId(0), ChunkId(1)]);
    meta.prune_ops(1).unwrap();
    assert!(meta.ops_after(0).unwrap().is_none());
    assert_eq!(meta.ops_after(1).unwrap().unwrap().len(), 1);
    let live: Vec<_> = meta.live_chunk_ids().map(|r| r.unwrap()).collect();
    assert_eq!(live, vec![ChunkId(2)]);
}
