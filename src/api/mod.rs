//! The operations the two API skins share: gRPC ([`crate::grpc`]) and HTTP ([`crate::http`])
//! convert a request, call one of these (or a plain [`AppState`] method), and convert the
//! result back. What a call means, its limits and its errors are decided here once:
//!
//! - [`ask`]: the streamed, checked answer (sentence deltas, then the final answer with its
//!   citations and short answer);
//! - [`watch_job`]: a job's record after every batch until it ends;
//! - [`document`]: a document a client sent, checked;
//! - [`code`]: whose fault an error is, as a gRPC status code, which HTTP maps to its status;
//! - [`within`] and [`stop_at`]: a caller's deadline, answered a little early.

pub mod ask;
mod status;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use ingest::{Document, SourceId};
use tokio::sync::mpsc;

pub use self::ask::{ask, AskEvent, AskEvents, Finished};
pub use self::status::code;
use crate::error::{Result, ServiceError};
use crate::jobs::{JobRecord, JobWatch};

/// How long before the deadline a handler gives up, so that our DEADLINE_EXCEEDED reaches the
/// caller before the transport's own timeout cancels the call.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(10);

/// When blocking work started now for a call with `limit` should stop: when [`within`] stops
/// waiting for it, so that nothing runs on after the caller has its DEADLINE_EXCEEDED.
pub fn stop_at(limit: Option<Duration>) -> Option<crate::rag::retrieve::Deadline> {
    let started = Instant::now();
    limit.map(|l| crate::rag::retrieve::Deadline {
        started,
        stop: started + l.saturating_sub(DEADLINE_MARGIN),
    })
}

/// Awaits `fut`, giving up with [`ServiceError::DeadlineExceeded`] shortly before `limit`.
pub async fn within<T>(limit: Option<Duration>, fut: impl Future<Output = Result<T>>) -> Result<T> {
    let Some(limit) = limit else {
        return fut.await;
    };
    let start = Instant::now();
    let budget = limit.saturating_sub(DEADLINE_MARGIN);
    // A deadline inside the margin is already spent: answering now is the only way to be early.
    // (`timeout` polls the work before its timer, so a zero budget would race the work.)
    if budget.is_zero() {
        return Err(ServiceError::DeadlineExceeded { elapsed_ms: 0 });
    }
    match tokio::time::timeout(budget, fut).await {
        Ok(out) => out,
        Err(_) => Err(ServiceError::DeadlineExceeded {
            elapsed_ms: start.elapsed().as_millis() as u64,
        }),
    }
}

/// A document a client sent, checked; `Err((id, why))` for an unusable one (reported per
/// document: the rest of its batch goes on).
pub fn document(
    id: String,
    title: &str,
    text: &str,
    metadata: BTreeMap<String, String>,
) -> std::result::Result<Document, (String, String)> {
    if id.trim().is_empty() {
        return Err((id, "the document id is empty".into()));
    }
    // A NUL is how binary data shows up in a text field; the file loaders refuse it too.
    for (field, value) in [("id", id.as_str()), ("title", title), ("text", text)] {
        if let Some(at) = value.find('\0') {
            return Err((
                id.clone(),
                format!("the document {field} contains a NUL character (U+0000) at byte {at}; send text, not binary data"),
            ));
        }
    }
    Document::new(SourceId(id.clone()), title, text, metadata)
        .ok_or_else(|| (id, "the document text is empty".into()))
}

/// A job's record now, then after each batch, until a terminal (or paused) record; the
/// receiver ends after it. A receiver dropped early stops the watch.
pub fn watch_job(watch: JobWatch) -> mpsc::Receiver<JobRecord> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        match watch {
            JobWatch::Done(record) => {
                let _ = tx.send(*record).await;
            }
            JobWatch::Polled(mut copies) => {
                while let Some(record) = copies.recv().await {
                    if tx.send(record).await.is_err() {
                        break;
                    }
                }
            }
            JobWatch::Live(mut updates) => loop {
                let record = updates.borrow_and_update().clone();
                let terminal = record.state.is_terminal();
                if tx.send(record).await.is_err() || terminal {
                    break;
                }
                if updates.changed().await.is_err() {
                    break;
                }
            },
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deadline_inside_the_margin_fails_even_when_the_work_is_instant() {
        // CI once saw a 10 ms deadline answered OK: `timeout(0)` polled the finished work first.
        let got = within(Some(DEADLINE_MARGIN), async { Ok(1) }).await;
        assert!(
            matches!(got, Err(ServiceError::DeadlineExceeded { .. })),
            "{got:?}"
        );
        let got = within(Some(Duration::from_secs(5)), async { Ok(1) }).await;
        assert_eq!(got.unwrap(), 1);
    }

    #[test]
    fn documents_are_checked() {
        let meta = BTreeMap::new;
        assert!(document("a".into(), "t", "text", meta()).is_ok());
        assert_eq!(
            document(" ".into(), "t", "x", meta()).unwrap_err().1,
            "the document id is empty"
        );
        assert!(document("a".into(), "t", "x\0y", meta())
            .unwrap_err()
            .1
            .contains("NUL"));
        assert!(document("a".into(), "t", "", meta()).is_err());
    }
}
