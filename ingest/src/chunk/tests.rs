//! The conformance suite: the same checks run against every [`Chunker`] configuration, like
//! tantivy's `directory/tests.rs`. Token counts use the real all-MiniLM-L6-v2 tokenizer when
//! it is on disk (see `testing::minilm_tokenizer_path`) and [`WordTokenCounter`] otherwise.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use proptest::prelude::*;
use unicode_segmentation::UnicodeSegmentation;

use super::measure::Meter;
use super::*;
use crate::testing::{minilm_token_counter, models_dir, HashEmbedder, WordTokenCounter};

/// The embedder's limit, as all-MiniLM-L6-v2's.
const MAX_TOKENS: usize = 254;

/// The tokenizer: MiniLM if present, else a double (with a note).
fn counter() -> Arc<dyn TokenCounter> {
    static COUNTER: OnceLock<Arc<dyn TokenCounter>> = OnceLock::new();
    COUNTER
        .get_or_init(|| match minilm_token_counter() {
            Some(c) => Arc::new(c),
            None => {
                let dir = models_dir().map(|d| d.join("all-MiniLM-L6-v2/tokenizer.json"));
                eprintln!("note: MiniLM tokenizer not found at {dir:?}; using WordTokenCounter");
                Arc::new(WordTokenCounter)
            }
        })
        .clone()
}

/// How consecutive chunks of a case relate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Overlap {
    /// Disjoint chunks covering the text.
    None,
    /// Sliding windows sharing exactly this many units.
    Exact(usize),
    /// Chunks may overlap (recursive with overlap).
    Some,
}

struct Case {
    name: String,
    chunker: Box<dyn Chunker>,
    unit: SizeUnit,
    size: usize,
    overlap: Overlap,
}

fn case(
    name: &str,
    chunker: Box<dyn Chunker>,
    unit: SizeUnit,
    size: usize,
    overlap: Overlap,
) -> Case {
    let name = format!("{name}/{unit:?}/{size}");
    Case {
        name,
        chunker,
        unit,
        size,
        overlap,
    }
}

fn budget() -> TokenBudget {
    TokenBudget::new(counter(), MAX_TOKENS)
}

fn fixed(size: usize, unit: SizeUnit) -> Case {
    let c = FixedChunker::new(FixedConfig { size, unit }, budget()).unwrap();
    case("fixed", Box::new(c), unit, size, Overlap::None)
}

fn sliding(size: usize, overlap: usize, unit: SizeUnit) -> Case {
    let c = SlidingChunker::new(
        SlidingConfig {
            size,
            overlap,
            unit,
        },
        budget(),
    )
    .unwrap();
    case("sliding", Box::new(c), unit, size, Overlap::Exact(overlap))
}

fn recursive(size: usize, overlap: usize, unit: SizeUnit) -> Case {
    let c = RecursiveChunker::new(
        RecursiveConfig {
            size,
            overlap,
            unit,
        },
        budget(),
    )
    .unwrap();
    let kind = if overlap == 0 {
        Overlap::None
    } else {
        Overlap::Some
    };
    case("recursive", Box::new(c), unit, size, kind)
}

fn semantic(min_size: usize, max_size: usize, unit: SizeUnit) -> Case {
    let embedder = HashEmbedder::new().with_counter(counter());
    let cfg = SemanticConfig {
        min_size,
        max_size,
        unit,
        ..SemanticConfig::default()
    };
    let c = SemanticChunker::new(cfg, Arc::new(embedder)).unwrap();
    case("semantic", Box::new(c), unit, max_size, Overlap::None)
}

/// Every chunker, at realistic sizes.
fn cases() -> Vec<Case> {
    use SizeUnit::{Chars, Tokens, Words};
    vec![
        fixed(64, Tokens),
        fixed(100, Chars),
        fixed(40, Words),
        sliding(64, 16, Tokens),
        sliding(80, 20, Chars),
        sliding(30, 10, Words),
        semantic(16, 128, Tokens),
        semantic(10, 60, Words),
        recursive(64, 0, Tokens),
        recursive(100, 0, Chars),
        recursive(40, 8, Words),
        recursive(MAX_TOKENS, 0, Tokens),
    ]
}

/// Every chunker, at sizes small enough that random text is cut often.
fn tiny_cases() -> Vec<Case> {
    use SizeUnit::{Chars, Tokens, Words};
    vec![
        fixed(8, Tokens),
        fixed(8, Chars),
        sliding(8, 3, Tokens),
        sliding(8, 0, Chars),
        sliding(6, 5, Words),
        semantic(2, 8, Tokens),
        recursive(8, 0, Tokens),
        recursive(8, 3, Words),
    ]
}

fn non_ws(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn units_in(unit: SizeUnit, s: &str) -> usize {
    match unit {
        SizeUnit::Tokens => counter().count(s),
        SizeUnit::Chars => s.graphemes(true).filter(|g| !non_ws(g).is_empty()).count(),
        // Words sharing a grapheme cluster count once, as in `SizeUnit::Words`.
        SizeUnit::Words => {
            let mut starts: Vec<usize> = Vec::new();
            let bounds: Vec<usize> = s.grapheme_indices(true).map(|(i, _)| i).collect();
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

/// All checks of one case on one text; returns the chunks.
fn check(case: &Case, text: &str) -> Vec<ChunkSpan> {
    let spans = check_once(case, text);
    let again = case.chunker.split(text).unwrap();
    assert_eq!(spans, again, "{}: not deterministic", case.name);
    spans
}

/// All checks but determinism.
fn check_once(case: &Case, text: &str) -> Vec<ChunkSpan> {
    let spans = case.chunker.split(text).unwrap();
    let bounds: Vec<usize> = text
        .grapheme_indices(true)
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    for s in &spans {
        check_span(case, text, &bounds, s);
    }
    for w in spans.windows(2) {
        assert!(
            w[0].byte_span.start < w[1].byte_span.start,
            "{}: out of order",
            case.name
        );
        assert!(
            w[0].byte_span.end <= w[1].byte_span.end,
            "{}: out of order",
            case.name
        );
    }
    match case.overlap {
        Overlap::None => check_partition(case, text, &spans),
        Overlap::Exact(o) => {
            check_cover(case, text, &spans);
            check_exact_overlap(case, text, &spans, o);
        }
        Overlap::Some => check_cover(case, text, &spans),
    }
    spans
}

fn check_span(case: &Case, text: &str, bounds: &[usize], s: &ChunkSpan) {
    let name = &case.name;
    let r = s.byte_span.clone();
    assert!(
        bounds.binary_search(&r.start).is_ok(),
        "{name}: start {} not a grapheme boundary",
        r.start
    );
    assert!(
        bounds.binary_search(&r.end).is_ok(),
        "{name}: end {} not a grapheme boundary",
        r.end
    );
    let chunk = &text[r];
    assert!(!chunk.is_empty(), "{name}: empty chunk");
    let first = chunk.graphemes(true).next().unwrap();
    let last = chunk.graphemes(true).next_back().unwrap();
    assert!(
        !non_ws(first).is_empty() && !non_ws(last).is_empty(),
        "{name}: untrimmed {chunk:?}"
    );
    let tokens = counter().count(chunk);
    assert_eq!(s.token_count, tokens, "{name}: wrong token count");
    assert!(
        tokens <= MAX_TOKENS,
        "{name}: {tokens} tokens over the embedder limit"
    );
    let units = units_in(case.unit, chunk);
    assert!(
        units <= case.size,
        "{name}: {units} units over {}: {chunk:?}",
        case.size
    );
}

/// Disjoint chunks whose non-whitespace chars, in order, are exactly the text's.
fn check_partition(case: &Case, text: &str, spans: &[ChunkSpan]) {
    for w in spans.windows(2) {
        assert!(
            w[0].byte_span.end <= w[1].byte_span.start,
            "{}: overlap",
            case.name
        );
    }
    let covered: String = spans
        .iter()
        .map(|s| non_ws(&text[s.byte_span.clone()]))
        .collect();
    assert!(covered == non_ws(text), "{}: coverage differs", case.name);
}

/// Every non-whitespace char is inside some chunk.
fn check_cover(case: &Case, text: &str, spans: &[ChunkSpan]) {
    let mut pos = 0;
    for s in spans {
        if s.byte_span.start > pos {
            assert!(
                non_ws(&text[pos..s.byte_span.start]).is_empty(),
                "{}: gap",
                case.name
            );
        }
        pos = pos.max(s.byte_span.end);
    }
    assert!(
        non_ws(&text[pos..]).is_empty(),
        "{}: tail not covered",
        case.name
    );
}

/// Consecutive sliding windows share exactly `overlap` units.
fn check_exact_overlap(case: &Case, text: &str, spans: &[ChunkSpan], overlap: usize) {
    let b = budget();
    let meter = Meter::new(text, case.unit, case.size, &b);
    let starts = meter.unit_starts();
    let count = |r: &Range<usize>| {
        starts.partition_point(|&s| s < r.end) - starts.partition_point(|&s| s < r.start)
    };
    for w in spans.windows(2) {
        // A window the token limit leaves with no more than `overlap` units cannot be followed
        // at exactly `overlap` (documented); every other pair must share exactly `overlap`.
        if count(&w[0].byte_span) <= overlap {
            continue;
        }
        let shared = w[1].byte_span.start..w[0].byte_span.end.max(w[1].byte_span.start);
        let n = count(&shared);
        assert_eq!(
            n, overlap,
            "{}: windows share {n} units: {:?}",
            case.name, &text[shared]
        );
    }
}

const ENGLISH: &str = "# Guide\n\nThis guide explains how to install ragd. It covers Linux and macOS.\n\n## Install\n\n### Linux\n\nDownload the archive, unpack it and run the installer. You need a recent glibc.\n- step one\n- step two\n\n### macOS\n\nUse Homebrew: brew install ragd. Then start the service.\n\n## Configure\n\nEdit the configuration file. Every option has a default, so an empty file works.";
const CHINESE: &str = "人工智能是计算机科学的一个分支它企图了解智能的实质并生产出一种新的能以人类智能相似的方式做出反应的智能机器该领域的研究包括机器人语言识别图像识别自然语言处理和专家系统等自从人工智能诞生以来理论和技术日益成熟应用领域也不断扩大可以设想未来人工智能带来的科技产品将会是人类智慧的容器人工智能可以对人的意识思维的信息过程进行模拟人工智能不是人的智能但能像人那样思考也可能超过人的智能";
const JAPANESE: &str = "東京は日本の首都です。人口は約千四百万人で、世界有数の大都市です。カタカナのコンピューターも使われます！週末には多くの人が公園に集まります；春には桜が咲きます？";
const MIXED: &str = "Café naïve e\u{301}te\u{301}. 👨‍👩‍👧 family emoji 🇯🇵 flag. مرحبا بالعالم، هذا نص عربي. שלום עולם. Mixed 中文 and English 日本語テキスト. Zalgo: Z\u{351}\u{36b}\u{343}a\u{36b}l\u{30e}g\u{344}o\u{36b}.";

fn sample_texts() -> Vec<String> {
    let mut long_cjk = CHINESE.repeat(3);
    long_cjk.push('。');
    vec![
        ENGLISH.to_owned(),
        CHINESE.to_owned(),
        long_cjk,
        JAPANESE.to_owned(),
        MIXED.to_owned(),
        format!("{ENGLISH}\n\n{JAPANESE}\n\n{MIXED}\n\n{CHINESE}"),
        "a".repeat(3000),
        "x".to_owned(),
    ]
}

#[test]
fn conformance_on_samples() {
    for case in cases().iter().chain(&tiny_cases()) {
        for text in sample_texts() {
            check(case, &text);
        }
    }
}

#[test]
fn empty_and_blank_give_no_chunks() {
    for case in cases() {
        for text in ["", " ", "\n\n \t\n"] {
            assert!(
                case.chunker.split(text).unwrap().is_empty(),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn one_word_is_one_chunk() {
    for case in cases() {
        let spans = check(&case, "  hello ");
        assert_eq!(spans.len(), 1, "{}", case.name);
        assert_eq!(spans[0].byte_span, 2..7, "{}", case.name);
    }
}

#[test]
fn cjk_without_spaces_is_chunked_sensibly() {
    for case in cases() {
        let spans = check(&case, CHINESE);
        let chars = CHINESE.chars().count();
        assert!(
            spans.len() > 1 || case.size >= chars,
            "{}: one giant chunk",
            case.name
        );
        assert!(
            chars / spans.len() >= 10,
            "{}: {} chunks for {chars} chars",
            case.name,
            spans.len()
        );
    }
}

#[test]
fn chunk_document_reports_char_offsets() {
    let doc = Document::new("d".into(), "", MIXED, Default::default()).unwrap();
    for case in cases() {
        let chunks = case.chunker.chunk(&doc).unwrap();
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.ordinal, i);
            assert_eq!(c.doc_id.as_str(), "d");
            assert_eq!(&doc.text()[c.byte_span.clone()], c.text);
            let chars: Vec<char> = doc.text().chars().collect();
            let from_chars: String = chars[c.char_span.clone()].iter().collect();
            assert_eq!(from_chars, c.text, "{}", case.name);
        }
    }
}

/// About 1 MB of varied text.
/// Found by the Unicode proptest: a UAX #29 word that starts with a tab glued to a combining
/// mark made the recursive chunker's overlap start on the tab.
#[test]
fn overlap_never_starts_on_whitespace_glued_to_a_mark() {
    let text = "\u{3040}\t\u{658}\u{600}\u{600}\n- item\n.丄嬠鄓呡稿暑付槱皺";
    for case in tiny_cases().iter().chain(&cases()) {
        check(case, text);
    }
}

fn megabyte() -> String {
    let block = format!("{ENGLISH}\n\n{CHINESE}\n\n{JAPANESE}\n\n{MIXED}\n\n");
    let mut text = String::with_capacity(1 << 20);
    let mut i = 0;
    while text.len() < 1 << 20 {
        text.push_str(&format!("## Part {i}\n\n"));
        text.push_str(&block);
        i += 1;
    }
    text
}

/// Chunks about 1 MB once with `case`, checking the invariants and the time taken.
fn one_megabyte(case: &Case) {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(megabyte);
    let started = Instant::now();
    let spans = check_once(case, text);
    let secs = started.elapsed().as_secs_f64();
    assert!(spans.len() > 1000, "{}", case.name);
    assert!(secs < 60.0, "{}: {secs:.1}s for 1 MB", case.name);
}

#[test]
fn one_megabyte_fixed() {
    one_megabyte(&fixed(200, SizeUnit::Tokens));
}

#[test]
fn one_megabyte_sliding() {
    one_megabyte(&sliding(200, 50, SizeUnit::Tokens));
}

#[test]
fn one_megabyte_semantic() {
    one_megabyte(&semantic(32, 200, SizeUnit::Tokens));
}

#[test]
fn one_megabyte_recursive() {
    one_megabyte(&recursive(200, 0, SizeUnit::Tokens));
}

/// Fragments of arbitrary Unicode: scripts, emoji, combining marks, RTL, whitespace, structure.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z]{1,12}",
        "[\u{4e00}-\u{9fff}]{1,30}",
        "[\u{3040}-\u{30ff}]{1,10}",
        "[\u{0600}-\u{06ff}]{1,10}",
        "[\u{05d0}-\u{05ea}]{1,8}",
        "[a-z][\u{300}-\u{36f}]{1,3}",
        "[\u{1F600}-\u{1F64F}]{1,3}",
        Just("👩‍🔬".to_owned()),
        "[ \n\t\u{a0}\u{3000}]{1,3}",
        "[.,!?。！？；、]",
        "\\PC{1,10}",
        Just("\n\n# Title\n".to_owned()),
        Just("\n- item\n".to_owned()),
    ]
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..120).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn invariants_hold_on_arbitrary_unicode(text in arbitrary_text()) {
        for case in tiny_cases() {
            check(&case, &text);
        }
    }

    #[test]
    fn invariants_hold_on_normalised_text(text in arbitrary_text()) {
        let text = crate::normalize_text(&text);
        for case in cases().iter().take(6).chain(&tiny_cases()) {
            check(case, &text);
        }
    }
}
