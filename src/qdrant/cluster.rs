//! A connection to a Qdrant cluster: one client per listed node, calls moved to the next node
//! when one does not answer.
//!
//! Every node of a Qdrant cluster serves every call (it forwards to the shards' replicas), so
//! failing over is only a matter of trying another node. ragd's writes are idempotent (point
//! ids derive from document id and ordinal), so a write that failed on one node may be sent
//! again to the next without harm.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tonic::Status;

use super::error::{QdrantError, Result};
use super::node::{Node, Reach};
use super::settings::QdrantSettings;

/// How long a call is tried again while nodes answer that a shard's leader is unreachable:
/// long enough for the cluster to mark a killed peer's replicas dead and write through another
/// (the SIGKILL tests write right after a kill; the switch's length was not timed), short
/// enough that a client hears UNAVAILABLE promptly while a shard has no live replica at all
/// (the job runner waits that out on its own, for minutes).
const FAILOVER: Duration = Duration::from_secs(5);

/// The nodes of one cluster.
pub struct Cluster {
    nodes: Vec<(String, Node)>,
    /// The node that answered last: calls start there.
    current: AtomicUsize,
    /// How long a call is tried again while the cluster fails over: [`FAILOVER`], or
    /// `qdrant.timeout_ms` when shorter.
    patience: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.nodes.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("Cluster").field("urls", &urls).finish()
    }
}

/// How a failed call is to be treated.
enum Failure {
    /// The call could not be served there: try the next node. `answered`: the node itself
    /// answered (a shard's replica on another peer did not), which is a cluster failing over
    /// rather than a node or a whole cluster being unreachable.
    Node { why: String, answered: bool },
    /// The node answered with an error: report it.
    Answer(QdrantError),
}

fn classify(status: Status) -> Failure {
    match classify_code(&status) {
        Failure::Node { why, .. } => Failure::Node {
            // A status made from a transport error carries it as its source; one Qdrant sent
            // has none. With no live replica at all there is nothing to fail over to.
            answered: std::error::Error::source(&status).is_none()
                && status.code() != tonic::Code::DeadlineExceeded
                && !why.to_lowercase().contains("no active replica"),
            why,
        },
        answer => answer,
    }
}

fn classify_code(status: &Status) -> Failure {
    use tonic::Code;
    let message = transport_message(status);
    let node = |why: String| Failure::Node {
        why,
        answered: false,
    };
    match status.code() {
        // A transport failure reaches tonic as UNAVAILABLE (connection refused or reset) or
        // UNKNOWN with the transport's words; a deadline is the node being too slow.
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
            node(message)
        }
        Code::Unknown if message.contains("transport") || message.contains("connect") => {
            node(message)
        }
        // A replica set without enough live peers for the write consistency answers this way;
        // another node cannot do better, but the caller may retry once the node is back.
        Code::ResourceExhausted => Failure::Answer(QdrantError::Unavailable(message)),
        Code::Unauthenticated | Code::PermissionDenied => {
            Failure::Answer(QdrantError::Unauthenticated(message))
        }
        Code::NotFound => Failure::Answer(QdrantError::Missing(message)),
        Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists => {
            Failure::Answer(QdrantError::FailedPrecondition(message))
        }
        Code::Ok
        | Code::Unknown
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss => {
            // Qdrant reports a write it could not replicate to any live replica as INTERNAL
            // with "No active replica" / "service unavailable"; those are the cluster being
            // degraded, not a bug.
            let lower = message.to_lowercase();
            if lower.contains("no active replica")
                || lower.contains("transport error")
                || lower.contains("unavailable")
                || lower.contains("timeout")
            {
                node(message)
            } else {
                Failure::Answer(QdrantError::Internal(message))
            }
        }
    }
}

/// A status's message, with the causes of a transport failure (refused connection, untrusted
/// certificate) that tonic keeps as the error's sources rather than in the message.
fn transport_message(status: &Status) -> String {
    let mut message = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

impl Cluster {
    /// Clients for the nodes in `settings` (no connection is made yet; see [`Self::check`]).
    pub fn new(settings: &QdrantSettings) -> Result<Self> {
        if let Some((field, reason)) = settings.problem() {
            return Err(QdrantError::Settings(format!("{field}: {reason}")));
        }
        let api_key = match &settings.api_key_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        QdrantError::Settings(format!(
                            "qdrant.api_key_file {}: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_string(),
            ),
            None => settings.api_key.clone(),
        };
        let api_key = api_key
            .map(|key| {
                key.parse().map_err(|_| {
                    QdrantError::Settings(
                        "qdrant.api_key: use printable ASCII characters only".into(),
                    )
                })
            })
            .transpose()?;
        let reach = Reach {
            api_key,
            ca: settings.tls_ca_certificate()?,
            timeout: Duration::from_millis(settings.timeout_ms),
            connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
        };
        let nodes = settings
            .urls
            .iter()
            .map(|url| {
                let node = Node::new(url, &reach)
                    .map_err(|e| QdrantError::Settings(format!("qdrant.urls {url:?}: {e}")))?;
                Ok((url.clone(), node))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            nodes,
            current: AtomicUsize::new(0),
            patience: FAILOVER.min(Duration::from_millis(settings.timeout_ms)),
        })
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|(u, _)| u.as_str())
    }

    /// Checks that some node answers, naming each one that does not; returns the version of
    /// the first that does.
    pub async fn check(&self) -> Result<String> {
        self.call(|client| async move { client.health_check().await })
            .await
            .map(|reply| reply.version)
    }

    /// Runs `op` against the current node, then each other node in turn while they do not
    /// answer. When no node could serve it but one answered (a shard's leader just died and
    /// the cluster is failing over to a replica), every node is tried again after a pause
    /// (0.1 s doubling to 1 s) for up to [`FAILOVER`]; ragd's calls are idempotent, so
    /// a retried write does no harm. [`QdrantError::Unavailable`] names every node's failure
    /// when none could serve it.
    pub async fn call<'a, T, F, Fut>(&'a self, op: F) -> Result<T>
    where
        F: Fn(&'a Node) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let first = self.current.load(Ordering::Relaxed);
            let mut failures = Vec::new();
            let mut answered = false;
            for step in 0..self.nodes.len() {
                let i = (first + step) % self.nodes.len();
                let (url, client) = &self.nodes[i];
                match op(client).await {
                    Ok(value) => {
                        if step > 0 {
                            self.current.store(i, Ordering::Relaxed);
                        }
                        return Ok(value);
                    }
                    Err(e) => match classify(e) {
                        Failure::Node { why, answered: a } => {
                            tracing::warn!(node = %url, error = %why, "Qdrant node could not serve the call");
                            failures.push(format!("{url}: {why}"));
                            answered |= a;
                        }
                        Failure::Answer(e) => return Err(e),
                    },
                }
            }
            if !answered || started.elapsed() + pause > self.patience {
                return Err(QdrantError::Unavailable(format!(
                    "no node answered ({})",
                    failures.join("; ")
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}
