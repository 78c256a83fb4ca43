//! Loaders: files and directories → [`Document`]s.
//!
//! [`stream_path`] takes a file or a directory (walked recursively and lazily, in file-name
//! order) and yields [`Loaded`] items one at a time: documents, one [`IngestError`] per bad file
//! or JSONL line, and skipped entries by [`SkipReason`]. Nothing is dropped silently, one bad
//! file never stops the rest, and memory does not grow with the input (JSONL is read line by
//! line). [`load_path`] collects the same stream into a [`LoadReport`], for small inputs.
//!
//! Each format has its own file: `text.rs` (`.txt`, `.md`/`.markdown`), `html.rs`
//! (`.html`/`.htm`), `pdf.rs` (`.pdf`), `jsonl.rs` (`.jsonl`, BEIR corpus lines), and
//! `stream.rs` (walking, streaming, and the JSONL line reader). Formats read whole share
//! `decode`: size limit, binary sniffing, NUL bytes, then UTF-8 (strict, or lossy on request);
//! JSONL applies the same checks line by line.
//!
//! Ids: a file's id is its path relative to the directory given to [`load_path`], with `/`
//! separators (for a single file, its file name); JSONL documents use their `_id`.

mod html;
mod jsonl;
mod pdf;
mod present;
mod stream;
mod text;

pub use present::{present_documents, Present};
pub use stream::{batches, scan_path, stream_path, Batch, DocumentStream, Loaded, ScanTotals};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::document::{Document, SourceId};
use crate::error::{IngestError, Result};

/// Options for [`load_path`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    /// Files read whole (every format but JSONL) larger than this many bytes are rejected with
    /// [`IngestError::TooLarge`]. Default 64 MiB.
    pub max_file_bytes: u64,
    /// JSONL lines (one document each) longer than this many bytes are rejected with
    /// [`IngestError::DocumentTooLarge`]; the file itself may be any size. Default 64 MiB.
    pub max_line_bytes: u64,
    /// Replace invalid UTF-8 with U+FFFD instead of failing. Default false.
    pub lossy_utf8: bool,
    /// Load hidden files and descend into hidden directories (names starting with `.`).
    /// Default false: they are skipped and counted.
    pub include_hidden: bool,
    /// Follow symbolic links while walking. Default false: links are skipped and counted.
    pub follow_links: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: 64 * 1024 * 1024,
            max_line_bytes: 64 * 1024 * 1024,
            lossy_utf8: false,
            include_hidden: false,
            follow_links: false,
        }
    }
}

/// Why a directory entry was skipped without being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A hidden file or directory (a directory counts once; its contents are not visited).
    Hidden,
    /// A file whose extension no loader handles.
    UnknownType,
    /// Not a regular file: a symbolic link not followed, a socket, a device.
    NotAFile,
}

/// What [`load_path`] found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Documents loaded, in walk order.
    pub documents: Vec<Document>,
    /// One error per bad file or bad JSONL line.
    pub errors: Vec<IngestError>,
    /// Entries skipped, by reason.
    pub skipped: BTreeMap<SkipReason, usize>,
}

impl LoadReport {
    fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    /// Total skipped entries.
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

/// An input format, chosen by file extension (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `.txt`
    Text,
    /// `.md`, `.markdown`
    Markdown,
    /// `.html`, `.htm`
    Html,
    /// `.pdf`
    Pdf,
    /// `.jsonl`: one BEIR-style document per line.
    Jsonl,
}

impl Format {
    /// The format for `path`'s extension, if any loader handles it.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" => Self::Text,
            "md" | "markdown" => Self::Markdown,
            "html" | "htm" => Self::Html,
            "pdf" => Self::Pdf,
            "jsonl" => Self::Jsonl,
            _ => return None,
        })
    }

    /// Lower-case name, stored in each document's `format` metadata.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Pdf => "pdf",
            Self::Jsonl => "jsonl",
        }
    }
}

/// Loads a file or, recursively, a directory, all at once: [`stream_path`] collected. See the
/// [module docs](self).
pub fn load_path(path: &Path, opts: &LoadOptions) -> LoadReport {
    stream_path(path, opts).collect()
}

/// Loads the contents of one file, already read into memory, as `format`: what [`load_path`]
/// does for a file once it has read it (decoding, the format's loader, normalisation). `path`
/// only names the file in errors and metadata and gives the fallback title; nothing is read from
/// disk, and `opts.max_file_bytes` is not checked. The document id is `path`'s file name.
///
/// Never panics, whatever the bytes: bad input becomes an [`IngestError`] in the report (the
/// fuzz targets under `fuzz/` hold it to that).
pub fn load_bytes(path: &Path, format: Format, bytes: &[u8], opts: &LoadOptions) -> LoadReport {
    let id = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut report = LoadReport::default();
    let source = Source {
        path,
        id: &id,
        format,
        source: path.display().to_string(),
    };
    load_into(&source, bytes, opts, &mut report);
    report
}

/// Loads the bytes of one file of a known format into `report`.
pub(crate) fn load_into(
    source: &Source<'_>,
    bytes: &[u8],
    opts: &LoadOptions,
    report: &mut LoadReport,
) {
    let (path, format) = (source.path, source.format);
    if format == Format::Jsonl {
        let owned = stream::OwnedSource::new(path, source.id, format, source.source.clone());
        report.extend(stream::JsonlLines::new(owned, bytes, opts));
        return;
    }
    let loaded = match format {
        Format::Pdf => pdf::load(source, bytes),
        Format::Html => decode(path, bytes, opts).and_then(|t| html::load(source, &t)),
        Format::Markdown => decode(path, bytes, opts).and_then(|t| text::load_markdown(source, &t)),
        Format::Text | Format::Jsonl => {
            decode(path, bytes, opts).and_then(|t| text::load_text(source, &t))
        }
    };
    match loaded {
        Ok(doc) => report.documents.push(doc),
        Err(e) => report.errors.push(e),
    }
}

/// The file a loader is working on.
pub(crate) struct Source<'a> {
    pub(crate) path: &'a Path,
    pub(crate) id: &'a str,
    pub(crate) format: Format,
    /// The `source` metadata: see [`source_name`].
    pub(crate) source: String,
}

/// The `source` metadata of a file read from `path`: its canonical absolute path, so that `docs`,
/// `./docs` and `/home/me/docs` name a file alike (the metadata is part of the content hash:
/// a path as typed would re-embed a folder ingested again by another spelling). A path that
/// cannot be resolved keeps its spelling; bytes loaded without a file ([`load_bytes`]) keep
/// the name they were given.
pub fn source_name(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

impl Source<'_> {
    /// `source` and `format` metadata.
    pub(crate) fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("source".to_owned(), self.source.clone()),
            ("format".to_owned(), self.format.name().to_owned()),
        ])
    }

    /// The file stem, used as a fallback title.
    pub(crate) fn stem(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Builds the file's document, or [`IngestError::Empty`].
    pub(crate) fn document(&self, title: &str, text: &str) -> Result<Document> {
        Document::new(SourceId(self.id.to_owned()), title, text, self.metadata()).ok_or_else(|| {
            IngestError::Empty {
                path: self.path.to_path_buf(),
                line: None,
            }
        })
    }
}

/// Reads a file after checking its size against the limit.
pub(crate) fn read_limited(path: &Path, opts: &LoadOptions) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .map_err(|e| IngestError::io(path, e))?
        .len();
    if size > opts.max_file_bytes {
        return Err(IngestError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: opts.max_file_bytes,
        });
    }
    std::fs::read(path).map_err(|e| IngestError::io(path, e))
}

/// Signatures of common binary formats.
const BINARY_MAGIC: &[&[u8]] = &[
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"\x7fELF",
    b"%PDF-",
    b"\xd0\xcf\x11\xe0",
    b"MZ\x90\x00",
];

/// Whether `bytes` look binary: a known signature; or, in the first 8 KiB, at least two NUL
/// bytes making up 1% or more (UTF-16, executables), or more than 10% other control bytes
/// (anything below 0x20 but tab, line feed, form feed, carriage return and escape, or 0x7f).
/// A lone NUL in text is reported as [`IngestError::NulByte`] instead.
pub(crate) fn looks_binary(bytes: &[u8]) -> bool {
    if BINARY_MAGIC.iter().any(|m| bytes.starts_with(m)) {
        return true;
    }
    let sample = &bytes[..bytes.len().min(8192)];
    let nul = sample.iter().filter(|&&b| b == 0).count();
    let control = sample
        .iter()
        .filter(|&&b| {
            (b < 0x20 && !matches!(b, 0 | b'\t' | b'\n' | b'\x0c' | b'\r' | 0x1b)) || b == 0x7f
        })
        .count();
    (nul >= 2 && nul * 100 >= sample.len()) || control * 100 > sample.len() * 10
}

/// Bytes of a text file → `String`: binary check, NUL check, BOM removal, UTF-8 (strict or lossy).
pub(crate) fn decode(path: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<String> {
    if looks_binary(bytes) {
        return Err(IngestError::Binary {
            path: path.to_path_buf(),
        });
    }
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        return Err(IngestError::NulByte {
            path: path.to_path_buf(),
            offset,
        });
    }
    let bom = if bytes.starts_with(b"\xef\xbb\xbf") {
        3
    } else {
        0
    };
    match std::str::from_utf8(&bytes[bom..]) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) if opts.lossy_utf8 => Ok(String::from_utf8_lossy(&bytes[bom..]).into_owned()),
        Err(e) => Err(IngestError::InvalidUtf8 {
            path: path.to_path_buf(),
            offset: bom + e.valid_up_to(),
        }),
    }
}

/// A path relative to `root` with `/` separators, used as a document id.
pub(crate) fn relative_id(root: &Path, path: &Path) -> String {
    let rel: PathBuf = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests;
