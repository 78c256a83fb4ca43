//! Shared machinery of the chunkers: measuring spans, splitting at boundaries, packing pieces.
//!
//! A [`Meter`] is made once per text. It tokenises the whole text once and records where each
//! token and each size unit starts; the size of any span is then two binary searches. Chunkers
//! build candidate spans with [`Meter::fits`] (in-context counts) and pass them through
//! [`Meter::finalize`], which trims them at grapheme boundaries and re-tokenises each one on its
//! own, bisecting the rare span whose standalone count is over the limit.
//!
//! Boundaries come from [`Level`]s, strongest first: paragraphs (`\n\n`), lines, sentences
//! (UAX #29 plus `；`; UAX #29 already breaks after `。！？` and after every line break),
//! words (UAX #29 word boundaries), grapheme clusters, and chars (only for a single grapheme
//! cluster that alone exceeds the token limit, or a size counted in tokens: a chunk of one token
//! cannot hold `e\u{301}` if the tokenizer gives it two).

use std::ops::Range;

use unicode_segmentation::{GraphemeCursor, UnicodeSegmentation};

use super::{SizeUnit, TokenBudget};

/// Where a text may be cut, strongest boundary first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// After a blank line.
    Paragraph,
    /// After a line break.
    Line,
    /// After a sentence (UAX #29 sentence boundaries plus `；`).
    Sentence,
    /// At a UAX #29 word boundary.
    Word,
    /// At an extended grapheme cluster boundary.
    Grapheme,
    /// At a char boundary (last resort, see module docs).
    Char,
}

/// Levels below sentences, for chunkers that cut at word boundaries.
pub(crate) const WORD_LEVELS: &[Level] = &[Level::Word, Level::Grapheme, Level::Char];
/// Levels from sentences down.
pub(crate) const SENTENCE_LEVELS: &[Level] =
    &[Level::Sentence, Level::Word, Level::Grapheme, Level::Char];
/// Levels from paragraphs down.
pub(crate) const PARAGRAPH_LEVELS: &[Level] = &[
    Level::Paragraph,
    Level::Line,
    Level::Sentence,
    Level::Word,
    Level::Grapheme,
    Level::Char,
];

/// Measures spans of one text in a size unit and in the embedder's tokens.
pub(crate) struct Meter<'t> {
    text: &'t str,
    unit: SizeUnit,
    max_units: usize,
    budget: &'t TokenBudget,
    token_starts: Vec<usize>,
    unit_starts: Vec<usize>,
}

impl<'t> Meter<'t> {
    /// Tokenises `text` once and indexes its unit starts.
    pub(crate) fn new(
        text: &'t str,
        unit: SizeUnit,
        max_units: usize,
        budget: &'t TokenBudget,
    ) -> Self {
        let token_spans = budget.counter().token_spans(text);
        let token_starts: Vec<usize> = token_spans.iter().map(|r| r.start).collect();
        let unit_starts = match unit {
            SizeUnit::Tokens => unit_starts_of(text, token_spans),
            SizeUnit::Chars => text
                .grapheme_indices(true)
                .filter(|(_, g)| !is_blank(g))
                .map(|(i, _)| i)
                .collect(),
            SizeUnit::Words => word_starts(text),
        };
        Self {
            text,
            unit,
            max_units,
            budget,
            token_starts,
            unit_starts,
        }
    }

    /// The measured text.
    pub(crate) fn text(&self) -> &'t str {
        self.text
    }

    /// Byte offsets where units start, sorted. Tokens or words that share a grapheme cluster
    /// form one unit, so unit starts are always grapheme boundaries.
    pub(crate) fn unit_starts(&self) -> &[usize] {
        &self.unit_starts
    }

    /// Size of `r` in the unit: tokens starting inside it (every token, even where several
    /// share a grapheme cluster), or chars/words starting inside it.
    pub(crate) fn units(&self, r: &Range<usize>) -> usize {
        match self.unit {
            SizeUnit::Tokens => self.tokens(r),
            SizeUnit::Chars | SizeUnit::Words => count_in(&self.unit_starts, r),
        }
    }

    /// Tokens (of the whole-text tokenisation) starting inside `r`.
    pub(crate) fn tokens(&self, r: &Range<usize>) -> usize {
        count_in(&self.token_starts, r)
    }

    /// Whether `r` is within both limits by in-context counts.
    pub(crate) fn fits(&self, r: &Range<usize>) -> bool {
        self.units(r) <= self.max_units && self.tokens(r) <= self.budget.max_tokens()
    }

    /// Re-measures `r` on its own; returns its token count if it is within both limits.
    pub(crate) fn exact_fit(&self, r: &Range<usize>) -> Option<usize> {
        let s = &self.text[r.clone()];
        let tokens = self.budget.counter().count(s);
        let units = match self.unit {
            SizeUnit::Tokens => tokens,
            SizeUnit::Chars => s.graphemes(true).filter(|g| !is_blank(g)).count(),
            SizeUnit::Words => word_starts(s).len(),
        };
        (units <= self.max_units && tokens <= self.budget.max_tokens()).then_some(tokens)
    }

    /// Splits `r` at the strongest level of `levels` that has a boundary inside it, packs the
    /// pieces greedily into spans that fit, and recurses into pieces too large alone.
    pub(crate) fn split_to_fit(
        &self,
        r: Range<usize>,
        levels: &[Level],
        out: &mut Vec<Range<usize>>,
    ) {
        if self.fits(&r) {
            out.push(r);
            return;
        }
        let Some((&level, rest)) = levels.split_first() else {
            out.push(r);
            return;
        };
        let pieces = pieces(self.text, r.clone(), level);
        if pieces.len() <= 1 {
            self.split_to_fit(r, rest, out);
            return;
        }
        self.pack(&pieces, rest, out);
    }

    /// Greedily merges consecutive `pieces` while the merged span fits; a piece that does not
    /// fit alone is split with [`split_to_fit`](Self::split_to_fit) at `finer` levels.
    pub(crate) fn pack(
        &self,
        pieces: &[Range<usize>],
        finer: &[Level],
        out: &mut Vec<Range<usize>>,
    ) {
        let mut group: Option<Range<usize>> = None;
        for p in pieces {
            if is_blank(&self.text[p.clone()]) {
                continue;
            }
            if let Some(g) = group.take() {
                if self.fits(&(g.start..p.end)) {
                    group = Some(g.start..p.end);
                    continue;
                }
                out.push(g);
            }
            if self.fits(p) {
                group = Some(p.clone());
            } else {
                self.split_to_fit(p.clone(), finer, out);
            }
        }
        out.extend(group);
    }

    /// Trims each span, drops empty ones, and verifies each by re-tokenising it alone; a span
    /// over a limit is bisected at the word (else grapheme, else char) boundary nearest its
    /// middle until its halves fit. Returns `(span, token_count)` pairs in order.
    pub(crate) fn finalize(&self, spans: Vec<Range<usize>>) -> Vec<(Range<usize>, usize)> {
        let mut out = Vec::with_capacity(spans.len());
        for r in spans {
            self.finalize_one(r, &mut out);
        }
        out
    }

    fn finalize_one(&self, r: Range<usize>, out: &mut Vec<(Range<usize>, usize)>) {
        let r = trim(self.text, r);
        if r.is_empty() {
            return;
        }
        if let Some(tokens) = self.exact_fit(&r) {
            out.push((r, tokens));
            return;
        }
        match bisect(self.text, &r) {
            Some(mid) => {
                self.finalize_one(r.start..mid, out);
                self.finalize_one(mid..r.end, out);
            }
            // A single char: nothing smaller exists. Unreachable with real tokenizers.
            None => {
                let tokens = self.budget.counter().count(&self.text[r.clone()]);
                out.push((r, tokens));
            }
        }
    }
}

/// Number of sorted `starts` inside `r`.
fn count_in(starts: &[usize], r: &Range<usize>) -> usize {
    let lo = starts.partition_point(|&s| s < r.start);
    let hi = starts.partition_point(|&s| s < r.end);
    hi.saturating_sub(lo)
}

/// Starts of UAX #29 words as units (see [`unit_starts_of`]).
fn word_starts(text: &str) -> Vec<usize> {
    unit_starts_of(
        text,
        text.unicode_word_indices().map(|(i, w)| i..i + w.len()),
    )
}

/// Unit starts from spans (tokens or words): each start moved down to a grapheme boundary and
/// then past leading whitespace clusters (UAX #29 may glue a combining mark to a preceding
/// space), so that every unit start is where a trimmed chunk can begin. Spans that share a
/// cluster become one unit; all-whitespace spans are not units.
fn unit_starts_of(text: &str, spans: impl IntoIterator<Item = Range<usize>>) -> Vec<usize> {
    let bounds: Vec<usize> = text.grapheme_indices(true).map(|(i, _)| i).collect();
    let mut out: Vec<usize> = Vec::new();
    for r in spans {
        let idx = bounds.partition_point(|&b| b <= r.start);
        let snapped = if idx == 0 { 0 } else { bounds[idx - 1] };
        let t = trim(text, snapped..r.end.max(snapped));
        if !t.is_empty() && out.last().is_none_or(|&l| t.start > l) {
            out.push(t.start);
        }
    }
    out
}

/// Whether `s` is empty or all whitespace.
pub(crate) fn is_blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// `r` without leading and trailing all-whitespace grapheme clusters. Trimming by clusters,
/// not chars, keeps a combining mark that follows a space together with it.
pub(crate) fn trim(text: &str, r: Range<usize>) -> Range<usize> {
    let s = &text[r.clone()];
    let starts_blank = s.chars().next().is_some_and(char::is_whitespace);
    let ends_blank = s.chars().next_back().is_some_and(char::is_whitespace);
    if !starts_blank && !ends_blank {
        return r;
    }
    let Some((first, _)) = s.grapheme_indices(true).find(|(_, g)| !is_blank(g)) else {
        return r.end..r.end;
    };
    let last_end = s
        .grapheme_indices(true)
        .rev()
        .find(|(_, g)| !is_blank(g))
        .map_or(s.len(), |(i, g)| i + g.len());
    r.start + first..r.start + last_end
}

/// Splits `r` into consecutive pieces at `level` boundaries; the pieces cover `r` exactly.
pub(crate) fn pieces(text: &str, r: Range<usize>, level: Level) -> Vec<Range<usize>> {
    let s = &text[r.clone()];
    let cuts: Vec<usize> = match level {
        Level::Paragraph => s.match_indices("\n\n").map(|(i, m)| i + m.len()).collect(),
        Level::Line => s.match_indices('\n').map(|(i, _)| i + 1).collect(),
        // UAX #29 word and sentence rules attach format characters (e.g. U+0600, a grapheme
        // Prepend) to the preceding char, grapheme rules to the following one: keep only cuts
        // that are also grapheme boundaries.
        Level::Sentence => grapheme_cuts(s, sentence_cuts(s)),
        Level::Word => grapheme_cuts(s, s.split_word_bound_indices().map(|(i, _)| i).collect()),
        Level::Grapheme => s.grapheme_indices(true).map(|(i, _)| i).collect(),
        Level::Char => s.char_indices().map(|(i, _)| i).collect(),
    };
    let mut bounds: Vec<usize> = cuts.into_iter().filter(|&c| c > 0 && c < s.len()).collect();
    bounds.dedup();
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut prev = 0;
    for b in bounds.into_iter().chain(std::iter::once(s.len())) {
        if b > prev {
            out.push(r.start + prev..r.start + b);
            prev = b;
        }
    }
    out
}

/// The `cuts` that are grapheme-cluster boundaries of `s`.
fn grapheme_cuts(s: &str, cuts: Vec<usize>) -> Vec<usize> {
    cuts.into_iter()
        .filter(|&c| {
            GraphemeCursor::new(c, s.len(), true)
                .is_boundary(s, 0)
                .unwrap_or(false)
        })
        .collect()
}

/// Sentence starts in `s`: UAX #29 sentence boundaries plus a cut after each `；`.
fn sentence_cuts(s: &str) -> Vec<usize> {
    let mut cuts: Vec<usize> = s.split_sentence_bound_indices().map(|(i, _)| i).collect();
    cuts.extend(s.match_indices('；').map(|(i, m)| i + m.len()));
    cuts.sort_unstable();
    cuts
}

/// The non-blank, trimmed sentences of `r`.
pub(crate) fn sentences(text: &str, r: Range<usize>) -> Vec<Range<usize>> {
    pieces(text, r, Level::Sentence)
        .into_iter()
        .map(|p| trim(text, p))
        .filter(|p| !p.is_empty())
        .collect()
}

/// A cut point strictly inside `r`, as close to its middle as possible: a word boundary if
/// there is one, else a grapheme boundary, else a char boundary.
fn bisect(text: &str, r: &Range<usize>) -> Option<usize> {
    let mid = r.start + r.len() / 2;
    [Level::Word, Level::Grapheme, Level::Char]
        .into_iter()
        .find_map(|level| {
            pieces(text, r.clone(), level)
                .iter()
                .skip(1)
                .map(|p| p.start)
                .min_by_key(|&b| b.abs_diff(mid))
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::{CharTokenCounter, WhitespaceTokenCounter};

    fn budget(max: usize) -> TokenBudget {
        TokenBudget::new(Arc::new(WhitespaceTokenCounter), max)
    }

    #[test]
    fn pieces_cover_range() {
        let text = "ab cd\n\nef. Gh!\nij";
        for level in PARAGRAPH_LEVELS {
            let ps = pieces(text, 1..text.len(), *level);
            assert_eq!(ps.first().unwrap().start, 1);
            assert_eq!(ps.last().unwrap().end, text.len());
            assert!(ps.windows(2).all(|w| w[0].end == w[1].start));
        }
    }

    #[test]
    fn sentences_split_cjk() {
        let text = "你好。世界！再见；好的？\n- item";
        let got: Vec<&str> = sentences(text, 0..text.len())
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(got, ["你好。", "世界！", "再见；", "好的？", "- item"]);
    }

    #[test]
    fn trim_keeps_combining_mark_after_space() {
        let text = "  \u{301}a  ";
        assert_eq!(&text[trim(text, 0..text.len())], " \u{301}a");
        assert_eq!(trim("   ", 0..3), 3..3);
    }

    #[test]
    fn meter_counts_units_and_tokens() {
        let b = budget(100);
        let text = "one two, three";
        let m = Meter::new(text, SizeUnit::Words, 2, &b);
        assert_eq!(m.units(&(0..text.len())), 3);
        assert!(!m.fits(&(0..text.len())));
        assert!(m.fits(&(0..7)));
        let b = TokenBudget::new(Arc::new(CharTokenCounter), 100);
        let m = Meter::new("e\u{301}x", SizeUnit::Tokens, 5, &b);
        assert_eq!(m.unit_starts(), &[0, 3]);
    }

    #[test]
    fn bisect_prefers_word_boundary_near_middle() {
        let text = "aaaa bbbb cccc";
        assert_eq!(bisect(text, &(0..text.len())), Some(5));
        assert_eq!(bisect("x", &(0..1)), None);
    }
}
