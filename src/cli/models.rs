//! `ragd models fetch|list`.

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::model::source::{self, FileState, ModelSpec};

/// `ragd models ...`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the default models (or the named ones), verify their sha256 and cache them.
    Fetch(FetchArgs),
    /// Show the catalogue: what is cached, sizes, and whether each file verifies.
    List(ListArgs),
}

/// `ragd models fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Catalogue names; default: the default embedder and generator.
    pub names: Vec<String>,
    /// Fetch every model in the catalogue.
    #[arg(long)]
    pub all: bool,
}

/// `ragd models list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Re-hash every cached file (slower) instead of checking sizes only.
    #[arg(long)]
    pub verify: bool,
    /// One JSON object per model.
    #[arg(long)]
    pub json: bool,
}

/// Runs a models command.
pub fn run(cfg: &Config, cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::Fetch(args) => fetch_models(cfg, &args),
        ModelsCommand::List(args) => list(cfg, &args),
    }
}

fn selected(args: &FetchArgs) -> anyhow::Result<Vec<&'static ModelSpec>> {
    if args.all {
        return Ok(source::CATALOG.iter().collect());
    }
    if args.names.is_empty() {
        return Ok(source::CATALOG.iter().filter(|m| m.default).collect());
    }
    args.names
        .iter()
        .map(|n| {
            source::find(n).ok_or_else(|| {
                anyhow::anyhow!("unknown model `{n}`; `ragd models list` shows the catalogue")
            })
        })
        .collect()
}

fn fetch_models(cfg: &Config, args: &FetchArgs) -> anyhow::Result<()> {
    for spec in selected(args)? {
        let dir = source::ensure(&cfg.models_dir, spec)?;
        let states = source::verify(&cfg.models_dir, spec, true);
        if let Some((file, _)) = states.iter().find(|(_, s)| *s != FileState::Verified) {
            anyhow::bail!(
                "{}/{} does not verify after fetching",
                dir.display(),
                file.name
            );
        }
        println!("{:<28} verified  {}", spec.name, dir.display());
    }
    Ok(())
}

fn list(cfg: &Config, args: &ListArgs) -> anyhow::Result<()> {
    if !args.json {
        println!("models folder: {}", cfg.models_dir.display());
        println!(
            "{:<28} {:<9} {:>9}  {:<10} default",
            "name", "role", "size", "state"
        );
    }
    for spec in source::CATALOG {
        let states = source::verify(&cfg.models_dir, spec, args.verify);
        let state = summarize(&states);
        if args.json {
            let files: Vec<_> = states
                .iter()
                .map(|(f, s)| serde_json::json!({"name": f.name, "size": f.size, "sha256": f.sha256, "state": s}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"name": spec.name, "role": spec.role, "size": spec.size(),
                    "default": spec.default, "license": spec.license, "state": state,
                    "path": source::model_dir(&cfg.models_dir, spec), "files": files})
            );
        } else {
            let mb = format!("{:.1} MB", spec.size() as f64 / 1e6);
            let role = format!("{:?}", spec.role).to_lowercase();
            println!(
                "{:<28} {role:<9} {mb:>9}  {state:<10} {}",
                spec.name, spec.default
            );
        }
    }
    Ok(())
}

fn summarize(states: &[(source::ModelFile, FileState)]) -> &'static str {
    let all = |want: FileState| states.iter().all(|(_, s)| *s == want);
    if all(FileState::Verified) {
        "verified"
    } else if all(FileState::Missing) {
        "missing"
    } else if states.iter().any(|(_, s)| *s == FileState::Corrupt) {
        "corrupt"
    } else if states
        .iter()
        .all(|(_, s)| matches!(s, FileState::Present | FileState::Verified))
    {
        "cached"
    } else {
        "partial"
    }
}
