//! The CUDA path against the CPU, on a machine with an NVIDIA GPU (`--features cuda`; built by
//! `scripts/build-cuda`, run by `scripts/gpu-run`).
//!
//! - The embedder on CUDA against the f32 CPU path and sentence-transformers' reference vectors
//!   (cosine >= 0.9999 each), batched and one by one.
//! - The cross-encoder's logits on CUDA against the CPU and PyTorch's reference (within 1e-3).
//! - Synthetic quantized models of the two generator architectures in use (llama in Q4_1 as
//!   SmolLM2 ships, gemma3 in Q4_K/Q6_K as Gemma 3 270M ships), made here, so the check needs no
//!   model download: CUDA logits against the CPU's, prefill and decode steps.
//! - Real GGUF models when `RAGD_TEST_SMOLLM2` / `RAGD_TEST_GEMMA3` name their files: greedy
//!   decoding on both, then the logits of every step on the same prefix (teacher forcing).
//!
//! Models: the embedder is the configured one (`RAGD_EMBEDDER`, a local folder on a machine with
//! no package index). Tests whose inputs are missing say so and return.

#![cfg(feature = "cuda")]

use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::{quantized_gemma3, quantized_llama};
use ingest::Embedder;
use ragd::config::Precision;
use ragd::model::llm::FastLlama;
use ragd::model::llm::GgufGenerator;
use ragd::model::rerank::{CandleCrossEncoder, CrossEncoderOptions, Reranker};
use ragd::Config;
use serde::Deserialize;

/// The device under test: `cuda:0`, or `RAGD_TEST_DEVICE` (`cpu` runs every check CPU against
/// CPU, to try this file's own logic on a machine without a GPU).
fn cuda() -> Device {
    let spec = std::env::var("RAGD_TEST_DEVICE").unwrap_or_else(|_| "cuda:0".into());
    ragd::model::source::parse_device(&spec).unwrap_or_else(|e| {
        panic!("device {spec} (this test needs an NVIDIA GPU and its driver): {e}")
    })
}

fn config() -> Config {
    let mut cfg = Config::default();
    cfg.apply_env(|k| std::env::var(k).ok())
        .expect("valid RAGD_* environment");
    cfg
}

/// The reference fixtures shipped with the repository (`RAGD_TEST_FIXTURES` overrides).
fn fixtures() -> PathBuf {
    std::env::var_os("RAGD_TEST_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// The embedder's folder, when it is a local path or already in the models cache.
fn embedder_dir() -> Option<PathBuf> {
    let cfg = config();
    let source = ragd::model::ModelSource::parse(&cfg.embedder.model).ok()?;
    match source {
        ragd::model::ModelSource::Path(p) => Some(p),
        ragd::model::ModelSource::Catalog(_) => source.materialize(&cfg.models_dir).ok(),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[derive(Deserialize)]
struct EmbeddingReference {
    text: String,
    embedding: Vec<f32>,
}

fn jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn embedder_on_cuda_matches_the_f32_cpu_path() {
    let Some(dir) = embedder_dir() else {
        println!("SKIPPED: no embedder folder (set RAGD_EMBEDDER to a MiniLM folder)");
        return;
    };
    let refs: Vec<EmbeddingReference> = jsonl(&fixtures().join("minilm/reference.jsonl"));
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let options = |device: &Device, precision| {
        let limits = ragd::model::encoder::BatchLimits::for_device(device);
        ragd::model::encoder::EmbedderOptions {
            precision,
            batch_tokens: limits.tokens,
            max_batch: limits.inputs,
            ..Default::default()
        }
    };
    let cpu = ragd::model::encoder::CandleEmbedder::load(
        &dir,
        &Device::Cpu,
        options(&Device::Cpu, Precision::F32),
    )
    .expect("embedder on the CPU");
    // The default precision: f32 on a GPU (the int8 paths are CPU kernels).
    let device = cuda();
    let precision = if device.is_cpu() {
        Precision::F32
    } else {
        Precision::Auto
    };
    let gpu =
        ragd::model::encoder::CandleEmbedder::load(&dir, &device, options(&device, precision))
            .expect("embedder on CUDA");
    let on_cpu = cpu.embed(&texts).unwrap();
    let batched = gpu.embed(&texts).unwrap();
    let mut worst = (1f32, 1f32);
    for ((r, c), g) in refs.iter().zip(&on_cpu).zip(&batched) {
        let single = gpu.embed(&[r.text.as_str()]).unwrap().remove(0);
        for v in [&g.vector, &single.vector] {
            let vs_cpu = cosine(v, &c.vector);
            let vs_reference = cosine(v, &r.embedding);
            worst = (worst.0.min(vs_cpu), worst.1.min(vs_reference));
            assert!(
                vs_cpu >= 0.9999,
                "cosine {vs_cpu} to the CPU for {:?}",
                r.text
            );
            assert!(
                vs_reference >= 0.9999,
                "cosine {vs_reference} to sentence-transformers for {:?}",
                r.text
            );
        }
        assert_eq!(g.tokens, c.tokens);
    }
    println!(
        "embedder: {} sentences, lowest cosine to the CPU {:.7}, to sentence-transformers {:.7}",
        refs.len(),
        worst.0,
        worst.1
    );
}

#[derive(Deserialize)]
struct PairReference {
    query: String,
    passage: String,
    logit: f32,
}

#[test]
fn cross_encoder_on_cuda_matches_cpu_and_pytorch_logits() {
    let Some(dir) = embedder_dir() else {
        println!("SKIPPED: no MiniLM folder for the cross-encoder fixture (set RAGD_EMBEDDER)");
        return;
    };
    let fixture = fixtures().join("cross_encoder");
    let refs: Vec<PairReference> = jsonl(&fixture.join("reference.jsonl"));
    let weights = [
        dir.join("model.safetensors"),
        fixture.join("head.safetensors"),
    ];
    let load = |device: &Device| {
        CandleCrossEncoder::load_files(
            &fixture.join("config.json"),
            &fixture.join("tokenizer.json"),
            &weights,
            device,
            CrossEncoderOptions {
                model_id: "fixture".into(),
                max_length: 256,
                batch_tokens: ragd::model::encoder::BatchLimits::for_device(device).tokens,
                max_batch: ragd::model::encoder::BatchLimits::for_device(device).inputs,
            },
        )
        .expect("load cross-encoder")
    };
    let (cpu, gpu) = (load(&Device::Cpu), load(&cuda()));
    let passages: Vec<&str> = refs.iter().map(|r| r.passage.as_str()).collect();
    let mut worst = (0f32, 0f32);
    for query in refs.iter().map(|r| r.query.as_str()) {
        let on_cpu = cpu.rerank(query, &passages).unwrap();
        let on_gpu = gpu.rerank(query, &passages).unwrap();
        for ((r, c), g) in refs.iter().zip(&on_cpu).zip(&on_gpu) {
            worst.0 = worst.0.max((g - c).abs());
            assert!((g - c).abs() <= 1e-3, "{g} on CUDA, {c} on the CPU");
            if r.query == query {
                worst.1 = worst.1.max((g - r.logit).abs());
                assert!((g - r.logit).abs() <= 1e-3, "{g} vs PyTorch {}", r.logit);
            }
        }
    }
    println!(
        "cross-encoder: max |CUDA - CPU| {:.2e}, max |CUDA - PyTorch| {:.2e}",
        worst.0, worst.1
    );
}

// ---- synthetic quantized models --------------------------------------------------------------

const VOCAB: usize = 512;
const HIDDEN: usize = 256;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 64;
const FF: usize = 512;
const LAYERS: usize = 2;

/// A random `shape` tensor (std `scale`) quantized to `dtype`.
fn random(shape: &[usize], scale: f32, dtype: GgmlDType) -> QTensor {
    let t = Tensor::randn(0f32, scale, shape, &Device::Cpu).unwrap();
    QTensor::quantize(&t, dtype).unwrap()
}

/// A norm weight near 1 (gemma3 adds 1 to its own, so near 0 there).
fn norm(offset: f32) -> QTensor {
    let t = (Tensor::randn(0f32, 0.1, HIDDEN, &Device::Cpu).unwrap() + offset as f64).unwrap();
    QTensor::quantize(&t, GgmlDType::F32).unwrap()
}

fn head_norm(offset: f32) -> QTensor {
    let t = (Tensor::randn(0f32, 0.1, HEAD_DIM, &Device::Cpu).unwrap() + offset as f64).unwrap();
    QTensor::quantize(&t, GgmlDType::F32).unwrap()
}

/// Writes a GGUF with `metadata` (keys without the architecture prefix get it) and `tensors`.
fn write_gguf(
    path: &Path,
    arch: &str,
    metadata: Vec<(&str, gguf_file::Value)>,
    tensors: Vec<(String, QTensor)>,
) {
    let mut md: Vec<(String, gguf_file::Value)> = vec![(
        "general.architecture".into(),
        gguf_file::Value::String(arch.into()),
    )];
    md.extend(
        metadata
            .into_iter()
            .map(|(k, v)| (format!("{arch}.{k}"), v)),
    );
    let md_refs: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

fn common_metadata() -> Vec<(&'static str, gguf_file::Value)> {
    use gguf_file::Value::{F32, U32};
    vec![
        ("context_length", U32(512)),
        ("embedding_length", U32(HIDDEN as u32)),
        ("block_count", U32(LAYERS as u32)),
        ("feed_forward_length", U32(FF as u32)),
        ("attention.head_count", U32(HEADS as u32)),
        ("attention.head_count_kv", U32(KV_HEADS as u32)),
        ("attention.key_length", U32(HEAD_DIM as u32)),
        ("attention.value_length", U32(HEAD_DIM as u32)),
        ("attention.layer_norm_rms_epsilon", F32(1e-6)),
        ("rope.dimension_count", U32(HEAD_DIM as u32)),
        ("rope.freq_base", F32(10_000.0)),
    ]
}

/// The layer tensors both architectures share, `matrix` the weights' block type.
fn block_tensors(i: usize, matrix: GgmlDType, norm_offset: f32) -> Vec<(String, QTensor)> {
    let n = |s: &str| format!("blk.{i}.{s}");
    let s = 0.06;
    vec![
        (n("attn_norm.weight"), norm(norm_offset)),
        (
            n("attn_q.weight"),
            random(&[HEADS * HEAD_DIM, HIDDEN], s, matrix),
        ),
        (
            n("attn_k.weight"),
            random(&[KV_HEADS * HEAD_DIM, HIDDEN], s, matrix),
        ),
        (
            n("attn_v.weight"),
            random(&[KV_HEADS * HEAD_DIM, HIDDEN], s, matrix),
        ),
        (
            n("attn_output.weight"),
            random(&[HIDDEN, HEADS * HEAD_DIM], s, matrix),
        ),
        (n("ffn_norm.weight"), norm(norm_offset)),
        (n("ffn_gate.weight"), random(&[FF, HIDDEN], s, matrix)),
        (n("ffn_up.weight"), random(&[FF, HIDDEN], s, matrix)),
        (n("ffn_down.weight"), random(&[HIDDEN, FF], s, matrix)),
    ]
}

/// A 2-layer llama with Q4_1 matrices and a Q8_0 output (SmolLM2's file has the same types).
fn synthetic_llama(dir: &Path) -> PathBuf {
    let mut tensors = vec![
        (
            "token_embd.weight".to_string(),
            random(&[VOCAB, HIDDEN], 0.5, GgmlDType::Q4_1),
        ),
        ("output_norm.weight".into(), norm(1.0)),
        (
            "output.weight".into(),
            random(&[VOCAB, HIDDEN], 0.1, GgmlDType::Q8_0),
        ),
    ];
    for i in 0..LAYERS {
        tensors.extend(block_tensors(i, GgmlDType::Q4_1, 1.0));
    }
    let path = dir.join("synthetic-llama.gguf");
    write_gguf(&path, "llama", common_metadata(), tensors);
    path
}

/// A 2-layer gemma3 with Q4_K matrices, a Q6_K embedding (tied output) and its extra norms.
fn synthetic_gemma3(dir: &Path) -> PathBuf {
    use gguf_file::Value::{F32, U32};
    let mut tensors = vec![
        (
            "token_embd.weight".to_string(),
            random(&[VOCAB, HIDDEN], 0.5, GgmlDType::Q6K),
        ),
        ("output_norm.weight".into(), norm(0.0)),
    ];
    for i in 0..LAYERS {
        tensors.extend(block_tensors(i, GgmlDType::Q4K, 0.0));
        let n = |s: &str| format!("blk.{i}.{s}");
        tensors.extend([
            (n("attn_q_norm.weight"), head_norm(0.0)),
            (n("attn_k_norm.weight"), head_norm(0.0)),
            (n("post_attention_norm.weight"), norm(0.0)),
            (n("post_ffw_norm.weight"), norm(0.0)),
        ]);
    }
    let mut md = common_metadata();
    md.extend([
        ("attention.sliding_window", U32(64)),
        ("rope.local_freq_base", F32(10_000.0)),
    ]);
    let path = dir.join("synthetic-gemma3.gguf");
    write_gguf(&path, "gemma3", md, tensors);
    path
}

fn open(path: &Path) -> (gguf_file::Content, std::fs::File) {
    let mut f = std::fs::File::open(path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    (ct, f)
}

fn logits(t: Tensor) -> Vec<f32> {
    t.squeeze(0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The largest logit difference over the largest logit magnitude.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let scale = b.iter().map(|x| x.abs()).fold(0f32, f32::max).max(1e-6);
    diff / scale
}

/// A prefill of 40 ids then 8 decode steps on both models; returns the worst relative error.
fn compare_steps(
    mut step_cpu: impl FnMut(&[u32], usize) -> Vec<f32>,
    mut step_gpu: impl FnMut(&[u32], usize) -> Vec<f32>,
) -> f32 {
    let prompt: Vec<u32> = (0..40).map(|i| (i * 37 + 11) % VOCAB as u32).collect();
    let mut worst = relative_error(&step_gpu(&prompt, 0), &step_cpu(&prompt, 0));
    for i in 0..8u32 {
        let id = [(i * 101 + 7) % VOCAB as u32];
        let pos = prompt.len() + i as usize;
        worst = worst.max(relative_error(&step_gpu(&id, pos), &step_cpu(&id, pos)));
    }
    worst
}

fn ids(ids: &[u32], device: &Device) -> Tensor {
    Tensor::new(ids, device).unwrap().unsqueeze(0).unwrap()
}

/// Both sides quantize activations to 8 bits per block before the quantized products (the CPU's
/// kernels and candle's CUDA kernels alike, each with its own blocks and summation order), so
/// logits agree to rounding noise, not bit for bit. Random weights give flatter
/// logits than trained ones, so the relative error is larger than on a real model: measured on an
/// H200 over three runs (fresh random weights each), llama Q4_1 0.042-0.066 and gemma3 k-quants
/// 0.013-0.017; a wrong kernel gives errors of order 1.
const MAX_RELATIVE_LOGIT_ERROR: f32 = 0.15;

/// Loads the GGUF at `path` on the CPU and on the device under test with `load`, runs
/// [`compare_steps`] and asserts the worst relative error.
fn synthetic_check<M>(
    label: &str,
    path: &Path,
    load: impl Fn(gguf_file::Content, &mut std::fs::File, &Device) -> M,
    forward: impl Fn(&mut M, &Tensor, usize) -> Tensor,
) -> (M, M) {
    let gpu_device = cuda();
    let open_on = |device: &Device| {
        let (ct, mut f) = open(path);
        load(ct, &mut f, device)
    };
    let (mut cpu, mut gpu) = (open_on(&Device::Cpu), open_on(&gpu_device));
    let worst = compare_steps(
        |x, pos| logits(forward(&mut cpu, &ids(x, &Device::Cpu), pos)),
        |x, pos| logits(forward(&mut gpu, &ids(x, &gpu_device), pos)),
    );
    println!("{label}: worst relative logit error {worst:.2e}");
    assert!(worst <= MAX_RELATIVE_LOGIT_ERROR, "relative error {worst}");
    (cpu, gpu)
}

#[test]
fn synthetic_llama_q4_1_logits_on_cuda_match_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let (cpu, gpu) = synthetic_check(
        "synthetic llama Q4_1",
        &synthetic_llama(dir.path()),
        |ct, f, device| FastLlama::from_gguf(ct, f, device).unwrap(),
        |m, x, pos| m.forward(x, pos).unwrap(),
    );
    // The CPU ran ragd's FastLlama; the GPU candle's model (FastLlama's fallback off the CPU).
    assert!(cpu.is_fast());
    assert_eq!(gpu.is_fast(), cuda().is_cpu());
}

#[test]
fn synthetic_gemma3_k_quant_logits_on_cuda_match_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_check(
        "synthetic gemma3 Q4_K/Q6_K",
        &synthetic_gemma3(dir.path()),
        |ct, f, device| quantized_gemma3::ModelWeights::from_gguf(ct, f, device).unwrap(),
        |m, x, pos| m.forward(x, pos).unwrap(),
    );
}

// ---- real models ----------------------------------------------------------------------------

const GREEDY_TOKENS: usize = 32;
/// Largest logit difference, relative to the largest logit magnitude, at any step.
const MAX_RELATIVE_STEP_ERROR: f32 = 0.25;
/// Most steps of 32 on which the two argmaxes may differ.
const MAX_FLIPS: usize = 4;

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

/// Teacher-forced logits of a raw candle model (`forward` its forward pass): `prompt` prefilled,
/// then `ids` fed one by one.
fn forced(
    mut forward: impl FnMut(&Tensor, usize) -> candle_core::Result<Tensor>,
    device: &Device,
    prompt: &[u32],
    ids: &[u32],
) -> Vec<Vec<f32>> {
    let mut out = vec![logits(forward(&self::ids(prompt, device), 0).unwrap())];
    for (i, &id) in ids.iter().enumerate().take(ids.len() - 1) {
        out.push(logits(
            forward(&self::ids(&[id], device), prompt.len() + i).unwrap(),
        ));
    }
    out
}

/// Step-by-step comparison of teacher-forced logits `got` against `want` (same prefix at every
/// step): the worst relative error must stay under [`MAX_RELATIVE_STEP_ERROR`]; where the
/// argmaxes differ, `want`'s own margin must be inside the deviation measured at that step (a
/// near-tie the rounding can flip, not a confident choice overturned), at most [`MAX_FLIPS`]
/// times. A wrong kernel shows as a large error or many confident disagreements.
fn assert_steps_agree(
    label: &str,
    want: &[Vec<f32>],
    got: &[Vec<f32>],
    decode: impl Fn(usize) -> String,
) {
    let mut worst = 0f32;
    let mut flips = Vec::new();
    for (step, (w, g)) in want.iter().zip(got).enumerate() {
        worst = worst.max(relative_error(g, w));
        let (wi, gi) = (argmax(w), argmax(g));
        if wi != gi {
            let deviation = w
                .iter()
                .zip(g)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let (want_margin, got_margin) = (w[wi] - w[gi], g[gi] - g[wi]);
            println!(
                "  {label} step {step}: {wi} {:?} by {want_margin:.3} vs {gi} {:?} by {got_margin:.3} \
                 (largest logit difference {deviation:.3})",
                decode(wi),
                decode(gi)
            );
            assert!(
                want_margin < deviation,
                "{label} step {step}: the reference's choice was confident beyond the deviation"
            );
            flips.push(step);
        }
    }
    println!("  {label}: worst relative logit error {worst:.3}, argmax differs at steps {flips:?}");
    assert!(
        worst <= MAX_RELATIVE_STEP_ERROR,
        "{label}: relative logit error {worst}"
    );
    assert!(flips.len() <= MAX_FLIPS, "{label}: {} flips", flips.len());
}

/// A real GGUF model on CUDA against the CPU, in two comparisons:
/// 1. the same implementation on both devices (candle's `quantized_llama` or
///    `quantized_gemma3`; on CUDA ragd always runs candle's): the CUDA kernels themselves;
/// 2. what users get on each device (`GgufGenerator`: FastLlama for llama on the CPU): the
///    free-running greedy texts are printed with the step where they part, and the CUDA logits
///    are compared along the CPU's own greedy ids.
///
/// Every path quantizes activations to 8 bits per block before each quantized product, each with
/// its own blocks and summation order (candle's CPU kernels, FastLlama, candle's CUDA MMVQ/MMQ
/// kernels), so logits differ by rounding noise and greedy decoding can part at a near-tie;
/// bit-identical text across devices is not promised.
fn real_model_matches_the_cpu(var: &str) {
    let Some(path) = std::env::var_os(var).map(PathBuf::from) else {
        println!("SKIPPED: set {var} to the GGUF file to compare it on CUDA with the CPU");
        return;
    };
    let gpu_device = cuda();
    let cpu = GgufGenerator::load(&path, &Device::Cpu, "cpu".into()).expect("load on the CPU");
    let gpu = GgufGenerator::load(&path, &gpu_device, "cuda".into()).expect("load on CUDA");
    let messages = [ragd::model::llm::Message::new(
        ragd::model::llm::Role::User,
        "Explain in two sentences what a key-value cache stores in a transformer language model.",
    )];
    let prompt = cpu.prompt_ids(&messages).unwrap();
    assert_eq!(prompt, gpu.prompt_ids(&messages).unwrap());
    let decode = |id: usize| cpu.tokenizer().decode(&[id as u32]);

    // 1. candle's implementation on both devices.
    let arch = ragd::model::llm::Generator::info(&cpu).architecture.clone();
    let reference = cpu.greedy_ids(&prompt, GREEDY_TOKENS).unwrap().ids;
    let raw = |device: &Device| -> Vec<Vec<f32>> {
        let (ct, mut f) = open(&path);
        match arch.as_str() {
            "llama" => {
                let mut m = quantized_llama::ModelWeights::from_gguf(ct, &mut f, device).unwrap();
                forced(|x, p| m.forward(x, p), device, &prompt, &reference)
            }
            "gemma3" => {
                let mut m = quantized_gemma3::ModelWeights::from_gguf(ct, &mut f, device).unwrap();
                forced(|x, p| m.forward(x, p), device, &prompt, &reference)
            }
            other => panic!("no raw comparison for {other}"),
        }
    };
    println!("{var}: candle's {arch} on the CPU vs on CUDA, teacher-forced:");
    assert_steps_agree("candle", &raw(&Device::Cpu), &raw(&gpu_device), decode);

    // 2. ragd's generator on each device.
    let on_cpu = cpu.greedy_ids(&prompt, GREEDY_TOKENS).unwrap().ids;
    let on_gpu = gpu.greedy_ids(&prompt, GREEDY_TOKENS).unwrap().ids;
    assert_eq!(on_cpu.len(), GREEDY_TOKENS);
    let same = on_cpu
        .iter()
        .zip(&on_gpu)
        .take_while(|(a, b)| a == b)
        .count();
    println!(
        "{var}: ragd's generator, free-running greedy ids agree on the first {same} of \
         {GREEDY_TOKENS}\n  CPU  {:?}\n  CUDA {:?}",
        cpu.tokenizer().decode(&on_cpu),
        gpu.tokenizer().decode(&on_gpu)
    );
    let want = cpu.forced_logits(&prompt, &on_cpu).unwrap();
    let got = gpu.forced_logits(&prompt, &on_cpu).unwrap();
    assert_steps_agree("generator", &want, &got, decode);
}

#[test]
fn smollm2_on_cuda_matches_the_cpu_step_by_step() {
    real_model_matches_the_cpu("RAGD_TEST_SMOLLM2");
}

#[test]
fn gemma3_on_cuda_matches_the_cpu_step_by_step() {
    real_model_matches_the_cpu("RAGD_TEST_GEMMA3");
}
