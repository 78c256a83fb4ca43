//! A faithfulness filter for generated answers: every sentence must be supported by the
//! evidence ([`super::evidence`]).
//!
//! Small local models (the default SmolLM2 has 135M parameters) often add sentences the sources
//! never said, or swap the one term that matters while keeping the rest. Each answer sentence
//! ([`ingest::sentences`]) is matched to its best evidence sentence by meaning and by words and
//! kept only when what it adds to the question stands in that sentence and their meanings agree
//! ([`super::evidence::Evidence::check`]). A kept sentence is cited to the source of its
//! evidence: a citation the model put elsewhere is replaced, so every citation points at the
//! text that supports the statement.
//!
//! When no sentence survives, the answer is the **evidence itself**: the best source sentences
//! that answer well enough (by words, at least a third of the question's terms, or by meaning),
//! quoted verbatim with their source numbers, the exact source text rather than an invented
//! one. With none, the answer is "not found".
//!
//! Either way the **short answer** is the smallest span of the best evidence sentence that
//! carries what the answer adds to the question ([`super::evidence::Evidence::short_answer`]).

use super::citations::check_citations;
use super::evidence::{terms, Evidence, Span};
use crate::error::Result;
use ingest::sentences::sentences;

/// A source sentence is quoted only when it holds at least 1/this of the question's terms
/// (and two of them, when the question has two or more), or means nearly the same
/// ([`EXTRACT_MIN_MEANING`]). Chosen on SciFact train claims (`ragd eval answers`): 1/2 left
/// 30% of answers "not found" with a gold document among the sources for many of them.
const EXTRACT_MIN_SHARE_DEN: usize = 3;

/// Cosine similarity to the question above which a source sentence is quoted whatever its
/// words.
pub const EXTRACT_MIN_MEANING: f32 = 0.6;

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
    /// The short answer, when one was found.
    pub short: Option<Span>,
}

/// Keeps the sentences of `answer` that the evidence supports; see the module docs. `answer`
/// must already have had its citations checked ([`check_citations`]); `sources` is the number
/// of sources offered.
pub fn ground(
    answer: &str,
    question: &str,
    evidence: &Evidence,
    sources: usize,
) -> Result<Grounded> {
    let pieces = sentences(answer);
    let bare: Vec<String> = pieces.iter().map(|s| check_citations(s, 0).0).collect();
    let refs: Vec<&str> = bare.iter().map(String::as_str).collect();
    let checks = evidence.check(&refs)?;
    let mut text = String::new();
    let (mut kept, mut removed) = (0, 0);
    let mut first_kept: Option<(usize, &str)> = None;
    for ((sentence, bare), check) in pieces.iter().zip(&bare).zip(&checks) {
        let Some(check) = check else {
            // No content words ("Yes.", a lone citation): nothing to check.
            text.push_str(sentence);
            continue;
        };
        if !check.passed {
            removed += 1;
            continue;
        }
        kept += 1;
        first_kept.get_or_insert((check.evidence, bare.as_str()));
        let source = evidence.sentences[check.evidence].source;
        let (_, own) = check_citations(sentence, sources);
        if own.contains(&source) {
            text.push_str(sentence);
        } else {
            let trailing = &sentence[sentence.trim_end().len()..];
            text.push_str(&cite(bare.trim_end(), source));
            text.push_str(trailing);
        }
    }
    if let Some((sentence, generated)) = first_kept {
        return Ok(Grounded {
            text: text.trim().to_string(),
            kept,
            removed,
            extractive: false,
            short: evidence.short_answer(sentence, Some(generated)),
        });
    }
    let (text, best) = extract(question, evidence);
    // The rejected answer may still point at the span: use its words when they occur there.
    let short = best.and_then(|i| {
        evidence
            .short_answer(i, Some(answer))
            .or_else(|| evidence.short_answer(i, None))
    });
    Ok(Grounded {
        text,
        kept: 0,
        removed,
        extractive: true,
        short,
    })
}

/// `sentence` with ` [n]` before its closing punctuation.
fn cite(sentence: &str, n: usize) -> String {
    let body = sentence.trim_end();
    let stem = body.trim_end_matches(['.', '!', '?', '。', '！', '？']);
    format!("{} [{n}]{}", stem.trim_end(), &body[stem.len()..])
}

/// The best evidence sentences that answer well enough (see [`EXTRACT_MIN_SHARE_DEN`]),
/// quoted with their source numbers, and the index of the first; empty when none qualifies.
fn extract(question: &str, evidence: &Evidence) -> (String, Option<usize>) {
    let q = terms(question).len();
    if q == 0 {
        return (String::new(), None);
    }
    let chosen: Vec<usize> = evidence
        .sentences
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            let hits = (s.words * q as f32).round() as usize;
            (hits * EXTRACT_MIN_SHARE_DEN >= q && hits >= q.min(2))
                || s.meaning >= EXTRACT_MIN_MEANING
        })
        .map(|(i, _)| i)
        .take(EXTRACTED_SENTENCES)
        .collect();
    let text = chosen
        .iter()
        .map(|&i| {
            let s = &evidence.sentences[i];
            format!("\"{}\" [{}]", s.text, s.source)
        })
        .collect::<Vec<_>>()
        .join(" ");
    (text, chosen.first().copied())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ingest::testing::HashEmbedder;

    use super::*;

    const KV: &str = "The KV cache stores the keys and values of earlier tokens. Each new token \
                      only computes its own key and value, so decoding is faster.";
    const PUMP: &str = "The XJ-9000-B seal fits XJ-9000 pumps built after 2019.";

    fn ground_with(answer: &str, question: &str, sources: &[&str]) -> Grounded {
        let evidence = Evidence::gather(Arc::new(HashEmbedder::new()), question, sources).unwrap();
        ground(answer, question, &evidence, sources.len()).unwrap()
    }

    #[test]
    fn supported_sentences_stay_and_get_cited_to_their_evidence() {
        let answer = "The KV cache stores keys and values of earlier tokens [1]. It runs on a \
                      GPU cluster in Antarctica with quantum memory.";
        let g = ground_with(answer, "What does the KV cache store?", &[PUMP, KV]);
        assert_eq!((g.kept, g.removed, g.extractive), (1, 1, false));
        // The model cited [1]; the evidence is in [2].
        assert_eq!(
            g.text,
            "The KV cache stores keys and values of earlier tokens [2]."
        );
        let short = g.short.unwrap();
        assert_eq!(&KV[short.range], "keys and values of earlier tokens");
    }

    #[test]
    fn a_swapped_key_term_is_removed_and_the_evidence_quoted() {
        let answer = "The KV cache stores the weights of all tokens computed at once [1].";
        let g = ground_with(answer, "What does the KV cache store?", &[KV]);
        assert_eq!((g.kept, g.removed, g.extractive), (0, 1, true));
        assert!(
            g.text
                .starts_with("\"The KV cache stores the keys and values of earlier tokens.\" [1]"),
            "{}",
            g.text
        );
    }

    #[test]
    fn citations_to_the_evidence_are_kept_as_written() {
        let answer = "The XJ-9000-B seal fits pumps built after 2019 [1].";
        let g = ground_with(answer, "Which seal fits?", &[PUMP, KV]);
        assert_eq!(g.text, answer);
        assert_eq!((g.kept, g.removed), (1, 0));
    }

    #[test]
    fn nothing_supported_falls_back_to_quoting_the_sources() {
        let answer = "Bananas are a popular fruit in tropical countries.";
        let g = ground_with(answer, "Which seal fits an XJ-9000 pump?", &[KV, PUMP]);
        assert!(g.extractive);
        assert_eq!(g.removed, 1);
        assert_eq!(
            g.text,
            "\"The XJ-9000-B seal fits XJ-9000 pumps built after 2019.\" [2]"
        );
    }

    #[test]
    fn no_supported_sentence_and_no_matching_source_sentence_is_empty() {
        let g = ground_with("Bananas are yellow.", "Who won the World Cup?", &[KV, PUMP]);
        assert!(g.extractive);
        assert!(g.text.is_empty());
        assert_eq!(g.short, None);
    }

    #[test]
    fn chinese_sentences_are_checked_by_bigrams() {
        let source = "分块时应按句子边界切分。中文句子以句号结尾。";
        let answer = "中文句子以句号结尾。火星上有很多企鹅和香蕉。";
        let g = ground_with(answer, "中文句子以什么结尾？", &[source]);
        assert_eq!((g.kept, g.removed), (1, 1), "{g:?}");
        assert_eq!(g.text, "中文句子以句号结尾 [1]。");
    }
}
