//! [`RequestGate`]: a fixed number of blocking tasks in flight; the next is refused at once.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::Refused;

/// Admits at most `limit` closures to tokio's blocking pool at a time and refuses the next one
/// at once with [`Refused::Overloaded`], instead of letting requests pile up without bound.
/// Cheap to clone; clones share the permits.
#[derive(Clone)]
pub struct RequestGate {
    name: &'static str,
    permits: Arc<Semaphore>,
}

impl RequestGate {
    /// A gate named `name` (in refusals) admitting `limit` tasks at a time.
    pub fn new(name: &'static str, limit: usize) -> Self {
        Self {
            name,
            permits: Arc::new(Semaphore::new(limit)),
        }
    }

    /// Runs `f` on the blocking pool if a permit is free (held until `f` returns); refuses at
    /// once otherwise. `Err(JoinError)` inside means `f` panicked.
    pub async fn run<R, F>(&self, f: F) -> Result<Result<R, tokio::task::JoinError>, Refused>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Overloaded(self.name))?;
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await)
    }

    /// Permits free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_past_the_limit_and_admits_again_once_a_task_ends() {
        let gate = RequestGate::new("server", 1);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let g = gate.clone();
        let first = tokio::spawn(async move {
            g.run(move || {
                let _ = started_tx.send(());
                wait.recv().unwrap();
                1
            })
            .await
        });
        started.await.unwrap();
        assert_eq!(gate.available(), 0);
        assert_eq!(
            gate.run(|| 2).await.unwrap_err(),
            Refused::Overloaded("server")
        );
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().unwrap(), 1);
        assert_eq!(gate.run(|| 3).await.unwrap().unwrap(), 3);
        assert_eq!(gate.available(), 1);
    }

    #[tokio::test]
    async fn a_panicking_task_returns_its_permit() {
        let gate = RequestGate::new("server", 1);
        assert!(gate.run(|| panic!("boom")).await.unwrap().is_err());
        assert_eq!(gate.available(), 1);
    }
}
