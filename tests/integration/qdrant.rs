//! The Qdrant backend against a real three-node Qdrant cluster on loopback, started by
//! `scripts/qdrant-cluster` from `$RAGD_QDRANT_BIN` or `../shared/tools/qdrant/`. Without a
//! binary the cluster tests print one line saying so and pass without running.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use index::{ChunkInput, CollectionConfig, DocumentRecord, Filter, IndexError, UpsertOutcome};
use ingest::Embedder;
use ragd::qdrant::{
    Blocking, IdfScope, QdrantCollection, QdrantError, QdrantSettings, QdrantStore,
};

use crate::common::{embedder, free_port, pump_manual, runtime};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/qdrant-cluster")
}

/// A running cluster, stopped on drop.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    base: u16,
    urls: Vec<String>,
}

impl Cluster {
    /// Starts three nodes on free ports; `None` (after saying so) without a qdrant binary.
    pub(crate) fn start(test: &str) -> Option<Self> {
        Self::start_with(test, &[])
    }

    /// [`Self::start`] with extra environment for the nodes (`QDRANT__...` settings).
    fn start_with(test: &str, env: &[(&str, &str)]) -> Option<Self> {
        Self::start_nodes(test, env, 3)
    }

    /// [`Self::start_with`] for `nodes` nodes.
    fn start_nodes(test: &str, env: &[(&str, &str)], nodes: u16) -> Option<Self> {
        let bin = Command::new(script()).arg("bin").output().unwrap();
        if !bin.status.success() {
            // Straight to stderr: libtest's capture (print macros only) would hide it.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no qdrant binary (set RAGD_QDRANT_BIN or provide \
                 ../shared/tools/qdrant/qdrant.xz): {}",
                String::from_utf8_lossy(&bin.stderr).trim()
            );
            return None;
        }
        for _ in 0..5 {
            // A fresh folder each try: a node keeps its peers' addresses in its storage, so
            // one left by a failed try would look for them on the old ports.
            let dir = tempfile::tempdir().unwrap();
            let base = free_port() / 100 * 100;
            if !(1100..=65000).contains(&base) {
                continue;
            }
            let free = (1..=nodes).all(|n| {
                (0..3)
                    .all(|p| std::net::TcpListener::bind(("127.0.0.1", base + 10 * n + p)).is_ok())
            });
            if !free {
                continue;
            }
            let out = Command::new(script())
                .args(["start", dir.path().to_str().unwrap(), &nodes.to_string()])
                .env("RAGD_QDRANT_PORT_BASE", base.to_string())
                .envs(env.iter().copied())
                .output()
                .unwrap();
            if out.status.success() {
                let urls = String::from_utf8(out.stdout)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect();
                return Some(Self { dir, base, urls });
            }
            eprintln!(
                "qdrant-cluster start on base {base} failed, retrying: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("could not start a Qdrant cluster");
    }

    pub(crate) fn run(&self, args: &[&str]) {
        let out = Command::new(script())
            .arg(args[0])
            .arg(self.dir.path())
            .args(&args[1..])
            .env("RAGD_QDRANT_PORT_BASE", self.base.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "qdrant-cluster {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn settings(&self) -> QdrantSettings {
        QdrantSettings {
            urls: self.urls.clone(),
            shard_number: 3,
            replication_factor: 2,
            timeout_ms: 10_000,
            ..QdrantSettings::default()
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn vector(text: &str) -> Vec<f32> {
    embedder().embed(&[text]).unwrap().remove(0).vector
}

/// Pump manual `i` as a document of one chunk per sentence.
fn manual(i: usize) -> DocumentRecord {
    let d = pump_manual(i);
    let sentences: Vec<&str> = d.text.split_inclusive(". ").collect();
    let texts: Vec<&str> = sentences.iter().map(|s| s.trim()).collect();
    let vectors = embedder().embed(&texts).unwrap();
    let mut at = 0;
    let chunks = sentences
        .iter()
        .zip(vectors)
        .map(|(s, v)| {
            let len = s.chars().count();
            let c = ChunkInput::new(s.trim(), at, at + len, v.vector);
            at += len;
            c
        })
        .collect();
    let mut metadata: BTreeMap<String, String> = d.metadata.into_iter().collect();
    // A key with a dot: a flat key, never a path into nested payload.
    metadata.insert("site.zone".into(), ["north", "south"][i % 2].into());
    DocumentRecord {
        id: d.id,
        title: d.title,
        metadata,
        content_hash: format!("{:x}", d.text.len() * 31 + i),
        indexed_with: "test".into(),
        chunks,
    }
}

fn config(name: &str) -> CollectionConfig {
    CollectionConfig::new(name, embedder().model_id(), embedder().dimension())
}

async fn doc_ids(c: &QdrantCollection, hits: &[index::ScoredChunk]) -> Vec<String> {
    let ids: Vec<_> = hits.iter().map(|h| h.id).collect();
    c.get_chunks(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.expect("every hit loads").doc_id)
        .collect()
}

/// The part number pump `i`'s manual names (see `pump_manual`).
fn part_number(i: usize) -> String {
    let parts = ["seal", "impeller", "bearing", "gasket", "valve", "shaft"];
    format!("{}-{}-{:02}", parts[i % parts.len()], i * 7, i % 13)
}

#[test]
fn a_three_node_cluster_stores_searches_filters_replaces_and_deletes() {
    let Some(cluster) =
        Cluster::start("qdrant::a_three_node_cluster_stores_searches_filters_replaces_and_deletes")
    else {
        return;
    };
    let docs: Vec<DocumentRecord> = (0..240).map(manual).collect();
    runtime().block_on(async {
        let store = QdrantStore::connect(&cluster.settings()).await.unwrap();
        let c = store.open_or_create(&config("pumps"), None).await.unwrap();
        for batch in docs.chunks(48) {
            let outcomes = c.upsert_documents(batch).await.unwrap();
            assert!(outcomes.iter().all(|o| *o == UpsertOutcome::Added));
        }
        let chunks: usize = docs.iter().map(|d| d.chunks.len()).sum();
        assert_eq!(c.counts().await.unwrap(), (240, chunks as u64));
        assert_eq!(store.list().await.unwrap(), ["pumps"]);

        // BM25 finds a part number by its exact words, across three shards.
        for i in [3, 77, 151, 239] {
            let hits = c
                .search_bm25(&part_number(i), 3, &Filter::default())
                .await
                .unwrap();
            assert_eq!(
                doc_ids(&c, &hits).await[0],
                format!("pump-{i:03}"),
                "{}",
                part_number(i)
            );
        }
        // Dense search finds a paraphrase; a metadata filter holds on both legs.
        let q = "Which pump works in the brewery?";
        let brewery = Filter::default().eq("place", "brewery");
        let (dense, sparse) = c
            .search_both(&vector(q), q, 10, 10, &brewery)
            .await
            .unwrap();
        assert_eq!(dense.len(), 10);
        assert!(!sparse.is_empty());
        for hit in c
            .get_chunks(
                &dense
                    .iter()
                    .chain(&sparse)
                    .map(|h| h.id)
                    .collect::<Vec<_>>(),
            )
            .await
            .unwrap()
        {
            assert_eq!(hit.unwrap().metadata["place"], "brewery");
        }

        // The document record: hash and chunks.
        let info = c.get_document("pump-005").await.unwrap().unwrap();
        assert_eq!(info.content_hash, docs[5].content_hash);
        assert_eq!(info.chunk_ids.len(), docs[5].chunks.len());
        assert_eq!(info.metadata, docs[5].metadata);

        // Unchanged documents write nothing; a changed one replaces its chunks.
        let again = c.upsert_documents(&docs[..10]).await.unwrap();
        assert!(again.iter().all(|o| *o == UpsertOutcome::Unchanged));
        let old = c.get_document("pump-007").await.unwrap().unwrap();
        let mut shorter = docs[7].clone();
        shorter.content_hash = "changed".into();
        shorter.chunks.truncate(1);
        shorter.chunks[0].text = "Pump PX-007 was retired; its ZQ-4242 plate remains.".into();
        assert_eq!(
            c.upsert_documents(&[shorter]).await.unwrap(),
            [UpsertOutcome::Updated]
        );
        let new = c.get_document("pump-007").await.unwrap().unwrap();
        assert_eq!(new.chunk_ids.len(), 1);
        let gone = c.get_chunks(&old.chunk_ids[1..]).await.unwrap();
        assert!(
            gone.iter().all(Option::is_none),
            "old chunks past the new end are deleted"
        );
        let hits = c
            .search_bm25("ZQ-4242", 1, &Filter::default())
            .await
            .unwrap();
        assert_eq!(doc_ids(&c, &hits).await, ["pump-007"]);
        let hits = c
            .search_bm25(&part_number(7), 5, &Filter::default())
            .await
            .unwrap();
        assert!(!doc_ids(&c, &hits).await.contains(&"pump-007".to_string()));

        // Deleted documents are gone from both legs.
        let deleted = c
            .delete_documents(&["pump-077".into(), "pump-151".into(), "nope".into()])
            .await
            .unwrap();
        assert_eq!(deleted, 2);
        assert!(c.get_document("pump-077").await.unwrap().is_none());
        for i in [77, 151] {
            let text = &docs[i].chunks[1].text;
            let (dense, sparse) = c
                .search_both(&docs[i].chunks[1].vector, text, 5, 5, &Filter::default())
                .await
                .unwrap();
            let found = doc_ids(&c, &[dense, sparse].concat()).await;
            assert!(!found.contains(&format!("pump-{i:03}")), "{found:?}");
        }
        let (documents, _) = c.counts().await.unwrap();
        assert_eq!(documents, 238);

        // A collection of the same name made for another embedder is refused, with its name.
        let mut other = config("pumps");
        other.dimension = 768;
        other.embedding_model = "another-model".into();
        match store.open_or_create(&other, None).await {
            Err(QdrantError::FailedPrecondition(m)) => assert!(m.contains("pumps"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Bad input is the caller's error, not the cluster's.
        assert!(matches!(
            c.search_dense(&[1.0; 3], 5, &Filter::default()).await,
            Err(QdrantError::Index(IndexError::DimensionMismatch { .. }))
        ));
        assert!(matches!(
            c.search_bm25("the of", 5, &Filter::default()).await,
            Err(QdrantError::Index(IndexError::EmptyQuery))
        ));
        assert!(store.drop_collection("pumps").await.unwrap());
        assert!(!store.drop_collection("pumps").await.unwrap());
        assert!(matches!(
            store.open("pumps").await,
            Err(QdrantError::Index(IndexError::CollectionNotFound { .. }))
        ));
        // A handle opened before the drop (another server's job writing into it) is told the
        // collection is gone, by its ragd name, on writes and reads alike.
        for result in [
            c.upsert_documents(&[manual(1)]).await.map(|_| ()),
            c.search_bm25("pump seal", 5, &Filter::default())
                .await
                .map(|_| ()),
            c.delete_documents(&["pump-001".to_string()])
                .await
                .map(|_| ()),
        ] {
            match result {
                Err(QdrantError::Index(IndexError::CollectionNotFound { name })) => {
                    assert_eq!(name, "pumps")
                }
                other => panic!("{other:?}"),
            }
        }
    });
}

#[test]
fn searches_and_writes_go_on_while_a_node_is_killed_and_nothing_acknowledged_is_lost() {
    let Some(cluster) = Cluster::start(
        "qdrant::searches_and_writes_go_on_while_a_node_is_killed_and_nothing_acknowledged_is_lost",
    ) else {
        return;
    };
    let docs: Vec<DocumentRecord> = (0..150).map(manual).collect();
    let rt = runtime();
    let store = rt
        .block_on(QdrantStore::connect(&cluster.settings()))
        .unwrap();
    let c = rt
        .block_on(store.open_or_create(&config("failover"), None))
        .unwrap();
    rt.block_on(c.upsert_documents(&docs[..100])).unwrap();
    // The first node is the one the client talks to first, and the cluster's bootstrap peer.
    cluster.run(&["kill", "1"]);
    rt.block_on(async {
        for i in (0..100).step_by(9) {
            let hits = c
                .search_bm25(&part_number(i), 3, &Filter::default())
                .await
                .unwrap();
            assert_eq!(doc_ids(&c, &hits).await[0], format!("pump-{i:03}"));
        }
        let outcomes = c.upsert_documents(&docs[100..]).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == UpsertOutcome::Added));
    });
    cluster.run(&["restart", "1"]);
    rt.block_on(async {
        // Every acknowledged document is there, on whichever replica answers.
        for d in &docs {
            let info = c.get_document(&d.id).await.unwrap();
            assert_eq!(
                info.map(|i| i.content_hash),
                Some(d.content_hash.clone()),
                "{}",
                d.id
            );
        }
        let chunks: usize = docs.iter().map(|d| d.chunks.len()).sum();
        assert_eq!(c.counts().await.unwrap(), (150, chunks as u64));
    });
}

#[test]
fn an_unreachable_cluster_is_a_clear_error_naming_each_node() {
    let urls = vec![
        format!("http://127.0.0.1:{}", free_port()),
        format!("http://127.0.0.1:{}", free_port()),
    ];
    let settings = QdrantSettings {
        urls: urls.clone(),
        connect_timeout_ms: 500,
        ..QdrantSettings::default()
    };
    match runtime().block_on(QdrantStore::connect(&settings)) {
        Err(QdrantError::Unavailable(m)) => {
            for url in &urls {
                assert!(m.contains(url.as_str()), "{m}");
            }
        }
        other => panic!("{other:?}"),
    }
    let bad = QdrantSettings {
        urls: vec!["127.0.0.1:6334".into()],
        ..QdrantSettings::default()
    };
    assert!(matches!(
        runtime().block_on(QdrantStore::connect(&bad)),
        Err(QdrantError::Settings(_))
    ));
}

/// Pump manual `i` as the loaders make it.
fn source_document(i: usize) -> ingest::Document {
    let d = pump_manual(i);
    ingest::Document::new(
        d.id.as_str().into(),
        &d.title,
        &d.text,
        d.metadata.into_iter().collect(),
    )
    .unwrap()
}

#[test]
fn two_writers_ingesting_the_same_documents_converge_and_retrieval_fuses_both_legs() {
    let Some(cluster) = Cluster::start(
        "qdrant::two_writers_ingesting_the_same_documents_converge_and_retrieval_fuses_both_legs",
    ) else {
        return;
    };
    let docs: Vec<ingest::Document> = (0..200).map(source_document).collect();
    let rt = runtime();
    let embedder: std::sync::Arc<dyn Embedder> = crate::common::shared_embedder();
    // Two ragd processes would each have their own connection: so do the two writers here.
    let writers: Vec<Blocking> = (0..2)
        .map(|_| {
            let store = rt
                .block_on(QdrantStore::connect(&cluster.settings()))
                .unwrap();
            let config = ragd::jobs::collection_config("shared", embedder.as_ref());
            let c = rt.block_on(store.open_or_create(&config, None)).unwrap();
            Blocking::new(std::sync::Arc::new(c), rt.handle().clone())
        })
        .collect();
    let chunking = ingest::ChunkingStrategy::default();
    let pipeline = ragd::jobs::Pipeline::new(&chunking, embedder.clone(), usize::MAX).unwrap();
    // Both write every document, in opposite orders, at the same time.
    let reversed: Vec<ingest::Document> = docs.iter().rev().cloned().collect();
    std::thread::scope(|s| {
        let a = s.spawn(|| pipeline.ingest(&writers[0], &docs, |_, _| {}).unwrap());
        let b = s.spawn(|| pipeline.ingest(&writers[1], &reversed, |_, _| {}).unwrap());
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(a.failed + b.failed, 0);
        assert_eq!(a.added + a.updated + a.unchanged, 200);
    });
    // The same documents in an embedded collection: the chunk count to expect.
    let dir = tempfile::tempdir().unwrap();
    let store = index::Store::open(dir.path()).unwrap();
    let embedded = ragd::jobs::open_or_create(&store, "shared", embedder.as_ref()).unwrap();
    let expected = pipeline.ingest(&embedded, &docs, |_, _| {}).unwrap();
    let (documents, chunks) = rt.block_on(writers[0].collection().counts()).unwrap();
    assert_eq!((documents, chunks), (200, expected.chunks as u64));
    // Once converged, a third pass writes nothing.
    let again = pipeline.ingest(&writers[1], &docs, |_, _| {}).unwrap();
    assert_eq!((again.unchanged, again.chunks), (200, 0));

    // The retriever reads the cluster through the same seam as the embedded index, both legs
    // in one call, fused by ragd's fusion: the part number and a paraphrase find their pump.
    let retriever = ragd::wiring::retriever(embedder.clone(), None);
    let opts = ragd::rag::RetrieveOptions::default();
    let embedded_searcher = embedded.reader().searcher();
    for i in [4, 99, 180] {
        let q = format!("Which pump has part {}?", part_number(i));
        let remote = retriever.retrieve(&writers[0], &q, &opts).unwrap();
        let local = retriever.retrieve(&embedded_searcher, &q, &opts).unwrap();
        assert_eq!(remote[0].chunk.doc_id, format!("pump-{i:03}"), "{q}");
        assert_eq!(remote[0].chunk.doc_id, local[0].chunk.doc_id);
        assert_eq!(remote[0].chunk.text, local[0].chunk.text);
        assert!(remote[0].stages.dense.is_some() && remote[0].stages.bm25.is_some());
    }

    // The IDF the BM25 leg and the relevance gate weigh a question's terms by. On this
    // three-shard collection (collection-wide IDF, the default) ragd counts each term's chunks
    // over the whole collection; on a one-shard collection left to Qdrant's per-shard IDF it
    // is asked of the index (which has no document-frequency call). Both equal the embedded
    // index's, for terms held by many chunks, by one, and by none.
    let one_shard = QdrantSettings {
        shard_number: 1,
        replication_factor: 1,
        idf: IdfScope::Shard,
        ..cluster.settings()
    };
    let store = rt.block_on(QdrantStore::connect(&one_shard)).unwrap();
    let config = ragd::jobs::collection_config("one_shard", embedder.as_ref());
    let c = rt.block_on(store.open_or_create(&config, None)).unwrap();
    let one = Blocking::new(std::sync::Arc::new(c), rt.handle().clone());
    pipeline.ingest(&one, &docs, |_, _| {}).unwrap();
    let question = format!(
        "Which pump has part {} and a zebra impeller?",
        part_number(4)
    );
    let local = embedded_searcher.term_idf(&question).unwrap();
    assert!(local.iter().any(|(t, _)| t == "zebra"), "{local:?}");
    for (scope, remote) in [(IdfScope::Collection, &writers[0]), (IdfScope::Shard, &one)] {
        let remote = index::ChunkSource::term_idf(remote, &question).unwrap();
        assert_eq!(
            remote.iter().map(|(t, _)| t).collect::<Vec<_>>(),
            local.iter().map(|(t, _)| t).collect::<Vec<_>>(),
            "{scope:?}"
        );
        for ((term, r), (_, l)) in remote.iter().zip(&local) {
            assert!(
                (r - l).abs() <= 1e-3 * l.max(1.0),
                "{scope:?} {term}: {r} on the cluster, {l} embedded"
            );
        }
    }
    assert_eq!(
        index::ChunkSource::analyze(&one, &question).unwrap(),
        embedded_searcher.analyze(&question).unwrap()
    );
}

#[test]
fn the_api_key_is_sent_from_the_settings_or_its_file_and_a_wrong_one_is_refused() {
    let Some(cluster) = Cluster::start_with(
        "qdrant::the_api_key_is_sent_from_the_settings_or_its_file_and_a_wrong_one_is_refused",
        &[("QDRANT__SERVICE__API_KEY", "s3cret-key")],
    ) else {
        return;
    };
    let rt = runtime();
    let connect = |settings: QdrantSettings| {
        rt.block_on(async {
            let store = QdrantStore::connect(&settings).await?;
            store.list().await
        })
    };
    // Without a key, or with a wrong one, every call is refused: a clear error, not a retry
    // loop over the nodes.
    for key in [None, Some("wrong")] {
        let settings = QdrantSettings {
            api_key: key.map(str::to_string),
            ..cluster.settings()
        };
        match connect(settings) {
            Err(QdrantError::Unauthenticated(_)) => {}
            other => panic!("{key:?}: {other:?}"),
        }
    }
    let settings = QdrantSettings {
        api_key: Some("s3cret-key".into()),
        ..cluster.settings()
    };
    assert_eq!(connect(settings).unwrap(), Vec::<String>::new());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qdrant.key");
    std::fs::write(&file, "s3cret-key\n").unwrap();
    let settings = QdrantSettings {
        api_key: Some("wrong".into()),
        api_key_file: Some(file),
        ..cluster.settings()
    };
    assert!(connect(settings).is_ok(), "the file wins over api_key");
}

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1 with its key, as PEM files
/// under `dir` named after `name`.
fn server_pki(dir: &std::path::Path, name: &str) -> [PathBuf; 3] {
    use rcgen::{CertificateParams, KeyPair};
    let ca = crate::common::test_ca(name);
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let paths = [
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    ];
    std::fs::write(&paths[0], ca.pem()).unwrap();
    std::fs::write(&paths[1], cert.pem()).unwrap();
    std::fs::write(&paths[2], key.serialize_pem()).unwrap();
    paths
}

/// A node serving https:// with a certificate a private CA signed: reached with `tls_ca`
/// naming that CA; refused, naming the untrusted certificate, without it or with another CA;
/// and a `tls_ca` that is no certificate file stops ragd before any call.
#[test]
fn a_cluster_behind_a_private_ca_is_reached_with_tls_ca_and_refused_without_it() {
    let pki_dir = tempfile::tempdir().unwrap();
    let [ca, cert, key] = server_pki(pki_dir.path(), "cluster");
    let [other_ca, _, _] = server_pki(pki_dir.path(), "other");
    let Some(cluster) = Cluster::start_nodes(
        "qdrant::a_cluster_behind_a_private_ca_is_reached_with_tls_ca_and_refused_without_it",
        &[
            ("QDRANT__SERVICE__ENABLE_TLS", "true"),
            ("QDRANT__TLS__CERT", cert.to_str().unwrap()),
            ("QDRANT__TLS__KEY", key.to_str().unwrap()),
            ("QDRANT__TLS__CA_CERT", ca.to_str().unwrap()),
        ],
        1,
    ) else {
        return;
    };
    assert!(
        cluster.urls[0].starts_with("https://"),
        "{:?}",
        cluster.urls
    );
    let rt = runtime();
    let connect = |tls_ca: Option<PathBuf>| {
        let settings = QdrantSettings {
            tls_ca,
            shard_number: 1,
            replication_factor: 1,
            ..cluster.settings()
        };
        rt.block_on(async {
            let store = QdrantStore::connect(&settings).await?;
            store.list().await
        })
    };
    assert_eq!(connect(Some(ca)).unwrap(), Vec::<String>::new());
    for tls_ca in [None, Some(other_ca)] {
        match connect(tls_ca.clone()) {
            Err(QdrantError::Unavailable(why)) => assert!(
                why.contains(&cluster.urls[0]) && why.to_lowercase().contains("certificate"),
                "{tls_ca:?}: {why}"
            ),
            other => panic!("{tls_ca:?}: {other:?}"),
        }
    }
    let not_pem = pki_dir.path().join("not.pem");
    std::fs::write(&not_pem, "no certificate here\n").unwrap();
    for bad in [not_pem, pki_dir.path().join("missing.pem")] {
        match connect(Some(bad.clone())) {
            Err(QdrantError::Settings(why)) => {
                assert!(
                    why.contains("qdrant.tls_ca") && why.contains(bad.to_str().unwrap()),
                    "{why}"
                )
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}
