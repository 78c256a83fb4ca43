//! The candle bi-encoder embedder (all-MiniLM-L6-v2 by default), implementing
//! [`ingest::Embedder`].
//!
//! Loads a sentence-transformers folder (`config.json`, `model.safetensors`, `tokenizer.json`,
//! optionally `sentence_bert_config.json` and `1_Pooling/config.json`), tokenises with the
//! model's own tokenizer, truncates at the model's limit (256 tokens for MiniLM) and reports each
//! truncation, runs the packed [`BertEncoder`], mean-pools over the real tokens and L2-normalises.
//! Inputs are grouped into batches under a token budget; because the encoder is packed there is
//! no padding at all, so batches need not be sorted by length.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use ingest::{EmbedError, Embedder, Embedding, HfTokenCounter, TokenCounter};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

use super::bert::{bert_root, l2_normalize, mean_pool, BertConfig, BertEncoder, Precision, DTYPE};
use crate::model::source::read_json;
use crate::model::ModelError;

/// Settings of the embedder that are not in the checkpoint.
#[derive(Debug, Clone)]
pub struct EmbedderOptions {
    /// Identifier recorded in index manifests.
    pub model_id: String,
    /// Most tokens (all inputs together) in one forward pass.
    pub batch_tokens: usize,
    /// Most inputs in one forward pass.
    pub max_batch: usize,
    /// Arithmetic of the dense layers.
    pub precision: Precision,
    /// sha256 of `model.safetensors` when already known (a catalogue model, verified when it
    /// was fetched); computed at load otherwise.
    pub weights_sha256: Option<String>,
}

impl Default for EmbedderOptions {
    /// The CPU's batch limits ([`BatchLimits::for_device`]).
    fn default() -> Self {
        let limits = BatchLimits::for_device(&Device::Cpu);
        Self {
            model_id: "all-MiniLM-L6-v2".into(),
            batch_tokens: limits.tokens,
            max_batch: limits.inputs,
            precision: Precision::Auto,
            weights_sha256: None,
        }
    }
}

/// How much one forward pass of a BERT encoder (embedder or cross-encoder) takes at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Tokens of all inputs together.
    pub tokens: usize,
    /// Inputs.
    pub inputs: usize,
}

impl BatchLimits {
    /// The defaults for `device`. The CPU: 2048 tokens and 64 inputs (larger passes allocate
    /// buffers the allocator hands back to the OS each time). A GPU: 32768 tokens and 512 inputs,
    /// because a pass costs a few hundred kernel launches whatever its size: the 239,416 tokens
    /// of 1,000 SciFact passages take about 8 passes instead of about 120, and embedded 1.26x as
    /// fast on an H200 (BENCHMARKS.md, "The GPU path").
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() {
            Self {
                tokens: 2048,
                inputs: 64,
            }
        } else {
            Self {
                tokens: 32_768,
                inputs: 512,
            }
        }
    }

    /// The device's defaults, with each configured value in place of its default.
    pub fn configured(device: &Device, tokens: Option<usize>, inputs: Option<usize>) -> Self {
        let d = Self::for_device(device);
        Self {
            tokens: tokens.unwrap_or(d.tokens),
            inputs: inputs.unwrap_or(d.inputs),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Cls,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// A BERT bi-encoder on candle.
pub struct CandleEmbedder {
    encoder: BertEncoder,
    tokenizer: Tokenizer,
    counter: HfTokenCounter,
    pooling: Pooling,
    max_tokens: usize,
    options: EmbedderOptions,
    /// See [`Embedder::fingerprint`].
    fingerprint: String,
}

fn require(dir: &Path, name: &str) -> Result<PathBuf, ModelError> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(ModelError::Invalid {
            path: dir.to_path_buf(),
            reason: format!("missing {name}"),
        })
    }
}

impl CandleEmbedder {
    /// Loads the model in `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device, options: EmbedderOptions) -> Result<Self, ModelError> {
        let cfg: BertConfig = read_json(&require(dir, "config.json")?)?;
        let weights = require(dir, "model.safetensors")?;
        let tok_path = require(dir, "tokenizer.json")?;
        let max_tokens = Self::max_tokens(dir, &cfg)?;
        let pooling = Self::pooling(dir)?;
        // SAFETY: the weights file is memory-mapped read-only; ragd never writes model files
        // while they are loaded (fetch writes `.part` files and renames them into place).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DTYPE, device)? };
        let mut encoder = BertEncoder::load(bert_root(&vb), &cfg)?;
        encoder.set_precision(options.precision)?;
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", tok_path.display())))?;
        let counter = HfTokenCounter::new(tokenizer.clone());
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                ..Default::default()
            }))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let weights_sha256 = match &options.weights_sha256 {
            Some(known) => known.clone(),
            None => {
                crate::model::source::sha256_file(&weights).map_err(|source| ModelError::Io {
                    path: weights.clone(),
                    source,
                })?
            }
        };
        let fingerprint = format!(
            "model={} weights=sha256:{weights_sha256} dim={} precision={}",
            options.model_id,
            encoder.hidden_size(),
            serde_json::to_value(options.precision)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        );
        Ok(Self {
            encoder,
            tokenizer,
            counter,
            pooling,
            max_tokens,
            options,
            fingerprint,
        })
    }

    fn max_tokens(dir: &Path, cfg: &BertConfig) -> Result<usize, ModelError> {
        let st = dir.join("sentence_bert_config.json");
        let configured = if st.is_file() {
            read_json::<SentenceBertConfig>(&st)?.max_seq_length
        } else {
            cfg.max_position_embeddings
        };
        Ok(configured.min(cfg.max_position_embeddings))
    }

    fn pooling(dir: &Path) -> Result<Pooling, ModelError> {
        let p = dir.join("1_Pooling/config.json");
        if !p.is_file() {
            return Ok(Pooling::Mean);
        }
        let cfg: PoolingConfig = read_json(&p)?;
        match (cfg.pooling_mode_mean_tokens, cfg.pooling_mode_cls_token) {
            (true, _) => Ok(Pooling::Mean),
            (false, true) => Ok(Pooling::Cls),
            (false, false) => Err(ModelError::Invalid {
                path: p,
                reason: "only mean or CLS pooling is supported".into(),
            }),
        }
    }

    /// Most tokens, special tokens included, one input may have before it is truncated.
    pub fn max_tokens_with_specials(&self) -> usize {
        self.max_tokens
    }

    /// Tokenises `texts` (with truncation) into id lists and truncation flags.
    fn tokenize(&self, texts: &[&str]) -> Result<Vec<(Vec<u32>, bool)>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| {
                let truncated = !e.get_overflowing().is_empty();
                (e.get_ids().to_vec(), truncated)
            })
            .collect())
    }

    /// Embeds one batch of token id lists; returns the pooled, normalised vectors.
    fn forward(&self, batch: &[&Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let lens: Vec<usize> = batch.iter().map(|ids| ids.len()).collect();
        let ids: Vec<u32> = batch.iter().flat_map(|ids| ids.iter().copied()).collect();
        let types = vec![0u32; ids.len()];
        let hidden = self.encoder.forward_packed(&ids, &types, &lens)?;
        let pooled = match self.pooling {
            Pooling::Mean => mean_pool(&hidden, &lens)?,
            Pooling::Cls => cls_rows(&hidden, &lens)?,
        };
        l2_normalize(&pooled)?.to_vec2()
    }

    /// Splits inputs into consecutive batches under the token and count budgets.
    fn batches<'a>(&self, inputs: &'a [(Vec<u32>, bool)]) -> Vec<Vec<&'a Vec<u32>>> {
        let mut out: Vec<Vec<&Vec<u32>>> = Vec::new();
        let mut tokens = 0;
        for (ids, _) in inputs {
            let full = out.last().is_none_or(|b| {
                b.len() >= self.options.max_batch || tokens + ids.len() > self.options.batch_tokens
            });
            if full {
                out.push(Vec::new());
                tokens = 0;
            }
            tokens += ids.len();
            if let Some(b) = out.last_mut() {
                b.push(ids);
            }
        }
        out
    }
}

fn cls_rows(hidden: &Tensor, lens: &[usize]) -> candle_core::Result<Tensor> {
    let mut starts = Vec::with_capacity(lens.len());
    let mut s = 0u32;
    for &len in lens {
        starts.push(s);
        s += len as u32;
    }
    let idx = Tensor::from_vec(starts, lens.len(), hidden.device())?;
    hidden.index_select(&idx, 0)
}

impl Embedder for CandleEmbedder {
    fn model_id(&self) -> &str {
        &self.options.model_id
    }

    fn dimension(&self) -> usize {
        self.encoder.hidden_size()
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    fn max_content_tokens(&self) -> usize {
        // [CLS] and [SEP] take two of the model's positions.
        self.max_tokens.saturating_sub(2)
    }

    fn token_counter(&self) -> &dyn TokenCounter {
        &self.counter
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>, EmbedError> {
        let _span = tracing::trace_span!("embed", n = texts.len()).entered();
        let inputs = self.tokenize(texts)?;
        let mut vectors = Vec::with_capacity(inputs.len());
        for batch in self.batches(&inputs) {
            let out = self
                .forward(&batch)
                .map_err(|e| EmbedError::Model(e.to_string()))?;
            vectors.extend(out);
        }
        Ok(vectors
            .into_iter()
            .zip(inputs)
            .map(|(vector, (ids, truncated))| Embedding {
                vector,
                tokens: ids.len(),
                truncated,
            })
            .collect())
    }
}
