//! The meta store as a byte stream, for snapshots (see `archive`): what is needed to bring the
//! collection back, and nothing a restore can rebuild.
//!
//! Exported: documents, chunks, vectors, the op log (only what checkpoints have not pruned) and
//! the counters (last seq, next chunk id, counts, pruned log). Left out: the retired records (a
//! restored collection has no older snapshots to serve). With the op log, opening the restored
//! collection replays into an HNSW dump archived beside the store what it lacks, as recovery
//! does after a crash; without a dump it builds the graph from the vectors (see `recovery`).
//!
//! Stream: `MAGIC`, then records `[u32 LE key length][key][u32 LE value length][value]`, then
//! `u32::MAX` and the record count as u64 LE, so a stream cut short is told apart from a
//! complete one.

use std::io::{Read, Write};
use std::path::Path;

use super::{
    open_sled, MetaStore, CHUNK, CHUNK_COUNT, DOC, DOC_COUNT, LAST_SEQ, NEXT_CHUNK, OP,
    PRUNED_UPTO, VECTOR,
};
use crate::{IndexError, Result};

const MAGIC: &[u8; 8] = b"RAGDKV1\n";
const END: u32 = u32::MAX;
/// Records per sled batch on import.
const IMPORT_BATCH: usize = 4096;

fn exported(key: &[u8]) -> bool {
    match key.first() {
        Some(&DOC | &CHUNK | &VECTOR | &OP) => true,
        _ => [LAST_SEQ, NEXT_CHUNK, DOC_COUNT, CHUNK_COUNT, PRUNED_UPTO].contains(&key),
    }
}

fn io(what: &Path, e: std::io::Error) -> IndexError {
    IndexError::io(what, e)
}

impl MetaStore {
    /// Writes the live records to `out` (`path` names it in errors); returns how many. The
    /// caller keeps writers out meanwhile (sled iterators do not see one point in time).
    pub fn export_to(&self, out: &mut impl Write, path: &Path) -> Result<u64> {
        out.write_all(MAGIC).map_err(|e| io(path, e))?;
        let mut records = 0u64;
        for item in self.db.iter() {
            let (k, v) = item?;
            if !exported(&k) {
                continue;
            }
            for part in [&k[..], &v[..]] {
                let len = u32::try_from(part.len())
                    .ok()
                    .filter(|&n| n != END)
                    .ok_or_else(|| IndexError::corrupt("meta record", "over 4 GiB"))?;
                out.write_all(&len.to_le_bytes()).map_err(|e| io(path, e))?;
                out.write_all(part).map_err(|e| io(path, e))?;
            }
            records += 1;
        }
        out.write_all(&END.to_le_bytes()).map_err(|e| io(path, e))?;
        out.write_all(&records.to_le_bytes())
            .map_err(|e| io(path, e))?;
        Ok(records)
    }

    /// Creates the meta store in `dir` (which must not hold one) from a stream written by
    /// [`Self::export_to`]; `what` names the stream in errors. Returns the records imported.
    pub fn import_from(dir: &Path, input: &mut impl Read, what: &str) -> Result<u64> {
        let bad = |reason: &str| IndexError::corrupt(what, reason);
        let mut magic = [0u8; 8];
        input
            .read_exact(&mut magic)
            .map_err(|_| bad("too short to be a store export"))?;
        if &magic != MAGIC {
            return Err(bad("not a ragd store export"));
        }
        let db = open_sled(&sled::Config::new().path(dir))?;
        let read_u32 = |input: &mut dyn Read| -> Result<u32> {
            let mut b = [0u8; 4];
            input
                .read_exact(&mut b)
                .map_err(|_| bad("the store export ends early (truncated)"))?;
            Ok(u32::from_le_bytes(b))
        };
        let read_bytes = |input: &mut dyn Read, n: u32| -> Result<Vec<u8>> {
            let mut v = Vec::new();
            input
                .take(u64::from(n))
                .read_to_end(&mut v)
                .map_err(|_| bad("the store export ends early (truncated)"))?;
            if v.len() != n as usize {
                return Err(bad("the store export ends early (truncated)"));
            }
            Ok(v)
        };
        let (mut records, mut batch, mut in_batch) = (0u64, sled::Batch::default(), 0usize);
        loop {
            let klen = read_u32(input)?;
            if klen == END {
                break;
            }
            let key = read_bytes(input, klen)?;
            let vlen = read_u32(input)?;
            let value = read_bytes(input, vlen)?;
            if !exported(&key) {
                return Err(bad("an unexpected record kind"));
            }
            batch.insert(key, value);
            (records, in_batch) = (records + 1, in_batch + 1);
            if in_batch == IMPORT_BATCH {
                db.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        let mut count = [0u8; 8];
        input
            .read_exact(&mut count)
            .map_err(|_| bad("the store export ends early (truncated)"))?;
        if u64::from_le_bytes(count) != records {
            return Err(bad("the record count does not match (damaged)"));
        }
        db.apply_batch(batch)?;
        db.flush()?;
        Ok(records)
    }
}
