//! Retrieval over the bundled sample knowledge base with the real embedder: BM25 finds exact
//! part numbers, dense search finds paraphrases, hybrid finds both, Chinese works.

use std::sync::Arc;

use index::Store;
use ingest::{ChunkingStrategy, Embedder, LoadOptions};
use ragd::jobs::{open_or_create, Pipeline};
use ragd::rag::{Mode, RetrieveOptions, Retriever};

use crate::common::shared_embedder;

struct Fixture {
    _dir: tempfile::TempDir,
    collection: Arc<index::Collection>,
    retriever: Retriever,
}

fn fixture() -> Fixture {
    let e: Arc<dyn Embedder> = shared_embedder();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let collection = open_or_create(&store, "kb", e.as_ref()).unwrap();
    let kb = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb");
    let report = ingest::load_path(&kb, &LoadOptions::default());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let pipeline = Pipeline {
        chunker: ChunkingStrategy::default().build(e.clone()).unwrap(),
        embedder: e.clone(),
        embed_batch: 64,
        max_document_bytes: usize::MAX,
    };
    let first = pipeline
        .ingest(&collection, &report.documents, |_, _| {})
        .unwrap();
    assert_eq!(first.added, report.documents.len());
    // Re-ingesting the same documents indexes nothing twice.
    let again = pipeline
        .ingest(&collection, &report.documents, |_, _| {})
        .unwrap();
    assert_eq!(
        (again.added, again.unchanged, again.chunks),
        (0, report.documents.len(), 0)
    );
    Fixture {
        _dir: dir,
        collection,
        retriever: Retriever::new(e, None),
    }
}

fn top_doc(f: &Fixture, query: &str, mode: Mode) -> String {
    let opts = RetrieveOptions {
        mode,
        k: 3,
        ..RetrieveOptions::default()
    };
    let hits = f
        .retriever
        .retrieve(&f.collection.reader().searcher(), query, &opts)
        .unwrap();
    hits[0].chunk.doc_id.clone()
}

#[test]
fn bm25_dense_and_hybrid_each_find_their_kind_of_query() {
    let f = fixture();
    assert_eq!(top_doc(&f, "XJ-9000-B", Mode::Bm25), "parts-catalog.md");
    assert_eq!(top_doc(&f, "XJ-9000-B", Mode::Hybrid), "parts-catalog.md");
    let paraphrase =
        "why doesn't a transformer recompute attention over everything it already wrote?";
    assert_eq!(top_doc(&f, paraphrase, Mode::Dense), "kv-cache.md");
    assert_eq!(top_doc(&f, paraphrase, Mode::Hybrid), "kv-cache.md");
    assert_eq!(
        top_doc(&f, "中文句子以什么标点结尾？", Mode::Hybrid),
        "zh-retrieval.md"
    );
}

#[test]
fn citations_point_at_the_exact_source_text() {
    let f = fixture();
    let opts = RetrieveOptions {
        k: 5,
        ..RetrieveOptions::default()
    };
    let hits = f
        .retriever
        .retrieve(&f.collection.reader().searcher(), "NF4 QLoRA", &opts)
        .unwrap();
    let kb = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb");
    for h in hits {
        let doc = ingest::load_path(&kb.join(&h.chunk.doc_id), &LoadOptions::default())
            .documents
            .remove(0);
        let cited: String = doc
            .text()
            .chars()
            .skip(h.chunk.span_start)
            .take(h.chunk.span_end - h.chunk.span_start)
            .collect();
        assert_eq!(
            cited, h.chunk.text,
            "span of chunk {} in {}",
            h.chunk.id.0, h.chunk.doc_id
        );
    }
}

#[test]
fn queries_without_bm25_terms_fall_back_to_dense_search() {
    let f = fixture();
    let s = f.collection.reader().searcher();
    for query in ["to be or not to be", "is it this?", "🤔 🚀"] {
        let hybrid = RetrieveOptions {
            k: 3,
            ..RetrieveOptions::default()
        };
        let dense = RetrieveOptions {
            mode: Mode::Dense,
            ..hybrid.clone()
        };
        let bm25 = RetrieveOptions {
            mode: Mode::Bm25,
            ..hybrid.clone()
        };
        let by_hybrid = f.retriever.retrieve(&s, query, &hybrid).unwrap();
        let by_dense = f.retriever.retrieve(&s, query, &dense).unwrap();
        assert_eq!(by_hybrid.len(), 3, "{query:?}");
        let ids = |hits: &[ragd::rag::Hit]| hits.iter().map(|h| h.chunk.id).collect::<Vec<_>>();
        assert_eq!(ids(&by_hybrid), ids(&by_dense), "{query:?}");
        assert!(by_hybrid.iter().all(|h| h.stages.bm25.is_none()));
        assert!(f.retriever.retrieve(&s, query, &bm25).unwrap().is_empty());
    }
}

#[test]
fn empty_query_and_zero_k_are_rejected() {
    let f = fixture();
    let s = f.collection.reader().searcher();
    assert!(f
        .retriever
        .retrieve(&s, "  ", &RetrieveOptions::default())
        .is_err());
    let zero = RetrieveOptions {
        k: 0,
        ..RetrieveOptions::default()
    };
    assert!(f.retriever.retrieve(&s, "kv cache", &zero).is_err());
}
