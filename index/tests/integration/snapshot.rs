//! Snapshots: an archive taken while writes go on holds exactly the writes up to its seq, and
//! restores under a new name to a collection that searches the same; damaged, truncated or
//! refused archives restore nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ragd_index::testing::{doc, marker, test_config};
use ragd_index::{Filter, IndexError, Store};

use crate::DIM;

/// Writes `d0`, `d1`, ... one document per write (one seq each) until told to stop; returns how
/// many it wrote.
fn keep_writing(store: &Store, name: &str, stop: &AtomicBool) -> usize {
    let c = store.collection(name).unwrap();
    let w = c.writer();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) || i < 40 {
        w.upsert_document(doc(&format!("d{i}"), 1, 2, DIM)).unwrap();
        if i % 10 == 0 {
            w.commit().unwrap();
        }
        i += 1;
    }
    w.commit().unwrap();
    i
}

fn refused<T>(r: Result<T, IndexError>) -> IndexError {
    match r {
        Ok(_) => panic!("must be refused"),
        Err(e) => e,
    }
}

fn snapshot_dir(store: &Store) -> PathBuf {
    store.root().join(".snapshots")
}

/// Names in `dir` other than the collections (staging folders, temporaries).
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".restore") || n.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_snapshot_taken_during_writes_restores_exactly_its_point() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    store.create_collection(test_config("src", DIM)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || keep_writing(&store, "src", &stop))
    };
    // Let some writes land, then snapshot while the writer goes on.
    let source = store.collection("src").unwrap();
    while source.writer().last_seq() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let snap = source.write_snapshot(&snapshot_dir(&store)).unwrap();
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    let seq = snap.info.seq as usize;
    assert!(seq >= 20 && seq < written, "seq {seq}, written {written}");
    assert_eq!(snap.info.documents as usize, seq);
    assert_eq!(snap.info.chunks as usize, 2 * seq);
    assert_eq!(snap.info.collection, "src");
    assert_eq!(
        ragd_index::read_snapshot_info(&snap.path).unwrap(),
        snap.info
    );
    let listed = ragd_index::list_snapshots(&snapshot_dir(&store)).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((&listed[0].path, &listed[0].info), (&snap.path, &snap.info));
    assert!(snap.export_ms > 0.0 && listed[0].export_ms == 0.0);

    let (copy, info) = store
        .restore_snapshot(&snap.path, "copy", |info, manifest| {
            assert_eq!(manifest.embedding_model, info.embedding_model);
            Ok(())
        })
        .unwrap();
    assert_eq!(info, snap.info);
    let s = copy.reader().searcher();
    let stats = s.stats().unwrap();
    assert_eq!(stats.documents as usize, seq, "{stats:?}");
    // Exactly the documents written up to the snapshot's seq: d0 .. d(seq-1).
    for i in 0..written {
        let id = format!("d{i}");
        assert_eq!(s.get_document(&id).unwrap().is_some(), i < seq, "{id}");
    }
    // Both indexes were rebuilt: BM25 finds each marker, dense search each vector.
    let src = source.reader().searcher();
    for i in [0, seq / 2, seq - 1] {
        let id = format!("d{i}");
        let hits = s
            .search_bm25(&marker(&id, 1), 3, &Filter::default())
            .unwrap();
        let chunk = &s.get_chunks(&[hits[0].id]).unwrap()[0];
        assert_eq!(chunk.as_ref().unwrap().doc_id, id);
        let v = doc(&id, 1, 2, DIM).chunks[0].vector.clone();
        let dense = s.search_dense(&v, 1, &Filter::default()).unwrap();
        let expected = src.search_dense(&v, 1, &Filter::default()).unwrap();
        let text = |s: &ragd_index::Searcher, id| {
            s.get_chunks(&[id]).unwrap()[0]
                .as_ref()
                .unwrap()
                .text
                .clone()
        };
        assert_eq!(text(&s, dense[0].id), text(&src, expected[0].id));
    }
    // The restore is a collection like any other: it takes writes and survives a reopen.
    copy.writer()
        .upsert_document(doc("new", 1, 1, DIM))
        .unwrap();
    copy.writer().commit().unwrap();
    drop((s, copy, src, source));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let copy = store.collection("copy").unwrap();
    assert_eq!(copy.counts().unwrap().documents as usize, seq + 1);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn damaged_truncated_or_refused_archives_restore_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let c = store.create_collection(test_config("src", DIM)).unwrap();
    for i in 0..30 {
        c.writer()
            .upsert_document(doc(&format!("d{i}"), 1, 3, DIM))
            .unwrap();
    }
    let snap = c.write_snapshot(&snapshot_dir(&store)).unwrap();
    let bytes = std::fs::read(&snap.path).unwrap();
    let bad_dir = dir.path().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let variant = |name: &str, data: &[u8]| {
        let p = bad_dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let truncated = variant("truncated", &bytes[..bytes.len() * 2 / 3]);
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    let altered = variant("altered", &flipped);
    let foreign = variant("foreign", b"just some text, not an archive");
    for path in [&truncated, &altered, &foreign] {
        let e = refused(store.restore_snapshot(path, "copy", |_, _| Ok(())));
        assert!(
            matches!(e, IndexError::BadSnapshot { .. }),
            "{}: {e}",
            path.display()
        );
        assert!(store.list().unwrap() == vec!["src".to_string()], "{e}");
        assert!(leftovers(dir.path()).is_empty(), "{e}");
    }

    // An archive re-packed with a changed store but the old checksums is caught by them.
    let repacked = repack_with_changed_store(&snap.path, &bad_dir.join("repacked"));
    let e = refused(store.restore_snapshot(&repacked, "copy", |_, _| Ok(())));
    assert!(e.to_string().contains("checksum"), "{e}");

    // The caller refuses the embedder: nothing is restored.
    let e = refused(store.restore_snapshot(&snap.path, "copy", |info, _| {
        Err(IndexError::ManifestMismatch {
            field: "embedding_model",
            stored: info.embedding_model.clone(),
            requested: "another-model".into(),
        })
    }));
    assert!(matches!(e, IndexError::ManifestMismatch { .. }), "{e}");
    // A taken name is refused; the archive itself was fine all along.
    let e = refused(store.restore_snapshot(&snap.path, "src", |_, _| Ok(())));
    assert!(matches!(e, IndexError::CollectionExists { .. }), "{e}");
    assert_eq!(store.list().unwrap(), vec!["src".to_string()]);
    let (copy, _) = store
        .restore_snapshot(&snap.path, "copy", |_, _| Ok(()))
        .unwrap();
    assert_eq!(copy.counts().unwrap().documents, 30);
}

/// The archive at `from`, with one byte of its store changed and its checksums left as they
/// were, written to `to` as a well-formed archive.
fn repack_with_changed_store(from: &Path, to: &Path) -> PathBuf {
    let file = std::fs::File::open(from).unwrap();
    let mut archive = tar::Archive::new(zstd::stream::read::Decoder::new(file).unwrap());
    let out = zstd::stream::write::Encoder::new(std::fs::File::create(to).unwrap(), 3).unwrap();
    let mut builder = tar::Builder::new(out);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if name == "store.kv" {
            let at = data.len() / 2;
            data[at] ^= 1;
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, &name, &data[..]).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
    to.to_path_buf()
}

/// The archive carries the HNSW dump: a collection checkpointed before its snapshot restores
/// to the same graph, so dense search returns the same chunks with the same scores; writes
/// after the last dump are replayed from the archived op log.
#[test]
fn a_restored_graph_searches_exactly_like_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let c = store.create_collection(test_config("src", DIM)).unwrap();
    let w = c.writer();
    for i in 0..300 {
        w.upsert_document(doc(&format!("d{i}"), 1, 2, DIM)).unwrap();
    }
    for i in (0..300).step_by(7) {
        w.delete_document(&format!("d{i}")).unwrap();
    }
    w.checkpoint().unwrap();
    let snap = c.write_snapshot(&snapshot_dir(&store)).unwrap();
    let dump = format!("dense-{:020}/", snap.info.seq);
    assert!(
        snap.info.files.iter().any(|f| f.name.starts_with(&dump)),
        "{:?}",
        snap.info.files
    );
    let (copy, _) = store
        .restore_snapshot(&snap.path, "copy", |_, _| Ok(()))
        .unwrap();
    // The very graph: the restored dump's files are the source's, byte for byte.
    for f in snap.info.files.iter().filter(|f| f.name.starts_with(&dump)) {
        let read = |root: &Path| std::fs::read(root.join(&f.name)).unwrap();
        assert!(read(c.dir()) == read(copy.dir()), "{} differs", f.name);
    }
    let queries = ragd_index::testing::random_unit_vectors(40, DIM, 7);
    let (a, b) = (c.reader().searcher(), copy.reader().searcher());
    for q in &queries {
        let found = |s: &ragd_index::Searcher| {
            s.search_dense(q, 10, &Filter::default())
                .unwrap()
                .into_iter()
                .map(|h| (h.id, h.score.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(found(&a), found(&b));
    }

    // Writes after the last dump: the archive's dump is older than its store.
    for i in 300..310 {
        w.upsert_document(doc(&format!("d{i}"), 1, 2, DIM)).unwrap();
    }
    w.commit().unwrap();
    let later = c.write_snapshot(&snapshot_dir(&store)).unwrap();
    assert!(later.info.files.iter().any(|f| f.name.starts_with(&dump)));
    let (copy2, _) = store
        .restore_snapshot(&later.path, "copy2", |_, _| Ok(()))
        .unwrap();
    let s = copy2.reader().searcher();
    assert_eq!(
        s.stats().unwrap().dense_chunks,
        a.stats().unwrap().dense_chunks + 20
    );
    for i in 300..310 {
        let v = doc(&format!("d{i}"), 1, 2, DIM).chunks[1].vector.clone();
        let hit = &s.search_dense(&v, 1, &Filter::default()).unwrap()[0];
        let chunk = s.get_chunks(&[hit.id]).unwrap()[0].clone().unwrap();
        assert_eq!(chunk.doc_id, format!("d{i}"));
    }
}
