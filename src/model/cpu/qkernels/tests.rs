//! Unit tests of `qkernels.rs`.

use proptest::prelude::*;

use super::*;

/// GGUF bytes of `rows × k` values in format `kind` (ggml's reference quantizers).
fn gguf_bytes(kind: QKind, values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in values.chunks_exact(QK) {
        match kind {
            QKind::Q4_1 => {
                let min = block.iter().copied().fold(f32::INFINITY, f32::min);
                let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16::from_f32(d).to_bits().to_le_bytes());
                out.extend(f16::from_f32(min).to_bits().to_le_bytes());
                let q = |x: f32| (((x - min) * id + 0.5) as u8).min(15);
                out.extend((0..QK / 2).map(|j| q(block[j]) | (q(block[j + QK / 2]) << 4)));
            }
            QKind::Q8_0 => {
                let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16::from_f32(d).to_bits().to_le_bytes());
                out.extend(block.iter().map(|x| (x * id).round() as i8 as u8));
            }
        }
    }
    out
}

fn case() -> impl Strategy<Value = (QKind, usize, usize, Vec<f32>, Vec<f32>)> {
    (
        prop_oneof![Just(QKind::Q4_1), Just(QKind::Q8_0)],
        1usize..20,
        1usize..12,
        1usize..10,
    )
        .prop_flat_map(|(kind, blocks, rows, tokens)| {
            let k = blocks * QK;
            (
                Just(kind),
                Just(k),
                Just(rows),
                prop::collection::vec(-2.0f32..2.0, rows * k),
                prop::collection::vec(-4.0f32..4.0, tokens * k),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The dispatched kernels (AVX2 here) equal the scalar reference, and both are within
    /// the quantization error of the exact f32 product of the dequantized weight.
    #[test]
    fn matmul_matches_scalar_reference((kind, k, rows, w, x) in case()) {
        let weight = QWeight::from_gguf_bytes(kind, &gguf_bytes(kind, &w), rows, k).unwrap();
        let mut acts = QActs::default();
        acts.quantize(&x, k).unwrap();
        let tokens = acts.tokens();
        let mut out = vec![0.0; tokens * rows];
        matmul(&weight, &acts, &mut out);
        let mut wrow = vec![0.0; k];
        for r in 0..rows {
            weight.dequantize_row(r, &mut wrow);
            for t in 0..tokens {
                let mut reference = [0f32; 1];
                dot_scalar(&weight, r, &acts, t, &mut reference);
                let got = out[t * rows + r];
                let tol = 1e-4 * (1.0 + reference[0].abs());
                prop_assert!((got - reference[0]).abs() <= tol, "simd {got} scalar {}", reference[0]);
                // activation rounding: |Δx| ≤ max|x|/254 per value, |w| ≤ ~2.1
                let exact: f32 = wrow.iter().zip(&x[t * k..][..k]).map(|(a, b)| a * b).sum();
                let bound = k as f32 * 2.1 * 4.0 / 254.0 + 1e-3;
                prop_assert!((got - exact).abs() <= bound, "{got} vs exact {exact}");
            }
        }
    }

    /// Activation quantization: every value within half a step, and s = d·Σq.
    #[test]
    fn quantize_is_within_half_a_step(x in prop::collection::vec(-100.0f32..100.0, 32..=256)) {
        let k = x.len() / QK * QK;
        let x = &x[..k];
        let mut a = QActs::default();
        a.quantize(x, k).unwrap();
        for b in 0..k / QK {
            let d = a.d[b];
            let q = &a.qs[b * QK..][..QK];
            for (v, &q) in x[b * QK..][..QK].iter().zip(q) {
                prop_assert!((v - d * f32::from(q)).abs() <= d * 0.5 + 1e-6);
            }
            let sum: i32 = q.iter().map(|&q| i32::from(q)).sum();
            prop_assert!((a.s[b] - d * sum as f32).abs() <= 1e-3 * (1.0 + a.s[b].abs()));
        }
    }
}

proptest! {
    /// The f16-cache attention kernels (unrolled for 64-wide heads) equal naive sums.
    #[test]
    fn f16_attention_kernels_match_naive(
        dim in prop_oneof![Just(64usize), Just(48)],
        cache in prop::collection::vec(-3.0f32..3.0, 64 * 3 * 40),
        q in prop::collection::vec(-1.0f32..1.0, 64),
        n in 1usize..40,
    ) {
        let stride = 3 * dim;
        let bits: Vec<u16> = cache.iter().map(|x| f16::from_f32(*x).to_bits()).collect();
        let q = &q[..dim];
        let mut scores = vec![0.0; n];
        qk_scores_f16(q, &bits[dim..], stride, 0.5, &mut scores);
        let mut out = vec![1.0; dim];
        weighted_sum_f16(&scores, &bits[dim..], stride, &mut out);
        let row = |p: usize| bits[dim + p * stride..][..dim].iter().map(|b| f16::from_bits(*b).to_f32());
        let mut expect_out = vec![1.0f32; dim];
        for (p, s) in scores.iter().enumerate() {
            let expect: f32 = q.iter().zip(row(p)).map(|(a, b)| a * b).sum::<f32>() * 0.5;
            prop_assert!((s - expect).abs() <= 1e-4 * (1.0 + expect.abs()));
            expect_out.iter_mut().zip(row(p)).for_each(|(o, v)| *o += s * v);
        }
        for (a, b) in out.iter().zip(&expect_out) {
            prop_assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

#[test]
fn stacking_concatenates_rows() {
    let w: Vec<f32> = (0..3 * 64).map(|i| (i as f32 * 0.37).sin()).collect();
    let bytes = gguf_bytes(QKind::Q4_1, &w);
    let all = QWeight::from_gguf_bytes(QKind::Q4_1, &bytes, 3, 64).unwrap();
    let (a, b) = bytes.split_at(bytes.len() / 3);
    let top = QWeight::from_gguf_bytes(QKind::Q4_1, a, 1, 64).unwrap();
    let rest = QWeight::from_gguf_bytes(QKind::Q4_1, b, 2, 64).unwrap();
    let stacked = QWeight::stack(&[&top, &rest]).unwrap();
    let (mut x, mut y) = (vec![0.0; 64], vec![0.0; 64]);
    for r in 0..3 {
        all.dequantize_row(r, &mut x);
        stacked.dequantize_row(r, &mut y);
        assert_eq!(x, y);
    }
    let q8 = QWeight::from_gguf_bytes(QKind::Q8_0, &gguf_bytes(QKind::Q8_0, &w[..64]), 1, 64);
    assert!(QWeight::stack(&[&top, &q8.unwrap()]).is_err());
    assert!(QWeight::from_gguf_bytes(QKind::Q4_1, &bytes, 3, 48).is_err());
    assert!(QWeight::from_gguf_bytes(QKind::Q4_1, &bytes[1..], 3, 64).is_err());
}
