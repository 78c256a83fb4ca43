//! Directory walking: every file under a root, in file-name order, hidden entries and unknown
//! types skipped and counted, each file's errors reported without stopping the walk.

use std::path::Path;

use walkdir::{DirEntry, WalkDir};

use super::{load_file, relative_id, Format, LoadOptions, LoadReport, SkipReason};
use crate::error::IngestError;

/// Walks `root` recursively into `report`.
pub(crate) fn walk(root: &Path, opts: &LoadOptions, report: &mut LoadReport) {
    let mut entries = WalkDir::new(root)
        .follow_links(opts.follow_links)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().unwrap_or(root).to_path_buf();
                report.errors.push(IngestError::Io {
                    path,
                    source: e.into(),
                });
                continue;
            }
        };
        if entry.depth() > 0 && !opts.include_hidden && is_hidden(&entry) {
            report.skip(SkipReason::Hidden);
            if entry.file_type().is_dir() {
                entries.skip_current_dir();
            }
            continue;
        }
        visit(root, &entry, opts, report);
    }
}

/// Loads one non-hidden entry, or counts why it was skipped.
fn visit(root: &Path, entry: &DirEntry, opts: &LoadOptions, report: &mut LoadReport) {
    let file_type = entry.file_type();
    if file_type.is_dir() {
        return;
    }
    if !file_type.is_file() {
        return report.skip(SkipReason::NotAFile);
    }
    let Some(format) = Format::from_path(entry.path()) else {
        return report.skip(SkipReason::UnknownType);
    };
    let id = relative_id(root, entry.path());
    load_file(entry.path(), format, &id, opts, report);
}

fn is_hidden(entry: &DirEntry) -> bool {
    entry
        .file_name()
        .to_str()
        .is_some_and(|n| n.starts_with('.'))
}
