//! The sled meta store: the source of truth of a collection.
//!
//! One sled tree per collection, with a one-byte key prefix per record kind:
//!
//! | key                      | value                                   |
//! |--------------------------|-----------------------------------------|
//! | `d` + doc id (UTF-8)     | [`StoredDoc`] (JSON)                    |
//! | `c` + chunk id (u64 BE)  | [`StoredChunk`] (JSON)                  |
//! | `v` + chunk id (u64 BE)  | the normalised vector, f32 little-endian |
//! | `o` + seq (u64 BE)       | [`Op`] (JSON): chunks added and removed |
//! | `m` + counter name       | u64 BE counters: last seq, next chunk id, counts, pruned log |
//! | `x` + chunk id (u64 BE)  | [`RetiredChunk`] (JSON): a removed chunk older snapshots may still return |
//! | `w` + chunk id (u64 BE)  | its vector                              |
//! | `y` + seq + chunk id     | empty: the purge queue of retired chunks, by the seq that removed them |
//!
//! A write that removes chunks (a replaced or deleted document) moves their records to the
//! retired keys in the same batch instead of dropping them: a snapshot published before the
//! write still returns those chunk ids and must still read their records, text and title as they
//! were. The writer purges retired records once no snapshot older than the removing write is
//! held ([`MetaStore::purge_retired`]); a restart purges them all.
//!
//! Every write ([`MetaStore::apply`]) is one atomic sled batch (records, op-log entries and
//! counters together) followed by `flush` (fsync); only then is it acknowledged. The op log
//! (`seq -> Op`) lets recovery replay into tantivy and the HNSW whatever they lack, deletes
//! included; entries at or below the sequence both of them persisted are pruned.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::types::{ChunkId, DocumentInfo, Seq};
use crate::{IndexError, Result};

mod export;

const DOC: u8 = b'd';
const CHUNK: u8 = b'c';
const VECTOR: u8 = b'v';
const OP: u8 = b'o';
const RETIRED: u8 = b'x';
const RETIRED_VECTOR: u8 = b'w';
const RETIRE_QUEUE: u8 = b'y';
const LAST_SEQ: &[u8] = b"mlast_seq";
const NEXT_CHUNK: &[u8] = b"mnext_chunk";
const DOC_COUNT: &[u8] = b"mdoc_count";
const CHUNK_COUNT: &[u8] = b"mchunk_count";
const PRUNED_UPTO: &[u8] = b"mpruned_upto";

/// A document as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDoc {
    /// Title.
    pub title: String,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Content hash.
    pub content_hash: String,
    /// How its chunks were made (see [`crate::DocumentRecord::indexed_with`]); absent in
    /// records written before the field existed.
    #[serde(default)]
    pub indexed_with: String,
    /// Chunk ids in document order.
    pub chunk_ids: Vec<ChunkId>,
    /// Seq of the write that stored this version.
    pub seq: Seq,
}

impl StoredDoc {
    /// The document `id` as readers see it.
    fn info(self, id: String) -> DocumentInfo {
        let Self {
            title,
            metadata,
            content_hash,
            indexed_with,
            chunk_ids,
            seq,
        } = self;
        DocumentInfo {
            id,
            title,
            metadata,
            content_hash,
            indexed_with,
            chunk_ids,
            seq,
        }
    }
}

/// A chunk as stored (its vector is kept under its own key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredChunk {
    /// Owning document.
    pub doc_id: String,
    /// Position in the document.
    pub ordinal: u32,
    /// Text.
    pub text: String,
    /// Span start (chars).
    pub span_start: usize,
    /// Span end (chars, exclusive).
    pub span_end: usize,
    /// Enclosing headings.
    pub heading_path: Vec<String>,
}

/// A chunk removed by a write, kept with its document's title and metadata as they were, for
/// the snapshots published before that write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetiredChunk {
    /// The chunk as it was stored.
    pub chunk: StoredChunk,
    /// Its document's title then.
    pub title: String,
    /// Its document's metadata then.
    pub metadata: BTreeMap<String, String>,
    /// Seq of the write that removed it: snapshots at or after it do not hold the chunk.
    pub removed_at: Seq,
}

/// One op-log entry: the chunks one write added and removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The document written.
    pub doc_id: String,
    /// Chunks created by the write.
    pub added: Vec<ChunkId>,
    /// Chunks deleted by the write.
    pub removed: Vec<ChunkId>,
}

/// A new chunk with its (normalised) vector.
#[derive(Debug, Clone)]
pub struct NewChunk {
    /// Its id.
    pub id: ChunkId,
    /// The record.
    pub chunk: StoredChunk,
    /// The normalised vector.
    pub vector: Vec<f32>,
}

/// One sequenced write, planned by the writer and applied atomically.
#[derive(Debug, Clone)]
pub struct WritePlan {
    /// Its sequence number.
    pub seq: Seq,
    /// The document.
    pub doc_id: String,
    /// The new version of the document; `None` deletes it.
    pub doc: Option<StoredDoc>,
    /// Whether a previous version existed.
    pub existed: bool,
    /// Chunks to create.
    pub added: Vec<NewChunk>,
    /// Chunks to delete.
    pub removed: Vec<ChunkId>,
}

impl WritePlan {
    /// The op-log entry of this write.
    pub fn op(&self) -> Op {
        Op {
            doc_id: self.doc_id.clone(),
            added: self.added.iter().map(|c| c.id).collect(),
            removed: self.removed.clone(),
        }
    }
}

/// Handle on a collection's sled database; clones share it.
#[derive(Clone)]
pub struct MetaStore {
    db: sled::Db,
}

fn key(prefix: u8, id: u64) -> [u8; 9] {
    let mut k = [prefix; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn queue_key(seq: Seq, id: u64) -> [u8; 17] {
    let mut k = [RETIRE_QUEUE; 17];
    k[1..9].copy_from_slice(&seq.to_be_bytes());
    k[9..].copy_from_slice(&id.to_be_bytes());
    k
}

fn doc_key(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 1);
    k.push(DOC);
    k.extend_from_slice(id.as_bytes());
    k
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| IndexError::corrupt(what, e))
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| IndexError::corrupt(what, e))
}

fn decode_u64(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| IndexError::corrupt("counter", "not 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}

/// Opens a sled database, waiting up to [`LOCK_WAIT`] for its file lock (see
/// [`MetaStore::open`]); every sled database of the service opens through here.
pub fn open_sled(config: &sled::Config) -> std::result::Result<sled::Db, sled::Error> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match config.open() {
            Err(e) if is_lock_held(&e) && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            opened => return opened,
        }
    }
}

/// How long [`open_sled`] waits for sled's file lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Whether `e` is sled's "could not acquire lock" (its file lock is held elsewhere).
fn is_lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock"))
}

/// Encodes a vector as little-endian f32s.
fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl MetaStore {
    /// Opens (or creates) the sled database in `dir`.
    ///
    /// sled locks its file for the life of a database. Dropping the last handle does not release
    /// the lock at once: sled hands log writes to a global I/O thread pool whose jobs keep the
    /// file open a moment longer (sled's own tests block on the lock for this reason). So a
    /// collection closed and reopened by the same process could fail to open for a few
    /// milliseconds; the lock is retried for up to [`LOCK_WAIT`] before the error is reported
    /// (then it is another process holding the collection).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self> {
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
        Ok(Self {
            db: open_sled(&config)?,
        })
    }

    fn counter(&self, name: &[u8]) -> Result<u64> {
        match self.db.get(name)? {
            Some(v) => decode_u64(&v),
            None => Ok(0),
        }
    }

    /// Sequence number of the last acknowledged write.
    pub fn last_seq(&self) -> Result<Seq> {
        self.counter(LAST_SEQ)
    }

    /// The id the next new chunk gets.
    pub fn next_chunk_id(&self) -> Result<u64> {
        self.counter(NEXT_CHUNK)
    }

    /// Number of documents.
    pub fn doc_count(&self) -> Result<u64> {
        self.counter(DOC_COUNT)
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> Result<u64> {
        self.counter(CHUNK_COUNT)
    }

    /// Op-log entries with seq `<=` this were pruned.
    pub fn pruned_upto(&self) -> Result<Seq> {
        self.counter(PRUNED_UPTO)
    }

    /// The stored document `id`.
    pub fn get_doc(&self, id: &str) -> Result<Option<StoredDoc>> {
        self.db
            .get(doc_key(id))?
            .map(|v| decode("document", &v))
            .transpose()
    }

    /// The stored document `id` as a [`DocumentInfo`].
    pub fn document_info(&self, id: &str) -> Result<Option<DocumentInfo>> {
        Ok(self.get_doc(id)?.map(|d| d.info(id.to_owned())))
    }

    /// The stored chunk `id`.
    pub fn get_chunk(&self, id: ChunkId) -> Result<Option<StoredChunk>> {
        self.db
            .get(key(CHUNK, id.0))?
            .map(|v| decode("chunk", &v))
            .transpose()
    }

    /// The stored (normalised) vector of chunk `id`.
    pub fn get_vector(&self, id: ChunkId) -> Result<Option<Vec<f32>>> {
        Ok(self.db.get(key(VECTOR, id.0))?.map(|v| decode_vector(&v)))
    }

    /// The record of chunk `id` if a write removed it and it is not yet purged.
    pub fn get_retired(&self, id: ChunkId) -> Result<Option<RetiredChunk>> {
        self.db
            .get(key(RETIRED, id.0))?
            .map(|v| decode("retired chunk", &v))
            .transpose()
    }

    /// The vector of retired chunk `id`, if not yet purged.
    pub fn get_retired_vector(&self, id: ChunkId) -> Result<Option<Vec<f32>>> {
        Ok(self
            .db
            .get(key(RETIRED_VECTOR, id.0))?
            .map(|v| decode_vector(&v)))
    }

    /// Number of retired chunks not yet purged.
    pub fn retired_count(&self) -> usize {
        self.db.scan_prefix([RETIRE_QUEUE]).count()
    }

    /// Drops the records of chunks retired by writes with seq `<= upto` (no snapshot that
    /// could return them is held any more); returns how many.
    pub fn purge_retired(&self, upto: Seq) -> Result<usize> {
        let mut batch = sled::Batch::default();
        let mut purged = 0;
        for item in self.db.range(queue_key(0, 0)..=queue_key(upto, u64::MAX)) {
            let k = item?.0;
            let id = decode_u64(&k[9..])?;
            batch.remove(k);
            batch.remove(&key(RETIRED, id));
            batch.remove(&key(RETIRED_VECTOR, id));
            purged += 1;
        }
        if purged > 0 {
            // Not flushed: a crash before sled's next flush leaves records the next open purges.
            self.db.apply_batch(batch)?;
        }
        Ok(purged)
    }

    /// Applies `plans` (in seq order) as one atomic batch, then flushes to disk. `next_chunk` is
    /// the chunk-id counter after the plans.
    pub fn apply(&self, plans: &[WritePlan], next_chunk: u64) -> Result<()> {
        let Some(last) = plans.last() else {
            return Ok(());
        };
        let mut docs = self.doc_count()? as i64;
        let mut chunks = self.chunk_count()? as i64;
        let mut batch = sled::Batch::default();
        for plan in plans {
            docs += i64::from(plan.doc.is_some()) - i64::from(plan.existed);
            chunks += plan.added.len() as i64 - plan.removed.len() as i64;
            self.add_plan(&mut batch, plan)?;
        }
        batch.insert(LAST_SEQ, &last.seq.to_be_bytes());
        batch.insert(NEXT_CHUNK, &next_chunk.to_be_bytes());
        batch.insert(DOC_COUNT, &(docs.max(0) as u64).to_be_bytes());
        batch.insert(CHUNK_COUNT, &(chunks.max(0) as u64).to_be_bytes());
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn add_plan(&self, batch: &mut sled::Batch, plan: &WritePlan) -> Result<()> {
        match &plan.doc {
            Some(doc) => batch.insert(doc_key(&plan.doc_id), encode("document", doc)?),
            None => batch.remove(doc_key(&plan.doc_id)),
        }
        let mut old_doc = None;
        for id in &plan.removed {
            self.retire(batch, plan, *id, &mut old_doc)?;
            batch.remove(&key(CHUNK, id.0));
            batch.remove(&key(VECTOR, id.0));
        }
        for c in &plan.added {
            batch.insert(&key(CHUNK, c.id.0), encode("chunk", &c.chunk)?);
            batch.insert(&key(VECTOR, c.id.0), encode_vector(&c.vector));
        }
        batch.insert(&key(OP, plan.seq), encode("op", &plan.op())?);
        Ok(())
    }

    /// Moves chunk `id`, which `plan` removes, to the retired keys (see the module docs).
    /// `old_doc` caches the document's stored version across the plan's chunks. A chunk not
    /// in the database was added by an earlier plan of the same batch: no snapshot saw it.
    fn retire(
        &self,
        batch: &mut sled::Batch,
        plan: &WritePlan,
        id: ChunkId,
        old_doc: &mut Option<Option<StoredDoc>>,
    ) -> Result<()> {
        let Some(chunk) = self.get_chunk(id)? else {
            return Ok(());
        };
        if old_doc.is_none() {
            *old_doc = Some(self.get_doc(&plan.doc_id)?);
        }
        let (title, metadata) = match old_doc.as_ref().and_then(|d| d.as_ref()) {
            Some(d) => (d.title.clone(), d.metadata.clone()),
            None => (String::new(), BTreeMap::new()),
        };
        let retired = RetiredChunk {
            chunk,
            title,
            metadata,
            removed_at: plan.seq,
        };
        batch.insert(&key(RETIRED, id.0), encode("retired chunk", &retired)?);
        if let Some(v) = self.db.get(key(VECTOR, id.0))? {
            batch.insert(&key(RETIRED_VECTOR, id.0), v);
        }
        batch.insert(&queue_key(plan.seq, id.0), sled::IVec::default());
        Ok(())
    }

    /// The op-log entries with seq `> after`, in order; `None` if some of them were pruned
    /// (the caller must then rebuild from [`Self::live_chunks`]).
    pub fn ops_after(&self, after: Seq) -> Result<Option<Vec<(Seq, Op)>>> {
        if after < self.pruned_upto()? {
            return Ok(None);
        }
        let start = key(OP, after.saturating_add(1));
        let mut ops = Vec::new();
        for item in self.db.range(start..key(OP + 1, 0)) {
            let (k, v) = item?;
            ops.push((decode_u64(&k[1..])?, decode("op", &v)?));
        }
        Ok(Some(ops))
    }

    /// Deletes op-log entries with seq `<= upto` (both indexes have persisted them).
    pub fn prune_ops(&self, upto: Seq) -> Result<()> {
        if upto <= self.pruned_upto()? {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for item in self.db.range(key(OP, 0)..=key(OP, upto)) {
            batch.remove(item?.0);
        }
        batch.insert(PRUNED_UPTO, &upto.to_be_bytes());
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Every stored document, in id order.
    pub fn documents(&self) -> impl Iterator<Item = Result<DocumentInfo>> + '_ {
        self.db.scan_prefix([DOC]).map(|item| {
            let (k, v) = item?;
            let id = String::from_utf8(k[1..].to_vec())
                .map_err(|_| IndexError::corrupt("document id", "not UTF-8"))?;
            let d: StoredDoc = decode("document", &v)?;
            Ok(d.info(id))
        })
    }

    /// Every live chunk id, ascending.
    pub fn live_chunk_ids(&self) -> impl Iterator<Item = Result<ChunkId>> + '_ {
        self.db
            .scan_prefix([CHUNK])
            .map(|item| Ok(ChunkId(decode_u64(&item?.0[1..])?)))
    }

    /// Every live (id, chunk, doc id) for re-indexing, ascending by id.
    pub fn live_chunks(&self) -> impl Iterator<Item = Result<(ChunkId, StoredChunk)>> + '_ {
        self.db.scan_prefix([CHUNK]).map(|item| {
            let (k, v) = item?;
            Ok((ChunkId(decode_u64(&k[1..])?), decode("chunk", &v)?))
        })
    }

    /// Every live (id, vector), ascending by id.
    pub fn live_vectors(&self) -> impl Iterator<Item = Result<(ChunkId, Vec<f32>)>> + '_ {
        self.db.scan_prefix([VECTOR]).map(|item| {
            let (k, v) = item?;
            Ok((ChunkId(decode_u64(&k[1..])?), decode_vector(&v)))
        })
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }
}

#[cfg(test)]
mod tests;
