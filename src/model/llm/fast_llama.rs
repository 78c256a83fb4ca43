//! A CPU implementation of the GGUF `llama` architecture (SmolLM2, Llama, Mistral ...) that is a
//! drop-in for candle's `quantized_llama::ModelWeights`: same loader input, same `forward`
//! contract, same numbers up to the 8-bit quantization of activations.
//!
//! Why: candle 0.11 runs a `Q4_1` matmul with its scalar `vec_dot` on one output row at a time,
//! and builds each layer from ~15 tensor ops, each allocating; on a 2-core machine that decodes
//! SmolLM2-135M at ~18 tok/s where llama.cpp does ~80. This model keeps candle for loading (and
//! for any weight format without a kernel here) and runs the forward pass on plain `f32` buffers:
//! - the matmuls are [`qkernels`](crate::model::cpu::qkernels) (llama.cpp's scheme: activations quantized to 8 bits
//!   per 32-block, integer dot products in AVX2), with Q, K, V stacked into one weight and gate
//!   and up into another, so each input is quantized once;
//! - RMSNorm, rotary embedding, attention over an f16 KV cache, SiLU and the residual adds are
//!   loops over rows, compiled for AVX2 when the CPU has it, parallel over tokens (a prompt) or
//!   heads (one token) with rayon;
//! - the whole pass runs inside the rayon pool, so each parallel step is a fork-join on warm
//!   workers rather than a cross-thread hand-off.
//!
//! The maths is Touvron et al. 2023 (LLaMA) as written in candle's quantized_llama.rs: pre-norm
//! blocks `x += Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))`, `x += W2·(silu(W1·n(x)) ⊙ W3·n(x))`
//! with `n` = RMSNorm (`x / √(mean x² + ε) · g`), grouped-query attention, and the GGUF
//! "normal" (interleaved-pair) rotary embedding with angle `pos · base^(-2i/d)`.
//!
//! On any device other than the CPU, and for layouts this file does not implement (mixture of
//! experts, partial rotary dimensions), [`FastLlama`] wraps candle's `ModelWeights` unchanged.

use std::io::{Read, Seek};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use rayon::prelude::*;

use crate::model::cpu::kernels::{dispatch, fast_exp, softmax_in_place};
use crate::model::cpu::qkernels::{self, QActs, QKind, QWeight};

/// A quantized llama-architecture language model (see the module docs).
///
/// Clones share the weights and copy the KV cache: each clone continues its own sequence.
#[derive(Debug, Clone)]
pub struct FastLlama {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    /// The fast path.
    Cpu(Box<CpuLlama>),
    /// candle's model, for other devices and unsupported layouts.
    Candle(Box<ModelWeights>),
}

impl FastLlama {
    /// Loads the model from a parsed GGUF `ct` whose tensor data `r` holds.
    pub fn from_gguf<R: Read + Seek>(
        ct: gguf_file::Content,
        r: &mut R,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let inner = match Hparams::read(&ct)? {
            Some(hp) if device.is_cpu() => Inner::Cpu(Box::new(CpuLlama::load(hp, &ct, r)?)),
            _ => Inner::Candle(Box::new(ModelWeights::from_gguf(ct, r, device)?)),
        };
        Ok(Self { inner })
    }

    /// Same contract as candle's `quantized_llama::ModelWeights::forward`: `x` is a `(1, seq_len)`
    /// u32 tensor of token ids at positions `index_pos..index_pos + seq_len`; returns the
    /// `(1, vocab)` logits of the last position, and the KV cache advances by `seq_len`.
    /// `index_pos == 0` starts a new sequence; a smaller `index_pos` than the cache length
    /// rewinds to it.
    pub fn forward(&mut self, x: &Tensor, index_pos: usize) -> candle_core::Result<Tensor> {
        match &mut self.inner {
            Inner::Cpu(m) => m.forward(x, index_pos),
            Inner::Candle(m) => m.forward(x, index_pos),
        }
    }

    /// A copy that shares the weights and has an empty KV cache.
    pub fn fresh(&self) -> Self {
        let mut copy = match &self.inner {
            Inner::Cpu(m) => Self {
                inner: Inner::Cpu(Box::new(m.fresh())),
            },
            Inner::Candle(_) => self.clone(),
        };
        copy.clear_kv_cache();
        copy
    }

    /// Forgets the cached sequence.
    pub fn clear_kv_cache(&mut self) {
        match &mut self.inner {
            Inner::Cpu(m) => m.cache.iter_mut().for_each(LayerCache::clear),
            Inner::Candle(m) => m.clear_kv_cache(),
        }
    }

    /// True when the fast CPU path runs (false: candle's model does).
    pub fn is_fast(&self) -> bool {
        matches!(self.inner, Inner::Cpu(_))
    }
}

/// The hyper-parameters the fast path needs, from the GGUF metadata.
#[derive(Debug, Clone, Copy)]
struct Hparams {
    n_layer: usize,
    n_embd: usize,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    eps: f32,
    rope_base: f32,
}

impl Hparams {
    /// `None` when the model needs something only candle's implementation has.
    fn read(ct: &gguf_file::Content) -> candle_core::Result<Option<Self>> {
        let get = |k: &str| match ct.metadata.get(k) {
            Some(v) => Ok(v),
            None => candle_core::bail!("cannot find {k} in metadata"),
        };
        let u = |k: &str| -> candle_core::Result<usize> { Ok(get(k)?.to_u32()? as usize) };
        let experts = u("llama.expert_count").unwrap_or(0);
        let n_embd = u("llama.embedding_length")?;
        let n_head = u("llama.attention.head_count")?;
        let n_kv_head = u("llama.attention.head_count_kv")?;
        let rope_dim = u("llama.rope.dimension_count")?;
        let hp = Self {
            n_layer: u("llama.block_count")?,
            n_embd,
            n_head,
            n_kv_head,
            head_dim: n_embd / n_head.max(1),
            eps: get("llama.attention.layer_norm_rms_epsilon")?.to_f32()?,
            rope_base: get("llama.rope.freq_base")
                .and_then(|v| v.to_f32())
                .unwrap_or(10_000.0),
        };
        let supported = experts <= 1
            && n_kv_head > 0
            && n_head % n_kv_head == 0
            && n_embd % n_head == 0
            && rope_dim == hp.head_dim
            && hp.head_dim.is_multiple_of(2);
        Ok(supported.then_some(hp))
    }

    fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }
}

/// A projection `y = x·Wᵀ` whose weight is a stack of row blocks (Q, K and V; gate and up).
/// Consecutive blocks with the same fast format are merged into one kernel weight; blocks in
/// other formats run through candle's `QMatMul`.
#[derive(Debug, Clone)]
struct Linear {
    parts: Vec<Part>,
    rows: usize,
}

#[derive(Debug, Clone)]
enum Part {
    Fast(Arc<QWeight>),
    Candle(QMatMul, usize),
}

impl Part {
    fn rows(&self) -> usize {
        match self {
            Self::Fast(w) => w.rows(),
            Self::Candle(_, rows) => *rows,
        }
    }
}

impl Linear {
    /// Stacks the row blocks `blocks` into one projection.
    fn new(blocks: Vec<Arc<QTensor>>) -> candle_core::Result<Self> {
        let mut parts: Vec<Part> = Vec::with_capacity(blocks.len());
        for t in blocks {
            let part = match fast_weight(&t)? {
                Some(w) => match parts.last() {
                    Some(Part::Fast(prev)) if prev.kind() == w.kind() && prev.k() == w.k() => {
                        let merged =
                            QWeight::stack(&[prev, &w]).map_err(candle_core::Error::wrap)?;
                        parts.pop();
                        Part::Fast(Arc::new(merged))
                    }
                    _ => Part::Fast(Arc::new(w)),
                },
                None => {
                    let rows = t.shape().dims2()?.0;
                    Part::Candle(QMatMul::from_arc(t)?, rows)
                }
            };
            parts.push(part);
        }
        Ok(Self::from_parts(parts))
    }

    fn from_parts(parts: Vec<Part>) -> Self {
        let rows = parts.iter().map(Part::rows).sum();
        Self { parts, rows }
    }

    fn rows(&self) -> usize {
        self.rows
    }

    /// `out = x · Wᵀ` for `x` of `tokens × k`; `out` becomes `tokens × rows`.
    fn forward(
        &self,
        x: &[f32],
        k: usize,
        acts: &mut QActs,
        out: &mut Vec<f32>,
    ) -> candle_core::Result<()> {
        let tokens = x.len() / k;
        out.clear();
        out.resize(tokens * self.rows, 0.0);
        if self.parts.iter().any(|p| matches!(p, Part::Fast(_))) {
            acts.quantize(x, k).map_err(candle_core::Error::wrap)?;
        }
        if let [Part::Fast(w)] = self.parts.as_slice() {
            qkernels::matmul(w, acts, out);
            return Ok(());
        }
        let mut col = 0;
        for part in &self.parts {
            let r = part.rows();
            let y = match part {
                Part::Fast(w) => {
                    let mut y = vec![0.0; tokens * r];
                    qkernels::matmul(w, acts, &mut y);
                    y
                }
                Part::Candle(m, _) => {
                    let xt = Tensor::from_slice(x, (tokens, k), &Device::Cpu)?;
                    m.forward(&xt)?.flatten_all()?.to_vec1::<f32>()?
                }
            };
            for (dst, src) in out.chunks_mut(self.rows).zip(y.chunks(r)) {
                dst[col..col + r].copy_from_slice(src);
            }
            col += r;
        }
        Ok(())
    }
}

/// The tensor as a fast-kernel weight, when its format has one.
fn fast_weight(t: &QTensor) -> candle_core::Result<Option<QWeight>> {
    let kind = match t.dtype() {
        GgmlDType::Q4_1 => QKind::Q4_1,
        GgmlDType::Q8_0 => QKind::Q8_0,
        GgmlDType::F32
        | GgmlDType::F16
        | GgmlDType::BF16
        | GgmlDType::Q4_0
        | GgmlDType::Q5_0
        | GgmlDType::Q5_1
        | GgmlDType::Q8_1
        | GgmlDType::Q2K
        | GgmlDType::Q3K
        | GgmlDType::Q4K
        | GgmlDType::Q5K
        | GgmlDType::Q6K
        | GgmlDType::Q8K => return Ok(None),
    };
    let (rows, k) = t.shape().dims2()?;
    let data = t.data()?;
    QWeight::from_gguf_bytes(kind, &data, rows, k)
        .map(Some)
        .map_err(candle_core::Error::wrap)
}

/// The token embedding table.
#[derive(Debug)]
enum Embeddings {
    /// Quantized rows, dequantized on lookup (shared with a tied output head).
    Quant(Arc<QWeight>),
    /// Dense `vocab × n_embd` rows.
    Dense(Vec<f32>),
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    qkv: Linear,
    wo: Linear,
    ffn_norm: Vec<f32>,
    gate_up: Linear,
    down: Linear,
}

#[derive(Debug)]
struct Weights {
    hp: Hparams,
    n_ff: usize,
    vocab: usize,
    embed: Embeddings,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    output: Linear,
    /// `base^(-2i/d)` for each rotary pair `i`.
    inv_freq: Vec<f32>,
}

/// Cached keys and values of one layer, `positions × kv_dim` each, as f16 bits (as llama.cpp
/// keeps them: half the memory traffic of f32 when decoding at a long context).
#[derive(Debug, Clone, Default)]
struct LayerCache {
    k: Vec<u16>,
    v: Vec<u16>,
}

impl LayerCache {
    fn clear(&mut self) {
        self.k.clear();
        self.v.clear();
    }
}

/// Buffers reused across calls (contents are scratch).
#[derive(Debug, Clone, Default)]
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    proj: Vec<f32>,
    gu: Vec<f32>,
    act: Vec<f32>,
    acts: QActs,
}

#[derive(Debug, Clone)]
struct CpuLlama {
    w: Arc<Weights>,
    cache: Vec<LayerCache>,
    scratch: Scratch,
}

fn read_f32(
    ct: &gguf_file::Content,
    r: &mut (impl Read + Seek),
    name: &str,
) -> candle_core::Result<Vec<f32>> {
    ct.tensor(r, name, &Device::Cpu)?
        .dequantize(&Device::Cpu)?
        .flatten_all()?
        .to_vec1()
}

fn read_q(
    ct: &gguf_file::Content,
    r: &mut (impl Read + Seek),
    name: &str,
) -> candle_core::Result<Arc<QTensor>> {
    Ok(Arc::new(ct.tensor(r, name, &Device::Cpu)?))
}

impl CpuLlama {
    fn load(
        hp: Hparams,
        ct: &gguf_file::Content,
        r: &mut (impl Read + Seek),
    ) -> candle_core::Result<Self> {
        let tok = read_q(ct, r, "token_embd.weight")?;
        let (vocab, n_embd) = tok.shape().dims2()?;
        if n_embd != hp.n_embd {
            candle_core::bail!("token_embd has width {n_embd}, metadata says {}", hp.n_embd);
        }
        let tok_fast = fast_weight(&tok)?.map(Arc::new);
        let embed = match &tok_fast {
            Some(w) => Embeddings::Quant(w.clone()),
            None => Embeddings::Dense(tok.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?),
        };
        let output = if ct.tensor_infos.contains_key("output.weight") {
            Linear::new(vec![read_q(ct, r, "output.weight")?])?
        } else if let Some(w) = tok_fast {
            Linear::from_parts(vec![Part::Fast(w)])
        } else {
            Linear::new(vec![tok])?
        };
        let layers = (0..hp.n_layer)
            .map(|i| Self::load_layer(ct, r, i))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let n_ff = layers.first().map_or(0, |l| l.down_k());
        let inv_freq = (0..hp.head_dim)
            .step_by(2)
            .map(|i| 1.0 / hp.rope_base.powf(i as f32 / hp.head_dim as f32))
            .collect();
        let w = Weights {
            hp,
            n_ff,
            vocab,
            embed,
            layers,
            norm: read_f32(ct, r, "output_norm.weight")?,
            output,
            inv_freq,
        };
        if w.output.rows() != vocab {
            candle_core::bail!("output has {} rows, vocabulary {vocab}", w.output.rows());
        }
        Ok(Self {
            cache: vec![LayerCache::default(); hp.n_layer],
            w: Arc::new(w),
            scratch: Scratch::default(),
        })
    }

    fn load_layer(
        ct: &gguf_file::Content,
        r: &mut (impl Read + Seek),
        i: usize,
    ) -> candle_core::Result<Layer> {
        let mut q = |name: &str| read_q(ct, r, &format!("blk.{i}.{name}.weight"));
        let qkv = Linear::new(vec![q("attn_q")?, q("attn_k")?, q("attn_v")?])?;
        let wo = Linear::new(vec![q("attn_output")?])?;
        let gate_up = Linear::new(vec![q("ffn_gate")?, q("ffn_up")?])?;
        let down = Linear::new(vec![q("ffn_down")?])?;
        Ok(Layer {
            attn_norm: read_f32(ct, r, &format!("blk.{i}.attn_norm.weight"))?,
            qkv,
            wo,
            ffn_norm: read_f32(ct, r, &format!("blk.{i}.ffn_norm.weight"))?,
            gate_up,
            down,
        })
    }

    fn fresh(&self) -> Self {
        Self {
            w: self.w.clone(),
            cache: vec![LayerCache::default(); self.cache.len()],
            scratch: Scratch::default(),
        }
    }

    fn cache_len(&self) -> usize {
        self.cache
            .first()
            .map_or(0, |c| c.k.len() / self.w.hp.kv_dim())
    }

    fn forward(&mut self, x: &Tensor, index_pos: usize) -> candle_core::Result<Tensor> {
        let ids = x.to_device(&Device::Cpu)?.squeeze(0)?.to_vec1::<u32>()?;
        if ids.is_empty() {
            candle_core::bail!("forward: empty input");
        }
        let len = self.cache_len();
        if index_pos > len {
            candle_core::bail!("forward: index_pos {index_pos} is past the cached {len} positions");
        }
        let kv_dim = self.w.hp.kv_dim();
        for c in &mut self.cache {
            c.k.truncate(index_pos * kv_dim);
            c.v.truncate(index_pos * kv_dim);
        }
        // The pass forks and joins ~5 times per layer: run it on a pool thread so those are
        // cheap steals instead of hand-offs from an outside thread.
        let logits = rayon::scope(|_| self.run(&ids, index_pos))?;
        let vocab = logits.len();
        Tensor::from_vec(logits, (1, vocab), x.device())
    }

    /// The forward pass over `ids` at positions `pos0..`; returns the last position's logits.
    fn run(&mut self, ids: &[u32], pos0: usize) -> candle_core::Result<Vec<f32>> {
        let w = Arc::clone(&self.w);
        let e = w.hp.n_embd;
        let s = &mut self.scratch;
        embed(&w, ids, &mut s.x)?;
        let rope = RopeTable::new(&w.inv_freq, pos0, ids.len());
        for (layer, cache) in w.layers.iter().zip(&mut self.cache) {
            rms_norm(&s.x, &layer.attn_norm, w.hp.eps, e, &mut s.h);
            layer.qkv.forward(&s.h, e, &mut s.acts, &mut s.qkv)?;
            rope.apply(&mut s.qkv, &w.hp);
            cache.append(&s.qkv, &w.hp);
            attention(&s.qkv, cache, &w.hp, pos0, &mut s.att);
            layer.wo.forward(&s.att, e, &mut s.acts, &mut s.proj)?;
            add_in_place(&mut s.x, &s.proj);
            rms_norm(&s.x, &layer.ffn_norm, w.hp.eps, e, &mut s.h);
            layer.gate_up.forward(&s.h, e, &mut s.acts, &mut s.gu)?;
            swiglu(&s.gu, w.n_ff, &mut s.act);
            layer
                .down
                .forward(&s.act, w.n_ff, &mut s.acts, &mut s.proj)?;
            add_in_place(&mut s.x, &s.proj);
        }
        let last = &s.x[s.x.len() - e..];
        rms_norm(last, &w.norm, w.hp.eps, e, &mut s.h);
        let mut logits = Vec::with_capacity(w.vocab);
        w.output.forward(&s.h, e, &mut s.acts, &mut logits)?;
        Ok(logits)
    }
}

impl Layer {
    /// Inputs of the down projection: the feed-forward width.
    fn down_k(&self) -> usize {
        self.gate_up.rows() / 2
    }
}

impl LayerCache {
    /// Appends the K and V columns of each token row of the fused `qkv` projection.
    fn append(&mut self, qkv: &[f32], hp: &Hparams) {
        let (q_dim, kv_dim) = (hp.n_embd, hp.kv_dim());
        let bits = |x: &f32| half::f16::from_f32(*x).to_bits();
        for row in qkv.chunks_exact(q_dim + 2 * kv_dim) {
            self.k.extend(row[q_dim..q_dim + kv_dim].iter().map(bits));
            self.v.extend(row[q_dim + kv_dim..].iter().map(bits));
        }
    }
}

/// Embedding rows of `ids` into `x` (`ids.len() × n_embd`).
fn embed(w: &Weights, ids: &[u32], x: &mut Vec<f32>) -> candle_core::Result<()> {
    let e = w.hp.n_embd;
    x.clear();
    x.resize(ids.len() * e, 0.0);
    for (&id, row) in ids.iter().zip(x.chunks_exact_mut(e)) {
        let id = id as usize;
        if id >= w.vocab {
            candle_core::bail!("token id {id} is outside the vocabulary of {}", w.vocab);
        }
        match &w.embed {
            Embeddings::Quant(q) => q.dequantize_row(id, row),
            Embeddings::Dense(d) => row.copy_from_slice(&d[id * e..(id + 1) * e]),
        }
    }
    Ok(())
}

/// `out = x / √(mean x² + ε) ⊙ g`, row by row (rows of `width`).
fn rms_norm(x: &[f32], g: &[f32], eps: f32, width: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(x.len(), 0.0);
    out.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .with_min_len(8)
        .for_each(|(o, x)| rms_norm_row(x, g, eps, o));
}

fn rms_norm_row(x: &[f32], g: &[f32], eps: f32, out: &mut [f32]) {
    dispatch!(x: &[f32], g: &[f32], eps: f32, out: &mut [f32] => {
        let sum_sq = dot(x, x);
        let scale = 1.0 / (sum_sq / x.len() as f32 + eps).sqrt();
        for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
            *o = v * scale * g;
        }
    });
}

/// Σ a·b with eight independent lanes (vectorisable).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// `act = silu(gate) ⊙ up` for rows `[gate | up]` of `2·n_ff`.
fn swiglu(gu: &[f32], n_ff: usize, act: &mut Vec<f32>) {
    act.clear();
    act.resize(gu.len() / 2, 0.0);
    act.par_chunks_mut(n_ff)
        .zip(gu.par_chunks(2 * n_ff))
        .with_min_len(8)
        .for_each(|(a, gu)| swiglu_row(gu, a));
}

fn swiglu_row(gu: &[f32], act: &mut [f32]) {
    dispatch!(gu: &[f32], act: &mut [f32] => {
        let (gate, up) = gu.split_at(act.len());
        for ((a, &g), &u) in act.iter_mut().zip(gate).zip(up) {
            *a = g / (1.0 + fast_exp(-g)) * u;
        }
    });
}

/// cos/sin of every rotary angle for positions `pos0..pos0 + n`.
struct RopeTable {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl RopeTable {
    fn new(inv_freq: &[f32], pos0: usize, n: usize) -> Self {
        let angles = (pos0..pos0 + n).flat_map(|p| inv_freq.iter().map(move |f| p as f32 * f));
        let (cos, sin) = angles.map(|a| (a.cos(), a.sin())).unzip();
        Self {
            cos,
            sin,
            half: inv_freq.len(),
        }
    }

    /// Rotates the Q and K heads of each token row of the fused `qkv`, pairs `(2i, 2i+1)`.
    fn apply(&self, qkv: &mut [f32], hp: &Hparams) {
        let width = hp.n_embd + 2 * hp.kv_dim();
        let rotated = hp.n_embd + hp.kv_dim();
        for (t, row) in qkv.chunks_exact_mut(width).enumerate() {
            let cos = &self.cos[t * self.half..][..self.half];
            let sin = &self.sin[t * self.half..][..self.half];
            for head in row[..rotated].chunks_exact_mut(hp.head_dim) {
                for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                    let (x0, x1) = (pair[0], pair[1]);
                    pair[0] = x0 * cos[i] - x1 * sin[i];
                    pair[1] = x0 * sin[i] + x1 * cos[i];
                }
            }
        }
    }
}

/// Causal grouped-query attention of the query rows of `qkv` (positions `pos0..`) over the cache
/// (which already holds them); `out` becomes `tokens × n_embd`.
fn attention(qkv: &[f32], cache: &LayerCache, hp: &Hparams, pos0: usize, out: &mut Vec<f32>) {
    let width = hp.n_embd + 2 * hp.kv_dim();
    let tokens = qkv.len() / width;
    out.clear();
    out.resize(tokens * hp.n_embd, 0.0);
    out.par_chunks_mut(hp.head_dim)
        .enumerate()
        .for_each(|(i, o)| {
            let (t, h) = (i / hp.n_head, i % hp.n_head);
            let q = &qkv[t * width + h * hp.head_dim..][..hp.head_dim];
            let kv_head = h / (hp.n_head / hp.n_kv_head);
            attend(q, cache, hp, kv_head, pos0 + t + 1, o);
        });
}

/// One query head against cached positions `0..n_pos` of `kv_head`.
fn attend(
    q: &[f32],
    cache: &LayerCache,
    hp: &Hparams,
    kv_head: usize,
    n_pos: usize,
    out: &mut [f32],
) {
    let kv_dim = hp.kv_dim();
    let off = kv_head * hp.head_dim;
    let scale = 1.0 / (hp.head_dim as f32).sqrt();
    let mut scores = vec![0f32; n_pos];
    qkernels::qk_scores_f16(q, &cache.k[off..], kv_dim, scale, &mut scores);
    softmax_in_place(&mut scores);
    qkernels::weighted_sum_f16(&scores, &cache.v[off..], kv_dim, out);
}

#[cfg(test)]
mod tests;
