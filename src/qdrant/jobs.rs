//! Copies of bulk-job records on the cluster, so that every ragd server on it can report any
//! server's jobs, and cancel them.
//!
//! One small Qdrant collection per collection prefix, `<prefix>.jobs` (ragd collection names
//! cannot start with `.`, so it is never taken for one): a point per job, its payload the job's
//! record as JSON, and a point per cancel request. Points carry a one-dimensional vector only
//! because a point needs one. The record itself is the jobs layer's business: here it is JSON.
//!
//! A server keeps its own jobs' records in its data folder, which stays the source of truth
//! (a restart resumes from there); what is here is a copy it writes after each save.

use std::collections::HashMap;
use std::sync::Arc;

use qdrant_client::qdrant::{
    Condition, CreateCollectionBuilder, Distance, Filter as QFilter, GetPointsBuilder, PointId,
    PointStruct, ScrollPointsBuilder, UpsertPointsBuilder, Value, VectorParamsBuilder,
};
use qdrant_client::Payload;

use super::cluster::Cluster;
use super::collection::sha256_u64;
use super::error::{QdrantError, Result};
use super::store::QdrantStore;

/// The job copies of one collection prefix.
#[derive(Debug, Clone)]
pub struct QdrantJobRecords {
    cluster: Arc<Cluster>,
    qname: String,
}

/// The point of job `job`'s `kind` ("record" or "cancel"): sha256(kind ‖ 0x00 ‖ job).
fn point(kind: &str, job: &str) -> PointId {
    sha256_u64(&[kind.as_bytes(), &[0], job.as_bytes()]).into()
}

/// The record (JSON text) a copy's payload holds.
fn record_of(payload: HashMap<String, Value>) -> Result<String> {
    payload
        .get("record")
        .and_then(|v| v.as_str())
        .cloned()
        .ok_or_else(|| QdrantError::Internal("a job record's copy without its record".into()))
}

impl QdrantJobRecords {
    /// The job copies of `store`'s collection prefix; their collection is made by the first
    /// write ([`Self::put`] and [`Self::request_cancel`] create it when missing).
    pub fn new(store: &QdrantStore) -> Self {
        Self {
            cluster: store.cluster().clone(),
            qname: format!("{}.jobs", store.settings().collection_prefix),
        }
    }

    /// Creates the collection unless it exists.
    async fn ensure(&self) -> Result<()> {
        let qname = &self.qname;
        let created = self
            .cluster
            .call(|c| {
                let request = CreateCollectionBuilder::new(qname)
                    .vectors_config(VectorParamsBuilder::new(1, Distance::Dot))
                    .shard_number(1)
                    .replication_factor(self.replicas());
                async move { c.create_collection(request).await }
            })
            .await;
        match created {
            Ok(_) => Ok(()),
            // Created meanwhile by another ragd server.
            Err(QdrantError::FailedPrecondition(m)) if m.contains("already exists") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One copy per node, up to three: the records survive as many node failures as the
    /// collections do.
    fn replicas(&self) -> u32 {
        self.cluster.urls().count().clamp(1, 3) as u32
    }

    async fn upsert(&self, points: Vec<PointStruct>) -> Result<()> {
        let qname = &self.qname;
        let write = || {
            self.cluster.call(|c| {
                let request = UpsertPointsBuilder::new(qname, points.clone()).wait(true);
                async move { c.upsert_points(request).await }
            })
        };
        match write().await {
            Err(QdrantError::Missing(_)) => {
                self.ensure().await?;
                write().await.map(drop)
            }
            other => other.map(drop),
        }
    }

    /// Writes job `id`'s point of `kind`, with `record` (JSON text) when there is one.
    async fn put_point(&self, kind: &str, id: &str, record: Option<&str>) -> Result<()> {
        let mut payload = serde_json::json!({ "kind": kind, "job_id": id });
        if let Some(record) = record {
            payload["record"] = record.into();
        }
        let payload =
            Payload::try_from(payload).map_err(|e| QdrantError::Internal(e.to_string()))?;
        self.upsert(vec![PointStruct::new(point(kind, id), vec![1.0], payload)])
            .await
    }

    /// Writes the copy of job `id`'s `record` (its JSON text, as the jobs layer stores it).
    pub async fn put(&self, id: &str, record: &str) -> Result<()> {
        self.put_point("record", id, Some(record)).await
    }

    async fn get_point(&self, id: PointId) -> Result<Option<HashMap<String, Value>>> {
        let qname = &self.qname;
        let got = self
            .cluster
            .call(|c| {
                let request = GetPointsBuilder::new(qname, vec![id.clone()])
                    .with_payload(true)
                    .with_vectors(false);
                async move { c.get_points(request).await }
            })
            .await;
        match got {
            Ok(got) => Ok(got.result.into_iter().next().map(|p| p.payload)),
            // No server has written a copy yet.
            Err(QdrantError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The copy of job `id`'s record (JSON text), if any server wrote one.
    pub async fn get(&self, id: &str) -> Result<Option<String>> {
        self.get_point(point("record", id))
            .await?
            .map(record_of)
            .transpose()
    }

    /// Every job's record copy (JSON text), in no particular order.
    pub async fn list(&self) -> Result<Vec<String>> {
        let qname = &self.qname;
        let mut out = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let page = self
                .cluster
                .call(|c| {
                    let mut request = ScrollPointsBuilder::new(qname)
                        .filter(QFilter::must([Condition::matches(
                            "kind",
                            "record".to_string(),
                        )]))
                        .limit(256)
                        .with_payload(true)
                        .with_vectors(false);
                    if let Some(o) = offset.clone() {
                        request = request.offset(o);
                    }
                    async move { c.scroll(request).await }
                })
                .await;
            let page = match page {
                Ok(page) => page,
                Err(QdrantError::Missing(_)) => return Ok(out),
                Err(e) => return Err(e),
            };
            for p in page.result {
                out.push(record_of(p.payload)?);
            }
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Asks the server running job `id` to cancel it (it looks between batches).
    pub async fn request_cancel(&self, id: &str) -> Result<()> {
        self.put_point("cancel", id, None).await
    }

    /// Whether a server asked to cancel job `id`.
    pub async fn cancel_requested(&self, id: &str) -> Result<bool> {
        Ok(self.get_point(point("cancel", id)).await?.is_some())
    }
}
