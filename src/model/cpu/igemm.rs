//! Int8 matrix products on AVX-512 VNNI for the encoder's dense layers (bulk passes and queries).
//!
//! `y = x · Wᵀ + b` with `x` an `[m, k]` f32 activation and `W` an `[n, k]` f32 weight, computed
//! in integers with a scale per block of [`QB`] = 32 values along `k`, on both sides (the
//! granularity of llama.cpp's `Q8_0`/`Q8_1`):
//! - the weight is quantized once, per output channel `j` and block `b`: `sw[b,j] =
//!   max|W[j,b·]| / 127`, `qw = round(W / sw)` in `[-127, 127]`;
//! - each activation row is quantized on the fly, per row `i` and block: `sa[i,b] = max|x[i,b·]|
//!   / 127`, `qa = round(x / sa)` in `[-127, 127]`, stored as `qa + 128` in unsigned bytes;
//! - `y[i,j] = Σ_b sa[i,b]·sw[b,j]·(Σ_{k∈b} (qa+128)·qw − 128·Σ_{k∈b} qw) + b[j]`, the second
//!   sum precomputed per block and channel. `vpdpbusd` multiplies unsigned by signed bytes and
//!   adds groups of four into 32-bit lanes without saturation, so each block sum is exact.
//!
//! One scale per whole row (the dynamic quantization of ONNX Runtime or FBGEMM) was measured
//! first: 10% faster, but BERT's activations have outlier channels, and the worst cosine to the
//! reference embeddings fell to 0.986; per-block scales keep it at 0.998 (BENCHMARKS.md).
//!
//! One `vpdpbusd` on a 512-bit register does 64 multiply-adds; an f32 FMA does 16. On the
//! project's CPU both issue once per cycle (measured), so the integer product has four times the
//! arithmetic rate of the f32 GEMM, which is what bounds bulk embedding.
//!
//! Layout: the weight is packed at load into panels of [`NR`] = 64 output channels; inside a panel,
//! for every group of four `k`, the 64 channels' four bytes lie together (256 bytes), so one
//! register load brings 16 channels × 4 `k`. The micro-kernel holds a tile of `MR` = 3 rows ×
//! 64 channels: 12 int32 accumulators for the current block (started at the block's offset
//! term) and 12 f32 accumulators into which each finished block is scaled. Work is split over
//! rayon by blocks of `MC` = 96 rows, each quantizing its own rows; a block's activations and one
//! weight panel stay in L2 while the tiles pass.
//!
//! The portable [`matmul_reference`] is the specification (and the path on any CPU without
//! VNNI); the tests check the kernel against it and against the f32 product.

use rayon::prelude::*;

/// Output channels per packed weight panel (four 16-lane registers).
pub const NR: usize = 64;

/// Values of `k` per quantization block (a multiple of 4).
pub const QB: usize = 32;

/// Rows per micro-kernel tile.
const MR: usize = 3;

/// Rows per parallel task (a multiple of [`MR`]).
const MC: usize = 32 * MR;

/// A weight quantized per output channel and `k` block, packed for the VNNI kernel.
#[derive(Debug, Clone)]
pub struct I8Weight {
    /// Output channels.
    n: usize,
    /// Reduction length.
    k: usize,
    /// `k` rounded up to whole blocks.
    kp: usize,
    /// `n` rounded up to whole panels.
    np: usize,
    /// Panels of [`NR`] channels: `[np / NR][kp / 4][NR][4]` signed bytes (padding is zero).
    packed: Vec<i8>,
    /// Scale per block and channel: `[kp / QB][np]` (padding is zero).
    scale: Vec<f32>,
    /// `−128 · Σ_{k in block} qw[j, k]` per block and channel (the unsigned offset's share):
    /// `[kp / QB][np]`.
    offset: Vec<i32>,
}

impl I8Weight {
    /// Quantizes `w`, an `[n, k]` row-major weight (one row per output channel).
    ///
    /// # Panics
    /// If `w.len() != n · k` (a caller bug).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "I8Weight::quantize: shape");
        let kp = k.div_ceil(QB) * QB;
        let np = n.div_ceil(NR) * NR;
        let mut packed = vec![0i8; np * kp];
        let mut scale = vec![0f32; kp / QB * np];
        let mut offset = vec![0i32; kp / QB * np];
        for (j, row) in w.chunks_exact(k).enumerate() {
            let (panel, lane) = (j / NR, j % NR);
            let base = panel * kp * NR;
            for (blk, vals) in row.chunks(QB).enumerate() {
                let amax = vals.iter().fold(0f32, |m, v| m.max(v.abs()));
                let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
                let mut sum = 0i32;
                for (i, &v) in vals.iter().enumerate() {
                    let kk = blk * QB + i;
                    let q = (v / s).round().clamp(-127.0, 127.0) as i8;
                    sum += i32::from(q);
                    packed[base + (kk / 4) * NR * 4 + lane * 4 + kk % 4] = q;
                }
                scale[blk * np + j] = s;
                offset[blk * np + j] = -128 * sum;
            }
        }
        Self {
            n,
            k,
            kp,
            np,
            packed,
            scale,
            offset,
        }
    }

    /// Output channels.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Reduction length.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The quantized value of weight `[j, kk]` (for the reference path).
    fn q(&self, j: usize, kk: usize) -> i8 {
        let base = (j / NR) * self.kp * NR;
        self.packed[base + (kk / 4) * NR * 4 + (j % NR) * 4 + kk % 4]
    }
}

/// Quantizes activation rows per block to unsigned bytes (`round(x / s) + 128`; rows padded to
/// `kp` with the zero point 128) and appends each row's block scales (`kp / QB` per row).
fn quantize_rows(x: &[f32], k: usize, kp: usize, bytes: &mut Vec<u8>, scales: &mut Vec<f32>) {
    let m = x.len() / k;
    bytes.clear();
    bytes.resize(m * kp, 128);
    scales.clear();
    for (row, out) in x.chunks_exact(k).zip(bytes.chunks_exact_mut(kp)) {
        let mut blocks = 0;
        for (vals, out) in row.chunks(QB).zip(out.chunks_exact_mut(QB)) {
            let amax = vals.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
            let inv = 1.0 / s;
            for (o, &v) in out.iter_mut().zip(vals) {
                // |v·inv| ≤ 127 (+ rounding), so the sum stays within 1..=255. Ties round to
                // even, as the vector conversion does.
                *o = ((v * inv).round_ties_even() as i32 + 128).clamp(1, 255) as u8;
            }
            scales.push(s);
            blocks += 1;
        }
        scales.resize(scales.len() + kp / QB - blocks, 0.0);
    }
}

/// True when this CPU runs the VNNI kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[i·n + j] = Σₖ x[i·k + kk]·W[j, kk] + bias[j]` in int8 arithmetic (module docs), on the
/// VNNI kernel when [`available`], else on the reference path.
///
/// # Panics
/// If `x.len()` is not a multiple of `w.k()`, `out.len()` is not `rows · w.n()`, or `bias` is
/// given with a length other than `w.n()` (caller bugs).
pub fn matmul(w: &I8Weight, x: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    check_shapes(w, x, bias, out);
    if !available() {
        return matmul_reference(w, x, bias, out);
    }
    out.par_chunks_mut(MC * w.n)
        .zip(x.par_chunks(MC * w.k))
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(bytes, scales), (o, xs)| {
                // SAFETY: `available` found AVX-512F/BW and VNNI.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    if w.k.is_multiple_of(QB) {
                        vnni::quantize_rows(xs, w.k, bytes, scales);
                    } else {
                        quantize_rows(xs, w.k, w.kp, bytes, scales);
                    }
                    vnni::block(w, bytes, scales, bias, o)
                };
            },
        );
}

fn check_shapes(w: &I8Weight, x: &[f32], bias: Option<&[f32]>, out: &[f32]) {
    assert!(w.k > 0 && x.len().is_multiple_of(w.k), "igemm: input width");
    assert_eq!(out.len(), x.len() / w.k * w.n, "igemm: output length");
    if let Some(b) = bias {
        assert_eq!(b.len(), w.n, "igemm: bias length");
    }
}

/// The specification: the same quantization and integer block sums, one scalar at a time.
pub fn matmul_reference(w: &I8Weight, x: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    check_shapes(w, x, bias, out);
    let (mut bytes, mut scales) = (Vec::new(), Vec::new());
    quantize_rows(x, w.k, w.kp, &mut bytes, &mut scales);
    let blocks = w.kp / QB;
    for (i, o) in out.chunks_exact_mut(w.n).enumerate() {
        let a = &bytes[i * w.kp..(i + 1) * w.kp];
        for (j, y) in o.iter_mut().enumerate() {
            let mut v = 0f32;
            for blk in 0..blocks {
                let acc: i32 = (blk * QB..(blk + 1) * QB)
                    .map(|kk| i32::from(a[kk]) * i32::from(w.q(j, kk)))
                    .sum::<i32>()
                    + w.offset[blk * w.np + j];
                v += (acc as f32 * scales[i * blocks + blk]) * w.scale[blk * w.np + j];
            }
            *y = v + bias.map_or(0.0, |b| b[j]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{I8Weight, MR, NR, QB};

    /// [`super::quantize_rows`] for rows of whole blocks (`k = kp`), sixteen values at a time;
    /// the same numbers (max, one division, multiply, round half to even).
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512BW (checked by [`super::available`]).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_rows(
        x: &[f32],
        k: usize,
        bytes: &mut Vec<u8>,
        scales: &mut Vec<f32>,
    ) {
        const { assert!(QB == 32) };
        debug_assert!(k.is_multiple_of(QB));
        bytes.clear();
        bytes.resize(x.len(), 0);
        scales.clear();
        let zero_point = _mm512_set1_epi32(128);
        for (vals, out) in x.chunks_exact(QB).zip(bytes.chunks_exact_mut(QB)) {
            // SAFETY: both slices hold exactly 32 values (`chunks_exact`).
            unsafe {
                let lo = _mm512_loadu_ps(vals.as_ptr());
                let hi = _mm512_loadu_ps(vals.as_ptr().add(16));
                let amax =
                    _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
                let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
                let inv = _mm512_set1_ps(1.0 / s);
                for (half, v) in [lo, hi].into_iter().enumerate() {
                    let q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), zero_point);
                    let q = _mm512_max_epi32(
                        _mm512_min_epi32(q, _mm512_set1_epi32(255)),
                        _mm512_set1_epi32(1),
                    );
                    _mm_storeu_si128(
                        out.as_mut_ptr().add(16 * half).cast(),
                        _mm512_cvtepi32_epi8(q),
                    );
                }
                scales.push(s);
            }
        }
    }

    /// All tiles of one row block: `bytes` holds its quantized rows (`kp` each), `scales` their
    /// block scales, `out` its rows of the result.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, AVX-512BW and AVX-512 VNNI (checked by [`super::available`]);
    /// the shapes are asserted by [`tile`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn block(
        w: &I8Weight,
        bytes: &[u8],
        scales: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let rows = bytes.len() / w.kp;
        let panel_len = w.kp * NR;
        for (p, panel) in w.packed.chunks_exact(panel_len).enumerate() {
            let cols = (w.n - p * NR).min(NR);
            let mut r = 0;
            // SAFETY: same target features as this function; every tile's rows exist.
            unsafe {
                while r + MR <= rows {
                    tile::<MR>(w, panel, p, bytes, scales, r, bias, cols, out);
                    r += MR;
                }
                match rows - r {
                    0 => {}
                    1 => tile::<1>(w, panel, p, bytes, scales, r, bias, cols, out),
                    _ => tile::<2>(w, panel, p, bytes, scales, r, bias, cols, out),
                }
            }
        }
    }

    /// Rows `r0..r0 + R` against panel `p` (its first `cols` channels are real).
    ///
    /// # Safety
    /// The CPU must have AVX-512F, AVX-512BW and AVX-512 VNNI; out-of-range shapes panic (they
    /// are asserted before any pointer is read).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize>(
        w: &I8Weight,
        panel: &[i8],
        p: usize,
        bytes: &[u8],
        scales: &[f32],
        r0: usize,
        bias: Option<&[f32]>,
        cols: usize,
        out: &mut [f32],
    ) {
        let kp = w.kp;
        let blocks = kp / QB;
        assert!(bytes.len() >= (r0 + R) * kp && scales.len() >= (r0 + R) * blocks);
        assert!(panel.len() == kp * NR && out.len() >= (r0 + R) * w.n);
        let c0 = p * NR;
        // SAFETY: pointer reads stay inside `bytes` (rows `r0..r0 + R`, `kp` each), the panel
        // (`kp / 4` groups of 256 bytes) and the per-block scale and offset rows (`np` each, `c0
        // + 64 ≤ np`); writes stay inside rows `r0..r0 + R` of `out`, masked to the panel's
        // `cols` real channels (all asserted above).
        unsafe {
            let mut facc = [[_mm512_setzero_ps(); 4]; R];
            let a = bytes.as_ptr().add(r0 * kp);
            let b = panel.as_ptr();
            for blk in 0..blocks {
                let off = w.offset.as_ptr().add(blk * w.np + c0);
                let mut acc = [[_mm512_setzero_si512(); 4]; R];
                for acc_r in acc.iter_mut() {
                    for (c, v) in acc_r.iter_mut().enumerate() {
                        *v = _mm512_loadu_si512(off.add(c * 16).cast());
                    }
                }
                for g in blk * QB / 4..(blk + 1) * QB / 4 {
                    let bp = b.add(g * NR * 4);
                    let b0 = _mm512_loadu_si512(bp.cast());
                    let b1 = _mm512_loadu_si512(bp.add(64).cast());
                    let b2 = _mm512_loadu_si512(bp.add(128).cast());
                    let b3 = _mm512_loadu_si512(bp.add(192).cast());
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let four = a.add(r * kp + g * 4).cast::<i32>().read_unaligned();
                        let av = _mm512_set1_epi32(four);
                        acc_r[0] = _mm512_dpbusd_epi32(acc_r[0], av, b0);
                        acc_r[1] = _mm512_dpbusd_epi32(acc_r[1], av, b1);
                        acc_r[2] = _mm512_dpbusd_epi32(acc_r[2], av, b2);
                        acc_r[3] = _mm512_dpbusd_epi32(acc_r[3], av, b3);
                    }
                }
                let sw = w.scale.as_ptr().add(blk * w.np + c0);
                for (r, (acc_r, facc_r)) in acc.iter().zip(facc.iter_mut()).enumerate() {
                    let sa = _mm512_set1_ps(*scales.get_unchecked((r0 + r) * blocks + blk));
                    for (c, (&v, f)) in acc_r.iter().zip(facc_r.iter_mut()).enumerate() {
                        let x = _mm512_mul_ps(_mm512_cvtepi32_ps(v), sa);
                        *f = _mm512_fmadd_ps(x, _mm512_loadu_ps(sw.add(c * 16)), *f);
                    }
                }
            }
            let n = w.n;
            for (r, facc_r) in facc.iter().enumerate() {
                let row = out.as_mut_ptr().add((r0 + r) * n + c0);
                for (c, &y) in facc_r.iter().enumerate() {
                    let lane0 = c * 16;
                    if lane0 >= cols {
                        break;
                    }
                    let live = (cols - lane0).min(16);
                    let mask: __mmask16 = if live == 16 {
                        0xffff
                    } else {
                        (1u16 << live) - 1
                    };
                    let y = match bias {
                        Some(bias) => {
                            let bv = _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(c0 + lane0));
                            _mm512_add_ps(y, bv)
                        }
                        None => y,
                    };
                    _mm512_mask_storeu_ps(row.add(lane0), mask, y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn case() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>, bool)> {
        // Half the cases have whole blocks (the vector quantizer), half a ragged tail.
        let k = prop_oneof![1usize..=70, (1usize..=3).prop_map(|b| b * QB)];
        (1usize..=140, 1usize..=150, k, any::<bool>()).prop_flat_map(|(m, n, k, with_bias)| {
            (
                Just(m),
                Just(n),
                Just(k),
                prop::collection::vec(-4.0f32..4.0, n * k + n),
                prop::collection::vec(-30.0f32..30.0, m * k),
                Just(with_bias),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Every shape (odd `k`, partial panels, partial tiles and row blocks): the kernel equals
        /// the reference up to float rounding of the scale step, and both stay within the
        /// quantization bound of the f32 product.
        #[test]
        fn kernel_matches_reference_and_f32((m, n, k, w, x, with_bias) in case()) {
            let (wt, b) = w.split_at(n * k);
            let bias = with_bias.then_some(b);
            let q = I8Weight::quantize(wt, n, k);
            let mut fast = vec![f32::NAN; m * n];
            let mut reference = vec![f32::NAN; m * n];
            matmul(&q, &x, bias, &mut fast);
            matmul_reference(&q, &x, bias, &mut reference);
            for i in 0..m {
                for j in 0..n {
                    let (f, r) = (fast[i * n + j], reference[i * n + j]);
                    let xi = &x[i * k..(i + 1) * k];
                    let wj = &wt[j * k..(j + 1) * k];
                    // The kernel fuses the block sums' multiply-add: equal up to f32 rounding.
                    let magnitude: f32 = xi.iter().zip(wj).map(|(a, b)| (a * b).abs()).sum();
                    prop_assert!((f - r).abs() <= 1e-5 * (1.0 + magnitude), "[{i},{j}] {f} vs {r}");
                    let exact: f32 = xi.iter().zip(wj).map(|(a, b)| a * b).sum::<f32>()
                        + bias.map_or(0.0, |b| b[j]);
                    let amax_x = xi.iter().fold(0f32, |a, v| a.max(v.abs()));
                    let amax_w = wj.iter().fold(0f32, |a, v| a.max(v.abs()));
                    // Each factor is off by at most half a step of its block, at most half a step of
                    // the whole row: |Δ| ≤ k·(½sx·|w|max + ½sw·|x|max + ¼sx·sw).
                    let (sx, sw) = (amax_x / 127.0, amax_w / 127.0);
                    let bound = k as f32 * (0.5 * sx * amax_w + 0.5 * sw * amax_x + 0.25 * sx * sw) + 1e-3;
                    prop_assert!((r - exact).abs() <= bound, "[{i},{j}] {r} vs exact {exact} (bound {bound})");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_quantizer_equals_the_scalar_one() {
        if !available() {
            return;
        }
        // Ties (x.5 steps), zeros, one-value blocks, extremes.
        let mut x: Vec<f32> = (0..QB * 6)
            .map(|i| ((i * 7919 % 255) as f32 - 127.0) / 2.0)
            .collect();
        x[QB..2 * QB].fill(0.0);
        x[2 * QB..3 * QB].fill(0.0);
        x[2 * QB + 5] = -3.25;
        x[3 * QB] = f32::MAX / 2.0;
        x[4 * QB..4 * QB + 4].copy_from_slice(&[127.0, 2.5, -3.5, 0.5]);
        let (mut b1, mut s1, mut b2, mut s2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        quantize_rows(&x, 2 * QB, 2 * QB, &mut b1, &mut s1);
        // SAFETY: `available` checked the CPU.
        unsafe { vnni::quantize_rows(&x, 2 * QB, &mut b2, &mut s2) };
        assert_eq!(b1, b2);
        assert_eq!(s1, s2);
    }

    #[test]
    fn zero_rows_and_weights_give_the_bias() {
        let q = I8Weight::quantize(&[0.0; 3 * 8], 3, 8);
        let mut out = vec![f32::NAN; 2 * 3];
        matmul(&q, &[0.0; 16], Some(&[1.0, -2.0, 0.5]), &mut out);
        assert_eq!(out, vec![1.0, -2.0, 0.5, 1.0, -2.0, 0.5]);
    }
}
