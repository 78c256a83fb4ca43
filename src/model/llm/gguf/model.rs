//! [`GgufGenerator`]: a quantized GGUF chat model on candle, implementing [`Generator`].
//!
//! Loading reads the GGUF once: the tokenizer comes from its metadata
//! ([`GgufTokenizer`]), the chat template from `tokenizer.chat_template` ([`ChatTemplate`]), and
//! the weights go to the candle model of its `general.architecture` ([`ArchWeights`]).
//!
//! One generation is one *sequence* ([`Sequence`]) with its own KV cache:
//! 1. the messages are templated into ids (control tokens by id, content as plain text);
//! 2. the whole prompt is prefilled in one forward pass;
//! 3. tokens are then sampled one at a time ([`LogitsProcessor`] after
//!    [`apply_repeat_penalty`]) and fed back with the KV cache, until an end-of-turn id, a stop
//!    string, `max_tokens`, a full context, or the caller's `Break`.
//!
//! Weights are shared: candle's `ModelWeights` hold their matrices as `Arc`'d `QMatMul`s, so
//! cloning the loaded (never-run) weights gives a sequence that shares them and starts with an
//! empty KV cache. Candle's qwen2 weights are not `Clone`; qwen2 sequences therefore take turns
//! on one instance behind a mutex and clear its cache first.
//!
//! The `llama` architecture (SmolLM2, the default) runs on [`FastLlama`], ragd's own forward pass
//! with AVX2 kernels on the quantized weights. For the other architectures, on the CPU, the
//! quantized weights of small models are widened to f32 at load ([`dequant`](super::dequant)):
//! several times faster decode and far faster prefill than candle's quantized matmul.
//!
//! Adding an architecture (e.g. a faster llama forward) is one variant in [`ArchWeights`] and
//! [`Sequence`], its arm in [`ArchWeights::load`], [`ArchWeights::new_sequence`] and
//! [`Sequence::forward`]; everything else is architecture-agnostic.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::{DType, Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::{
    quantized_gemma3, quantized_llama, quantized_qwen2, quantized_qwen3,
};
use candle_transformers::utils::apply_repeat_penalty;

use super::dequant::widen_quantized_tensors;
use super::tokenizer::GgufTokenizer;
use crate::model::llm::chat_template::{ChatTemplate, TemplateTokens};
use crate::model::llm::fast_llama::FastLlama;
use crate::model::llm::generator::{
    FinishReason, Generation, GenerationParams, Generator, GeneratorInfo, Message,
};
use crate::model::llm::text_stream::TextStream;
use crate::model::ModelError;

/// The `general.architecture` values ragd can run.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "qwen2", "qwen3", "gemma3"];

/// The loaded weights of one architecture, shared by all sequences; never run directly.
enum ArchWeights {
    Llama(FastLlama),
    Qwen2(Mutex<quantized_qwen2::ModelWeights>),
    Qwen3(quantized_qwen3::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
}

/// One sequence: the weights plus its own KV cache.
enum Sequence<'a> {
    Llama(FastLlama),
    Qwen2(MutexGuard<'a, quantized_qwen2::ModelWeights>),
    Qwen3(quantized_qwen3::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
}

impl ArchWeights {
    fn load<R: Read + Seek>(
        arch: &str,
        content: gguf_file::Content,
        reader: &mut R,
        device: &Device,
        path: &Path,
    ) -> Result<Self, ModelError> {
        Ok(match arch {
            "llama" => Self::Llama(FastLlama::from_gguf(content, reader, device)?),
            "qwen2" => Self::Qwen2(Mutex::new(quantized_qwen2::ModelWeights::from_gguf(
                content, reader, device,
            )?)),
            "qwen3" => Self::Qwen3(quantized_qwen3::ModelWeights::from_gguf(
                content, reader, device,
            )?),
            "gemma3" => Self::Gemma3(quantized_gemma3::ModelWeights::from_gguf(
                content, reader, device,
            )?),
            other => {
                return Err(ModelError::UnsupportedArchitecture {
                    path: path.to_path_buf(),
                    architecture: other.to_string(),
                    supported: SUPPORTED_ARCHITECTURES,
                })
            }
        })
    }

    /// Positions the candle implementation supports, whatever the GGUF claims.
    fn max_positions(&self) -> usize {
        match self {
            Self::Llama(m) if !m.is_fast() => quantized_llama::MAX_SEQ_LEN,
            Self::Llama(_) => usize::MAX,
            Self::Gemma3(_) => quantized_gemma3::MAX_SEQ_LEN,
            Self::Qwen2(_) | Self::Qwen3(_) => usize::MAX,
        }
    }

    /// A sequence with an empty KV cache, sharing these weights.
    fn new_sequence(&self) -> Sequence<'_> {
        match self {
            Self::Llama(w) => Sequence::Llama(w.fresh()),
            Self::Qwen2(w) => {
                // A panic mid-forward leaves only a stale cache, which is cleared right here.
                let mut guard = w.lock().unwrap_or_else(PoisonError::into_inner);
                guard.clear_kv_cache();
                Sequence::Qwen2(guard)
            }
            Self::Qwen3(w) => Sequence::Qwen3(w.clone()),
            Self::Gemma3(w) => Sequence::Gemma3(w.clone()),
        }
    }
}

impl Sequence<'_> {
    /// Runs `tokens` (shape `(1, n)`) at positions `pos..pos + n`; logits of the last token.
    fn forward(&mut self, tokens: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        let logits = match self {
            Self::Llama(m) => m.forward(tokens, pos)?,
            Self::Qwen2(m) => m.forward(tokens, pos)?,
            Self::Qwen3(m) => m.forward(tokens, pos)?,
            Self::Gemma3(m) => m.forward(tokens, pos)?,
        };
        logits.squeeze(0)?.to_dtype(DType::F32)
    }
}

/// A GGUF chat model on candle.
pub struct GgufGenerator {
    info: GeneratorInfo,
    weights: ArchWeights,
    tokenizer: GgufTokenizer,
    template: TemplateTokens,
    /// Ids that end the assistant's turn.
    stop_ids: Vec<u32>,
    device: Device,
}

impl GgufGenerator {
    /// Loads a GGUF file; `model_id` names it in [`GeneratorInfo`].
    pub fn load(path: &Path, device: &Device, model_id: String) -> Result<Self, ModelError> {
        let (mut file, content) = read_gguf(path)?;
        let md = &content.metadata;
        let arch = md_string(md, "general.architecture").unwrap_or_default();
        if !SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(ModelError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture: arch,
                supported: SUPPORTED_ARCHITECTURES,
            });
        }
        let tokenizer = GgufTokenizer::from_metadata(md)?;
        let template = ChatTemplate::detect(md, &tokenizer)?.resolve(&tokenizer)?;
        let declared_context = md
            .get(&format!("{arch}.context_length"))
            .and_then(|v| v.to_u32().ok())
            .map_or(usize::MAX, |n| n as usize);
        let started = Instant::now();
        // FastLlama multiplies the quantized weights directly (faster than widened f32 and a
        // sixth of the memory); the other architectures run on candle, where small models gain
        // from widening.
        let widened = if arch == "llama" {
            None
        } else {
            widen_quantized_tensors(&content, &mut file, device)?
        };
        let weights = match widened {
            Some((wide, mut reader)) => ArchWeights::load(&arch, wide, &mut reader, device, path)?,
            None => ArchWeights::load(&arch, content, &mut file, device, path)?,
        };
        tracing::debug!(?path, %arch, elapsed = ?started.elapsed(), "loaded generator weights");
        Ok(Self {
            info: GeneratorInfo {
                model_id,
                context_length: declared_context.min(weights.max_positions()),
                architecture: arch,
            },
            stop_ids: stop_ids(&tokenizer, &template),
            weights,
            tokenizer,
            template,
            device: device.clone(),
        })
    }

    /// The tokenizer rebuilt from the GGUF.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The prompt ids [`Generator::generate`] feeds the model for `messages`.
    pub fn prompt_ids(&self, messages: &[Message]) -> Result<Vec<u32>, ModelError> {
        self.template.render(&self.tokenizer, messages)
    }

    /// The chat template in use.
    pub fn chat_template(&self) -> &ChatTemplate {
        self.template.template()
    }

    /// Logits after prefilling `ids` in a fresh sequence (tests compare sequences with this).
    pub fn prefill_logits(&self, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
        let mut seq = self.weights.new_sequence();
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        Ok(seq.forward(&input, 0)?.to_vec1()?)
    }
}

/// The outcome of [`GgufGenerator::greedy_ids`]: greedy ids and the time of each phase.
#[derive(Debug, Clone, PartialEq)]
pub struct GreedyRun {
    /// The generated ids (the first comes from the prefill's logits).
    pub ids: Vec<u32>,
    /// The prefill: one forward pass over the whole prompt, logits read back to the host.
    pub prefill: Duration,
    /// The decode steps after the first token, each one forward pass of one token.
    pub decode: Duration,
}

impl GgufGenerator {
    /// Greedy decoding of `n` ids after `prompt` in a fresh sequence, ignoring end-of-turn ids
    /// and every sampling setting: the raw model, for benchmarks (a fixed amount of work whatever
    /// the text) and for comparing devices token by token. Ids past the context are not
    /// generated.
    pub fn greedy_ids(&self, prompt: &[u32], n: usize) -> Result<GreedyRun, ModelError> {
        if prompt.is_empty() {
            return Err(candle_core::Error::Msg(
                "greedy decoding needs a prompt of at least one id".into(),
            )
            .into());
        }
        if prompt.len() >= self.info.context_length {
            return Err(ModelError::PromptTooLong {
                tokens: prompt.len(),
                context: self.info.context_length,
            });
        }
        let n = n.min(self.info.context_length - prompt.len());
        let mut seq = self.weights.new_sequence();
        let started = Instant::now();
        let input = Tensor::new(prompt, &self.device)?.unsqueeze(0)?;
        let mut next = seq.forward(&input, 0)?.argmax(0)?.to_scalar::<u32>()?;
        let prefill = started.elapsed();
        let started = Instant::now();
        let mut ids = Vec::with_capacity(n);
        if n > 0 {
            ids.push(next);
        }
        while ids.len() < n {
            let input = Tensor::new(&[next], &self.device)?.unsqueeze(0)?;
            let pos = prompt.len() + ids.len() - 1;
            next = seq.forward(&input, pos)?.argmax(0)?.to_scalar::<u32>()?;
            ids.push(next);
        }
        Ok(GreedyRun {
            ids,
            prefill,
            decode: started.elapsed(),
        })
    }

    /// Teacher-forced logits: prefills `prompt` in a fresh sequence, then feeds `ids` one at a
    /// time (the decode path). Element `i` holds the logits predicting `ids[i]`, so two devices
    /// can be compared on the same prefix at every step.
    pub fn forced_logits(&self, prompt: &[u32], ids: &[u32]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut seq = self.weights.new_sequence();
        let input = Tensor::new(prompt, &self.device)?.unsqueeze(0)?;
        let mut out = vec![seq.forward(&input, 0)?.to_vec1::<f32>()?];
        for (i, &id) in ids.iter().enumerate().take(ids.len().saturating_sub(1)) {
            let input = Tensor::new(&[id], &self.device)?.unsqueeze(0)?;
            out.push(seq.forward(&input, prompt.len() + i)?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// The GGUF file, buffered: the metadata is read value by value (a Gemma vocabulary is ~800k
/// small reads), which unbuffered costs a system call each.
type GgufReader = std::io::BufReader<fs_err::File>;

/// Opens `path` and reads its GGUF header and metadata.
fn read_gguf(path: &Path) -> Result<(GgufReader, gguf_file::Content), ModelError> {
    let file = fs_err::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut file = std::io::BufReader::with_capacity(1 << 20, file);
    let content = super::read::read_content(&mut file).map_err(|e| ModelError::Invalid {
        path: path.to_path_buf(),
        reason: format!("not a readable GGUF file: {e}"),
    })?;
    Ok((file, content))
}

/// End-of-sequence and end-of-turn ids, plus the family's other terminators if present.
fn stop_ids(tok: &GgufTokenizer, template: &TemplateTokens) -> Vec<u32> {
    let mut ids: Vec<u32> = tok.eos().into_iter().collect();
    ids.push(template.end_of_turn());
    for t in ["<|endoftext|>", "<eos>", "<|eot_id|>"] {
        ids.extend(tok.token_id(t).filter(|&id| tok.is_control(id)));
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn md_string(md: &HashMap<String, Value>, key: &str) -> Option<String> {
    md.get(key).and_then(|v| v.to_string().ok()).cloned()
}

fn sampling(params: &GenerationParams) -> Sampling {
    let temperature = params.temperature;
    let top_p = (params.top_p > 0.0 && params.top_p < 1.0).then_some(params.top_p);
    match (temperature <= 0.0, params.top_k, top_p) {
        (true, _, _) => Sampling::ArgMax,
        (false, 0, None) => Sampling::All { temperature },
        (false, 0, Some(p)) => Sampling::TopP { p, temperature },
        (false, k, None) => Sampling::TopK { k, temperature },
        (false, k, Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
    }
}

/// The state of one generation call.
struct Run<'g, 'cb> {
    generator: &'g GgufGenerator,
    params: &'g GenerationParams,
    on_text: &'cb mut dyn FnMut(&str) -> ControlFlow<()>,
    started: Instant,
    first_text: Option<Duration>,
    text: String,
    tokens: Vec<u32>,
}

impl Run<'_, '_> {
    /// Streams `piece`; `Break` when the caller wants to stop.
    fn emit(&mut self, piece: &str) -> ControlFlow<()> {
        if piece.is_empty() {
            return ControlFlow::Continue(());
        }
        self.first_text
            .get_or_insert_with(|| self.started.elapsed());
        self.text.push_str(piece);
        (self.on_text)(piece)
    }

    fn sample(&self, logits: &Tensor, sampler: &mut LogitsProcessor) -> Result<u32, ModelError> {
        let p = self.params;
        let logits = if p.repeat_penalty == 1.0 || p.repeat_last_n == 0 {
            logits.clone()
        } else {
            let from = self.tokens.len().saturating_sub(p.repeat_last_n);
            apply_repeat_penalty(logits, p.repeat_penalty, &self.tokens[from..])?
        };
        Ok(sampler.sample(&logits)?)
    }

    /// Samples, streams and feeds back tokens until one of the finish conditions.
    fn decode(
        &mut self,
        seq: &mut Sequence<'_>,
        mut logits: Tensor,
    ) -> Result<FinishReason, ModelError> {
        let g = self.generator;
        let mut sampler = LogitsProcessor::from_sampling(self.params.seed, sampling(self.params));
        let mut stream = TextStream::new(&g.tokenizer, &self.params.stop);
        let mut generated = 0;
        let mut copy =
            (!self.params.copy_from.is_empty()).then(|| Copying::new(&self.params.copy_from));
        let finish = loop {
            let next = match &copy {
                Some(c) => match c.next(g, &logits.to_vec1::<f32>()?) {
                    Some(id) => id,
                    None => break FinishReason::Eos,
                },
                None => self.sample(&logits, &mut sampler)?,
            };
            if g.stop_ids.contains(&next) {
                break FinishReason::Eos;
            }
            if let Some(c) = &mut copy {
                c.copied.extend_from_slice(g.tokenizer.token_bytes(next));
            }
            generated += 1;
            self.tokens.push(next);
            let pushed = stream.push(next);
            if self.emit(&pushed.text).is_break() {
                return Ok(FinishReason::Cancelled);
            }
            if pushed.stopped {
                return Ok(FinishReason::Stop);
            }
            if generated >= self.params.max_tokens {
                break FinishReason::Length;
            }
            if self.tokens.len() >= g.info.context_length {
                break FinishReason::ContextFull;
            }
            let input = Tensor::new(&[next], &g.device)?.unsqueeze(0)?;
            logits = seq.forward(&input, self.tokens.len() - 1)?;
        };
        let tail = stream.finish();
        if self.emit(&tail).is_break() {
            return Ok(FinishReason::Cancelled);
        }
        Ok(finish)
    }
}

/// Candidates (most likely first) that copy decoding tries at each step.
const COPY_CANDIDATES: usize = 64;

/// Once a copy has begun it ends where its best continuation is this much less likely (in
/// natural log) than the model's first choice: the model wants to say something the texts
/// do not hold, so the copy is over.
const COPY_MARGIN: f32 = 3.0;

/// The state of a reply that copies from texts ([`GenerationParams::copy_from`]).
struct Copying<'a> {
    sources: &'a [String],
    /// The reply's bytes so far.
    copied: Vec<u8>,
}

impl<'a> Copying<'a> {
    fn new(sources: &'a [String]) -> Self {
        Self {
            sources,
            copied: Vec::new(),
        }
    }

    /// The most likely of the [`COPY_CANDIDATES`] tokens that continues the copy, or an
    /// end-of-turn id once something is copied; `None` when no candidate does either, or none
    /// within [`COPY_MARGIN`] of the first choice once the copy has begun.
    fn next(&self, g: &GgufGenerator, logits: &[f32]) -> Option<u32> {
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let n = COPY_CANDIDATES.min(order.len());
        if n == 0 {
            return None;
        }
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        order.select_nth_unstable_by(n - 1, by_logit);
        order.truncate(n);
        order.sort_unstable_by(by_logit);
        let started = !self.copied.trim_ascii().is_empty();
        let top = logits[order[0] as usize];
        let mut candidate = Vec::with_capacity(self.copied.len() + 32);
        for id in order {
            if started && logits[id as usize] < top - COPY_MARGIN {
                return None;
            }
            if g.stop_ids.contains(&id) {
                if started {
                    return Some(id);
                }
                continue;
            }
            let piece = g.tokenizer.token_bytes(id);
            if piece.is_empty() {
                continue;
            }
            candidate.clear();
            candidate.extend_from_slice(&self.copied);
            candidate.extend_from_slice(piece);
            let wanted = candidate.trim_ascii_start();
            let copies = |s: &String| memchr::memmem::find(s.as_bytes(), wanted).is_some();
            if !wanted.is_empty() && self.sources.iter().any(copies) {
                return Some(id);
            }
        }
        None
    }
}

impl Generator for GgufGenerator {
    fn info(&self) -> &GeneratorInfo {
        &self.info
    }

    fn prompt_tokens(&self, messages: &[Message]) -> Result<usize, ModelError> {
        Ok(self.prompt_ids(messages)?.len())
    }

    fn count_tokens(&self, text: &str) -> Result<usize, ModelError> {
        Ok(self.tokenizer.encode_plain(text)?.len())
    }

    fn generate(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, ModelError> {
        let started = Instant::now();
        let prompt = self.prompt_ids(messages)?;
        let context = self.info.context_length;
        if prompt.len() >= context {
            return Err(ModelError::PromptTooLong {
                tokens: prompt.len(),
                context,
            });
        }
        let prompt_tokens = prompt.len();
        let mut run = Run {
            generator: self,
            params,
            on_text,
            started,
            first_text: None,
            text: String::new(),
            tokens: prompt,
        };
        if params.max_tokens == 0 {
            return Ok(finished(
                run,
                FinishReason::Length,
                prompt_tokens,
                Duration::ZERO,
                Duration::ZERO,
            ));
        }
        let prefill = Instant::now();
        let mut seq = self.weights.new_sequence();
        let input = Tensor::new(run.tokens.as_slice(), &self.device)?.unsqueeze(0)?;
        let logits = seq.forward(&input, 0)?;
        let prompt_time = prefill.elapsed();
        let decode = Instant::now();
        let finish = run.decode(&mut seq, logits)?;
        let decode_time = decode.elapsed();
        Ok(finished(
            run,
            finish,
            prompt_tokens,
            prompt_time,
            decode_time,
        ))
    }
}

fn finished(
    run: Run<'_, '_>,
    finish: FinishReason,
    prompt_tokens: usize,
    prompt_time: Duration,
    decode_time: Duration,
) -> Generation {
    let completion_tokens = run.tokens.len() - prompt_tokens;
    Generation {
        time_to_first_token: run.first_text.unwrap_or_else(|| run.started.elapsed()),
        text: run.text,
        finish,
        prompt_tokens,
        completion_tokens,
        prompt_time,
        decode_time,
    }
}
