//! The Qdrant backend: ragd's collections on a Qdrant cluster, for a corpus or a query load
//! past one machine.
//!
//! Qdrant (sharding, replication, Raft) does the distribution; ragd keeps its own analysis and
//! scoring, so a collection searches the same on both backends: the BM25 leg is a sparse vector
//! made by ragd's analyzer (`index::sparse_vectors`), weighed by the whole collection's IDF
//! (or each shard's, as chosen), and the two legs of a hybrid search come back in one batched
//! call for ragd's own fusion.
//!
//! `settings.rs` is the `[qdrant]` table; `cluster.rs` the connection (one `node.rs` channel per
//! node, failing over between them); `ops.rs` collection metadata and payload indexes;
//! `collection.rs` one collection's points (layout in its docs), `frequencies.rs` the
//! document frequencies it counts for collection-wide IDF; `store.rs` the collections;
//! `blocking.rs` a collection behind the index crate's synchronous seam (`index::backend`);
//! `jobs.rs` the copies of bulk-job records every server on the cluster reads.

mod blocking;
mod cluster;
mod collection;
mod error;
mod frequencies;
mod jobs;
mod node;
mod ops;
mod settings;
mod store;

pub use blocking::{wait_on, Blocking};
pub use collection::{chunk_id, QdrantCollection, DENSE, SPARSE};
pub use error::{QdrantError, Result};
pub use jobs::QdrantJobRecords;
pub use ops::{StoredSettings, LAYOUT, SETTINGS_KEY};
pub use settings::{IdfScope, QdrantSettings};
pub use store::QdrantStore;
