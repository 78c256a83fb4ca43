//! CPU kernels for the BERT encoder, as candle custom ops: packed multi-head attention and a
//! fused bias + exact GELU.
//!
//! Why not candle's own ops: on the CPU candle runs unary ops on one thread, calls libm's scalar
//! `expf` in softmax, and a per-sequence attention built from candle ops copies every head into
//! a contiguous tensor and nests the matmul's thread pool inside ours. Profiling `ragd bench embed`
//! put a quarter of the time there. These kernels
//! - run every (sequence, head) pair as one rayon task, reading Q, K and V in place from the
//!   packed `[N, 3*hidden]` projection through `gemm`'s strides (no copies), and writing each
//!   head's context straight into its columns of the `[N, hidden]` output;
//! - use a branch-free, vectorisable `exp` (Cody–Waite range reduction, degree-7 polynomial,
//!   relative error < 2e-7) for softmax and GELU, compiled for AVX2+FMA when the CPU has it
//!   (runtime detection; the portable build stays baseline x86-64).

use std::cell::RefCell;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};
use rayon::prelude::*;

/// Attention over packed sequences: input `[N, 3*hidden]` (Q, K, V side by side), output
/// `[N, hidden]`; attention mixes tokens only within each sequence.
pub struct PackedAttention {
    /// Length of each packed sequence, in order; they sum to N.
    pub lens: Vec<usize>,
    /// Number of attention heads.
    pub heads: usize,
}

/// `gelu(x + bias)` with exact (erf) GELU; input `[N, width]`, bias `[width]` captured.
pub struct BiasGelu {
    /// The bias, one value per column.
    pub bias: Vec<f32>,
}

fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 tensors are supported");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: input must be contiguous");
    };
    Ok(&data[start..end])
}

impl CustomOp1 for PackedAttention {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(storage, layout, self.name())?;
        let (n, width) = layout.shape().dims2()?;
        let total: usize = self.lens.iter().sum();
        if width % (3 * self.heads) != 0 || total != n {
            candle_core::bail!(
                "packed-attention: shape ({n}, {width}) vs {} heads, lengths sum {total}",
                self.heads
            );
        }
        let hidden = width / 3;
        let mut out = vec![0f32; n * hidden];
        let mut tasks = Vec::with_capacity(self.lens.len() * self.heads);
        let mut start = 0;
        for &len in &self.lens {
            tasks.extend((0..self.heads).map(|h| (start, len, h)));
            start += len;
        }
        let out_addr = out.as_mut_ptr() as usize;
        let shape = AttnShape {
            hidden,
            head_dim: hidden / self.heads,
        };
        tasks.par_iter().for_each(|&(start, len, head)| {
            // SAFETY: each (sequence, head) task writes only rows start..start+len, columns
            // head*head_dim..(head+1)*head_dim of `out`, so no two tasks write the same element,
            // and `out` outlives the parallel loop.
            unsafe { attend_one(qkv, out_addr as *mut f32, shape, start, len, head) };
        });
        Ok((CpuStorage::F32(out), Shape::from((n, hidden))))
    }
}

#[derive(Clone, Copy)]
struct AttnShape {
    hidden: usize,
    head_dim: usize,
}

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// softmax(Q Kᵀ / √d) V for one head of one sequence.
///
/// # Safety
/// `out` must point to an `[N, hidden]` buffer covering the rows of this sequence, and no other
/// thread may write this head's columns of those rows concurrently.
unsafe fn attend_one(
    qkv: &[f32],
    out: *mut f32,
    s: AttnShape,
    start: usize,
    len: usize,
    head: usize,
) {
    let stride = 3 * s.hidden as isize;
    let base = start * 3 * s.hidden + head * s.head_dim;
    let q = qkv[base..].as_ptr();
    let k = qkv[base + s.hidden..].as_ptr();
    let v = qkv[base + 2 * s.hidden..].as_ptr();
    let scale = 1.0 / (s.head_dim as f32).sqrt();
    SCORES.with(|cell| {
        let mut scores = cell.borrow_mut();
        scores.resize(len * len, 0.0);
        let sp = scores.as_mut_ptr();
        // scores[i][j] = scale * sum_d q[i][d] * k[j][d]   (rhs = Kᵀ through strides)
        // SAFETY: all pointers address `len` rows of `head_dim` columns inside their buffers.
        unsafe {
            gemm::gemm(
                len,
                len,
                s.head_dim,
                sp,
                1,
                len as isize,
                false,
                q,
                1,
                stride,
                k,
                stride,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for row in scores.chunks_exact_mut(len) {
            softmax_in_place(row);
        }
        // SAFETY: by this function's contract `out` covers the sequence's rows; the offset is
        // the first row's start plus this head's first column, inside that range.
        let dst = unsafe { out.add(start * s.hidden + head * s.head_dim) };
        // out[i][d] = sum_j p[i][j] * v[j][d]
        // SAFETY: as above; dst rows are `hidden` apart, this head's columns only.
        unsafe {
            gemm::gemm(
                len,
                s.head_dim,
                len,
                dst,
                1,
                s.hidden as isize,
                false,
                sp,
                1,
                len as isize,
                v,
                1,
                stride,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    });
}

impl CustomOp1 for BiasGelu {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, self.name())?;
        let (_, width) = layout.shape().dims2()?;
        if width != self.bias.len() {
            candle_core::bail!("bias-gelu: width {width} but bias of {}", self.bias.len());
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(width)
            .zip(x.par_chunks(width))
            .for_each(|(o, row)| bias_gelu_row(o, row, &self.bias));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Runs the body compiled for AVX2+FMA when the CPU has them, else the portable build.
macro_rules! dispatch {
    ($($arg:ident : $ty:ty),* => $body:block) => {{
        #[inline(always)]
        fn generic($($arg: $ty),*) $body

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn avx2($($arg: $ty),*) { generic($($arg),*) }

        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features `avx2` was compiled for.
            return unsafe { avx2($($arg),*) };
        }
        generic($($arg),*)
    }};
}
pub(crate) use dispatch;

/// Numerically stable softmax of one row, in place.
pub fn softmax_in_place(row: &mut [f32]) {
    dispatch!(row: &mut [f32] => {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut lanes = [0f32; 8];
        let mut chunks = row.chunks_exact_mut(8);
        for c in &mut chunks {
            for (l, v) in lanes.iter_mut().zip(c.iter_mut()) {
                *v = fast_exp(*v - max);
                *l += *v;
            }
        }
        let mut sum: f32 = lanes.iter().sum();
        for v in chunks.into_remainder() {
            *v = fast_exp(*v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    });
}

/// `out[i] = gelu(x[i] + bias[i])`.
pub fn bias_gelu_row(out: &mut [f32], x: &[f32], bias: &[f32]) {
    dispatch!(out: &mut [f32], x: &[f32], bias: &[f32] => {
        for ((o, &v), &b) in out.iter_mut().zip(x).zip(bias) {
            let v = v + b;
            *o = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
}

/// eˣ for f32 without branches (vectorisable). Cody–Waite reduction: n = round(x·log2 e),
/// f = x − n·ln 2 with ln 2 split in a high and a low part so f is exact to f32, |f| ≤ ln2/2;
/// e^f by its degree-7 Taylor polynomial (truncation error < 6e-9), times 2ⁿ built in the
/// exponent bits. Relative error < 3e-7 for x ≥ −80 (< 1e-5 down to the clamp, where results
/// approach the smallest normal f32). Inputs are clamped to [-87, 88], so the result is finite
/// and, below the clamp, at most e⁻⁸⁷ ≈ 1.6e-38.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const SHIFTER: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_359_4; // exactly 0.693359375: n · LN2_HI is exact for |n| < 2¹⁴
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 − LN2_HI
    let x = x.clamp(-87.0, 88.0);
    let r = x * std::f32::consts::LOG2_E + SHIFTER;
    let n = r - SHIFTER;
    let f = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0
                    + f * (1.0 / 24.0
                        + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f * (1.0 / 5040.0)))))));
    let exponent = (r.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    p * f32::from_bits(((exponent + 127) << 23) as u32)
}

/// erf(x) with maximum absolute error 1.2e-7 (Numerical Recipes' `erfc` Chebyshev fit, 3rd ed.,
/// §6.2.2), evaluated in f32 with [`fast_exp`].
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_2 + t * 0.170_872_77))))))));
    let r = 1.0 - t * fast_exp(poly);
    r.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_accurate() {
        let mut x = -80.0f32;
        while x < 88.0 {
            let (got, want) = (fast_exp(x), (x as f64).exp());
            assert!(
                ((got as f64 - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.037;
        }
        // Near the lower clamp results approach the smallest normal f32 and lose a few bits.
        let edge = fast_exp(-87.0) as f64;
        assert!((edge / (-87f64).exp() - 1.0).abs() < 1e-5);
        assert!(fast_exp(-1000.0) < 1e-37 && fast_exp(-1000.0) >= 0.0);
    }

    #[test]
    fn erf_matches_reference_values() {
        // Abramowitz & Stegun, table 7.1.
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (-1.0, -0.842_700_8),
            (4.0, 1.0),
        ] {
            assert!(
                (erf(x) - want).abs() < 3e-7,
                "erf({x}) = {} want {want}",
                erf(x)
            );
        }
    }

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin() * 30.0).collect();
        let orig = row.clone();
        softmax_in_place(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let max: f32 = orig.iter().fold(f32::MIN, |m, &v| m.max(v));
        let naive: f64 = orig.iter().map(|&v| ((v - max) as f64).exp()).sum();
        for (p, v) in row.iter().zip(&orig) {
            let want = ((v - max) as f64).exp() / naive;
            assert!((*p as f64 - want).abs() < 1e-6);
        }
    }

    #[test]
    fn packed_attention_matches_naive_attention() {
        use candle_core::{Device, Tensor};
        let (lens, heads, hidden) = (vec![3usize, 5, 1], 2usize, 8usize);
        let n: usize = lens.iter().sum();
        let data: Vec<f32> = (0..n * 3 * hidden)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let qkv = Tensor::from_vec(data.clone(), (n, 3 * hidden), &Device::Cpu).unwrap();
        let got = qkv
            .apply_op1_no_bwd(&PackedAttention {
                lens: lens.clone(),
                heads,
            })
            .unwrap();
        let got: Vec<Vec<f32>> = got.to_vec2().unwrap();
        let hd = hidden / heads;
        let at = |row: usize, col: usize| data[row * 3 * hidden + col] as f64;
        let mut start = 0;
        for &len in &lens {
            for h in 0..heads {
                for i in 0..len {
                    let scores: Vec<f64> = (0..len)
                        .map(|j| {
                            (0..hd)
                                .map(|d| {
                                    at(start + i, h * hd + d) * at(start + j, hidden + h * hd + d)
                                })
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for d in 0..hd {
                        let want: f64 = (0..len)
                            .map(|j| {
                                (scores[j] - max).exp() / z * at(start + j, 2 * hidden + h * hd + d)
                            })
                            .sum();
                        assert!((got[start + i][h * hd + d] as f64 - want).abs() < 1e-5);
                    }
                }
            }
            start += len;
        }
    }
}
