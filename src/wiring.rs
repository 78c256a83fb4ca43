//! Builds the pipeline's parts from the configuration: the one place that decides which
//! embedder, reranker and generator run, on which device, with which batch limits.
//!
//! The server ([`crate::state::AppState::load`]), the command line, `ragd eval` and `ragd bench`
//! all come here, so a setting means the same thing everywhere. [`Models::load`] loads what a
//! caller needs (the embedder always; the generator and a reranker when asked) and
//! [`Models::retriever`] puts the embedder and reranker behind a [`Retriever`]. Catalogue models
//! are fetched into `models_dir` on first use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use ingest::Embedder;

use crate::config::{Config, RerankerKind};
use crate::model::encoder::{BatchLimits, CandleEmbedder, EmbedderOptions};
use crate::model::rerank::{
    CandleCrossEncoder, CandleReader, CrossEncoderOptions, LlmReranker, Reader, ReaderOptions,
};
use crate::model::source::parse_device;
use crate::model::{GgufGenerator, ModelError, ModelSource, Reranker};
use crate::rag::Retriever;

/// Which reranker to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RerankChoice {
    /// No second stage.
    #[default]
    None,
    /// The BERT cross-encoder from `path`, or from `reranker.model` when `None`.
    CrossEncoder {
        /// A checkpoint folder overriding `reranker.model`.
        path: Option<PathBuf>,
    },
    /// The generator as a relevance judge (shares the loaded generator).
    Llm,
}

impl RerankChoice {
    /// What a server runs: the LLM judge when `reranker.kind = "llm"`, the cross-encoder when
    /// `reranker.model` is set, else none (requests asking to rerank are then refused).
    pub fn served(cfg: &Config) -> Self {
        match (cfg.reranker.kind, &cfg.reranker.model) {
            (RerankerKind::Llm, _) => Self::Llm,
            (RerankerKind::CrossEncoder, Some(_)) => Self::CrossEncoder { path: None },
            (RerankerKind::CrossEncoder, None) => Self::None,
        }
    }

    /// What a command asks for: nothing unless `rerank`; then `kind`, or `reranker.kind` when
    /// `kind` is `None`.
    pub fn requested(cfg: &Config, rerank: bool, kind: Option<RerankerKind>) -> Self {
        if !rerank {
            return Self::None;
        }
        Self::of_kind(kind.unwrap_or(cfg.reranker.kind))
    }

    /// The reranker of `kind` (the cross-encoder from `reranker.model`).
    pub fn of_kind(kind: RerankerKind) -> Self {
        match kind {
            RerankerKind::CrossEncoder => Self::CrossEncoder { path: None },
            RerankerKind::Llm => Self::Llm,
        }
    }
}

/// The loaded models of one process.
#[derive(Clone)]
pub struct Models {
    /// The embedder, for ingestion and queries.
    pub embedder: Arc<dyn Embedder>,
    /// The generator, when loaded.
    pub generator: Option<Arc<GgufGenerator>>,
    /// The reranker, when one was chosen.
    pub reranker: Option<Arc<dyn Reranker>>,
    /// The reading-comprehension reader, when `reader.model` is set.
    pub reader: Option<Arc<dyn Reader>>,
}

impl Models {
    /// Loads the embedder, the generator when `generator` is set or the LLM judge needs it (one
    /// generator serves both), and the chosen reranker.
    pub fn load(cfg: &Config, generator: bool, rerank: &RerankChoice) -> Result<Self, ModelError> {
        let embedder: Arc<dyn Embedder> = Arc::new(load_embedder(cfg)?);
        let generator = if generator || *rerank == RerankChoice::Llm {
            Some(load_generator(cfg)?)
        } else {
            None
        };
        let reranker = load_reranker(cfg, rerank, generator.as_ref())?;
        Ok(Self {
            embedder,
            generator,
            reranker,
            reader: load_reader(cfg)?,
        })
    }

    /// The generator; an error naming the setting when it was not loaded.
    pub fn generator(&self) -> Result<&Arc<GgufGenerator>, ModelError> {
        self.generator.as_ref().ok_or_else(|| ModelError::Invalid {
            path: PathBuf::from("generator.model"),
            reason: "the generator was not loaded".into(),
        })
    }

    /// A retriever over these models' embedder, reranker and reader.
    pub fn retriever(&self) -> Retriever {
        retriever(self.embedder.clone(), self.reranker.clone()).with_reader(self.reader.clone())
    }
}

/// A retriever over already loaded models (the server's state, and tests, pass shared ones).
pub fn retriever(embedder: Arc<dyn Embedder>, reranker: Option<Arc<dyn Reranker>>) -> Retriever {
    Retriever::new(embedder, reranker)
}

/// Resolves, fetches if needed, and loads the configured embedder (`embedder.*`).
pub fn load_embedder(cfg: &Config) -> Result<CandleEmbedder, ModelError> {
    let source = ModelSource::parse(&cfg.embedder.model)?;
    let dir = source.materialize(&cfg.models_dir)?;
    let device = parse_device(&cfg.embedder.device)?;
    let limits = batch_limits(cfg, &device);
    // A catalogue model's weights were checked against their sha256 when fetched.
    let weights_sha256 = match &source {
        ModelSource::Catalog(spec) => spec
            .files
            .iter()
            .find(|f| f.name == "model.safetensors")
            .map(|f| f.sha256.to_string()),
        ModelSource::Path(_) => None,
    };
    let options = EmbedderOptions {
        model_id: source.id(),
        batch_tokens: limits.tokens,
        max_batch: limits.inputs,
        precision: cfg.embedder.precision,
        weights_sha256,
    };
    CandleEmbedder::load(&dir, &device, options)
}

/// Loads the embedder collection `made_with` was made with (its recorded model, a catalogue
/// name or a local folder, at its recorded precision) and checks that its fingerprint is the
/// recorded one: for serving the collection's searches while a reindex replaces its vectors.
pub fn load_embedder_of(
    cfg: &Config,
    made_with: &index::CollectionConfig,
) -> Result<CandleEmbedder, ModelError> {
    let mut cfg = cfg.clone();
    cfg.embedder.model.clone_from(&made_with.embedding_model);
    let recorded = &made_with.embedder_fingerprint;
    if let Some(p) = recorded
        .split(' ')
        .find_map(|f| f.strip_prefix("precision="))
    {
        cfg.embedder.precision =
            serde_json::from_value(serde_json::Value::from(p)).map_err(|e| {
                ModelError::Invalid {
                    path: PathBuf::from(&made_with.embedding_model),
                    reason: format!("recorded precision {p:?}: {e}"),
                }
            })?;
    }
    let embedder = load_embedder(&cfg)?;
    let made = embedder.fingerprint();
    let same = if recorded.is_empty() {
        embedder.model_id() == made_with.embedding_model
            && embedder.dimension() == made_with.dimension
    } else {
        made == *recorded
    };
    if !same {
        return Err(ModelError::Invalid {
            path: PathBuf::from(&made_with.embedding_model),
            reason: format!("it loads as [{made}], not as recorded [{recorded}]"),
        });
    }
    Ok(embedder)
}

/// Resolves, fetches if needed, and loads the configured generator (`generator.*`).
pub fn load_generator(cfg: &Config) -> Result<Arc<GgufGenerator>, ModelError> {
    let source = ModelSource::parse(&cfg.generator.model)?;
    let device = parse_device(&cfg.generator.device)?;
    load_generator_from(&source, &cfg.models_dir, &device)
}

/// Loads a generator from `source` (a catalogue name is fetched into `models_dir` first).
pub fn load_generator_from(
    source: &ModelSource,
    models_dir: &Path,
    device: &Device,
) -> Result<Arc<GgufGenerator>, ModelError> {
    let path = source.materialize(models_dir)?;
    let model_id = match source {
        ModelSource::Catalog(spec) => spec.name.to_string(),
        ModelSource::Path(p) => p
            .file_stem()
            .map_or_else(|| source.id(), |s| s.to_string_lossy().into_owned()),
    };
    Ok(Arc::new(GgufGenerator::load(&path, device, model_id)?))
}

/// Loads the chosen reranker. The LLM judge runs on `generator` when given (else the configured
/// generator is loaded for it); the cross-encoder runs on `reranker.device` with the embedder's
/// batch limits.
pub fn load_reranker(
    cfg: &Config,
    choice: &RerankChoice,
    generator: Option<&Arc<GgufGenerator>>,
) -> Result<Option<Arc<dyn Reranker>>, ModelError> {
    let path = match choice {
        RerankChoice::None => return Ok(None),
        RerankChoice::Llm => {
            let generator = match generator {
                Some(g) => g.clone(),
                None => load_generator(cfg)?,
            };
            let judge = LlmReranker::new(generator, cfg.reranker.max_length)?;
            return Ok(Some(Arc::new(judge)));
        }
        RerankChoice::CrossEncoder { path } => path,
    };
    let Some(dir) = path.clone().or_else(|| cfg.reranker.model.clone()) else {
        return Err(ModelError::Invalid {
            path: PathBuf::from("reranker.model"),
            reason: "no cross-encoder configured: set reranker.model in the config file, or pass \
                     --reranker-path, to a folder with config.json, tokenizer.json and \
                     *.safetensors (e.g. cross-encoder/ms-marco-MiniLM-L-6-v2)"
                .into(),
        });
    };
    let device = parse_device(&cfg.reranker.device)?;
    let limits = batch_limits(cfg, &device);
    let options = CrossEncoderOptions {
        model_id: dir.display().to_string(),
        max_length: cfg.reranker.max_length,
        batch_tokens: limits.tokens,
        max_batch: limits.inputs,
    };
    Ok(Some(Arc::new(CandleCrossEncoder::load(
        &dir, &device, options,
    )?)))
}

/// Loads the reader of `reader.model` on `reader.device`, or `None` when none is set.
pub fn load_reader(cfg: &Config) -> Result<Option<Arc<dyn Reader>>, ModelError> {
    let Some(dir) = &cfg.reader.model else {
        return Ok(None);
    };
    let device = parse_device(&cfg.reader.device)?;
    let options = ReaderOptions {
        model_id: dir.display().to_string(),
        max_length: cfg.reader.max_length,
        overlap: cfg.reader.max_length / 4,
        batch_tokens: batch_limits(cfg, &device).tokens,
        ..ReaderOptions::default()
    };
    Ok(Some(Arc::new(CandleReader::load(dir, &device, options)?)))
}

/// `embedder.batch_tokens` / `embedder.max_batch`, or the device's defaults where unset.
fn batch_limits(cfg: &Config, device: &Device) -> BatchLimits {
    BatchLimits::configured(device, cfg.embedder.batch_tokens, cfg.embedder.max_batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_reranks_with_what_is_configured() {
        let mut cfg = Config::default();
        cfg.reranker.model = None;
        assert_eq!(RerankChoice::served(&cfg), RerankChoice::None);
        cfg.reranker.model = Some(PathBuf::from("/m"));
        assert_eq!(
            RerankChoice::served(&cfg),
            RerankChoice::CrossEncoder { path: None }
        );
        cfg.reranker.kind = RerankerKind::Llm;
        assert_eq!(RerankChoice::served(&cfg), RerankChoice::Llm);
    }

    #[test]
    fn a_command_reranks_only_when_asked_and_its_kind_wins() {
        let mut cfg = Config::default();
        cfg.reranker.kind = RerankerKind::Llm;
        assert_eq!(
            RerankChoice::requested(&cfg, false, None),
            RerankChoice::None
        );
        assert_eq!(RerankChoice::requested(&cfg, true, None), RerankChoice::Llm);
        assert_eq!(
            RerankChoice::requested(&cfg, true, Some(RerankerKind::CrossEncoder)),
            RerankChoice::CrossEncoder { path: None }
        );
    }

    #[test]
    fn a_cross_encoder_without_a_model_names_the_setting() {
        let mut cfg = Config::default();
        cfg.reranker.model = None;
        let err = load_reranker(&cfg, &RerankChoice::CrossEncoder { path: None }, None)
            .err()
            .expect("no model configured");
        assert!(err.to_string().contains("reranker.model"), "{err}");
        assert!(load_reranker(&cfg, &RerankChoice::None, None)
            .unwrap()
            .is_none());
    }
}
