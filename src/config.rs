//! The configuration tree: defaults, then a TOML file, then environment variables, then flags.
//!
//! Every field is documented here with its default; `ragd.example.toml` at the repository root
//! lists them all and a test checks that it parses to exactly these defaults. Environment
//! overrides:
//!
//! | variable | field |
//! |---|---|
//! | `RAGD_CONFIG` | path of the TOML file (same as `--config`) |
//! | `RAGD_DATA_DIR` | `data_dir` |
//! | `RAGD_MODELS_DIR` | `models_dir` |
//! | `RAGD_SNAPSHOT_DIR` | `snapshot_dir` |
//! | `RAGD_EMBEDDER` | `embedder.model` |
//! | `RAGD_GENERATOR` | `generator.model` |
//! | `RAGD_RERANKER` | `reranker.model` |
//! | `RAGD_RERANKER_KIND` | `reranker.kind` |
//! | `RAGD_READER` | `reader.model` |
//! | `RAGD_DEVICE` | `embedder.device`, `generator.device`, `reranker.device` and `reader.device` |
//! | `RAGD_ADDR` | `server.addr` |
//! | `RAGD_HTTP_ADDR` | `server.http_addr` |
//! | `RAGD_BACKEND` | `index.backend` |
//! | `RAGD_QDRANT_URLS` | `qdrant.urls` (comma-separated) |
//! | `RAGD_QDRANT_API_KEY` | `qdrant.api_key` |
//! | `RAGD_QDRANT_TLS_CA` | `qdrant.tls_ca` |

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::model::encoder::Precision;
use crate::model::llm::GenerationParams;
pub use crate::qdrant::QdrantSettings;
use crate::serving::GenerationPoolConfig;

/// Errors reading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message names the line and the key).
    #[error("invalid config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config value `{field}`: {reason}")]
    Invalid {
        /// Dotted field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where collections (indexes, documents, jobs) live.
    /// Default: `$XDG_DATA_HOME/ragd`, i.e. `~/.local/share/ragd`.
    pub data_dir: PathBuf,
    /// Where fetched models are cached. Default: `$XDG_CACHE_HOME/ragd/models`, i.e.
    /// `~/.cache/ragd/models`.
    pub models_dir: PathBuf,
    /// Where snapshot archives are written, listed and restored from (`ragd snapshot`, the
    /// snapshot RPCs). Default: unset, meaning `<data_dir>/.snapshots`. Env `RAGD_SNAPSHOT_DIR`.
    pub snapshot_dir: Option<PathBuf>,
    /// The embedding model.
    pub embedder: EmbedderConfig,
    /// The answer-writing model.
    pub generator: GeneratorConfig,
    /// The cross-encoder reranker.
    pub reranker: RerankerConfig,
    /// The reading-comprehension reader that finds answers' short answers.
    pub reader: ReaderConfig,
    /// The gRPC server (`ragd serve`) and its bulk ingestion jobs.
    pub server: ServerConfig,
    /// Reading files, for `ragd ingest`, `ragd eval` and the server's jobs alike:
    /// `max_file_bytes` (a file read whole, i.e. any format but JSONL; default 64 MiB),
    /// `max_line_bytes` (one JSONL line, i.e. one document; a JSONL file itself may be any size;
    /// default 64 MiB), `lossy_utf8`, `include_hidden`, `follow_links` (all false).
    pub ingest: ingest::LoadOptions,
    /// Where collections live (`backend`) and, for the embedded backend, index maintenance
    /// for every collection opened: `dump_every_writes` (a commit also saves the HNSW graph
    /// after this many writes; default 10000), `compact_tombstone_ratio` and
    /// `compact_min_tombstones` (rebuild the graph without deleted points past 20% and 256),
    /// `sled_cache_bytes` (64 MiB), `tantivy_memory_bytes` (32 MiB, at least 15 MB).
    pub index: IndexSettings,
    /// Grounded answering (Ask, `ragd ask`, chat completions): the relevance gate.
    pub answer: AnswerSettings,
    /// The Qdrant cluster of the scale-out backend (`index.backend = "qdrant"`, and
    /// `ragd eval beir --backend qdrant`): node URLs, API key, the shards and replicas of new
    /// collections, timeouts. See [`crate::qdrant::QdrantSettings`] for every field and its
    /// default.
    pub qdrant: QdrantSettings,
}

/// The `[index]` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct IndexSettings {
    /// Where `ragd serve` keeps its collections: `embedded` (the data folder; default) or
    /// `qdrant` (the `[qdrant]` cluster, shared by any number of servers). Env `RAGD_BACKEND`.
    pub backend: Backend,
    /// Maintenance of the embedded backend's collections, the table's other keys.
    #[serde(flatten)]
    pub maintenance: index::MaintenanceConfig,
}

/// `backend` is taken out of the table and the rest read as the index crate's
/// [`index::MaintenanceConfig`], which refuses unknown keys (serde's `flatten` would let them
/// pass unnoticed).
impl<'de> Deserialize<'de> for IndexSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let backend = match table.remove("backend") {
            Some(v) => Backend::deserialize(v).map_err(D::Error::custom)?,
            None => Backend::default(),
        };
        let maintenance = index::MaintenanceConfig::deserialize(toml::Value::Table(table))
            .map_err(D::Error::custom)?;
        Ok(Self {
            backend,
            maintenance,
        })
    }
}

/// Where a server's collections live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In the data folder: sled, tantivy and hnsw_rs in this process.
    #[default]
    Embedded,
    /// On the Qdrant cluster of `[qdrant]`; job records stay in the data folder.
    Qdrant,
}

/// Settings of grounded answering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnswerSettings {
    /// The relevance gate (`crate::rag::gate`): a question whose sources it judges unrelated
    /// is answered "not found" without the model. `ragd eval gate --rows` and
    /// `ragd eval gate-fit` fit it to a collection's own questions.
    pub gate: RelevanceGate,
}

/// The relevance gate's logistic model: the probability that the sources answer is
/// `sigmoid(bias + weights · features)`, the features being the best chunk's and the best
/// sentence's cosine similarity to the question and the IDF-weighted share of the question's
/// terms in the sources and in the best-covering sentence ([`crate::rag::gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelevanceGate {
    /// Intercept. Default: -8.154.
    pub bias: f32,
    /// Weights of the four features. Default: `[5.882, 5.796, 2.734, 3.418]`.
    pub weights: [f32; 4],
    /// Least probability for a question to be answered. Default: 0.283.
    pub min_probability: f32,
}

/// The gate fitted on SciFact and squad-qa (BENCHMARKS.md, "Answer relevance gate on large
/// collections").
pub const DEFAULT_GATE: RelevanceGate = RelevanceGate {
    bias: -8.154,
    weights: [5.882, 5.796, 2.734, 3.418],
    min_probability: 0.283,
};

impl Default for RelevanceGate {
    fn default() -> Self {
        DEFAULT_GATE
    }
}

/// Settings of the gRPC server and its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default: `127.0.0.1:50051` (loopback only).
    pub addr: String,
    /// Address of the HTTP API (OpenAI-compatible routes, REST, `/metrics`, health, the web
    /// page), served with the same token, TLS and limits as gRPC; `off` (or empty) serves no
    /// HTTP. Env `RAGD_HTTP_ADDR`. Default: `127.0.0.1:8080`.
    pub http_addr: String,
    /// Largest message accepted or sent, in bytes. Default: 16 MiB.
    pub max_message_bytes: usize,
    /// Folders whose files bulk ingestion jobs may read; a job naming any path outside them is
    /// refused. Default: none (jobs over server-side files are refused).
    pub allowed_roots: Vec<PathBuf>,
    /// Documents per acknowledged job batch: each batch is committed and recorded before the
    /// next starts, so a restart redoes at most one batch. Default: 64.
    pub job_batch_documents: usize,
    /// Bulk ingestion jobs that run at once; later ones wait, `Queued`, in the order they were
    /// started (each job already uses every core to embed). Default: 1.
    pub max_running_jobs: usize,
    /// Seconds a shutdown waits for in-flight requests and job batches. Default: 30.
    pub shutdown_grace_seconds: u64,
    /// A collection nobody has searched, written or listed documents of for this many seconds,
    /// and that no job or request holds, is checkpointed and closed (its caches, readers and
    /// graph leave memory; the next request opens it again). 0: never. Default: 600.
    pub close_idle_collections_after_seconds: u64,
    /// Largest document the server ingests, in bytes of text (streamed or read by a job); a
    /// larger one is reported as failed and the rest of its batch goes on. Default: 8 MiB.
    pub max_document_bytes: usize,
    /// A file whose first line is the bearer token every RPC but health must carry
    /// (`authorization: Bearer <token>`, at least 16 visible ASCII characters). Env
    /// `RAGD_AUTH_TOKEN_FILE`; or give the token itself in `RAGD_AUTH_TOKEN`. Default: unset —
    /// no authentication, and then only loopback addresses are served.
    pub auth_token_file: Option<PathBuf>,
    /// Serve a non-loopback address without a token (only on a network you trust).
    /// Default: false.
    pub allow_unauthenticated: bool,
    /// PEM certificate chain: with `tls_key`, the server speaks TLS (rustls). Env
    /// `RAGD_TLS_CERT`. Default: unset (plain TCP).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`. Env `RAGD_TLS_KEY`. Default: unset.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): when set, clients must present a certificate signed by one of
    /// them (mutual TLS). Default: unset.
    pub tls_client_ca: Option<PathBuf>,
}

impl ServerConfig {
    /// The HTTP address, or `None` when HTTP is switched off.
    pub fn http(&self) -> Option<&str> {
        match self.http_addr.trim() {
            "" | "off" => None,
            addr => Some(addr),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:50051".into(),
            http_addr: "127.0.0.1:8080".into(),
            max_message_bytes: 16 * 1024 * 1024,
            allowed_roots: Vec::new(),
            job_batch_documents: 64,
            max_running_jobs: 1,
            shutdown_grace_seconds: 30,
            close_idle_collections_after_seconds: 600,
            max_document_bytes: 8 * 1024 * 1024,
            auth_token_file: None,
            allow_unauthenticated: false,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

/// Which model scores the fused candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RerankerKind {
    /// A BERT cross-encoder from `reranker.model`.
    #[default]
    CrossEncoder,
    /// The generator (`generator.model`) asked whether each passage is relevant, scored by
    /// its "yes" minus "no" log-probability. Slow on a CPU: one prefill per passage.
    Llm,
}

/// Settings of the reranker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RerankerConfig {
    /// `cross-encoder` (needs `model`) or `llm` (uses the generator; it scores at most 20
    /// candidates per query, about half a second each). Env `RAGD_RERANKER_KIND`.
    /// Default: `cross-encoder`.
    pub kind: RerankerKind,
    /// A local folder in Hugging Face layout (`config.json`, `tokenizer.json`, `*.safetensors`),
    /// e.g. cross-encoder/ms-marco-MiniLM-L-6-v2. No trained cross-encoder can be fetched by
    /// name, so there is no default: reranking needs this set. Default: unset.
    pub model: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N`. Default: `cpu`.
    pub device: String,
    /// Most tokens of one (query, passage) pair (for `llm`: of the whole prompt); passages are
    /// truncated, queries never. Default: 512.
    pub max_length: usize,
}

impl RerankerConfig {
    /// Whether a reranker is configured (an `llm` one always is: it uses the generator).
    pub fn configured(&self) -> bool {
        self.kind == RerankerKind::Llm || self.model.is_some()
    }
}

impl Default for RerankerConfig {
    fn default() -> Self {
        Self {
            kind: RerankerKind::CrossEncoder,
            model: None,
            device: "cpu".into(),
            max_length: 512,
        }
    }
}

/// Settings of the reading-comprehension reader (a Hugging Face `BertForQuestionAnswering`).
/// With one, an answer's short answer is the span it reads in the sources, and the evidence
/// sentence holding that span is quoted first; without one, the generator copies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaderConfig {
    /// A local folder in Hugging Face layout (`config.json`, `tokenizer.json`, `*.safetensors`
    /// with `qa_outputs.*`, a BERT WordPiece tokenizer), e.g. one made by
    /// `scripts/train-reader`. No trained reader can be fetched by name, so there is no
    /// default. Env `RAGD_READER`. Default: unset.
    pub model: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N`. Default: `cpu`.
    pub device: String,
    /// Most tokens of one window (question, passage part and special tokens); a longer
    /// passage is read in windows that overlap by a quarter. Default: 256.
    pub max_length: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            model: None,
            device: "cpu".into(),
            max_length: 256,
        }
    }
}

/// Settings of the embedding model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedderConfig {
    /// A catalogue name (`ragd models list`) or a local sentence-transformers folder with
    /// `config.json`, `model.safetensors` and `tokenizer.json`. Default: `all-MiniLM-L6-v2`.
    pub model: String,
    /// `cpu`, `cuda` or `cuda:N`. Default: `cpu`.
    pub device: String,
    /// Most tokens (all inputs together) per forward pass. Default: by device, 2048 on the CPU
    /// (larger batches allocate buffers the allocator returns to the OS each time: measurably
    /// slower), 32768 on a GPU (each pass is a few hundred kernel launches: fewer, larger
    /// passes keep it busy). Also the cross-encoder's budget.
    pub batch_tokens: Option<usize>,
    /// Most inputs per forward pass. Default: by device, 64 on the CPU, 512 on a GPU.
    pub max_batch: Option<usize>,
    /// Requests that may wait for the embedder before new ones are refused. Default: 256.
    pub queue: usize,
    /// Arithmetic of the dense layers on the CPU: `f32` (the checkpoint's own numbers), `q8`
    /// (8-bit weights and activations for every pass) or `auto` (8-bit where it is faster:
    /// every pass where the CPU has AVX-512 VNNI; elsewhere search queries in 8 bits, bulk
    /// ingestion in f32). Env `RAGD_EMBEDDER_PRECISION`. Default: `auto`.
    pub precision: Precision,
}

/// Settings of the generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// A catalogue name or a local GGUF file. Default: `SmolLM2-135M-Instruct-Q4_1`.
    pub model: String,
    /// `cpu`, `cuda` or `cuda:N`. Default: `cpu`.
    pub device: String,
    /// Most tokens one answer may take, unless a request says otherwise. Default: 256.
    pub max_tokens: usize,
    /// Sampling temperature unless a request says otherwise; 0 decodes greedily. Default: 0.
    pub temperature: f64,
    /// Generations that run at the same time, each on its own thread. Default: 1 (candle
    /// already spreads one sequence over every core; a second one only splits them; on a GPU
    /// concurrent sequences share one stream and lower the aggregate rate, BENCHMARKS.md).
    pub concurrency: usize,
    /// Generation requests that may wait for a free thread before new ones are refused.
    /// Default: 8.
    pub queue: usize,
}

impl GeneratorConfig {
    /// The decoding parameters these defaults give (the rest from [`GenerationParams`]).
    pub fn params(&self) -> GenerationParams {
        GenerationParams {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            ..GenerationParams::default()
        }
    }

    /// The sizes of the generation thread pool.
    pub fn pool(&self) -> GenerationPoolConfig {
        GenerationPoolConfig {
            concurrency: self.concurrency,
            queue: self.queue,
        }
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home().join(fallback))
}

/// The default models folder: `$XDG_CACHE_HOME/ragd/models`.
pub fn default_models_dir() -> PathBuf {
    xdg("XDG_CACHE_HOME", ".cache").join("ragd").join("models")
}

impl Config {
    /// The snapshot folder: `snapshot_dir`, or `<data_dir>/.snapshots` (a hidden name, which no
    /// collection can take).
    pub fn snapshot_dir(&self) -> PathBuf {
        self.snapshot_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join(".snapshots"))
    }
}

/// The default data folder: `$XDG_DATA_HOME/ragd`.
pub fn default_data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("ragd")
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            models_dir: default_models_dir(),
            snapshot_dir: None,
            embedder: EmbedderConfig::default(),
            generator: GeneratorConfig::default(),
            reranker: RerankerConfig::default(),
            reader: ReaderConfig::default(),
            server: ServerConfig::default(),
            ingest: ingest::LoadOptions::default(),
            index: IndexSettings::default(),
            answer: AnswerSettings::default(),
            qdrant: QdrantSettings::default(),
        }
    }
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            model: "all-MiniLM-L6-v2".into(),
            device: "cpu".into(),
            batch_tokens: None,
            max_batch: None,
            queue: 256,
            precision: Precision::Auto,
        }
    }
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            model: "SmolLM2-135M-Instruct-Q4_1".into(),
            device: "cpu".into(),
            max_tokens: 256,
            temperature: 0.0,
            concurrency: 1,
            queue: 8,
        }
    }
}

impl Config {
    /// Parses a TOML document (fields absent from it keep their defaults).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Defaults, then `file` if given (else `RAGD_CONFIG`), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let from_env = std::env::var_os("RAGD_CONFIG").map(PathBuf::from);
        let mut cfg = match file.map(Path::to_path_buf).or(from_env) {
            Some(path) => {
                let text = fs_err::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Self::from_toml(&text, &path)?
            }
            None => Self::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies the environment overrides listed in the module docs.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("RAGD_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("RAGD_MODELS_DIR") {
            self.models_dir = v.into();
        }
        if let Some(v) = get("RAGD_SNAPSHOT_DIR") {
            self.snapshot_dir = Some(v.into());
        }
        if let Some(v) = get("RAGD_EMBEDDER") {
            self.embedder.model = v;
        }
        if let Some(v) = get("RAGD_EMBEDDER_PRECISION") {
            self.embedder.precision = match v.as_str() {
                "f32" => Precision::F32,
                "q8" => Precision::Q8,
                "auto" => Precision::Auto,
                _ => {
                    return Err(ConfigError::Invalid {
                        field: "embedder.precision",
                        reason: format!("RAGD_EMBEDDER_PRECISION=`{v}`: use `auto`, `f32` or `q8`"),
                    })
                }
            };
        }
        if let Some(v) = get("RAGD_GENERATOR") {
            self.generator.model = v;
        }
        if let Some(v) = get("RAGD_RERANKER") {
            self.reranker.model = Some(v.into());
        }
        if let Some(v) = get("RAGD_READER") {
            self.reader.model = Some(v.into());
        }
        if let Some(v) = get("RAGD_RERANKER_KIND") {
            self.reranker.kind = match v.as_str() {
                "cross-encoder" => RerankerKind::CrossEncoder,
                "llm" => RerankerKind::Llm,
                _ => {
                    return Err(ConfigError::Invalid {
                        field: "reranker.kind",
                        reason: format!("RAGD_RERANKER_KIND=`{v}`: use `cross-encoder` or `llm`"),
                    })
                }
            };
        }
        if let Some(v) = get("RAGD_HTTP_ADDR") {
            self.server.http_addr = v;
        }
        if let Some(v) = get("RAGD_ADDR") {
            self.server.addr = v;
        }
        if let Some(v) = get("RAGD_AUTH_TOKEN_FILE") {
            self.server.auth_token_file = Some(v.into());
        }
        if let Some(v) = get("RAGD_TLS_CERT") {
            self.server.tls_cert = Some(v.into());
        }
        if let Some(v) = get("RAGD_TLS_KEY") {
            self.server.tls_key = Some(v.into());
        }
        if let Some(v) = get("RAGD_BACKEND") {
            self.index.backend = match v.as_str() {
                "embedded" => Backend::Embedded,
                "qdrant" => Backend::Qdrant,
                _ => {
                    return Err(ConfigError::Invalid {
                        field: "index.backend",
                        reason: format!("RAGD_BACKEND=`{v}`: use `embedded` or `qdrant`"),
                    })
                }
            };
        }
        if let Some(v) = get("RAGD_QDRANT_URLS") {
            self.qdrant.urls = v
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(v) = get("RAGD_QDRANT_API_KEY") {
            self.qdrant.api_key = Some(v);
        }
        if let Some(v) = get("RAGD_QDRANT_TLS_CA") {
            self.qdrant.tls_ca = Some(v.into());
        }
        if let Some(v) = get("RAGD_DEVICE") {
            self.embedder.device.clone_from(&v);
            self.reranker.device.clone_from(&v);
            self.reader.device.clone_from(&v);
            self.generator.device = v;
        }
        Ok(())
    }

    /// Checks ranges once, at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            (
                "embedder.batch_tokens",
                self.embedder.batch_tokens.unwrap_or(1),
            ),
            ("embedder.max_batch", self.embedder.max_batch.unwrap_or(1)),
            ("embedder.queue", self.embedder.queue),
            ("generator.max_tokens", self.generator.max_tokens),
            ("generator.concurrency", self.generator.concurrency),
            ("server.max_message_bytes", self.server.max_message_bytes),
            ("server.max_document_bytes", self.server.max_document_bytes),
            (
                "server.job_batch_documents",
                self.server.job_batch_documents,
            ),
            ("server.max_running_jobs", self.server.max_running_jobs),
        ];
        let positive_bytes = [
            ("ingest.max_file_bytes", self.ingest.max_file_bytes),
            ("ingest.max_line_bytes", self.ingest.max_line_bytes),
        ];
        let positive = positive
            .into_iter()
            .chain(positive_bytes.map(|(f, v)| (f, usize::try_from(v).unwrap_or(usize::MAX))));
        for (field, v) in positive {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if !(self.generator.temperature.is_finite() && self.generator.temperature >= 0.0) {
            return Err(ConfigError::Invalid {
                field: "generator.temperature",
                reason: "must be a finite number >= 0".into(),
            });
        }
        if self.server.addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid {
                field: "server.addr",
                reason: format!("`{}` is not an IP:port address", self.server.addr),
            });
        }
        if let Some((field, reason)) = self.qdrant.problem() {
            return Err(ConfigError::Invalid { field, reason });
        }
        let gate = &self.answer.gate;
        if !(gate.bias.is_finite() && gate.weights.iter().all(|w| w.is_finite())) {
            return Err(ConfigError::Invalid {
                field: "answer.gate",
                reason: "bias and weights must be finite numbers".into(),
            });
        }
        if !(0.0..=1.0).contains(&gate.min_probability) {
            return Err(ConfigError::Invalid {
                field: "answer.gate.min_probability",
                reason: "must be between 0 and 1".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
