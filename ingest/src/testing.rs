//! Test doubles, so that this crate's tests and other crates' tests run without model weights.
//!
//! - [`HashEmbedder`]: a deterministic [`Embedder`]: hashed bag of lower-cased UAX #29 words
//!   into 384 dimensions, L2-normalised. Texts sharing words are similar; others are not.
//! - [`WhitespaceTokenCounter`], [`CharTokenCounter`], [`WordTokenCounter`]: simple
//!   [`TokenCounter`]s.
//! - [`models_dir`], [`minilm_tokenizer_path`], [`minilm_token_counter`]: the real MiniLM
//!   tokenizer when it is on disk (CI fetches it), for tests that want exact BERT token counts.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use unicode_segmentation::UnicodeSegmentation;

use crate::embed::{EmbedError, Embedder, Embedding, HfTokenCounter, TokenCounter};

/// One token per run of non-whitespace characters.
#[derive(Debug, Clone, Copy, Default)]
pub struct WhitespaceTokenCounter;

impl TokenCounter for WhitespaceTokenCounter {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            match (c.is_whitespace(), start) {
                (true, Some(s)) => {
                    out.push(s..i);
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        out.extend(start.map(|s| s..text.len()));
        out
    }
}

/// One token per non-whitespace char (Unicode scalar value), combining marks included.
#[derive(Debug, Clone, Copy, Default)]
pub struct CharTokenCounter;

impl TokenCounter for CharTokenCounter {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        text.char_indices()
            .filter(|(_, c)| !c.is_whitespace())
            .map(|(i, c)| i..i + c.len_utf8())
            .collect()
    }
}

/// One token per non-whitespace UAX #29 word-boundary segment: words, each punctuation mark,
/// each CJK ideograph. Close to a BERT tokenizer's pre-tokenisation.
#[derive(Debug, Clone, Copy, Default)]
pub struct WordTokenCounter;

impl TokenCounter for WordTokenCounter {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        text.split_word_bound_indices()
            .filter(|(_, w)| !w.chars().all(char::is_whitespace))
            .map(|(i, w)| i..i + w.len())
            .collect()
    }
}

/// A deterministic embedder for tests: a hashed bag of lower-cased words, L2-normalised.
pub struct HashEmbedder {
    dimension: usize,
    max_tokens: usize,
    counter: Arc<dyn TokenCounter>,
    calls: AtomicUsize,
    max_batch: AtomicUsize,
}

impl std::fmt::Debug for HashEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashEmbedder")
            .field("dimension", &self.dimension)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

impl Default for HashEmbedder {
    fn default() -> Self {
        Self::new()
    }
}

impl HashEmbedder {
    /// 384 dimensions and a limit of 254 content tokens, like all-MiniLM-L6-v2.
    pub fn new() -> Self {
        Self::with_limits(384, 254)
    }

    /// A custom dimension and content-token limit.
    pub fn with_limits(dimension: usize, max_tokens: usize) -> Self {
        Self {
            dimension,
            max_tokens,
            counter: Arc::new(WordTokenCounter),
            calls: AtomicUsize::new(0),
            max_batch: AtomicUsize::new(0),
        }
    }

    /// Uses `counter` as its tokenizer (e.g. the real MiniLM one) instead of
    /// [`WordTokenCounter`].
    pub fn with_counter(mut self, counter: Arc<dyn TokenCounter>) -> Self {
        self.counter = counter;
        self
    }

    /// Number of [`Embedder::embed`] calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Largest batch seen so far.
    pub fn max_batch(&self) -> usize {
        self.max_batch.load(Ordering::Relaxed)
    }

    fn embed_one(&self, text: &str) -> Embedding {
        let mut vector = vec![0f32; self.dimension];
        for word in text.unicode_words() {
            let h = fnv1a(word.to_lowercase().as_bytes());
            let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
            let idx = usize::try_from(h % self.dimension as u64).unwrap_or(0);
            vector[idx] += sign;
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|x| *x /= norm);
        }
        let content = self.counter.count(text);
        Embedding {
            vector,
            tokens: content.min(self.max_tokens) + 2,
            truncated: content > self.max_tokens,
        }
    }
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Embedder for HashEmbedder {
    fn model_id(&self) -> &str {
        "hash-embedder"
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn max_content_tokens(&self) -> usize {
        self.max_tokens
    }

    fn token_counter(&self) -> &dyn TokenCounter {
        self.counter.as_ref()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>, EmbedError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.max_batch.fetch_max(texts.len(), Ordering::Relaxed);
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

/// The models directory: `$RAGD_MODELS_DIR` if set, else `$HOME/.cache/ragd/models`.
pub fn models_dir() -> Option<PathBuf> {
    match std::env::var_os("RAGD_MODELS_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache/ragd/models")),
    }
}

/// The all-MiniLM-L6-v2 `tokenizer.json` under [`models_dir`], if it exists.
pub fn minilm_tokenizer_path() -> Option<PathBuf> {
    let path = models_dir()?
        .join("all-MiniLM-L6-v2")
        .join("tokenizer.json");
    path.is_file().then_some(path)
}

/// The real MiniLM tokenizer if [`minilm_tokenizer_path`] finds it, else `None`.
pub fn minilm_token_counter() -> Option<HfTokenCounter> {
    HfTokenCounter::from_file(&minilm_tokenizer_path()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_split_as_documented() {
        assert_eq!(WhitespaceTokenCounter.token_spans(" ab  c "), [1..3, 5..6]);
        assert_eq!(CharTokenCounter.count("a b\u{301}"), 3);
        assert_eq!(WordTokenCounter.count("Hi, 你好 world!"), 6);
    }

    #[test]
    fn hash_embedder_is_deterministic_and_normalised() {
        let e = HashEmbedder::new();
        let a = e
            .embed(&["the cat sat", "The cat sat", "rust borrow checker"])
            .unwrap();
        assert_eq!(a[0].vector, a[1].vector);
        let norm: f32 = a[0].vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        let dot: f32 = a[0]
            .vector
            .iter()
            .zip(&a[2].vector)
            .map(|(x, y)| x * y)
            .sum();
        assert!(dot.abs() < 0.9);
        assert_eq!(e.calls(), 1);
    }
}
