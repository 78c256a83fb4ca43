//! Snapshots: a collection as one archive file, taken while it is being written, and restored
//! under a new or free name.
//!
//! An archive is a tar stream compressed with zstd (with zstd's frame checksum) holding, in
//! this order:
//!
//! ```text
//! snapshot.json        SnapshotInfo: the collection, its last write (seq), counts, embedder,
//!                      and the size and sha256 of each file below (first, so listing reads
//!                      only it)
//! manifest.json        the collection's manifest (embedder, dimension, HNSW and BM25 settings)
//! store.kv             the meta store's records and op log (see `meta::export`)
//! dense-<seq>/...      the newest HNSW dump at or before the store's last write, if any
//! ```
//!
//! **Consistency.** The store is exported, and the dump's files hard-linked into a staging
//! folder inside the collection's folder, under the collection's writer lock, so the archive
//! holds exactly the writes acknowledged up to one seq: writes wait for the export (a
//! sequential read of sled into a temporary file), searches do not wait at all, and the
//! compression runs after the lock is released. The dump may be older than the store; the op
//! log in the store covers the difference, as it does for crash recovery.
//!
//! **Restore** checks everything before the collection exists: the archive must decompress to
//! the end, hold exactly these files with the recorded sizes and checksums, and its embedder
//! must be accepted by the caller. It is unpacked into a hidden staging folder that is renamed
//! into place last, so a failed or interrupted restore leaves no collection behind. Opening the
//! restored collection loads the archived graph and replays the writes after its dump, and
//! rebuilds tantivy from the store (see `recovery`: BM25 scores depend only on the chunks), then
//! checkpoints them so that later opens replay nothing. With a dump at the store's last write,
//! the restored graph is the one the source searched.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::IndexManifest;
use crate::meta::MetaStore;
use crate::retire::{MANIFEST, STAGING_PREFIX};
use crate::types::Seq;
use crate::{Collection, IndexError, Result, Store};

/// File name ending of snapshot archives.
pub const SNAPSHOT_SUFFIX: &str = ".ragd-snapshot.tar.zst";
/// Archive format version.
pub const SNAPSHOT_FORMAT: u32 = 1;

const INFO: &str = "snapshot.json";
const STORE: &str = "store.kv";
/// Largest `snapshot.json` or `manifest.json` read from an archive.
const SMALL_FILE: u64 = 1 << 20;

/// What a snapshot holds (its `snapshot.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Archive format version ([`SNAPSHOT_FORMAT`]).
    pub format: u32,
    /// The collection it was taken of.
    pub collection: String,
    /// Its last acknowledged write in the archive.
    pub seq: Seq,
    /// Documents in the archive.
    pub documents: u64,
    /// Chunks in the archive.
    pub chunks: u64,
    /// When it was taken, Unix milliseconds.
    pub created_unix_ms: u64,
    /// The embedding model of its vectors.
    pub embedding_model: String,
    /// Their dimension.
    pub dimension: usize,
    /// The files after `snapshot.json`, in order.
    pub files: Vec<ArchivedFile>,
}

/// One file of an archive and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedFile {
    /// Its name in the archive.
    pub name: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// Its sha256, hex.
    pub sha256: String,
}

/// A snapshot archive on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotFile {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// What it holds.
    pub info: SnapshotInfo,
    /// How long the store's export took, in ms: the writer lock is held for it, so writes to
    /// the collection waited at most this long (0 when the archive was only read).
    pub export_ms: f64,
}

fn bad(path: &Path, reason: impl Into<String>) -> IndexError {
    IndexError::BadSnapshot {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// sha256 and length of a file.
fn digest_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(|e| IndexError::io(path, e))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(|e| IndexError::io(path, e))?;
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl Collection {
    /// Writes a snapshot of the collection as of its last acknowledged write into `dir`
    /// (created if missing), as `<name>-<seq>-<unix ms>.ragd-snapshot.tar.zst`. Writes wait
    /// while the store is exported; searches go on.
    pub fn write_snapshot(&self, dir: &Path) -> Result<SnapshotFile> {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let created = unix_ms();
        let staging = self
            .dir()
            .join(format!("{STAGING_PREFIX}{created}-{}", std::process::id()));
        std::fs::create_dir(&staging).map_err(|e| IndexError::io(&staging, e))?;
        let result = self.write_snapshot_via(dir, &staging, created);
        let _ = std::fs::remove_dir_all(&staging);
        result
    }

    fn write_snapshot_via(&self, dir: &Path, staging: &Path, created: u64) -> Result<SnapshotFile> {
        let store_tmp = staging.join(STORE);
        let export_started = std::time::Instant::now();
        let (counts, dump) = {
            let file = File::create(&store_tmp).map_err(|e| IndexError::io(&store_tmp, e))?;
            let mut out = BufWriter::new(file);
            let exported = self.writer().export_store(&mut out, &store_tmp, staging)?;
            out.flush().map_err(|e| IndexError::io(&store_tmp, e))?;
            exported
        };
        let export_ms = export_started.elapsed().as_secs_f64() * 1e3;
        let manifest_path = self.dir().join(MANIFEST);
        let manifest =
            std::fs::read(&manifest_path).map_err(|e| IndexError::io(&manifest_path, e))?;
        let mut files = vec![ArchivedFile {
            name: MANIFEST.to_string(),
            bytes: manifest.len() as u64,
            sha256: hex::encode(Sha256::digest(&manifest)),
        }];
        // The store, then the graph dump's files: (name in the archive, path here).
        let mut sources = vec![(STORE.to_string(), store_tmp)];
        if let Some((seq, names)) = dump {
            let folder = crate::dense::dump_name(seq);
            for name in names {
                sources.push((format!("{folder}/{name}"), staging.join(&folder).join(name)));
            }
        }
        for (name, path) in &sources {
            let (sha256, bytes) = digest_file(path)?;
            files.push(ArchivedFile {
                name: name.clone(),
                bytes,
                sha256,
            });
        }
        let config = self.config();
        let info = SnapshotInfo {
            format: SNAPSHOT_FORMAT,
            collection: config.name.clone(),
            seq: counts.seq,
            documents: counts.documents,
            chunks: counts.chunks,
            created_unix_ms: created,
            embedding_model: config.embedding_model.clone(),
            dimension: config.dimension,
            files,
        };
        let name = format!("{}-{}-{created}{SNAPSHOT_SUFFIX}", config.name, counts.seq);
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let written = write_archive(&tmp, &info, &manifest, &sources);
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path).map_err(|e| IndexError::io(&path, e))?;
        crate::durable::fsync(dir)?;
        let bytes = std::fs::metadata(&path)
            .map_err(|e| IndexError::io(&path, e))?
            .len();
        tracing::info!(
            collection = %info.collection,
            seq = info.seq,
            export_ms,
            bytes,
            "snapshot written"
        );
        Ok(SnapshotFile {
            path,
            bytes,
            info,
            export_ms,
        })
    }
}

fn write_archive(
    path: &Path,
    info: &SnapshotInfo,
    manifest: &[u8],
    sources: &[(String, PathBuf)],
) -> Result<()> {
    let io = |e: std::io::Error| IndexError::io(path, e);
    let file = File::create(path).map_err(io)?;
    let mut zstd = zstd::stream::write::Encoder::new(BufWriter::new(file), 3).map_err(io)?;
    zstd.include_checksum(true).map_err(io)?;
    let mut tar = tar::Builder::new(zstd);
    let append = |tar: &mut tar::Builder<_>, name: &str, len: u64, data: &mut dyn Read| {
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o644);
        header.set_mtime(info.created_unix_ms / 1000);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
    };
    let info_json = serde_json::to_vec_pretty(info)
        .map_err(|e| IndexError::corrupt("snapshot info", e.to_string()))?;
    append(&mut tar, INFO, info_json.len() as u64, &mut &info_json[..]).map_err(io)?;
    append(
        &mut tar,
        MANIFEST,
        manifest.len() as u64,
        &mut &manifest[..],
    )
    .map_err(io)?;
    for ((name, source), listed) in sources.iter().zip(&info.files[1..]) {
        let mut file = File::open(source).map_err(|e| IndexError::io(source, e))?;
        append(&mut tar, name, listed.bytes, &mut file).map_err(io)?;
    }
    let zstd = tar.into_inner().map_err(io)?;
    let mut out = zstd.finish().map_err(io)?;
    out.flush().map_err(io)?;
    out.get_ref().sync_all().map_err(io)?;
    Ok(())
}

type Entries = tar::Archive<zstd::stream::read::Decoder<'static, BufReader<File>>>;

fn open_archive(path: &Path) -> Result<Entries> {
    let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
    let zstd = zstd::stream::read::Decoder::new(file)
        .map_err(|e| bad(path, format!("not a zstd stream: {e}")))?;
    Ok(tar::Archive::new(zstd))
}

/// Reads the next entry's name, checking it is `expected`.
fn expect_entry<'a, R: Read + 'a>(
    path: &Path,
    entries: &mut tar::Entries<'a, R>,
    expected: &str,
) -> Result<tar::Entry<'a, R>> {
    let damaged = |e: std::io::Error| bad(path, format!("truncated or damaged: {e}"));
    let entry = entries
        .next()
        .ok_or_else(|| {
            bad(
                path,
                format!("the archive ends before {expected} (truncated?)"),
            )
        })?
        .map_err(damaged)?;
    let name = entry
        .path()
        .map_err(damaged)?
        .to_string_lossy()
        .into_owned();
    if name != expected {
        return Err(bad(
            path,
            format!("found {name:?} where {expected} belongs"),
        ));
    }
    Ok(entry)
}

fn read_small(path: &Path, entry: &mut impl Read, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    entry
        .take(SMALL_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(path, format!("truncated or damaged reading {what}: {e}")))?;
    if bytes.len() as u64 > SMALL_FILE {
        return Err(bad(path, format!("{what} is implausibly large")));
    }
    Ok(bytes)
}

fn parse_info(path: &Path, bytes: &[u8]) -> Result<SnapshotInfo> {
    let info: SnapshotInfo = serde_json::from_slice(bytes)
        .map_err(|e| bad(path, format!("{INFO} is not readable: {e}")))?;
    if info.format != SNAPSHOT_FORMAT {
        return Err(bad(
            path,
            format!(
                "archive format {} (this ragd reads format {SNAPSHOT_FORMAT})",
                info.format
            ),
        ));
    }
    let names: Vec<&str> = info.files.iter().map(|f| f.name.as_str()).collect();
    if names.get(..2) != Some(&[MANIFEST, STORE][..]) || !names[2..].iter().all(|n| is_dump_file(n))
    {
        return Err(bad(path, format!("unexpected file list {names:?}")));
    }
    Ok(info)
}

/// Whether `name` is `dense-<digits>/<plain file name>`: all an archive may hold besides the
/// manifest and the store, and nothing that can point outside the staging folder.
fn is_dump_file(name: &str) -> bool {
    let Some((folder, file)) = name.split_once('/') else {
        return false;
    };
    let digits = folder.strip_prefix("dense-").unwrap_or_default();
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !file.is_empty()
        && !file.starts_with('.')
        && !file.contains(['/', '\\'])
}

/// What the snapshot at `path` holds, from its first entry (the rest is not read).
pub fn read_snapshot_info(path: &Path) -> Result<SnapshotInfo> {
    let mut archive = open_archive(path)?;
    let mut entries = archive
        .entries()
        .map_err(|e| bad(path, format!("not a tar archive: {e}")))?;
    let mut entry = expect_entry(path, &mut entries, INFO)?;
    let bytes = read_small(path, &mut entry, INFO)?;
    parse_info(path, &bytes)
}

/// The snapshot archives in `dir`, newest first; files that are not readable snapshots are
/// skipped with a warning. An absent folder holds none.
pub fn list_snapshots(dir: &Path) -> Result<Vec<SnapshotFile>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(IndexError::io(dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| IndexError::io(dir, e))?.path();
        let is_archive = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(SNAPSHOT_SUFFIX) && !n.starts_with('.'));
        if !is_archive {
            continue;
        }
        match read_snapshot_info(&path) {
            Ok(info) => {
                let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                out.push(SnapshotFile {
                    path,
                    bytes,
                    info,
                    export_ms: 0.0,
                });
            }
            Err(e) => tracing::warn!(path = %path.display(), "not a readable snapshot: {e}"),
        }
    }
    out.sort_by(|a, b| (b.info.created_unix_ms, &b.path).cmp(&(a.info.created_unix_ms, &a.path)));
    Ok(out)
}

/// Unpacks and checks the archive into `staging` (a new folder), as collection `name`; calls
/// `accept` once the manifest is known and before the store is unpacked.
fn unpack(
    path: &Path,
    staging: &Path,
    name: &str,
    accept: impl FnOnce(&SnapshotInfo, &IndexManifest) -> Result<()>,
) -> Result<SnapshotInfo> {
    let mut archive = open_archive(path)?;
    let mut entries = archive
        .entries()
        .map_err(|e| bad(path, format!("not a tar archive: {e}")))?;
    let info = {
        let mut entry = expect_entry(path, &mut entries, INFO)?;
        parse_info(path, &read_small(path, &mut entry, INFO)?)?
    };
    let check = |file: &ArchivedFile, sha256: String, bytes: u64| {
        if bytes != file.bytes || sha256 != file.sha256 {
            return Err(bad(
                path,
                format!(
                    "{} does not match its checksum ({bytes} bytes, sha256 {sha256}; recorded \
                     {} bytes, sha256 {}): the archive was altered or damaged",
                    file.name, file.bytes, file.sha256
                ),
            ));
        }
        Ok(())
    };
    let mut manifest = {
        let mut entry = expect_entry(path, &mut entries, MANIFEST)?;
        let bytes = read_small(path, &mut entry, MANIFEST)?;
        check(
            &info.files[0],
            hex::encode(Sha256::digest(&bytes)),
            bytes.len() as u64,
        )?;
        serde_json::from_slice::<IndexManifest>(&bytes)
            .map_err(|e| bad(path, format!("{MANIFEST} is not readable: {e}")))?
    };
    accept(&info, &manifest)?;
    std::fs::create_dir_all(staging).map_err(|e| IndexError::io(staging, e))?;
    {
        let entry = expect_entry(path, &mut entries, STORE)?;
        let mut hashing = Hashing {
            inner: entry,
            hasher: Sha256::new(),
            bytes: 0,
        };
        let imported = MetaStore::import_from(&staging.join("meta"), &mut hashing, STORE);
        // Whatever follows the export's end belongs to the checksum too.
        std::io::copy(&mut hashing, &mut std::io::sink())
            .map_err(|e| bad(path, format!("truncated or damaged: {e}")))?;
        let Hashing { hasher, bytes, .. } = hashing;
        check(&info.files[1], hex::encode(hasher.finalize()), bytes)?;
        // The store's bytes are the ones written: an import that failed anyway failed here
        // (a full disk, say), not in the archive, and keeps its own error.
        imported?;
    }
    for file in &info.files[2..] {
        let entry = expect_entry(path, &mut entries, &file.name)?;
        let target = staging.join(&file.name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| IndexError::io(parent, e))?;
        }
        let mut hashing = Hashing {
            inner: entry,
            hasher: Sha256::new(),
            bytes: 0,
        };
        let mut out = File::create(&target).map_err(|e| IndexError::io(&target, e))?;
        std::io::copy(&mut hashing, &mut out)
            .map_err(|e| bad(path, format!("truncated or damaged: {e}")))?;
        out.sync_all().map_err(|e| IndexError::io(&target, e))?;
        let Hashing { hasher, bytes, .. } = hashing;
        check(file, hex::encode(hasher.finalize()), bytes)?;
    }
    match entries.next() {
        None => {}
        Some(Err(e)) => return Err(bad(path, format!("damaged after its files: {e}"))),
        Some(Ok(_)) => return Err(bad(path, "unexpected entries after its files")),
    }
    // Reading on to the end of the zstd stream checks its frame checksum.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
        .map_err(|e| bad(path, format!("truncated or damaged: {e}")))?;
    manifest.name = name.to_string();
    manifest.store(&staging.join(MANIFEST))?;
    Ok(info)
}

impl Store {
    /// Restores the snapshot at `archive` as collection `name`, which must be free;
    /// `accept` sees the snapshot's info and manifest first and refuses it with an error (for
    /// example an embedder that is not the caller's). A truncated, altered or foreign archive is
    /// [`IndexError::BadSnapshot`], and nothing is left behind.
    pub fn restore_snapshot(
        &self,
        archive: &Path,
        name: &str,
        accept: impl FnOnce(&SnapshotInfo, &IndexManifest) -> Result<()>,
    ) -> Result<(Arc<Collection>, SnapshotInfo)> {
        crate::config::validate_collection_name(name)?;
        let dir = self.root().join(name);
        let mut restored = None;
        let collection = self.open_with(
            name,
            |_| {
                Err(IndexError::CollectionExists {
                    name: name.to_string(),
                })
            },
            || {
                if self.is_being_removed(name) {
                    return Err(IndexError::CollectionBeingDeleted {
                        name: name.to_string(),
                    });
                }
                if dir.exists() {
                    return Err(IndexError::CollectionExists {
                        name: name.to_string(),
                    });
                }
                let staging = self.root().join(format!(".restore-{name}"));
                if staging.exists() {
                    // A restore interrupted earlier.
                    std::fs::remove_dir_all(&staging).map_err(|e| IndexError::io(&staging, e))?;
                }
                let unpacked = unpack(archive, &staging, name, accept);
                let info = match unpacked {
                    Ok(info) => info,
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&staging);
                        return Err(e);
                    }
                };
                std::fs::rename(&staging, &dir).map_err(|e| IndexError::io(&dir, e))?;
                crate::durable::fsync(self.root())?;
                restored = Some(info);
                Collection::open_existing_with(&dir, self.maintenance())
            },
        )?;
        // The indexes were rebuilt on open: persist them so the next open replays nothing.
        collection.writer().checkpoint()?;
        let info = restored.ok_or_else(|| IndexError::corrupt("restore", "no snapshot info"))?;
        Ok((collection, info))
    }
}
