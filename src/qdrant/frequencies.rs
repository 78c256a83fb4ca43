//! Document frequencies counted on the cluster, kept a short while.
//!
//! A collection with collection-wide IDF (`qdrant.idf = "collection"`) counts, for each query
//! term, the chunks that hold it, and the chunks in all. Those counts move slowly (one ingest
//! changes a term's frequency by a few chunks in thousands), and the same terms come back
//! query after query, so a server keeps each count for `qdrant.idf_cache_ms` and asks the
//! cluster only for the others. A count is at most that old: a term that a just-written
//! document brought in may weigh as if rarer for that long; which chunks are found is never
//! stale.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Entries kept at most; past it, expired ones are dropped, then all if none had expired.
const CAPACITY: usize = 200_000;

/// What a count is of: the chunks holding a term, or all the collection's chunks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    /// The Qdrant collection.
    pub collection: String,
    /// The term id, or `None` for the chunk count.
    pub term: Option<u32>,
}

/// The counts of every collection this server searched, each with when it was read.
#[derive(Debug)]
pub(super) struct FrequencyCache {
    ttl: Duration,
    entries: Mutex<HashMap<Key, (u64, Instant)>>,
}

impl FrequencyCache {
    /// A cache keeping each count for `ttl` (zero keeps none).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The count of `key` if read less than the TTL ago.
    pub fn get(&self, key: &Key) -> Option<u64> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock();
        let (count, at) = entries.get(key)?;
        (at.elapsed() < self.ttl).then_some(*count)
    }

    /// Keeps `count` for `key`, read at `at`.
    pub fn put(&self, key: Key, count: u64, at: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            let ttl = self.ttl;
            entries.retain(|_, (_, read)| read.elapsed() < ttl);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (count, at));
    }

    /// Forgets every count of `collection` (it was dropped or made anew).
    pub fn forget(&self, collection: &str) {
        self.entries
            .lock()
            .retain(|k, _| k.collection != collection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(collection: &str, term: Option<u32>) -> Key {
        Key {
            collection: collection.into(),
            term,
        }
    }

    #[test]
    fn a_count_is_kept_for_the_ttl_per_collection_and_term() {
        let cache = FrequencyCache::new(Duration::from_secs(60));
        let now = Instant::now();
        cache.put(key("a", Some(7)), 3, now);
        cache.put(key("a", None), 100, now);
        assert_eq!(cache.get(&key("a", Some(7))), Some(3));
        assert_eq!(cache.get(&key("a", None)), Some(100));
        assert_eq!(cache.get(&key("b", Some(7))), None);
        assert_eq!(cache.get(&key("a", Some(8))), None);
        // Read longer ago than the TTL: asked again.
        if let Some(then) = now.checked_sub(Duration::from_secs(61)) {
            cache.put(key("a", Some(9)), 1, then);
            assert_eq!(cache.get(&key("a", Some(9))), None);
        }
        cache.forget("a");
        assert_eq!(cache.get(&key("a", Some(7))), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = FrequencyCache::new(Duration::ZERO);
        cache.put(key("a", Some(7)), 3, Instant::now());
        assert_eq!(cache.get(&key("a", Some(7))), None);
    }
}
