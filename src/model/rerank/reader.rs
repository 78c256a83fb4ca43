//! The candle reading-comprehension reader, [`CandleReader`]: the span of a passage that answers
//! a question.
//!
//! The model is a Hugging Face `BertForQuestionAnswering` (Devlin et al., 2019, §4.2: SQuAD):
//! the encoder reads `[CLS] question [SEP] window [SEP]` and a linear head (`qa_outputs`) gives
//! every token a start and an end logit. The answer is the span `i ..= j` of the window's
//! passage tokens with the largest `start[i] + end[j]`, `j - i` under a length limit; `[CLS]`'s
//! `start[0] + end[0]` is the score of "this window has no answer" (SQuAD 2.0 style training
//! teaches it; SQuAD 1.1 readers leave it meaningless). A passage longer than the model's window
//! is read in overlapping windows (the BERT paper's "doc stride"); its answer is its best
//! window's, and its no-answer score the smallest of its windows'.

use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{Device, Module};
use candle_nn::{Linear, VarBuilder};
use tokenizers::Tokenizer;

use super::cross_encoder::safetensors_in;
use super::{Reader, RerankError};
use crate::model::encoder::{bert_root, BertConfig, BertEncoder, DTYPE};
use crate::model::source::read_json;
use crate::model::ModelError;

/// Settings of the reader that are not in the checkpoint.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Identifier for logs and responses.
    pub model_id: String,
    /// Most tokens of one window, special tokens included; capped by the model's
    /// `max_position_embeddings`.
    pub max_length: usize,
    /// Tokens that consecutive windows of a long passage share.
    pub overlap: usize,
    /// Most tokens of the question (a longer one is cut).
    pub max_question_tokens: usize,
    /// Most tokens of an answer span.
    pub max_answer_tokens: usize,
    /// Most tokens (all windows together) in one forward pass.
    pub batch_tokens: usize,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            model_id: "reader".into(),
            max_length: 256,
            overlap: 64,
            max_question_tokens: 64,
            max_answer_tokens: 30,
            batch_tokens: 4096,
        }
    }
}

/// The best answer the reader found in one passage.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSpan {
    /// Byte range of the answer in the passage.
    pub range: Range<usize>,
    /// `start + end` logit of the span.
    pub score: f32,
    /// `start + end` logit of `[CLS]` ("no answer here"): the smallest over the passage's
    /// windows.
    pub null_score: f32,
}

/// Start and end logits of one window, as the model computed them (for checks against a
/// reference implementation).
#[derive(Debug, Clone)]
pub struct WindowLogits {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Token type ids (0 question, 1 passage).
    pub type_ids: Vec<u32>,
    /// Start logit per token.
    pub start: Vec<f32>,
    /// End logit per token.
    pub end: Vec<f32>,
}

/// The start and the end logits of one window's tokens.
type StartEnd = (Vec<f32>, Vec<f32>);

/// One window of a passage: `[CLS] question [SEP] passage tokens [SEP]`.
struct Window {
    passage: usize,
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    /// Index of the window's first passage token.
    first: usize,
    /// Byte offsets of the window's passage tokens in the passage.
    offsets: Vec<(usize, usize)>,
}

/// A BERT question-answering reader on candle.
pub struct CandleReader {
    encoder: BertEncoder,
    head: Linear,
    tokenizer: Tokenizer,
    cls: u32,
    sep: u32,
    options: ReaderOptions,
}

impl CandleReader {
    /// Loads the model in `dir`: `config.json`, `tokenizer.json` and every `*.safetensors` file.
    pub fn load(dir: &Path, device: &Device, options: ReaderOptions) -> Result<Self, ModelError> {
        let weights = safetensors_in(dir)?;
        Self::load_files(
            &dir.join("config.json"),
            &dir.join("tokenizer.json"),
            &weights,
            device,
            options,
        )
    }

    /// Loads the model from explicit files. `weights` may split the tensors across files; the
    /// encoder's names are bare or under `bert.`, the head's are `qa_outputs.weight` `[2, hidden]`
    /// and `qa_outputs.bias` `[2]`.
    pub fn load_files(
        config: &Path,
        tokenizer: &Path,
        weights: &[PathBuf],
        device: &Device,
        options: ReaderOptions,
    ) -> Result<Self, ModelError> {
        let cfg: BertConfig = read_json(config)?;
        // SAFETY: the weight files are memory-mapped read-only; ragd never writes model files
        // while they are loaded (fetch writes `.part` files and renames them into place).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(weights, DTYPE, device)? };
        if !vb.contains_tensor("qa_outputs.weight") {
            return Err(ModelError::Invalid {
                path: weights.first().cloned().unwrap_or_default(),
                reason: "no `qa_outputs.weight` tensor: not a question-answering checkpoint \
                         (BertForQuestionAnswering)"
                    .into(),
            });
        }
        let encoder = BertEncoder::load(bert_root(&vb), &cfg)?;
        let head = candle_nn::linear(cfg.hidden_size, 2, vb.pp("qa_outputs"))?;
        let mut tok = Tokenizer::from_file(tokenizer)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", tokenizer.display())))?;
        tok.with_padding(None);
        tok.with_truncation(None)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let special = |name: &str| {
            tok.token_to_id(name).ok_or_else(|| ModelError::Invalid {
                path: tokenizer.to_path_buf(),
                reason: format!("the tokenizer has no `{name}` token (a BERT tokenizer has)"),
            })
        };
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let max_length = options.max_length.min(cfg.max_position_embeddings);
        // The longest window head is `[CLS]`, the question at its longest and `[SEP]`; after it
        // and the closing `[SEP]` there must be room for more passage tokens than the overlap,
        // or consecutive windows would not move forward.
        let least = options.max_question_tokens + 3 + options.overlap + 1;
        if max_length < least {
            return Err(ModelError::Invalid {
                path: config.to_path_buf(),
                reason: format!(
                    "reader windows of {max_length} tokens cannot hold a question of up to {} \
                     tokens, an overlap of {} and a new passage token: they need at least {least}",
                    options.max_question_tokens, options.overlap
                ),
            });
        }
        Ok(Self {
            encoder,
            head,
            tokenizer: tok,
            cls,
            sep,
            options: ReaderOptions {
                max_length,
                ..options
            },
        })
    }

    /// The options in force (`max_length` capped by the model).
    pub fn options(&self) -> &ReaderOptions {
        &self.options
    }

    /// The start and end logits of every window of `passage`, with its tokens.
    pub fn logits(&self, question: &str, passage: &str) -> Result<Vec<WindowLogits>, RerankError> {
        let windows = self.windows(question, &[passage])?;
        let mut out = Vec::new();
        for batch in batches(&windows, self.options.batch_tokens) {
            for (w, (start, end)) in batch.iter().zip(self.forward(batch)?) {
                out.push(WindowLogits {
                    ids: w.ids.clone(),
                    type_ids: w.type_ids.clone(),
                    start,
                    end,
                });
            }
        }
        Ok(out)
    }

    /// Tokenises the question once and each passage into windows.
    fn windows(&self, question: &str, passages: &[&str]) -> Result<Vec<Window>, RerankError> {
        let tokenize = |text: &str| {
            self.tokenizer
                .encode(text, false)
                .map_err(|e| RerankError::Tokenize(e.to_string()))
        };
        let q = tokenize(question)?;
        let q_ids = &q.get_ids()[..q.get_ids().len().min(self.options.max_question_tokens)];
        let head: Vec<u32> = std::iter::once(self.cls)
            .chain(q_ids.iter().copied())
            .chain(std::iter::once(self.sep))
            .collect();
        // Room for the passage: the window less the question and three special tokens.
        let room = self.options.max_length - head.len() - 1;
        let step = room - self.options.overlap;
        let mut windows = Vec::new();
        for (passage, text) in passages.iter().enumerate() {
            let p = tokenize(text)?;
            let (ids, offsets) = (p.get_ids(), p.get_offsets());
            let mut from = 0;
            while from < ids.len() {
                let to = (from + room).min(ids.len());
                let mut w_ids = head.clone();
                w_ids.extend_from_slice(&ids[from..to]);
                w_ids.push(self.sep);
                let mut type_ids = vec![0; head.len()];
                type_ids.resize(w_ids.len(), 1);
                windows.push(Window {
                    passage,
                    ids: w_ids,
                    type_ids,
                    first: head.len(),
                    offsets: offsets[from..to].to_vec(),
                });
                if to == ids.len() {
                    break;
                }
                from += step;
            }
        }
        Ok(windows)
    }

    /// Start and end logits of each window of one batch.
    fn forward(&self, batch: &[Window]) -> Result<Vec<StartEnd>, RerankError> {
        let lens: Vec<usize> = batch.iter().map(|w| w.ids.len()).collect();
        let ids: Vec<u32> = batch.iter().flat_map(|w| w.ids.iter().copied()).collect();
        let types: Vec<u32> = batch
            .iter()
            .flat_map(|w| w.type_ids.iter().copied())
            .collect();
        let hidden = self.encoder.forward_packed(&ids, &types, &lens)?;
        let logits: Vec<Vec<f32>> = self.head.forward(&hidden)?.to_vec2()?;
        let mut out = Vec::with_capacity(batch.len());
        let mut at = 0;
        for len in lens {
            let rows = &logits[at..at + len];
            out.push((
                rows.iter().map(|r| r[0]).collect(),
                rows.iter().map(|r| r[1]).collect(),
            ));
            at += len;
        }
        Ok(out)
    }
}

impl Reader for CandleReader {
    fn read(
        &self,
        question: &str,
        passages: &[&str],
    ) -> Result<Vec<Option<ReadSpan>>, RerankError> {
        let _span = tracing::trace_span!("read", n = passages.len()).entered();
        let windows = self.windows(question, passages)?;
        let mut best: Vec<Option<ReadSpan>> = vec![None; passages.len()];
        for batch in batches(&windows, self.options.batch_tokens) {
            let logits = self.forward(batch)?;
            for (w, (start, end)) in batch.iter().zip(logits) {
                let null = start[0] + end[0];
                let found = best_span(
                    &start,
                    &end,
                    w.first,
                    w.offsets.len(),
                    self.options.max_answer_tokens,
                );
                // Every window holds at least one passage token, so it has a span.
                let Some((i, j, score)) = found else {
                    continue;
                };
                let range = w.offsets[i].0..w.offsets[j].1;
                match &mut best[w.passage] {
                    Some(s) => {
                        s.null_score = s.null_score.min(null);
                        if score > s.score {
                            (s.range, s.score) = (range, score);
                        }
                    }
                    slot @ None => {
                        *slot = Some(ReadSpan {
                            range,
                            score,
                            null_score: null,
                        })
                    }
                }
            }
        }
        Ok(best)
    }

    fn model_id(&self) -> &str {
        &self.options.model_id
    }
}

/// Consecutive windows under a token budget (at least one window per batch).
fn batches(windows: &[Window], budget: usize) -> Vec<&[Window]> {
    let mut out = Vec::new();
    let (mut from, mut tokens) = (0, 0);
    for (i, w) in windows.iter().enumerate() {
        if i > from && tokens + w.ids.len() > budget {
            out.push(&windows[from..i]);
            (from, tokens) = (i, 0);
        }
        tokens += w.ids.len();
    }
    if from < windows.len() {
        out.push(&windows[from..]);
    }
    out
}

/// The passage-token span `(i, j, start[first + i] + end[first + j])` with the largest score,
/// `i <= j < i + max_tokens`, over the `n` passage tokens that begin at `first`.
fn best_span(
    start: &[f32],
    end: &[f32],
    first: usize,
    n: usize,
    max_tokens: usize,
) -> Option<(usize, usize, f32)> {
    let mut best: Option<(usize, usize, f32)> = None;
    for i in 0..n {
        for j in i..n.min(i + max_tokens.max(1)) {
            let score = start[first + i] + end[first + j];
            if best.is_none_or(|(_, _, b)| score > b) {
                best = Some((i, j, score));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_span_keeps_order_and_length() {
        // Tokens: [CLS] q [SEP] p0 p1 p2 p3 [SEP]; passage tokens begin at 3.
        let start = [9.0, 0.0, 0.0, 0.0, 5.0, 0.0, 1.0, 0.0];
        let end = [9.0, 0.0, 0.0, 4.0, 0.0, 0.0, 3.0, 0.0];
        // The best end (p0) lies before the best start (p1): the span is p1..=p3.
        assert_eq!(best_span(&start, &end, 3, 4, 30), Some((1, 3, 8.0)));
        // Two tokens at most: p1 alone (5 + 0) beats p3 alone (1 + 3); a tie keeps the first.
        assert_eq!(best_span(&start, &end, 3, 4, 2), Some((1, 1, 5.0)));
        assert_eq!(best_span(&start, &end, 3, 0, 30), None);
    }

    #[test]
    fn batches_stay_under_the_budget() {
        let w = |n: usize| Window {
            passage: 0,
            ids: vec![0; n],
            type_ids: vec![0; n],
            first: 0,
            offsets: Vec::new(),
        };
        let windows = vec![w(3), w(3), w(5), w(1)];
        let sizes: Vec<usize> = batches(&windows, 6).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![2, 2]);
        let sizes: Vec<usize> = batches(&windows, 2).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1, 1]);
    }
}
