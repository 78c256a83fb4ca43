//! `ragd snapshot create | list | restore`: point-in-time archives of a collection in the
//! snapshot folder (`snapshot_dir`, by default `<data_dir>/.snapshots`), locally or on a
//! running server with `--server URL`. See [`crate::snapshots`] and `index::archive`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::args::Target;

use crate::config::Config;
use crate::grpc::convert::SnapshotLine;
use crate::snapshots::{self, EmbedderId};
use crate::state::{describe, CollectionInfo};

/// `ragd snapshot`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Archive a collection as it is now (writes wait for the export; searches go on).
    Create(CreateArgs),
    /// List the archives in the snapshot folder, newest first.
    List(ListArgs),
    /// Restore an archive as a new collection (the name must be free).
    Restore(RestoreArgs),
}

/// `ragd snapshot create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The collection to archive.
    pub collection: String,
    /// Where, and how to print.
    #[command(flatten)]
    pub target: Target,
}

/// `ragd snapshot list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this collection's archives.
    #[arg(long)]
    pub collection: Option<String>,
    /// Where, and how to print.
    #[command(flatten)]
    pub target: Target,
}

/// `ragd snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive: a name from `ragd snapshot list`, or (locally) the path of an archive file.
    pub snapshot: String,
    /// The name of the restored collection (must be free).
    #[arg(long)]
    pub collection: String,
    /// Where, and how to print.
    #[command(flatten)]
    pub target: Target,
}

/// Runs `ragd snapshot ...`.
pub fn run(cfg: &Config, cmd: SnapshotCommand) -> anyhow::Result<()> {
    match cmd {
        SnapshotCommand::Create(a) => {
            let started = std::time::Instant::now();
            let line = match &a.target.server {
                Some(url) => super::remote::create_snapshot(url, &a.collection)?,
                None => {
                    let store = super::open_store(cfg)?;
                    let view = snapshots::create(&store, &cfg.snapshot_dir(), &a.collection)
                        .map_err(|e| {
                            super::in_use_hint(e.into(), &a.collection, "take the snapshot")
                        })?;
                    view.into()
                }
            };
            if a.target.json {
                println!("{}", serde_json::to_string(&line)?);
            } else {
                println!(
                    "snapshot {} of {}: {} documents, {} chunks up to write {}, {} in {:.1} s \
                     (writes waited {:.0} ms)",
                    line.name,
                    line.collection,
                    line.documents,
                    line.chunks,
                    line.seq,
                    indicatif::HumanBytes(line.bytes),
                    started.elapsed().as_secs_f64(),
                    line.export_ms
                );
            }
        }
        SnapshotCommand::List(a) => {
            let list: Vec<SnapshotLine> = match &a.target.server {
                Some(url) => super::remote::snapshots(url, a.collection.as_deref())?,
                None => snapshots::list(&cfg.snapshot_dir(), a.collection.as_deref())?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            };
            if a.target.json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("(no snapshots in {})", cfg.snapshot_dir().display());
            } else {
                for s in &list {
                    println!(
                        "{}  {}  {} documents, {} chunks, write {}  {}",
                        s.name,
                        s.collection,
                        s.documents,
                        s.chunks,
                        s.seq,
                        indicatif::HumanBytes(s.bytes)
                    );
                }
            }
        }
        SnapshotCommand::Restore(a) => {
            let started = std::time::Instant::now();
            let (info, line) = match &a.target.server {
                Some(url) => super::remote::restore_snapshot(url, &a.snapshot, &a.collection)?,
                None => restore_local(cfg, &a)?,
            };
            if a.target.json {
                println!(
                    "{}",
                    serde_json::json!({ "collection": info, "snapshot": line })
                );
            } else {
                println!(
                    "restored {} as collection {}: {} documents, {} chunks ({:.1} s)",
                    line.name,
                    info.name,
                    info.documents,
                    info.chunks,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok(())
}

/// The archive `given` names: a file in the snapshot folder, or a path to one.
fn archive_path(cfg: &Config, given: &str) -> anyhow::Result<PathBuf> {
    let in_folder = cfg.snapshot_dir().join(given);
    if !given.contains(['/', '\\']) && in_folder.is_file() {
        return Ok(in_folder);
    }
    let path = Path::new(given);
    anyhow::ensure!(
        path.is_file(),
        "snapshot {given}: no such archive in {} nor file",
        cfg.snapshot_dir().display()
    );
    Ok(path.to_path_buf())
}

fn restore_local(cfg: &Config, a: &RestoreArgs) -> anyhow::Result<(CollectionInfo, SnapshotLine)> {
    let path = archive_path(cfg, &a.snapshot)?;
    let id = EmbedderId::of(&crate::wiring::load_embedder(cfg)?);
    let store = super::open_store(cfg)?;
    let (collection, view) = snapshots::restore(&store, &path, &a.collection, &id)?;
    Ok((describe(&collection)?, view.into()))
}
