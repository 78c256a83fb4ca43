//! The service's error type. Library errors fold in with `#[from]`; the gRPC layer maps this enum
//! to a status in one exhaustive `match`.

use crate::config::ConfigError;
use crate::model::worker::WorkerError;
use crate::model::ModelError;

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
    Embed(#[from] ingest::EmbedError),
    /// A model worker is overloaded or stopped.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The index failed or rejected the request.
    #[error(transparent)]
    Index(#[from] index::IndexError),
    /// A bug or broken invariant inside ragd (never the caller's fault).
    #[error("internal error: {0}")]
    Internal(String),
    /// The request is invalid (the caller's fault); the message says how.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
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
