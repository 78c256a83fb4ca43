//! [`ServiceError`] → gRPC status: the single exhaustive `match` deciding whose fault an error
//! is: the caller's (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION), overload
//! (RESOURCE_EXHAUSTED, UNAVAILABLE), time (DEADLINE_EXCEEDED, CANCELLED) or ours (INTERNAL).
//! HTTP maps these codes to its statuses; each skin logs internal errors once.

use index::IndexError;
use ingest::{ChunkError, EmbedError};
use tonic::Code;

use crate::error::ServiceError;
use crate::serving::Refused;

/// The gRPC code for `e`: the one place that decides whose fault an error is.
pub fn code(e: &ServiceError) -> Code {
    use ServiceError as E;
    match e {
        E::Config(_) | E::Model(_) | E::Jobs(_) | E::Internal(_) => Code::Internal,
        E::MalformedRequest(_) => Code::Internal,
        E::Io { .. } => Code::Internal,
        E::Embed(e) => embed_code(e),
        E::Refused(Refused::Overloaded(_)) => Code::ResourceExhausted,
        E::Refused(Refused::Stopped(_)) => Code::Unavailable,
        E::Index(e) => index_code(e),
        E::Chunk(e) => chunk_code(e),
        E::InvalidArgument(_) => Code::InvalidArgument,
        E::PermissionDenied(_) => Code::PermissionDenied,
        E::NotFound { .. } => Code::NotFound,
        E::DeadlineExceeded { .. } => Code::DeadlineExceeded,
        E::Cancelled(_) => Code::Cancelled,
        E::MessageTooLarge(_) => Code::ResourceExhausted,
        E::Unimplemented(_) => Code::Unimplemented,
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
        IndexError::CollectionBeingDeleted { .. } | IndexError::Unavailable { .. } => {
            Code::Unavailable
        }
        // A write that waited through a reindex's switch: retry it.
        IndexError::Reindexed { .. } => Code::Aborted,
        IndexError::CollectionInUse { .. }
        | IndexError::ReindexRunning { .. }
        | IndexError::ManifestMismatch { .. }
        | IndexError::EmbedderMismatch { .. }
        | IndexError::Incompatible { .. }
        | IndexError::BadSnapshot { .. } => Code::FailedPrecondition,
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
        | IndexError::NeedsRecovery
        | IndexError::Remote { .. }
        | IndexError::CompactionAbandoned => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rerank::RerankError;

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
            // The LLM judge finding the generator's threads full is an overload, not a bug.
            (
                RerankError::Overloaded("generator").into(),
                Code::ResourceExhausted,
            ),
            (RerankError::Stopped("generator").into(), Code::Unavailable),
            (RerankError::Model("nan".into()).into(), Code::Internal),
            (ServiceError::Internal("bug".into()), Code::Internal),
        ];
        for (e, want) in cases {
            assert_eq!(code(&e), want, "{e}");
        }
    }
}
