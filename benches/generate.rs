//! Generation speed: candle's `quantized_llama::ModelWeights` against [`FastLlama`] on the
//! default generator (SmolLM2-135M-Instruct Q4_1), the workload of
//! ../shared/peers/llamacpp_gen.py: a ~600-token prompt, then 128 greedy tokens.
//!
//! First a plain timed run of both models (one prefill, 128 decode steps; printed as tok/s and
//! the FastLlama/candle ratio, with the number of greedy tokens on which they agree), then
//! criterion groups `prefill` (one 600-token forward from an empty cache) and `decode` (one
//! token at a context of 600–728). Token ids are seeded pseudo-random: speed does not depend on
//! the text. `GENERATE_FAST_ONLY=1` skips candle (whose prefill takes minutes on 2 cores).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use criterion::{criterion_group, criterion_main, Criterion};
use ragd::model::llm::FastLlama;
use ragd::model::ModelSource;

const PROMPT_TOKENS: usize = 600;
const DECODE_TOKENS: usize = 128;
const SEED: u64 = 0x5eed_6e4e;
/// Set this environment variable to time FastLlama alone (profiling).
const FAST_ONLY: &str = "GENERATE_FAST_ONLY";

/// The two models behind one interface.
trait Lm: Clone {
    fn step(&mut self, ids: &[u32], pos: usize) -> Vec<f32>;
    fn empty(&self) -> Self;
}

impl Lm for FastLlama {
    fn step(&mut self, ids: &[u32], pos: usize) -> Vec<f32> {
        let x = Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        self.forward(&x, pos)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1()
            .unwrap()
    }
    fn empty(&self) -> Self {
        self.fresh()
    }
}

impl Lm for ModelWeights {
    fn step(&mut self, ids: &[u32], pos: usize) -> Vec<f32> {
        let x = Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        self.forward(&x, pos)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1()
            .unwrap()
    }
    fn empty(&self) -> Self {
        let mut m = self.clone();
        m.clear_kv_cache();
        m
    }
}

fn model_path() -> PathBuf {
    let mut cfg = ragd::Config::default();
    cfg.apply_env(|k| std::env::var(k).ok()).unwrap();
    ModelSource::parse("SmolLM2-135M-Instruct-Q4_1")
        .and_then(|s| s.materialize(&cfg.models_dir))
        .unwrap()
}

fn load() -> (ModelWeights, FastLlama) {
    let path = model_path();
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let candle = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let fast = FastLlama::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    (candle, fast)
}

fn prompt() -> Vec<u32> {
    let mut state = SEED;
    (0..PROMPT_TOKENS)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            100 + ((state >> 33) % 48_000) as u32
        })
        .collect()
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

struct Run {
    prefill: Duration,
    decode: Duration,
    tokens: Vec<u32>,
}

/// One prefill of the prompt and `DECODE_TOKENS` greedy steps.
fn generate<M: Lm>(model: &M, prompt: &[u32]) -> Run {
    let mut m = model.empty();
    let start = Instant::now();
    let mut logits = m.step(prompt, 0);
    let prefill = start.elapsed();
    let start = Instant::now();
    let mut tokens = Vec::with_capacity(DECODE_TOKENS);
    for i in 0..DECODE_TOKENS {
        let t = argmax(&logits);
        tokens.push(t);
        logits = m.step(&[t], prompt.len() + i);
    }
    Run {
        prefill,
        decode: start.elapsed(),
        tokens,
    }
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// The plain timed comparison, printed once before the criterion groups.
fn summary(candle: &ModelWeights, fast: &FastLlama, prompt: &[u32]) {
    let c = generate(candle, prompt);
    let f = generate(fast, prompt);
    let agree = c
        .tokens
        .iter()
        .zip(&f.tokens)
        .take_while(|(a, b)| a == b)
        .count();
    let (cp, fp) = (
        per_second(prompt.len(), c.prefill),
        per_second(prompt.len(), f.prefill),
    );
    let (cd, fd) = (
        per_second(DECODE_TOKENS, c.decode),
        per_second(DECODE_TOKENS, f.decode),
    );
    println!(
        "generate summary ({} threads): prefill {} tokens: candle {cp:.1} tok/s, fast {fp:.1} tok/s \
         ({:.2}x); decode {DECODE_TOKENS} greedy: candle {cd:.1} tok/s, fast {fd:.1} tok/s ({:.2}x); \
         first {agree} greedy tokens identical",
        rayon::current_num_threads(),
        prompt.len(),
        fp / cp,
        fd / cd,
    );
}

fn bench_model<M: Lm>(c: &mut Criterion, name: &str, model: &M, prompt: &[u32]) {
    let mut prefilled = model.empty();
    let first = argmax(&prefilled.step(prompt, 0));
    c.benchmark_group("prefill")
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .bench_function(name, |b| {
            b.iter_batched(
                || model.empty(),
                |mut m| black_box(m.step(prompt, 0)),
                criterion::BatchSize::PerIteration,
            )
        });
    c.benchmark_group("decode")
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut m = prefilled.clone();
                let mut next = first;
                let mut pos = prompt.len();
                for _ in 0..iters {
                    if pos == prompt.len() + DECODE_TOKENS {
                        (m, next, pos) = (prefilled.clone(), first, prompt.len());
                    }
                    let start = Instant::now();
                    let logits = m.step(&[next], pos);
                    total += start.elapsed();
                    next = argmax(&logits);
                    pos += 1;
                }
                total
            })
        });
}

fn benches(c: &mut Criterion) {
    let (candle, fast) = load();
    let prompt = prompt();
    if std::env::var_os(FAST_ONLY).is_some() {
        let f = generate(&fast, &prompt);
        println!(
            "generate summary ({} threads): prefill {} tokens: fast {:.1} tok/s; decode \
             {DECODE_TOKENS} greedy: fast {:.1} tok/s",
            rayon::current_num_threads(),
            prompt.len(),
            per_second(prompt.len(), f.prefill),
            per_second(DECODE_TOKENS, f.decode),
        );
        bench_model(c, "fast_llama", &fast, &prompt);
        return;
    }
    summary(&candle, &fast, &prompt);
    bench_model(c, "fast_llama", &fast, &prompt);
    bench_model(c, "candle_quantized_llama", &candle, &prompt);
}

criterion_group!(generate_benches, benches);
criterion_main!(generate_benches);
