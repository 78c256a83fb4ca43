//! HNSW recall@10 against exact brute force on the same vectors (fixed seeds; order never
//! asserted).

use ragd_index::config::HnswConfig;
use ragd_index::dense::{normalise, DenseWriter};
use ragd_index::testing::{brute_force_knn, clustered_vectors, doc, random_unit_vectors, recall};
use ragd_index::{ChunkInput, DocumentRecord, Filter};

const K: usize = 10;

/// Mean recall@10 of `(the frozen copy, the hnsw_rs graph)` at width `ef`.
fn mean_recall(data: &[Vec<f32>], queries: &[Vec<f32>], dim: usize, ef: usize) -> (f64, f64) {
    let items: Vec<(u64, Vec<f32>)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, normalise(v, dim).unwrap()))
        .collect();
    let dense = DenseWriter::build(HnswConfig::default(), &items);
    let n = data.len() as u64;
    dense.freeze_now(n);
    let view = dense.view(n);
    assert!(view.graph().frozen_for(n).is_some());
    let (mut flat, mut graph) = (0.0, 0.0);
    for q in queries {
        let truth = brute_force_knn(data, q, K);
        let q = normalise(q, dim).unwrap();
        let ids =
            |hits: Vec<ragd_index::ScoredChunk>| hits.iter().map(|h| h.id.0).collect::<Vec<_>>();
        flat += recall(&ids(view.search(&q, K, ef, None)), &truth);
        graph += recall(&ids(view.search_graph(&q, K, ef, None)), &truth);
    }
    let m = queries.len() as f64;
    (flat / m, graph / m)
}

#[test]
fn recall_random_vectors() {
    let dim = 64;
    let data = random_unit_vectors(6000, dim, 42);
    let queries = random_unit_vectors(100, dim, 43);
    let (flat, graph) = mean_recall(&data, &queries, dim, 128);
    eprintln!("recall@10 random 6000x{dim} ef=128: frozen copy {flat:.4}, hnsw_rs {graph:.4}");
    assert!(flat >= 0.98, "recall@10 of the frozen copy = {flat}");
    assert!(graph >= 0.98, "recall@10 of the hnsw_rs graph = {graph}");
}

#[test]
fn recall_clustered_vectors() {
    let dim = 96;
    let data = clustered_vectors(6000, dim, 50, 1.0, 44);
    let queries = clustered_vectors(100, dim, 50, 1.0, 45);
    // Clustered data with this much noise is harder than uniform: ef 256 (0.974 at ef 128).
    let (flat, graph) = mean_recall(&data, &queries, dim, 256);
    eprintln!("recall@10 clustered 6000x{dim} ef=256: frozen copy {flat:.4}, hnsw_rs {graph:.4}");
    assert!(flat >= 0.98, "recall@10 of the frozen copy = {flat}");
    assert!(graph >= 0.98, "recall@10 of the hnsw_rs graph = {graph}");
}

/// Through the collection API, after deleting a third of the documents (tombstones below the
/// compaction threshold): recall against brute force over the remaining vectors.
#[test]
fn recall_through_collection_with_tombstones() {
    let dim = 32;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ragd_index::testing::test_config("r", dim);
    cfg.maintenance.compact_tombstone_ratio = 0.9;
    let c = ragd_index::Collection::create(&dir.path().join("r"), cfg).unwrap();
    let w = c.writer();
    let data = random_unit_vectors(3000, dim, 46);
    let docs: Vec<DocumentRecord> = data
        .iter()
        .enumerate()
        .map(|(i, v)| DocumentRecord {
            id: format!("d{i}"),
            chunks: vec![ChunkInput::new(format!("text {i}"), 0, 5, v.clone())],
            ..doc("x", 0, 0, dim)
        })
        .collect();
    w.upsert_documents(docs).unwrap();
    for i in (0..3000).step_by(3) {
        w.delete_document(&format!("d{i}")).unwrap();
    }
    w.commit().unwrap();
    c.settle();
    let s = c.reader().searcher();
    assert!(
        s.stats().unwrap().dense_frozen,
        "settled: searches use the frozen copy"
    );
    let live: Vec<usize> = (0..3000).filter(|i| i % 3 != 0).collect();
    let live_vecs: Vec<Vec<f32>> = live.iter().map(|&i| data[i].clone()).collect();
    let queries = random_unit_vectors(50, dim, 47);
    let mut total = 0.0;
    for q in &queries {
        let hits = s.search_dense(q, K, &Filter::default()).unwrap();
        assert_eq!(hits.len(), K);
        let recs = s
            .get_chunks(&hits.iter().map(|h| h.id).collect::<Vec<_>>())
            .unwrap();
        let found: Vec<u64> = recs
            .iter()
            .map(|r| r.as_ref().unwrap().doc_id[1..].parse::<u64>().unwrap())
            .collect();
        let truth: Vec<usize> = brute_force_knn(&live_vecs, q, K)
            .into_iter()
            .map(|i| live[i])
            .collect();
        total += recall(&found, &truth);
    }
    let r = total / queries.len() as f64;
    eprintln!("recall@10 via collection with tombstones: {r:.4}");
    assert!(r >= 0.98, "recall@10 = {r}");
}
