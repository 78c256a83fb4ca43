//! Integration tests of ragd-index: one binary, one module per scenario.

mod bad_input;
mod basics;
mod crash;
mod frozen;
mod hnsw_filter;
mod model;
mod recall;
mod reindex;
mod snapshot;
mod sparse_vectors;
mod store;

use std::path::Path;

use ragd_index::testing::test_config;
use ragd_index::Collection;

/// Dimension used by the small scenarios.
pub const DIM: usize = 16;

/// Creates collection `name` in `root` with the test config.
pub fn create(root: &Path, name: &str) -> Collection {
    Collection::create(&root.join(name), test_config(name, DIM)).unwrap()
}

/// Reopens collection `name` in `root` with the test config.
pub fn reopen(root: &Path, name: &str) -> Collection {
    Collection::open(&root.join(name), test_config(name, DIM)).unwrap()
}
