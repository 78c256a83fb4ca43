//! A faithfulness filter for generated answers: every sentence must be supported by the sources.
//!
//! Small local models (the default SmolLM2 has 135M parameters) often add sentences the sources
//! never said. Each answer sentence ([`ingest::sentences`]: UAX #29 bounds, so `。！？` end
//! Chinese sentences too, without its false breaks inside brackets and after abbreviations) is
//! reduced to its content terms with the BM25 analyzer of the index (multilingual: stop
//! words removed, English stemmed, CJK bigrams); its **support** is the share of those terms
//! that occur in one source, taking the best source. This is unigram precision against the
//! evidence, the lexical form of the faithfulness checks used in RAG evaluation. Sentences with
//! support under [`MIN_SUPPORT`] are removed; a kept sentence without a citation gets one, to
//! its best source.
//!
//! When no sentence survives, the answer falls back to **extraction**: the source sentences that
//! share the most terms with the question (at least a third of them), quoted verbatim with their
//! source number — the exact source text rather than an invented one. With none, the answer is
//! "not found".

use std::collections::HashSet;

use index::config::Bm25Analyzer;
use ingest::sentences::sentences;

use super::citations::check_citations;

/// Least share of a sentence's content terms that one source must contain.
pub const MIN_SUPPORT: f32 = 0.6;

/// A source sentence is quoted only when it holds at least 1/this of the question's terms
/// (and two of them, when the question has two or more). Chosen on SciFact train claims
/// (`ragd eval answers`): 1/2 left 30% of answers "not found" with a gold document among the
/// sources for many of them; 1/3 is measured in BENCHMARKS.md.
const EXTRACT_MIN_SHARE_DEN: usize = 3;

/// Source sentences quoted by an extractive answer.
const EXTRACTED_SENTENCES: usize = 2;

/// The outcome of [`ground`].
#[derive(Debug, Clone, PartialEq)]
pub struct Grounded {
    /// The answer: supported sentences, each cited.
    pub text: String,
    /// Sentences kept.
    pub kept: usize,
    /// Unsupported sentences removed.
    pub removed: usize,
    /// True when no generated sentence was supported and the text quotes the sources.
    pub extractive: bool,
}

/// The content terms of `text` (the multilingual BM25 analyzer's output, as a set).
fn terms(text: &str) -> HashSet<String> {
    index::sparse::terms(Bm25Analyzer::Multilingual, text)
        .into_iter()
        .collect()
}

/// Support of `terms` in the best of `sources`: (share, 1-based source number).
fn support(terms: &HashSet<String>, sources: &[HashSet<String>]) -> (f32, usize) {
    let mut best = (0.0f32, 1usize);
    for (i, s) in sources.iter().enumerate() {
        let share = terms.iter().filter(|t| s.contains(*t)).count() as f32 / terms.len() as f32;
        if share > best.0 {
            best = (share, i + 1);
        }
    }
    best
}

/// Keeps the sentences of `answer` that `sources` (prompt order) support; see the module docs.
/// `answer` must already have had its citations checked ([`check_citations`]).
pub fn ground(answer: &str, question: &str, sources: &[&str]) -> Grounded {
    let source_terms: Vec<HashSet<String>> = sources.iter().map(|s| terms(s)).collect();
    let mut text = String::new();
    let (mut kept, mut removed) = (0, 0);
    for sentence in sentences(answer) {
        let (bare, cited) = check_citations(sentence, 0);
        let t = terms(&bare);
        if t.is_empty() {
            // No content words ("Yes.", a lone citation): nothing to check.
            text.push_str(sentence);
            continue;
        }
        let (share, best) = support(&t, &source_terms);
        if share < MIN_SUPPORT {
            removed += 1;
            continue;
        }
        kept += 1;
        let (_, own) = check_citations(sentence, sources.len());
        if own.is_empty() && cited.is_empty() {
            text.push_str(&cite(sentence, best));
        } else {
            text.push_str(sentence);
        }
    }
    if kept > 0 {
        return Grounded {
            text: text.trim().to_string(),
            kept,
            removed,
            extractive: false,
        };
    }
    Grounded {
        text: extract(question, sources),
        kept: 0,
        removed,
        extractive: true,
    }
}

/// `sentence` with ` [n]` before its closing punctuation (kept, with trailing space, after it).
fn cite(sentence: &str, n: usize) -> String {
    let body = sentence.trim_end();
    let tail = &sentence[body.len()..];
    let stem = body.trim_end_matches(['.', '!', '?', '。', '！', '？']);
    format!("{stem} [{n}]{}{tail}", &body[stem.len()..])
}

/// The source sentences sharing the most terms with `question` (at least a third), quoted with
/// their source numbers, best first; empty when none qualifies.
fn extract(question: &str, sources: &[&str]) -> String {
    let q = terms(question);
    if q.is_empty() {
        return String::new();
    }
    let mut scored: Vec<(usize, usize, &str)> = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        for sentence in sentences(source) {
            let hits = terms(sentence).intersection(&q).count();
            if hits * EXTRACT_MIN_SHARE_DEN >= q.len() && hits >= q.len().min(2) {
                scored.push((hits, i + 1, sentence.trim()));
            }
        }
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .iter()
        .take(EXTRACTED_SENTENCES)
        .map(|(_, n, s)| format!("\"{s}\" [{n}]"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KV: &str = "The KV cache stores the keys and values of earlier tokens. Each new token \
                      only computes its own key and value, so decoding is faster.";
    const PUMP: &str = "The XJ-9000-B seal fits XJ-9000 pumps built after 2019.";

    #[test]
    fn supported_sentences_stay_and_get_cited() {
        let answer = "The KV cache stores keys and values of earlier tokens. It runs on a GPU \
                      cluster in Antarctica with quantum memory.";
        let g = ground(answer, "What does the KV cache store?", &[PUMP, KV]);
        assert_eq!(g.kept, 1);
        assert_eq!(g.removed, 1);
        assert!(!g.extractive);
        assert_eq!(
            g.text,
            "The KV cache stores keys and values of earlier tokens [2]."
        );
    }

    #[test]
    fn existing_citations_are_kept_as_written() {
        let answer = "The XJ-9000-B seal fits pumps built after 2019 [1].";
        let g = ground(answer, "Which seal?", &[PUMP, KV]);
        assert_eq!(g.text, answer);
        assert_eq!((g.kept, g.removed), (1, 0));
    }

    #[test]
    fn nothing_supported_falls_back_to_quoting_the_sources() {
        let answer = "Bananas are a popular fruit in tropical countries.";
        let g = ground(answer, "Which seal fits an XJ-9000 pump?", &[KV, PUMP]);
        assert!(g.extractive);
        assert_eq!(g.removed, 1);
        assert_eq!(
            g.text,
            "\"The XJ-9000-B seal fits XJ-9000 pumps built after 2019.\" [2]"
        );
    }

    #[test]
    fn no_supported_sentence_and_no_matching_source_sentence_is_empty() {
        let g = ground("Bananas are yellow.", "Who won the World Cup?", &[KV, PUMP]);
        assert!(g.extractive);
        assert!(g.text.is_empty());
    }

    #[test]
    fn chinese_sentences_are_checked_by_bigrams() {
        let source = "分块时应按句子边界切分。中文句子以句号结尾。";
        let answer = "中文句子以句号结尾。火星上有很多企鹅和香蕉。";
        let g = ground(answer, "中文句子以什么结尾？", &[source]);
        assert_eq!((g.kept, g.removed), (1, 1));
        assert_eq!(g.text, "中文句子以句号结尾 [1]。");
    }
}
