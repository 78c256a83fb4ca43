//! proptest: random upsert / delete / commit / reopen sequences against an in-memory model
//! (after tantivy's index_writer proptest).

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use ragd_index::testing::{doc, marker};
use ragd_index::{Collection, Filter, UpsertOutcome};

use crate::{create, reopen, DIM};

#[derive(Debug, Clone)]
enum Op {
    Upsert { doc: u8, version: u8 },
    Delete { doc: u8 },
    Commit,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..6, 0u8..3).prop_map(|(doc, version)| Op::Upsert { doc, version }),
        2 => (0u8..6).prop_map(|doc| Op::Delete { doc }),
        2 => Just(Op::Commit),
        1 => Just(Op::Reopen),
    ]
}

/// doc id -> version. Chunk count is a function of the version.
type Model = BTreeMap<String, u8>;

fn chunks(version: u8) -> usize {
    usize::from(version % 3)
}

fn id(d: u8) -> String {
    format!("doc{d}")
}

fn record(d: u8, version: u8) -> ragd_index::DocumentRecord {
    doc(&id(d), u32::from(version), chunks(version), DIM)
}

/// Checks that the collection's committed state equals `model`.
fn check(c: &Collection, model: &Model) {
    let s = c.reader().searcher();
    let st = s.stats().unwrap();
    let n_chunks: usize = model.values().map(|v| chunks(*v)).sum();
    assert_eq!(st.documents as usize, model.len());
    assert_eq!(st.meta_chunks as usize, n_chunks, "{st:?}");
    assert_eq!(st.bm25_chunks as usize, n_chunks, "{st:?}");
    assert_eq!(st.dense_chunks as usize, n_chunks, "{st:?}");
    for d in 0..6u8 {
        let stored = s.get_document(&id(d)).unwrap();
        let Some(&version) = model.get(&id(d)) else {
            assert!(stored.is_none());
            continue;
        };
        let stored = stored.unwrap();
        assert_eq!(stored.content_hash, format!("{}-v{version}", id(d)));
        let rec = record(d, version);
        for (i, chunk_id) in stored.chunk_ids.iter().enumerate() {
            let hits = s
                .search_bm25(&marker(&id(d), i), 5, &Filter::default())
                .unwrap();
            assert_eq!(
                hits.iter().map(|h| h.id).collect::<Vec<_>>(),
                vec![*chunk_id]
            );
            let dense = s
                .search_dense(&rec.chunks[i].vector, 3, &Filter::default())
                .unwrap();
            assert_eq!(dense[0].id, *chunk_id);
        }
    }
}

fn run(dir: &Path, ops: &[Op]) {
    let mut c = create(dir, "m");
    let mut acked = Model::new();
    let mut committed = Model::new();
    for op in ops {
        match *op {
            Op::Upsert { doc, version } => {
                let expect = match acked.get(&id(doc)) {
                    None => UpsertOutcome::Added,
                    Some(v) if *v == version => UpsertOutcome::Unchanged,
                    Some(_) => UpsertOutcome::Updated,
                };
                assert_eq!(
                    c.writer().upsert_document(record(doc, version)).unwrap(),
                    expect
                );
                acked.insert(id(doc), version);
            }
            Op::Delete { doc } => {
                let existed = acked.remove(&id(doc)).is_some();
                assert_eq!(c.writer().delete_document(&id(doc)).unwrap(), existed);
            }
            Op::Commit => {
                c.writer().commit().unwrap();
                committed = acked.clone();
            }
            Op::Reopen => {
                drop(c);
                c = reopen(dir, "m");
                committed = acked.clone();
            }
        }
        // Searchers see exactly the last committed state, whatever was written since.
        let st = c.reader().searcher().stats().unwrap();
        let n: usize = committed.values().map(|v| chunks(*v)).sum();
        assert_eq!((st.bm25_chunks as usize, st.dense_chunks as usize), (n, n));
    }
    c.writer().commit().unwrap();
    check(&c, &acked);
    drop(c);
    check(&reopen(dir, "m"), &acked);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn writer_matches_model(ops in proptest::collection::vec(op(), 1..24)) {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), &ops);
    }
}

/// A sequence kept as an ordinary test: update then delete across a reopen without commit.
#[test]
fn update_delete_reopen_regression() {
    let dir = tempfile::tempdir().unwrap();
    run(
        dir.path(),
        &[
            Op::Upsert { doc: 1, version: 1 },
            Op::Commit,
            Op::Upsert { doc: 1, version: 2 },
            Op::Delete { doc: 1 },
            Op::Upsert { doc: 1, version: 0 },
            Op::Reopen,
            Op::Upsert { doc: 2, version: 2 },
            Op::Reopen,
        ],
    );
}
