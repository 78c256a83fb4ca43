//! A BERT encoder on candle, shared by the embedder and the cross-encoder reranker.
//!
//! Inputs are *packed*: the tokens of several sequences are concatenated into one `[N, hidden]`
//! matrix and a list of sequence lengths says where each sequence starts. The dense layers (about
//! 90% of the work) then run as single large matrix products over real tokens only, with no
//! padding, and attention runs per sequence (it only ever mixes tokens within one sequence), in
//! parallel across sequences. This is the "varlen" layout of flash-attention and of TEI's CUDA
//! backend, applied on the CPU; it removes both the padding waste and the attention mask.
//!
//! The math is exactly BERT's (Devlin et al., 2019): post-LayerNorm residual blocks, scaled
//! dot-product attention, exact (erf) GELU. Weights are read from Hugging Face checkpoints with
//! bare (`embeddings.*`) or prefixed (`bert.embeddings.*`) tensor names; the query, key and value
//! projections are fused into one matrix at load time.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

use crate::model::cpu::igemm::{self, I8Weight};
use crate::model::cpu::kernels::{BiasGelu, PackedAttention};
use crate::model::cpu::qkernels::{self, QActs, QWeight};

/// The arithmetic of the encoder's dense layers.
///
/// Two 8-bit kernels exist. Where the CPU has AVX-512 VNNI, [`igemm`](crate::model::cpu::igemm) (a blocked int8
/// GEMM, four times the multiply-adds per instruction of f32) takes every pass: 1.8x faster
/// than f32 in bulk and 2.6x for a single query (BENCHMARKS.md). Elsewhere the generator's
/// `Q8_0` kernels on AVX2 ([`qkernels`](crate::model::cpu::qkernels)) serve short passes (at most
/// [`AUTO_Q8_MAX_TOKENS`] tokens: a search's query, bound by streaming the weights), where they
/// beat f32, but lose to f32 on many tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f32 weights and activations: the checkpoint's own numbers (fixture parity).
    F32,
    /// 8-bit weights and activations for every pass: the VNNI int8 GEMM, or the `Q8_0` kernels
    /// where the CPU lacks VNNI.
    Q8,
    /// 8-bit where it is faster than f32 on this CPU: every pass with VNNI; without it, short
    /// passes on the `Q8_0` kernels and bulk passes in f32. On SciFact the 8-bit vectors score
    /// the same nDCG@10 as f32 on the train split (BENCHMARKS.md).
    #[default]
    Auto,
}

/// Largest forward pass (tokens of all inputs together) that [`Precision::Auto`] runs on the
/// `Q8_0` kernels on a CPU without VNNI.
pub const AUTO_Q8_MAX_TOKENS: usize = 64;

/// The fields of a Hugging Face BERT `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer; only `gelu` (erf) and `gelu_new`/`gelu_pytorch_tanh`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Longest sequence the position embeddings cover.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Number of labels of a sequence-classification head (cross-encoders: 1).
    #[serde(default)]
    pub num_labels: Option<usize>,
    /// `id2label`, used to infer `num_labels` when it is absent.
    #[serde(default)]
    pub id2label: Option<std::collections::BTreeMap<String, String>>,
}

fn default_act() -> String {
    "gelu".to_string()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

/// Which GELU the checkpoint was trained with.
#[derive(Debug, Clone, Copy)]
enum Activation {
    GeluErf,
    GeluTanh,
}

/// A dense layer whose weight is stored transposed (`[in, out]`, contiguous). candle's `Linear`
/// multiplies by a strided view of the `[out, in]` weight, which its CPU matmul runs about 1.5x
/// slower than a contiguous right-hand side (measured on this model's shapes).
///
/// With [`Precision::Q8`] the layer also keeps an 8-bit copy (llama.cpp's `Q8_0`) and, on the
/// CPU, multiplies with the int8 kernels of [`qkernels`](crate::model::cpu::qkernels) (activations quantized per
/// 32-value block on the fly): a quarter of the weight bytes to stream, and four times the
/// multiply-adds per instruction of f32.
struct Dense {
    weight_t: Tensor,
    bias: Option<Tensor>,
    q8: Option<QWeight>,
    /// Largest token count multiplied with `q8`; more tokens use `i8` or the f32 weight.
    q8_max_tokens: usize,
    /// The weight for [`igemm`]'s VNNI kernel, used for passes above `q8_max_tokens` (every
    /// pass when `q8` is unset).
    i8: Option<I8Weight>,
    /// `bias` on the host, for the int8 kernel's epilogue.
    bias_host: Option<Vec<f32>>,
}

impl Dense {
    fn new(linear: &Linear) -> candle_core::Result<Self> {
        Ok(Self {
            weight_t: linear.weight().t()?.contiguous()?,
            bias: linear.bias().cloned(),
            q8: None,
            q8_max_tokens: 0,
            i8: None,
            bias_host: linear.bias().map(Tensor::to_vec1).transpose()?,
        })
    }

    /// Adds (or drops) the per-channel int8 copy of the weight for [`igemm`]'s VNNI kernel.
    /// Kept only where the CPU has VNNI and the weight lives on the CPU.
    fn set_int8(&mut self, on: bool) -> candle_core::Result<()> {
        self.i8 = None;
        if on && igemm::available() && self.weight_t.device().is_cpu() {
            let (k, n) = self.weight_t.dims2()?;
            let w: Vec<f32> = self.weight_t.t()?.contiguous()?.flatten_all()?.to_vec1()?;
            self.i8 = Some(I8Weight::quantize(&w, n, k));
        }
        Ok(())
    }

    /// `x · W + b` on the int8 kernel, when this pass goes there.
    fn int8_forward(
        &self,
        x: &Tensor,
        bias: Option<&[f32]>,
    ) -> candle_core::Result<Option<Tensor>> {
        match &self.i8 {
            Some(w) if x.device().is_cpu() && x.dim(0)? > self.q8_max_tokens => {
                let n = x.dim(0)?;
                let input = x.flatten_all()?.to_vec1::<f32>()?;
                let mut out = vec![0f32; n * w.n()];
                igemm::matmul(w, &input, bias, &mut out);
                Ok(Some(Tensor::from_vec(out, (n, w.n()), x.device())?))
            }
            _ => Ok(None),
        }
    }

    /// Adds the 8-bit copy of the weight, used for up to `max_tokens` tokens. A layer whose input
    /// width is not a multiple of the 32-value block (no BERT size in use, but a user's
    /// checkpoint may be odd) stays f32.
    fn quantize(&mut self, max_tokens: usize) -> candle_core::Result<()> {
        let (k, rows) = self.weight_t.dims2()?;
        if !k.is_multiple_of(qkernels::QK) {
            self.q8 = None;
            return Ok(());
        }
        self.q8_max_tokens = max_tokens;
        let w: Vec<f32> = self.weight_t.t()?.contiguous()?.flatten_all()?.to_vec1()?;
        self.q8 = Some(QWeight::quantize_q8_0(&w, rows, k).map_err(candle_core::Error::wrap)?);
        Ok(())
    }

    /// `x · W` without the bias.
    fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(y) = self.int8_forward(x, None)? {
            return Ok(y);
        }
        match &self.q8 {
            Some(q) if x.device().is_cpu() && x.dim(0)? <= self.q8_max_tokens => {
                let (n, k) = x.dims2()?;
                let input = x.flatten_all()?.to_vec1::<f32>()?;
                let mut acts = QActs::default();
                acts.quantize(&input, k).map_err(candle_core::Error::wrap)?;
                let mut out = vec![0f32; n * q.rows()];
                qkernels::matmul(q, &acts, &mut out);
                Tensor::from_vec(out, (n, q.rows()), x.device())
            }
            _ => x.matmul(&self.weight_t),
        }
    }

    fn bias_vec(&self) -> candle_core::Result<Vec<f32>> {
        match &self.bias_host {
            Some(b) => Ok(b.clone()),
            None => Ok(vec![0.0; self.weight_t.dim(1)?]),
        }
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(y) = self.int8_forward(x, self.bias_host.as_deref())? {
            return Ok(y);
        }
        let y = self.matmul(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

struct Block {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: LayerNorm,
    ffn_in: Dense,
    /// `ffn_in`'s bias, for the fused bias + GELU kernel.
    ffn_in_bias: Vec<f32>,
    ffn_out: Dense,
    ffn_norm: LayerNorm,
}

/// A BERT encoder producing one hidden state per token.
pub struct BertEncoder {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    embed_norm: LayerNorm,
    blocks: Vec<Block>,
    heads: usize,
    activation: Activation,
    hidden: usize,
    max_positions: usize,
    device: Device,
}

/// Opens the checkpoint's root: bare names or names under `bert.`.
pub fn bert_root<'a>(vb: &VarBuilder<'a>) -> VarBuilder<'a> {
    if vb.contains_tensor("embeddings.word_embeddings.weight") {
        vb.clone()
    } else {
        vb.pp("bert")
    }
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    // Old checkpoints name LayerNorm parameters gamma/beta.
    let (w, b) = if vb.contains_tensor("weight") {
        ("weight", "bias")
    } else {
        ("gamma", "beta")
    };
    Ok(LayerNorm::new(vb.get(size, w)?, vb.get(size, b)?, eps))
}

fn linear(vb: VarBuilder, inp: usize, out: usize) -> candle_core::Result<Linear> {
    candle_nn::linear(inp, out, vb)
}

impl BertEncoder {
    /// Loads the encoder from `vb` (already positioned at the BERT root, see [`bert_root`]).
    pub fn load(vb: VarBuilder, cfg: &BertConfig) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        if !h.is_multiple_of(cfg.num_attention_heads) {
            candle_core::bail!(
                "hidden_size {h} is not a multiple of {} heads",
                cfg.num_attention_heads
            );
        }
        let activation = match cfg.hidden_act.as_str() {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            other => candle_core::bail!("unsupported hidden_act `{other}`"),
        };
        let e = vb.pp("embeddings");
        let blocks = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(vb.pp(format!("encoder.layer.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            word: candle_nn::embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?,
            position: candle_nn::embedding(
                cfg.max_position_embeddings,
                h,
                e.pp("position_embeddings"),
            )?,
            token_type: candle_nn::embedding(
                cfg.type_vocab_size,
                h,
                e.pp("token_type_embeddings"),
            )?,
            embed_norm: layer_norm(e.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            blocks,
            heads: cfg.num_attention_heads,
            activation,
            hidden: h,
            max_positions: cfg.max_position_embeddings,
            device: vb.device().clone(),
        })
    }

    /// Switches the dense layers to `precision` (CPU only; other devices stay f32, and no
    /// host-side int8 copy of a GPU's weights is made: the GPU would never use it).
    pub fn set_precision(&mut self, precision: Precision) -> candle_core::Result<()> {
        if !self.device.is_cpu() {
            return Ok(());
        }
        for b in &mut self.blocks {
            for d in [&mut b.qkv, &mut b.attn_out, &mut b.ffn_in, &mut b.ffn_out] {
                match precision {
                    Precision::F32 => {
                        d.q8 = None;
                        d.set_int8(false)?;
                    }
                    Precision::Q8 | Precision::Auto => {
                        d.set_int8(true)?;
                        if d.i8.is_some() {
                            // VNNI: the int8 GEMM takes every pass.
                            d.q8 = None;
                            d.q8_max_tokens = 0;
                        } else if precision == Precision::Q8 {
                            d.quantize(usize::MAX)?;
                        } else {
                            d.quantize(AUTO_Q8_MAX_TOKENS)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Longest sequence the model accepts (position embeddings).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs packed sequences: `ids` and `type_ids` hold the tokens of every sequence back to back,
    /// `lens` the length of each. Returns `[ids.len(), hidden]` hidden states.
    pub fn forward_packed(
        &self,
        ids: &[u32],
        type_ids: &[u32],
        lens: &[usize],
    ) -> candle_core::Result<Tensor> {
        let total: usize = lens.iter().sum();
        if total != ids.len() || ids.len() != type_ids.len() {
            candle_core::bail!(
                "packed input: {} ids, {} type ids, lengths sum to {total}",
                ids.len(),
                type_ids.len()
            );
        }
        if let Some(&long) = lens.iter().find(|&&l| l > self.max_positions) {
            candle_core::bail!(
                "sequence of {long} tokens exceeds the model's {}",
                self.max_positions
            );
        }
        let positions: Vec<u32> = lens.iter().flat_map(|&l| 0..l as u32).collect();
        let n = ids.len();
        let ids = Tensor::from_slice(ids, n, &self.device)?;
        let types = Tensor::from_slice(type_ids, n, &self.device)?;
        let positions = Tensor::from_vec(positions, n, &self.device)?;
        let x = (self.word.forward(&ids)? + self.position.forward(&positions)?)?;
        let x = (x + self.token_type.forward(&types)?)?;
        let mut x = self.embed_norm.forward(&x)?;
        for block in &self.blocks {
            x = block.forward(&x, lens, self.heads, self.activation)?;
        }
        Ok(x)
    }
}

impl Block {
    fn load(vb: VarBuilder, cfg: &BertConfig) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let sa = vb.pp("attention.self");
        let (q, k, v) = (
            linear(sa.pp("query"), h, h)?,
            linear(sa.pp("key"), h, h)?,
            linear(sa.pp("value"), h, h)?,
        );
        let weight = Tensor::cat(&[q.weight(), k.weight(), v.weight()], 0)?;
        let bias = match (q.bias(), k.bias(), v.bias()) {
            (Some(qb), Some(kb), Some(vb)) => Some(Tensor::cat(&[qb, kb, vb], 0)?),
            _ => None,
        };
        let ffn_in = Dense::new(&linear(
            vb.pp("intermediate.dense"),
            h,
            cfg.intermediate_size,
        )?)?;
        let ffn_in_bias = ffn_in.bias_vec()?;
        Ok(Self {
            qkv: Dense::new(&Linear::new(weight, bias))?,
            attn_out: Dense::new(&linear(vb.pp("attention.output.dense"), h, h)?)?,
            attn_norm: layer_norm(vb.pp("attention.output.LayerNorm"), h, cfg.layer_norm_eps)?,
            ffn_in,
            ffn_in_bias,
            ffn_out: Dense::new(&linear(vb.pp("output.dense"), cfg.intermediate_size, h)?)?,
            ffn_norm: layer_norm(vb.pp("output.LayerNorm"), h, cfg.layer_norm_eps)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        lens: &[usize],
        heads: usize,
        act: Activation,
    ) -> candle_core::Result<Tensor> {
        let qkv = self.qkv.forward(x)?;
        let cpu = x.device().is_cpu();
        let ctx = if cpu {
            qkv.apply_op1_no_bwd(&PackedAttention {
                lens: lens.to_vec(),
                heads,
            })?
        } else {
            attention(&qkv, lens, heads)?
        };
        let x = self
            .attn_norm
            .forward(&(self.attn_out.forward(&ctx)? + x)?)?;
        let inner = match act {
            Activation::GeluErf if cpu => {
                let pre = self.ffn_in.matmul(&x)?;
                pre.apply_op1_no_bwd(&BiasGelu {
                    bias: self.ffn_in_bias.clone(),
                })?
            }
            Activation::GeluErf => self.ffn_in.forward(&x)?.gelu_erf()?,
            Activation::GeluTanh => self.ffn_in.forward(&x)?.gelu()?,
        };
        self.ffn_norm.forward(&(self.ffn_out.forward(&inner)? + x)?)
    }
}

/// Attention built from candle ops: the path for non-CPU devices (the CPU uses the fused
/// [`PackedAttention`] kernel). Returns `[N, hidden]`.
///
/// All sequences go through one batched product: the packed rows are gathered into a
/// `[batch, heads, longest, head_dim]` layout (short sequences padded with a zero row), keys past
/// a sequence's end are masked out of the softmax, and the padded rows are dropped on the way
/// back. A loop over sequences would launch a dozen small kernels per sequence and leave a GPU
/// idle between them.
fn attention(qkv: &Tensor, lens: &[usize], heads: usize) -> candle_core::Result<Tensor> {
    let (n, width) = qkv.dims2()?;
    let hidden = width / 3;
    let head_dim = hidden / heads;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let batch = lens.len();
    let longest = lens.iter().copied().max().unwrap_or(0);
    let device = qkv.device();
    let back = Tensor::from_vec(layout::packed_rows(lens, longest), n, device)?;
    let mask = layout::key_mask(lens, longest);
    let mask = Tensor::from_vec(mask, (batch, 1, 1, longest), device)?.to_dtype(qkv.dtype())?;
    // [B * L, 3h] -> [B, L, 3, heads, hd] -> [3, B, heads, L, hd]
    let s = padded(qkv, lens, longest)?
        .reshape((batch, longest, 3, heads, head_dim))?
        .permute((2, 0, 3, 1, 4))?
        .contiguous()?;
    let (q, k, v) = (s.get(0)?, s.get(1)?, s.get(2)?);
    let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    // [B, heads, L, hd] -> [B, L, heads, hd] -> [B * L, hidden] -> the packed rows
    probs
        .matmul(&v)?
        .transpose(1, 2)?
        .reshape((batch * longest, hidden))?
        .index_select(&back, 0)
}

/// The packed rows `x` (`[N, width]`) in the padded layout: `[lens.len() * longest, width]`,
/// each sequence's rows then zero rows up to `longest`.
fn padded(x: &Tensor, lens: &[usize], longest: usize) -> candle_core::Result<Tensor> {
    let (n, width) = x.dims2()?;
    let rows = layout::padded_rows(lens, longest, n as u32);
    let rows = Tensor::from_vec(rows, lens.len() * longest, x.device())?;
    // Row N, past the input, is the zero row every padded position takes.
    Tensor::cat(&[x, &Tensor::zeros((1, width), x.dtype(), x.device())?], 0)?.index_select(&rows, 0)
}

/// Index arithmetic between the packed layout (sequences back to back) and the padded one
/// (`longest` rows per sequence), shared by the GPU attention and pooling.
mod layout {
    /// For each padded row (`b * longest + t`), the packed row it takes, or `pad` past the end.
    pub fn padded_rows(lens: &[usize], longest: usize, pad: u32) -> Vec<u32> {
        let mut out = Vec::with_capacity(lens.len() * longest);
        let mut start = 0u32;
        for &len in lens {
            out.extend(
                (0..longest as u32).map(|t| if (t as usize) < len { start + t } else { pad }),
            );
            start += len as u32;
        }
        out
    }

    /// For each packed row, its padded row.
    pub fn packed_rows(lens: &[usize], longest: usize) -> Vec<u32> {
        lens.iter()
            .enumerate()
            .flat_map(|(b, &len)| (0..len).map(move |t| (b * longest + t) as u32))
            .collect()
    }

    /// `[B * longest]` additive mask: 0 for a sequence's keys, a large negative past its end.
    pub fn key_mask(lens: &[usize], longest: usize) -> Vec<f32> {
        lens.iter()
            .flat_map(|&len| (0..longest).map(move |t| if t < len { 0.0 } else { -1e30 }))
            .collect()
    }
}

/// Mean of the hidden states of each packed sequence: `[N, hidden]` -> `[lens.len(), hidden]`.
/// On the CPU one row at a time; elsewhere in the padded layout (zero rows add nothing), summed
/// and divided by each length: a few kernels for the whole batch instead of two per sequence.
pub fn mean_pool(hidden: &Tensor, lens: &[usize]) -> candle_core::Result<Tensor> {
    if !hidden.device().is_cpu() {
        return padded_mean(hidden, lens);
    }
    let mut rows = Vec::with_capacity(lens.len());
    let mut start = 0;
    for &len in lens {
        rows.push(hidden.narrow(0, start, len)?.mean(0)?);
        start += len;
    }
    Tensor::stack(&rows, 0)
}

/// [`mean_pool`] off the CPU (any device runs it; the tests run it on the CPU).
fn padded_mean(hidden: &Tensor, lens: &[usize]) -> candle_core::Result<Tensor> {
    let longest = lens.iter().copied().max().unwrap_or(0);
    let width = hidden.dim(1)?;
    let counts: Vec<f32> = lens.iter().map(|&l| l.max(1) as f32).collect();
    let counts =
        Tensor::from_vec(counts, (lens.len(), 1), hidden.device())?.to_dtype(hidden.dtype())?;
    padded(hidden, lens, longest)?
        .reshape((lens.len(), longest, width))?
        .sum(1)?
        .broadcast_div(&counts)
}

/// L2-normalises each row.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    x.broadcast_div(&norm)
}

/// Element type every candle model here computes in on the CPU.
pub const DTYPE: DType = DType::F32;

#[cfg(test)]
mod tests;
