//! ragd index: the sled meta store, the tantivy BM25 index and the hnsw_rs dense index.
#![warn(missing_docs)]
