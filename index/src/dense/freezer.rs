//! [`Freezer`]: refreshes a graph's frozen search copy (see `flat`) in the background, so that
//! commits never wait for it.
//!
//! A commit that changed the graph asks for a freeze; views published before the copy catches
//! up search the hnsw_rs graph itself (correct, a few times slower). The thread freezes once
//! the writer has been quiet for [`QUIET`] (a burst of commits costs one freeze), and during a
//! long bulk load no later than [`BUDGET`] times the last freeze's duration after the request
//! (at least [`MIN_WAIT`]), which keeps the copying under about a tenth of one core.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Graph;

/// Quiet time after the last request before freezing.
pub const QUIET: Duration = Duration::from_millis(200);
/// During continuous writes, wait this many times the last freeze's duration...
pub const BUDGET: u32 = 10;
/// ...but at least this long.
pub const MIN_WAIT: Duration = Duration::from_secs(2);

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
        let quiet_at = pending.last + QUIET;
        let latest = pending.first + (state.last_cost * BUDGET).max(MIN_WAIT);
        let due = quiet_at.min(latest);
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
        inner.wake.notify_all();
    }
}
