//! Durable file writes: what survives a crash or power loss once the call returns.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::{IndexError, Result};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |e| IndexError::io(path, e)
}

/// Flushes a file or folder to disk.
pub(crate) fn fsync(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the parent.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(parent) = path.parent() {
        fsync(parent)?;
    }
    Ok(())
}
