//! Re-embedding a collection with this process's embedder (`ragd collections reindex`, gRPC
//! `ReindexCollection`): the service side of [`index::Store::reindex`], which builds the new
//! generation beside the old one and switches when it is complete.
//!
//! Chunks are kept as they are (text, spans, headings) and only their vectors are made again,
//! from the stored text, as ingestion embeds them. Each document then records that it was made
//! with the new embedder (the chunking part of its `indexed_with` is kept), so a later ingest
//! of the same content skips it instead of embedding it once more.

use std::sync::Arc;

use index::{Collection, Reembed, ReindexProgress, ReindexReport, ReindexTarget, Store};
use ingest::Embedder;

use crate::error::{Result, ServiceError};
use crate::jobs::{embedder_part, EMBED_BATCH};

/// What a finished reindex reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReindexView {
    /// The fingerprint of the embedder the old generation was made with.
    pub previous_fingerprint: String,
    /// Whether searches were served while it ran (see [`crate::state::AppState::reindex`]).
    pub searches_served: bool,
    /// Why they were not, when they were not.
    pub note: String,
    /// What the index did.
    #[serde(flatten)]
    pub report: ReindexReport,
}

/// Re-embeds collection `name` of `store` with `embedder` into a new generation and switches to
/// it; `progress` sees each step and stops the reindex by returning an error (nothing changes
/// then). Returns the new generation.
pub fn reindex(
    store: &Store,
    name: &str,
    embedder: &dyn Embedder,
    progress: impl FnMut(&ReindexProgress) -> Result<()>,
) -> Result<(Arc<Collection>, ReindexReport)> {
    let target = ReindexTarget {
        embedding_model: embedder.model_id().to_string(),
        dimension: embedder.dimension(),
        embedder_fingerprint: embedder.fingerprint(),
    };
    let mut with = WithEmbedder {
        embedder,
        made_with: embedder_part(embedder),
        progress,
    };
    store.reindex(name, &target, &mut with)
}

struct WithEmbedder<'a, P> {
    embedder: &'a dyn Embedder,
    /// The embedder's part of `indexed_with`.
    made_with: String,
    progress: P,
}

impl<P: FnMut(&ReindexProgress) -> Result<()>> Reembed for WithEmbedder<'_, P> {
    type Error = ServiceError;

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        // The batches ingestion embeds, so memory and latency per call stay the same.
        for batch in texts.chunks(EMBED_BATCH) {
            vectors.extend(self.embedder.embed(batch)?.into_iter().map(|e| e.vector));
        }
        Ok(vectors)
    }

    fn indexed_with(&self, source: &str) -> String {
        retarget(source, &self.made_with)
    }

    fn progress(&mut self, progress: &ReindexProgress) -> Result<()> {
        (self.progress)(progress)
    }
}

/// `indexed_with` of a document made as `source` says, with its embedder part replaced by
/// `made_with`. Empty stays empty (documents stored before it was recorded count as made with
/// whatever embedder the collection has).
fn retarget(source: &str, made_with: &str) -> String {
    match source.rfind(" embedder=") {
        Some(at) => format!("{}{made_with}", &source[..at]),
        None if source.is_empty() => String::new(),
        None => format!("{source}{made_with}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunking_is_kept_and_the_embedder_replaced() {
        let new = " embedder=new/384d/510t";
        assert_eq!(
            retarget(r#"chunking={"kind":"fixed"} embedder=old/768d/510t"#, new),
            r#"chunking={"kind":"fixed"} embedder=new/384d/510t"#
        );
        assert_eq!(retarget("", new), "");
        assert_eq!(retarget("custom", new), "custom embedder=new/384d/510t");
    }
}
