//! `ragd ask "question"`: grounded answering against a local collection.
//!
//! Retrieval, the relevance gate, the prompt and citation checking are [`crate::rag::answer`];
//! this file only parses flags and prints. With `--stream` the answer is printed a sentence at a
//! time as each passes its check against the sources; the short answer and the sources follow.
//! `--json` prints one object with the answer, its short answer, citations and timings. With
//! `--server URL` a running `ragd serve` answers (the Ask RPC, streamed), printed the same way.

use std::io::Write;
use std::ops::ControlFlow;

use clap::Args;
use index::Store;

use super::args::{ModeArg, RerankerArg};
use crate::config::Config;
use crate::rag::answer::{self, Answer, AnswerConfig};
use crate::state::AskQuery;
use crate::wiring::{Models, RerankChoice};

/// `ragd ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// The collection to answer from.
    #[arg(long, default_value = "default")]
    pub collection: String,
    /// Print the answer as it is generated, a sentence at a time as each passes its check.
    #[arg(long)]
    pub stream: bool,
    /// Print one JSON object: answer, citations, timings.
    #[arg(long)]
    pub json: bool,
    /// Sources offered to the model.
    #[arg(long, short, default_value_t = 3)]
    pub k: usize,
    /// First-stage retrieval.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    pub mode: ModeArg,
    /// Rerank the fused candidates with the configured reranker (`reranker.kind`).
    #[arg(long)]
    pub rerank: bool,
    /// Rerank with this reranker (implies --rerank): a `cross-encoder` (`reranker.model`) or the
    /// generator as a relevance judge (`llm`; one prefill per candidate, slow on a CPU).
    #[arg(long, value_enum)]
    pub reranker: Option<RerankerArg>,
    /// Most tokens to generate [default: generator.max_tokens].
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Sampling temperature, 0 = greedy [default: generator.temperature].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Least probability (0-1) by the relevance gate that the sources answer; under it the
    /// answer is "not found" without the model (local only: a server applies its own)
    /// [default: answer.gate.min_probability].
    #[arg(long)]
    pub min_relevance: Option<f32>,
    /// Ask this server (e.g. http://127.0.0.1:50051) instead of the local data folder; the
    /// answer streams in as the server checks it.
    #[arg(long, env = "RAGD_SERVER")]
    pub server: Option<String>,
}

impl AskArgs {
    fn answer_config(&self, cfg: &Config) -> AnswerConfig {
        let mut a = AnswerConfig::default();
        a.retrieve.k = self.k;
        a.retrieve.mode = self.mode.into();
        a.retrieve.rerank = self.rerank || self.reranker.is_some();
        a.gate = cfg.answer.gate;
        if let Some(p) = self.min_relevance {
            a.gate.min_probability = p;
        }
        a.generation = cfg.generator.params();
        if let Some(n) = self.max_tokens {
            a.generation.max_tokens = n;
        }
        if let Some(t) = self.temperature {
            a.generation.temperature = t;
        }
        a
    }
}

/// Prints an answer as it streams in (with `--stream`), then the answer and its sources.
struct Printer {
    stream: bool,
    streamed: String,
}

impl Printer {
    fn new(args: &AskArgs) -> Self {
        Self {
            stream: args.stream && !args.json,
            streamed: String::new(),
        }
    }

    fn piece(&mut self, piece: &str) {
        if self.stream {
            self.streamed.push_str(piece);
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{piece}");
            let _ = out.flush();
        }
    }

    fn finish(self, args: &AskArgs, a: &Answer, model: &str) {
        if args.json {
            println!("{}", answer_json(&args.question, a, model));
            return;
        }
        if !self.stream {
            println!("{}", a.text);
        } else if self.streamed.trim() != a.text.trim() {
            println!("\n\nChecked against the sources:\n{}", a.text);
        } else {
            println!();
        }
        print_sources(a);
    }
}

/// Runs `ragd ask`.
pub fn run(cfg: &Config, args: &AskArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.server {
        return run_remote(cfg, args, url);
    }
    let store = Store::open(&cfg.data_dir)?;
    let collection = store.collection(&args.collection).map_err(|e| {
        anyhow::anyhow!(
            "{e}\nIngest documents first, e.g. `ragd ingest examples/kb --collection {}`",
            args.collection
        )
    })?;
    let rerank = RerankChoice::requested(
        cfg,
        args.rerank || args.reranker.is_some(),
        args.reranker.map(Into::into),
    );
    let models = Models::load(cfg, true, &rerank)?;
    crate::jobs::check_embedder(&collection, models.embedder.as_ref())?;
    let generator = models.generator()?.clone();
    let retriever = models.retriever();
    let searcher = collection.reader().searcher();
    let acfg = args.answer_config(cfg);
    let mut printer = Printer::new(args);
    let mut sink = |piece: &str| {
        printer.piece(piece);
        ControlFlow::Continue(())
    };
    let a = answer::answer(
        &retriever,
        &searcher,
        generator.as_ref(),
        &args.question,
        &acfg,
        &mut sink,
    )?;
    printer.finish(
        args,
        &a,
        &crate::model::llm::Generator::info(generator.as_ref()).model_id,
    );
    Ok(())
}

/// `ragd ask --server`: the server's generation settings apply where no flag is given.
fn run_remote(cfg: &Config, args: &AskArgs, url: &str) -> anyhow::Result<()> {
    let acfg = args.answer_config(cfg);
    let query = AskQuery {
        collection: args.collection.clone(),
        question: args.question.clone(),
        retrieval: acfg.retrieve,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        seed: None,
        stop: Vec::new(),
    };
    let mut printer = Printer::new(args);
    let (a, model) = super::remote::ask(url, query, |piece| printer.piece(piece))?;
    printer.finish(args, &a, &model);
    Ok(())
}

/// The `--json` object of an answer.
pub fn answer_json(question: &str, a: &Answer, model: &str) -> serde_json::Value {
    serde_json::json!({
        "question": question,
        "answer": a.text,
        "not_found": a.not_found,
        "short_answer": a.short_answer,
        "citations": a.citations,
        "model": model,
        "timings": a.stats,
    })
}

/// Prints the cited sources of `a` and a line of timings.
pub fn print_sources(a: &Answer) {
    if let Some(s) = &a.short_answer {
        println!("\nShort answer: {} [{}]", s.text, s.number);
    }
    if !a.citations.is_empty() {
        println!("\nSources:");
    }
    for c in &a.citations {
        let snippet: String = c.text.chars().take(160).collect::<String>();
        let more = if c.text.chars().count() > 160 {
            "…"
        } else {
            ""
        };
        println!(
            "  [{}] {} ({}) chars {}..{}\n      \"{}{more}\"",
            c.number,
            c.doc_id,
            c.title,
            c.span_start,
            c.span_end,
            snippet.replace('\n', " ")
        );
    }
    let s = &a.stats;
    if s.prompt_tokens > 0 {
        println!(
            "\n(retrieval {:.0} ms; prompt {} tokens in {:.0} ms; first token after {:.0} ms; \
             {} tokens at {:.1} tokens/s)",
            s.retrieve_ms,
            s.prompt_tokens,
            s.prompt_ms,
            s.time_to_first_token_ms,
            s.completion_tokens,
            s.tokens_per_second
        );
    } else {
        println!(
            "\n(retrieval {:.0} ms; nothing relevant enough was found, so the model was not asked)",
            s.retrieve_ms
        );
    }
}
