//! Runs a model on its own OS thread, off the async runtime (TEI's `BackendThread` pattern).
//!
//! Requests reach the thread as boxed closures over a bounded channel and each reply comes back
//! on a oneshot. When the queue is full the caller gets [`WorkerError::Overloaded`] at once
//! instead of waiting without bound; the gRPC layer maps that to `RESOURCE_EXHAUSTED`.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use tokio::sync::oneshot;

type Job<M> = Box<dyn FnOnce(&M) + Send>;

/// Why a request to a model worker did not run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkerError {
    /// The queue is full; the caller should retry later.
    #[error("the {0} is overloaded: too many requests are queued")]
    Overloaded(&'static str),
    /// The worker thread has stopped (it panicked or is shutting down).
    #[error("the {0} worker has stopped")]
    Stopped(&'static str),
}

/// A handle to a model running on a dedicated thread. Cheap to clone.
pub struct ModelWorker<M> {
    name: &'static str,
    tx: SyncSender<Job<M>>,
}

impl<M> Clone for ModelWorker<M> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            tx: self.tx.clone(),
        }
    }
}

impl<M: Send + Sync + 'static> ModelWorker<M> {
    /// Starts the thread owning `model`, with room for `queue` waiting requests.
    pub fn spawn(name: &'static str, model: Arc<M>, queue: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job<M>>(queue);
        std::thread::Builder::new()
            .name(format!("ragd-{name}"))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&model);
                }
            })?;
        Ok(Self { name, tx })
    }

    /// Runs `f` on the model thread and waits for its result without blocking the runtime.
    pub async fn run<R, F>(&self, f: F) -> Result<R, WorkerError>
    where
        R: Send + 'static,
        F: FnOnce(&M) -> R + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Job<M> = Box::new(move |m| {
            // The receiver may be gone (caller cancelled); nothing to do then.
            let _ = reply.send(f(m));
        });
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => WorkerError::Overloaded(self.name),
            TrySendError::Disconnected(_) => WorkerError::Stopped(self.name),
        })?;
        rx.await.map_err(|_| WorkerError::Stopped(self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_on_the_worker_thread_and_reports_overload() {
        let worker = ModelWorker::spawn("test", Arc::new(41u32), 1).unwrap();
        let name = worker
            .run(|m| (*m + 1, std::thread::current().name().map(String::from)))
            .await;
        assert_eq!(name.unwrap(), (42, Some("ragd-test".to_string())));

        // Block the thread, fill the one queue slot, and the next request is refused at once.
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let gate_rx = std::sync::Mutex::new(gate_rx);
        let w = worker.clone();
        let blocker = tokio::spawn(async move {
            w.run(move |_| {
                let _ = gate_rx.lock().unwrap().recv();
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let w = worker.clone();
        let queued = tokio::spawn(async move { w.run(|m| *m).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            worker.run(|m| *m).await,
            Err(WorkerError::Overloaded("test"))
        );
        gate_tx.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap(), Ok(41));
    }
}
