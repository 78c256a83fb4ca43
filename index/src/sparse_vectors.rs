//! BM25 as sparse vectors, for an index that stores them instead of a tantivy field (ragd's
//! Qdrant backend).
//!
//! A chunk's vector holds, for each term ragd's analyzer makes of its BM25 text, the
//! document-side half of BM25: `tf · (k1 + 1) / (tf + k1 · (1 − b + b · len / avg_len))`, with
//! the title field's share added at its boost as tantivy scores it
//! ([`crate::sparse::TITLE_BOOST_WITH_TITLE_IN_TEXT`] or [`crate::sparse::TITLE_BOOST`]). A
//! query's vector holds each of its distinct terms with weight 1, as tantivy's query has one
//! clause per distinct term. The other half, the term's inverse document frequency, is
//! multiplied in at search time, by the index (Qdrant's `modifier: idf`, per shard) or by the
//! caller into the query's weights ([`idf`], from counts over the whole collection); both compute
//! `ln(1 + (N − n + 0.5) / (n + 0.5))`, the formula tantivy uses, so the dot product of the two
//! vectors is BM25.
//!
//! Terms become dimensions through a stable 32-bit hash ([`term_id`]: FNV-1a of the term's
//! UTF-8), the same on every machine and in every version, so vectors written by one ragd process
//! are searched by another. Two terms that share a hash share a dimension; at 32 bits that is a
//! handful of pairs in a million-term vocabulary.
//!
//! The average lengths are fixed per collection (kept in its settings) rather than tracked as
//! the corpus grows: a stored vector cannot be rescored when the average moves. Chosen from the
//! first batch written, they are close to the corpus average for any corpus of one kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Bm25Analyzer, Bm25Config};
use crate::sparse::{terms, TITLE_BOOST, TITLE_BOOST_WITH_TITLE_IN_TEXT};
use crate::{IndexError, Result};

/// The inverse document frequency of a term `df` of `chunks` chunks hold, as tantivy and
/// Qdrant's `modifier: idf` compute it: `ln(1 + (N − n + 0.5) / (n + 0.5))`.
pub fn idf(chunks: u64, df: u64) -> f32 {
    let df = df.min(chunks) as f32;
    (1.0 + (chunks as f32 - df + 0.5) / (df + 0.5)).ln()
}

/// tantivy's BM25 term-frequency saturation.
pub const DEFAULT_K1: f32 = 1.2;
/// tantivy's BM25 length normalisation.
pub const DEFAULT_B: f32 = 0.75;

/// A sparse vector: strictly increasing dimensions and their weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVector {
    /// Dimensions ([`term_id`]s), strictly increasing.
    pub indices: Vec<u32>,
    /// The weight of each dimension.
    pub values: Vec<f32>,
}

impl SparseVector {
    fn from_map(map: BTreeMap<u32, f32>) -> Self {
        let (indices, values) = map.into_iter().unzip();
        Self { indices, values }
    }

    /// True when the vector has no dimension.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The weight of dimension `id` (0 when the vector lacks it).
    pub fn weight(&self, id: u32) -> f32 {
        self.indices
            .binary_search(&id)
            .map_or(0.0, |i| self.values[i])
    }

    /// The dot product with `other`.
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut i, mut j, mut sum) = (0, 0, 0.0);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] * other.values[j];
                    i += 1;
                    j += 1;
                }
            }
        }
        sum
    }
}

/// The stable dimension of `term`: FNV-1a (32 bits) of its UTF-8 bytes.
pub fn term_id(term: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in term.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The BM25 parameters a collection's sparse vectors were made with: part of its settings, so
/// that every writer makes the same vectors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bm25Params {
    /// Term-frequency saturation.
    pub k1: f32,
    /// Length normalisation.
    pub b: f32,
    /// Average number of terms in a chunk's BM25 text (title included when `title_in_text`).
    pub avg_text_terms: f32,
    /// Average number of terms in a title.
    pub avg_title_terms: f32,
}

impl Bm25Params {
    /// tantivy's `k1` and `b` with average lengths of 1: for encoding queries, whose vectors do
    /// not depend on the averages, before a collection has measured its own.
    pub const UNMEASURED: Self = Self {
        k1: DEFAULT_K1,
        b: DEFAULT_B,
        avg_text_terms: 1.0,
        avg_title_terms: 1.0,
    };

    /// tantivy's `k1` and `b` with the average lengths of `samples` (title, text) as
    /// [`Bm25Encoder`] counts them; `None` when there are none.
    pub fn measured<'a>(
        config: Bm25Config,
        samples: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Self> {
        let encoder = Bm25Encoder::new(config, Self::UNMEASURED);
        let (mut n, mut text, mut title) = (0usize, 0usize, 0usize);
        for (t, body) in samples {
            let (x, y) = encoder.lengths(t, body);
            text += x;
            title += y;
            n += 1;
        }
        (n > 0).then(|| Self {
            k1: DEFAULT_K1,
            b: DEFAULT_B,
            avg_text_terms: (text as f32 / n as f32).max(1.0),
            avg_title_terms: (title as f32 / n as f32).max(1.0),
        })
    }

    /// Rejects parameters BM25 is undefined or degenerate for.
    pub fn validate(&self) -> Result<()> {
        let ok = self.k1.is_finite()
            && self.k1 >= 0.0
            && (0.0..=1.0).contains(&self.b)
            && self.avg_text_terms.is_finite()
            && self.avg_text_terms > 0.0
            && self.avg_title_terms.is_finite()
            && self.avg_title_terms > 0.0;
        if ok {
            Ok(())
        } else {
            Err(IndexError::corrupt(
                "BM25 parameters",
                format!("{self:?}: k1 ≥ 0, 0 ≤ b ≤ 1 and positive average lengths are needed"),
            ))
        }
    }
}

/// Makes BM25 sparse vectors with a collection's analyzer and parameters.
#[derive(Debug, Clone, Copy)]
pub struct Bm25Encoder {
    analyzer: Bm25Analyzer,
    title_in_text: bool,
    params: Bm25Params,
}

impl Bm25Encoder {
    /// An encoder for a collection with BM25 settings `config` and parameters `params`.
    pub fn new(config: Bm25Config, params: Bm25Params) -> Self {
        Self {
            analyzer: config.analyzer,
            title_in_text: config.title_in_text,
            params,
        }
    }

    /// The parameters.
    pub fn params(&self) -> Bm25Params {
        self.params
    }

    /// The chunk's BM25 text as the tantivy field holds it: the title in front when
    /// `title_in_text`.
    fn text_field<'a>(&self, title: &str, text: &'a str) -> std::borrow::Cow<'a, str> {
        if self.title_in_text && !title.is_empty() {
            format!("{title}\n{text}").into()
        } else {
            text.into()
        }
    }

    /// Number of terms in the text field and in the title of a chunk.
    pub fn lengths(&self, title: &str, text: &str) -> (usize, usize) {
        (
            terms(self.analyzer, &self.text_field(title, text)).len(),
            terms(self.analyzer, title).len(),
        )
    }

    /// The document-side vector of a chunk of `text` in a document titled `title`.
    pub fn document(&self, title: &str, text: &str) -> SparseVector {
        let mut weights = BTreeMap::new();
        let text_terms = terms(self.analyzer, &self.text_field(title, text));
        self.add_field(&mut weights, &text_terms, self.params.avg_text_terms, 1.0);
        let title_boost = if self.title_in_text {
            TITLE_BOOST_WITH_TITLE_IN_TEXT
        } else {
            TITLE_BOOST
        };
        let title_terms = terms(self.analyzer, title);
        self.add_field(
            &mut weights,
            &title_terms,
            self.params.avg_title_terms,
            title_boost,
        );
        SparseVector::from_map(weights)
    }

    fn add_field(
        &self,
        weights: &mut BTreeMap<u32, f32>,
        field: &[String],
        avg_len: f32,
        boost: f32,
    ) {
        let mut tf: BTreeMap<&str, f32> = BTreeMap::new();
        for t in field {
            *tf.entry(t.as_str()).or_default() += 1.0;
        }
        let Bm25Params { k1, b, .. } = self.params;
        let norm = k1 * (1.0 - b + b * field.len() as f32 / avg_len);
        for (term, f) in tf {
            *weights.entry(term_id(term)).or_default() += boost * f * (k1 + 1.0) / (f + norm);
        }
    }

    /// The distinct terms of `text`, in order, as the collection's analyzer makes them (what
    /// the embedded index's `Searcher::analyze` returns).
    pub fn analyze(&self, text: &str) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        terms(self.analyzer, text)
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect()
    }

    /// The query-side vector of `query`: weight 1 on each distinct term.
    /// [`IndexError::EmptyQuery`] when analysis leaves no term.
    pub fn query(&self, query: &str) -> Result<SparseVector> {
        let mut weights = BTreeMap::new();
        for t in terms(self.analyzer, query) {
            weights.insert(term_id(&t), 1.0);
        }
        if weights.is_empty() {
            return Err(IndexError::EmptyQuery);
        }
        Ok(SparseVector::from_map(weights))
    }
}
