//! `ragd generate`: one plain chat turn with the configured generator, streamed to stdout, with
//! token rates on stderr. Meant for trying a model and for benchmarking decode speed; grounded
//! answers are `ragd ask`.

use std::io::Write;
use std::ops::ControlFlow;
use std::time::Instant;

use clap::Args;

use crate::config::Config;
use crate::model::llm::{Generation, Generator, Message, Role};

/// `ragd generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The user's message.
    pub prompt: String,
    /// An optional system message.
    #[arg(long)]
    pub system: Option<String>,
    /// Most tokens to generate [default: generator.max_tokens].
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Sampling temperature; 0 is greedy [default: generator.temperature].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Sampler seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop before this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Print one JSON object (text, token counts, timings) instead of streaming.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ragd generate`.
pub fn run(cfg: &Config, args: &GenerateArgs) -> anyhow::Result<()> {
    let load = Instant::now();
    let generator = crate::wiring::load_generator(cfg)?;
    let load_time = load.elapsed();
    let mut params = cfg.generator.params();
    params.max_tokens = args.max_tokens.unwrap_or(params.max_tokens);
    params.temperature = args.temperature.unwrap_or(params.temperature);
    params.seed = args.seed.unwrap_or(params.seed);
    params.stop.clone_from(&args.stop);
    let mut messages: Vec<Message> = args
        .system
        .iter()
        .map(|s| Message::new(Role::System, s.as_str()))
        .collect();
    messages.push(Message::new(Role::User, args.prompt.as_str()));
    let stream = !args.json;
    let mut stdout = std::io::stdout().lock();
    let mut on_text = |piece: &str| {
        if stream && (stdout.write_all(piece.as_bytes()).is_err() || stdout.flush().is_err()) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    };
    let gen = generator.generate(&messages, &params, &mut on_text)?;
    report(
        &gen,
        generator.info().model_id.as_str(),
        load_time,
        args.json,
    )
}

fn rate(tokens: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        tokens as f64 / secs
    } else {
        0.0
    }
}

fn report(
    gen: &Generation,
    model: &str,
    load_time: std::time::Duration,
    json: bool,
) -> anyhow::Result<()> {
    let prompt_tps = rate(gen.prompt_tokens, gen.prompt_time.as_secs_f64());
    // The first completion token comes from the prefill; the decode phase made the rest.
    let decode_tps = rate(
        gen.completion_tokens.saturating_sub(1),
        gen.decode_time.as_secs_f64(),
    );
    if json {
        let value = serde_json::json!({
            "model": model,
            "text": gen.text,
            "finish": gen.finish,
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "load_s": load_time.as_secs_f64(),
            "prompt_s": gen.prompt_time.as_secs_f64(),
            "ttft_s": gen.time_to_first_token.as_secs_f64(),
            "decode_s": gen.decode_time.as_secs_f64(),
            "prompt_tokens_per_s": prompt_tps,
            "decode_tokens_per_s": decode_tps,
        });
        println!("{value}");
    } else {
        println!();
        eprintln!(
            "[{model}] finish={:?} prompt {} tok in {:.3}s ({prompt_tps:.1} tok/s), \
             {} tok generated in {:.3}s ({decode_tps:.1} tok/s decode), ttft {:.3}s, load {:.2}s",
            gen.finish,
            gen.prompt_tokens,
            gen.prompt_time.as_secs_f64(),
            gen.completion_tokens,
            gen.decode_time.as_secs_f64(),
            gen.time_to_first_token.as_secs_f64(),
            load_time.as_secs_f64(),
        );
    }
    Ok(())
}
