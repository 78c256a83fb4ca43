//! [`FlatGraph`]: a read-only copy of an hnsw_rs graph laid out for search.
//!
//! hnsw_rs keeps every point behind an `Arc`, its neighbour lists behind an `RwLock` and the
//! points a search has seen in a hash set: right for a graph that grows under concurrent
//! inserts, but most of a query's time goes to that upkeep rather than to distances (profiled
//! at 40% `search_layer`, 36% dot products). A frozen copy needs none of it:
//!
//! * points get dense internal numbers `0..n`; their vectors sit in one contiguous array, as
//!   f16 (a query at 50k points and up is bound by memory reads, and f16 halves them: 1.7×
//!   the queries/s of f32 at the same recall), and their layer-0 neighbour lists in another,
//!   fixed stride `1 + max degree` (count first);
//! * upper layers (a few percent of the points) get their own fixed-stride blocks, found
//!   through a per-point offset;
//! * a search marks visited points in a per-thread array of `u16` generation tags (reset only
//!   when the tag wraps), and prefetches the next neighbour's vector while scoring the current
//!   one — the layout and search of hnswlib's `searchBaseLayerST`.
//!
//! The graph itself (which points are linked) is hnsw_rs's, copied as is; only the layout
//! changes, so recall at a given `ef` is that of the hnsw_rs graph. The full-precision vectors
//! are not copied: the copy holds hnsw_rs's points (`Arc`s) and scores its final results on
//! them with the graph's own distance, so scores are those of a search of the hnsw_rs graph.
//!
//! Filtering is part of the search (as hnswlib does it): every point is explored, but only
//! points the caller's predicate accepts enter the result set, and the search does not stop
//! until it holds `ef` of them or the reachable graph is exhausted.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// A point's full-precision vector, shared with its owner (hnsw_rs's point, in practice).
pub trait ExactVector: Send + Sync {
    /// The vector.
    fn vector(&self) -> &[f32];
}

impl ExactVector for Vec<f32> {
    fn vector(&self) -> &[f32] {
        self
    }
}

/// The distance the graph was built with, on full-precision vectors.
pub(crate) type ExactDist = fn(&[f32], &[f32]) -> f32;

/// One point as copied out of hnsw_rs: chunk id, layer, its full-precision vector (shared,
/// not copied) and neighbour chunk ids per layer (`links[l]` for `l` in `0..=level`).
pub(crate) struct FrozenPoint {
    pub id: u64,
    pub level: usize,
    pub exact: Arc<dyn ExactVector>,
    pub links: Vec<Vec<u64>>,
}

/// A frozen, search-only HNSW graph (see the module docs).
pub struct FlatGraph {
    dim: usize,
    /// Internal number -> chunk id.
    ids: Vec<u64>,
    /// `n * dim` vectors as IEEE half floats (bits), internal order.
    vectors: Vec<u16>,
    /// Layer-0 lists: `n * stride0` entries, `[count, neighbours...]`.
    links0: Vec<u32>,
    stride0: usize,
    /// Upper-layer lists: point `i` with level `L >= 1` owns `L` blocks of `stride` entries
    /// starting at `upper_start[i]` (block `l - 1` for layer `l`); a point has no list above
    /// its level.
    upper: Vec<u32>,
    upper_start: Vec<u32>,
    stride: usize,
    levels: Vec<u8>,
    /// The points of the top layer (search starts at the nearest of them).
    entries: Vec<u32>,
    top_level: usize,
    dot: DotFn,
    /// Full-precision vectors (hnsw_rs's own), internal order, for the final scores.
    exact: Vec<Arc<dyn ExactVector>>,
    exact_dist: ExactDist,
}

impl std::fmt::Debug for FlatGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatGraph")
            .field("points", &self.ids.len())
            .field("dim", &self.dim)
            .field("top_level", &self.top_level)
            .finish()
    }
}

/// A candidate: distance `1 - a·b` and internal number.
#[derive(Clone, Copy, Debug)]
struct Cand {
    dist: f32,
    node: u32,
}

impl PartialEq for Cand {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.node.cmp(&other.node))
    }
}

/// Per-thread search scratch: visited tags and the two heaps, kept between queries.
#[derive(Default)]
struct Scratch {
    tags: Vec<u16>,
    tag: u16,
    candidates: BinaryHeap<Reverse<Cand>>,
    results: BinaryHeap<Cand>,
}

impl Scratch {
    /// Starts a query over `n` points: a fresh tag, emptied heaps.
    fn begin(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.tag = self.tag.wrapping_add(1);
        if self.tag == 0 {
            self.tags.fill(0);
            self.tag = 1;
        }
        self.candidates.clear();
        self.results.clear();
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl FlatGraph {
    /// Lays out `points` (every point of one graph, any order). Links to ids that are not
    /// among the points (inserted concurrently with the copy) are dropped.
    pub(crate) fn new(mut points: Vec<FrozenPoint>, dim: usize, exact_dist: ExactDist) -> Self {
        points.sort_unstable_by_key(|p| p.id);
        let index: HashMap<u64, u32> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i as u32))
            .collect();
        let n = points.len();
        let degree0 = points
            .iter()
            .map(|p| p.links.first().map_or(0, Vec::len))
            .max()
            .unwrap_or(0);
        let degree = points
            .iter()
            .flat_map(|p| p.links.iter().skip(1).map(Vec::len))
            .max()
            .unwrap_or(0);
        let (stride0, stride) = (degree0 + 1, degree + 1);
        let top_level = points.iter().map(|p| p.level).max().unwrap_or(0);

        let mut ids = Vec::with_capacity(n);
        let mut vectors = Vec::with_capacity(n * dim);
        let mut links0 = vec![0u32; n * stride0];
        let mut upper = Vec::new();
        let mut upper_start = vec![u32::MAX; n];
        let mut levels = Vec::with_capacity(n);
        let mut entries = Vec::new();
        // Keeps the links of layer `layer` to copied points that reach that layer.
        let mut dropped = 0usize;
        let mut fill = |block: &mut [u32], links: &[u64], layer: usize| {
            let mut count = 0;
            for id in links {
                match index.get(id) {
                    Some(&i) if points[i as usize].level >= layer => {
                        count += 1;
                        block[count] = i;
                    }
                    _ => dropped += 1,
                }
            }
            block[0] = count as u32;
        };
        for (i, p) in points.iter().enumerate() {
            ids.push(p.id);
            vectors.extend(
                p.exact
                    .vector()
                    .iter()
                    .map(|x| half::f16::from_f32(*x).to_bits()),
            );
            levels.push(p.level as u8);
            if p.level == top_level {
                entries.push(i as u32);
            }
            if let Some(l0) = p.links.first() {
                fill(&mut links0[i * stride0..(i + 1) * stride0], l0, 0);
            }
            if p.level > 0 {
                upper_start[i] = upper.len() as u32;
                upper.resize(upper.len() + p.level * stride, 0);
                for layer in 1..=p.level {
                    let start = upper_start[i] as usize + (layer - 1) * stride;
                    let links = p.links.get(layer).map_or(&[][..], Vec::as_slice);
                    fill(&mut upper[start..start + stride], links, layer);
                }
            }
        }
        if dropped > 0 {
            tracing::debug!(
                dropped,
                "links to points outside the copy or below their layer"
            );
        }
        let exact = points.into_iter().map(|p| p.exact).collect();
        Self {
            dim,
            exact,
            exact_dist,
            ids,
            vectors,
            links0,
            stride0,
            upper,
            upper_start,
            stride,
            levels,
            entries,
            top_level,
            dot: dot_fn(),
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the graph has no point.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes held by the layout (f16 vectors, lists, ids, handles on the exact vectors, which
    /// hnsw_rs owns).
    pub fn memory_bytes(&self) -> usize {
        self.vectors.len() * 2
            + (self.links0.len() + self.upper.len() + self.upper_start.len()) * 4
            + self.ids.len() * 8
            + self.levels.len()
            + self.exact.len() * size_of::<Arc<dyn ExactVector>>()
    }

    #[inline]
    fn vector(&self, node: u32) -> &[u16] {
        let start = node as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    #[inline]
    fn dist(&self, query: &[f32], node: u32) -> f32 {
        1.0 - (self.dot)(query, self.vector(node))
    }

    #[inline]
    fn neighbours(&self, node: u32, layer: usize) -> &[u32] {
        let block = if layer == 0 {
            let start = node as usize * self.stride0;
            &self.links0[start..start + self.stride0]
        } else if layer > self.levels[node as usize] as usize {
            return &[];
        } else {
            let start = self.upper_start[node as usize] as usize + (layer - 1) * self.stride;
            &self.upper[start..start + self.stride]
        };
        &block[1..1 + block[0] as usize]
    }

    /// The `k` approximate nearest points to `query` that `keep` accepts, as
    /// `(chunk id, distance)`, nearest first. `ef` (raised to `k`) is the width of the layer-0
    /// search. The search runs on the f16 vectors; the `k` results are then scored again on
    /// the full-precision vectors with the graph's own distance and re-sorted, so a result
    /// has exactly the score a search of the hnsw_rs graph reports for it (f16 moves a
    /// distance by < 1e-3, too little to change which points make the top `k` in the
    /// recall measured: identical to the hnsw_rs search's at every `ef`, BENCHMARKS.md).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: impl Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        if self.is_empty() || k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let ef = ef.max(k);
        // Greedy descent through the upper layers from the nearest top-layer point.
        let mut best = self.entries[0];
        let mut best_dist = self.dist(query, best);
        for &e in &self.entries[1..] {
            let d = self.dist(query, e);
            if d < best_dist {
                (best, best_dist) = (e, d);
            }
        }
        for layer in (1..=self.top_level).rev() {
            loop {
                let mut changed = false;
                for &nb in self.neighbours(best, layer) {
                    let d = self.dist(query, nb);
                    if d < best_dist {
                        (best, best_dist) = (nb, d);
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            self.search_layer0(&mut scratch, query, best, best_dist, ef, &keep);
            let mut found: Vec<Cand> = scratch.results.drain().collect();
            found.sort_unstable();
            found.truncate(k);
            for c in &mut found {
                c.dist = (self.exact_dist)(query, self.exact[c.node as usize].vector());
            }
            found.sort_unstable();
            found
                .into_iter()
                .map(|c| (self.ids[c.node as usize], c.dist))
                .collect()
        })
    }

    fn search_layer0(
        &self,
        s: &mut Scratch,
        query: &[f32],
        start: u32,
        start_dist: f32,
        ef: usize,
        keep: &impl Fn(u64) -> bool,
    ) {
        s.begin(self.len());
        let tag = s.tag;
        s.tags[start as usize] = tag;
        s.candidates.push(Reverse(Cand {
            dist: start_dist,
            node: start,
        }));
        let mut bound = f32::INFINITY;
        if keep(self.ids[start as usize]) {
            s.results.push(Cand {
                dist: start_dist,
                node: start,
            });
            bound = start_dist;
        }
        while let Some(Reverse(c)) = s.candidates.pop() {
            if c.dist > bound && s.results.len() >= ef {
                break;
            }
            let nbs = self.neighbours(c.node, 0);
            for &nb in nbs.iter().take(PREFETCH_AHEAD) {
                self.prefetch(nb);
            }
            for (j, &nb) in nbs.iter().enumerate() {
                if let Some(&ahead) = nbs.get(j + PREFETCH_AHEAD) {
                    self.prefetch(ahead);
                }
                let seen = &mut s.tags[nb as usize];
                if *seen == tag {
                    continue;
                }
                *seen = tag;
                let dist = self.dist(query, nb);
                if s.results.len() < ef || dist < bound {
                    s.candidates.push(Reverse(Cand { dist, node: nb }));
                    if keep(self.ids[nb as usize]) {
                        s.results.push(Cand { dist, node: nb });
                        if s.results.len() > ef {
                            s.results.pop();
                        }
                        if let Some(worst) = s.results.peek() {
                            bound = worst.dist;
                        }
                    }
                }
            }
        }
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        let v = self.vector(node);
        prefetch_lines(v.as_ptr().cast(), size_of_val(v));
    }

    /// The layer each point reaches (for tests and diagnostics), keyed by chunk id.
    pub fn level_of(&self, id: u64) -> Option<usize> {
        let i = self.ids.binary_search(&id).ok()?;
        Some(self.levels[i] as usize)
    }
}

/// How many neighbours ahead of the one being scored are prefetched.
const PREFETCH_AHEAD: usize = 2;

#[inline]
fn prefetch_lines(ptr: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: prefetch is a hint; it never faults, and the address is inside `ptr`'s
            // allocation (offset < bytes).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.add(offset).cast()) };
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, bytes);
}

/// The dot product of an f32 query and a vector of f16 bits.
pub(crate) type DotFn = fn(&[f32], &[u16]) -> f32;

/// The fastest dot product this CPU runs (AVX-512, AVX2 + F16C + FMA, or portable).
pub(crate) fn dot_fn() -> DotFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return dot_avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return dot_avx2;
        }
    }
    dot_portable
}

/// Portable dot product.
pub(crate) fn dot_portable(a: &[f32], b: &[u16]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += x[i] * half::f16::from_bits(y[i]).to_f32();
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * half::f16::from_bits(*y).to_f32())
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
fn dot_avx512(a: &[f32], b: &[u16]) -> f32 {
    // SAFETY: chosen by `dot_fn` only when the CPU has AVX-512F.
    unsafe { dot_avx512_impl(a, b) }
}

/// # Safety
/// The CPU must have AVX-512F; loads stay within the shorter of the two slices.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512_impl(a: &[f32], b: &[u16]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load reads 16 values at `i + 16 j < n` from both slices.
    unsafe {
        while i + 64 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_loadu_ps(pa.add(i + 16 * j));
                let y = _mm512_cvtph_ps(_mm256_loadu_si256(pb.add(i + 16 * j).cast()));
                *acc = _mm512_fmadd_ps(x, y, *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            let x = _mm512_loadu_ps(pa.add(i));
            let y = _mm512_cvtph_ps(_mm256_loadu_si256(pb.add(i).cast()));
            acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
            i += 16;
        }
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let mut total = _mm512_reduce_add_ps(sum);
    for j in i..n {
        total += a[j] * half::f16::from_bits(b[j]).to_f32();
    }
    total
}

#[cfg(target_arch = "x86_64")]
fn dot_avx2(a: &[f32], b: &[u16]) -> f32 {
    // SAFETY: chosen by `dot_fn` only when the CPU has AVX2, FMA and F16C.
    unsafe { dot_avx2_impl(a, b) }
}

/// # Safety
/// The CPU must have AVX2, FMA and F16C; loads stay within the shorter of the two slices.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2_impl(a: &[f32], b: &[u16]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load reads 8 values at `i + 8 j < n` from both slices.
    unsafe {
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * j));
                let y = _mm256_cvtph_ps(_mm_loadu_si128(pb.add(i + 8 * j).cast()));
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            let x = _mm256_loadu_ps(pa.add(i));
            let y = _mm256_cvtph_ps(_mm_loadu_si128(pb.add(i).cast()));
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let hi = _mm256_extractf128_ps::<1>(sum);
    let quad = _mm_add_ps(_mm256_castps256_ps128(sum), hi);
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    let single = _mm_add_ss(pair, _mm_shuffle_ps::<1>(pair, pair));
    let mut total = _mm_cvtss_f32(single);
    for j in i..n {
        total += a[j] * half::f16::from_bits(b[j]).to_f32();
    }
    total
}

#[cfg(test)]
mod tests;
