//! All four chunkers on arbitrary text with arbitrary valid configurations, through
//! `chunk_document` (the text is normalised by `Document::new`, as every loaded document is).
//!
//! The tokenizer is one of `ragd_ingest::testing`'s deterministic counters and the semantic
//! chunker embeds with its `HashEmbedder`; no model is loaded. Checked: the guarantees listed in
//! `ingest/src/chunk/mod.rs` that are cheap to check here (spans on grapheme boundaries,
//! `&text[byte_span] == text`, trimmed non-empty chunks, document order, disjoint covering
//! chunks where promised, the size and token limits, exact token counts, char spans,
//! determinism).
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ragd_ingest::chunk::{
    BreakpointThreshold, FixedConfig, RecursiveConfig, SemanticConfig, SlidingConfig,
};
use ragd_ingest::testing::{
    CharTokenCounter, HashEmbedder, WhitespaceTokenCounter, WordTokenCounter,
};
use ragd_ingest::{chunk_document, ChunkingStrategy, Document, Embedder, SizeUnit, TokenCounter};
use unicode_segmentation::UnicodeSegmentation;

#[derive(Debug)]
struct Input {
    counter: u8,
    max_tokens: usize,
    strategy: ChunkingStrategy,
    text: String,
}

fn unit(u: &mut Unstructured<'_>) -> arbitrary::Result<SizeUnit> {
    Ok(*u.choose(&[SizeUnit::Tokens, SizeUnit::Chars, SizeUnit::Words])?)
}

/// A size valid for `unit`: at most the token limit when counted in tokens.
fn size(u: &mut Unstructured<'_>, unit: SizeUnit, max_tokens: usize) -> arbitrary::Result<usize> {
    let hi = if unit == SizeUnit::Tokens {
        max_tokens
    } else {
        300
    };
    u.int_in_range(1..=hi)
}

impl Input {
    /// The tokenizer, the limit and the strategy from the head of the input; the text is the rest.
    fn head(u: &mut Unstructured<'_>) -> arbitrary::Result<(u8, usize, ChunkingStrategy)> {
        let counter = u.int_in_range(0..=2)?;
        let max_tokens = u.int_in_range(1..=300)?;
        let unit = unit(u)?;
        let strategy = match u.int_in_range(0..=3)? {
            0 => ChunkingStrategy::Fixed(FixedConfig {
                size: size(u, unit, max_tokens)?,
                unit,
            }),
            1 => {
                let size = size(u, unit, max_tokens)?;
                let overlap = u.int_in_range(0..=size - 1)?;
                ChunkingStrategy::Sliding(SlidingConfig {
                    size,
                    overlap,
                    unit,
                })
            }
            2 => {
                let max_size = size(u, unit, max_tokens)?;
                let threshold = if u.arbitrary()? {
                    BreakpointThreshold::Percentile(f64::from(u.int_in_range(0..=1000)?) / 10.0)
                } else {
                    BreakpointThreshold::Absolute(f64::from(u.int_in_range(0..=200)?) / 100.0)
                };
                ChunkingStrategy::Semantic(SemanticConfig {
                    threshold,
                    min_size: u.int_in_range(0..=max_size)?,
                    max_size,
                    unit,
                    buffer_size: u.int_in_range(0..=3)?,
                    batch_size: u.int_in_range(1..=8)?,
                })
            }
            _ => {
                let size = size(u, unit, max_tokens)?;
                let overlap = u.int_in_range(0..=size - 1)?;
                ChunkingStrategy::Recursive(RecursiveConfig {
                    size,
                    overlap,
                    unit,
                })
            }
        };
        Ok((counter, max_tokens, strategy))
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let (counter, max_tokens, strategy) = Self::head(u)?;
        let text = u.arbitrary()?;
        Ok(Self {
            counter,
            max_tokens,
            strategy,
            text,
        })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        let (counter, max_tokens, strategy) = Self::head(&mut u)?;
        let text = String::arbitrary_take_rest(u)?;
        Ok(Self {
            counter,
            max_tokens,
            strategy,
            text,
        })
    }
}

fn non_ws(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Size of `s` in `unit`, measured on its own as the chunkers' verification does.
fn units_in(unit: SizeUnit, counter: &dyn TokenCounter, s: &str) -> usize {
    match unit {
        SizeUnit::Tokens => counter.count(s),
        SizeUnit::Chars => s.graphemes(true).filter(|g| !non_ws(g).is_empty()).count(),
        // Words sharing a grapheme cluster count once (`SizeUnit::Words`).
        SizeUnit::Words => {
            let bounds: Vec<usize> = s.grapheme_indices(true).map(|(i, _)| i).collect();
            let mut starts: Vec<usize> = Vec::new();
            for (i, _) in s.unicode_word_indices() {
                let snapped = bounds[bounds.partition_point(|&b| b <= i) - 1];
                if starts.last() != Some(&snapped) {
                    starts.push(snapped);
                }
            }
            starts.len()
        }
    }
}

fuzz_target!(|input: Input| {
    let counter: Arc<dyn TokenCounter> = match input.counter {
        0 => Arc::new(WordTokenCounter),
        1 => Arc::new(CharTokenCounter),
        _ => Arc::new(WhitespaceTokenCounter),
    };
    let embedder: Arc<dyn Embedder> =
        Arc::new(HashEmbedder::with_limits(16, input.max_tokens).with_counter(counter.clone()));
    let chunker = input
        .strategy
        .build(embedder)
        .expect("a valid configuration builds");
    let Some(doc) = Document::new("doc".into(), "", &input.text, BTreeMap::new()) else {
        return;
    };
    let text = doc.text();
    let chunks = chunk_document(&doc, chunker.as_ref()).expect("chunking never fails here");
    let again = chunk_document(&doc, chunker.as_ref()).expect("chunking never fails here");
    assert_eq!(chunks, again, "not deterministic");

    let (unit, size, disjoint) = match &input.strategy {
        ChunkingStrategy::Fixed(c) => (c.unit, c.size, true),
        ChunkingStrategy::Sliding(c) => (c.unit, c.size, false),
        ChunkingStrategy::Semantic(c) => (c.unit, c.max_size, true),
        ChunkingStrategy::Recursive(c) => (c.unit, c.size, c.overlap == 0),
    };
    // Chunks are cut at chars instead of grapheme clusters only where a single cluster alone
    // is over the token limit (documented in chunk/measure.rs), which a size counted in tokens
    // also is.
    let cluster_limit = match unit {
        SizeUnit::Tokens => size.min(input.max_tokens),
        SizeUnit::Chars | SizeUnit::Words => input.max_tokens,
    };
    let clusters_fit = text
        .graphemes(true)
        .all(|g| counter.count(g) <= cluster_limit);
    let bounds: Vec<usize> = text
        .grapheme_indices(true)
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chunks.iter().enumerate() {
        let r = c.byte_span.clone();
        assert_eq!(c.ordinal, i);
        assert_eq!(
            text.get(r.clone()),
            Some(c.text.as_str()),
            "span/text mismatch"
        );
        assert!(!c.text.is_empty(), "empty chunk");
        if clusters_fit {
            assert!(
                bounds.binary_search(&r.start).is_ok(),
                "start {} inside a cluster",
                r.start
            );
            assert!(
                bounds.binary_search(&r.end).is_ok(),
                "end {} inside a cluster",
                r.end
            );
            let first = c.text.graphemes(true).next().unwrap_or_default();
            let last = c.text.graphemes(true).next_back().unwrap_or_default();
            assert!(
                !non_ws(first).is_empty() && !non_ws(last).is_empty(),
                "untrimmed {:?}",
                c.text
            );
        }
        let from_chars: String = chars[c.char_span.clone()].iter().collect();
        assert_eq!(from_chars, c.text, "char span");
        let tokens = counter.count(&c.text);
        assert_eq!(c.token_count, tokens, "token count");
        assert!(tokens <= input.max_tokens, "{tokens} tokens over the limit");
        let units = units_in(unit, counter.as_ref(), &c.text);
        assert!(units <= size, "{units} units over {size}: {:?}", c.text);
    }
    for w in chunks.windows(2) {
        assert!(w[0].byte_span.start < w[1].byte_span.start, "out of order");
        assert!(w[0].byte_span.end <= w[1].byte_span.end, "out of order");
        if disjoint {
            assert!(w[0].byte_span.end <= w[1].byte_span.start, "overlap");
        }
    }
    if disjoint {
        let covered: String = chunks.iter().map(|c| non_ws(&c.text)).collect();
        assert!(covered == non_ws(text), "coverage differs");
    } else {
        let mut pos = 0;
        for c in &chunks {
            assert!(
                non_ws(&text[pos..c.byte_span.start.max(pos)]).is_empty(),
                "gap"
            );
            pos = pos.max(c.byte_span.end);
        }
        assert!(non_ws(&text[pos..]).is_empty(), "tail not covered");
    }
});
