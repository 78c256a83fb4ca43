//! What can go wrong talking to a Qdrant cluster, sorted by whose fault it is.

use index::IndexError;

/// Errors of the Qdrant backend.
#[derive(Debug, thiserror::Error)]
pub enum QdrantError {
    /// No node of the cluster answered (down, unreachable, or too slow): transient, retry.
    #[error("the Qdrant cluster is unavailable: {0}")]
    Unavailable(String),
    /// The cluster holds something ragd cannot use as asked: a collection of another
    /// dimension or embedder, or one ragd did not make.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The cluster refused the API key.
    #[error("the Qdrant cluster refused the credentials: {0}")]
    Unauthenticated(String),
    /// Qdrant has no such collection (the collection layer turns this into the index crate's
    /// `CollectionNotFound` where the name is a ragd collection's).
    #[error("not found in Qdrant: {0}")]
    Missing(String),
    /// The settings are unusable (a bad URL, an unreadable key file).
    #[error("qdrant settings: {0}")]
    Settings(String),
    /// The request was wrong in a way the index crate names (empty query, k = 0, wrong vector
    /// dimension, unknown collection, ...).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Qdrant answered something ragd did not expect: a bug on one side or the other.
    #[error("unexpected answer from Qdrant: {0}")]
    Internal(String),
}

/// The backend's result type.
pub type Result<T, E = QdrantError> = std::result::Result<T, E>;
