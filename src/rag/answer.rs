//! Grounded answering: retrieve → relevance gate → prompt → generate → citations.
//!
//! The work is split in two so that callers can run generation their own way (the CLI calls the
//! generator directly; the gRPC service streams it through the bounded generation pool):
//! [`prepare`] retrieves and builds the prompt, or decides that the knowledge base has nothing
//! relevant; [`finish`] turns the generated text into an [`Answer`] with checked citations.
//! [`answer`] chains both with a direct call to the generator.
//!
//! **Relevance gate.** When the sources do not bear on the question ([`super::gate`]: chunk and
//! sentence similarity and IDF-weighted coverage of the question, combined by a fitted logistic
//! model, [`AnswerConfig::gate`]), the answer is [`NOT_FOUND`] and the model is not called: a
//! small model given irrelevant sources tends to answer anyway. Without a dense score (BM25-only
//! retrieval) the gate cannot judge and lets the model decide.
//!
//! **Citations.** The model cites `[n]` or `[n, m]`. Every cited number that names a source in
//! the prompt becomes a [`Citation`] with the chunk's document id, chunk id, char span and text, so a
//! client can highlight the exact source; a number with no such source is removed from the text
//! and from the citations.
//!
//! **Evidence and grounding.** [`prepare`] ranks the sentences of the sources against the
//! question by meaning and by words ([`super::evidence`]). Generated sentences that their best
//! evidence sentence does not support are removed, and an answer left with none quotes the best
//! evidence sentences instead ([`super::grounding`]). The answer carries a **short answer**: the
//! smallest span of the evidence that answers, with its source and exact document offsets. With
//! a reading-comprehension reader ([`Retriever::reader`]) it is the reader's span, found once
//! generation is over, and its sentence is quoted first; without one the generator copies it.
//!
//! **Streaming.** The text shown while the model writes is the checked answer, one sentence at a
//! time as each passes its check ([`AnswerBuilder`]); what was shown, joined, is the final text.

use std::ops::{ControlFlow, Range};
use std::sync::Arc;
use std::time::{Duration, Instant};

use index::config::Bm25Analyzer;
use index::ChunkSource;
use serde::Serialize;

use super::citations::check_citations;
use super::evidence::{Evidence, Span};
use super::gate::{GateFeatures, RelevanceGate};
use super::grounding;
use super::prompt::{self, GroundedPrompt, PromptBudget, NOT_FOUND};
use super::{Hit, RetrieveOptions, Retriever};
use crate::error::Result;
use crate::model::llm::{Generation, GenerationParams, Generator, Message};
use crate::model::rerank::Reader;

/// Settings of grounded answering.
#[derive(Debug, Clone)]
pub struct AnswerConfig {
    /// Retrieval; `k` is the number of sources offered to the model (default 3: on SciFact
    /// train claims, 3 sources gave answers citing a gold document 53% of the time, 5 sources
    /// 45% — a small model is distracted by more; BENCHMARKS.md).
    pub retrieve: RetrieveOptions,
    /// Whether the sources bear on the question at all ([`super::gate`]).
    pub gate: RelevanceGate,
    /// Most tokens of prompt plus reply (capped by the model's context). Prompt processing
    /// costs time on a CPU (SmolLM2 on 2 cores: ~500 tokens/s), so this stays well under a
    /// large model context.
    pub context_tokens: usize,
    /// Decoding parameters; `max_tokens` (at most a quarter of `context_tokens`) is reserved
    /// in the context.
    pub generation: GenerationParams,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        Self {
            retrieve: RetrieveOptions {
                k: 3,
                ..RetrieveOptions::default()
            },
            gate: RelevanceGate::default(),
            context_tokens: 2048,
            generation: GenerationParams::default(),
        }
    }
}

/// The first half of answering: what was retrieved, and the prompt unless nothing is relevant.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The question.
    pub question: String,
    /// The prompt to generate from; `None` when the answer is [`NOT_FOUND`] without the model.
    pub prompt: Option<GroundedPrompt>,
    /// The prompt sources' sentences ranked against the question (with the prompt).
    pub evidence: Option<Evidence>,
    /// Chunks retrieved.
    pub retrieved: usize,
    /// What the relevance gate judged, if dense scores were computed.
    pub gate: Option<GateFeatures>,
    /// The gate's probability that the sources answer (`None` without features).
    pub relevance: Option<f32>,
    /// Time spent retrieving, reranking included.
    pub retrieve_time: Duration,
    /// The rerank stage's share of `retrieve_time`.
    pub rerank_time: Duration,
    /// The reading-comprehension reader ([`Retriever::reader`]) that finds the short answer
    /// once generation is over; `None` without one.
    pub reader: Option<ReaderHandle>,
}

/// A shared [`Reader`], for [`Prepared`].
#[derive(Clone)]
pub struct ReaderHandle(pub Arc<dyn Reader>);

impl std::fmt::Debug for ReaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReaderHandle")
            .field(&self.0.model_id())
            .finish()
    }
}

/// One source the answer cites.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Citation {
    /// The number used in the answer text.
    pub number: usize,
    /// Document id.
    pub doc_id: String,
    /// Chunk id.
    pub chunk_id: u64,
    /// Document title.
    pub title: String,
    /// Start of the chunk in the document, in chars.
    pub span_start: usize,
    /// End (exclusive) of the chunk in the document, in chars.
    pub span_end: usize,
    /// The chunk's text: the exact source of the cited statements.
    pub text: String,
}

/// The smallest span of the sources that answers the question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShortAnswer {
    /// The span's text, exactly as in the source.
    pub text: String,
    /// The number of the source it is in (as cited in the answer text).
    pub number: usize,
    /// Document id.
    pub doc_id: String,
    /// Start of the span in the document, in chars.
    pub span_start: usize,
    /// End (exclusive) of the span in the document, in chars.
    pub span_end: usize,
}

/// Timings and token counts of one answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnswerStats {
    /// Retrieval time in ms, reranking included.
    pub retrieve_ms: f64,
    /// The rerank stage's share of `retrieve_ms` (0 without reranking).
    pub rerank_ms: f64,
    /// Time the reader took to find the short answer, in ms (0 without a reader).
    pub read_ms: f64,
    /// Tokens of the prompt (0 when the model was not called).
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Prompt processing time in ms.
    pub prompt_ms: f64,
    /// From the generation call to the first streamed text, in ms.
    pub time_to_first_token_ms: f64,
    /// From the generation call to the first checked text shown (a sentence that passed its
    /// check, or the whole answer when none could be shown earlier), in ms.
    pub first_text_ms: f64,
    /// Decode speed in tokens per second.
    pub tokens_per_second: f64,
    /// Sources offered to the model.
    pub sources_used: usize,
    /// Retrieved chunks that did not fit the context.
    pub sources_dropped: usize,
    /// Generated sentences removed because the sources do not support them
    /// ([`super::grounding`]).
    pub unsupported_removed: usize,
    /// True when no generated sentence was supported and the answer quotes the sources.
    pub extractive: bool,
}

/// A grounded answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The answer text, with citation markers that name real sources only.
    pub text: String,
    /// Whether the knowledge base has no answer (by the relevance gate or the model's reply).
    pub not_found: bool,
    /// The cited sources, in order of first citation.
    pub citations: Vec<Citation>,
    /// The minimal span that answers, when the answer found one.
    pub short_answer: Option<ShortAnswer>,
    /// Timings and token counts.
    pub stats: AnswerStats,
}

/// Retrieves for `question` and builds its prompt, or decides it is not answerable.
pub fn prepare(
    retriever: &Retriever,
    searcher: &dyn ChunkSource,
    generator: &dyn Generator,
    question: &str,
    cfg: &AnswerConfig,
) -> Result<Prepared> {
    let started = Instant::now();
    let (hits, times) = retriever.retrieve_timed(searcher, question, &cfg.retrieve)?;
    let rerank_time = times.rerank.unwrap_or_default();
    let retrieve_time = started.elapsed();
    cfg.retrieve.check_deadline()?;
    let mut prepared = Prepared {
        question: question.to_string(),
        prompt: None,
        evidence: None,
        retrieved: hits.len(),
        gate: None,
        relevance: None,
        retrieve_time,
        rerank_time,
        reader: retriever.reader().cloned().map(ReaderHandle),
    };
    if hits.is_empty() {
        return Ok(prepared);
    }
    let texts: Vec<&str> = hits.iter().map(|h| h.chunk.text.as_str()).collect();
    let mut evidence = Evidence::gather(retriever.embedder().clone(), question, &texts)?;
    prepared.gate = GateFeatures::measure(searcher, question, &hits, &evidence)?;
    prepared.relevance = prepared.gate.map(|f| cfg.gate.probability(&f));
    if prepared
        .relevance
        .is_some_and(|p| p < cfg.gate.min_probability)
    {
        return Ok(prepared);
    }
    cfg.retrieve.check_deadline()?;
    // A long reply never crowds out the sources: at most a quarter of the context is
    // reserved for it (generation then stops when the context is full).
    let budget = PromptBudget {
        context_tokens: cfg.context_tokens,
        reply_tokens: cfg.generation.max_tokens.min(cfg.context_tokens / 4),
    };
    let p = prompt::build(generator, question, &hits, budget)?;
    if p.sources.is_empty() {
        return Ok(prepared);
    }
    // The prompt keeps the best sources that fit, in retrieval order.
    evidence.keep_sources(p.sources.len());
    prepared.prompt = Some(p);
    prepared.evidence = Some(evidence);
    Ok(prepared)
}

/// How much more the reader believes a passage's span than "no answer here": the span's
/// score less the passage's `[CLS]` score. Raw span scores compare poorly across passages (each
/// window's logits are softmaxed on their own in training); the margin over the window's own
/// no-answer score is what SQuAD 2.0 readers rank answers by.
fn margin(span: &crate::model::rerank::ReadSpan) -> f32 {
    span.score - span.null_score
}

/// The reader's best span over the prompt's sources (by [`margin`]), widened to whole words;
/// the evidence sentence holding it is ranked first, so an answer that quotes the evidence
/// quotes it.
fn read(
    reader: &dyn Reader,
    question: &str,
    prompt: &GroundedPrompt,
    evidence: &mut Evidence,
) -> Result<Option<Span>> {
    let texts: Vec<&str> = prompt
        .sources
        .iter()
        .map(|s| s.hit.chunk.text.as_str())
        .collect();
    let spans = reader.read(question, &texts)?;
    let best = spans
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (i, s)))
        .max_by(|a, b| margin(&a.1).total_cmp(&margin(&b.1)).then(b.0.cmp(&a.0)));
    let Some((i, span)) = best else {
        return Ok(None);
    };
    let range = whole_words(texts[i], span.range);
    Ok(evidence.rank_first(i + 1, range))
}

/// Turns the generated text into the checked [`Answer`]: citations checked, unsupported
/// sentences removed ([`super::grounding`]), the short answer found. Without a prompt or a
/// generation the answer is [`NOT_FOUND`]. Embeds the generated sentences to check them: run it
/// off the async runtime.
pub fn finish(prepared: &Prepared, generation: Option<&Generation>) -> Result<Answer> {
    let mut builder = AnswerBuilder::new();
    if let Some(g) = generation {
        builder.push(&g.text);
    }
    let mut answer = builder.finish(prepared, generation)?.0;
    // Nothing was shown while generating: there is no time to first text to report.
    answer.stats.first_text_ms = 0.0;
    Ok(answer)
}

/// An answer built while its generation streams (the Ask stream, `ragd ask --stream`): the
/// text to show comes one checked sentence at a time, so a client that prints it never shows a
/// sentence that the final answer removes. What it shows, joined, is the final answer's text.
///
/// [`AnswerBuilder::push`] each generated piece; when it returns true call
/// [`AnswerBuilder::settle`] (it embeds the complete sentences: blocking work) and show what it
/// returns; then [`AnswerBuilder::finish`] gives the [`Answer`] and the text still to show.
#[derive(Debug)]
pub struct AnswerBuilder {
    grounder: grounding::Grounder,
    started: Instant,
    first_text: Option<Duration>,
}

impl Default for AnswerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl AnswerBuilder {
    /// A builder for a generation that starts now.
    pub fn new() -> Self {
        Self {
            grounder: grounding::Grounder::default(),
            started: Instant::now(),
            first_text: None,
        }
    }

    /// Appends generated text; true when a sentence may be complete and
    /// [`AnswerBuilder::settle`] has work.
    pub fn push(&mut self, piece: &str) -> bool {
        self.grounder.push(piece)
    }

    /// Checks the complete sentences; returns the text to show now (often empty).
    pub fn settle(&mut self, prepared: &Prepared) -> Result<String> {
        let (Some(prompt), Some(evidence)) = (&prepared.prompt, &prepared.evidence) else {
            return Ok(String::new());
        };
        let shown = self.grounder.settle(evidence, prompt.sources.len())?;
        if !shown.is_empty() && self.first_text.is_none() {
            self.first_text = Some(self.started.elapsed());
        }
        Ok(shown)
    }

    /// The checked answer, and the text to show that was not shown yet: the answer's text is
    /// what [`AnswerBuilder::settle`] returned, joined, followed by this.
    pub fn finish(
        self,
        prepared: &Prepared,
        generation: Option<&Generation>,
    ) -> Result<(Answer, String)> {
        // The reader runs once generation is over, so the first token never waits for it; the
        // sentence holding its span is what an answer that quotes the evidence quotes first.
        let (mut read_evidence, mut read_span, mut read_time) = (None, None, Duration::ZERO);
        if let (Some(reader), Some(prompt), Some(evidence), Some(_)) = (
            &prepared.reader,
            &prepared.prompt,
            &prepared.evidence,
            generation,
        ) {
            let started = Instant::now();
            let mut evidence = evidence.clone();
            read_span = read(reader.0.as_ref(), &prepared.question, prompt, &mut evidence)?;
            read_evidence = Some(evidence);
            read_time = started.elapsed();
        }
        let first_text = self.first_text.unwrap_or_else(|| self.started.elapsed());
        let mut stats = AnswerStats {
            retrieve_ms: ms(prepared.retrieve_time),
            rerank_ms: ms(prepared.rerank_time),
            read_ms: ms(read_time),
            ..AnswerStats::default()
        };
        let evidence = read_evidence.as_ref().or(prepared.evidence.as_ref());
        let (Some(prompt), Some(evidence), Some(generation)) =
            (&prepared.prompt, evidence, generation)
        else {
            let answer = not_found(stats);
            let tail = answer.text.clone();
            return Ok((answer, tail));
        };
        stats.prompt_tokens = generation.prompt_tokens;
        stats.completion_tokens = generation.completion_tokens;
        stats.prompt_ms = ms(generation.prompt_time);
        stats.time_to_first_token_ms = ms(generation.time_to_first_token);
        stats.first_text_ms = ms(first_text);
        let decode = generation.decode_time.as_secs_f64();
        if decode > 0.0 {
            stats.tokens_per_second =
                generation.completion_tokens.saturating_sub(1) as f64 / decode;
        }
        stats.sources_used = prompt.sources.len();
        stats.sources_dropped = prompt.dropped;
        let shown = self.grounder.shown().to_string();
        let (g, mut tail) =
            self.grounder
                .end(&prepared.question, evidence, prompt.sources.len())?;
        stats.unsupported_removed = g.removed;
        stats.extractive = g.extractive;
        // Grounded text holds checked markers only, so this changes nothing but lists them.
        let (text, numbers) = check_citations(&g.text, prompt.sources.len());
        if g.not_found || text.trim().is_empty() {
            let answer = not_found(stats);
            if shown.is_empty() {
                tail = answer.text.clone();
            }
            return Ok((answer, tail));
        }
        debug_assert_eq!(text, format!("{shown}{tail}"));
        let citations: Vec<Citation> = numbers
            .iter()
            .map(|&n| citation(&prompt.sources[n - 1].hit, n))
            .collect();
        // A question asking for a number, date, name or place takes the span of that kind in
        // the answer's sentence ([`super::typed`]); the short-answer step then leaves it.
        // The reader's span, when there is a reader, wins over both.
        let short = match (read_span, g.short) {
            (Some(read), _) => Some(read),
            (None, Some(span)) => evidence.typed_answer(span.sentence).or(Some(span)),
            (None, None) => evidence.typed_answer(0),
        };
        let short_answer = short.map(|span| short_answer(evidence, &span, &prompt.sources[..]));
        let answer = Answer {
            text,
            not_found: false,
            citations,
            short_answer,
            stats,
        };
        Ok((answer, tail))
    }
}

/// Most tokens of a short answer.
pub const SHORT_ANSWER_TOKENS: usize = 16;

/// The generation that finds an answer's short answer: the model copies, from the evidence
/// sentence the answer rests on, the words that answer the question.
#[derive(Debug, Clone)]
pub struct ShortRequest {
    /// The prompt ([`prompt::short_answer_messages`]).
    pub messages: Vec<Message>,
    /// Greedy, at most [`SHORT_ANSWER_TOKENS`], copying from the sentence.
    pub params: GenerationParams,
    /// Index of the sentence in the evidence.
    sentence: usize,
}

/// The [`ShortRequest`] for `answer`, or `None` when it has no evidence to copy from (not
/// found), its short answer is typed ([`Evidence::typed_answer`]) or a reader found it. The
/// sentence is the one its word-level short answer lies in, else the best one.
pub fn short_request(prepared: &Prepared, answer: &Answer) -> Option<ShortRequest> {
    let evidence = prepared.evidence.as_ref()?;
    if answer.not_found || evidence.sentences.is_empty() || prepared.reader.is_some() {
        return None;
    }
    let sentence = answer
        .short_answer
        .as_ref()
        .and_then(|short| {
            evidence
                .sentences
                .iter()
                .position(|s| s.source == short.number && s.text.contains(&short.text))
        })
        .unwrap_or(0);
    if evidence.typed_answer(sentence).is_some() {
        return None;
    }
    let segments = evidence.answer_segments(sentence);
    if segments.is_empty() {
        return None;
    }
    let text = &evidence.sentences[sentence].text;
    Some(ShortRequest {
        messages: prompt::short_answer_messages(&prepared.question, text),
        params: GenerationParams {
            max_tokens: SHORT_ANSWER_TOKENS,
            temperature: 0.0,
            repeat_penalty: 1.0,
            stop: vec!["\n".into()],
            copy_from: segments,
            ..GenerationParams::default()
        },
        sentence,
    })
}

/// Replaces `answer`'s short answer with what the model copied for `request`, when that is a
/// non-empty phrase of the sentence; otherwise the word-level one stays.
pub fn apply_short(
    prepared: &Prepared,
    answer: &mut Answer,
    request: &ShortRequest,
    generation: &Generation,
) {
    let (Some(evidence), Some(prompt)) = (&prepared.evidence, &prepared.prompt) else {
        return;
    };
    let Some(s) = evidence.sentences.get(request.sentence) else {
        return;
    };
    let copied = generation
        .text
        .trim()
        .trim_end_matches(['.', ',', ';', ':', '!', '?'])
        .trim_end();
    if copied.is_empty() || crate::rag::evidence::terms(copied).is_empty() {
        return;
    }
    let Some(at) = s.text.find(copied) else {
        return;
    };
    let mut words = whole_words(&s.text, at..at + copied.len());
    // A copy that ran on past its answer ("jellyfish and", "Henry Cole, the") ends at its last
    // content term.
    let located = index::sparse::located_terms(Bm25Analyzer::Multilingual, &s.text[words.clone()]);
    match located.last() {
        Some((_, last)) => words.end = words.start + last.end,
        None => return,
    }
    let span = Span {
        sentence: request.sentence,
        range: s.range.start + words.start..s.range.start + words.end,
    };
    answer.short_answer = Some(short_answer(evidence, &span, &prompt.sources));
}

/// `range` of `text` widened to whole words: a copy that stopped inside a word ("Nort")
/// takes the word ("North"). CJK text has no spaces to widen to and stays as copied.
fn whole_words(text: &str, range: Range<usize>) -> Range<usize> {
    let inside = |c: char| c.is_alphanumeric() && !index::sparse::is_cjk(c);
    let start = text[..range.start]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| inside(c))
        .last()
        .map_or(range.start, |(i, _)| i);
    let end = range.end
        + text[range.end..]
            .chars()
            .take_while(|&c| inside(c))
            .map(char::len_utf8)
            .sum::<usize>();
    let first = text[range.start..].chars().next();
    let last = text[..range.end].chars().next_back();
    // Widen only where the copy itself starts or ends inside a word.
    let start = if first.is_some_and(inside) {
        start
    } else {
        range.start
    };
    let end = if last.is_some_and(inside) {
        end
    } else {
        range.end
    };
    start..end
}

/// Runs the short-answer step of `answer` with a direct call to `generator`.
pub fn shorten(prepared: &Prepared, answer: &mut Answer, generator: &dyn Generator) -> Result<()> {
    let Some(request) = short_request(prepared, answer) else {
        return Ok(());
    };
    let generation = generator.generate(&request.messages, &request.params, &mut |_| {
        ControlFlow::Continue(())
    })?;
    apply_short(prepared, answer, &request, &generation);
    Ok(())
}

fn not_found(stats: AnswerStats) -> Answer {
    Answer {
        text: NOT_FOUND.to_string(),
        not_found: true,
        citations: Vec::new(),
        short_answer: None,
        stats,
    }
}

/// The [`ShortAnswer`] of `span`, with document offsets in chars.
fn short_answer(evidence: &Evidence, span: &Span, sources: &[prompt::PromptSource]) -> ShortAnswer {
    let number = evidence.sentences[span.sentence].source;
    let chunk = &sources[number - 1].hit.chunk;
    let before = chunk.text[..span.range.start].chars().count();
    let text = &chunk.text[span.range.clone()];
    let start = chunk.span_start + before;
    ShortAnswer {
        text: text.to_string(),
        number,
        doc_id: chunk.doc_id.clone(),
        span_start: start,
        span_end: start + text.chars().count(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn citation(hit: &Hit, number: usize) -> Citation {
    let c = &hit.chunk;
    Citation {
        number,
        doc_id: c.doc_id.clone(),
        chunk_id: c.id.0,
        title: c.title.clone(),
        span_start: c.span_start,
        span_end: c.span_end,
        text: c.text.clone(),
    }
}

/// Retrieves, generates with a direct call to `generator` and returns the answer; `on_text`
/// is shown the answer's text as its sentences pass their checks ([`AnswerBuilder`]).
/// Blocks; run it off the async runtime.
pub fn answer(
    retriever: &Retriever,
    searcher: &dyn ChunkSource,
    generator: &dyn Generator,
    question: &str,
    cfg: &AnswerConfig,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Answer> {
    let prepared = prepare(retriever, searcher, generator, question, cfg)?;
    answer_prepared(&prepared, generator, cfg, on_text)
}

/// The rest of [`answer`] after [`prepare`]: generation through an [`AnswerBuilder`] (showing
/// `on_text` each checked sentence), then the short-answer step.
pub fn answer_prepared(
    prepared: &Prepared,
    generator: &dyn Generator,
    cfg: &AnswerConfig,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Answer> {
    let Some(prompt) = &prepared.prompt else {
        let answer = finish(prepared, None)?;
        let _ = on_text(&answer.text);
        return Ok(answer);
    };
    let mut builder = AnswerBuilder::new();
    let mut failed = None;
    let generation = generator.generate(&prompt.messages, &cfg.generation, &mut |piece| {
        if !builder.push(piece) {
            return ControlFlow::Continue(());
        }
        match builder.settle(prepared) {
            Ok(shown) if shown.is_empty() => ControlFlow::Continue(()),
            Ok(shown) => on_text(&shown),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let (mut answer, tail) = builder.finish(prepared, Some(&generation))?;
    if !tail.is_empty() {
        let _ = on_text(&tail);
    }
    shorten(prepared, &mut answer, generator)?;
    Ok(answer)
}

#[cfg(test)]
mod tests;
