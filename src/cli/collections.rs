//! `ragd collections list | info | create | delete | reindex`: the collections of the local data folder,
//! or of a running server with `--server URL`, printed the same way either way.
//!
//! Listing reads the manifests and recorded counts and opens nothing, so it also works on a
//! data folder a server is using. Deleting opens the collection first, which takes its lock:
//! a collection a running server holds is refused here (delete it through `--server`).

use std::path::Path;

use clap::{Args, Subcommand};

use super::args::Target;

use index::ReindexProgress;

use crate::config::Config;
use crate::reindex::ReindexView;
use crate::state::CollectionInfo;

/// `ragd collections`.
#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// List the collections with their document and chunk counts.
    List(Target),
    /// Show one collection (and, locally, its size on disk).
    Info(Named),
    /// Create an empty collection for the configured embedder.
    Create(Named),
    /// Delete a collection and all its data.
    Delete(Named),
    /// Re-embed every chunk with the configured embedder into a new generation, then switch to
    /// it (searches and writes go on meanwhile; stopping it changes nothing).
    Reindex(Named),
}

/// A collection by name.
#[derive(Debug, Args)]
pub struct Named {
    /// The collection's name.
    pub name: String,
    /// Where, and how to print.
    #[command(flatten)]
    pub target: Target,
}

/// Runs `ragd collections ...`.
pub fn run(cfg: &Config, cmd: CollectionsCommand) -> anyhow::Result<()> {
    match cmd {
        CollectionsCommand::List(t) => {
            let list = match &t.server {
                Some(url) => super::remote::collections(url)?,
                None => local_list(cfg)?,
            };
            if t.json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("(no collections)");
            } else {
                print_table(&list);
            }
        }
        CollectionsCommand::Info(n) => {
            let (info, size) = match &n.target.server {
                Some(url) => (find(super::remote::collections(url)?, &n.name)?, None),
                None => {
                    let info = find(local_list(cfg)?, &n.name)?;
                    (info, Some(folder_size(&cfg.data_dir.join(&n.name))))
                }
            };
            print_one(&info, size, n.target.json)?;
        }
        CollectionsCommand::Create(n) => {
            let info = match &n.target.server {
                Some(url) => super::remote::create_collection(url, &n.name)?,
                None => local_create(cfg, &n.name)?,
            };
            if !n.target.json {
                print!("created ");
            }
            print_one(&info, None, n.target.json)?;
        }
        CollectionsCommand::Reindex(n) => {
            let mut shown = Progress::default();
            let (info, view) = match &n.target.server {
                Some(url) => super::remote::reindex(url, &n.name, |p| shown.show(p))?,
                None => local_reindex(cfg, &n.name, |p| shown.show(p))?,
            };
            print_reindexed(&info, &view, n.target.json)?;
        }
        CollectionsCommand::Delete(n) => {
            match &n.target.server {
                Some(url) => super::remote::delete_collection(url, &n.name)?,
                None => local_delete(cfg, &n.name)?,
            }
            if n.target.json {
                println!("{}", serde_json::json!({ "deleted": n.name }));
            } else {
                println!("deleted collection {}", n.name);
            }
        }
    }
    Ok(())
}

fn local_list(cfg: &Config) -> anyhow::Result<Vec<CollectionInfo>> {
    if !cfg.data_dir.exists() {
        return Ok(Vec::new());
    }
    let summaries = super::open_store(cfg)?.summaries()?;
    Ok(summaries.into_iter().map(CollectionInfo::from).collect())
}

fn local_create(cfg: &Config, name: &str) -> anyhow::Result<CollectionInfo> {
    index::config::validate_collection_name(name)?;
    let embedder = crate::wiring::load_embedder(cfg)?;
    let config = crate::jobs::collection_config(name, &embedder);
    super::open_store(cfg)?.create_collection(config)?;
    find(local_list(cfg)?, name)
}

/// Opens the collection before deleting it: its lock tells whether another process (a server)
/// is using it.
fn local_delete(cfg: &Config, name: &str) -> anyhow::Result<()> {
    let store = super::open_store(cfg)?;
    let collection = store
        .collection(name)
        .map_err(|e| super::in_use_hint(e.into(), name, "manage it"))?;
    drop(collection);
    store.delete_collection(name)?;
    Ok(())
}

/// Reindexes in this process: the collection must not be held by a running server (reindex it
/// through `--server` then, which also keeps its searches served).
fn local_reindex(
    cfg: &Config,
    name: &str,
    mut progress: impl FnMut(&ReindexProgress),
) -> anyhow::Result<(CollectionInfo, ReindexView)> {
    let store = super::open_store(cfg)?;
    let source = store
        .collection(name)
        .map_err(|e| super::in_use_hint(e.into(), name, "reindex it"))?;
    let previous_fingerprint = source.config().embedder_fingerprint.clone();
    drop(source);
    let embedder = crate::wiring::load_embedder(cfg)?;
    let (collection, report) = crate::reindex::reindex(&store, name, &embedder, |p| {
        progress(p);
        Ok(())
    })?;
    let view = ReindexView {
        previous_fingerprint,
        searches_served: false,
        note: "reindexed locally: no server was serving the collection".into(),
        report,
    };
    Ok((crate::state::describe(&collection)?, view))
}

/// Reindex progress on stderr, a line every two seconds at most and one per round's end.
#[derive(Default)]
struct Progress {
    last: Option<std::time::Instant>,
}

impl Progress {
    fn show(&mut self, p: &ReindexProgress) {
        let due = self.last.is_none_or(|t| t.elapsed().as_secs() >= 2);
        if due || p.documents_done == p.documents_total {
            let what = if p.round == 0 { "copied" } else { "caught up" };
            eprintln!(
                "round {}: {what} {}/{} documents ({} chunks embedded)",
                p.round + 1,
                p.documents_done,
                p.documents_total,
                p.chunks_embedded
            );
            self.last = Some(std::time::Instant::now());
        }
    }
}

fn print_reindexed(info: &CollectionInfo, view: &ReindexView, json: bool) -> anyhow::Result<()> {
    if json {
        let mut value = serde_json::to_value(view)?;
        value["collection"] = serde_json::to_value(info)?;
        println!("{value}");
        return Ok(());
    }
    let r = &view.report;
    println!(
        "reindexed collection {}: {} documents, {} chunks, in {:.1} s",
        info.name,
        info.documents,
        info.chunks,
        r.total_ms / 1e3
    );
    println!("  from       {}", view.previous_fingerprint);
    println!("  to         {}", info.embedder_fingerprint);
    println!(
        "  rounds     {} ({} documents caught up on writes made meanwhile)",
        r.rounds, r.caught_up
    );
    println!(
        "  waits      writes {:.0} ms, switch {:.0} ms",
        r.writes_waited_ms, r.switch_ms
    );
    if !view.note.is_empty() {
        println!("  note       {}", view.note);
    }
    Ok(())
}

fn find(list: Vec<CollectionInfo>, name: &str) -> anyhow::Result<CollectionInfo> {
    list.into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| anyhow::anyhow!("collection {name} not found"))
}

/// Bytes of every file under `dir`.
fn folder_size(dir: &Path) -> u64 {
    fn walk(dir: &Path, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&entry.path(), total),
                Ok(_) => *total += entry.metadata().map_or(0, |m| m.len()),
                Err(_) => {}
            }
        }
    }
    let mut total = 0;
    walk(dir, &mut total);
    total
}

fn print_table(list: &[CollectionInfo]) {
    let width = list.iter().map(|c| c.name.len()).max().unwrap_or(0).max(4);
    println!(
        "{:<width$}  {:>10}  {:>10}  {:>4}  model",
        "name", "documents", "chunks", "dim"
    );
    for c in list {
        println!(
            "{:<width$}  {:>10}  {:>10}  {:>4}  {}",
            c.name, c.documents, c.chunks, c.dimension, c.embedding_model
        );
    }
}

fn print_one(info: &CollectionInfo, size: Option<u64>, json: bool) -> anyhow::Result<()> {
    if json {
        let mut value = serde_json::to_value(info)?;
        if let Some(bytes) = size {
            value["bytes_on_disk"] = bytes.into();
        }
        println!("{value}");
        return Ok(());
    }
    println!("collection {}", info.name);
    println!("  documents  {}", info.documents);
    println!("  chunks     {}", info.chunks);
    println!(
        "  embedder   {} ({} dimensions)",
        info.embedding_model, info.dimension
    );
    if !info.embedder_fingerprint.is_empty() {
        println!("             {}", info.embedder_fingerprint);
    }
    if let Some(bytes) = size {
        println!("  on disk    {}", indicatif::HumanBytes(bytes));
    }
    Ok(())
}
