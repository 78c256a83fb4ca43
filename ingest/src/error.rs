//! [`IngestError`], the one error type of this crate, and its chunking sub-error [`ChunkError`].
//!
//! Loader errors name the file (and, for JSONL, the 1-based line) they come from, so a
//! directory ingest can report each bad file and go on with the rest. Chunking failures are
//! either bad configuration (the caller's fault, caught when a chunker is built) or an embedding
//! backend failure in the semantic chunker.

use std::path::{Path, PathBuf};

use crate::embed::EmbedError;

/// Result alias used throughout the crate.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// Why a file or a JSONL line could not become a [`Document`](crate::Document).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file could not be read or listed (missing, permissions, I/O fault).
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not valid UTF-8 (caller's input). `offset` is the byte offset of the first
    /// invalid sequence. Set [`LoadOptions::lossy_utf8`](crate::LoadOptions) to replace instead.
    #[error("{}: invalid UTF-8 at byte offset {offset}", path.display())]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first invalid sequence in the file.
        offset: usize,
    },
    /// The document has no text left after normalisation (caller's input).
    #[error("{}{}: empty or whitespace-only document", path.display(), line_suffix(*line))]
    Empty {
        /// The file.
        path: PathBuf,
        /// 1-based JSONL line, when the document came from one.
        line: Option<usize>,
    },
    /// The file looks binary (a known binary signature, or mostly control bytes) though its
    /// extension claims text (caller's input).
    #[error("{}: binary file", path.display())]
    Binary {
        /// The file.
        path: PathBuf,
    },
    /// A text file contains a NUL byte at `offset` (caller's input; text never does).
    #[error("{}: NUL byte at byte offset {offset}", path.display())]
    NulByte {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first NUL.
        offset: usize,
    },
    /// The file is larger than [`LoadOptions::max_file_bytes`](crate::LoadOptions) (caller's
    /// input or configuration).
    #[error("{}: {size} bytes is over the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// A JSONL line (one document) is longer than
    /// [`LoadOptions::max_line_bytes`](crate::LoadOptions) (caller's input or configuration).
    #[error(
        "{}:{line}: a document of {size} bytes is over the limit of {limit} bytes per document",
        path.display()
    )]
    DocumentTooLarge {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line's size in bytes.
        size: u64,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// A JSONL line is not a JSON object, or is not JSON at all (caller's input).
    #[error("{}:{line}: not a JSON object: {reason}", path.display())]
    JsonlNotObject {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was found instead (parse error or JSON type).
        reason: String,
    },
    /// A JSONL object has no string `text` field (caller's input).
    #[error("{}:{line}: JSONL object has no string \"text\" field", path.display())]
    JsonlMissingText {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The PDF could not be parsed or has no extractable text layer (caller's input, or a
    /// PDF feature the parser lacks).
    #[error("{}: cannot extract PDF text: {reason}", path.display())]
    Pdf {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// [`load_path`](crate::load_path) was given a single file whose extension no loader handles.
    #[error("{}: unsupported file type", path.display())]
    UnsupportedType {
        /// The file.
        path: PathBuf,
    },
    /// Chunking failed: invalid chunker configuration or an embedding backend fault.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

impl IngestError {
    /// The file the error is about, if it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Io { path, .. }
            | Self::InvalidUtf8 { path, .. }
            | Self::Empty { path, .. }
            | Self::Binary { path }
            | Self::NulByte { path, .. }
            | Self::TooLarge { path, .. }
            | Self::DocumentTooLarge { path, .. }
            | Self::JsonlNotObject { path, .. }
            | Self::JsonlMissingText { path, .. }
            | Self::Pdf { path, .. }
            | Self::UnsupportedType { path } => Some(path),
            Self::Chunk(_) => None,
        }
    }

    /// Builds an [`IngestError::Io`].
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// Why a chunker could not be built or could not chunk.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// A size parameter is zero (caller's configuration).
    #[error("{param} must be greater than zero")]
    ZeroSize {
        /// The parameter's name.
        param: &'static str,
    },
    /// Sliding/recursive overlap must be smaller than the window (caller's configuration).
    #[error("overlap {overlap} must be smaller than the chunk size {size}")]
    OverlapTooLarge {
        /// The configured overlap.
        overlap: usize,
        /// The configured size.
        size: usize,
    },
    /// A token-sized chunk limit is above what the embedder accepts without truncation
    /// (caller's configuration).
    #[error("chunk size of {size} tokens exceeds the embedder's limit of {limit} content tokens")]
    OverModelLimit {
        /// The configured size in tokens.
        size: usize,
        /// The embedder's [`max_content_tokens`](crate::Embedder::max_content_tokens).
        limit: usize,
    },
    /// The semantic chunker's minimum size is above its maximum (caller's configuration).
    #[error("min_size {min} is greater than max_size {max}")]
    MinAboveMax {
        /// The configured minimum.
        min: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A breakpoint threshold is out of range: a percentile outside `[0, 100]` or a
    /// non-finite / negative distance (caller's configuration).
    #[error("invalid breakpoint threshold {value}")]
    InvalidThreshold {
        /// The configured value.
        value: f64,
    },
    /// The embedder returned a different number of vectors than inputs (a backend bug).
    #[error("embedder returned {got} embeddings for {expected} inputs")]
    EmbeddingCount {
        /// Inputs sent.
        expected: usize,
        /// Embeddings received.
        got: usize,
    },
    /// The embedding backend failed (not the caller's fault).
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_and_line() {
        let e = IngestError::Empty {
            path: PathBuf::from("a/b.jsonl"),
            line: Some(3),
        };
        assert_eq!(
            e.to_string(),
            "a/b.jsonl:3: empty or whitespace-only document"
        );
        assert_eq!(e.path(), Some(Path::new("a/b.jsonl")));
        let e = IngestError::InvalidUtf8 {
            path: PathBuf::from("x.txt"),
            offset: 7,
        };
        assert!(e.to_string().contains("offset 7"));
    }
}
