//! [`PooledReranker`]: a reranker that runs on a [`GenerationPool`]'s threads.
//!
//! The LLM judge (`reranker.kind = "llm"`) runs the generator's model, one prefill per passage.
//! Run beside the pool it would double the model's load past what `generator.concurrency` was
//! sized for and escape the pool's queue; through the pool, a rerank is one request among the
//! generations: it waits for a thread, and is refused (RESOURCE_EXHAUSTED) when every thread is
//! busy and the queue is full.

use std::sync::Arc;

use super::{GenerationPool, Refused};
use crate::model::rerank::{RerankError, Reranker};

/// A reranker whose calls run on `pool`'s threads (see the module docs).
pub struct PooledReranker {
    inner: Arc<dyn Reranker>,
    pool: GenerationPool,
}

impl PooledReranker {
    /// `inner`, run on `pool`.
    pub fn new(inner: Arc<dyn Reranker>, pool: GenerationPool) -> Self {
        Self { inner, pool }
    }
}

impl Reranker for PooledReranker {
    /// Blocks until a pool thread has scored the passages: call from blocking code.
    fn rerank(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, RerankError> {
        let inner = Arc::clone(&self.inner);
        let query = query.to_owned();
        let passages: Vec<String> = passages.iter().map(|&p| p.to_owned()).collect();
        let scored = self.pool.run(move || {
            let passages: Vec<&str> = passages.iter().map(String::as_str).collect();
            inner.rerank(&query, &passages)
        });
        match scored {
            Ok(scores) => scores,
            Err(Refused::Overloaded(name)) => Err(RerankError::Overloaded(name)),
            Err(Refused::Stopped(name)) => Err(RerankError::Stopped(name)),
        }
    }

    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn max_candidates(&self) -> usize {
        self.inner.max_candidates()
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::model::llm::{Generation, GenerationParams, Generator, GeneratorInfo, Message};
    use crate::model::ModelError;
    use crate::serving::GenerationPoolConfig;

    /// The pool's model; these tests give its threads other work only.
    struct Unused(GeneratorInfo);

    impl Generator for Unused {
        fn info(&self) -> &GeneratorInfo {
            &self.0
        }
        fn prompt_tokens(&self, _: &[Message]) -> Result<usize, ModelError> {
            unreachable!("not a generation test")
        }
        fn count_tokens(&self, _: &str) -> Result<usize, ModelError> {
            unreachable!("not a generation test")
        }
        fn generate(
            &self,
            _: &[Message],
            _: &GenerationParams,
            _: &mut dyn FnMut(&str) -> ControlFlow<()>,
        ) -> Result<Generation, ModelError> {
            unreachable!("not a generation test")
        }
    }

    /// Scores a passage by its length and records which thread scored it.
    struct Lengths(mpsc::Sender<String>);

    impl Reranker for Lengths {
        fn rerank(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, RerankError> {
            assert!(query != "panic", "asked to panic");
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            self.0.send(thread).unwrap();
            Ok(passages.iter().map(|p| p.len() as f32).collect())
        }
        fn model_id(&self) -> &str {
            "lengths"
        }
        fn max_candidates(&self) -> usize {
            20
        }
    }

    fn pool() -> GenerationPool {
        let info = GeneratorInfo {
            model_id: "unused".into(),
            architecture: "test".into(),
            context_length: 1024,
        };
        let config = GenerationPoolConfig {
            concurrency: 1,
            queue: 1,
        };
        GenerationPool::new(Arc::new(Unused(info)), config).unwrap()
    }

    /// Occupies `pool`'s thread until the returned sender is used or dropped.
    fn occupy(pool: &GenerationPool) -> mpsc::Sender<()> {
        let (release, released) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel();
        let pool = pool.clone();
        std::thread::spawn(move || {
            pool.run(move || {
                started.send(()).unwrap();
                let _ = released.recv();
            })
        });
        running.recv_timeout(Duration::from_secs(30)).unwrap();
        release
    }

    #[test]
    fn scores_on_the_pool_threads() {
        let (seen, threads) = mpsc::channel();
        let judge = PooledReranker::new(Arc::new(Lengths(seen)), pool());
        let scores = judge.rerank("q", &["a", "abc"]).unwrap();
        assert_eq!(scores, vec![1.0, 3.0]);
        assert!(threads.recv().unwrap().starts_with("ragd-generator-"));
        assert_eq!((judge.model_id(), judge.max_candidates()), ("lengths", 20));
    }

    /// A rerank waits for a busy thread while the queue has room, and is refused once it is
    /// full, like a generation (RESOURCE_EXHAUSTED: see grpc/status.rs).
    #[test]
    fn waits_for_the_pool_and_is_refused_when_it_is_full() {
        let pool = pool();
        let (seen, _threads) = mpsc::channel();
        let judge = Arc::new(PooledReranker::new(Arc::new(Lengths(seen)), pool.clone()));
        let release = occupy(&pool);

        let (done, finished) = mpsc::channel();
        let waiting = Arc::clone(&judge);
        std::thread::spawn(move || done.send(waiting.rerank("q", &["ab"])).unwrap());
        assert!(finished.recv_timeout(Duration::from_millis(200)).is_err());

        // One running, one queued: the pool is full.
        let refused = judge.rerank("q", &["ab"]).unwrap_err();
        assert_eq!(refused, RerankError::Overloaded("generator"));

        release.send(()).unwrap();
        let scores = finished.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(scores.unwrap(), vec![2.0]);
    }

    #[test]
    fn a_panicking_rerank_panics_its_caller_not_the_pool() {
        let pool = pool();
        let (seen, _threads) = mpsc::channel();
        let judge = PooledReranker::new(Arc::new(Lengths(seen)), pool);
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| judge.rerank("panic", &[])));
        assert!(caught.is_err());
        assert_eq!(judge.rerank("q", &["a"]).unwrap(), vec![1.0]);
    }
}
