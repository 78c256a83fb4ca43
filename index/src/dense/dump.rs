//! Atomic, sequence-stamped HNSW dumps.
//!
//! A dump of the graph as of write `seq` lives in `<collection>/dense-<seq:020>/`:
//! `graph.hnsw.graph` + `graph.hnsw.data` (hnsw_rs's format; absent for an empty graph) and
//! `state.json` ([`DumpState`]: seq, point count, tombstones). It is written into
//! `dense-<seq>.tmp/`, every file fsynced, then renamed into place and the parent fsynced, so a
//! crash leaves either the old dump or the new one, never half of one. Older dumps and stray
//! `.tmp` directories are removed afterwards and on open.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Graph;
use crate::config::HnswConfig;
use crate::durable::fsync;
use crate::types::Seq;
use crate::{IndexError, Result};

const PREFIX: &str = "dense-";
const TMP_SUFFIX: &str = ".tmp";
const STATE: &str = "state.json";

/// What a dump contains besides the graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DumpState {
    /// The graph holds every chunk added by writes `<= seq`.
    pub seq: Seq,
    /// Number of graph points.
    pub points: usize,
    /// hnsw_rs file basename.
    pub basename: Option<String>,
    /// Tombstoned chunk ids as of `seq`.
    pub tombstones: Vec<u64>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |e| IndexError::io(path, e)
}

fn dump_dir(root: &Path, seq: Seq) -> PathBuf {
    root.join(format!("{PREFIX}{seq:020}"))
}

/// Writes the dump of `graph` for `seq` (no-op if it exists), then removes older dumps.
pub fn write(root: &Path, seq: Seq, graph: &Graph, tombstones: Vec<u64>) -> Result<()> {
    let fin = dump_dir(root, seq);
    if fin.exists() {
        return Ok(());
    }
    let tmp = root.join(format!("{PREFIX}{seq:020}{TMP_SUFFIX}"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    // Not `create_dir_all`: a background dump of a collection deleted meanwhile must fail,
    // not bring its folder back.
    fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    let basename = if graph.is_empty() {
        None
    } else {
        Some(graph.dump(&tmp, "graph")?)
    };
    let state = DumpState {
        seq,
        points: graph.len(),
        basename,
        tombstones,
    };
    let json = serde_json::to_vec(&state).map_err(|e| IndexError::corrupt(STATE, e))?;
    fs::write(tmp.join(STATE), json).map_err(io_err(&tmp))?;
    for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
        fsync(&entry.map_err(io_err(&tmp))?.path())?;
    }
    fsync(&tmp)?;
    fs::rename(&tmp, &fin).map_err(io_err(&fin))?;
    fsync(root)?;
    remove_stale(root, Some(seq))
}

/// Entries of `root` whose name starts with the dump prefix: (rest of the name, path).
fn dump_entries(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root).map_err(io_err(root))? {
        let path = entry.map_err(io_err(root))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(rest) = name.strip_prefix(PREFIX) {
            out.push((rest.to_owned(), path));
        }
    }
    Ok(out)
}

/// Dumps found under `root`, by seq ascending (temporary ones excluded).
fn list(root: &Path) -> Result<Vec<(Seq, PathBuf)>> {
    let mut found: Vec<(Seq, PathBuf)> = dump_entries(root)?
        .into_iter()
        .filter_map(|(rest, path)| rest.parse::<Seq>().ok().map(|seq| (seq, path)))
        .collect();
    found.sort();
    Ok(found)
}

/// Removes `.tmp` dumps and every dump other than `keep`.
pub fn remove_stale(root: &Path, keep: Option<Seq>) -> Result<()> {
    for (rest, path) in dump_entries(root)? {
        let keep_it = rest.parse::<Seq>().ok().is_some_and(|s| Some(s) == keep);
        if !keep_it {
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// A dump linked into another folder: its seq and its files' names.
pub type LinkedDump = (Seq, Vec<String>);

/// Links the files of the newest finished dump with seq `<= max_seq` into `into/dense-<seq>/`
/// (hard links, so the dump may be removed once linked; a copy where links cannot be made);
/// returns its seq and the files' names, or `None` when there is no such dump. Dump files are
/// never changed once written, but a newer background dump removes the older ones: a dump
/// removed while it was being linked is given up for the newer one.
pub fn link_latest(root: &Path, max_seq: Seq, into: &Path) -> Result<Option<LinkedDump>> {
    let mut tries = 0;
    loop {
        let Some((seq, path)) = list(root)?.into_iter().rev().find(|(s, _)| *s <= max_seq) else {
            return Ok(None);
        };
        match link_dump(seq, &path, into) {
            Ok(names) => return Ok(Some((seq, names))),
            Err(_) if tries < 3 && !path.exists() => {
                let _ = fs::remove_dir_all(dump_dir(into, seq));
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn link_dump(seq: Seq, path: &Path, into: &Path) -> Result<Vec<String>> {
    let target = dump_dir(into, seq);
    fs::create_dir_all(&target).map_err(io_err(&target))?;
    let mut names = Vec::new();
    for entry in fs::read_dir(path).map_err(io_err(path))? {
        let entry = entry.map_err(io_err(path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (from, to) = (entry.path(), target.join(&name));
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).map_err(io_err(&to))?;
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// The folder name of the dump for `seq`.
pub fn dump_name(seq: Seq) -> String {
    format!("{PREFIX}{seq:020}")
}

/// Loads the newest dump with seq `<= max_seq`; `None` when there is none or it is unreadable.
pub fn load_latest(
    root: &Path,
    max_seq: Seq,
    config: &HnswConfig,
) -> Result<Option<(Graph, DumpState)>> {
    let Some((_, path)) = list(root)?.into_iter().rev().find(|(s, _)| *s <= max_seq) else {
        return Ok(None);
    };
    match load(&path, config) {
        Ok(found) => Ok(Some(found)),
        Err(e) => {
            tracing::warn!(dump = %path.display(), error = %e, "ignoring unreadable HNSW dump");
            Ok(None)
        }
    }
}

fn load(path: &Path, config: &HnswConfig) -> Result<(Graph, DumpState)> {
    let state_path = path.join(STATE);
    let bytes = fs::read(&state_path).map_err(io_err(&state_path))?;
    let state: DumpState =
        serde_json::from_slice(&bytes).map_err(|e| IndexError::corrupt(STATE, e))?;
    let graph = match &state.basename {
        Some(base) => Graph::load(path, base)?,
        None => Graph::new(config, 0),
    };
    if graph.len() != state.points {
        return Err(IndexError::corrupt(
            STATE,
            "point count differs from the graph",
        ));
    }
    Ok((graph, state))
}
