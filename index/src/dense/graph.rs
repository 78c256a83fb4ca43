//! [`Graph`]: a thin wrapper over one `hnsw_rs::Hnsw<f32, DistDot>`.
//!
//! hnsw_rs has no delete; the owner ([`super::DenseWriter`]) keeps tombstones and rebuilds the
//! graph when they pile up. Inserts and searches both take `&self` (hnsw_rs locks per node), so
//! searches run concurrently with inserts on the same graph.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use hnsw_rs::hnsw::Point;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::{AnnT, DistDot, Distance, Hnsw};

use super::flat::{ExactVector, FlatGraph, FrozenPoint};
use crate::config::HnswConfig;
use crate::{IndexError, Result};

/// hnsw_rs caps the number of layers at 16.
const MAX_LAYERS: usize = 16;
/// Batches at least this large are inserted with hnsw_rs's parallel insert.
const PARALLEL_INSERT_MIN: usize = 64;

impl ExactVector for Point<'static, f32> {
    fn vector(&self) -> &[f32] {
        self.get_v()
    }
}

/// One HNSW graph over normalised vectors, keyed by chunk id (hnsw_rs's `DataId`), with the
/// latest frozen copy of it ([`Frozen`]) that searches use when it is recent enough.
pub struct Graph {
    hnsw: Hnsw<'static, f32, DistDot>,
    frozen: ArcSwapOption<Frozen>,
}

/// A [`FlatGraph`] copy of a [`Graph`] and how much of the graph it holds.
#[derive(Debug)]
pub struct Frozen {
    /// The copy.
    pub flat: FlatGraph,
    /// Every point with a chunk id below this was in the graph when the copy was made.
    pub covers: u64,
}

impl Graph {
    /// An empty graph sized for about `capacity` points.
    pub fn new(config: &HnswConfig, capacity: usize) -> Self {
        let hnsw = Hnsw::new(
            config.m,
            capacity.max(1024),
            MAX_LAYERS,
            config.ef_construction,
            DistDot,
        );
        Self::wrap(hnsw)
    }

    fn wrap(hnsw: Hnsw<'static, f32, DistDot>) -> Self {
        Self {
            hnsw,
            frozen: ArcSwapOption::empty(),
        }
    }

    /// Number of points, tombstoned ones included.
    pub fn len(&self) -> usize {
        self.hnsw.get_nb_point()
    }

    /// True when the graph has no point.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts `(id, normalised vector)` pairs, in parallel for large batches.
    pub fn insert(&self, items: &[(u64, Vec<f32>)]) {
        if items.len() >= PARALLEL_INSERT_MIN {
            let refs: Vec<(&Vec<f32>, usize)> =
                items.iter().map(|(id, v)| (v, *id as usize)).collect();
            self.hnsw.parallel_insert(&refs);
        } else {
            for (id, v) in items {
                self.hnsw.insert((v.as_slice(), *id as usize));
            }
        }
    }

    /// The `k` approximate nearest points to `query` as `(id, DistDot distance)`, nearest first.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<(u64, f32)> {
        if self.is_empty() {
            return Vec::new();
        }
        self.hnsw
            .search(query, k, ef.max(k))
            .into_iter()
            .map(|n| (n.d_id as u64, n.distance))
            .collect()
    }

    /// Copies the graph into a [`FlatGraph`] for fast searches (see `flat`). Safe to run
    /// while points are being inserted: a point inserted meanwhile may be left out, and links
    /// to points left out are dropped.
    pub fn freeze(&self) -> FlatGraph {
        let indexation = self.hnsw.get_point_indexation();
        let dim = indexation.get_data_dimension();
        // A layer iterator holds hnsw_rs's layer lock (which inserts need) while it runs: take
        // the points out first, then copy them without it. (Layer by layer: the all-points
        // iterator unwraps the entry point, which a first insert sets only after adding it. A
        // point being inserted on a new top layer is left for the next copy.)
        let top = usize::from(indexation.get_max_level_observed());
        let points: Vec<_> = (0..=top)
            .flat_map(|layer| indexation.get_layer_iterator(layer).collect::<Vec<_>>())
            .collect();
        let points: Vec<FrozenPoint> = points
            .into_iter()
            .map(|p| {
                // hnsw_rs also fills lists above a point's own layer (its insert records
                // the points it passed on the way down); its searches never read them (a
                // search reaches layer l only through points of layer >= l), so they are not
                // copied.
                let level = p.get_point_id().0 as usize;
                let links = p
                    .get_neighborhood_id()
                    .into_iter()
                    .take(level + 1)
                    .map(|layer| layer.into_iter().map(|n| n.d_id as u64).collect())
                    .collect();
                FrozenPoint {
                    id: p.get_origin_id() as u64,
                    level,
                    exact: p,
                    links,
                }
            })
            .collect();
        FlatGraph::new(points, dim, |a, b| DistDot.eval(a, b))
    }

    /// Freezes the graph and publishes the copy for searches of views whose bound is at most
    /// `covers`; the caller guarantees every point with a smaller chunk id has been inserted.
    pub fn publish_frozen(&self, covers: u64) -> Arc<Frozen> {
        let frozen = Arc::new(Frozen {
            flat: self.freeze(),
            covers,
        });
        self.frozen.store(Some(Arc::clone(&frozen)));
        frozen
    }

    /// The published frozen copy, if it holds every point a view bounded by `bound` can see.
    pub fn frozen_for(&self, bound: u64) -> Option<Arc<Frozen>> {
        self.frozen.load_full().filter(|f| f.covers >= bound)
    }

    /// The published frozen copy, however old.
    pub fn frozen(&self) -> Option<Arc<Frozen>> {
        self.frozen.load_full()
    }

    /// hnsw_rs's own filtered search (exposed for tests of its filter contract).
    pub fn search_filter(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: &dyn Fn(&usize) -> bool,
    ) -> Vec<(u64, f32)> {
        let filter: &dyn hnsw_rs::filter::FilterT = &keep;
        self.hnsw
            .search_filter(query, k, ef.max(k), Some(filter))
            .into_iter()
            .map(|n| (n.d_id as u64, n.distance))
            .collect()
    }

    /// Writes `<dir>/<basename>.hnsw.{graph,data}`; returns the basename hnsw_rs used.
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<String> {
        self.hnsw
            .file_dump(dir, basename)
            .map_err(|e| IndexError::dense(format!("dump to {}: {e}", dir.display())))
    }

    /// Loads a graph written by [`Self::dump`].
    ///
    /// hnsw_rs ties the loaded graph's lifetime to its `HnswIo` loader, so the loader (a few
    /// hundred bytes, no point data since mmap is off) is leaked once per load to get a
    /// `'static` graph. Loads happen on open and never in a loop. hnsw_rs asserts on malformed
    /// files; the panic is caught and reported as an error.
    pub fn load(dir: &Path, basename: &str) -> Result<Self> {
        let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        let loaded =
            std::panic::catch_unwind(move || io.load_hnsw_with_dist::<f32, DistDot>(DistDot));
        match loaded {
            Ok(Ok(hnsw)) => Ok(Self::wrap(hnsw)),
            Ok(Err(e)) => Err(IndexError::dense(format!("load {}: {e}", dir.display()))),
            Err(_) => Err(IndexError::dense(format!(
                "load {}: hnsw_rs panicked",
                dir.display()
            ))),
        }
    }
}
