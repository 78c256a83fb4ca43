//! Quantized matrix × activation kernels for [`super::fast_llama`]: GGUF `Q4_1` and `Q8_0`
//! weights against activations quantized on the fly to 8 bits, the scheme of ggml/llama.cpp
//! (`quantize_row_q8_1`, `ggml_vec_dot_q4_1_q8_1`, `ggml_vec_dot_q8_0_q8_0` in
//! ggml/src/ggml-cpu/quants.c and arch/x86/quants.c).
//!
//! Formats (blocks of [`QK`] = 32 values along the reduction dimension):
//! - `Q4_1` weight block: scale `d`, minimum `m` (f16), 32 unsigned nibbles `q`; value `d·q + m`.
//!   The low nibbles of bytes 0..16 are values 0..16, the high nibbles values 16..32.
//! - `Q8_0` weight block: scale `d` (f16), 32 signed bytes `q`; value `d·q`.
//! - Activation block ([`QActs`], "Q8_1"): `d = max|x| / 127`, `q = round(x / d)`, and
//!   `s = d·Σq`, kept in f32.
//!
//! Dot products per block: `Q4_1·Q8_1 = d_w·d_a·Σ q_w q_a + m_w·s_a` and
//! `Q8_0·Q8_1 = d_w·d_a·Σ q_w q_a`. The integer sums use AVX2's `vpmaddubsw` (unsigned × signed
//! bytes to i16 pairs; no saturation: |pair| ≤ 2·15·127 for Q4_1, 2·128·127 for Q8_0 after the
//! sign trick) and `vpmaddwd`, compiled with `#[target_feature]` and chosen at run time; the
//! scalar path is the reference and the fallback on any other CPU.
//!
//! Layout: the weight is repacked at load into separate arrays of f16 scales (rows padded to a
//! multiple of 8 blocks, so eight scales convert at once with F16C) and packed quants, the bytes
//! streamed per token being the GGUF's own. [`matmul`] splits the work over rayon: by weight rows
//! for one token (decoding, memory-bound), by groups of tokens for a prompt (compute-bound: each
//! weight row is unpacked once per four tokens and stays in L1 while a task's tokens pass).

use half::f16;
use rayon::prelude::*;

use super::kernels::dispatch;

/// Values per quantization block.
pub const QK: usize = 32;

/// Scales are padded to a multiple of this many blocks per row.
const SCALE_PAD: usize = 8;

/// Tokens a prompt kernel call handles at once (weight unpacked once, reused this many times).
const TOKEN_TILE: usize = 4;

/// The weight formats with native kernels here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QKind {
    /// GGUF type 3: f16 scale and minimum, 4-bit unsigned quants.
    Q4_1,
    /// GGUF type 8: f16 scale, 8-bit signed quants.
    Q8_0,
}

impl QKind {
    /// Bytes of quants per block.
    const fn quant_bytes(self) -> usize {
        match self {
            Self::Q4_1 => QK / 2,
            Self::Q8_0 => QK,
        }
    }

    /// Bytes of one GGUF block (scales included).
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 4 + QK / 2,
            Self::Q8_0 => 2 + QK,
        }
    }
}

/// Errors in the shape of a weight or activation handed to these kernels.
#[derive(Debug, thiserror::Error)]
pub enum QKernelError {
    /// The reduction dimension is not a multiple of [`QK`].
    #[error("row length {0} is not a multiple of {QK}")]
    RowLength(usize),
    /// The raw GGUF bytes do not hold `rows` rows of `k` values.
    #[error("expected {expected} bytes of quantized data, got {got}")]
    DataLength {
        /// What the shape needs.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// Weights to be stacked differ in format or row length.
    #[error("cannot stack weights of different formats or row lengths")]
    Mismatch,
}

fn blocks_of(k: usize) -> Result<(usize, usize), QKernelError> {
    if k == 0 || !k.is_multiple_of(QK) {
        return Err(QKernelError::RowLength(k));
    }
    let nb = k / QK;
    Ok((nb, nb.div_ceil(SCALE_PAD) * SCALE_PAD))
}

/// A quantized weight matrix of `rows` output rows by `k` inputs, repacked for the kernels.
#[derive(Debug, Clone)]
pub struct QWeight {
    kind: QKind,
    rows: usize,
    k: usize,
    nb: usize,
    nb_pad: usize,
    /// f16 bits of the block scales, `rows × nb_pad` (zero padded).
    d: Vec<u16>,
    /// f16 bits of the block minimums (Q4_1 only), `rows × nb_pad`.
    m: Vec<u16>,
    /// Quant bytes, `rows × nb × quant_bytes`.
    qs: Vec<u8>,
}

impl QWeight {
    /// Repacks GGUF block data (`rows` rows of `k` values, row-major) of format `kind`.
    pub fn from_gguf_bytes(
        kind: QKind,
        data: &[u8],
        rows: usize,
        k: usize,
    ) -> Result<Self, QKernelError> {
        let (nb, nb_pad) = blocks_of(k)?;
        let bb = kind.block_bytes();
        let expected = rows * nb * bb;
        if data.len() != expected {
            return Err(QKernelError::DataLength {
                expected,
                got: data.len(),
            });
        }
        let qb = kind.quant_bytes();
        let mut w = Self {
            kind,
            rows,
            k,
            nb,
            nb_pad,
            d: vec![0; rows * nb_pad],
            m: if kind == QKind::Q4_1 {
                vec![0; rows * nb_pad]
            } else {
                Vec::new()
            },
            qs: Vec::with_capacity(rows * nb * qb),
        };
        for (i, block) in data.chunks_exact(bb).enumerate() {
            let at = (i / nb) * nb_pad + i % nb;
            w.d[at] = u16::from_le_bytes([block[0], block[1]]);
            let quants = match kind {
                QKind::Q4_1 => {
                    w.m[at] = u16::from_le_bytes([block[2], block[3]]);
                    &block[4..]
                }
                QKind::Q8_0 => &block[2..],
            };
            w.qs.extend_from_slice(quants);
        }
        Ok(w)
    }

    /// Quantizes an f32 matrix (`rows` rows of `k` values, row-major) to `Q8_0` the way
    /// llama.cpp's `quantize_row_q8_0` does: per block of [`QK`], `d = max|x| / 127` (stored
    /// as f16) and `q = round(x / d)`.
    pub fn quantize_q8_0(values: &[f32], rows: usize, k: usize) -> Result<Self, QKernelError> {
        blocks_of(k)?;
        if values.len() != rows * k {
            return Err(QKernelError::DataLength {
                expected: rows * k,
                got: values.len(),
            });
        }
        let mut bytes = Vec::with_capacity(values.len() / QK * QKind::Q8_0.block_bytes());
        for block in values.chunks_exact(QK) {
            let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            bytes.extend_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
            bytes.extend(
                block
                    .iter()
                    .map(|v| (v * inv).round().clamp(-127.0, 127.0) as i8 as u8),
            );
        }
        Self::from_gguf_bytes(QKind::Q8_0, &bytes, rows, k)
    }

    /// Stacks weights with the same format and row length, rows of `parts[0]` first.
    pub fn stack(parts: &[&Self]) -> Result<Self, QKernelError> {
        let Some(first) = parts.first() else {
            return Err(QKernelError::Mismatch);
        };
        if parts.iter().any(|p| p.kind != first.kind || p.k != first.k) {
            return Err(QKernelError::Mismatch);
        }
        let mut out = Self {
            rows: parts.iter().map(|p| p.rows).sum(),
            d: Vec::new(),
            m: Vec::new(),
            qs: Vec::new(),
            ..(*first).clone_shape()
        };
        for p in parts {
            out.d.extend_from_slice(&p.d);
            out.m.extend_from_slice(&p.m);
            out.qs.extend_from_slice(&p.qs);
        }
        Ok(out)
    }

    fn clone_shape(&self) -> Self {
        Self {
            kind: self.kind,
            rows: self.rows,
            k: self.k,
            nb: self.nb,
            nb_pad: self.nb_pad,
            d: Vec::new(),
            m: Vec::new(),
            qs: Vec::new(),
        }
    }

    /// The block format.
    pub fn kind(&self) -> QKind {
        self.kind
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Inputs per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Writes row `r` as f32 into `out` (`k` values); used for embedding lookups.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let qb = self.kind.quant_bytes();
        for b in 0..self.nb {
            let d = f16::from_bits(self.d[r * self.nb_pad + b]).to_f32();
            let q = &self.qs[(r * self.nb + b) * qb..][..qb];
            let o = &mut out[b * QK..][..QK];
            match self.kind {
                QKind::Q4_1 => {
                    let m = f16::from_bits(self.m[r * self.nb_pad + b]).to_f32();
                    for (j, &byte) in q.iter().enumerate() {
                        o[j] = f32::from(byte & 0x0F) * d + m;
                        o[j + QK / 2] = f32::from(byte >> 4) * d + m;
                    }
                }
                QKind::Q8_0 => {
                    for (o, &byte) in o.iter_mut().zip(q) {
                        *o = f32::from(byte as i8) * d;
                    }
                }
            }
        }
    }
}

/// Activations quantized to 8 bits per [`QK`]-block ("Q8_1"): `tokens` rows of `k` values.
#[derive(Debug, Clone, Default)]
pub struct QActs {
    tokens: usize,
    k: usize,
    nb: usize,
    nb_pad: usize,
    /// Block scales, `tokens × nb_pad` (zero padded).
    d: Vec<f32>,
    /// `d·Σq` per block, `tokens × nb_pad` (zero padded).
    s: Vec<f32>,
    /// Quants, `tokens × k`.
    qs: Vec<i8>,
}

impl QActs {
    /// Quantizes `x` (`tokens` rows of `k` values), reusing this buffer's memory.
    pub fn quantize(&mut self, x: &[f32], k: usize) -> Result<(), QKernelError> {
        let (nb, nb_pad) = blocks_of(k)?;
        let tokens = x.len() / k;
        self.tokens = tokens;
        self.k = k;
        self.nb = nb;
        self.nb_pad = nb_pad;
        self.d.clear();
        self.d.resize(tokens * nb_pad, 0.0);
        self.s.clear();
        self.s.resize(tokens * nb_pad, 0.0);
        self.qs.clear();
        self.qs.resize(tokens * k, 0);
        let scales = self.d.chunks_mut(nb_pad).zip(self.s.chunks_mut(nb_pad));
        self.qs
            .par_chunks_mut(k)
            .zip(x.par_chunks(k))
            .zip(scales.collect::<Vec<_>>())
            .with_min_len(16)
            .for_each(|((q, x), (d, s))| quantize_row(x, q, d, s));
        Ok(())
    }

    /// Quantized rows.
    pub fn tokens(&self) -> usize {
        self.tokens
    }
}

fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    dispatch!(x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [f32] => {
        for (((x, q), d), s) in x.chunks_exact(QK).zip(q.chunks_exact_mut(QK)).zip(d.iter_mut()).zip(s.iter_mut()) {
            let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            let mut sum = 0i32;
            for (q, &v) in q.iter_mut().zip(x) {
                // |v·inv| ≤ 127, so the cast cannot saturate.
                let r = (v * inv).round() as i32;
                *q = r as i8;
                sum += r;
            }
            *d = scale;
            *s = scale * sum as f32;
        }
    });
}

/// True when the AVX2 kernels can run on this CPU.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[t·rows + r] = Σ_k w[r, k] · a[t, k]` for every token `t` of `a` and row `r` of `w`.
///
/// # Panics
/// If `a`'s row length differs from `w`'s or `out` is not `tokens × rows` long (a caller bug).
pub fn matmul(w: &QWeight, a: &QActs, out: &mut [f32]) {
    assert_eq!(w.k, a.k, "matmul: weight and activation row lengths");
    assert_eq!(out.len(), a.tokens * w.rows, "matmul: output length");
    let simd = has_avx2();
    if a.tokens == 1 {
        let chunk = w.rows.div_ceil(4 * rayon::current_num_threads()).max(16);
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, o)| rows_task(simd, w, a, i * chunk, 0, o));
    } else {
        let group = a
            .tokens
            .div_ceil(rayon::current_num_threads())
            .clamp(1, 4 * TOKEN_TILE);
        out.par_chunks_mut(group * w.rows)
            .enumerate()
            .for_each(|(i, o)| tokens_task(simd, w, a, i * group, o));
    }
}

/// Token 0 against rows `r0..r0 + out.len()`.
fn rows_task(simd: bool, w: &QWeight, a: &QActs, r0: usize, t0: usize, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        let mut one = [0f32; 1];
        dot(simd, w, r0 + i, a, t0, &mut one);
        *o = one[0];
    }
}

/// Tokens `t0..t0 + out.len() / rows` against every row.
fn tokens_task(simd: bool, w: &QWeight, a: &QActs, t0: usize, out: &mut [f32]) {
    let tokens = out.len() / w.rows;
    for r in 0..w.rows {
        let mut t = 0;
        while t + TOKEN_TILE <= tokens {
            let mut acc = [0f32; TOKEN_TILE];
            dot(simd, w, r, a, t0 + t, &mut acc);
            for (j, v) in acc.iter().enumerate() {
                out[(t + j) * w.rows + r] = *v;
            }
            t += TOKEN_TILE;
        }
        for t in t..tokens {
            let mut one = [0f32; 1];
            dot(simd, w, r, a, t0 + t, &mut one);
            out[t * w.rows + r] = one[0];
        }
    }
}

/// Row `r` of `w` against tokens `t0..t0 + T` of `a`.
#[inline]
fn dot<const T: usize>(
    simd: bool,
    w: &QWeight,
    r: usize,
    a: &QActs,
    t0: usize,
    out: &mut [f32; T],
) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is true only when `has_avx2` found AVX2, FMA and F16C.
        unsafe {
            match w.kind {
                QKind::Q4_1 => avx2::dot_q4_1(w, r, a, t0, out),
                QKind::Q8_0 => avx2::dot_q8_0(w, r, a, t0, out),
            }
        }
        return;
    }
    let _ = simd;
    dot_scalar(w, r, a, t0, out);
}

/// The reference kernel: integer block sums, then the float scale formula.
pub fn dot_scalar<const T: usize>(w: &QWeight, r: usize, a: &QActs, t0: usize, out: &mut [f32; T]) {
    let qb = w.kind.quant_bytes();
    for (t, o) in out.iter_mut().enumerate() {
        let tok = t0 + t;
        let mut acc = 0f32;
        for b in 0..w.nb {
            let wq = &w.qs[(r * w.nb + b) * qb..][..qb];
            let aq = &a.qs[tok * a.k + b * QK..][..QK];
            let dw = f16::from_bits(w.d[r * w.nb_pad + b]).to_f32();
            let da = a.d[tok * a.nb_pad + b];
            let isum: i32 = match w.kind {
                QKind::Q4_1 => wq
                    .iter()
                    .enumerate()
                    .map(|(j, &byte)| {
                        i32::from(byte & 0x0F) * i32::from(aq[j])
                            + i32::from(byte >> 4) * i32::from(aq[j + QK / 2])
                    })
                    .sum(),
                QKind::Q8_0 => wq
                    .iter()
                    .zip(aq)
                    .map(|(&x, &y)| i32::from(x as i8) * i32::from(y))
                    .sum(),
            };
            acc += isum as f32 * dw * da;
            if w.kind == QKind::Q4_1 {
                let mw = f16::from_bits(w.m[r * w.nb_pad + b]).to_f32();
                acc += mw * a.s[tok * a.nb_pad + b];
            }
        }
        *o = acc;
    }
}

/// Attention scores against an f16 key cache: `scores[p] = scale · q·k_p` with row
/// `k_p = k[p·stride..][..q.len()]`.
///
/// # Panics
/// If `k` is too short for `scores.len()` rows (a caller bug).
pub fn qk_scores_f16(q: &[f32], k: &[u16], stride: usize, scale: f32, scores: &mut [f32]) {
    let n = scores.len();
    assert!(
        n == 0 || (n - 1) * stride + q.len() <= k.len(),
        "qk_scores_f16: short cache"
    );
    #[cfg(target_arch = "x86_64")]
    if q.len() == avx2::HEAD_DIM && has_avx2() {
        // SAFETY: `has_avx2` found AVX2, FMA and F16C.
        unsafe { avx2::qk_scores_64(q, k, stride, scale, scores) };
        return;
    }
    for (p, s) in scores.iter_mut().enumerate() {
        let row = &k[p * stride..][..q.len()];
        let dot: f32 = q
            .iter()
            .zip(row)
            .map(|(a, &b)| a * f16::from_bits(b).to_f32())
            .sum();
        *s = dot * scale;
    }
}

/// `out += Σ_p scores[p] · v_p` over an f16 value cache, `v_p = v[p·stride..][..out.len()]`.
///
/// # Panics
/// If `v` is too short for `scores.len()` rows (a caller bug).
pub fn weighted_sum_f16(scores: &[f32], v: &[u16], stride: usize, out: &mut [f32]) {
    let n = scores.len();
    assert!(
        n == 0 || (n - 1) * stride + out.len() <= v.len(),
        "weighted_sum_f16: short cache"
    );
    #[cfg(target_arch = "x86_64")]
    if out.len() == avx2::HEAD_DIM && has_avx2() {
        // SAFETY: `has_avx2` found AVX2, FMA and F16C.
        unsafe { avx2::weighted_sum_64(scores, v, stride, out) };
        return;
    }
    for (p, &s) in scores.iter().enumerate() {
        let row = &v[p * stride..][..out.len()];
        for (o, &x) in out.iter_mut().zip(row) {
            *o += s * f16::from_bits(x).to_f32();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 + FMA + F16C versions of the block dot products (ggml's x86 `mul_sum_us8_pairs`).

    use std::arch::x86_64::*;

    use super::{QActs, QWeight, QK, SCALE_PAD};

    /// Head width of the unrolled attention kernels (SmolLM2, Llama): q and the output row
    /// stay in eight registers while the positions stream past.
    pub(super) const HEAD_DIM: usize = 64;

    /// See [`super::qk_scores_f16`]; the caller checked the cache length.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn qk_scores_64(
        q: &[f32],
        k: &[u16],
        stride: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        let qv: [__m256; 8] = std::array::from_fn(|i| load_f32x8(q, i * 8));
        for (p, s) in scores.iter_mut().enumerate() {
            let row = &k[p * stride..][..HEAD_DIM];
            let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for i in (0..8).step_by(2) {
                a0 = _mm256_fmadd_ps(qv[i], load_f16x8(row, i * 8), a0);
                a1 = _mm256_fmadd_ps(qv[i + 1], load_f16x8(row, i * 8 + 8), a1);
            }
            *s = hsum(_mm256_add_ps(a0, a1)) * scale;
        }
    }

    /// See [`super::weighted_sum_f16`]; the caller checked the cache length.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn weighted_sum_64(scores: &[f32], v: &[u16], stride: usize, out: &mut [f32]) {
        let mut acc = [_mm256_setzero_ps(); 8];
        for (p, &s) in scores.iter().enumerate() {
            let row = &v[p * stride..][..HEAD_DIM];
            let sv = _mm256_set1_ps(s);
            for (i, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(sv, load_f16x8(row, i * 8), *a);
            }
        }
        for (chunk, a) in out.chunks_exact_mut(8).zip(acc) {
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds eight f32; storeu has no alignment requirement.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), a) };
            chunk.iter_mut().zip(lanes).for_each(|(o, l)| *o += l);
        }
    }

    /// Horizontal sum of eight floats.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Eight f16 values from `src[at..at + 8]` as floats.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn load_f16x8(src: &[u16], at: usize) -> __m256 {
        let s = &src[at..at + SCALE_PAD];
        // SAFETY: `s` holds exactly eight u16 (16 bytes); loadu has no alignment requirement.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(s.as_ptr().cast()) })
    }

    /// Eight floats from `src[at..at + 8]`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn load_f32x8(src: &[f32], at: usize) -> __m256 {
        let s = &src[at..at + SCALE_PAD];
        // SAFETY: `s` holds exactly eight f32; loadu has no alignment requirement.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }

    /// The quant rows of tokens `t0..t0 + T`, each `a.k` long.
    fn act_rows<const T: usize>(a: &QActs, t0: usize) -> [&[i8]; T] {
        std::array::from_fn(|t| &a.qs[(t0 + t) * a.k..][..a.k])
    }

    /// 32 activation quants of block `b` of `row` (no bounds check: this is the innermost loop).
    ///
    /// # Safety
    /// `(b + 1) · 32 <= row.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load_act(row: &[i8], b: usize) -> __m256i {
        debug_assert!((b + 1) * QK <= row.len());
        // SAFETY: the caller guarantees the 32 bytes at b·32 lie in `row`; loadu has no
        // alignment requirement.
        unsafe { _mm256_loadu_si256(row.as_ptr().add(b * QK).cast()) }
    }

    /// Σ x·y over 32 unsigned×signed byte pairs, as eight i32 partial sums in floats.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn mul_sum_us8(x: __m256i, y: __m256i) -> __m256 {
        let pairs = _mm256_maddubs_epi16(x, y);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    /// Q4_1 row `r` of `w` against tokens `t0..t0 + T` of `a`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_q4_1<const T: usize>(
        w: &QWeight,
        r: usize,
        a: &QActs,
        t0: usize,
        out: &mut [f32; T],
    ) {
        let qs = &w.qs[r * w.nb * QK / 2..][..w.nb * QK / 2];
        let rows = act_rows::<T>(a, t0);
        let low = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); T];
        for g in (0..w.nb).step_by(SCALE_PAD) {
            let dw = load_f16x8(&w.d, r * w.nb_pad + g);
            let mw = load_f16x8(&w.m, r * w.nb_pad + g);
            let mut dd = [_mm256_setzero_ps(); T];
            for t in 0..T {
                let at = (t0 + t) * a.nb_pad + g;
                dd[t] = _mm256_mul_ps(dw, load_f32x8(&a.d, at));
                // minimum term m_w·s_a; padded blocks have zero scales on both sides
                acc[t] = _mm256_fmadd_ps(mw, load_f32x8(&a.s, at), acc[t]);
            }
            for i in 0..SCALE_PAD.min(w.nb - g) {
                let b = g + i;
                // SAFETY: b < nb and `qs` holds nb blocks of 16 bytes; loadu has no alignment
                // requirement.
                let q = unsafe { _mm_loadu_si128(qs.as_ptr().add(b * QK / 2).cast()) };
                let q = _mm256_set_m128i(_mm_srli_epi16::<4>(q), q);
                let q = _mm256_and_si256(q, low);
                let lane = _mm256_set1_epi32(i as i32);
                for t in 0..T {
                    // SAFETY: b < nb = a.k / 32 (matmul checked w.k == a.k).
                    let p = mul_sum_us8(q, unsafe { load_act(rows[t], b) });
                    let scale = _mm256_permutevar8x32_ps(dd[t], lane);
                    acc[t] = _mm256_fmadd_ps(p, scale, acc[t]);
                }
            }
        }
        for t in 0..T {
            out[t] = hsum(acc[t]);
        }
    }

    /// Q8_0 row `r` of `w` against tokens `t0..t0 + T` of `a`.
    #[expect(
        clippy::needless_range_loop,
        reason = "t indexes three arrays in lockstep"
    )]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_q8_0<const T: usize>(
        w: &QWeight,
        r: usize,
        a: &QActs,
        t0: usize,
        out: &mut [f32; T],
    ) {
        let qs = &w.qs[r * w.nb * QK..][..w.nb * QK];
        let rows = act_rows::<T>(a, t0);
        let mut acc = [_mm256_setzero_ps(); T];
        for g in (0..w.nb).step_by(SCALE_PAD) {
            let dw = load_f16x8(&w.d, r * w.nb_pad + g);
            let mut dd = [_mm256_setzero_ps(); T];
            for t in 0..T {
                dd[t] = _mm256_mul_ps(dw, load_f32x8(&a.d, (t0 + t) * a.nb_pad + g));
            }
            for i in 0..SCALE_PAD.min(w.nb - g) {
                let b = g + i;
                // SAFETY: b < nb and `qs` holds nb blocks of 32 bytes; loadu has no alignment
                // requirement.
                let x = unsafe { _mm256_loadu_si256(qs.as_ptr().add(b * QK).cast()) };
                let ax = _mm256_sign_epi8(x, x);
                let lane = _mm256_set1_epi32(i as i32);
                for t in 0..T {
                    // SAFETY: b < nb = a.k / 32 (matmul checked w.k == a.k).
                    let sy = _mm256_sign_epi8(unsafe { load_act(rows[t], b) }, x);
                    let p = mul_sum_us8(ax, sy);
                    let scale = _mm256_permutevar8x32_ps(dd[t], lane);
                    acc[t] = _mm256_fmadd_ps(p, scale, acc[t]);
                }
            }
        }
        for t in 0..T {
            out[t] = hsum(acc[t]);
        }
    }
}

#[cfg(test)]
mod tests;
