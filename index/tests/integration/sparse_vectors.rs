//! BM25 as sparse vectors scores what tantivy scores.

use std::collections::BTreeMap;

use ragd_index::sparse_vectors::{term_id, Bm25Encoder, Bm25Params, SparseVector};
use ragd_index::{Bm25Config, ChunkInput, DocumentRecord, Filter, IndexError};

use crate::{create, DIM};

const TEXTS: [&str; 5] = [
    "The KV cache stores the keys and values of every token already decoded.",
    "Prefill computes the keys and values of the whole prompt at once.",
    "Part XJ-9000-B ships with a cache of spare fuses; the cache is sealed.",
    "Decoding reads the cache once per token, so the cache makes decoding fast.",
    "NF4 quantisation stores weights in four bits.",
];

/// The score an index multiplying in each term's IDF (Qdrant's `modifier: idf`) gives.
fn with_idf(query: &SparseVector, doc: &SparseVector, idf: &BTreeMap<u32, f32>) -> f32 {
    let weighted = SparseVector {
        indices: query.indices.clone(),
        values: query
            .indices
            .iter()
            .zip(&query.values)
            .map(|(i, v)| v * idf[i])
            .collect(),
    };
    weighted.dot(doc)
}

#[test]
fn dot_products_with_idf_equal_tantivys_bm25_scores() {
    let dir = tempfile::tempdir().unwrap();
    let c = create(dir.path(), "c");
    let w = c.writer();
    for (i, text) in TEXTS.iter().enumerate() {
        let mut vector = vec![0.0; DIM];
        vector[i] = 1.0;
        let len = text.chars().count();
        w.upsert_document(DocumentRecord {
            id: format!("d{i}"),
            title: String::new(),
            metadata: BTreeMap::new(),
            content_hash: format!("h{i}"),
            indexed_with: String::new(),
            chunks: vec![ChunkInput::new(*text, 0, len, vector)],
        })
        .unwrap();
    }
    w.commit().unwrap();
    let s = c.reader().searcher();
    let config = Bm25Config::default();
    let params = Bm25Params::measured(config, TEXTS.iter().map(|t| ("", *t))).unwrap();
    params.validate().unwrap();
    let encoder = Bm25Encoder::new(config, params);
    for query in [
        "cache",
        "keys and values of the prompt",
        "XJ-9000-B cache",
        "nf4",
    ] {
        let idf: BTreeMap<u32, f32> = s
            .term_idf(query)
            .unwrap()
            .into_iter()
            .map(|(t, idf)| (term_id(&t), idf))
            .collect();
        let q = encoder.query(query).unwrap();
        let hits = s.search_bm25(query, 10, &Filter::default()).unwrap();
        assert!(!hits.is_empty(), "{query}");
        for hit in hits {
            let chunk = s.get_chunks(&[hit.id]).unwrap().remove(0).unwrap();
            let ours = with_idf(&q, &encoder.document("", &chunk.text), &idf);
            assert!(
                (ours - hit.score).abs() < 1e-4 * hit.score.max(1.0),
                "{query:?} on {:?}: sparse {ours}, tantivy {}",
                chunk.text,
                hit.score
            );
        }
    }
}

#[test]
fn vectors_are_sorted_stable_and_refuse_an_empty_query() {
    let config = Bm25Config::default();
    let params = Bm25Params::measured(config, [("Cats", "cats purr")]).unwrap();
    assert_eq!(params.avg_text_terms, 3.0, "title in front of the text");
    assert_eq!(params.avg_title_terms, 1.0);
    let encoder = Bm25Encoder::new(config, params);
    let doc = encoder.document("Cats", "cats purr; 猫が好き");
    assert!(doc.indices.windows(2).all(|w| w[0] < w[1]), "{doc:?}");
    assert!(doc.values.iter().all(|v| v.is_finite() && *v > 0.0));
    // The title's own field adds its share to the shared term.
    let cat = doc.indices.binary_search(&term_id("cat")).unwrap();
    let purr = doc.indices.binary_search(&term_id("purr")).unwrap();
    assert!(doc.values[cat] > doc.values[purr]);
    // CJK bigrams are dimensions too.
    assert!(doc.indices.binary_search(&term_id("猫が")).is_ok());
    // The hash is fixed: vectors written by one version are searched by the next.
    assert_eq!(term_id("cat"), 0x0674_5c07, "FNV-1a of b\"cat\"");
    assert!(matches!(
        encoder.query("the of and"),
        Err(IndexError::EmptyQuery)
    ));
    let q = encoder.query("Cats cats purring").unwrap();
    assert_eq!(q.values, [1.0, 1.0], "one weight per distinct term");
}
