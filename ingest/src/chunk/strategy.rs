//! [`ChunkingStrategy`]: the config-facing choice of chunker, and its `build`.
//!
//! Serialised with an internal `kind` tag; every parameter has a default, so `{"kind":
//! "recursive"}` is a complete configuration:
//!
//! ```
//! use ragd_ingest::chunk::{ChunkingStrategy, SizeUnit};
//!
//! let s: ChunkingStrategy =
//!     serde_json::from_str(r#"{"kind":"sliding","size":128,"overlap":32,"unit":"tokens"}"#)
//!         .unwrap();
//! assert!(matches!(s, ChunkingStrategy::Sliding(c) if c.overlap == 32 && c.unit == SizeUnit::Tokens));
//! let s: ChunkingStrategy =
//!     serde_json::from_str(r#"{"kind":"semantic","threshold":{"percentile":90.0}}"#).unwrap();
//! assert!(matches!(s, ChunkingStrategy::Semantic(_)));
//! ```
//!
//! Defaults: `fixed` size 200; `sliding` size 200, overlap 50; `semantic` percentile 95,
//! min 32, max 200, buffer 1, batch 64; `recursive` size 200, overlap 0; unit `tokens`
//! everywhere. The default strategy is `recursive`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    Chunker, FixedChunker, FixedConfig, RecursiveChunker, RecursiveConfig, SemanticChunker,
    SemanticConfig, SlidingChunker, SlidingConfig, TokenBudget,
};
use crate::embed::Embedder;
use crate::error::ChunkError;

/// Which chunker to use, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChunkingStrategy {
    /// [`FixedChunker`].
    Fixed(FixedConfig),
    /// [`SlidingChunker`].
    Sliding(SlidingConfig),
    /// [`SemanticChunker`].
    Semantic(SemanticConfig),
    /// [`RecursiveChunker`].
    Recursive(RecursiveConfig),
}

impl Default for ChunkingStrategy {
    fn default() -> Self {
        Self::Recursive(RecursiveConfig::default())
    }
}

impl ChunkingStrategy {
    /// Builds the chunker for `embedder` (its tokenizer and limit bound every chunk; the
    /// semantic chunker also embeds with it). Fails on invalid parameters.
    pub fn build(&self, embedder: Arc<dyn Embedder>) -> Result<Box<dyn Chunker>, ChunkError> {
        let budget = TokenBudget::from_embedder(embedder.clone());
        Ok(match self {
            Self::Fixed(c) => Box::new(FixedChunker::new(c.clone(), budget)?),
            Self::Sliding(c) => Box::new(SlidingChunker::new(c.clone(), budget)?),
            Self::Semantic(c) => Box::new(SemanticChunker::new(c.clone(), embedder)?),
            Self::Recursive(c) => Box::new(RecursiveChunker::new(c.clone(), budget)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::HashEmbedder;

    #[test]
    fn serde_shape_and_defaults() {
        let s: ChunkingStrategy = serde_json::from_str(r#"{"kind":"recursive"}"#).unwrap();
        assert_eq!(s, ChunkingStrategy::default());
        let json = serde_json::to_value(ChunkingStrategy::Fixed(FixedConfig::default())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "fixed", "size": 200, "unit": "tokens"})
        );
        let s: ChunkingStrategy = serde_json::from_str(
            r#"{"kind":"semantic","threshold":{"absolute":0.3},"unit":"words"}"#,
        )
        .unwrap();
        let ChunkingStrategy::Semantic(c) = s else {
            panic!("not semantic")
        };
        assert_eq!(
            c.threshold,
            super::super::BreakpointThreshold::Absolute(0.3)
        );
        assert!(serde_json::from_str::<ChunkingStrategy>(r#"{"kind":"magic"}"#).is_err());
    }

    #[test]
    fn builds_every_kind() {
        let embedder: Arc<dyn Embedder> = Arc::new(HashEmbedder::new());
        for s in [
            ChunkingStrategy::Fixed(FixedConfig::default()),
            ChunkingStrategy::Sliding(SlidingConfig::default()),
            ChunkingStrategy::Semantic(SemanticConfig::default()),
            ChunkingStrategy::Recursive(RecursiveConfig::default()),
        ] {
            let c = s.build(embedder.clone()).unwrap();
            assert!(!c.split("Hello world.").unwrap().is_empty());
        }
        let bad = ChunkingStrategy::Sliding(SlidingConfig {
            overlap: 200,
            ..SlidingConfig::default()
        });
        assert!(bad.build(embedder).is_err());
    }
}
