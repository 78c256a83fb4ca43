//! The service's error type. Library errors fold in with `#[from]`; whose fault each one is
//! (the caller's, overload, time, or ours) is decided where it meets a transport: the gRPC
//! status mapping lives in `grpc/status.rs`.

use index::IndexError;
use ingest::{ChunkError, EmbedError};

use crate::config::ConfigError;
use crate::model::rerank::RerankError;
use crate::model::ModelError;
use crate::serving::Refused;

/// Anything that can go wrong in the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The configuration is invalid (the caller's or operator's fault).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A model could not be fetched or loaded, or failed while running.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The embedding backend failed on an input.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// Work was refused before it started: overloaded, or its threads stopped.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The index failed or rejected the request.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A chunking strategy could not be built (mostly the caller's parameters).
    #[error("chunker: {0}")]
    Chunk(#[from] ChunkError),
    /// The job store (sled) failed (never the caller's fault).
    #[error("job store: {0}")]
    Jobs(#[from] sled::Error),
    /// A bug or broken invariant inside ragd (never the caller's fault).
    #[error("internal error: {0}")]
    Internal(String),
    /// The request is invalid (the caller's fault); the message says how.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The request's bytes are not a valid protobuf message. INTERNAL, as gRPC's status-code
    /// table prescribes for an unparsable request (and as tonic answers for unary calls), but
    /// not logged as a bug of ours.
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// The caller may not do this (e.g. a job path outside the allowed roots).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A named thing other than a collection does not exist (the caller's fault).
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What was looked up: `job`, `document`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The call's deadline passed before the work finished (the caller's budget).
    #[error("deadline exceeded after {elapsed_ms} ms")]
    DeadlineExceeded {
        /// Time spent on the call.
        elapsed_ms: u64,
    },
    /// A streamed request message is over `server.max_message_bytes` (the caller's fault).
    #[error("message too large: {0}")]
    MessageTooLarge(String),
    /// The caller went away or cancelled the operation.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// The operation exists in the API but not in this build.
    #[error("{0}")]
    Unimplemented(&'static str),
    /// An input file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Result alias for the service.
pub type Result<T> = std::result::Result<T, ServiceError>;

impl From<RerankError> for ServiceError {
    /// A reranker's threads being full or stopped is a refusal (the caller may retry); any
    /// other reranker failure is ours.
    fn from(e: RerankError) -> Self {
        match e {
            RerankError::Overloaded(name) => Self::Refused(Refused::Overloaded(name)),
            RerankError::Stopped(name) => Self::Refused(Refused::Stopped(name)),
            RerankError::Tokenize(_) | RerankError::Model(_) => Self::Internal(e.to_string()),
        }
    }
}
