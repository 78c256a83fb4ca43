//! [`FixedChunker`]: consecutive chunks of at most N units, cut at word boundaries.
//!
//! The text is split at UAX #29 word boundaries (never inside a grapheme cluster) and the words
//! are packed greedily: a chunk grows word by word until the next word would take it over the
//! size or the embedder's token limit. A single word longer than the limit is split at grapheme
//! boundaries. Chunks do not overlap and, trimmed of surrounding whitespace, cover the text.

use serde::{Deserialize, Serialize};

use super::measure::{Meter, WORD_LEVELS};
use super::{ChunkSpan, Chunker, SizeUnit, TokenBudget};
use crate::error::ChunkError;

/// Configuration of [`FixedChunker`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedConfig {
    /// Most units per chunk. Default 200.
    #[serde(default = "default_size")]
    pub size: usize,
    /// Unit of `size`. Default `tokens`.
    #[serde(default)]
    pub unit: SizeUnit,
}

pub(crate) fn default_size() -> usize {
    200
}

impl Default for FixedConfig {
    fn default() -> Self {
        Self {
            size: default_size(),
            unit: SizeUnit::default(),
        }
    }
}

/// Fixed-size chunking: words (UAX #29) packed greedily into chunks of at most `size` units
/// and at most the embedder's token limit; a word too long alone is split at grapheme
/// boundaries. Chunks are disjoint and cover the text.
#[derive(Debug, Clone)]
pub struct FixedChunker {
    config: FixedConfig,
    budget: TokenBudget,
}

impl FixedChunker {
    /// Builds the chunker; fails if the size is zero or, in tokens, above the budget.
    pub fn new(config: FixedConfig, budget: TokenBudget) -> Result<Self, ChunkError> {
        budget.check_size(config.size, config.unit)?;
        Ok(Self { config, budget })
    }
}

impl Chunker for FixedChunker {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn split(&self, text: &str) -> Result<Vec<ChunkSpan>, ChunkError> {
        let meter = Meter::new(text, self.config.unit, self.config.size, &self.budget);
        let mut spans = Vec::new();
        meter.split_to_fit(0..text.len(), WORD_LEVELS, &mut spans);
        Ok(meter
            .finalize(spans)
            .into_iter()
            .map(|(byte_span, token_count)| ChunkSpan::flat(byte_span, token_count))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::WhitespaceTokenCounter;

    fn chunker(size: usize, unit: SizeUnit) -> FixedChunker {
        let budget = TokenBudget::new(Arc::new(WhitespaceTokenCounter), 100);
        FixedChunker::new(FixedConfig { size, unit }, budget).unwrap()
    }

    fn texts(c: &FixedChunker, text: &str) -> Vec<String> {
        crate::chunk::split_texts(c, text)
    }

    #[test]
    fn packs_words() {
        let c = chunker(3, SizeUnit::Tokens);
        assert_eq!(texts(&c, "a b c d e f g"), ["a b c", "d e f", "g"]);
    }

    #[test]
    fn chars_unit_splits_cjk_sensibly() {
        let c = chunker(4, SizeUnit::Chars);
        assert_eq!(
            texts(&c, "我们今天去公园散步"),
            ["我们今天", "去公园散", "步"]
        );
    }

    #[test]
    fn rejects_bad_sizes() {
        let budget = TokenBudget::new(Arc::new(WhitespaceTokenCounter), 10);
        let cfg = FixedConfig {
            size: 11,
            unit: SizeUnit::Tokens,
        };
        assert!(matches!(
            FixedChunker::new(cfg, budget.clone()),
            Err(ChunkError::OverModelLimit {
                size: 11,
                limit: 10
            })
        ));
        let cfg = FixedConfig {
            size: 0,
            unit: SizeUnit::Words,
        };
        assert!(FixedChunker::new(cfg, budget).is_err());
    }
}
