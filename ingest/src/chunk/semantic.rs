//! [`SemanticChunker`]: cut where the meaning shifts between adjacent sentences.
//!
//! Source: Greg Kamradt, "The 5 Levels of Text Splitting" (level 4, semantic splitting), as
//! implemented by LangChain's `SemanticChunker` (`langchain_experimental.text_splitter`) with
//! `breakpoint_threshold_type = "percentile"` and its default amount of 95.
//!
//! The rule:
//! 1. Split the text into sentences `s_0 … s_{n-1}` (UAX #29 sentence boundaries, which already
//!    break after `。！？` and after every line break, so list items are separate; plus `；`).
//! 2. For each sentence form the group `g_i = s_{i-b} … s_{i+b}` (buffer `b`, default 1,
//!    clipped at the ends) and embed the groups, `batch_size` (default 64) per embedder call.
//! 3. Distances between neighbours: `d_i = 1 - cos(e(g_i), e(g_{i+1}))` for `i < n - 1`.
//! 4. Threshold `t`: by default the 95th percentile of the document's `d_i` (linear
//!    interpolation between order statistics, as `numpy.percentile`); or an absolute distance.
//! 5. Cut after sentence `i` wherever `d_i > t`.
//! 6. Sizes: a segment over `max_size` (or the embedder's token limit) is split at sentence,
//!    then word, then grapheme boundaries and packed greedily; then a segment under `min_size`
//!    is merged with its neighbour when the merge fits.

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::measure::{sentences, Meter, SENTENCE_LEVELS};
use super::{ChunkSpan, Chunker, SizeUnit, TokenBudget};
use crate::embed::Embedder;
use crate::error::ChunkError;

/// Where the semantic chunker cuts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BreakpointThreshold {
    /// Cut where the distance exceeds this percentile (0–100) of the document's distances.
    Percentile(f64),
    /// Cut where the cosine distance (0–2) exceeds this value.
    Absolute(f64),
}

impl Default for BreakpointThreshold {
    fn default() -> Self {
        Self::Percentile(95.0)
    }
}

/// Configuration of [`SemanticChunker`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticConfig {
    /// Breakpoint rule. Default `{"percentile": 95.0}`.
    #[serde(default)]
    pub threshold: BreakpointThreshold,
    /// Segments smaller than this are merged with a neighbour. Default 32.
    #[serde(default = "default_min")]
    pub min_size: usize,
    /// No chunk is larger than this. Default 200.
    #[serde(default = "super::fixed::default_size")]
    pub max_size: usize,
    /// Unit of `min_size` and `max_size`. Default `tokens`.
    #[serde(default)]
    pub unit: SizeUnit,
    /// Sentences on each side embedded with a sentence. Default 1.
    #[serde(default = "default_buffer")]
    pub buffer_size: usize,
    /// Texts per embedder call. Default 64.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

fn default_min() -> usize {
    32
}
fn default_buffer() -> usize {
    1
}
fn default_batch() -> usize {
    64
}

impl Default for SemanticConfig {
    fn default() -> Self {
        Self {
            threshold: BreakpointThreshold::default(),
            min_size: default_min(),
            max_size: super::fixed::default_size(),
            unit: SizeUnit::default(),
            buffer_size: default_buffer(),
            batch_size: default_batch(),
        }
    }
}

/// Embedding-similarity chunking (Greg Kamradt's "5 levels of text splitting", level 4;
/// LangChain `SemanticChunker`, percentile breakpoints): sentences are embedded with `buffer_size`
/// neighbours on each side, in batches of `batch_size`; the text is cut after sentence `i` where
/// `1 - cos(e_i, e_{i+1})` exceeds the threshold (default: the 95th percentile of the document's
/// distances, linearly interpolated); then segments over `max_size` are split at sentence/word
/// boundaries and segments under `min_size` merged with a neighbour when that fits.
#[derive(Clone)]
pub struct SemanticChunker {
    config: SemanticConfig,
    embedder: Arc<dyn Embedder>,
    budget: TokenBudget,
}

impl std::fmt::Debug for SemanticChunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticChunker")
            .field("config", &self.config)
            .field("embedder", &self.embedder.model_id())
            .finish()
    }
}

impl SemanticChunker {
    /// Builds the chunker over `embedder`, whose tokenizer and limit bound the chunk size.
    pub fn new(config: SemanticConfig, embedder: Arc<dyn Embedder>) -> Result<Self, ChunkError> {
        let budget = TokenBudget::from_embedder(embedder.clone());
        budget.check_size(config.max_size, config.unit)?;
        if config.min_size > config.max_size {
            return Err(ChunkError::MinAboveMax {
                min: config.min_size,
                max: config.max_size,
            });
        }
        if config.batch_size == 0 {
            return Err(ChunkError::ZeroSize {
                param: "batch_size",
            });
        }
        let (BreakpointThreshold::Percentile(value) | BreakpointThreshold::Absolute(value)) =
            config.threshold;
        let valid = match config.threshold {
            BreakpointThreshold::Percentile(p) => (0.0..=100.0).contains(&p),
            BreakpointThreshold::Absolute(a) => a.is_finite() && a >= 0.0,
        };
        if !valid {
            return Err(ChunkError::InvalidThreshold { value });
        }
        Ok(Self {
            config,
            embedder,
            budget,
        })
    }

    /// Distances `d_i` between the embeddings of neighbouring sentence groups.
    fn distances(&self, text: &str, sents: &[Range<usize>]) -> Result<Vec<f64>, ChunkError> {
        let n = sents.len();
        if n < 2 {
            return Ok(Vec::new());
        }
        let b = self.config.buffer_size;
        let groups: Vec<&str> = (0..n)
            .map(|i| &text[sents[i.saturating_sub(b)].start..sents[(i + b).min(n - 1)].end])
            .collect();
        let mut vectors = Vec::with_capacity(n);
        for batch in groups.chunks(self.config.batch_size) {
            let got = self.embedder.embed(batch)?;
            if got.len() != batch.len() {
                return Err(ChunkError::EmbeddingCount {
                    expected: batch.len(),
                    got: got.len(),
                });
            }
            vectors.extend(got.into_iter().map(|e| e.vector));
        }
        Ok(vectors
            .windows(2)
            .map(|w| 1.0 - cosine(&w[0], &w[1]))
            .collect())
    }

    /// Segments (sentence runs) after cutting where the distance exceeds the threshold.
    fn segments(&self, sents: &[Range<usize>], distances: &[f64]) -> Vec<Range<usize>> {
        let threshold = match self.config.threshold {
            BreakpointThreshold::Percentile(p) => percentile(distances, p),
            BreakpointThreshold::Absolute(a) => Some(a),
        };
        let mut out = Vec::new();
        let mut start = 0;
        for (i, &d) in distances.iter().enumerate() {
            if threshold.is_some_and(|t| d > t) {
                out.push(sents[start].start..sents[i].end);
                start = i + 1;
            }
        }
        if let Some(last) = sents.last() {
            out.push(sents[start].start..last.end);
        }
        out
    }

    /// Splits segments over the maximum, then merges segments under the minimum.
    fn enforce_sizes(&self, meter: &Meter<'_>, segments: Vec<Range<usize>>) -> Vec<Range<usize>> {
        let mut split = Vec::with_capacity(segments.len());
        for seg in segments {
            meter.split_to_fit(seg, SENTENCE_LEVELS, &mut split);
        }
        let min = self.config.min_size;
        let mut out: Vec<Range<usize>> = Vec::with_capacity(split.len());
        for seg in split {
            if let Some(last) = out.last_mut() {
                let small = meter.units(last) < min || meter.units(&seg) < min;
                if small && meter.fits(&(last.start..seg.end)) {
                    last.end = seg.end;
                    continue;
                }
            }
            out.push(seg);
        }
        out
    }
}

impl Chunker for SemanticChunker {
    fn name(&self) -> &'static str {
        "semantic"
    }

    fn split(&self, text: &str) -> Result<Vec<ChunkSpan>, ChunkError> {
        let sents = sentences(text, 0..text.len());
        if sents.is_empty() {
            return Ok(Vec::new());
        }
        let distances = self.distances(text, &sents)?;
        let segments = self.segments(&sents, &distances);
        let meter = Meter::new(text, self.config.unit, self.config.max_size, &self.budget);
        let sized = self.enforce_sizes(&meter, segments);
        Ok(meter
            .finalize(sized)
            .into_iter()
            .map(|(byte_span, token_count)| ChunkSpan::flat(byte_span, token_count))
            .collect())
    }
}

/// Cosine similarity; 0 when either vector is zero.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// The `p`-th percentile (0–100) with linear interpolation, as `numpy.percentile`; `None` for
/// no values.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    let rank = p / 100.0 * last as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi.min(last)] - sorted[lo]) * frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::HashEmbedder;

    fn chunker(config: SemanticConfig) -> SemanticChunker {
        SemanticChunker::new(config, Arc::new(HashEmbedder::new())).unwrap()
    }

    #[test]
    fn percentile_matches_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), Some(2.5));
        assert_eq!(percentile(&v, 100.0), Some(4.0));
        assert!((percentile(&v, 95.0).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(percentile(&[], 95.0), None);
    }

    #[test]
    fn cuts_at_topic_shift() {
        let text = "Cats purr. Cats nap. Cats purr and nap. Rust compiles. Rust borrows. Rust compiles code.";
        let cfg = SemanticConfig {
            threshold: BreakpointThreshold::Absolute(0.9),
            min_size: 1,
            buffer_size: 0,
            unit: SizeUnit::Words,
            ..SemanticConfig::default()
        };
        let spans = chunker(cfg).split(text).unwrap();
        let got: Vec<&str> = spans.iter().map(|s| &text[s.byte_span.clone()]).collect();
        assert_eq!(
            got,
            [
                "Cats purr. Cats nap. Cats purr and nap.",
                "Rust compiles. Rust borrows. Rust compiles code."
            ]
        );
    }

    #[test]
    fn batches_embedding_calls() {
        let embedder = Arc::new(HashEmbedder::new());
        let cfg = SemanticConfig {
            batch_size: 4,
            ..SemanticConfig::default()
        };
        let c = SemanticChunker::new(cfg, embedder.clone()).unwrap();
        let text = "One. Two. Three. Four. Five. Six. Seven. Eight. Nine. Ten.";
        c.split(text).unwrap();
        assert_eq!(embedder.calls(), 3);
        assert_eq!(embedder.max_batch(), 4);
    }

    #[test]
    fn rejects_bad_config() {
        let bad = [
            SemanticConfig {
                min_size: 300,
                max_size: 200,
                ..SemanticConfig::default()
            },
            SemanticConfig {
                threshold: BreakpointThreshold::Percentile(101.0),
                ..SemanticConfig::default()
            },
            SemanticConfig {
                batch_size: 0,
                ..SemanticConfig::default()
            },
            SemanticConfig {
                max_size: 255,
                ..SemanticConfig::default()
            },
        ];
        for cfg in bad {
            assert!(SemanticChunker::new(cfg, Arc::new(HashEmbedder::new())).is_err());
        }
    }
}
