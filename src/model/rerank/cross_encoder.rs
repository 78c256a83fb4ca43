//! The candle cross-encoder, [`CandleCrossEncoder`].
//!
//! A cross-encoder reads the query and one passage together, `[CLS] query [SEP] passage [SEP]`,
//! with token type 0 on the query part and 1 on the passage part, and maps the `[CLS]` state to a
//! single relevance logit (Nogueira & Cho, 2019, "Passage Re-ranking with BERT"). The model is a
//! Hugging Face `BertForSequenceClassification`:
//!
//! ```text
//! h      = BertEncoder(pair)[CLS]
//! pooled = tanh(W_p · h + b_p)        (the BERT pooler, when the checkpoint has `pooler.dense`)
//! logit  = W_c · pooled + b_c         (`classifier`, num_labels = 1)
//! ```
//!
//! Pairs run through the packed [`BertEncoder`] (no padding) in batches under a token budget,
//! like the embedder. Only the passage is truncated (`only_second`); a query that alone does not
//! fit is truncated as a last resort (see [`CandleCrossEncoder::encode_pair`]).

use std::path::{Path, PathBuf};

use candle_core::{Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use rayon::prelude::*;
use tokenizers::utils::truncation::TruncationError;
use tokenizers::{Encoding, Tokenizer, TruncationParams, TruncationStrategy};

use super::{RerankError, Reranker};
use crate::model::encoder::{bert_root, BatchLimits, BertConfig, BertEncoder, DTYPE};
use crate::model::source::read_json;
use crate::model::ModelError;

/// Settings of the cross-encoder that are not in the checkpoint.
#[derive(Debug, Clone)]
pub struct CrossEncoderOptions {
    /// Identifier reported by [`Reranker::model_id`].
    pub model_id: String,
    /// Most tokens of one pair, special tokens included; capped by the model's
    /// `max_position_embeddings`.
    pub max_length: usize,
    /// Most tokens (all pairs together) in one forward pass.
    pub batch_tokens: usize,
    /// Most pairs in one forward pass.
    pub max_batch: usize,
}

impl Default for CrossEncoderOptions {
    /// The CPU's batch limits ([`BatchLimits::for_device`]).
    fn default() -> Self {
        let limits = BatchLimits::for_device(&Device::Cpu);
        Self {
            model_id: "cross-encoder".into(),
            max_length: 512,
            batch_tokens: limits.tokens,
            max_batch: limits.inputs,
        }
    }
}

/// One tokenised pair.
struct Pair {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
}

/// A BERT sequence-classification cross-encoder on candle.
pub struct CandleCrossEncoder {
    encoder: BertEncoder,
    pooler: Option<Linear>,
    classifier: Linear,
    /// Truncates the passage only.
    tokenizer: Tokenizer,
    /// Fallback when the query alone exceeds the limit: longest-first truncation.
    fallback: Tokenizer,
    options: CrossEncoderOptions,
}

impl CandleCrossEncoder {
    /// Loads the model in `dir`: `config.json`, `tokenizer.json` and every `*.safetensors` file
    /// (loaded together, so the encoder and the head may be in separate files).
    pub fn load(
        dir: &Path,
        device: &Device,
        options: CrossEncoderOptions,
    ) -> Result<Self, ModelError> {
        let weights = safetensors_in(dir)?;
        Self::load_files(
            &dir.join("config.json"),
            &dir.join("tokenizer.json"),
            &weights,
            device,
            options,
        )
    }

    /// Loads the model from explicit files. `weights` may split the tensors across files; names
    /// are bare (`embeddings.*`, `pooler.*`, `classifier.*`) or `bert.`-prefixed for the encoder
    /// and pooler with a bare `classifier.*`.
    pub fn load_files(
        config: &Path,
        tokenizer: &Path,
        weights: &[PathBuf],
        device: &Device,
        options: CrossEncoderOptions,
    ) -> Result<Self, ModelError> {
        let cfg: BertConfig = read_json(config)?;
        check_num_labels(config, &cfg)?;
        // SAFETY: the weight files are memory-mapped read-only; ragd never writes model files
        // while they are loaded (fetch writes `.part` files and renames them into place).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(weights, DTYPE, device)? };
        let root = bert_root(&vb);
        let encoder = BertEncoder::load(root.clone(), &cfg)?;
        let h = cfg.hidden_size;
        let pooler = if root.contains_tensor("pooler.dense.weight") {
            Some(candle_nn::linear(h, h, root.pp("pooler.dense"))?)
        } else {
            None
        };
        let classifier = load_classifier(&vb, weights, h)?;
        let max_length = options.max_length.min(cfg.max_position_embeddings);
        let tokenizer = load_tokenizer(tokenizer, max_length, TruncationStrategy::OnlySecond)?;
        let mut fallback = tokenizer.clone();
        set_truncation(&mut fallback, max_length, TruncationStrategy::LongestFirst)?;
        Ok(Self {
            encoder,
            pooler,
            classifier,
            tokenizer,
            fallback,
            options: CrossEncoderOptions {
                max_length,
                ..options
            },
        })
    }

    /// Most tokens of one pair, special tokens included (the configured limit, capped by the
    /// model's position embeddings).
    pub fn max_length(&self) -> usize {
        self.options.max_length
    }

    /// Whether the checkpoint has a BERT pooler between the `[CLS]` state and the classifier.
    pub fn has_pooler(&self) -> bool {
        self.pooler.is_some()
    }

    /// Tokenises one pair exactly as the model sees it: `(input_ids, token_type_ids)`.
    ///
    /// The passage is truncated to fit [`Self::max_length`] (Hugging Face
    /// `truncation="only_second"`). If the query alone leaves no room for even one passage token,
    /// the pair is truncated longest-first instead, as a last resort: the query is cut (and the
    /// passage too when both are long, each getting about half) rather than failing the request.
    pub fn encode_pair(
        &self,
        query: &str,
        passage: &str,
    ) -> Result<(Vec<u32>, Vec<u32>), RerankError> {
        let pair = self.tokenize(query, passage)?;
        Ok((pair.ids, pair.type_ids))
    }

    fn tokenize(&self, query: &str, passage: &str) -> Result<Pair, RerankError> {
        let enc = match self.tokenizer.encode((query, passage), true) {
            Ok(enc) => enc,
            Err(e) if is_too_short(&*e) => {
                tracing::debug!("query exceeds the reranker's limit; truncating it");
                self.fallback
                    .encode((query, passage), true)
                    .map_err(|e| RerankError::Tokenize(e.to_string()))?
            }
            Err(e) => return Err(RerankError::Tokenize(e.to_string())),
        };
        Ok(pair_of(&enc))
    }

    /// Scores one batch of pairs: `[CLS]` state → pooler → classifier, one logit per pair.
    fn forward(&self, batch: &[Pair]) -> candle_core::Result<Vec<f32>> {
        let lens: Vec<usize> = batch.iter().map(|p| p.ids.len()).collect();
        let ids: Vec<u32> = batch.iter().flat_map(|p| p.ids.iter().copied()).collect();
        let types: Vec<u32> = batch
            .iter()
            .flat_map(|p| p.type_ids.iter().copied())
            .collect();
        let hidden = self.encoder.forward_packed(&ids, &types, &lens)?;
        let cls = cls_rows(&hidden, &lens)?;
        let pooled = match &self.pooler {
            Some(p) => p.forward(&cls)?.tanh()?,
            None => cls,
        };
        self.classifier.forward(&pooled)?.squeeze(1)?.to_vec1()
    }

    /// Splits pairs into consecutive batches under the token and count budgets.
    fn batches(&self, pairs: Vec<Pair>) -> Vec<Vec<Pair>> {
        let mut out: Vec<Vec<Pair>> = Vec::new();
        let mut tokens = 0;
        for pair in pairs {
            let full = out.last().is_none_or(|b| {
                b.len() >= self.options.max_batch
                    || tokens + pair.ids.len() > self.options.batch_tokens
            });
            if full {
                out.push(Vec::new());
                tokens = 0;
            }
            tokens += pair.ids.len();
            if let Some(b) = out.last_mut() {
                b.push(pair);
            }
        }
        out
    }
}

impl Reranker for CandleCrossEncoder {
    fn rerank(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, RerankError> {
        let _span = tracing::trace_span!("rerank", n = passages.len()).entered();
        let pairs = passages
            .par_iter()
            .map(|p| self.tokenize(query, p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut scores = Vec::with_capacity(pairs.len());
        for batch in self.batches(pairs) {
            scores.extend(self.forward(&batch)?);
        }
        Ok(scores)
    }

    fn model_id(&self) -> &str {
        &self.options.model_id
    }
}

fn pair_of(enc: &Encoding) -> Pair {
    Pair {
        ids: enc.get_ids().to_vec(),
        type_ids: enc.get_type_ids().to_vec(),
    }
}

fn is_too_short(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    matches!(
        e.downcast_ref::<TruncationError>(),
        Some(TruncationError::SequenceTooShort)
    )
}

/// The hidden state of each packed sequence's first token (`[CLS]`): `[lens.len(), hidden]`.
fn cls_rows(hidden: &Tensor, lens: &[usize]) -> candle_core::Result<Tensor> {
    let starts: Vec<u32> = lens
        .iter()
        .scan(0u32, |s, &len| {
            let start = *s;
            *s += len as u32;
            Some(start)
        })
        .collect();
    let idx = Tensor::from_vec(starts, lens.len(), hidden.device())?;
    hidden.index_select(&idx, 0)
}

/// Requires a single-logit head: `num_labels` (or the size of `id2label`) must be 1 when given.
fn check_num_labels(path: &Path, cfg: &BertConfig) -> Result<(), ModelError> {
    let labels = cfg
        .num_labels
        .or_else(|| cfg.id2label.as_ref().map(|m| m.len()))
        .unwrap_or(1);
    if labels == 1 {
        Ok(())
    } else {
        Err(ModelError::Invalid {
            path: path.to_path_buf(),
            reason: format!(
                "a cross-encoder reranker needs num_labels = 1 (one relevance logit), got {labels}"
            ),
        })
    }
}

/// `classifier.weight` `[1, hidden]` and `classifier.bias` `[1]`, bare names.
fn load_classifier(
    vb: &VarBuilder,
    weights: &[PathBuf],
    hidden: usize,
) -> Result<Linear, ModelError> {
    if !vb.contains_tensor("classifier.weight") {
        return Err(ModelError::Invalid {
            path: weights.first().cloned().unwrap_or_default(),
            reason: "no `classifier.weight` tensor: not a sequence-classification checkpoint"
                .into(),
        });
    }
    Ok(candle_nn::linear(hidden, 1, vb.pp("classifier"))?)
}

fn load_tokenizer(
    path: &Path,
    max_length: usize,
    strategy: TruncationStrategy,
) -> Result<Tokenizer, ModelError> {
    let mut tokenizer = Tokenizer::from_file(path)
        .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
    tokenizer.with_padding(None);
    set_truncation(&mut tokenizer, max_length, strategy)?;
    Ok(tokenizer)
}

fn set_truncation(
    tokenizer: &mut Tokenizer,
    max_length: usize,
    strategy: TruncationStrategy,
) -> Result<(), ModelError> {
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length,
            strategy,
            ..Default::default()
        }))
        .map(|_| ())
        .map_err(|e| ModelError::Tokenizer(e.to_string()))
}

/// Every `*.safetensors` file in `dir`, sorted by name; at least one.
pub(super) fn safetensors_in(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let io = |e| ModelError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    let mut files = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "safetensors") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(ModelError::Invalid {
            path: dir.to_path_buf(),
            reason: "no *.safetensors weights".into(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(num_labels: Option<usize>, labels: Option<usize>) -> BertConfig {
        let mut v = serde_json::json!({
            "vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1,
            "num_attention_heads": 1, "intermediate_size": 8, "max_position_embeddings": 16,
        });
        if let Some(n) = num_labels {
            v["num_labels"] = n.into();
        }
        if let Some(n) = labels {
            let map: serde_json::Map<String, serde_json::Value> = (0..n)
                .map(|i| (i.to_string(), format!("L{i}").into()))
                .collect();
            v["id2label"] = map.into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn single_label_heads_only() {
        let p = Path::new("config.json");
        assert!(check_num_labels(p, &cfg(None, None)).is_ok());
        assert!(check_num_labels(p, &cfg(Some(1), Some(3))).is_ok());
        assert!(check_num_labels(p, &cfg(None, Some(1))).is_ok());
        let err = check_num_labels(p, &cfg(None, Some(2))).unwrap_err();
        assert!(matches!(err, ModelError::Invalid { .. }), "{err}");
        assert!(check_num_labels(p, &cfg(Some(3), None)).is_err());
    }

    #[test]
    fn cls_rows_picks_first_token_of_each_sequence() {
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu)
            .unwrap()
            .reshape((6, 2))
            .unwrap();
        let got: Vec<Vec<f32>> = cls_rows(&x, &[1, 3, 2]).unwrap().to_vec2().unwrap();
        assert_eq!(got, vec![vec![0.0, 1.0], vec![2.0, 3.0], vec![8.0, 9.0]]);
    }
}
