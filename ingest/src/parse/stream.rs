//! Streaming loads: [`stream_path`] yields documents one at a time, so memory stays flat however
//! large the input. A folder is walked lazily (one directory listing at a time, in file-name
//! order); a JSONL file is read line by line through a buffer, each line bounded by
//! [`LoadOptions::max_line_bytes`]; other formats are read whole, bounded by
//! [`LoadOptions::max_file_bytes`] (a PDF or an HTML page is one document).
//!
//! [`scan_path`] walks the same files without reading them and sums their sizes, so a bulk job
//! can show progress in bytes before it has parsed anything.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::{jsonl, load_into, read_limited, relative_id, source_name, Format, LoadOptions};
use super::{LoadReport, SkipReason, Source};
use crate::document::Document;
use crate::error::IngestError;

/// One item of a streamed load. `input_bytes` is how much of the input it accounts for: its
/// file's size, or its JSONL line with the line break; the sum over a whole stream is what
/// [`scan_path`] reports.
#[derive(Debug)]
pub enum Loaded {
    /// A document.
    Document {
        /// The document.
        document: Document,
        /// Input bytes it was read from.
        input_bytes: u64,
    },
    /// A bad file or JSONL line; the stream goes on with the next one.
    Error {
        /// What was wrong.
        error: IngestError,
        /// Input bytes it accounts for.
        input_bytes: u64,
    },
    /// A directory entry skipped without being read.
    Skipped(SkipReason),
}

/// What [`scan_path`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanTotals {
    /// Files a loader handles.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// Streams the documents of a file or, recursively, a directory: the same documents, errors and
/// skips as [`load_path`](super::load_path), in the same order, one at a time.
pub fn stream_path(path: &Path, opts: &LoadOptions) -> DocumentStream {
    DocumentStream {
        files: Files::new(path, opts),
        opts: opts.clone(),
        pending: VecDeque::new(),
        jsonl: None,
    }
}

/// Sizes every file [`stream_path`] would read, reading none; `stop` is asked between files and
/// ends the scan early when it returns true. Unreadable entries are left to the load to report.
pub fn scan_path(path: &Path, opts: &LoadOptions, stop: &mut dyn FnMut() -> bool) -> ScanTotals {
    let mut totals = ScanTotals::default();
    for file in Files::new(path, opts) {
        if stop() {
            break;
        }
        if let FileItem::File { path, .. } = file {
            totals.files += 1;
            totals.bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
        }
    }
    totals
}

/// The iterator [`stream_path`] returns.
pub struct DocumentStream {
    files: Files,
    opts: LoadOptions,
    /// Items of a file read whole, not yet handed out.
    pending: VecDeque<Loaded>,
    /// The JSONL file being read, if any.
    jsonl: Option<JsonlLines<BufReader<File>>>,
}

impl Iterator for DocumentStream {
    type Item = Loaded;

    fn next(&mut self) -> Option<Loaded> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if let Some(lines) = &mut self.jsonl {
                match lines.next() {
                    Some(item) => return Some(item),
                    None => self.jsonl = None,
                }
            }
            match self.files.next()? {
                FileItem::Skip(reason) => return Some(Loaded::Skipped(reason)),
                FileItem::Error(error) => {
                    return Some(Loaded::Error {
                        error,
                        input_bytes: 0,
                    })
                }
                FileItem::File { path, id, format } => self.open(&path, &id, format),
            }
        }
    }
}

impl DocumentStream {
    /// Starts reading one file: a JSONL file becomes the current line reader, any other is read
    /// whole into `pending`.
    fn open(&mut self, path: &Path, id: &str, format: Format) {
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        let fail = |error| Loaded::Error {
            error,
            input_bytes: size,
        };
        if format == Format::Jsonl {
            match File::open(path) {
                Ok(file) => {
                    let source = OwnedSource::new(path, id, format, source_name(path));
                    self.jsonl = Some(JsonlLines::new(
                        source,
                        BufReader::with_capacity(1 << 16, file),
                        &self.opts,
                    ));
                }
                Err(e) => self.pending.push_back(fail(IngestError::io(path, e))),
            }
            return;
        }
        let bytes = match read_limited(path, &self.opts) {
            Ok(bytes) => bytes,
            Err(e) => return self.pending.push_back(fail(e)),
        };
        let source = Source {
            path,
            id,
            format,
            source: source_name(path),
        };
        let mut report = LoadReport::default();
        load_into(&source, &bytes, &self.opts, &mut report);
        // A file is one document (or one error): it accounts for the whole file.
        let mut input_bytes = size;
        for document in report.documents {
            self.pending.push_back(Loaded::Document {
                document,
                input_bytes: std::mem::take(&mut input_bytes),
            });
        }
        for error in report.errors {
            self.pending.push_back(Loaded::Error {
                error,
                input_bytes: std::mem::take(&mut input_bytes),
            });
        }
    }
}

/// A file to load, an entry skipped, or a listing error.
pub(crate) enum FileItem {
    File {
        path: PathBuf,
        id: String,
        format: Format,
    },
    Skip(SkipReason),
    Error(IngestError),
}

/// The files under a path, lazily: a single file, or a directory walk.
pub(crate) enum Files {
    Done,
    One(PathBuf),
    Walk {
        root: PathBuf,
        entries: walkdir::IntoIter,
        include_hidden: bool,
    },
}

impl Files {
    pub(crate) fn new(path: &Path, opts: &LoadOptions) -> Self {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Self::Walk {
                root: path.to_path_buf(),
                entries: WalkDir::new(path)
                    .follow_links(opts.follow_links)
                    .sort_by_file_name()
                    .into_iter(),
                include_hidden: opts.include_hidden,
            },
            _ => Self::One(path.to_path_buf()),
        }
    }
}

impl Iterator for Files {
    type Item = FileItem;

    fn next(&mut self) -> Option<FileItem> {
        match std::mem::replace(self, Self::Done) {
            Self::Done => None,
            Self::One(path) => Some(single_file(path)),
            Self::Walk {
                root,
                mut entries,
                include_hidden,
            } => {
                let item = next_in_walk(&root, &mut entries, include_hidden);
                if item.is_some() {
                    *self = Self::Walk {
                        root,
                        entries,
                        include_hidden,
                    };
                }
                item
            }
        }
    }
}

/// A path given as a single file (or that does not exist).
fn single_file(path: PathBuf) -> FileItem {
    if let Err(e) = std::fs::metadata(&path) {
        return FileItem::Error(IngestError::io(&path, e));
    }
    let id = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match Format::from_path(&path) {
        Some(format) => FileItem::File { path, id, format },
        None => FileItem::Error(IngestError::UnsupportedType { path }),
    }
}

/// The next file, skip or error of a directory walk: hidden entries and unknown types skipped
/// and counted (a hidden directory once, its contents not visited), directories themselves not
/// reported.
fn next_in_walk(
    root: &Path,
    entries: &mut walkdir::IntoIter,
    include_hidden: bool,
) -> Option<FileItem> {
    loop {
        let entry = match entries.next()? {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().unwrap_or(root).to_path_buf();
                return Some(FileItem::Error(IngestError::Io {
                    path,
                    source: e.into(),
                }));
            }
        };
        let hidden = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with('.'));
        if entry.depth() > 0 && !include_hidden && hidden {
            if entry.file_type().is_dir() {
                entries.skip_current_dir();
            }
            return Some(FileItem::Skip(SkipReason::Hidden));
        }
        let file_type = entry.file_type();
        if file_type.is_dir() {
            continue;
        }
        if !file_type.is_file() {
            return Some(FileItem::Skip(SkipReason::NotAFile));
        }
        let Some(format) = Format::from_path(entry.path()) else {
            return Some(FileItem::Skip(SkipReason::UnknownType));
        };
        return Some(FileItem::File {
            id: relative_id(root, entry.path()),
            path: entry.into_path(),
            format,
        });
    }
}

/// The parts of a [`Source`] a line reader keeps while it runs.
pub(crate) struct OwnedSource {
    path: PathBuf,
    id: String,
    format: Format,
    source: String,
}

impl OwnedSource {
    pub(crate) fn new(path: &Path, id: &str, format: Format, source: String) -> Self {
        Self {
            path: path.to_path_buf(),
            id: id.to_owned(),
            format,
            source,
        }
    }

    fn borrow(&self) -> Source<'_> {
        Source {
            path: &self.path,
            id: &self.id,
            format: self.format,
            source: self.source.clone(),
        }
    }
}

/// The documents of a JSONL input, one line at a time: each line is checked (size, NUL bytes,
/// UTF-8) and parsed on its own, so one bad line costs that line only. The whole input is
/// refused only when its first 8 KiB look binary, or when reading fails.
pub(crate) struct JsonlLines<R> {
    source: OwnedSource,
    reader: R,
    lossy_utf8: bool,
    max_line: u64,
    /// Lines read so far (the 1-based number of the last one).
    line: usize,
    /// Bytes read so far (the offset of the next line).
    offset: u64,
    /// Bytes of blank lines not yet accounted to an item.
    blank_bytes: u64,
    started: bool,
    done: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> JsonlLines<R> {
    pub(crate) fn new(source: OwnedSource, reader: R, opts: &LoadOptions) -> Self {
        Self {
            source,
            reader,
            lossy_utf8: opts.lossy_utf8,
            max_line: opts.max_line_bytes,
            line: 0,
            offset: 0,
            blank_bytes: 0,
            started: false,
            done: false,
            buf: Vec::new(),
        }
    }

    fn error(&mut self, error: IngestError, bytes: u64) -> Loaded {
        Loaded::Error {
            error,
            input_bytes: bytes + std::mem::take(&mut self.blank_bytes),
        }
    }

    /// Reads the next line into `buf` (without its line break; left empty when the line is
    /// over the limit). Returns the bytes consumed (0 at the end) and whether it was too long.
    fn read_line(&mut self) -> std::io::Result<(u64, bool)> {
        self.buf.clear();
        let (mut consumed, mut too_long) = (0u64, false);
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let (take, end) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if !too_long {
                if (self.buf.len() + take) as u64 > self.max_line.saturating_add(1) {
                    too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&available[..take]);
                }
            }
            self.reader.consume(take);
            consumed += take as u64;
            if end {
                break;
            }
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok((consumed, too_long))
    }
}

impl<R: BufRead> Iterator for JsonlLines<R> {
    type Item = Loaded;

    fn next(&mut self) -> Option<Loaded> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            match self.reader.fill_buf() {
                Ok(head) if super::looks_binary(head) => {
                    self.done = true;
                    return Some(self.error(
                        IngestError::Binary {
                            path: self.source.path.clone(),
                        },
                        0,
                    ));
                }
                Ok(head) if head.starts_with(b"\xef\xbb\xbf") => {
                    self.reader.consume(3);
                    self.offset = 3;
                    self.blank_bytes = 3;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(self.error(IngestError::io(&self.source.path, e), 0));
                }
            }
        }
        loop {
            let start = self.offset;
            let (consumed, too_long) = match self.read_line() {
                Ok((0, _)) => {
                    self.done = true;
                    return None;
                }
                Ok(read) => read,
                Err(e) => {
                    self.done = true;
                    return Some(self.error(IngestError::io(&self.source.path, e), 0));
                }
            };
            self.offset += consumed;
            self.line += 1;
            let line = self.line;
            if too_long {
                let error = IngestError::DocumentTooLarge {
                    path: self.source.path.clone(),
                    line,
                    size: consumed,
                    limit: self.max_line,
                };
                return Some(self.error(error, consumed));
            }
            if let Some(i) = self.buf.iter().position(|&b| b == 0) {
                let error = IngestError::NulByte {
                    path: self.source.path.clone(),
                    offset: (start as usize).saturating_add(i),
                };
                return Some(self.error(error, consumed));
            }
            let text = match std::str::from_utf8(&self.buf) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) if self.lossy_utf8 => String::from_utf8_lossy(&self.buf),
                Err(e) => {
                    let error = IngestError::InvalidUtf8 {
                        path: self.source.path.clone(),
                        offset: (start as usize).saturating_add(e.valid_up_to()),
                    };
                    return Some(self.error(error, consumed));
                }
            };
            if text.trim().is_empty() {
                self.blank_bytes += consumed;
                continue;
            }
            let parsed = jsonl::parse_line(&self.source.borrow(), &text, line);
            let input_bytes = consumed + std::mem::take(&mut self.blank_bytes);
            return Some(match parsed {
                Ok(document) => Loaded::Document {
                    document,
                    input_bytes,
                },
                Err(error) => Loaded::Error { error, input_bytes },
            });
        }
    }
}

impl Extend<Loaded> for LoadReport {
    fn extend<I: IntoIterator<Item = Loaded>>(&mut self, items: I) {
        for item in items {
            match item {
                Loaded::Document { document, .. } => self.documents.push(document),
                Loaded::Error { error, .. } => self.errors.push(error),
                Loaded::Skipped(reason) => self.skip(reason),
            }
        }
    }
}

impl FromIterator<Loaded> for LoadReport {
    fn from_iter<I: IntoIterator<Item = Loaded>>(items: I) -> Self {
        let mut report = LoadReport::default();
        report.extend(items);
        report
    }
}

/// A group of consecutive [`Loaded`] items: what one commit of a streamed ingest covers.
#[derive(Debug, Default)]
pub struct Batch {
    /// The documents, in order.
    pub documents: Vec<Document>,
    /// Bad files and lines met since the previous batch.
    pub errors: Vec<IngestError>,
    /// Entries skipped since the previous batch.
    pub skipped: Vec<SkipReason>,
    /// Input bytes the items account for.
    pub input_bytes: u64,
}

impl Batch {
    /// Bytes of document text.
    pub fn text_bytes(&self) -> usize {
        self.documents.iter().map(|d| d.text().len()).sum()
    }
}

/// Groups `items` into [`Batch`]es of at most `max_documents` documents and, past the first
/// document, at most `max_text_bytes` bytes of text; a batch ends right after the document that
/// fills it, so memory holds one batch at a time.
pub fn batches<I: Iterator<Item = Loaded>>(
    items: I,
    max_documents: usize,
    max_text_bytes: usize,
) -> impl Iterator<Item = Batch> {
    let mut items = items.peekable();
    std::iter::from_fn(move || {
        let mut batch = Batch::default();
        let mut text = 0usize;
        while batch.documents.len() < max_documents.max(1) {
            if let Some(Loaded::Document { document, .. }) = items.peek() {
                let len = document.text().len();
                if !batch.documents.is_empty() && text + len > max_text_bytes {
                    break;
                }
            }
            match items.next() {
                None => break,
                Some(Loaded::Document {
                    document,
                    input_bytes,
                }) => {
                    text += document.text().len();
                    batch.input_bytes += input_bytes;
                    batch.documents.push(document);
                }
                Some(Loaded::Error { error, input_bytes }) => {
                    batch.input_bytes += input_bytes;
                    batch.errors.push(error);
                }
                Some(Loaded::Skipped(reason)) => batch.skipped.push(reason),
            }
        }
        let empty =
            batch.documents.is_empty() && batch.errors.is_empty() && batch.skipped.is_empty();
        (!empty).then_some(batch)
    })
}
