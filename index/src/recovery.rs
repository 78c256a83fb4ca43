//! Recovery on open: bring tantivy and the HNSW up to sled.
//!
//! * **tantivy**: read the last commit payload's seq `t`. If the op log still covers `(t, last]`,
//!   replay it in order: delete the term of every chunk an op added or removed, then re-add the
//!   added chunks that still exist in sled (delete-then-add makes replay idempotent: nothing is
//!   indexed twice). If the log was pruned past `t` (or `t > last`), delete everything and
//!   re-add every live chunk. Either way commit with payload `last`.
//! * **HNSW**: load the newest dump with seq `d <= last`. If the log covers `(d, last]`, insert
//!   the chunks added after `d` that still exist and tombstone those removed after `d` that the
//!   dump holds. Without a usable dump or log, build a fresh graph from every live vector.
//!
//! Since sled holds every acknowledged write and both replays end at `last`, all three stores
//! hold the same chunks afterwards, whatever point a crash interrupted.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::config::CollectionConfig;
use crate::dense::{remove_stale, DenseWriter};
use crate::meta::{MetaStore, Op, StoredDoc};
use crate::sparse::{SparseIndex, SparseWriter};
use crate::types::{ChunkId, Seq};
use crate::Result;

/// Every live `(id, vector)` in sled.
pub(crate) fn live_vectors(meta: &MetaStore) -> Result<Vec<(u64, Vec<f32>)>> {
    meta.live_vectors()
        .map(|r| r.map(|(id, v)| (id.0, v)))
        .collect()
}

/// Re-adds chunk `id` to tantivy if it still exists in sled.
fn add_if_live(
    meta: &MetaStore,
    writer: &SparseWriter,
    docs: &mut HashMap<String, Option<StoredDoc>>,
    id: ChunkId,
) -> Result<()> {
    let Some(chunk) = meta.get_chunk(id)? else {
        return Ok(());
    };
    if !docs.contains_key(&chunk.doc_id) {
        docs.insert(chunk.doc_id.clone(), meta.get_doc(&chunk.doc_id)?);
    }
    if let Some(Some(doc)) = docs.get(&chunk.doc_id) {
        writer.add_chunk(id, &chunk, doc)?;
    }
    Ok(())
}

/// Brings tantivy up to `last`; returns the tantivy writer.
pub(crate) fn recover_sparse(
    meta: &MetaStore,
    sparse: &SparseIndex,
    memory_bytes: usize,
    last: Seq,
) -> Result<SparseWriter> {
    let mut writer = sparse.writer(memory_bytes)?;
    let committed = sparse.committed_seq()?;
    if committed == last {
        return Ok(writer);
    }
    let ops = if committed < last {
        meta.ops_after(committed)?
    } else {
        None
    };
    let mut docs = HashMap::new();
    match ops {
        Some(ops) => {
            tracing::info!(from = committed, to = last, "replaying op log into tantivy");
            for (_, op) in ops {
                for id in op.removed.iter().chain(&op.added) {
                    writer.delete_chunk(*id);
                }
                for id in op.added {
                    add_if_live(meta, &writer, &mut docs, id)?;
                }
            }
        }
        None => {
            if committed == 0 {
                // An empty index (a restored snapshot brings none): building it is the plan.
                tracing::info!(last, "building the BM25 index from sled");
            } else {
                tracing::warn!(committed, last, "op log does not cover tantivy: rebuilding");
            }
            writer.delete_all()?;
            for id in meta.live_chunk_ids() {
                add_if_live(meta, &writer, &mut docs, id?)?;
            }
        }
    }
    writer.commit(last)?;
    Ok(writer)
}

/// Loads the newest dump and replays the op log after it; `None` if either is missing.
fn load_and_replay(
    dir: &Path,
    config: &CollectionConfig,
    meta: &MetaStore,
    last: Seq,
) -> Result<Option<DenseWriter>> {
    let Some(mut dense) = DenseWriter::load(dir, config.hnsw, last)? else {
        return Ok(None);
    };
    let Some(ops) = meta.ops_after(dense.dumped_seq())? else {
        return Ok(None);
    };
    replay_dense(meta, &mut dense, ops.into_iter().map(|(_, op)| op))?;
    Ok(Some(dense))
}

/// Brings the HNSW up to `last`, from the newest dump or from scratch.
pub(crate) fn recover_dense(
    dir: &Path,
    config: &CollectionConfig,
    meta: &MetaStore,
    last: Seq,
) -> Result<DenseWriter> {
    let mut dense = match load_and_replay(dir, config, meta, last)? {
        Some(d) => d,
        None => {
            tracing::info!(last, "building the HNSW graph from sled");
            DenseWriter::build(config.hnsw, &live_vectors(meta)?)
        }
    };
    let keep = Some(dense.dumped_seq()).filter(|s| *s > 0);
    remove_stale(dir, keep)?;
    let behind = last.saturating_sub(dense.dumped_seq());
    if behind > 0 && (behind >= config.maintenance.dump_every_writes || dense.dump_lagging()) {
        dense.dump(dir, last)?;
    }
    Ok(dense)
}

fn replay_dense(
    meta: &MetaStore,
    dense: &mut DenseWriter,
    ops: impl Iterator<Item = Op>,
) -> Result<()> {
    let mut added = HashSet::new();
    let mut removed = Vec::new();
    for op in ops {
        added.extend(op.added.iter().map(|c| c.0));
        removed.extend(op.removed.iter().map(|c| c.0));
    }
    let mut ids: Vec<u64> = added.iter().copied().collect();
    ids.sort_unstable();
    let mut inserts = Vec::new();
    for id in ids {
        if let Some(v) = meta.get_vector(ChunkId(id))? {
            inserts.push((id, v));
        }
    }
    dense.insert(&inserts);
    // Chunks both added and removed after the dump were never inserted: no tombstone needed.
    dense.tombstone(removed.into_iter().filter(|id| !added.contains(id)));
    Ok(())
}
