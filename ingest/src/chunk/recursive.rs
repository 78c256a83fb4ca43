//! [`RecursiveChunker`]: split at the strongest boundary that yields pieces within the limit,
//! merge small neighbours back up to it, and keep the heading path.
//!
//! The boundaries, strongest first: Markdown ATX headings (`#` … `######`, outside fenced code
//! blocks; the HTML loader writes headings in this form too), blank-line paragraphs, lines,
//! sentences (UAX #29 plus `；`), words (UAX #29), grapheme clusters. This is the
//! `RecursiveCharacterTextSplitter` scheme of LangChain, measured in the embedder's tokens.
//!
//! 1. The text is cut into sections at headings; each section's heading path is the stack of
//!    enclosing headings (`Guide > Install > Linux`). Sections that hold only headings are merged
//!    into the following section (the merged chunk takes the deeper path); sections with body
//!    text are never merged with each other, so every chunk's heading path is exact.
//! 2. A section that does not fit is split at the next level and its pieces packed greedily
//!    (consecutive pieces merged while they fit); a piece too large alone is split at the next
//!    level again, and so on down to grapheme clusters.
//! 3. With `overlap > 0`, each chunk is extended backwards, at a word boundary, by up to
//!    `overlap` units of the previous chunk of the same section, as long as it still fits.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::fixed::default_size;
use super::measure::{is_blank, pieces, trim, Level, Meter, PARAGRAPH_LEVELS};
use super::{check_overlap, ChunkSpan, Chunker, SizeUnit, TokenBudget};
use crate::error::ChunkError;

/// Configuration of [`RecursiveChunker`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecursiveConfig {
    /// Most units per chunk. Default 200.
    #[serde(default = "default_size")]
    pub size: usize,
    /// Units of the previous chunk repeated at the start of the next; `< size`. Default 0.
    #[serde(default)]
    pub overlap: usize,
    /// Unit of `size` and `overlap`. Default `tokens`.
    #[serde(default)]
    pub unit: SizeUnit,
}

impl Default for RecursiveConfig {
    fn default() -> Self {
        Self {
            size: default_size(),
            overlap: 0,
            unit: SizeUnit::default(),
        }
    }
}

/// Structure-aware recursive chunking: sections at Markdown headings (each chunk keeps its
/// heading path), then paragraphs, lines, sentences, words and grapheme clusters, splitting only
/// as far as needed and merging small neighbours back up to `size`; optional `overlap`.
#[derive(Debug, Clone)]
pub struct RecursiveChunker {
    config: RecursiveConfig,
    budget: TokenBudget,
}

/// A run of text under one heading path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    range: Range<usize>,
    path: Vec<String>,
    heading_only: bool,
}

impl RecursiveChunker {
    /// Builds the chunker; fails if the size is invalid or `overlap >= size`.
    pub fn new(config: RecursiveConfig, budget: TokenBudget) -> Result<Self, ChunkError> {
        budget.check_size(config.size, config.unit)?;
        check_overlap(config.overlap, config.size)?;
        Ok(Self { config, budget })
    }

    /// Extends `cur` backwards into `prev` by up to `overlap` units (see module docs).
    fn extend_back(&self, meter: &Meter<'_>, prev: &ChunkSpan, cur: &mut ChunkSpan) {
        let text = meter.text();
        let (p, c) = (prev.byte_span.clone(), cur.byte_span.clone());
        let candidate = pieces(text, p.clone(), Level::Word)
            .into_iter()
            .filter(|w| w.start > p.start && !is_blank(&text[w.clone()]))
            // A UAX #29 word may begin with a whitespace cluster that a combining mark follows
            // (`\t\u{658}`); a chunk must start after it.
            .map(|w| trim(text, w).start)
            .find(|&s| {
                meter.units(&(s..c.start)) <= self.config.overlap && meter.fits(&(s..c.end))
            });
        let Some(start) = candidate else { return };
        if let Some(tokens) = meter.exact_fit(&(start..c.end)) {
            cur.byte_span = start..c.end;
            cur.token_count = tokens;
        }
    }
}

impl Chunker for RecursiveChunker {
    fn name(&self) -> &'static str {
        "recursive"
    }

    fn split(&self, text: &str) -> Result<Vec<ChunkSpan>, ChunkError> {
        let meter = Meter::new(text, self.config.unit, self.config.size, &self.budget);
        let mut out: Vec<ChunkSpan> = Vec::new();
        for (range, path) in merge_heading_only(&meter, sections(text)) {
            let mut pieces = Vec::new();
            meter.split_to_fit(range, PARAGRAPH_LEVELS, &mut pieces);
            let first = out.len();
            out.extend(
                meter
                    .finalize(pieces)
                    .into_iter()
                    .map(|(byte_span, token_count)| ChunkSpan {
                        byte_span,
                        token_count,
                        heading_path: path.clone(),
                    }),
            );
            if self.config.overlap > 0 {
                let original: Vec<ChunkSpan> = out[first..].to_vec();
                for (i, prev) in original
                    .iter()
                    .enumerate()
                    .take(original.len().saturating_sub(1))
                {
                    self.extend_back(&meter, prev, &mut out[first + i + 1]);
                }
            }
        }
        Ok(out)
    }
}

/// Merges runs of heading-only sections into the following section while the result fits.
fn merge_heading_only(
    meter: &Meter<'_>,
    sections: Vec<Section>,
) -> Vec<(Range<usize>, Vec<String>)> {
    let mut groups: Vec<(Range<usize>, Vec<String>)> = Vec::new();
    let mut open = false; // whether the last group holds only headings
    for s in sections {
        if let Some((range, path)) = groups.last_mut() {
            if open && meter.fits(&(range.start..s.range.end)) {
                range.end = s.range.end;
                *path = s.path;
                open = s.heading_only;
                continue;
            }
        }
        open = s.heading_only;
        groups.push((s.range, s.path));
    }
    groups
}

/// Cuts `text` into sections at ATX headings outside fenced code blocks.
fn sections(text: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let (mut start, mut body, mut in_fence) = (0usize, false, false);
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            body = true;
            continue;
        }
        let Some((level, title)) = atx_heading(trimmed).filter(|_| !in_fence) else {
            body |= !trimmed.is_empty();
            continue;
        };
        if line_start > start {
            out.push(section(start..line_start, &stack, !body));
        }
        stack.retain(|(l, _)| *l < level);
        stack.push((level, title.to_owned()));
        (start, body) = (line_start, false);
    }
    if start < text.len() {
        out.push(section(start..text.len(), &stack, !body));
    }
    out
}

fn section(range: Range<usize>, stack: &[(usize, String)], heading_only: bool) -> Section {
    Section {
        range,
        path: stack.iter().map(|(_, t)| t.clone()).collect(),
        heading_only,
    }
}

/// Parses an ATX heading line (`## Title ##`) into its level and title.
fn atx_heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let rest = rest.trim();
    let closed = rest.trim_end_matches('#');
    let title = if closed.is_empty() || closed.ends_with([' ', '\t']) {
        closed.trim_end()
    } else {
        rest
    };
    Some((level, title))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::WhitespaceTokenCounter;

    fn chunker(size: usize, overlap: usize) -> RecursiveChunker {
        let budget = TokenBudget::new(Arc::new(WhitespaceTokenCounter), 100);
        let cfg = RecursiveConfig {
            size,
            overlap,
            unit: SizeUnit::Words,
        };
        RecursiveChunker::new(cfg, budget).unwrap()
    }

    fn run(c: &RecursiveChunker, text: &str) -> Vec<(String, String)> {
        let spans = c.split(text).unwrap();
        spans
            .iter()
            .map(|s| {
                (
                    text[s.byte_span.clone()].to_owned(),
                    s.heading_path.join(" > "),
                )
            })
            .collect()
    }

    #[test]
    fn parses_atx_headings() {
        assert_eq!(atx_heading("## Install ##"), Some((2, "Install")));
        assert_eq!(atx_heading("# C#"), Some((1, "C#")));
        assert_eq!(atx_heading("#hashtag"), None);
        assert_eq!(atx_heading("####### seven"), None);
    }

    #[test]
    fn keeps_heading_paths() {
        let text = "# Guide\n## Install\n### Linux\napt install x\n\n### Mac\nbrew install x\n## Use\nrun it";
        let got = run(&chunker(50, 0), text);
        assert_eq!(
            got,
            [
                (
                    "# Guide\n## Install\n### Linux\napt install x".into(),
                    "Guide > Install > Linux".into()
                ),
                (
                    "### Mac\nbrew install x".into(),
                    "Guide > Install > Mac".into()
                ),
                ("## Use\nrun it".into(), "Guide > Use".into()),
            ]
        );
    }

    #[test]
    fn ignores_hashes_in_code_fences() {
        let text = "# A\n```\n# not a heading\n```\ntext";
        let got = run(&chunker(50, 0), text);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, "A");
    }

    #[test]
    fn splits_paragraphs_then_sentences() {
        let text = "One two three. Four five six.\n\nSeven eight.";
        let got: Vec<String> = run(&chunker(4, 0), text).into_iter().map(|x| x.0).collect();
        assert_eq!(got, ["One two three.", "Four five six.", "Seven eight."]);
    }

    #[test]
    fn overlap_repeats_tail_of_previous_chunk() {
        let text = "A b c. D e f. G h i.";
        let got: Vec<String> = run(&chunker(5, 2), text).into_iter().map(|x| x.0).collect();
        assert_eq!(got, ["A b c.", "b c. D e f.", "e f. G h i."]);
    }
}
