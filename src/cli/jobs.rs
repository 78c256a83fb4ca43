//! `ragd jobs list | get | watch | cancel`: bulk ingestion jobs, on a running server with
//! `--server URL` or in the local data folder's job records.
//!
//! Jobs run inside `ragd serve`. Locally, the records can be read while no server uses the data
//! folder (a server holds the job database's lock), and `cancel` marks an unfinished job
//! cancelled so that the next server start does not resume it. Both ways print through the same
//! [`JobView`], so the output is the same.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::args::Target;
use crate::config::Config;
use crate::grpc::convert::JobView;
use crate::jobs::store::JobStore;
use crate::jobs::JobState;

/// `ragd jobs`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List the jobs, newest first.
    List(Target),
    /// Show one job: progress, counts and errors.
    Get(ById),
    /// Follow a job with a progress bar until it ends (JSON: one line per update).
    Watch(ById),
    /// Cancel a job: it stops after its current batch (everything before it stays ingested).
    Cancel(ById),
}

/// A job by id.
#[derive(Debug, Args)]
pub struct ById {
    /// The job's id (e.g. job-0000000001).
    pub id: String,
    /// Where, and how to print.
    #[command(flatten)]
    pub target: Target,
}

/// Runs `ragd jobs ...`.
pub fn run(cfg: &Config, cmd: JobsCommand) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::List(t) => {
            let jobs = match &t.server {
                Some(url) => super::remote::jobs(url)?,
                None => local(cfg)?
                    .map(|store| store.list())
                    .transpose()?
                    .unwrap_or_default()
                    .into_iter()
                    .map(JobView::from)
                    .collect(),
            };
            if t.json {
                println!("{}", serde_json::to_string(&jobs)?);
            } else if jobs.is_empty() {
                println!("(no jobs)");
            } else {
                for job in &jobs {
                    println!("{}", line(job));
                }
            }
            Ok(())
        }
        JobsCommand::Get(j) => {
            let job = match &j.target.server {
                Some(url) => super::remote::job(url, &j.id)?,
                None => local_job(cfg, &j.id)?,
            };
            print_job(&job, j.target.json)?;
            Ok(())
        }
        JobsCommand::Watch(j) => watch(cfg, &j),
        JobsCommand::Cancel(j) => {
            let job = match &j.target.server {
                Some(url) => super::remote::cancel_job(url, &j.id)?,
                None => local_cancel(cfg, &j.id)?,
            };
            print_job(&job, j.target.json)?;
            Ok(())
        }
    }
}

fn watch(cfg: &Config, j: &ById) -> anyhow::Result<()> {
    let Some(url) = &j.target.server else {
        let job = local_job(cfg, &j.id)?;
        print_job(&job, j.target.json)?;
        if job.state.is_some_and(|s| !s.is_terminal()) {
            eprintln!(
                "note: jobs run inside `ragd serve`: this one goes on when a server starts on \
                 this data folder; watch it there with --server URL"
            );
        }
        return Ok(());
    };
    let json = j.target.json;
    let bar = (!json).then(|| super::bytes_bar(0, &j.id));
    let last = super::remote::watch_job(url, &j.id, |view| match &bar {
        Some(bar) => {
            bar.set_length(view.bytes_total);
            bar.set_position(view.bytes_done);
            bar.set_message(format!("{} {}", view.id, state_name(view.state)));
        }
        None => {
            if let Ok(line) = serde_json::to_string(view) {
                println!("{line}");
            }
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
        print_job(&last, false)?;
    }
    match last.state {
        Some(JobState::Failed) => anyhow::bail!("job {} failed: {}", last.id, last.failure),
        _ => Ok(()),
    }
}

/// The local job database, or `None` when the data folder has none yet.
fn local(cfg: &Config) -> anyhow::Result<Option<JobStore>> {
    if !cfg.data_dir.join(".jobs").exists() {
        return Ok(None);
    }
    JobStore::open(&cfg.data_dir).map(Some).with_context(|| {
        format!(
            "opening the job records in {} (while `ragd serve` runs on this data folder it \
             holds them: ask it with --server URL)",
            cfg.data_dir.display()
        )
    })
}

fn local_job(cfg: &Config, id: &str) -> anyhow::Result<JobView> {
    let record = match local(cfg)? {
        Some(store) => store.get(id)?,
        None => None,
    };
    record
        .map(JobView::from)
        .ok_or_else(|| anyhow::anyhow!("job {id} not found in {}", cfg.data_dir.display()))
}

/// Marks an unfinished job cancelled, so no server resumes it.
fn local_cancel(cfg: &Config, id: &str) -> anyhow::Result<JobView> {
    let store = local(cfg)?
        .ok_or_else(|| anyhow::anyhow!("job {id} not found in {}", cfg.data_dir.display()))?;
    let mut record = store
        .get(id)?
        .ok_or_else(|| anyhow::anyhow!("job {id} not found in {}", cfg.data_dir.display()))?;
    if !record.state.is_terminal() {
        record.finish(JobState::Cancelled);
        store.save(&record)?;
    }
    Ok(JobView::from(record))
}

fn state_name(state: Option<JobState>) -> &'static str {
    match state {
        Some(JobState::Queued) => "queued",
        Some(JobState::Running) => "running",
        Some(JobState::Succeeded) => "succeeded",
        Some(JobState::Failed) => "failed",
        Some(JobState::Cancelled) => "cancelled",
        None => "unknown",
    }
}

fn time(unix_ms: u64) -> String {
    i64::try_from(unix_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            || "-".to_string(),
            |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

fn percent(done: u64, total: u64) -> String {
    if total == 0 {
        "-".to_string()
    } else {
        format!("{:.0}%", 100.0 * done as f64 / total as f64)
    }
}

/// One line of `jobs list`.
fn line(j: &JobView) -> String {
    let s = &j.summary;
    format!(
        "{}  {:<9}  {:<16}  {:>4}  {} added, {} updated, {} unchanged, {} failed  {}",
        j.id,
        state_name(j.state),
        j.collection,
        percent(j.bytes_done, j.bytes_total),
        s.added,
        s.updated,
        s.unchanged,
        s.failed,
        time(j.created_unix_ms)
    )
}

fn print_job(j: &JobView, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(j)?);
        return Ok(());
    }
    let s = &j.summary;
    println!("job {} ({})", j.id, state_name(j.state));
    println!("  collection  {}", j.collection);
    println!("  paths       {}", j.paths.join(", "));
    let documents = if j.documents_total > 0 {
        format!("{} of {}", j.documents_done, j.documents_total)
    } else {
        j.documents_done.to_string()
    };
    println!(
        "  progress    {} ({} of {}), {documents} documents",
        percent(j.bytes_done, j.bytes_total),
        indicatif::HumanBytes(j.bytes_done),
        indicatif::HumanBytes(j.bytes_total),
    );
    println!(
        "  documents   {} added, {} updated, {} unchanged, {} failed; {} chunks",
        s.added, s.updated, s.unchanged, s.failed, s.chunks
    );
    if j.state == Some(JobState::Running) && j.documents_per_second > 0.0 {
        println!(
            "  rate        {:.1} documents/s, about {:.0} s left",
            j.documents_per_second, j.eta_seconds
        );
    }
    println!("  created     {}", time(j.created_unix_ms));
    if j.finished_unix_ms > 0 {
        println!("  finished    {}", time(j.finished_unix_ms));
    }
    if j.resumed > 0 {
        println!("  resumed     {} time(s) after a restart", j.resumed);
    }
    if !j.failure.is_empty() {
        println!("  failure     {}", j.failure);
    }
    for (what, message) in &s.errors {
        println!("  error       {what}: {message}");
    }
    Ok(())
}
