//! Unit tests of `fast_llama.rs`.

use candle_core::quantized::gguf_file::Value;

use super::*;

const EMBD: usize = 256;
const FF: usize = 512;
const VOCAB: usize = 64;

/// A tiny random llama GGUF mixing formats: layer 0 has Q4_1 Q, Q8_0 K, Q6_K V, f32 output
/// projection, Q4_1 gate/up and Q8_0 down (fast parts, candle parts, unmergeable
/// neighbours); layer 1 is all Q4_1; the embedding is f16 and tied to the output.
fn tiny_gguf() -> Vec<u8> {
    let dev = Device::Cpu;
    let mut seed = 0u32;
    let mut tensor = |rows: usize, cols: usize, dtype: GgmlDType| {
        // deterministic pseudo-random values in ±0.3
        seed += 1;
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i as f32 * 0.618 + seed as f32 * 1.7).sin() * 43_758.547).fract() * 0.3)
            .collect();
        let t = Tensor::from_vec(values, (rows, cols), &dev).unwrap();
        QTensor::quantize(&t, dtype).unwrap()
    };
    let ones = |n: usize| {
        let t = Tensor::ones(n, candle_core::DType::F32, &dev).unwrap();
        QTensor::quantize(&t, GgmlDType::F32).unwrap()
    };
    let mut tensors = vec![
        (
            "token_embd.weight".to_string(),
            tensor(VOCAB, EMBD, GgmlDType::F16),
        ),
        ("output_norm.weight".to_string(), ones(EMBD)),
    ];
    let kinds = [
        [
            GgmlDType::Q4_1,
            GgmlDType::Q8_0,
            GgmlDType::Q6K,
            GgmlDType::F32,
            GgmlDType::Q4_1,
            GgmlDType::Q4_1,
            GgmlDType::Q8_0,
        ],
        [GgmlDType::Q4_1; 7],
    ];
    for (i, k) in kinds.iter().enumerate() {
        let shapes = [
            (EMBD, EMBD),
            (128, EMBD),
            (128, EMBD),
            (EMBD, EMBD),
            (FF, EMBD),
            (FF, EMBD),
            (EMBD, FF),
        ];
        let names = [
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ];
        for ((name, (r, c)), dtype) in names.iter().zip(shapes).zip(k) {
            tensors.push((format!("blk.{i}.{name}.weight"), tensor(r, c, *dtype)));
        }
        tensors.push((format!("blk.{i}.attn_norm.weight"), ones(EMBD)));
        tensors.push((format!("blk.{i}.ffn_norm.weight"), ones(EMBD)));
    }
    let md = [
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U32(2)),
        ("llama.embedding_length", Value::U32(EMBD as u32)),
        ("llama.feed_forward_length", Value::U32(FF as u32)),
        ("llama.attention.head_count", Value::U32(4)),
        ("llama.attention.head_count_kv", Value::U32(2)),
        ("llama.rope.dimension_count", Value::U32(64)),
        ("llama.rope.freq_base", Value::F32(10_000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
    ];
    let md: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut buf = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut buf, &md, &ts).unwrap();
    buf.into_inner()
}

fn load<M>(
    bytes: &[u8],
    f: impl FnOnce(gguf_file::Content, &mut std::io::Cursor<&[u8]>) -> M,
) -> M {
    let mut r = std::io::Cursor::new(bytes);
    let ct = gguf_file::Content::read(&mut r).unwrap();
    f(ct, &mut r)
}

fn logits(t: Tensor) -> Vec<f32> {
    t.squeeze(0).unwrap().to_vec1().unwrap()
}

#[test]
fn mixed_formats_match_candle() {
    let bytes = tiny_gguf();
    let mut ours = load(&bytes, |ct, r| {
        FastLlama::from_gguf(ct, r, &Device::Cpu).unwrap()
    });
    let mut theirs = load(&bytes, |ct, r| {
        ModelWeights::from_gguf(ct, r, &Device::Cpu).unwrap()
    });
    assert!(ours.is_fast());
    let ids: Vec<u32> = (0..20).map(|i| (i * 7 % VOCAB) as u32).collect();
    let x = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut pairs = vec![(
        logits(ours.forward(&x, 0).unwrap()),
        logits(theirs.forward(&x, 0).unwrap()),
    )];
    for (pos, id) in (ids.len()..).zip([3u32, 9, 27]) {
        let x = Tensor::new(&[id], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        pairs.push((
            logits(ours.forward(&x, pos).unwrap()),
            logits(theirs.forward(&x, pos).unwrap()),
        ));
    }
    for (a, b) in &pairs {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        // 8-bit activations on both sides, f16 vs f32 block scales: a few percent
        assert!(err <= 0.05 * scale, "max |Δ| {err} vs max |logit| {scale}");
    }
    // a fresh copy has an empty cache: the prompt gives the same logits again
    let again = logits(ours.fresh().forward(&x, 0).unwrap());
    assert_eq!(again, pairs[0].0);
}

fn ids(v: &[u32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap().unsqueeze(0).unwrap()
}

#[test]
fn clones_are_separate_sequences_and_rewinding_replays() {
    let bytes = tiny_gguf();
    let mut a = load(&bytes, |ct, r| {
        FastLlama::from_gguf(ct, r, &Device::Cpu).unwrap()
    });
    let prompt = [5u32, 17, 33, 2, 40];
    a.forward(&ids(&prompt), 0).unwrap();
    let mut b = a.clone();
    let la = logits(a.forward(&ids(&[7]), 5).unwrap());
    let lb = logits(b.forward(&ids(&[9]), 5).unwrap());
    // each equals a from-scratch run of its own history
    let whole = |extra: u32| {
        let mut seq = prompt.to_vec();
        seq.push(extra);
        logits(a.fresh().forward(&ids(&seq), 0).unwrap())
    };
    for (got, want) in [(&la, whole(7)), (&lb, whole(9))] {
        let err = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err < 1e-4, "clone diverged from its own history: {err}");
    }
    // rewinding `a` to position 5 and feeding 9 replays `b`
    assert_eq!(logits(a.forward(&ids(&[9]), 5).unwrap()), lb);
}
