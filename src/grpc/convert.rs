//! Conversions between the protobuf messages and the service's domain types. Prost types go no
//! further than this file: handlers convert a request into a domain value here, call a plain
//! function, and convert its result back.
//!
//! Every conversion destructures the whole message (`let pb::X { a, b } = x;`), so a field
//! added to the proto breaks the build here instead of being silently ignored. Requests are
//! validated while they are converted: a bad value is [`ServiceError::InvalidArgument`].

use std::path::PathBuf;

use index::fusion::{Fusion, Normalization};
use index::{ChunkRecord, Filter};
use ingest::{ChunkingStrategy, Document};

use super::pb;
use crate::error::{Result, ServiceError};
use crate::jobs::{IngestSummary, JobRecord, JobSpec, JobState};
use crate::rag::retrieve::DEFAULT_FUSION;
use crate::rag::{Answer, AnswerConfig, Hit, Mode, RetrieveOptions};
use crate::reindex::ReindexView;
use crate::snapshots::SnapshotView;
use crate::state::{AskQuery, CollectionInfo, DocumentView, SearchQuery};

/// Largest `k` a search may ask for.
pub const MAX_SEARCH_K: u32 = 1000;

/// Largest `k` an Ask may ask for: every source must fit one prompt, and a small model's
/// context holds a handful of chunks (more are retrieved only to be dropped).
pub const MAX_ASK_K: u32 = 50;

/// Longest query or question, in bytes. The embedder reads only the first 256 tokens (about
/// 1 KB of English), so a longer query only costs BM25 time; 16 KiB leaves room for pasted
/// paragraphs.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Refuses an empty or over-long query.
fn check_query(what: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(invalid(format!("the {what} is empty")));
    }
    if text.len() > MAX_QUERY_BYTES {
        return Err(invalid(format!(
            "the {what} is {} bytes; at most {MAX_QUERY_BYTES}",
            text.len()
        )));
    }
    Ok(())
}
/// Largest first-stage candidate count.
pub const MAX_CANDIDATES: u32 = 10_000;
/// Most stop strings an Ask may give (OpenAI's limit).
pub const MAX_STOP_STRINGS: usize = 4;

fn invalid(msg: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument(msg.into())
}

/// Parses a chunking strategy given as JSON; empty means the default.
pub fn chunker(json: &str) -> Result<ChunkingStrategy> {
    if json.trim().is_empty() {
        return Ok(ChunkingStrategy::default());
    }
    serde_json::from_str(json).map_err(|e| invalid(format!("chunker: {e}")))
}

/// A domain document from a streamed input; `Err((id, why))` for an unusable one.
pub fn document(input: pb::DocumentInput) -> std::result::Result<Document, (String, String)> {
    let pb::DocumentInput {
        id,
        title,
        text,
        metadata,
    } = input;
    crate::api::document(id, &title, &text, metadata.into_iter().collect())
}

/// A collection name from a create request.
pub fn create_collection(r: pb::CreateCollectionRequest) -> String {
    let pb::CreateCollectionRequest { name } = r;
    name
}

/// A collection name from a delete request.
pub fn delete_collection(r: pb::DeleteCollectionRequest) -> String {
    let pb::DeleteCollectionRequest { name } = r;
    name
}

/// The list of collections.
pub fn list_collections(
    r: pb::ListCollectionsRequest,
    list: impl FnOnce() -> Result<Vec<CollectionInfo>>,
) -> Result<pb::ListCollectionsResponse> {
    let pb::ListCollectionsRequest {} = r;
    Ok(pb::ListCollectionsResponse {
        collections: list()?.into_iter().map(Into::into).collect(),
    })
}

/// The collection of a snapshot request.
pub fn create_snapshot(r: pb::CreateSnapshotRequest) -> Result<String> {
    let pb::CreateSnapshotRequest { collection } = r;
    index::config::validate_collection_name(&collection)?;
    Ok(collection)
}

/// The collection a snapshot listing is limited to, if any.
pub fn list_snapshots(r: pb::ListSnapshotsRequest) -> Result<Option<String>> {
    let pb::ListSnapshotsRequest { collection } = r;
    if collection.is_empty() {
        return Ok(None);
    }
    index::config::validate_collection_name(&collection)?;
    Ok(Some(collection))
}

/// (snapshot name, new collection name) of a restore request.
pub fn restore_snapshot(r: pb::RestoreSnapshotRequest) -> Result<(String, String)> {
    let pb::RestoreSnapshotRequest {
        snapshot,
        collection,
    } = r;
    index::config::validate_collection_name(&collection)?;
    Ok((snapshot, collection))
}

impl From<SnapshotView> for pb::Snapshot {
    fn from(v: SnapshotView) -> Self {
        let SnapshotView {
            name,
            bytes,
            info,
            export_ms,
        } = v;
        let index::SnapshotInfo {
            format: _,
            collection,
            seq,
            documents,
            chunks,
            created_unix_ms,
            embedding_model,
            dimension,
            files: _,
        } = info;
        Self {
            name,
            collection,
            seq,
            documents,
            chunks,
            created_unix_ms,
            embedding_model,
            dimension: dimension as u32,
            bytes,
            export_ms,
        }
    }
}

/// What a client shows of a snapshot (the CLI prints local and remote ones through it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SnapshotLine {
    /// The archive's file name.
    pub name: String,
    /// The collection it was taken of.
    pub collection: String,
    /// The last write it holds.
    pub seq: u64,
    /// Documents in it.
    pub documents: u64,
    /// Chunks in it.
    pub chunks: u64,
    /// When it was taken, Unix milliseconds.
    pub created_unix_ms: u64,
    /// The embedder of its vectors.
    pub embedding_model: String,
    /// Their dimension.
    pub dimension: u32,
    /// The archive's size.
    pub bytes: u64,
    /// When just taken: how long writes waited for the store's export, in ms.
    pub export_ms: f64,
}

impl From<pb::Snapshot> for SnapshotLine {
    fn from(s: pb::Snapshot) -> Self {
        let pb::Snapshot {
            name,
            collection,
            seq,
            documents,
            chunks,
            created_unix_ms,
            embedding_model,
            dimension,
            bytes,
            export_ms,
        } = s;
        Self {
            name,
            collection,
            seq,
            documents,
            chunks,
            created_unix_ms,
            embedding_model,
            dimension,
            bytes,
            export_ms,
        }
    }
}

impl From<SnapshotView> for SnapshotLine {
    fn from(v: SnapshotView) -> Self {
        pb::Snapshot::from(v).into()
    }
}

/// A job id from a get, watch or cancel request.
pub fn job_id(id: String) -> Result<String> {
    if id.trim().is_empty() {
        Err(invalid("the job id is empty"))
    } else {
        Ok(id)
    }
}

/// Jobs as listed.
pub fn list_jobs(r: pb::ListIngestJobsRequest, jobs: Vec<JobRecord>) -> pb::ListIngestJobsResponse {
    let pb::ListIngestJobsRequest {} = r;
    pb::ListIngestJobsResponse {
        jobs: jobs.into_iter().map(Into::into).collect(),
    }
}

/// (collection, ids) of a delete request.
pub fn delete_documents(r: pb::DeleteDocumentsRequest) -> Result<(String, Vec<String>)> {
    let pb::DeleteDocumentsRequest { collection, ids } = r;
    if ids.is_empty() {
        return Err(invalid("no document ids given"));
    }
    Ok((collection, ids))
}

/// The delete response.
pub fn deleted((deleted, not_found): (u64, Vec<String>)) -> pb::DeleteDocumentsResponse {
    pb::DeleteDocumentsResponse { deleted, not_found }
}

/// (collection, id, include_chunks) of a get request.
pub fn get_document(r: pb::GetDocumentRequest) -> Result<(String, String, bool)> {
    let pb::GetDocumentRequest {
        collection,
        id,
        include_chunks,
    } = r;
    if id.is_empty() {
        return Err(invalid("the document id is empty"));
    }
    Ok((collection, id, include_chunks))
}

/// One message of a streamed ingestion, converted.
pub struct IngestBatch {
    /// The collection named (empty after the first message).
    pub collection: String,
    /// The chunker JSON (first message only).
    pub chunker: String,
    /// Usable documents.
    pub documents: Vec<Document>,
    /// (id, why) of unusable ones.
    pub rejected: Vec<(String, String)>,
}

impl From<pb::IngestDocumentsRequest> for IngestBatch {
    fn from(r: pb::IngestDocumentsRequest) -> Self {
        let pb::IngestDocumentsRequest {
            collection,
            chunker,
            documents,
        } = r;
        let (mut ok, mut rejected) = (Vec::new(), Vec::new());
        for d in documents {
            match document(d) {
                Ok(doc) => ok.push(doc),
                Err(e) => rejected.push(e),
            }
        }
        Self {
            collection,
            chunker,
            documents: ok,
            rejected,
        }
    }
}

impl From<index::ReindexProgress> for pb::ReindexEvent {
    fn from(p: index::ReindexProgress) -> Self {
        let index::ReindexProgress {
            round,
            documents_done,
            documents_total,
            chunks_embedded,
        } = p;
        Self {
            event: Some(pb::reindex_event::Event::Progress(pb::ReindexProgress {
                round,
                documents_done,
                documents_total,
                chunks_embedded,
            })),
        }
    }
}

impl From<(CollectionInfo, ReindexView)> for pb::ReindexEvent {
    fn from((collection, view): (CollectionInfo, ReindexView)) -> Self {
        let ReindexView {
            previous_fingerprint,
            searches_served,
            note,
            report,
        } = view;
        let index::ReindexReport {
            documents: _,
            chunks: _,
            chunks_embedded,
            rounds,
            caught_up,
            seq,
            writes_waited_ms,
            switch_ms,
            total_ms,
        } = report;
        let done = pb::ReindexResult {
            collection: Some(collection.into()),
            previous_fingerprint,
            searches_served,
            note,
            chunks_embedded,
            rounds,
            caught_up,
            seq,
            writes_waited_ms,
            switch_ms,
            total_ms,
        };
        Self {
            event: Some(pb::reindex_event::Event::Done(done)),
        }
    }
}

impl From<pb::ReindexResult> for (CollectionInfo, ReindexView) {
    fn from(done: pb::ReindexResult) -> Self {
        let pb::ReindexResult {
            collection,
            previous_fingerprint,
            searches_served,
            note,
            chunks_embedded,
            rounds,
            caught_up,
            seq,
            writes_waited_ms,
            switch_ms,
            total_ms,
        } = done;
        let info = CollectionInfo::from(collection.unwrap_or_default());
        let report = index::ReindexReport {
            documents: info.documents,
            chunks: info.chunks,
            chunks_embedded,
            rounds,
            caught_up,
            seq,
            writes_waited_ms,
            switch_ms,
            total_ms,
        };
        let view = ReindexView {
            previous_fingerprint,
            searches_served,
            note,
            report,
        };
        (info, view)
    }
}

impl From<CollectionInfo> for pb::Collection {
    fn from(c: CollectionInfo) -> Self {
        let CollectionInfo {
            name,
            embedding_model,
            dimension,
            embedder_fingerprint,
            documents,
            chunks,
        } = c;
        Self {
            name,
            embedding_model,
            dimension: dimension as u32,
            embedder_fingerprint,
            documents,
            chunks,
        }
    }
}

impl From<IngestSummary> for pb::IngestDocumentsResponse {
    fn from(s: IngestSummary) -> Self {
        let IngestSummary {
            added,
            updated,
            unchanged,
            failed,
            chunks,
            deleted,
            errors,
        } = s;
        Self {
            counts: Some(pb::IngestCounts {
                added: added as u64,
                updated: updated as u64,
                unchanged: unchanged as u64,
                failed: failed as u64,
                chunks: chunks as u64,
                deleted: deleted as u64,
            }),
            errors: errors.into_iter().map(doc_error).collect(),
        }
    }
}

fn doc_error((document_id, message): (String, String)) -> pb::DocumentError {
    pb::DocumentError {
        document_id,
        message,
    }
}

impl TryFrom<pb::StartIngestJobRequest> for JobSpec {
    type Error = ServiceError;

    fn try_from(r: pb::StartIngestJobRequest) -> Result<Self> {
        let pb::StartIngestJobRequest {
            collection,
            paths,
            chunker: strategy,
            sync,
        } = r;
        Ok(Self {
            collection,
            paths: paths.into_iter().map(PathBuf::from).collect(),
            chunker: chunker(&strategy)?,
            sync,
        })
    }
}

fn job_state(s: JobState) -> pb::JobState {
    match s {
        JobState::Queued => pb::JobState::Queued,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
    }
}

impl From<JobRecord> for pb::IngestJob {
    fn from(r: JobRecord) -> Self {
        let JobRecord {
            id,
            spec,
            state,
            scanned: _,
            progress: p,
            cursor: _,
            errors,
            failure,
            created_unix_ms,
            finished_unix_ms,
            resumed,
        } = r;
        let progress = pb::JobProgress {
            documents_total: p.documents_total,
            documents_done: p.documents_done,
            bytes_total: p.bytes_total,
            bytes_done: p.bytes_done,
            counts: Some(pb::IngestCounts {
                added: p.added,
                updated: p.updated,
                unchanged: p.unchanged,
                failed: p.failed,
                chunks: p.chunks,
                deleted: p.deleted,
            }),
            documents_per_second: p.documents_per_second,
            eta_seconds: p.eta_seconds,
        };
        Self {
            id,
            collection: spec.collection,
            paths: spec.paths.iter().map(|p| p.display().to_string()).collect(),
            state: job_state(state) as i32,
            progress: Some(progress),
            errors: errors.into_iter().map(doc_error).collect(),
            failure: failure.unwrap_or_default(),
            created_unix_ms,
            finished_unix_ms: finished_unix_ms.unwrap_or_default(),
            resumed,
        }
    }
}

impl From<ChunkRecord> for pb::Chunk {
    fn from(c: ChunkRecord) -> Self {
        let ChunkRecord {
            id,
            doc_id,
            ordinal,
            title,
            text,
            span_start,
            span_end,
            heading_path,
            metadata,
        } = c;
        Self {
            id: id.0,
            document_id: doc_id,
            ordinal,
            title,
            text,
            span_start: span_start as u64,
            span_end: span_end as u64,
            heading_path,
            metadata: metadata.into_iter().collect(),
        }
    }
}

impl From<DocumentView> for pb::Document {
    fn from(d: DocumentView) -> Self {
        let DocumentView { info, chunks } = d;
        let index::DocumentInfo {
            id,
            title,
            metadata,
            content_hash,
            chunk_ids,
            indexed_with,
            seq: _,
        } = info;
        Self {
            id,
            title,
            metadata: metadata.into_iter().collect(),
            content_hash,
            chunk_ids: chunk_ids.into_iter().map(|c| c.0).collect(),
            chunks: chunks.into_iter().map(Into::into).collect(),
            indexed_with,
        }
    }
}

impl TryFrom<pb::SearchRequest> for SearchQuery {
    type Error = ServiceError;

    fn try_from(r: pb::SearchRequest) -> Result<Self> {
        let pb::SearchRequest {
            collection,
            query,
            options,
        } = r;
        check_query("query", &query)?;
        Ok(Self {
            collection,
            query,
            options: options.unwrap_or_default().try_into()?,
        })
    }
}

impl TryFrom<pb::RetrievalOptions> for RetrieveOptions {
    type Error = ServiceError;

    fn try_from(o: pb::RetrievalOptions) -> Result<Self> {
        let pb::RetrievalOptions {
            mode,
            fusion,
            rerank,
            k,
            candidates,
            rerank_candidates,
            filter,
        } = o;
        let d = RetrieveOptions::default();
        let bounded = |name: &str, v: u32, default: usize, max: u32| {
            if v > max {
                Err(invalid(format!("{name} is {v}; at most {max}")))
            } else if v == 0 {
                Ok(default)
            } else {
                Ok(v as usize)
            }
        };
        Ok(Self {
            mode: search_mode(mode)?,
            fusion: fusion.map_or(Ok(DEFAULT_FUSION), fusion_from)?,
            rerank,
            k: bounded("k", k, d.k, MAX_SEARCH_K)?,
            candidates: bounded("candidates", candidates, d.candidates, MAX_CANDIDATES)?,
            rerank_candidates: bounded(
                "rerank_candidates",
                rerank_candidates,
                d.rerank_candidates,
                MAX_SEARCH_K,
            )?,
            filter: Filter {
                must: filter.into_iter().collect(),
            },
            deadline: None,
        })
    }
}

fn search_mode(v: i32) -> Result<Mode> {
    match pb::SearchMode::try_from(v) {
        Ok(pb::SearchMode::Unspecified | pb::SearchMode::Hybrid) => Ok(Mode::Hybrid),
        Ok(pb::SearchMode::Bm25) => Ok(Mode::Bm25),
        Ok(pb::SearchMode::Dense) => Ok(Mode::Dense),
        Err(_) => Err(invalid(format!("unknown search mode {v}"))),
    }
}

fn fusion_from(f: pb::Fusion) -> Result<Fusion> {
    let pb::Fusion { method } = f;
    match method {
        None => Ok(DEFAULT_FUSION),
        Some(pb::fusion::Method::Rrf(pb::Rrf { k })) => {
            if k.is_finite() && k > 0.0 {
                Ok(Fusion::Rrf { k })
            } else {
                Err(invalid(format!("rrf k must be positive, got {k}")))
            }
        }
        Some(pb::fusion::Method::Convex(pb::Convex {
            alpha,
            normalization,
        })) => {
            if !(0.0..=1.0).contains(&alpha) {
                return Err(invalid(format!("alpha must be in [0, 1], got {alpha}")));
            }
            let normalization = match pb::Normalization::try_from(normalization) {
                Ok(pb::Normalization::Unspecified | pb::Normalization::ZScore) => {
                    Normalization::ZScore
                }
                Ok(pb::Normalization::MinMax) => Normalization::MinMax,
                Err(_) => return Err(invalid(format!("unknown normalization {normalization}"))),
            };
            Ok(Fusion::Convex {
                alpha,
                normalization,
            })
        }
    }
}

/// The search response for `hits` found in `took_ms`.
pub fn search_response(hits: Vec<Hit>, took_ms: f64, notes: Vec<String>) -> pb::SearchResponse {
    pb::SearchResponse {
        hits: hits.into_iter().map(Into::into).collect(),
        took_ms,
        notes,
    }
}

impl From<Hit> for pb::ScoredChunk {
    fn from(h: Hit) -> Self {
        let Hit {
            chunk,
            score,
            stages,
        } = h;
        let crate::rag::StageScores {
            dense,
            bm25,
            fused,
            rerank,
        } = stages;
        Self {
            chunk: Some(chunk.into()),
            score,
            scores: Some(pb::StageScores {
                dense,
                bm25,
                fused,
                rerank,
            }),
        }
    }
}

/// Most tokens an answer may ask for.
pub const MAX_ANSWER_TOKENS: u32 = 4096;

impl TryFrom<pb::AskRequest> for AskQuery {
    type Error = ServiceError;

    fn try_from(r: pb::AskRequest) -> Result<Self> {
        let pb::AskRequest {
            collection,
            question,
            retrieval,
            generation,
        } = r;
        check_query("question", &question)?;
        index::config::validate_collection_name(&collection)?;
        let pb::GenerationOptions {
            max_tokens,
            temperature,
            seed,
            stop,
        } = generation.unwrap_or_default();
        if stop.len() > MAX_STOP_STRINGS || stop.iter().any(String::is_empty) {
            return Err(invalid(format!(
                "stop: at most {MAX_STOP_STRINGS} non-empty strings"
            )));
        }
        if max_tokens > MAX_ANSWER_TOKENS {
            return Err(invalid(format!("max_tokens at most {MAX_ANSWER_TOKENS}")));
        }
        if let Some(t) = temperature {
            if !(t.is_finite() && (0.0..=2.0).contains(&t)) {
                return Err(invalid(format!("temperature must be in [0, 2], got {t}")));
            }
        }
        let retrieval = retrieval.unwrap_or_default();
        if retrieval.k > MAX_ASK_K {
            return Err(invalid(format!(
                "k is {}; at most {MAX_ASK_K} for Ask (its sources must fit one prompt)",
                retrieval.k
            )));
        }
        let k_given = retrieval.k > 0;
        let mut options: RetrieveOptions = retrieval.try_into()?;
        if !k_given {
            options.k = AnswerConfig::default().retrieve.k;
        }
        Ok(Self {
            collection,
            question,
            retrieval: options,
            max_tokens: (max_tokens > 0).then_some(max_tokens as usize),
            temperature: temperature.map(f64::from),
            seed,
            stop,
        })
    }
}

/// The final message of an Ask stream; `model` is the generator's id.
pub fn ask_final(a: &Answer, total_ms: f64, model: &str) -> pb::AskResponse {
    let Answer {
        text,
        not_found,
        citations,
        short_answer,
        stats,
    } = a;
    let citations = citations
        .iter()
        .map(|c| pb::Citation {
            source_number: c.number as u32,
            document_id: c.doc_id.clone(),
            chunk_id: c.chunk_id,
            title: c.title.clone(),
            span_start: c.span_start as u64,
            span_end: c.span_end as u64,
            text: c.text.clone(),
        })
        .collect();
    pb::AskResponse {
        event: Some(pb::ask_response::Event::Final(pb::AskFinal {
            answer: text.clone(),
            citations,
            usage: Some(pb::Usage {
                prompt_tokens: stats.prompt_tokens as u32,
                completion_tokens: stats.completion_tokens as u32,
            }),
            timings: Some(pb::Timings {
                retrieve_ms: stats.retrieve_ms,
                rerank_ms: stats.rerank_ms,
                time_to_first_token_ms: stats.time_to_first_token_ms,
                first_text_ms: stats.first_text_ms,
                prompt_ms: stats.prompt_ms,
                read_ms: stats.read_ms,
                total_ms,
                tokens_per_second: stats.tokens_per_second,
            }),
            not_found: *not_found,
            short_answer: short_answer.as_ref().map(|s| pb::ShortAnswer {
                text: s.text.clone(),
                source_number: s.number as u32,
                document_id: s.doc_id.clone(),
                span_start: s.span_start as u64,
                span_end: s.span_end as u64,
            }),
            model: model.to_string(),
            sources_used: stats.sources_used as u32,
            sources_dropped: stats.sources_dropped as u32,
            unsupported_removed: stats.unsupported_removed as u32,
            extractive: stats.extractive,
        })),
    }
}

/// One streamed piece of an answer.
pub fn ask_delta(text: String) -> pb::AskResponse {
    pb::AskResponse {
        event: Some(pb::ask_response::Event::Delta(text)),
    }
}

// ---- client side (the CLI's `--server` mode) ----

impl From<SearchQuery> for pb::SearchRequest {
    fn from(q: SearchQuery) -> Self {
        let SearchQuery {
            collection,
            query,
            options,
        } = q;
        Self {
            collection,
            query,
            options: Some(options.into()),
        }
    }
}

impl From<RetrieveOptions> for pb::RetrievalOptions {
    fn from(o: RetrieveOptions) -> Self {
        let RetrieveOptions {
            mode,
            fusion,
            candidates,
            rerank,
            rerank_candidates,
            k,
            filter,
            deadline: _,
        } = o;
        let mode = match mode {
            Mode::Bm25 => pb::SearchMode::Bm25,
            Mode::Dense => pb::SearchMode::Dense,
            Mode::Hybrid => pb::SearchMode::Hybrid,
        };
        let method = match fusion {
            Fusion::Rrf { k } => pb::fusion::Method::Rrf(pb::Rrf { k }),
            Fusion::Convex {
                alpha,
                normalization,
            } => pb::fusion::Method::Convex(pb::Convex {
                alpha,
                normalization: match normalization {
                    Normalization::MinMax => pb::Normalization::MinMax,
                    Normalization::ZScore => pb::Normalization::ZScore,
                } as i32,
            }),
        };
        Self {
            mode: mode as i32,
            fusion: Some(pb::Fusion {
                method: Some(method),
            }),
            rerank,
            k: k as u32,
            candidates: candidates as u32,
            rerank_candidates: rerank_candidates as u32,
            filter: filter.must.into_iter().collect(),
        }
    }
}

/// The hits of a search response, as the local retriever returns them, and its notes.
pub fn hits(r: pb::SearchResponse) -> (Vec<Hit>, Vec<String>) {
    let pb::SearchResponse {
        hits,
        took_ms: _,
        notes,
    } = r;
    (hits.into_iter().map(hit).collect(), notes)
}

fn hit(h: pb::ScoredChunk) -> Hit {
    let pb::ScoredChunk {
        chunk,
        score,
        scores,
    } = h;
    let pb::StageScores {
        dense,
        bm25,
        fused,
        rerank,
    } = scores.unwrap_or_default();
    Hit {
        chunk: chunk_record(chunk.unwrap_or_default()),
        score,
        stages: crate::rag::StageScores {
            dense,
            bm25,
            fused,
            rerank,
        },
    }
}

fn chunk_record(c: pb::Chunk) -> ChunkRecord {
    let pb::Chunk {
        id,
        document_id,
        ordinal,
        title,
        text,
        span_start,
        span_end,
        heading_path,
        metadata,
    } = c;
    ChunkRecord {
        id: index::ChunkId(id),
        doc_id: document_id,
        ordinal,
        title,
        text,
        span_start: span_start as usize,
        span_end: span_end as usize,
        heading_path,
        metadata: metadata.into_iter().collect(),
    }
}

impl From<AskQuery> for pb::AskRequest {
    fn from(q: AskQuery) -> Self {
        let AskQuery {
            collection,
            question,
            retrieval,
            max_tokens,
            temperature,
            seed,
            stop,
        } = q;
        Self {
            collection,
            question,
            retrieval: Some(retrieval.into()),
            generation: Some(pb::GenerationOptions {
                max_tokens: max_tokens.map_or(0, |n| n.min(u32::MAX as usize) as u32),
                temperature: temperature.map(|t| t as f32),
                seed,
                stop,
            }),
        }
    }
}

/// The answer of an Ask stream's final message, as the local command builds it, and the
/// generator's model id.
pub fn answer(f: pb::AskFinal) -> (Answer, String) {
    let pb::AskFinal {
        answer,
        citations,
        usage,
        timings,
        not_found,
        short_answer,
        model,
        sources_used,
        sources_dropped,
        unsupported_removed,
        extractive,
    } = f;
    let citations = citations
        .into_iter()
        .map(|c| {
            let pb::Citation {
                source_number,
                document_id,
                chunk_id,
                title,
                span_start,
                span_end,
                text,
            } = c;
            crate::rag::answer::Citation {
                number: source_number as usize,
                doc_id: document_id,
                chunk_id,
                title,
                span_start: span_start as usize,
                span_end: span_end as usize,
                text,
            }
        })
        .collect();
    let short_answer = short_answer.map(|s| {
        let pb::ShortAnswer {
            text,
            source_number,
            document_id,
            span_start,
            span_end,
        } = s;
        crate::rag::answer::ShortAnswer {
            text,
            number: source_number as usize,
            doc_id: document_id,
            span_start: span_start as usize,
            span_end: span_end as usize,
        }
    });
    let pb::Usage {
        prompt_tokens,
        completion_tokens,
    } = usage.unwrap_or_default();
    let pb::Timings {
        retrieve_ms,
        rerank_ms,
        time_to_first_token_ms,
        total_ms: _,
        tokens_per_second,
        first_text_ms,
        prompt_ms,
        read_ms,
    } = timings.unwrap_or_default();
    let stats = crate::rag::answer::AnswerStats {
        retrieve_ms,
        rerank_ms,
        read_ms,
        prompt_tokens: prompt_tokens as usize,
        completion_tokens: completion_tokens as usize,
        prompt_ms,
        time_to_first_token_ms,
        first_text_ms,
        tokens_per_second,
        sources_used: sources_used as usize,
        sources_dropped: sources_dropped as usize,
        unsupported_removed: unsupported_removed as usize,
        extractive,
    };
    let answer = Answer {
        text: answer,
        not_found,
        citations,
        short_answer,
        stats,
    };
    (answer, model)
}

impl From<pb::Collection> for CollectionInfo {
    fn from(c: pb::Collection) -> Self {
        let pb::Collection {
            name,
            embedding_model,
            dimension,
            documents,
            chunks,
            embedder_fingerprint,
        } = c;
        Self {
            name,
            embedding_model,
            dimension: dimension as usize,
            embedder_fingerprint,
            documents,
            chunks,
        }
    }
}

/// A loaded document as a streamed-ingestion input.
pub fn document_input(d: Document) -> pb::DocumentInput {
    pb::DocumentInput {
        id: d.id().as_str().to_string(),
        title: d.title().to_string(),
        text: d.text().to_string(),
        metadata: d.metadata().clone().into_iter().collect(),
    }
}

/// The counts of an ingestion response.
pub fn summary(r: pb::IngestDocumentsResponse) -> IngestSummary {
    let pb::IngestDocumentsResponse { counts, errors } = r;
    let mut s = counts_summary(counts.unwrap_or_default());
    s.errors = errors.into_iter().map(error_pair).collect();
    s
}

fn counts_summary(c: pb::IngestCounts) -> IngestSummary {
    let pb::IngestCounts {
        added,
        updated,
        unchanged,
        failed,
        chunks,
        deleted,
    } = c;
    IngestSummary {
        added: added as usize,
        updated: updated as usize,
        unchanged: unchanged as usize,
        failed: failed as usize,
        chunks: chunks as usize,
        deleted: deleted as usize,
        errors: Vec::new(),
    }
}

fn error_pair(e: pb::DocumentError) -> (String, String) {
    let pb::DocumentError {
        document_id,
        message,
    } = e;
    (document_id, message)
}

/// A job request over server-side `paths`.
pub fn job_request(
    collection: String,
    paths: Vec<String>,
    chunker: String,
    sync: bool,
) -> pb::StartIngestJobRequest {
    pb::StartIngestJobRequest {
        collection,
        paths,
        chunker,
        sync,
    }
}

/// What a client shows of a job: the CLI prints local job records through this same view
/// (`JobView::from(pb::IngestJob::from(record))`), so `ragd jobs` reads the same with and
/// without `--server`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobView {
    /// The id.
    pub id: String,
    /// The collection it writes.
    pub collection: String,
    /// The files and folders it reads (on the server).
    pub paths: Vec<String>,
    /// Its state, `None` when the server sent an unknown one.
    pub state: Option<JobState>,
    /// Documents processed, and found (0 until the whole input has been read).
    pub documents_done: u64,
    /// See `documents_done`.
    pub documents_total: u64,
    /// Bytes of input processed.
    pub bytes_done: u64,
    /// Bytes of input found by the scan.
    pub bytes_total: u64,
    /// Documents per second in the current run.
    pub documents_per_second: f64,
    /// Seconds left at that rate (0 when unknown or done).
    pub eta_seconds: f64,
    /// Counts and errors so far.
    pub summary: IngestSummary,
    /// Why it failed.
    pub failure: String,
    /// Unix milliseconds.
    pub created_unix_ms: u64,
    /// Unix milliseconds; 0 while not finished.
    pub finished_unix_ms: u64,
    /// Times resumed after a server restart.
    pub resumed: u32,
}

impl From<pb::IngestJob> for JobView {
    fn from(j: pb::IngestJob) -> Self {
        let pb::IngestJob {
            id,
            collection,
            paths,
            state,
            progress,
            errors,
            failure,
            created_unix_ms,
            finished_unix_ms,
            resumed,
        } = j;
        let pb::JobProgress {
            documents_total,
            documents_done,
            bytes_total,
            bytes_done,
            counts,
            documents_per_second,
            eta_seconds,
        } = progress.unwrap_or_default();
        let mut summary = counts_summary(counts.unwrap_or_default());
        summary.errors = errors.into_iter().map(error_pair).collect();
        let state = match pb::JobState::try_from(state) {
            Ok(pb::JobState::Queued) => Some(JobState::Queued),
            Ok(pb::JobState::Running) => Some(JobState::Running),
            Ok(pb::JobState::Succeeded) => Some(JobState::Succeeded),
            Ok(pb::JobState::Failed) => Some(JobState::Failed),
            Ok(pb::JobState::Cancelled) => Some(JobState::Cancelled),
            Ok(pb::JobState::Unspecified) | Err(_) => None,
        };
        Self {
            id,
            collection,
            paths,
            state,
            documents_done,
            documents_total,
            bytes_done,
            bytes_total,
            documents_per_second,
            eta_seconds,
            summary,
            failure,
            created_unix_ms,
            finished_unix_ms,
            resumed,
        }
    }
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        Self::from(pb::IngestJob::from(r))
    }
}

#[cfg(test)]
mod tests;
