//! [`SlidingChunker`]: windows of N units where consecutive windows share exactly O units.
//!
//! The text is viewed as a sequence of units ([`SizeUnit`]): tokens of one whole-text
//! tokenisation (tokens sharing a grapheme cluster count as one unit, so no window cuts a
//! cluster), non-whitespace grapheme clusters, or UAX #29 words. Unit *i* spans from its start
//! to the start of unit *i + 1*, so punctuation between words belongs to the word before it and
//! nothing is lost. Window *k + 1* starts O units before window *k* ends; the last window may be
//! shorter.
//!
//! With [`SizeUnit::Tokens`], windows start and end at token boundaries, which for a WordPiece
//! tokenizer may be inside a word (`Homebre|w`), as in other token-window splitters; use
//! [`SizeUnit::Words`] for word-aligned windows.
//!
//! Each window is also kept within the embedder's token limit: a window that would exceed it is
//! shortened (its successor still starts O units before its end, so the overlap stays exact).
//! Only when a single unit exceeds the limit alone, or the limit leaves room for no more than O
//! units, does a window give up exactness (split, or advance by one unit).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::fixed::default_size;
use super::measure::{trim, Meter};
use super::{check_overlap, ChunkSpan, Chunker, SizeUnit, TokenBudget};
use crate::error::ChunkError;

/// Configuration of [`SlidingChunker`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlidingConfig {
    /// Window length in units. Default 200.
    #[serde(default = "default_size")]
    pub size: usize,
    /// Units shared by consecutive windows; `0 <= overlap < size`. Default 50.
    #[serde(default = "default_overlap")]
    pub overlap: usize,
    /// Unit of `size` and `overlap`. Default `tokens`.
    #[serde(default)]
    pub unit: SizeUnit,
}

fn default_overlap() -> usize {
    50
}

impl Default for SlidingConfig {
    fn default() -> Self {
        Self {
            size: default_size(),
            overlap: default_overlap(),
            unit: SizeUnit::default(),
        }
    }
}

/// Sliding-window chunking: windows of `size` units, each starting `overlap` units before the
/// previous one ends (exactly, unless the token limit leaves a window no more than `overlap`
/// units); the last window may be shorter. Windows stay within the embedder's token limit.
/// Token windows may cut inside a word (at a word piece); word windows never do.
#[derive(Debug, Clone)]
pub struct SlidingChunker {
    config: SlidingConfig,
    budget: TokenBudget,
}

impl SlidingChunker {
    /// Builds the chunker; fails unless `0 <= overlap < size` and the size is valid.
    pub fn new(config: SlidingConfig, budget: TokenBudget) -> Result<Self, ChunkError> {
        budget.check_size(config.size, config.unit)?;
        check_overlap(config.overlap, config.size)?;
        Ok(Self { config, budget })
    }

    /// The largest window end `b` in `(a, a + size]` whose span fits, by in-context counts
    /// (binary search: counts grow with `b`), then by standalone re-tokenisation.
    fn window_end(&self, meter: &Meter<'_>, units: &[Range<usize>], a: usize) -> usize {
        let span = |b: usize| units[a].start..units[b - 1].end;
        let hi = (a + self.config.size).min(units.len());
        // The one-unit window is always taken (`finalize` splits it if it is too large alone);
        // candidate ends `a + 2 ..= hi` are searched.
        let mut b = a + 1 + largest_true(hi - a - 1, |k| meter.fits(&span(a + 2 + k)));
        let text = meter.text();
        if meter.exact_fit(&trim(text, span(b))).is_none() {
            b = a
                + 1
                + largest_true(b - a - 1, |k| {
                    meter.exact_fit(&trim(text, span(a + 2 + k))).is_some()
                });
        }
        b
    }
}

/// Number of leading `true`s of a monotone predicate over `0..n` (binary search).
fn largest_true(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Unit spans: each unit runs from its start to the next unit's start; the first one from 0.
fn unit_spans(starts: &[usize], len: usize) -> Vec<Range<usize>> {
    let mut out = Vec::with_capacity(starts.len());
    for (i, &s) in starts.iter().enumerate() {
        let start = if i == 0 { 0 } else { s };
        let end = starts.get(i + 1).copied().unwrap_or(len);
        out.push(start..end);
    }
    out
}

impl Chunker for SlidingChunker {
    fn name(&self) -> &'static str {
        "sliding"
    }

    fn split(&self, text: &str) -> Result<Vec<ChunkSpan>, ChunkError> {
        let meter = Meter::new(text, self.config.unit, self.config.size, &self.budget);
        let units = unit_spans(meter.unit_starts(), text.len());
        let mut windows = Vec::new();
        if units.is_empty() {
            windows.push(0..text.len());
        }
        let (mut a, mut last_end) = (0, 0);
        while a < units.len() {
            let b = self.window_end(&meter, &units, a);
            // A later start may tokenise into more tokens (a word cut at its start: `l.aret` is
            // one word, `.aret` two), so the token limit can end this window before the previous
            // one. It then lies inside the previous window and adds nothing: skipping it keeps
            // the windows in document order.
            if b >= last_end {
                windows.push(units[a].start..units[b - 1].end);
                last_end = b;
            }
            if b == units.len() {
                break;
            }
            a = (b.saturating_sub(self.config.overlap)).max(a + 1);
        }
        Ok(meter
            .finalize(windows)
            .into_iter()
            .map(|(byte_span, token_count)| ChunkSpan::flat(byte_span, token_count))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::{WhitespaceTokenCounter, WordTokenCounter};

    fn chunker(size: usize, overlap: usize, max_tokens: usize) -> SlidingChunker {
        let budget = TokenBudget::new(Arc::new(WhitespaceTokenCounter), max_tokens);
        let unit = SizeUnit::Words;
        SlidingChunker::new(
            SlidingConfig {
                size,
                overlap,
                unit,
            },
            budget,
        )
        .unwrap()
    }

    fn texts(c: &SlidingChunker, text: &str) -> Vec<String> {
        crate::chunk::split_texts(c, text)
    }

    #[test]
    fn windows_share_overlap() {
        let c = chunker(4, 2, 100);
        assert_eq!(texts(&c, "a b c d e f g"), ["a b c d", "c d e f", "e f g"]);
    }

    #[test]
    fn punctuation_stays_with_previous_word() {
        let c = chunker(2, 0, 100);
        assert_eq!(texts(&c, "«a», b. c!"), ["«a», b.", "c!"]);
    }

    #[test]
    fn token_limit_shortens_windows_but_keeps_overlap() {
        let c = chunker(4, 1, 3);
        assert_eq!(texts(&c, "a b c d e"), ["a b c", "c d e"]);
    }

    #[test]
    fn rejects_overlap_not_below_size() {
        let budget = TokenBudget::new(Arc::new(WhitespaceTokenCounter), 100);
        let cfg = SlidingConfig {
            size: 3,
            overlap: 3,
            unit: SizeUnit::Words,
        };
        assert!(matches!(
            SlidingChunker::new(cfg, budget),
            Err(ChunkError::OverlapTooLarge {
                overlap: 3,
                size: 3
            })
        ));
    }

    /// Found by the `chunkers` fuzz target: `.aret` is two words where `l.aret` was one, so the
    /// window starting one unit later reached its token limit earlier and ended before the
    /// previous window: spans out of document order.
    #[test]
    fn windows_stay_in_order_when_a_later_start_tokenises_longer() {
        let text = "l- step one\n-# :moT a heading\n``ve, unpack it and run the insl.aret\nl- step one\n-# :uoT a heading\n```";
        let budget = TokenBudget::new(Arc::new(WordTokenCounter), 9);
        let cfg = SlidingConfig {
            size: 186,
            overlap: 116,
            unit: SizeUnit::Chars,
        };
        let spans = SlidingChunker::new(cfg, budget)
            .unwrap()
            .split(text)
            .unwrap();
        for w in spans.windows(2) {
            let (p, n) = (&w[0].byte_span, &w[1].byte_span);
            assert!(p.start < n.start && p.end <= n.end, "{p:?} then {n:?}");
        }
        assert_eq!(spans.last().unwrap().byte_span.end, text.len());
    }

    #[test]
    fn largest_true_counts_prefix() {
        assert_eq!(largest_true(5, |k| k < 3), 3);
        assert_eq!(largest_true(0, |_| true), 0);
    }
}
