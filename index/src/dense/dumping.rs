//! Graph dumps written by a background thread while writes go on.
//!
//! hnsw_rs dumps a graph under the read lock of its point layers, so an insert during a dump
//! would wait for the whole dump (seconds at 100k points), and the dump must hold exactly the
//! points of its seq. So while a thread dumps the current graph, [`super::DenseWriter`] holds
//! new points back in a pending list instead of inserting them: snapshots published meanwhile
//! search that list exactly (brute force; it holds only the writes of the last few seconds)
//! beside the graph, and the list joins the graph when the dump ends. Deletes are tombstones and
//! need no holding back. The dump's files are written as before (see `dump`): a crash mid-dump
//! leaves the previous dump and the op log, which recovery replays.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{dump, Graph};
use crate::types::Seq;
use crate::Result;

/// One inserted batch of `(id, normalised vector)`.
type Batch = Arc<[(u64, Vec<f32>)]>;

/// Points held back from the graph during a dump, in id order: the batches as inserted, so
/// that a writer adding to a list that published views share copies pointers, not vectors.
#[derive(Clone, Default)]
pub struct Pending {
    batches: Vec<Batch>,
    len: usize,
}

impl Pending {
    /// Adds a batch (ids above every id held).
    pub fn push(&mut self, items: &[(u64, Vec<f32>)]) {
        self.len += items.len();
        self.batches.push(items.into());
    }

    /// Number of points held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The smallest id held.
    pub fn first_id(&self) -> Option<u64> {
        self.batches.first().and_then(|b| b.first()).map(|p| p.0)
    }

    /// The points, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &(u64, Vec<f32>)> {
        self.batches.iter().flat_map(|b| b.iter())
    }
}

/// A dump running on its own thread.
pub(super) struct Dumping {
    /// The graph being dumped (the writer holds inserts back while it is the current one).
    pub graph: Arc<Graph>,
    /// The write the dump is as of.
    pub seq: Seq,
    /// Points in the dumped graph.
    pub points: usize,
    /// Set once by the thread when the files are in place (or failed).
    outcome: Arc<(Mutex<Option<Result<()>>>, Condvar)>,
    pub started: Instant,
}

impl Dumping {
    /// Starts dumping `graph` with `tombstones` as of `seq` into `root` on a new thread, which
    /// waits while `hold` is set (for tests) and calls `done` when the files are in place.
    pub fn start(
        root: PathBuf,
        seq: Seq,
        graph: Arc<Graph>,
        tombstones: Vec<u64>,
        hold: Arc<AtomicBool>,
        done: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Self> {
        let outcome = Arc::new((Mutex::new(None), Condvar::new()));
        let (thread_graph, thread_outcome) = (Arc::clone(&graph), Arc::clone(&outcome));
        std::thread::Builder::new()
            .name("hnsw-dump".into())
            .spawn(move || {
                while hold.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let written = dump::write(&root, seq, &thread_graph, tombstones);
                drop(thread_graph);
                let (slot, ready) = &*thread_outcome;
                *slot.lock() = Some(written);
                ready.notify_all();
                done();
            })?;
        Ok(Self {
            points: graph.len(),
            graph,
            seq,
            outcome,
            started: Instant::now(),
        })
    }

    /// The dump's outcome if it has ended (taken: `Some` once).
    pub fn try_take(&self) -> Option<Result<()>> {
        self.outcome.0.lock().take()
    }

    /// Waits for the dump to end and takes its outcome. Does not join the thread, whose `done`
    /// may be waiting for the writer lock the caller holds.
    pub fn wait(&self) -> Result<()> {
        let (slot, ready) = &*self.outcome;
        let mut outcome = slot.lock();
        loop {
            if let Some(result) = outcome.take() {
                return result;
            }
            ready.wait(&mut outcome);
        }
    }
}
