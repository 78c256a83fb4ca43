//! [`Freezer`]: refreshes a graph's frozen search copy (see `flat`) in the background, so that
//! commits never wait for it.
//!
//! A commit that changed the graph asks for a copy; views published before the copy catches
//! up search the hnsw_rs graph itself (correct, a few times slower). A copy starts once the
//! writer has been quiet for [`QUIET`] (a burst of commits costs one copy) or [`MAX_WAIT`]
//! after the first change it lacks, whichever comes first, but never sooner than
//! `BUDGET - 1` times the last copy's duration after that copy ended: copying takes at most
//! `1 / BUDGET` of one core whatever the write pattern (2 s per copy at 200k points: at most
//! one copy every 20 s).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Graph;

/// Quiet time after the last request before copying.
pub const QUIET: Duration = Duration::from_millis(200);
/// Longest wait after the first request a copy lacks, when the writer is never quiet.
pub const MAX_WAIT: Duration = Duration::from_secs(2);
/// Copying takes at most one part in this many of the freezer's wall time.
pub const BUDGET: u32 = 10;

struct Request {
    graph: Arc<Graph>,
    covers: u64,
    first: Instant,
    last: Instant,
}

#[derive(Default)]
struct State {
    pending: Option<Request>,
    busy: bool,
    shutdown: bool,
    /// Set by [`Freezer::wait_idle`]: freeze now, skip the waiting.
    urgent: bool,
    last_cost: Duration,
    /// When the last copy ended.
    last_end: Option<Instant>,
}

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
}

/// The background freezer of one collection's dense index.
pub struct Freezer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl Freezer {
    /// Starts the thread (named `ragd-freeze`); it sleeps until asked.
    pub fn start() -> Self {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("ragd-freeze".into())
            .spawn(move || run(&worker))
            .map_err(|e| tracing::warn!("no freezer thread ({e}); searches use the hnsw_rs graph"))
            .ok();
        Self { inner, thread }
    }

    /// Asks for `graph` to be frozen for views bounded by `covers` (every chunk id below it is
    /// in the graph). Replaces an older pending request.
    pub fn request(&self, graph: Arc<Graph>, covers: u64) {
        let now = Instant::now();
        let mut state = self.inner.state.lock();
        let first = state.pending.as_ref().map_or(now, |p| p.first);
        state.pending = Some(Request {
            graph,
            covers,
            first,
            last: now,
        });
        self.inner.wake.notify_all();
    }

    /// Serves a pending request at once and blocks until none is pending or being served (the
    /// published copy is then the newest asked for). Without a thread, returns at once.
    pub fn wait_idle(&self) {
        self.waiter().wait_idle();
    }

    /// A handle that waits like [`Self::wait_idle`] without borrowing the freezer (so a caller
    /// can wait without holding the lock the freezer lives behind).
    pub fn waiter(&self) -> FreezeWaiter {
        FreezeWaiter {
            inner: self.thread.as_ref().map(|_| Arc::clone(&self.inner)),
        }
    }
}

/// See [`Freezer::waiter`].
pub struct FreezeWaiter {
    inner: Option<Arc<Inner>>,
}

impl FreezeWaiter {
    /// See [`Freezer::wait_idle`].
    pub fn wait_idle(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let mut state = inner.state.lock();
        while (state.pending.is_some() || state.busy) && !state.shutdown {
            state.urgent = true;
            inner.wake.notify_all();
            inner.wake.wait(&mut state);
        }
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.inner.state.lock().shutdown = true;
        self.inner.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// When a copy asked for first at `first` and last at `last` may start, given the previous
/// copy's end and duration (see the module docs).
fn due(first: Instant, last: Instant, last_end: Option<Instant>, last_cost: Duration) -> Instant {
    let wanted = (last + QUIET).min(first + MAX_WAIT);
    match last_end {
        Some(end) => wanted.max(end + last_cost * (BUDGET - 1)),
        None => wanted,
    }
}

fn run(inner: &Inner) {
    let mut state = inner.state.lock();
    loop {
        if state.shutdown {
            return;
        }
        let Some(pending) = &state.pending else {
            inner.wake.wait(&mut state);
            continue;
        };
        let now = Instant::now();
        let due = due(pending.first, pending.last, state.last_end, state.last_cost);
        if now < due && !state.urgent {
            inner.wake.wait_for(&mut state, due - now);
            continue;
        }
        let Some(request) = state.pending.take() else {
            continue;
        };
        state.busy = true;
        state.urgent = false;
        drop(state);
        let started = Instant::now();
        // hnsw_rs asserts on inconsistencies; a panic must not take the thread (and every
        // later copy) with it: searches then keep using the hnsw_rs graph.
        let frozen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            request.graph.publish_frozen(request.covers);
        }));
        let cost = started.elapsed();
        match frozen {
            Ok(()) => tracing::debug!(
                points = request.graph.len(),
                ms = cost.as_millis() as u64,
                "froze the HNSW graph for search"
            ),
            Err(_) => tracing::error!(
                points = request.graph.len(),
                "copying the HNSW graph for search panicked; searches use the hnsw_rs graph"
            ),
        }
        drop(request);
        state = inner.state.lock();
        state.busy = false;
        state.last_cost = cost;
        state.last_end = Some(Instant::now());
        inner.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_wait_for_quiet_or_max_wait_and_keep_to_the_budget() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // A lone request: quiet 200 ms later.
        assert_eq!(due(t0, t0, None, ms(0)), t0 + QUIET);
        // Requests every 100 ms: never quiet, so 2 s after the first.
        assert_eq!(due(t0, t0 + ms(1900), None, ms(0)), t0 + MAX_WAIT);
        // A cheap last copy does not delay the next.
        assert_eq!(due(t0, t0, Some(t0), ms(1)), t0 + QUIET);
        // A 2 s copy that ended at t0: the next waits 18 s, quiet or not.
        assert_eq!(due(t0, t0, Some(t0), ms(2000)), t0 + ms(18_000));
        assert_eq!(
            due(t0 + ms(30_000), t0 + ms(30_000), Some(t0), ms(2000)),
            t0 + ms(30_000) + QUIET
        );
    }
}
