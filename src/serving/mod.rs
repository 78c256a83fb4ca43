//! Serving models to concurrent requests without queueing without bound.
//!
//! Two admission points, one refusal type ([`Refused`]):
//! - [`RequestGate`]: the embed / search / write work of requests runs on tokio's blocking pool
//!   behind a fixed number of permits (`embedder.queue`); past that many in flight, a new request
//!   is refused at once (TEI's `Semaphore` in core/infer.rs).
//! - [`GenerationPool`]: generations run on a few dedicated threads fed by one bounded queue, and
//!   stream their text back; a full queue refuses at once. The LLM judge's scoring runs there
//!   too ([`PooledReranker`]), as one request among the generations.
//!
//! Refusals map to `RESOURCE_EXHAUSTED` (overloaded) and `UNAVAILABLE` (stopped) over gRPC.

mod gate;
mod generation_pool;
mod pooled_reranker;

pub use gate::RequestGate;
pub use generation_pool::{
    GenerationEvent, GenerationPool, GenerationPoolConfig, GenerationStream,
};
pub use pooled_reranker::PooledReranker;

/// Why work was refused before it started. The caller may retry later.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is taken: too much work is already in flight or queued.
    #[error("the {0} is overloaded: too many requests are in flight; retry later")]
    Overloaded(&'static str),
    /// The threads that would run it have stopped (a panic, or shutdown).
    #[error("the {0} has stopped")]
    Stopped(&'static str),
}
