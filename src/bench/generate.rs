//! `ragd bench generate`: the generator's prefill and decode speed on the configured device, and
//! the aggregate decode rate of concurrent generations.
//!
//! The workload is the one of `benches/generate.rs` and `../shared/peers/llamacpp_gen.py`: a
//! ~600-token prompt (real English text, so the model runs on the distribution it was trained
//! on), then greedy tokens with end-of-turn ignored ([`GgufGenerator::greedy_ids`]), so every
//! run does the same amount of work whatever the model writes. The workload runs once as a
//! warm-up (on a GPU it loads the kernels and grows the memory pool). Then:
//! - one sequence: prefill tokens/s (the prompt over the prefill's time, logits read back
//!   included) and decode tokens/s (tokens after the first over the decode steps' time);
//! - for each `--concurrency` c: c sequences started together on c threads, each prefilling the
//!   prompt and decoding `--decode-tokens`; aggregate decode tokens/s is all decoded tokens over
//!   the wall time from start to the last one's end (prefills included: what a server sees).
//!
//! The greedy ids of the single run are printed with `--json` (`ids`), so two devices can be
//! compared token by token.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use crate::config::Config;
use crate::model::llm::GgufGenerator;

/// The text the prompt is cut from (repeated as needed): plain expository English.
const PROMPT_TEXT: &str = "Retrieval-augmented generation answers a question in two steps. \
First a retriever finds the passages of a knowledge base that are most likely to contain the \
answer: a sparse index scores passages by the words they share with the question, weighting rare \
words more, and a dense index compares learned vector representations, which also finds \
passages that say the same thing in other words. The two ranked lists are fused, and a \
cross-encoder may read each candidate together with the question to order them more precisely. \
Then a language model reads the best passages and writes an answer that cites them, so that a \
reader can check every claim against its source. The quality of the answer is bounded by the \
retrieval: a passage that is never retrieved cannot be cited, and a model given irrelevant \
passages may write a fluent answer that no source supports. ";

/// What `ragd bench generate` measures.
#[derive(Debug, Clone)]
pub struct GenerateBench {
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Greedy tokens generated per sequence.
    pub decode_tokens: usize,
    /// Concurrent sequences to measure (0s are skipped).
    pub concurrency: Vec<usize>,
}

/// One concurrency level's result.
#[derive(Debug, serde::Serialize)]
pub struct ConcurrentRun {
    /// Sequences run together.
    pub sequences: usize,
    /// Wall-clock seconds from the start to the last sequence's end.
    pub seconds: f64,
    /// All decoded tokens over `seconds`.
    pub aggregate_tokens_per_s: f64,
}

/// Result of `ragd bench generate`.
#[derive(Debug, serde::Serialize)]
pub struct GenerateBenchResult {
    /// The generator.
    pub model: String,
    /// Its architecture.
    pub architecture: String,
    /// The device setting it ran on.
    pub device: String,
    /// Threads candle's CPU kernels use.
    pub threads: usize,
    /// Seconds to load the model.
    pub load_s: f64,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Seconds of the prefill (one sequence).
    pub prefill_s: f64,
    /// Prompt tokens per second.
    pub prefill_tokens_per_s: f64,
    /// Tokens generated (one sequence).
    pub decode_tokens: usize,
    /// Seconds of the decode steps (one sequence).
    pub decode_s: f64,
    /// Decode tokens per second (one sequence).
    pub decode_tokens_per_s: f64,
    /// The greedy ids of the single run.
    pub ids: Vec<u32>,
    /// Concurrent runs.
    pub concurrent: Vec<ConcurrentRun>,
}

/// The first `n` ids of [`PROMPT_TEXT`] repeated, after the model's BOS id if it takes one.
pub fn prompt_ids(generator: &GgufGenerator, n: usize) -> anyhow::Result<Vec<u32>> {
    let tok = generator.tokenizer();
    let mut ids: Vec<u32> = match (tok.add_bos(), tok.bos()) {
        (true, Some(bos)) => vec![bos],
        _ => Vec::new(),
    };
    let piece = tok.encode_plain(PROMPT_TEXT)?;
    anyhow::ensure!(!piece.is_empty(), "the tokenizer produced no ids");
    while ids.len() < n {
        let take = (n - ids.len()).min(piece.len());
        ids.extend_from_slice(&piece[..take]);
    }
    Ok(ids)
}

/// Runs the benchmark on a loaded generator.
pub fn measure(
    generator: &Arc<GgufGenerator>,
    args: &GenerateBench,
) -> anyhow::Result<(Vec<u32>, crate::model::llm::GreedyRun, Vec<ConcurrentRun>)> {
    let prompt = prompt_ids(generator, args.prompt_tokens)?;
    // Warm-up: the whole workload once (a GPU loads its kernels and grows its memory pool).
    generator.greedy_ids(&prompt, args.decode_tokens)?;
    let single = generator.greedy_ids(&prompt, args.decode_tokens)?;
    let mut concurrent = Vec::new();
    for &c in args.concurrency.iter().filter(|&&c| c > 0) {
        let barrier = Arc::new(Barrier::new(c + 1));
        let handles: Vec<_> = (0..c)
            .map(|_| {
                let (generator, barrier, prompt) =
                    (Arc::clone(generator), Arc::clone(&barrier), prompt.clone());
                let n = args.decode_tokens;
                std::thread::spawn(move || {
                    barrier.wait();
                    generator.greedy_ids(&prompt, n).map(|r| r.ids.len())
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let mut tokens = 0;
        for h in handles {
            tokens += h
                .join()
                .map_err(|_| anyhow::anyhow!("a generation thread panicked"))??;
        }
        let seconds = started.elapsed().as_secs_f64();
        concurrent.push(ConcurrentRun {
            sequences: c,
            seconds,
            aggregate_tokens_per_s: tokens as f64 / seconds,
        });
    }
    Ok((prompt, single, concurrent))
}

/// `ragd bench generate`.
pub fn run(cfg: &Config, args: &GenerateBench) -> anyhow::Result<GenerateBenchResult> {
    let load = Instant::now();
    let generator = crate::wiring::load_generator(cfg)?;
    let load_s = load.elapsed().as_secs_f64();
    let (prompt, single, concurrent) = measure(&generator, args)?;
    let info = crate::model::llm::Generator::info(generator.as_ref());
    let decoded = single.ids.len().saturating_sub(1);
    let r = GenerateBenchResult {
        model: info.model_id.clone(),
        architecture: info.architecture.clone(),
        device: cfg.generator.device.clone(),
        threads: candle_core::utils::get_num_threads(),
        load_s,
        prompt_tokens: prompt.len(),
        prefill_s: single.prefill.as_secs_f64(),
        prefill_tokens_per_s: prompt.len() as f64 / single.prefill.as_secs_f64(),
        decode_tokens: single.ids.len(),
        decode_s: single.decode.as_secs_f64(),
        decode_tokens_per_s: decoded as f64 / single.decode.as_secs_f64(),
        ids: single.ids,
        concurrent,
    };
    Ok(r)
}
