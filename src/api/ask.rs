//! Ask, as both skins serve it: retrieval and the prompt on the blocking pool, the generation
//! on the generation pool, and the answer streamed a checked sentence at a time
//! ([`AskEvent::Delta`]; the deltas joined are the final text), then [`AskEvent::Final`] with
//! the citations and the short answer. A caller that drops the receiver drops the generation
//! stream, which cancels the generation at its next token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{stop_at, within};
use crate::error::{Result, ServiceError};
use crate::model::llm::{FinishReason, Generation};
use crate::rag::answer::{self, Answer, Prepared};
use crate::serving::{GenerationEvent, GenerationPool, GenerationStream};
use crate::state::{AppState, AskQuery};

/// One message of a streamed answer.
#[derive(Debug)]
pub enum AskEvent {
    /// Text that passed its check: shown now, never removed later.
    Delta(String),
    /// The whole answer; the last message.
    Final(Box<Finished>),
}

/// A finished answer.
#[derive(Debug)]
pub struct Finished {
    /// The answer: text, citations, short answer, timings.
    pub answer: Answer,
    /// From the request to the answer, in ms.
    pub total_ms: f64,
    /// The generator's model id.
    pub model: String,
    /// Why the generation ended (`None` when the model was not called).
    pub finish: Option<FinishReason>,
}

/// The messages of one answer; an error ends it.
pub type AskEvents = mpsc::Receiver<Result<AskEvent>>;

/// Starts answering `query`: refused at once while the generator is full, otherwise retrieves
/// and builds the prompt within `limit` and returns the stream of the answer.
pub async fn ask(
    state: &AppState,
    mut query: AskQuery,
    limit: Option<Duration>,
) -> Result<AskEvents> {
    let started = Instant::now();
    query.retrieval.deadline = stop_at(limit);
    let pool = state.generation()?.clone();
    let prepared = state.blocking(move |s| s.prepare_answer(&query));
    let (prepared, params) = within(limit, prepared).await?;
    let events = match &prepared.prompt {
        Some(prompt) => Some(
            pool.generate(prompt.messages.clone(), params)
                .map_err(ServiceError::from)?,
        ),
        None => None,
    };
    Ok(answer_stream(prepared, events, pool, started))
}

fn answer_stream(
    prepared: Prepared,
    events: Option<GenerationStream>,
    pool: GenerationPool,
    started: Instant,
) -> AskEvents {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let prepared = Arc::new(prepared);
        let builder = answer::AnswerBuilder::new();
        let (builder, generation) = match events {
            None => (builder, None),
            Some(events) => match relay(events, builder, &prepared, &tx).await {
                Some((builder, g)) => (builder, Some(g)),
                None => return,
            },
        };
        let finish = generation.as_ref().map(|g| g.finish);
        // Checking embeds the generated sentences: off the async runtime.
        let finishing = prepared.clone();
        let finished =
            tokio::task::spawn_blocking(move || builder.finish(&finishing, generation.as_ref()))
                .await;
        let (mut answer, tail) = match finished {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(e) => {
                let e = ServiceError::Internal(format!("checking the answer failed: {e}"));
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if !tail.is_empty() && tx.send(Ok(AskEvent::Delta(tail))).await.is_err() {
            return;
        }
        shorten(&prepared, &mut answer, &pool).await;
        let done = Finished {
            answer,
            total_ms: started.elapsed().as_secs_f64() * 1e3,
            model: pool.generator().info().model_id.clone(),
            finish,
        };
        let _ = tx.send(Ok(AskEvent::Final(Box::new(done)))).await;
    });
    rx
}

/// The short-answer step through the generation pool. When the pool is full or the step fails,
/// the answer keeps its word-level short answer: the step refines, it never fails the answer.
async fn shorten(prepared: &Prepared, answer: &mut Answer, pool: &GenerationPool) {
    let Some(request) = answer::short_request(prepared, answer) else {
        return;
    };
    let mut events = match pool.generate(request.messages.clone(), request.params.clone()) {
        Ok(events) => events,
        Err(refused) => {
            tracing::debug!(%refused, "short answer left word-level");
            return;
        }
    };
    while let Some(event) = events.recv().await {
        match event {
            Ok(GenerationEvent::Text(_)) => {}
            Ok(GenerationEvent::Finished(g)) => {
                answer::apply_short(prepared, answer, &request, &g);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the short-answer generation failed");
                return;
            }
        }
    }
}

/// Feeds the generated pieces to `builder` and sends each checked sentence as it passes;
/// returns the builder and the finished generation, or `None` when the caller left or the
/// generation or a check failed (the failure is sent as the stream's last message).
async fn relay(
    mut events: GenerationStream,
    mut builder: answer::AnswerBuilder,
    prepared: &Arc<Prepared>,
    tx: &mpsc::Sender<Result<AskEvent>>,
) -> Option<(answer::AnswerBuilder, Generation)> {
    while let Some(event) = events.recv().await {
        match event {
            Ok(GenerationEvent::Text(piece)) => {
                if !builder.push(&piece) {
                    if tx.is_closed() {
                        return None;
                    }
                    continue;
                }
                // Checking embeds the sentence: off the async runtime, while the model goes on.
                let p = prepared.clone();
                let settled = tokio::task::spawn_blocking(move || {
                    let shown = builder.settle(&p);
                    (builder, shown)
                })
                .await;
                let shown = match settled {
                    Ok((b, Ok(shown))) => {
                        builder = b;
                        shown
                    }
                    Ok((_, Err(e))) => {
                        let _ = tx.send(Err(e)).await;
                        return None;
                    }
                    Err(e) => {
                        let e = ServiceError::Internal(format!("checking the answer failed: {e}"));
                        let _ = tx.send(Err(e)).await;
                        return None;
                    }
                };
                if !shown.is_empty() && tx.send(Ok(AskEvent::Delta(shown))).await.is_err() {
                    return None;
                }
            }
            Ok(GenerationEvent::Finished(g)) => return Some((builder, g)),
            Err(e) => {
                let _ = tx.send(Err(ServiceError::from(e))).await;
                return None;
            }
        }
    }
    let lost = ServiceError::Internal("the generation ended without a result".into());
    let _ = tx.send(Err(lost)).await;
    None
}
