//! Runs generations on dedicated OS threads, a few at a time, and streams their text to async
//! callers.
//!
//! [`GenerationPool`] owns `concurrency` threads named `ragd-generator-N` that take requests from
//! one bounded queue (TEI's `BackendThread` plus `Semaphore`, in one structure). A request that
//! finds every thread busy and the queue full is refused at once with
//! [`Refused::Overloaded`] (`RESOURCE_EXHAUSTED` over gRPC); nothing queues without bound.
//!
//! Each accepted request returns a [`GenerationStream`]: a tokio channel that yields
//! [`GenerationEvent::Text`] pieces as they are decoded, then one [`GenerationEvent::Finished`]
//! (or an error). Dropping the receiver cancels the generation: the next piece cannot be sent, the
//! generator's `on_text` returns `Break`, and the thread moves on (a request whose receiver is
//! already gone when it leaves the queue is skipped without running). A generation that panics
//! ends its stream without a `Finished` event; the thread survives.
//!
//! Why the default concurrency is 1: candle already spreads one sequence's matrix products over
//! every core, so on a small machine a second concurrent sequence only splits the same cores (and
//! doubles the KV-cache memory); raise `generator.concurrency` on machines with many cores.

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use super::Refused;
use crate::model::llm::{Generation, GenerationParams, Generator, Message};
use crate::model::ModelError;

/// Name used in [`Refused`]s.
const NAME: &str = "generator";

/// Pieces buffered per stream before the generating thread waits for the reader.
const STREAM_BUFFER: usize = 64;

/// One event of a streamed generation.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// The next piece of text (complete UTF-8, never part of a stop string).
    Text(String),
    /// The generation ended; the last event.
    Finished(Generation),
}

/// The receiving end of one generation; drop it to cancel.
pub type GenerationStream = mpsc::Receiver<Result<GenerationEvent, ModelError>>;

/// Sizes of a [`GenerationPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationPoolConfig {
    /// Generations that run at the same time (threads); at least 1.
    pub concurrency: usize,
    /// Requests that may wait for a thread before new ones are refused.
    pub queue: usize,
}

struct Request {
    work: Work,
    _slot: Slot,
}

/// What a pool thread does for one request.
enum Work {
    /// A generation streamed to `events`.
    Generate {
        messages: Vec<Message>,
        params: GenerationParams,
        events: mpsc::Sender<Result<GenerationEvent, ModelError>>,
    },
    /// Other work on the model (the LLM judge's scoring, see [`GenerationPool::run`]).
    Run(Box<dyn FnOnce() + Send>),
}

/// Counts a request as accepted (queued or running) while it lives.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(load: &Arc<AtomicUsize>) -> Self {
        load.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(load))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A generator behind a fixed set of threads and a bounded queue. Cheap to clone.
#[derive(Clone)]
pub struct GenerationPool {
    generator: Arc<dyn Generator>,
    tx: SyncSender<Request>,
    /// Requests accepted and not yet finished (or skipped).
    load: Arc<AtomicUsize>,
    /// Threads plus queue: the most requests accepted at once.
    capacity: usize,
}

impl GenerationPool {
    /// Starts `config.concurrency` threads serving `generator`.
    pub fn new(
        generator: Arc<dyn Generator>,
        config: GenerationPoolConfig,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Request>(config.queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..config.concurrency.max(1) {
            let (generator, rx) = (Arc::clone(&generator), Arc::clone(&rx));
            std::thread::Builder::new()
                .name(format!("ragd-{NAME}-{i}"))
                .spawn(move || serve(generator.as_ref(), &rx))?;
        }
        Ok(Self {
            generator,
            tx,
            load: Arc::new(AtomicUsize::new(0)),
            capacity: config.concurrency.max(1) + config.queue,
        })
    }

    /// The generator the pool runs.
    pub fn generator(&self) -> &Arc<dyn Generator> {
        &self.generator
    }

    /// Refuses at once ([`Refused::Overloaded`]) while every thread is busy and the queue is
    /// full, so a caller can give up before preparing a prompt that [`Self::generate`] would
    /// refuse. A check, not a reservation: `generate` may still refuse.
    pub fn check_room(&self) -> Result<(), Refused> {
        if self.load.load(Ordering::SeqCst) >= self.capacity {
            crate::metrics::global().generation_refused();
            Err(Refused::Overloaded(NAME))
        } else {
            Ok(())
        }
    }

    /// Requests accepted and not yet finished: running, or waiting for a thread.
    pub fn depth(&self) -> usize {
        self.load.load(Ordering::SeqCst)
    }

    /// Queues a generation; its events arrive on the returned stream. Refused at once when the
    /// queue is full.
    pub fn generate(
        &self,
        messages: Vec<Message>,
        params: GenerationParams,
    ) -> Result<GenerationStream, Refused> {
        let (events, stream) = mpsc::channel(STREAM_BUFFER);
        self.submit(Work::Generate {
            messages,
            params,
            events,
        })?;
        Ok(stream)
    }

    /// Runs `f` on a pool thread, as one request among the generations (same threads, same
    /// queue, same refusal when full), and returns its result; a panic in `f` resumes in the
    /// caller. For other work on the pool's model, such as the LLM judge scoring passages, so
    /// that it never runs beside the generations the pool is sized for.
    ///
    /// Blocks the calling thread until `f` has run: call it from blocking code (tokio's
    /// blocking pool), never on the async runtime.
    pub fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, Refused> {
        let (done, result) = sync_channel(1);
        self.submit(Work::Run(Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        })))?;
        match result.recv() {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // The threads stopped before running it.
            Err(_) => Err(Refused::Stopped(NAME)),
        }
    }

    fn submit(&self, work: Work) -> Result<(), Refused> {
        let request = Request {
            work,
            _slot: Slot::take(&self.load),
        };
        self.tx.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => {
                crate::metrics::global().generation_refused();
                Refused::Overloaded(NAME)
            }
            TrySendError::Disconnected(_) => Refused::Stopped(NAME),
        })
    }
}

/// A pool thread: takes requests until the pool is dropped.
fn serve(generator: &dyn Generator, rx: &Mutex<Receiver<Request>>) {
    loop {
        // The lock is held only while waiting for the next request; a poisoned lock still
        // guards a valid receiver.
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(request) = next else { return };
        run(generator, request);
    }
}

fn run(generator: &dyn Generator, request: Request) {
    let Request { work, _slot } = request;
    match work {
        Work::Generate {
            messages,
            params,
            events,
        } => generate(generator, &messages, &params, &events),
        // `run` catches a panic and hands it to the caller.
        Work::Run(f) => f(),
    }
}

fn generate(
    generator: &dyn Generator,
    messages: &[Message],
    params: &GenerationParams,
    events: &mpsc::Sender<Result<GenerationEvent, ModelError>>,
) {
    if events.is_closed() {
        return;
    }
    let mut on_text =
        |piece: &str| match events.blocking_send(Ok(GenerationEvent::Text(piece.into()))) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        };
    // A panic ends this request's stream (without `Finished`), never the pool thread.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        generator.generate(messages, params, &mut on_text)
    }));
    let Ok(result) = result else {
        tracing::error!("a generation panicked; its stream ends without a result");
        return;
    };
    if let Ok(g) = &result {
        use crate::metrics::{global, Stage};
        let m = global();
        m.stage(Stage::Prompt, g.prompt_time);
        if g.completion_tokens > 0 {
            m.stage(Stage::FirstToken, g.time_to_first_token);
            m.stage(Stage::Decode, g.decode_time);
        }
        m.generated(g.completion_tokens);
    }
    // The receiver may be gone (cancelled); then nobody wants the result.
    let _ = events.blocking_send(result.map(GenerationEvent::Finished));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::model::llm::{FinishReason, GeneratorInfo};

    /// Streams "tok0 tok1 ..." slowly, optionally waiting on a gate first; counts pieces sent.
    struct Ticker {
        info: GeneratorInfo,
        gate: Mutex<Option<Receiver<()>>>,
        pieces: AtomicUsize,
    }

    impl Generator for Ticker {
        fn info(&self) -> &GeneratorInfo {
            &self.info
        }
        fn prompt_tokens(&self, messages: &[Message]) -> Result<usize, ModelError> {
            Ok(messages.len())
        }
        fn count_tokens(&self, text: &str) -> Result<usize, ModelError> {
            Ok(text.split_whitespace().count())
        }
        fn generate(
            &self,
            _: &[Message],
            params: &GenerationParams,
            on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
        ) -> Result<Generation, ModelError> {
            if let Some(gate) = self.gate.lock().unwrap().take() {
                let _ = gate.recv();
            }
            assert!(params.max_tokens != 13, "unlucky request");
            let mut text = String::new();
            let mut finish = FinishReason::Length;
            for i in 0..params.max_tokens {
                let piece = format!("tok{i} ");
                self.pieces.fetch_add(1, Ordering::SeqCst);
                text.push_str(&piece);
                if on_text(&piece).is_break() {
                    finish = FinishReason::Cancelled;
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(Generation {
                text,
                finish,
                prompt_tokens: 1,
                completion_tokens: 0,
                prompt_time: Duration::ZERO,
                time_to_first_token: Duration::ZERO,
                decode_time: Duration::ZERO,
            })
        }
    }

    fn ticker(gate: Option<Receiver<()>>) -> Arc<Ticker> {
        Arc::new(Ticker {
            info: GeneratorInfo {
                model_id: "ticker".into(),
                architecture: "test".into(),
                context_length: 1 << 20,
            },
            gate: Mutex::new(gate),
            pieces: AtomicUsize::new(0),
        })
    }

    fn params(max_tokens: usize) -> GenerationParams {
        GenerationParams {
            max_tokens,
            ..GenerationParams::default()
        }
    }

    #[tokio::test]
    async fn streams_text_then_the_generation() {
        let pool = GenerationPool::new(
            ticker(None),
            GenerationPoolConfig {
                concurrency: 1,
                queue: 1,
            },
        )
        .unwrap();
        let mut stream = pool.generate(vec![], params(3)).unwrap();
        let mut pieces = String::new();
        while let Some(event) = stream.recv().await {
            match event.unwrap() {
                GenerationEvent::Text(t) => pieces.push_str(&t),
                GenerationEvent::Finished(g) => {
                    assert_eq!(g.text, pieces);
                    assert_eq!(g.finish, FinishReason::Length);
                }
            }
        }
        assert_eq!(pieces, "tok0 tok1 tok2 ");
    }

    #[tokio::test]
    async fn full_queue_is_refused_at_once() {
        let (open, gate) = std::sync::mpsc::channel();
        let pool = GenerationPool::new(
            ticker(Some(gate)),
            GenerationPoolConfig {
                concurrency: 1,
                queue: 1,
            },
        )
        .unwrap();
        let running = pool.generate(vec![], params(1)).unwrap();
        // Let the thread take the first request, so the second one waits in the queue.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.check_room(), Ok(()));
        let queued = pool.generate(vec![], params(1)).unwrap();
        assert_eq!(pool.check_room(), Err(Refused::Overloaded("generator")));
        let refused = pool.generate(vec![], params(1));
        assert_eq!(refused.err(), Some(Refused::Overloaded("generator")));
        open.send(()).unwrap();
        for mut s in [running, queued] {
            let mut last = None;
            while let Some(e) = s.recv().await {
                last = Some(e.unwrap());
            }
            assert!(matches!(last, Some(GenerationEvent::Finished(_))));
        }
        // Both finished: the room is back (the threads drop a request after its last event).
        let start = std::time::Instant::now();
        while pool.check_room().is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "room never came back"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_panicking_generation_ends_its_stream_not_the_thread() {
        let pool = GenerationPool::new(
            ticker(None),
            GenerationPoolConfig {
                concurrency: 1,
                queue: 1,
            },
        )
        .unwrap();
        let mut bad = pool.generate(vec![], params(13)).unwrap();
        assert!(bad.recv().await.is_none());
        let mut good = pool.generate(vec![], params(1)).unwrap();
        assert!(matches!(
            good.recv().await,
            Some(Ok(GenerationEvent::Text(_)))
        ));
    }

    #[tokio::test]
    async fn dropping_the_stream_cancels() {
        let gen = ticker(None);
        let pool = GenerationPool::new(
            gen.clone(),
            GenerationPoolConfig {
                concurrency: 1,
                queue: 1,
            },
        )
        .unwrap();
        let mut stream = pool.generate(vec![], params(2_000)).unwrap();
        assert!(matches!(
            stream.recv().await,
            Some(Ok(GenerationEvent::Text(_)))
        ));
        drop(stream);
        // The thread notices at its next piece; then the pool is free for new work.
        let mut next = pool.generate(vec![], params(1)).unwrap();
        while let Some(e) = next.recv().await {
            e.unwrap();
        }
        let sent = gen.pieces.load(Ordering::SeqCst);
        assert!(sent < 100, "generation went on after cancel: {sent} pieces");
    }
}
