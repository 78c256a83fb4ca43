//! Unit tests of `bert.rs`.

use super::*;

fn dense(k: usize, n: usize) -> Dense {
    let w: Vec<f32> = (0..k * n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let weight = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
    Dense::new(&Linear::new(weight, None)).unwrap()
}

/// The batched, masked attention of non-CPU devices (run here on the CPU, where its candle
/// ops also work) agrees with the fused CPU kernel on sequences of different lengths, and
/// the averaging-matrix mean pool with the row loop.
#[test]
fn batched_attention_and_pooling_match_the_packed_cpu_paths() {
    let (heads, head_dim) = (4, 8);
    let hidden = heads * head_dim;
    let lens = [5usize, 1, 9, 3];
    let n: usize = lens.iter().sum();
    let values: Vec<f32> = (0..n * 3 * hidden)
        .map(|i| ((i * 7919 % 257) as f32 - 128.0) / 64.0)
        .collect();
    let qkv = Tensor::from_vec(values, (n, 3 * hidden), &Device::Cpu).unwrap();
    let fused = qkv
        .apply_op1_no_bwd(&PackedAttention {
            lens: lens.to_vec(),
            heads,
        })
        .unwrap();
    let batched = attention(&qkv, &lens, heads).unwrap();
    assert_eq!(batched.dims(), fused.dims());
    let diff = max_abs_diff(&batched, &fused);
    assert!(diff < 1e-4, "max difference {diff}");

    let x = fused;
    let loop_pool = mean_pool(&x, &lens).unwrap();
    let diff = max_abs_diff(&loop_pool, &padded_mean(&x, &lens).unwrap());
    assert!(diff < 1e-5, "max difference {diff}");
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .unwrap()
}

#[test]
fn eight_bit_layer_matches_f32_and_odd_widths_stay_f32() {
    let flat = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
    let x: Vec<f32> = (0..3 * 64)
        .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
        .collect();
    let x = Tensor::from_vec(x, (3, 64), &Device::Cpu).unwrap();
    let mut d = dense(64, 8);
    let exact = flat(d.matmul(&x).unwrap());
    d.quantize(usize::MAX).unwrap();
    assert!(d.q8.is_some());
    let q = flat(d.matmul(&x).unwrap());
    // Rounding both factors to 8 bits per 32-block costs about half a step each; on this
    // data every output stays within Σ|w·x| / 127 of the f32 result.
    let scale = flat(x.abs().unwrap().matmul(&d.weight_t.abs().unwrap()).unwrap());
    for ((a, b), s) in exact.iter().zip(&q).zip(&scale) {
        assert!((a - b).abs() <= s / 127.0, "{a} vs {b} (Σ|w·x| = {s})");
    }
    assert_ne!(q, exact, "the 8-bit path was taken");
    // Over the token limit the f32 weight is used: exact again.
    d.quantize(2).unwrap();
    assert_eq!(flat(d.matmul(&x).unwrap()), exact);
    // ... unless the layer has the VNNI int8 copy (same error bound; bias added by forward).
    d.set_int8(true).unwrap();
    assert_eq!(d.i8.is_some(), igemm::available());
    if d.i8.is_some() {
        let i8 = flat(d.matmul(&x).unwrap());
        for ((a, b), s) in exact.iter().zip(&i8).zip(&scale) {
            assert!((a - b).abs() <= s / 127.0, "{a} vs {b} (Σ|w·x| = {s})");
        }
        assert_ne!(i8, exact, "the int8 path was taken");
        assert_eq!(
            flat(d.forward(&x).unwrap()),
            i8,
            "no bias: forward = matmul"
        );
    }

    let mut odd = dense(40, 8);
    odd.quantize(usize::MAX).unwrap();
    assert!(odd.q8.is_none(), "40 inputs are not whole 32-value blocks");
}
