//! The service's error type, and its one mapping to gRPC status codes.
//!
//! Library errors fold in with `#[from]`. [`ServiceError::code`] is the single exhaustive
//! `match` deciding whose fault an error is: the caller's (INVALID_ARGUMENT, NOT_FOUND,
//! ALREADY_EXISTS, FAILED_PRECONDITION), overload (RESOURCE_EXHAUSTED), time (DEADLINE_EXCEEDED,
//! CANCELLED) or ours (INTERNAL). `From<ServiceError> for tonic::Status` uses it.

use index::IndexError;
use ingest::{ChunkError, EmbedError};
use tonic::Code;

use crate::config::ConfigError;
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

impl ServiceError {
    /// The gRPC code for this error: the one place that decides whose fault it is.
    pub fn code(&self) -> Code {
        match self {
            Self::Config(_) | Self::Model(_) | Self::Jobs(_) | Self::Internal(_) => Code::Internal,
            Self::MalformedRequest(_) => Code::Internal,
            Self::Io { .. } => Code::Internal,
            Self::Embed(e) => embed_code(e),
            Self::Refused(Refused::Overloaded(_)) => Code::ResourceExhausted,
            Self::Refused(Refused::Stopped(_)) => Code::Unavailable,
            Self::Index(e) => index_code(e),
            Self::Chunk(e) => chunk_code(e),
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::NotFound { .. } => Code::NotFound,
            Self::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            Self::Cancelled(_) => Code::Cancelled,
            Self::MessageTooLarge(_) => Code::ResourceExhausted,
            Self::Unimplemented(_) => Code::Unimplemented,
        }
    }
}

fn embed_code(e: &EmbedError) -> Code {
    match e {
        EmbedError::Tokenize(_) => Code::InvalidArgument,
        EmbedError::Model(_) => Code::Internal,
    }
}

fn chunk_code(e: &ChunkError) -> Code {
    match e {
        ChunkError::ZeroSize { .. }
        | ChunkError::OverlapTooLarge { .. }
        | ChunkError::OverModelLimit { .. }
        | ChunkError::MinAboveMax { .. }
        | ChunkError::InvalidThreshold { .. } => Code::InvalidArgument,
        ChunkError::EmbeddingCount { .. } => Code::Internal,
        ChunkError::Embed(e) => embed_code(e),
    }
}

fn index_code(e: &IndexError) -> Code {
    match e {
        IndexError::InvalidCollectionName { .. }
        | IndexError::EmptyDocumentId
        | IndexError::EmptyQuery
        | IndexError::ZeroK => Code::InvalidArgument,
        IndexError::CollectionNotFound { .. } => Code::NotFound,
        IndexError::CollectionExists { .. } => Code::AlreadyExists,
        IndexError::CollectionInUse { .. } | IndexError::ManifestMismatch { .. } => {
            Code::FailedPrecondition
        }
        // Vectors and spans come from our own embedder and chunker, never from the caller.
        IndexError::DimensionMismatch { .. }
        | IndexError::NonFiniteVector { .. }
        | IndexError::ZeroVector
        | IndexError::InvalidSpan { .. }
        | IndexError::Io { .. }
        | IndexError::Meta(_)
        | IndexError::Bm25(_)
        | IndexError::Dense { .. }
        | IndexError::Corrupt { .. }
        | IndexError::NeedsRecovery => Code::Internal,
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        let code = e.code();
        if code == Code::Internal && !matches!(e, ServiceError::MalformedRequest(_)) {
            tracing::error!(error = %e, "internal error");
        }
        tonic::Status::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_errors_are_not_internal() {
        let cases = [
            (
                ServiceError::from(IndexError::CollectionNotFound { name: "x".into() }),
                Code::NotFound,
            ),
            (
                IndexError::CollectionExists { name: "x".into() }.into(),
                Code::AlreadyExists,
            ),
            (
                Refused::Overloaded("server").into(),
                Code::ResourceExhausted,
            ),
            (
                ServiceError::DeadlineExceeded { elapsed_ms: 5 },
                Code::DeadlineExceeded,
            ),
            (ServiceError::Internal("bug".into()), Code::Internal),
        ];
        for (e, want) in cases {
            let status = tonic::Status::from(e);
            assert_eq!(status.code(), want, "{}", status.message());
        }
    }
}
