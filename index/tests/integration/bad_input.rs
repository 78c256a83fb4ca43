//! Bad input is a typed error and corrupts nothing.

use ragd_index::testing::doc;
use ragd_index::{Filter, IndexError, Stats, Store, MAX_K};

use crate::{create, reopen, DIM};

fn counts(s: &Stats) -> (u64, u64, u64, u64, u64) {
    (
        s.documents,
        s.meta_chunks,
        s.bm25_chunks,
        s.dense_chunks,
        s.last_seq,
    )
}

#[test]
fn bad_input_is_typed_and_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    w.upsert_document(doc("ok", 1, 2, DIM)).unwrap();
    w.commit().unwrap();
    let before = c.reader().searcher().stats().unwrap();

    let mut short = doc("bad", 1, 2, DIM);
    short.chunks[1].vector.pop();
    let err = w.upsert_document(short).unwrap_err();
    assert!(matches!(err, IndexError::DimensionMismatch { expected: DIM, got } if got == DIM - 1));

    let mut nan = doc("bad", 1, 2, DIM);
    nan.chunks[0].vector[3] = f32::NAN;
    assert!(matches!(
        w.upsert_document(nan).unwrap_err(),
        IndexError::NonFiniteVector { position: 3 }
    ));
    let mut inf = doc("bad", 1, 1, DIM);
    inf.chunks[0].vector[0] = f32::INFINITY;
    assert!(matches!(
        w.upsert_document(inf).unwrap_err(),
        IndexError::NonFiniteVector { .. }
    ));
    let mut zero = doc("bad", 1, 1, DIM);
    zero.chunks[0].vector = vec![0.0; DIM];
    assert!(matches!(
        w.upsert_document(zero).unwrap_err(),
        IndexError::ZeroVector
    ));
    let mut noid = doc("bad", 1, 1, DIM);
    noid.id.clear();
    assert!(matches!(
        w.upsert_document(noid).unwrap_err(),
        IndexError::EmptyDocumentId
    ));
    let mut span = doc("bad", 1, 1, DIM);
    span.chunks[0].span_start = 10;
    span.chunks[0].span_end = 2;
    assert!(matches!(
        w.upsert_document(span).unwrap_err(),
        IndexError::InvalidSpan { .. }
    ));
    // A batch with one bad document writes nothing.
    let mut batch = vec![doc("b1", 1, 1, DIM), doc("b2", 1, 1, DIM)];
    batch[1].chunks[0].vector.push(1.0);
    assert!(w.upsert_documents(batch).is_err());

    let s = c.reader().searcher();
    let q = doc("ok", 1, 2, DIM).chunks[0].vector.clone();
    let any = Filter::default();
    assert!(matches!(
        s.search_dense(&q[1..], 5, &any).unwrap_err(),
        IndexError::DimensionMismatch { .. }
    ));
    let mut qn = q.clone();
    qn[0] = f32::NAN;
    assert!(matches!(
        s.search_dense(&qn, 5, &any).unwrap_err(),
        IndexError::NonFiniteVector { .. }
    ));
    assert!(matches!(
        s.search_dense(&q, 0, &any).unwrap_err(),
        IndexError::ZeroK
    ));
    assert!(matches!(
        s.search_bm25("chunk", 0, &any).unwrap_err(),
        IndexError::ZeroK
    ));
    for empty in ["", "   ", "the and of", "!!! ???"] {
        assert!(
            matches!(
                s.search_bm25(empty, 5, &any).unwrap_err(),
                IndexError::EmptyQuery
            ),
            "{empty:?}"
        );
    }
    // Huge k is clamped to MAX_K (documented), not an error.
    assert_eq!(s.search_dense(&q, usize::MAX, &any).unwrap().len(), 2);
    assert_eq!(s.search_bm25("chunk", usize::MAX, &any).unwrap().len(), 2);
    const { assert!(MAX_K >= 1000) };
    // Query syntax characters are plain text to us.
    assert_eq!(
        s.search_bm25("chunk AND (\"about", 5, &any).unwrap().len(),
        2
    );

    w.commit().unwrap();
    let after = c.reader().searcher().stats().unwrap();
    assert_eq!(counts(&before), counts(&after));
    drop((s, w, c));
    let c = reopen(dir.path(), "c");
    assert_eq!(
        counts(&before),
        counts(&c.reader().searcher().stats().unwrap())
    );
}

#[test]
fn unknown_collection() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(
        store.collection("nope").err().unwrap(),
        IndexError::CollectionNotFound { .. }
    ));
    assert!(matches!(
        store.delete_collection("nope").unwrap_err(),
        IndexError::CollectionNotFound { .. }
    ));
    assert!(matches!(
        store.collection("a/b").err().unwrap(),
        IndexError::InvalidCollectionName { .. }
    ));
}
