//! The dense (HNSW) index of a collection, kept in memory and dumped to disk.
//!
//! * [`Graph`] wraps one hnsw_rs graph (`DistDot`: distance `1 - a·b` on normalised vectors):
//!   hnsw_rs builds it (parallel inserts), dumps and loads it. Beside it sits its latest
//!   [`Frozen`] copy, a [`FlatGraph`]: the same links in flat arrays with f16 vectors, which
//!   searches use when it holds everything they may see (`flat`: hnswlib's search layout).
//! * [`DenseWriter`] is the writer's side: the current graph, its tombstones (hnsw_rs cannot
//!   delete), the dump bookkeeping and the [`Freezer`] that refreshes the copy in the
//!   background after commits. It compacts (rebuilds the graph without tombstoned points) once
//!   tombstones pass a threshold, on a background thread: writes and commits go on meanwhile
//!   on the old graph, and what they insert and delete is replayed into the new one when it
//!   replaces the old (see [`Compaction`]).
//! * [`DenseView`] is what a snapshot searches: a graph, the tombstones as of the snapshot and
//!   a bound on visible chunk ids. Points inserted after the snapshot have ids `>= bound` (ids
//!   only grow), so they stay invisible to it until the next commit publishes a new view.
//!
//! Filtering (tombstones, snapshot bound, metadata filters) is done here rather than with
//! hnsw_rs's `search_filter`. That search honoured its filter and returned `k` hits in our
//! tests (tests/integration/hnsw_filter.rs, filters keeping 2% and 0.25% of the points), but its
//! code `unwrap`s the beam after a `retain` that can empty it, and its tracker reports filters
//! being ignored. On the frozen copy the filter is part of the search (only visible points
//! enter the result set); on the hnsw_rs graph [`DenseView::search_graph`] over-fetches and
//! filters afterwards. Both widen the search until they have `k` visible hits or have seen the
//! whole graph.
//!
//! **Normalisation.** Vectors are scaled to norm [`NORM`] (slightly below 1): `DistDot` asserts
//! `1 - a·b >= 0`, and rounding can push the self-dot of a unit vector above 1. Scores are
//! reported as the cosine similarity `a·b / NORM²`.

mod dump;
mod dumping;
mod flat;
mod freezer;
mod graph;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dumping::{Dumping, Pending};

pub use dump::{dump_name, link_latest, remove_stale, DumpState, LinkedDump};
pub use flat::FlatGraph;
pub use freezer::{FreezeWaiter, Freezer};
pub use graph::{Frozen, Graph};

use crate::config::HnswConfig;
use crate::types::{ChunkId, ScoredChunk, Seq};
use crate::{IndexError, Result};

/// A commit dumps the graph once this many points (and a quarter of the graph) were added
/// since the last dump (see [`DenseWriter::dump_lagging`]).
pub const DUMP_LAG_MIN_POINTS: usize = 1024;

/// Norm of stored and query vectors (see the module docs).
pub const NORM: f32 = 0.9999;

/// Validates `v` (dimension, finite, non-zero) and returns it scaled to norm [`NORM`].
pub fn normalise(v: &[f32], dimension: usize) -> Result<Vec<f32>> {
    if v.len() != dimension {
        return Err(IndexError::DimensionMismatch {
            expected: dimension,
            got: v.len(),
        });
    }
    if let Some(position) = v.iter().position(|x| !x.is_finite()) {
        return Err(IndexError::NonFiniteVector { position });
    }
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(IndexError::ZeroVector);
    }
    let scale = f64::from(NORM) / norm;
    Ok(v.iter().map(|x| (f64::from(*x) * scale) as f32).collect())
}

/// Cosine similarity of two vectors normalised by [`normalise`].
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (NORM * NORM)
}

/// An immutable view of the dense index for one snapshot.
#[derive(Clone)]
pub struct DenseView {
    graph: Arc<Graph>,
    bound: u64,
    tombstones: Arc<HashSet<u64>>,
    live: u64,
    /// Points held back from the graph during a dump; searched exactly beside it.
    pending: Arc<Pending>,
}

impl DenseView {
    /// Number of chunks this view can return.
    pub fn live(&self) -> u64 {
        self.live
    }

    fn visible(&self, id: u64, allowed: Option<&HashSet<u64>>) -> bool {
        id < self.bound && !self.tombstones.contains(&id) && allowed.is_none_or(|a| a.contains(&id))
    }

    /// Every point of the graph this view may see has an id below this (pending points, which
    /// are newer, are not in the graph).
    fn graph_bound(&self) -> u64 {
        self.pending
            .first_id()
            .map_or(self.bound, |id| id.min(self.bound))
    }

    /// True when searches of this view run on the graph's frozen copy.
    pub fn is_frozen(&self) -> bool {
        self.graph.is_empty() || self.graph.frozen_for(self.graph_bound()).is_some()
    }

    /// The graph this view searches.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The `k` nearest visible chunks to the normalised `query` (approximate), best first;
    /// `allowed`, when given, restricts the result to those ids.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: Option<&HashSet<u64>>,
    ) -> Vec<ScoredChunk> {
        let hits = match self.graph.frozen_for(self.graph_bound()) {
            Some(frozen) => self.search_frozen(&frozen.flat, query, k, ef, allowed),
            None => self.search_graph(query, k, ef, allowed),
        };
        self.with_pending(hits, query, k, allowed)
    }

    /// `hits` from the graph merged with the visible pending points, best `k` first.
    fn with_pending(
        &self,
        mut hits: Vec<ScoredChunk>,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<u64>>,
    ) -> Vec<ScoredChunk> {
        if self.pending.is_empty() {
            return hits;
        }
        // Once the dump has ended the graph holds the pending points too.
        let found: HashSet<u64> = hits.iter().map(|h| h.id.0).collect();
        let visible = self
            .pending
            .iter()
            .filter(|(id, _)| !found.contains(id) && self.visible(*id, allowed));
        let before = hits.len();
        hits.extend(visible.map(|(id, v)| ScoredChunk {
            id: ChunkId(*id),
            score: cosine(query, v),
        }));
        if hits.len() > before {
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
            hits.truncate(k);
        }
        hits
    }

    /// [`Self::search`] on a frozen copy: the filter is applied inside the search; if the
    /// reachable part of the graph held fewer than `k` visible points at width `ef`, the
    /// search widens.
    fn search_frozen(
        &self,
        flat: &FlatGraph,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: Option<&HashSet<u64>>,
    ) -> Vec<ScoredChunk> {
        let n = flat.len();
        let mut ef = ef.max(k);
        loop {
            let hits = flat.search(query, k, ef, |id| self.visible(id, allowed));
            if hits.len() >= k || ef >= n {
                return hits
                    .into_iter()
                    .map(|(id, dist)| ScoredChunk {
                        id: ChunkId(id),
                        score: (1.0 - dist) / (NORM * NORM),
                    })
                    .collect();
            }
            ef = (ef * 4).min(n);
        }
    }

    /// [`Self::search`] on the hnsw_rs graph itself: over-fetches, filters, widens.
    pub fn search_graph(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: Option<&HashSet<u64>>,
    ) -> Vec<ScoredChunk> {
        let n = self.graph.len();
        let mut fetch = (k + self.tombstones.len().min(4 * k)).min(n);
        loop {
            let hits: Vec<ScoredChunk> = self
                .graph
                .search(query, fetch, ef.max(fetch))
                .into_iter()
                .filter(|(id, _)| self.visible(*id, allowed))
                .take(k)
                .map(|(id, dist)| ScoredChunk {
                    id: ChunkId(id),
                    score: (1.0 - dist) / (NORM * NORM),
                })
                .collect();
            if hits.len() >= k || fetch >= n {
                return hits;
            }
            fetch = (fetch * 4).min(n);
        }
    }
}

impl Drop for DenseWriter {
    /// Waits for a running dump: it writes into the collection's folder (and removes older
    /// dumps there), which the next open of the collection must find settled.
    fn drop(&mut self) {
        let _ = self.wait_dump();
    }
}

/// A graph being rebuilt from the live vectors on a background thread, and what the writer did
/// since the rebuild started (to replay into the new graph before it replaces the old).
///
/// The rebuild reads the live vectors from sled while writes go on, so it may or may not see a
/// write made after it started; the replay settles both cases by the ids the rebuild holds: a
/// point inserted since the start is added unless the rebuild has it, and a point deleted since
/// the start is tombstoned if the new graph has it. Chunk ids are never reused, so an id means
/// one vector.
struct Compaction {
    /// The rebuilt graph and the ids it holds, once the thread has them.
    result: Arc<parking_lot::Mutex<Option<Result<Built>>>>,
    inserted: Vec<(u64, Vec<f32>)>,
    removed: Vec<u64>,
    started: std::time::Instant,
}

/// A rebuilt graph and the ids of its points.
type Built = (Graph, HashSet<u64>);

/// Where a background compaction stands, as [`DenseWriter::finish_compaction`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionState {
    /// None is running.
    Idle,
    /// One is running.
    Running,
    /// One just replaced the graph.
    Replaced,
}

/// The writer's side of the dense index.
pub struct DenseWriter {
    config: HnswConfig,
    graph: Arc<Graph>,
    tombstones: HashSet<u64>,
    dumped_seq: Seq,
    /// Graph points when the last dump was written (0: none, or the graph was replaced).
    dumped_points: usize,
    /// Points were added (or the graph replaced) since the last freeze request.
    changed: bool,
    freezer: Freezer,
    /// The compaction running in the background, if any.
    compaction: Option<Compaction>,
    /// While set, a started compaction waits before it reads anything (tests use it to make
    /// writes land during a compaction).
    hold: Arc<std::sync::atomic::AtomicBool>,
    /// The dump being written in the background, if any (see `dumping`).
    dumping: Option<Dumping>,
    /// Points held back from the graph while it is dumped.
    pending: Arc<Pending>,
    /// While set, a started dump waits before it writes anything (for tests).
    hold_dumps: Arc<std::sync::atomic::AtomicBool>,
}

impl DenseWriter {
    /// Wraps a loaded (or new) graph whose dump is at `dumped_seq` (0: none).
    pub fn new(
        config: HnswConfig,
        graph: Graph,
        tombstones: HashSet<u64>,
        dumped_seq: Seq,
    ) -> Self {
        Self {
            changed: !graph.is_empty(),
            dumped_points: if dumped_seq > 0 { graph.len() } else { 0 },
            config,
            graph: Arc::new(graph),
            tombstones,
            dumped_seq,
            freezer: Freezer::start(),
            compaction: None,
            hold: Arc::default(),
            dumping: None,
            pending: Arc::default(),
            hold_dumps: Arc::default(),
        }
    }

    /// Loads the newest usable dump in `root` with seq `<= max_seq`.
    pub fn load(root: &Path, config: HnswConfig, max_seq: Seq) -> Result<Option<Self>> {
        Ok(
            dump::load_latest(root, max_seq, &config)?.map(|(graph, state)| {
                let tombstones = state.tombstones.into_iter().collect();
                Self::new(config, graph, tombstones, state.seq)
            }),
        )
    }

    /// A fresh graph built from `items` (`(id, normalised vector)`).
    pub fn build(config: HnswConfig, items: &[(u64, Vec<f32>)]) -> Self {
        let graph = Graph::new(&config, items.len());
        graph.insert(items);
        Self::new(config, graph, HashSet::new(), 0)
    }

    /// Inserts new points (visible to views whose bound exceeds their ids); while the graph
    /// is being dumped they are held back and searched beside it (see `dumping`).
    pub fn insert(&mut self, items: &[(u64, Vec<f32>)]) {
        if items.is_empty() {
            return;
        }
        if self.dumping_current() {
            Arc::make_mut(&mut self.pending).push(items);
        } else {
            self.graph.insert(items);
            self.changed = true;
        }
        if let Some(c) = &mut self.compaction {
            c.inserted.extend_from_slice(items);
        }
    }

    /// True while the current graph is being dumped.
    fn dumping_current(&self) -> bool {
        self.dumping
            .as_ref()
            .is_some_and(|d| Arc::ptr_eq(&d.graph, &self.graph))
    }

    /// Marks `ids` deleted (effective for views published afterwards).
    pub fn tombstone(&mut self, ids: impl IntoIterator<Item = u64>) {
        let ids: Vec<u64> = ids.into_iter().collect();
        if let Some(c) = &mut self.compaction {
            c.removed.extend_from_slice(&ids);
        }
        self.tombstones.extend(ids);
    }

    /// Live points: graph and pending points minus tombstones.
    pub fn live(&self) -> u64 {
        (self.graph.len() + self.pending.len() - self.tombstones.len()) as u64
    }

    /// Asks the background freezer for a search copy of the graph for views bounded by
    /// `covers` (every chunk id below it must be inserted), if points changed since the last
    /// request. Call after publishing a view.
    pub fn request_freeze(&mut self, covers: u64) {
        if self.changed {
            // Pending points are not in the graph: the copy covers the ids below them.
            let covers = self.pending.first_id().map_or(covers, |id| id.min(covers));
            self.freezer.request(Arc::clone(&self.graph), covers);
            self.changed = false;
        }
    }

    /// Blocks until the background freezer has served every request.
    pub fn wait_frozen(&self) {
        self.freezer.wait_idle();
    }

    /// A handle to wait for the freezer with (see [`Freezer::waiter`]).
    pub fn freeze_waiter(&self) -> FreezeWaiter {
        self.freezer.waiter()
    }

    /// Freezes the current graph for searches of views bounded by `covers` (every chunk id
    /// below it must be inserted), blocking until the copy is published.
    pub fn freeze_now(&self, covers: u64) {
        self.graph.publish_frozen(covers);
    }

    /// True when the points added since the last dump are at least [`DUMP_LAG_MIN_POINTS`]
    /// and a quarter of the graph: an open would otherwise replay that many inserts. Dumping
    /// then keeps both the replay on open and the total dump cost proportional to the graph
    /// (each dump covers at least a quarter more points than the one before).
    pub fn dump_lagging(&self) -> bool {
        let lag = self.graph.len().saturating_sub(self.dumped_points);
        lag >= DUMP_LAG_MIN_POINTS && lag * 4 >= self.graph.len()
    }

    /// Seq of the last dump (0: none).
    pub fn dumped_seq(&self) -> Seq {
        self.dumped_seq
    }

    /// A view showing chunks with id `< bound` that are not tombstoned.
    pub fn view(&self, bound: u64) -> DenseView {
        DenseView {
            graph: Arc::clone(&self.graph),
            bound,
            tombstones: Arc::new(self.tombstones.clone()),
            live: self.live(),
            pending: Arc::clone(&self.pending),
        }
    }

    /// True when tombstones exceed `ratio` of the points and `min` in number, and no
    /// compaction is running already.
    pub fn needs_compaction(&self, ratio: f32, min: usize) -> bool {
        let t = self.tombstones.len();
        self.compaction.is_none() && t >= min.max(1) && t as f32 > ratio * self.graph.len() as f32
    }

    /// Makes `graph` (with `tombstones`) the graph; views already handed out keep the old one.
    fn replace(&mut self, graph: Graph, tombstones: HashSet<u64>) {
        self.graph = Arc::new(graph);
        self.tombstones = tombstones;
        self.changed = true;
        self.dumped_points = 0;
        // The compaction's replay put the held-back points into the new graph (they were
        // inserted after it started, or were in sled when it read).
        self.pending = Arc::default();
    }

    /// Starts rebuilding the graph on a background thread from what `live` returns (the live
    /// vectors, read when the thread runs); `done` is called on that thread when the new graph
    /// is ready, to have the writer take it ([`Self::finish_compaction`]) without waiting for
    /// the next write.
    pub fn start_compaction(
        &mut self,
        live: impl FnOnce() -> Result<Vec<(u64, Vec<f32>)>> + Send + 'static,
        done: impl FnOnce() + Send + 'static,
    ) {
        let (config, hold) = (self.config, Arc::clone(&self.hold));
        let result = Arc::new(parking_lot::Mutex::new(None));
        let slot = Arc::clone(&result);
        let thread = std::thread::Builder::new()
            .name("hnsw-compaction".into())
            .spawn(move || {
                while hold.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                let built = live().map(|items| {
                    let graph = Graph::new(&config, items.len());
                    graph.insert(&items);
                    let ids = items.into_iter().map(|(id, _)| id).collect();
                    (graph, ids)
                });
                *slot.lock() = Some(built);
                done();
            });
        match thread {
            Ok(_) => {
                self.compaction = Some(Compaction {
                    result,
                    inserted: Vec::new(),
                    removed: Vec::new(),
                    started: std::time::Instant::now(),
                })
            }
            Err(e) => tracing::error!("cannot start the HNSW compaction: {e}"),
        }
    }

    /// Takes the compacted graph if its rebuild has finished: replays the inserts and deletes
    /// made since it started, and makes it the graph. Never blocks on the rebuild.
    pub fn finish_compaction(&mut self) -> CompactionState {
        let Some(c) = &self.compaction else {
            return CompactionState::Idle;
        };
        let Some(result) = c.result.lock().take() else {
            return CompactionState::Running;
        };
        let Some(c) = self.compaction.take() else {
            return CompactionState::Idle;
        };
        let (graph, mut held) = match result {
            Ok(built) => built,
            Err(e) => {
                tracing::error!("HNSW compaction failed, keeping the old graph: {e}");
                return CompactionState::Idle;
            }
        };
        // Points inserted since the start and not in the rebuild go in, unless already deleted
        // again; points deleted since the start that the new graph holds are tombstoned.
        let removed: HashSet<u64> = c.removed.into_iter().collect();
        let missing: Vec<(u64, Vec<f32>)> = c
            .inserted
            .into_iter()
            .filter(|(id, _)| !held.contains(id) && !removed.contains(id))
            .collect();
        graph.insert(&missing);
        held.extend(missing.iter().map(|(id, _)| *id));
        let tombstones: HashSet<u64> = removed.into_iter().filter(|id| held.contains(id)).collect();
        tracing::info!(
            points = graph.len(),
            replayed_inserts = missing.len(),
            tombstones = tombstones.len(),
            ms = c.started.elapsed().as_millis() as u64,
            "HNSW graph compacted"
        );
        self.replace(graph, tombstones);
        CompactionState::Replaced
    }

    /// True while a compaction runs in the background.
    pub fn compacting(&self) -> bool {
        self.compaction.is_some()
    }

    /// Makes compactions started from now on wait (`true`) before reading anything, until
    /// called with `false`. For tests that need writes to land during a compaction.
    pub fn hold_compactions(&self, hold: bool) {
        self.hold.store(hold, std::sync::atomic::Ordering::SeqCst);
    }

    /// Dumps the graph as of `seq` into `root` (atomically; see `dump`), now: after the
    /// background dump running, if any, has ended.
    pub fn dump(&mut self, root: &Path, seq: Seq) -> Result<()> {
        // A failed background dump was logged; this one reports its own outcome.
        let _ = self.wait_dump();
        if self.dumped_seq == seq {
            return Ok(());
        }
        let tombstones = self.tombstones.iter().copied().collect();
        dump::write(root, seq, &self.graph, tombstones)?;
        self.dumped_seq = seq;
        self.dumped_points = self.graph.len();
        Ok(())
    }

    /// Starts dumping the graph as of `seq` into `root` on a background thread (see
    /// `dumping`) unless one is running already (then the next commit tries again); `done` is
    /// called on that thread when the files are in place, so the writer can take the dump
    /// ([`Self::finish_dump`]) without waiting for the next write. The graph must hold every
    /// write up to `seq`.
    pub fn start_dump(&mut self, root: PathBuf, seq: Seq, done: impl FnOnce() + Send + 'static) {
        if self.dumping.is_some() {
            return;
        }
        let tombstones = self.tombstones.iter().copied().collect();
        let graph = Arc::clone(&self.graph);
        let hold = Arc::clone(&self.hold_dumps);
        match Dumping::start(root, seq, graph, tombstones, hold, done) {
            Ok(d) => self.dumping = Some(d),
            Err(e) => tracing::error!("cannot start the HNSW dump: {e}"),
        }
    }

    /// Takes the background dump if it has ended: records it and puts the held-back points
    /// into the graph. Never blocks on the dump; true when one ended.
    pub fn finish_dump(&mut self) -> bool {
        let Some(outcome) = self.dumping.as_ref().and_then(Dumping::try_take) else {
            return false;
        };
        // A failed dump is logged there; it is still due, so the next commit tries again.
        let _ = self.took_dump(outcome);
        true
    }

    /// Waits for the background dump, if any, and takes it (see [`Self::finish_dump`]).
    pub fn wait_dump(&mut self) -> Result<()> {
        match self.dumping.as_ref().map(Dumping::wait) {
            Some(outcome) => self.took_dump(outcome),
            None => Ok(()),
        }
    }

    fn took_dump(&mut self, outcome: Result<()>) -> Result<()> {
        let Some(d) = self.dumping.take() else {
            return Ok(());
        };
        let current = Arc::ptr_eq(&d.graph, &self.graph);
        if current {
            let held = std::mem::take(&mut self.pending);
            if !held.is_empty() {
                let points: Vec<(u64, Vec<f32>)> = held.iter().cloned().collect();
                self.graph.insert(&points);
                self.changed = true;
            }
        }
        match outcome {
            Ok(()) => {
                tracing::debug!(
                    seq = d.seq,
                    points = d.points,
                    ms = d.started.elapsed().as_millis() as u64,
                    "HNSW graph dumped"
                );
                // A dump of a graph replaced since is still a valid start for recovery, but
                // says nothing of how far the new graph is dumped.
                self.dumped_seq = self.dumped_seq.max(d.seq);
                if current {
                    self.dumped_points = d.points;
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(seq = d.seq, "HNSW dump failed: {e}");
                Err(e)
            }
        }
    }

    /// True while a dump is being written in the background.
    pub fn dumping(&self) -> bool {
        self.dumping.is_some()
    }

    /// Makes dumps started from now on wait (`true`) before writing anything, until called
    /// with `false`. For tests that need writes to land during a dump.
    pub fn hold_dumps(&self, hold: bool) {
        self.hold_dumps
            .store(hold, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
