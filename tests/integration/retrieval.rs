//! Retrieval over the bundled sample knowledge base with the real embedder: BM25 finds exact
//! part numbers, dense search finds paraphrases, hybrid finds both, Chinese works.

use std::sync::Arc;

use index::Store;
use ingest::{ChunkingStrategy, Embedder, LoadOptions};
use ragd::jobs::{open_or_create, Pipeline};
use ragd::rag::retrieve::{notes, NOTE_NO_TERMS_BM25, NOTE_NO_TERMS_HYBRID};
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
    let pipeline = Pipeline::new(&ChunkingStrategy::default(), e.clone(), usize::MAX).unwrap();
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

/// Issue 21: re-ingesting the same text with another chunker re-chunks it (it used to be
/// skipped as unchanged, so `--chunker` silently did nothing on a known corpus), the same
/// chunker again is still a no-op, and the same folder named by another path (relative,
/// `./`-prefixed, absolute) is unchanged too.
#[test]
fn another_chunker_re_chunks_and_another_spelling_of_the_path_does_not() {
    let e: Arc<dyn Embedder> = shared_embedder();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let collection = open_or_create(&store, "kb", e.as_ref()).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let load = |path: &std::path::Path| {
        let report = ingest::load_path(path, &LoadOptions::default());
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        report.documents
    };
    let docs = load(&root.join("examples/kb"));
    let n = docs.len();
    let recursive = Pipeline::new(&ChunkingStrategy::default(), e.clone(), usize::MAX).unwrap();
    let fixed = ChunkingStrategy::Fixed(ingest::chunk::FixedConfig {
        size: 40,
        ..Default::default()
    });
    let fixed = Pipeline::new(&fixed, e.clone(), usize::MAX).unwrap();
    assert_ne!(recursive.indexed_with, fixed.indexed_with);
    let chunk_count = || collection.reader().searcher().stats().unwrap().meta_chunks;

    let first = recursive.ingest(&collection, &docs, |_, _| {}).unwrap();
    assert_eq!(first.added, n);
    let recursive_chunks = chunk_count();
    let stored = collection
        .reader()
        .searcher()
        .get_document("kv-cache.md")
        .unwrap()
        .unwrap();
    assert_eq!(stored.indexed_with, recursive.indexed_with);

    let rechunked = fixed.ingest(&collection, &docs, |_, _| {}).unwrap();
    assert_eq!(
        (rechunked.added, rechunked.updated),
        (0, n),
        "{rechunked:?}"
    );
    let fixed_chunks = chunk_count();
    assert!(
        fixed_chunks > recursive_chunks,
        "40-token chunks ({fixed_chunks}) outnumber the recursive ones ({recursive_chunks})"
    );
    let again = fixed.ingest(&collection, &docs, |_, _| {}).unwrap();
    assert_eq!((again.unchanged, again.chunks), (n, 0), "{again:?}");

    // The tests run in the package root, so this names the same folder relatively.
    for other in [
        std::path::PathBuf::from("examples/kb"),
        std::path::PathBuf::from("./examples/../examples/kb"),
        root.join("examples/kb").canonicalize().unwrap(),
    ] {
        let again = fixed.ingest(&collection, &load(&other), |_, _| {}).unwrap();
        assert_eq!(
            (again.unchanged, again.chunks),
            (n, 0),
            "{} re-indexed: {again:?}",
            other.display()
        );
    }
    assert_eq!(chunk_count(), fixed_chunks);
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
        let by_bm25 = f.retriever.retrieve(&s, query, &bm25).unwrap();
        assert!(by_bm25.is_empty());
        // Each says why, for the caller to show.
        let note = |mode, hits: &[ragd::rag::Hit]| notes(&s, query, mode, hits);
        assert_eq!(
            note(Mode::Bm25, &by_bm25),
            [NOTE_NO_TERMS_BM25],
            "{query:?}"
        );
        assert_eq!(note(Mode::Hybrid, &by_hybrid), [NOTE_NO_TERMS_HYBRID]);
        assert!(note(Mode::Dense, &by_dense).is_empty());
    }
    // A query BM25 can match gets no note, in any mode.
    let bm25 = RetrieveOptions {
        mode: Mode::Bm25,
        ..RetrieveOptions::default()
    };
    let hits = f.retriever.retrieve(&s, "XJ-9000-B", &bm25).unwrap();
    assert!(notes(&s, "XJ-9000-B", Mode::Bm25, &hits).is_empty());
    assert!(notes(&s, "zzqx unknownword", Mode::Bm25, &[]).is_empty());
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
