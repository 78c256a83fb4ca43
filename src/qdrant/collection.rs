//! One ragd collection stored as one Qdrant collection.
//!
//! Each chunk is a point: a named dense vector `dense` (the embedder's vector; cosine, ragd's
//! HNSW `m` and `ef_construction`) and a named sparse vector `bm25` (the document side of BM25
//! made by ragd's own analyzer, [`index::sparse_vectors`]). The payload holds what a search
//! result needs (document id, ordinal, title, text, spans, heading path, metadata) and, on the
//! document's first chunk, its content hash, `indexed_with` and chunk count: that point is the
//! document's record. Point ids derive from (document id, ordinal), so writing a document twice
//! writes the same points.
//!
//! The other half of BM25, each query term's IDF, comes from one of two places, fixed when the
//! collection is made ([`IdfScope`]). With `collection` (the default) ragd counts the chunks
//! that hold each query term over the whole collection, through an exact-match index on the
//! chunks' term ids (payload `terms`), and puts the IDF in the query vector (the sparse vector
//! has no modifier): the scores are the embedded index's whatever the shard count. With `shard`
//! Qdrant multiplies in each shard's own IDF (`modifier: idf`).
//!
//! The collection's settings (the ragd [`CollectionConfig`] and its BM25 parameters) live in
//! the Qdrant collection's metadata, so every ragd process reads the same ones.
//!
//! A document is written in three steps, each acknowledged by the cluster before the next: its
//! chunks after the first; a deletion of any chunk past its new end (left by a longer earlier
//! version, or by a write cut short); then the first chunk, which carries the content hash. A
//! document therefore reads as present with a given hash only once all its chunks are stored,
//! and a write cut short anywhere is repeated in full by the next ingest of that document.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use index::sparse_vectors::{Bm25Encoder, Bm25Params, SparseVector};
use index::{
    ChunkId, ChunkRecord, CollectionConfig, DocumentInfo, DocumentRecord, Filter, IndexError,
    ScoredChunk, UpsertOutcome,
};
use parking_lot::RwLock;
use qdrant_client::qdrant::{
    point_id::PointIdOptions, Condition, CountPointsBuilder, DeletePointsBuilder,
    Filter as QFilter, GetPointsBuilder, NamedVectors, PayloadIncludeSelector, PointId,
    PointStruct, QueryBatchPointsBuilder, QueryPoints, QueryPointsBuilder, Range, ScoredPoint,
    ScrollPointsBuilder, SearchParamsBuilder, UpsertPointsBuilder, Value, Vector, WriteOrdering,
    WriteOrderingType,
};
use qdrant_client::Payload;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cluster::Cluster;
use super::error::{QdrantError, Result};
use super::frequencies::{FrequencyCache, Key};
use super::node::Node;
use super::ops::{StoredSettings, LAYOUT};
use super::settings::IdfScope;

/// Documents read per call when a collection's documents are listed.
const DOCUMENTS_PAGE: u32 = 512;

/// Name of the dense vector in each point.
pub const DENSE: &str = "dense";
/// Name of the BM25 sparse vector in each point.
pub const SPARSE: &str = "bm25";
/// The payload field of a chunk's BM25 term ids (collection-wide IDF only), indexed for exact
/// matches.
pub const TERMS: &str = "terms";
/// Writes go to each shard's current leader replica (`medium`): consistent while the cluster
/// is stable, and still accepted while a node is down (`strong` would refuse them until that
/// node's shards had a new permanent leader).
const MEDIUM: WriteOrdering = WriteOrdering {
    r#type: WriteOrderingType::Medium as i32,
};

/// The point id of chunk `ordinal` of document `doc_id`: the first 8 bytes of
/// `sha256(doc_id ‖ 0x00 ‖ ordinal as u32 big-endian)`.
pub fn chunk_id(doc_id: &str, ordinal: u32) -> ChunkId {
    ChunkId(sha256_u64(&[
        doc_id.as_bytes(),
        &[0],
        &ordinal.to_be_bytes(),
    ]))
}

/// The first 8 bytes, big-endian, of the sha256 of `parts` one after the other.
pub(super) fn sha256_u64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A chunk's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChunkPayload {
    doc_id: String,
    ordinal: u32,
    title: String,
    text: String,
    span_start: usize,
    span_end: usize,
    #[serde(default)]
    heading_path: Vec<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    /// `meta` as filters match it (see [`META_PAIRS`]).
    #[serde(default)]
    meta_kv: Vec<String>,
    /// The ids of the chunk's BM25 terms, in a collection with collection-wide IDF (where
    /// counting the chunks that hold a term gives its document frequency); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    terms: Vec<u32>,
    /// On the first chunk only: the document's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    doc: Option<DocPayload>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DocPayload {
    content_hash: String,
    indexed_with: String,
    chunks: u32,
}

fn to_payload<T: Serialize>(value: &T) -> Result<Payload> {
    let json = serde_json::to_value(value).map_err(|e| QdrantError::Internal(e.to_string()))?;
    Payload::try_from(json).map_err(|e| QdrantError::Internal(e.to_string()))
}

fn from_payload<T: for<'de> Deserialize<'de>>(payload: HashMap<String, Value>) -> Result<T> {
    let map: serde_json::Map<String, serde_json::Value> = payload
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::from(v)))
        .collect();
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| QdrantError::Internal(format!("a point's payload: {e}")))
}

fn point_u64(id: Option<PointId>) -> Result<u64> {
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Num(n)) => Ok(n),
        other => Err(QdrantError::Internal(format!(
            "a point id that ragd did not write: {other:?}"
        ))),
    }
}

/// The payload field filters match: one keyword `key\u{1f}value` per metadata pair (as the
/// tantivy index's `meta` field), so any key works, dots and all, under one payload index.
pub const META_PAIRS: &str = "meta_kv";

fn meta_pair(key: &str, value: &str) -> String {
    format!("{key}\u{1f}{value}")
}

/// The Qdrant filter of a ragd filter (`None` when it matches everything).
fn qfilter(filter: &Filter) -> Option<QFilter> {
    (!filter.is_empty()).then(|| {
        QFilter::must(
            filter
                .must
                .iter()
                .map(|(k, v)| Condition::matches(META_PAIRS, meta_pair(k, v))),
        )
    })
}

fn scored(points: Vec<ScoredPoint>) -> Result<Vec<ScoredChunk>> {
    points
        .into_iter()
        .map(|p| {
            Ok(ScoredChunk {
                id: ChunkId(point_u64(p.id)?),
                score: p.score,
            })
        })
        .collect()
}

/// One ragd collection on the cluster.
#[derive(Debug)]
pub struct QdrantCollection {
    cluster: Arc<Cluster>,
    qname: String,
    config: CollectionConfig,
    bm25: RwLock<Option<Bm25Params>>,
    idf: IdfScope,
    shards: u32,
    frequencies: Arc<FrequencyCache>,
}

impl QdrantCollection {
    pub(super) fn new(
        cluster: Arc<Cluster>,
        qname: String,
        settings: StoredSettings,
        shards: u32,
        frequencies: Arc<FrequencyCache>,
    ) -> Self {
        Self {
            cluster,
            qname,
            config: settings.config,
            bm25: RwLock::new(settings.bm25),
            idf: settings.idf,
            shards,
            frequencies,
        }
    }

    /// The collection's ragd configuration, as stored on the cluster.
    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// The Qdrant collection's name.
    pub fn qdrant_name(&self) -> &str {
        &self.qname
    }

    /// `op` on the cluster ([`Cluster::call`]), where Qdrant's "not found" means that this
    /// collection was dropped meanwhile (by another server): the index crate's
    /// `CollectionNotFound`, named as ragd names it.
    async fn call<'a, T, F, Fut>(&'a self, op: F) -> Result<T>
    where
        F: Fn(&'a Node) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        match self.cluster.call(op).await {
            Err(QdrantError::Missing(_)) => Err(IndexError::CollectionNotFound {
                name: self.config.name.clone(),
            }
            .into()),
            other => other,
        }
    }

    /// The encoder of the BM25 vectors, measuring and storing the parameters from `docs` on the
    /// collection's first write.
    async fn encoder(&self, docs: &[&DocumentRecord]) -> Result<Bm25Encoder> {
        if let Some(params) = *self.bm25.read() {
            return Ok(Bm25Encoder::new(self.config.bm25, params));
        }
        let samples = docs
            .iter()
            .flat_map(|d| d.chunks.iter().map(|c| (d.title.as_str(), c.text.as_str())));
        let Some(params) = Bm25Params::measured(self.config.bm25, samples) else {
            // No chunk to write, so nothing to encode: any parameters do.
            return Ok(Bm25Encoder::new(self.config.bm25, Bm25Params::UNMEASURED));
        };
        let settings = StoredSettings {
            layout: LAYOUT,
            config: self.config.clone(),
            bm25: Some(params),
            idf: self.idf,
        };
        super::ops::write_settings(&self.cluster, &self.qname, &settings).await?;
        // Another process may have stored its own at the same moment: use what the cluster
        // holds now, so that both go on with the same.
        let stored = super::ops::read_settings(&self.cluster, &self.qname).await?;
        let params = stored.bm25.unwrap_or(params);
        *self.bm25.write() = Some(params);
        Ok(Bm25Encoder::new(self.config.bm25, params))
    }

    /// Writes `docs` (each with all its chunks and vectors); a document whose content hash
    /// and `indexed_with` are unchanged is not written. Returns what happened to each.
    pub async fn upsert_documents(&self, docs: &[DocumentRecord]) -> Result<Vec<UpsertOutcome>> {
        // Validated (as the embedded index does) and normalised: every vector is sent at norm
        // ~1, so the cosine Qdrant computes is the one the embedded index computes.
        let vectors = docs
            .iter()
            .map(|d| index::writer::validate_document(d, self.config.dimension))
            .collect::<Result<Vec<_>, IndexError>>()?;
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        let existing = self.get_documents(&ids).await?;
        let mut outcomes = Vec::with_capacity(docs.len());
        let mut changed = Vec::new();
        for ((d, v), stored) in docs.iter().zip(vectors).zip(existing) {
            let outcome = match stored {
                Some(r) if r.content_hash == d.content_hash && r.indexed_with == d.indexed_with => {
                    UpsertOutcome::Unchanged
                }
                Some(_) => UpsertOutcome::Updated,
                None => UpsertOutcome::Added,
            };
            if outcome != UpsertOutcome::Unchanged {
                changed.push((d, v));
            }
            outcomes.push(outcome);
        }
        if changed.is_empty() {
            return Ok(outcomes);
        }
        let (changed, vectors): (Vec<&DocumentRecord>, Vec<Vec<Vec<f32>>>) =
            changed.into_iter().unzip();
        let encoder = self.encoder(&changed).await?;
        let (mut rest, mut firsts) = (Vec::new(), Vec::new());
        for (d, normalised) in changed.iter().zip(vectors) {
            for (ordinal, (chunk, vector)) in d.chunks.iter().zip(normalised).enumerate() {
                let ordinal = ordinal as u32;
                let SparseVector { indices, values } = encoder.document(&d.title, &chunk.text);
                let payload = ChunkPayload {
                    doc_id: d.id.clone(),
                    ordinal,
                    title: d.title.clone(),
                    text: chunk.text.clone(),
                    span_start: chunk.span_start,
                    span_end: chunk.span_end,
                    heading_path: chunk.heading_path.clone(),
                    meta: d.metadata.clone(),
                    meta_kv: d.metadata.iter().map(|(k, v)| meta_pair(k, v)).collect(),
                    terms: match self.idf {
                        IdfScope::Collection => indices.clone(),
                        IdfScope::Shard => Vec::new(),
                    },
                    doc: (ordinal == 0).then(|| DocPayload {
                        content_hash: d.content_hash.clone(),
                        indexed_with: d.indexed_with.clone(),
                        chunks: d.chunks.len() as u32,
                    }),
                };
                let mut vectors =
                    NamedVectors::default().add_vector(DENSE, Vector::new_dense(vector));
                if !indices.is_empty() {
                    vectors = vectors.add_vector(SPARSE, Vector::new_sparse(indices, values));
                }
                let point =
                    PointStruct::new(chunk_id(&d.id, ordinal).0, vectors, to_payload(&payload)?);
                if ordinal == 0 {
                    firsts.push(point);
                } else {
                    rest.push(point);
                }
            }
        }
        self.upsert(rest).await?;
        // Chunks past each document's new end: a longer earlier version's, or a cut write's.
        let stale = QFilter::should(changed.iter().map(|d| {
            Condition::from(QFilter::must([
                Condition::matches("doc_id", d.id.clone()),
                Condition::range(
                    "ordinal",
                    Range {
                        gte: Some(d.chunks.len().max(1) as f64),
                        ..Default::default()
                    },
                ),
            ]))
        }));
        self.delete_where(stale).await?;
        // A document with no chunk keeps no point at all.
        let empty: Vec<&str> = changed
            .iter()
            .filter(|d| d.chunks.is_empty())
            .map(|d| d.id.as_str())
            .collect();
        if !empty.is_empty() {
            self.delete_where(QFilter::must([Condition::matches(
                "doc_id",
                empty.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )]))
            .await?;
        }
        self.upsert(firsts).await?;
        Ok(outcomes)
    }

    async fn upsert(&self, points: Vec<PointStruct>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let qname = &self.qname;
        self.call(|c| {
            let request = UpsertPointsBuilder::new(qname, points.clone())
                .wait(true)
                .ordering(MEDIUM);
            async move { c.upsert_points(request).await }
        })
        .await?;
        Ok(())
    }

    async fn delete_where(&self, filter: QFilter) -> Result<()> {
        let qname = &self.qname;
        self.call(|c| {
            let request = DeletePointsBuilder::new(qname)
                .points(filter.clone())
                .wait(true)
                .ordering(MEDIUM);
            async move { c.delete_points(request).await }
        })
        .await?;
        Ok(())
    }

    /// Deletes documents `ids` (every chunk of each); returns how many existed.
    pub async fn delete_documents(&self, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let existing = self.get_documents(&refs).await?.iter().flatten().count() as u64;
        // The records go first: a deletion cut short leaves chunks without a record, which the
        // next write of that document replaces and a repeated deletion removes.
        let records: Vec<PointId> = refs.iter().map(|id| chunk_id(id, 0).0.into()).collect();
        self.delete_where(QFilter::must([Condition::has_id(records)]))
            .await?;
        self.delete_where(QFilter::must([Condition::matches("doc_id", ids.to_vec())]))
            .await?;
        Ok(existing)
    }

    /// Document `id`, if stored.
    pub async fn get_document(&self, id: &str) -> Result<Option<DocumentInfo>> {
        Ok(self.get_documents(&[id]).await?.pop().flatten())
    }

    /// Documents `ids`, in order (`None` for one not stored), read in one call: each
    /// document's record is its first chunk's payload.
    pub async fn get_documents(&self, ids: &[&str]) -> Result<Vec<Option<DocumentInfo>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let points: Vec<PointId> = ids.iter().map(|id| chunk_id(id, 0).0.into()).collect();
        let qname = &self.qname;
        let got = self
            .call(|c| {
                let request = GetPointsBuilder::new(qname, points.clone())
                    .with_payload(qdrant_client::qdrant::PayloadExcludeSelector::new(vec![
                        "text".to_string(),
                        TERMS.to_string(),
                    ]))
                    .with_vectors(false);
                async move { c.get_points(request).await }
            })
            .await?;
        #[derive(Deserialize)]
        struct First {
            doc_id: String,
            title: String,
            #[serde(default)]
            meta: BTreeMap<String, String>,
            doc: Option<DocPayload>,
        }
        let mut by_id = HashMap::new();
        for p in got.result {
            let first: First = from_payload(p.payload)?;
            // A first chunk without the record is a write cut short: not stored yet.
            let Some(doc) = first.doc else {
                continue;
            };
            let info = DocumentInfo {
                chunk_ids: (0..doc.chunks)
                    .map(|o| chunk_id(&first.doc_id, o))
                    .collect(),
                id: first.doc_id,
                title: first.title,
                metadata: first.meta,
                content_hash: doc.content_hash,
                indexed_with: doc.indexed_with,
                seq: 0,
            };
            by_id.insert(info.id.clone(), info);
        }
        Ok(ids.iter().map(|id| by_id.get(*id).cloned()).collect())
    }

    fn dense_query(&self, vector: &[f32], k: usize, filter: &Filter) -> Result<QueryPoints> {
        let vector = index::dense::normalise(vector, self.config.dimension)?;
        let k = index::reader::clamp_k(k)?;
        let ef = self.config.hnsw.ef_search.max(k) as u64;
        let mut q = QueryPointsBuilder::new(&self.qname)
            .query(vector)
            .using(DENSE)
            .limit(k as u64)
            .params(SearchParamsBuilder::default().hnsw_ef(ef))
            .with_payload(false);
        if let Some(f) = qfilter(filter) {
            q = q.filter(f);
        }
        Ok(q.build())
    }

    /// The encoder with the parameters known so far (the query side and the analyzer need
    /// none; the document side of a collection never written to has none).
    fn current_encoder(&self) -> Bm25Encoder {
        let params = (*self.bm25.read()).unwrap_or(Bm25Params::UNMEASURED);
        Bm25Encoder::new(self.config.bm25, params)
    }

    /// The distinct terms of `text`, in order, as the collection's BM25 analyzer makes them.
    pub fn analyze(&self, text: &str) -> Vec<String> {
        self.current_encoder().analyze(text)
    }

    /// The distinct terms of `text` with the IDF Qdrant weighs each by.
    ///
    /// Qdrant has no document-frequency call, so each term is asked of the index itself, all
    /// in one batch: a sparse query of that term alone, weight 1, returns the chunk it scores
    /// highest with that score, which is the term's IDF (`modifier: idf`) times the document
    /// side of BM25 for the term in that chunk; ragd computes that side from the chunk's title
    /// and text, and divides it out. With several shards the IDF is the one of the shard that
    /// holds that chunk, as a search weighs it there. A term no chunk holds has the IDF of a
    /// document frequency of 0 among a shard's share of the chunks.
    pub async fn term_idf(&self, text: &str) -> Result<Vec<(String, f32)>> {
        let terms = self.analyze(text);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        if self.idf == IdfScope::Collection {
            let ids: Vec<u32> = terms
                .iter()
                .map(|t| index::sparse_vectors::term_id(t))
                .collect();
            let idf = self.collection_idf(&ids).await?;
            return Ok(terms.into_iter().zip(idf).collect());
        }
        let encoder = self.current_encoder();
        let queries: Vec<QueryPoints> = terms
            .iter()
            .map(|t| {
                let probe = [(index::sparse_vectors::term_id(t), 1.0f32)];
                QueryPointsBuilder::new(&self.qname)
                    .query(qdrant_client::qdrant::Query::new_nearest(probe.as_slice()))
                    .using(SPARSE)
                    .limit(1)
                    .with_payload(PayloadIncludeSelector {
                        fields: vec!["title".into(), "text".into()],
                    })
                    .build()
            })
            .collect();
        #[derive(Deserialize)]
        struct Text {
            title: String,
            text: String,
        }
        let mut idf = Vec::with_capacity(terms.len());
        let mut absent = Vec::new();
        // Terms often share their top chunk: each chunk is analysed once.
        let mut sides: HashMap<u64, SparseVector> = HashMap::new();
        for (term, found) in terms.into_iter().zip(self.query_batch(queries).await?) {
            let top = found.into_iter().next();
            let weighed = match top {
                Some(p) => {
                    let score = p.score;
                    let side = match sides.entry(point_u64(p.id)?) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            let chunk: Text = from_payload(p.payload)?;
                            e.insert(encoder.document(&chunk.title, &chunk.text))
                        }
                    }
                    .weight(index::sparse_vectors::term_id(&term));
                    (side > 0.0).then(|| score / side)
                }
                None => None,
            };
            if weighed.is_none() {
                absent.push(idf.len());
            }
            idf.push((term, weighed.unwrap_or(0.0)));
        }
        if !absent.is_empty() {
            // Qdrant's estimate (cheap; an exact count reads every point) is close enough for
            // the IDF of a term no chunk holds.
            let chunks = self.count(None, false).await?;
            let n = chunks as f64 / f64::from(self.shards);
            let unseen = (1.0 + (n + 0.5) / 0.5).ln() as f32;
            for i in absent {
                idf[i].1 = unseen;
            }
        }
        Ok(idf)
    }

    /// The IDF of each term id over the whole collection, as tantivy computes it: each term's
    /// chunks counted through the [`TERMS`] index and the chunks in all, the counts not kept
    /// from a recent query (`frequencies.rs`) all asked at once.
    async fn collection_idf(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let keys: Vec<Key> = std::iter::once(None)
            .chain(ids.iter().map(|&id| Some(id)))
            .map(|term| Key {
                collection: self.qname.clone(),
                term,
            })
            .collect();
        let mut counts: Vec<Option<u64>> = keys.iter().map(|k| self.frequencies.get(k)).collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| counts[i].is_none()).collect();
        if !missing.is_empty() {
            let at = std::time::Instant::now();
            let asked = missing.iter().map(|&i| {
                let filter = keys[i]
                    .term
                    .map(|id| QFilter::must([Condition::matches(TERMS, i64::from(id))]));
                self.count(filter, true)
            });
            let got = futures_util::future::try_join_all(asked).await?;
            for (i, count) in missing.into_iter().zip(got) {
                self.frequencies.put(keys[i].clone(), count, at);
                counts[i] = Some(count);
            }
        }
        let chunks = counts[0].unwrap_or(0);
        Ok(counts[1..]
            .iter()
            .map(|df| index::sparse_vectors::idf(chunks, df.unwrap_or(0)))
            .collect())
    }

    async fn sparse_query(&self, query: &str, k: usize, filter: &Filter) -> Result<QueryPoints> {
        let k = index::reader::clamp_k(k)?;
        let SparseVector {
            indices,
            mut values,
        } = self.current_encoder().query(query)?;
        if self.idf == IdfScope::Collection {
            for (value, idf) in values.iter_mut().zip(self.collection_idf(&indices).await?) {
                *value *= idf;
            }
        }
        let pairs: Vec<(u32, f32)> = indices.into_iter().zip(values).collect();
        let mut q = QueryPointsBuilder::new(&self.qname)
            .query(qdrant_client::qdrant::Query::new_nearest(pairs.as_slice()))
            .using(SPARSE)
            .limit(k as u64)
            .with_payload(false);
        if let Some(f) = qfilter(filter) {
            q = q.filter(f);
        }
        Ok(q.build())
    }

    /// The points each of `queries` finds, in order, in one call.
    async fn query_batch(&self, queries: Vec<QueryPoints>) -> Result<Vec<Vec<ScoredPoint>>> {
        let qname = &self.qname;
        let got = self
            .call(|c| {
                let request = QueryBatchPointsBuilder::new(qname, queries.clone());
                async move { c.query_batch(request).await }
            })
            .await?;
        Ok(got.result.into_iter().map(|r| r.result).collect())
    }

    async fn batch(&self, queries: Vec<QueryPoints>) -> Result<Vec<Vec<ScoredChunk>>> {
        self.query_batch(queries)
            .await?
            .into_iter()
            .map(scored)
            .collect()
    }

    /// Top `k` chunks by cosine similarity to `vector`, restricted by `filter`.
    pub async fn search_dense(
        &self,
        vector: &[f32],
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<ScoredChunk>> {
        let q = self.dense_query(vector, k, filter)?;
        Ok(self.batch(vec![q]).await?.pop().unwrap_or_default())
    }

    /// Top `k` chunks by BM25 for `query`, restricted by `filter`.
    pub async fn search_bm25(
        &self,
        query: &str,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<ScoredChunk>> {
        let q = self.sparse_query(query, k, filter).await?;
        Ok(self.batch(vec![q]).await?.pop().unwrap_or_default())
    }

    /// Both legs of a hybrid search in one call: the top `k_dense` by cosine similarity and the
    /// top `k_sparse` by BM25 (empty when the query has no searchable term).
    pub async fn search_both(
        &self,
        vector: &[f32],
        query: &str,
        k_dense: usize,
        k_sparse: usize,
        filter: &Filter,
    ) -> Result<(Vec<ScoredChunk>, Vec<ScoredChunk>)> {
        let dense = self.dense_query(vector, k_dense, filter)?;
        let sparse = match self.sparse_query(query, k_sparse, filter).await {
            Ok(q) => Some(q),
            Err(QdrantError::Index(IndexError::EmptyQuery)) => None,
            Err(e) => return Err(e),
        };
        let with_sparse = sparse.is_some();
        let mut lists = self
            .batch(std::iter::once(dense).chain(sparse).collect())
            .await?
            .into_iter();
        let dense = lists.next().unwrap_or_default();
        let sparse = if with_sparse {
            lists.next().unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok((dense, sparse))
    }

    /// The chunks `ids`, in order (`None` for an id not stored).
    pub async fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<ChunkRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let points: Vec<PointId> = ids.iter().map(|id| id.0.into()).collect();
        let qname = &self.qname;
        let got = self
            .call(|c| {
                let request = GetPointsBuilder::new(qname, points.clone())
                    .with_payload(qdrant_client::qdrant::PayloadExcludeSelector::new(vec![
                        TERMS.to_string(),
                    ]))
                    .with_vectors(false);
                async move { c.get_points(request).await }
            })
            .await?;
        let mut by_id = HashMap::new();
        for p in got.result {
            let id = point_u64(p.id)?;
            let c: ChunkPayload = from_payload(p.payload)?;
            by_id.insert(
                id,
                ChunkRecord {
                    id: ChunkId(id),
                    doc_id: c.doc_id,
                    ordinal: c.ordinal,
                    title: c.title,
                    text: c.text,
                    span_start: c.span_start,
                    span_end: c.span_end,
                    heading_path: c.heading_path,
                    metadata: c.meta,
                },
            );
        }
        Ok(ids.iter().map(|id| by_id.get(&id.0).cloned()).collect())
    }

    /// One page of the stored documents (those whose record is written: complete ones), in
    /// point order from `offset`: each one's id and metadata, and where the next page starts.
    pub async fn documents_page(
        &self,
        offset: Option<PointId>,
    ) -> Result<(Vec<(String, BTreeMap<String, String>)>, Option<PointId>)> {
        #[derive(Deserialize)]
        struct First {
            doc_id: String,
            #[serde(default)]
            meta: BTreeMap<String, String>,
            doc: Option<DocPayload>,
        }
        let qname = &self.qname;
        let page = self
            .call(|c| {
                let mut request = ScrollPointsBuilder::new(qname)
                    .filter(QFilter::must([Condition::matches("ordinal", 0i64)]))
                    .limit(DOCUMENTS_PAGE)
                    .with_payload(PayloadIncludeSelector {
                        fields: vec!["doc_id".into(), "meta".into(), "doc".into()],
                    })
                    .with_vectors(false);
                if let Some(o) = offset.clone() {
                    request = request.offset(o);
                }
                async move { c.scroll(request).await }
            })
            .await?;
        let mut documents = Vec::with_capacity(page.result.len());
        for p in page.result {
            let first: First = from_payload(p.payload)?;
            if first.doc.is_some() {
                documents.push((first.doc_id, first.meta));
            }
        }
        Ok((documents, page.next_page_offset))
    }

    /// Documents and chunks stored (exact counts).
    pub async fn counts(&self) -> Result<(u64, u64)> {
        let first_chunks = QFilter::must([Condition::matches("ordinal", 0i64)]);
        let documents = self.count(Some(first_chunks), true).await?;
        let chunks = self.count(None, true).await?;
        Ok((documents, chunks))
    }

    /// Points matching `filter` (all without one): `exact`, or Qdrant's cheap estimate.
    async fn count(&self, filter: Option<QFilter>, exact: bool) -> Result<u64> {
        let qname = &self.qname;
        let got = self
            .call(|c| {
                let mut request = CountPointsBuilder::new(qname).exact(exact);
                if let Some(f) = filter.clone() {
                    request = request.filter(f);
                }
                async move { c.count(request).await }
            })
            .await?;
        Ok(got.result.map(|r| r.count).unwrap_or(0))
    }
}
