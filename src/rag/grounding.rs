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
    /// True when the model said the answer is not in the sources and no sentence was kept:
    /// the text is empty.
    pub not_found: bool,
    /// The short answer, when one was found.
    pub short: Option<Span>,
}

/// Keeps the sentences of `answer` that the evidence supports; see the module docs. `sources`
/// is the number of sources offered. The whole-answer form of [`Grounder`].
pub fn ground(
    answer: &str,
    question: &str,
    evidence: &Evidence,
    sources: usize,
) -> Result<Grounded> {
    let mut grounder = Grounder::default();
    grounder.push(answer);
    Ok(grounder.end(question, evidence, sources)?.0)
}

/// The faithfulness filter run as the answer is generated, so that a client shown the text as
/// it streams is never shown a sentence that is later removed.
///
/// [`Grounder::push`] appends generated text; once a sentence is complete (the text after it
/// has begun, so its bounds can no longer move), [`Grounder::settle`] checks it and returns the
/// text to show: the sentences that passed, cited to their evidence, with the sentences that
/// have nothing to check ("Yes.", a lone citation) that came before them. [`Grounder::end`]
/// checks the rest and returns the whole grounded answer with the text still to show; the text
/// shown, joined, is always the start of the answer, and with the tail the whole of it.
#[derive(Debug, Default)]
pub struct Grounder {
    /// Generated text not yet checked.
    raw: String,
    /// Generated text already checked.
    seen: String,
    /// The answer shown so far.
    shown: String,
    /// Whitespace after the last sentence shown, shown before the next.
    gap: String,
    /// Sentences with nothing to check, shown with the next kept sentence.
    held: String,
    kept: usize,
    removed: usize,
    /// The evidence sentence and text (citations removed) of the first kept sentence.
    first_kept: Option<(usize, String)>,
    /// A sentence said the answer is not in the sources (without citing one).
    said_not_found: bool,
}

impl Grounder {
    /// Appends generated text; true when a sentence may be complete, so that
    /// [`Grounder::settle`] has something to check.
    pub fn push(&mut self, piece: &str) -> bool {
        self.raw.push_str(piece);
        self.complete_sentences() > 0
    }

    /// The text shown so far.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Checks the complete sentences pushed so far; returns the text to show now (often
    /// empty).
    pub fn settle(&mut self, evidence: &Evidence, sources: usize) -> Result<String> {
        let n = self.complete_sentences();
        self.check(n, evidence, sources)
    }

    /// Checks what is left and returns the grounded answer, with the text to show that was
    /// not shown yet (the answer minus [`Grounder::shown`]).
    pub fn end(
        mut self,
        question: &str,
        evidence: &Evidence,
        sources: usize,
    ) -> Result<(Grounded, String)> {
        let n = sentences(&self.raw).len();
        let mut tail = self.check(n, evidence, sources)?;
        if let Some((sentence, generated)) = self.first_kept.take() {
            let held = self.held.trim_end();
            if !held.is_empty() {
                let more = format!("{}{held}", self.gap);
                self.shown.push_str(&more);
                tail.push_str(&more);
            }
            let grounded = Grounded {
                text: self.shown,
                kept: self.kept,
                removed: self.removed,
                extractive: false,
                not_found: false,
                short: evidence.short_answer(sentence, Some(&generated)),
            };
            return Ok((grounded, tail));
        }
        if self.said_not_found {
            let grounded = Grounded {
                text: String::new(),
                kept: 0,
                removed: self.removed,
                extractive: false,
                not_found: true,
                short: None,
            };
            return Ok((grounded, String::new()));
        }
        let (text, best) = extract(question, evidence);
        // The rejected answer may still point at the span: use its words when they occur there.
        let generated = check_citations(&self.seen, 0).0;
        let short = best.and_then(|i| {
            evidence
                .short_answer(i, Some(&generated))
                .or_else(|| evidence.short_answer(i, None))
        });
        let grounded = Grounded {
            text: text.clone(),
            kept: 0,
            removed: self.removed,
            extractive: true,
            not_found: false,
            short,
        };
        Ok((grounded, text))
    }

    /// How many leading sentences of the unchecked text are complete: all but the last, once
    /// the last holds a letter or digit (before that, a sentence end may still be undone: a
    /// lower-case word after "e.g." joins the two).
    fn complete_sentences(&self) -> usize {
        let pieces = sentences(&self.raw);
        match pieces.last() {
            Some(last) if pieces.len() >= 2 && last.chars().any(char::is_alphanumeric) => {
                pieces.len() - 1
            }
            _ => 0,
        }
    }

    /// Checks the first `n` sentences of the unchecked text and returns the text to show.
    fn check(&mut self, n: usize, evidence: &Evidence, sources: usize) -> Result<String> {
        if n == 0 {
            return Ok(String::new());
        }
        let raw = std::mem::take(&mut self.raw);
        let pieces = sentences(&raw);
        let done = &pieces[..n.min(pieces.len())];
        let consumed = done
            .last()
            .map_or(0, |p| p.as_ptr() as usize - raw.as_ptr() as usize + p.len());
        self.seen.push_str(&raw[..consumed]);
        // Markers naming no source are dropped first, as in the whole answer.
        let valid: Vec<(String, Vec<usize>)> =
            done.iter().map(|p| check_citations(p, sources)).collect();
        let bare: Vec<String> = valid.iter().map(|(v, _)| check_citations(v, 0).0).collect();
        let refs: Vec<&str> = bare.iter().map(String::as_str).collect();
        let checks = evidence.check(&refs)?;
        let mut out = String::new();
        for (((sentence, own), bare), check) in valid.iter().zip(&bare).zip(&checks) {
            if own.is_empty() && says_not_found(bare) {
                self.said_not_found = true;
                continue;
            }
            let Some(check) = check else {
                // No content words ("Yes.", a lone citation): nothing to check.
                self.held.push_str(sentence);
                continue;
            };
            if !check.passed {
                self.removed += 1;
                continue;
            }
            self.kept += 1;
            self.first_kept
                .get_or_insert_with(|| (check.evidence, bare.clone()));
            let source = evidence.sentences[check.evidence].source;
            let cited = if own.contains(&source) {
                sentence.clone()
            } else {
                let trailing = &sentence[sentence.trim_end().len()..];
                format!("{}{trailing}", cite(bare.trim_end(), source))
            };
            let body = cited.trim_end();
            let mut piece = format!("{}{}{body}", self.gap, self.held);
            self.gap = cited[body.len()..].to_string();
            self.held.clear();
            if self.shown.is_empty() {
                piece = piece.trim_start().to_string();
            }
            self.shown.push_str(&piece);
            out.push_str(&piece);
        }
        self.raw = raw[consumed..].to_string();
        Ok(out)
    }
}

/// Whether `text` says the answer is not in the sources.
pub fn says_not_found(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("not found in the knowledge base") || lower.contains("not in the knowledge base")
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

    /// Streams `answer` three bytes at a time (on char bounds) through a [`Grounder`]; returns
    /// the pieces shown and the grounded answer.
    fn stream(answer: &str, question: &str, sources: &[&str]) -> (Vec<String>, Grounded) {
        let evidence = Evidence::gather(Arc::new(HashEmbedder::new()), question, sources).unwrap();
        let mut g = Grounder::default();
        let mut shown = Vec::new();
        let mut rest = answer;
        while !rest.is_empty() {
            let mut cut = rest.len().min(3);
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            if g.push(&rest[..cut]) {
                shown.push(g.settle(&evidence, sources.len()).unwrap());
            }
            rest = &rest[cut..];
        }
        let (grounded, tail) = g.end(question, &evidence, sources.len()).unwrap();
        shown.push(tail);
        shown.retain(|s| !s.is_empty());
        (shown, grounded)
    }

    #[test]
    fn streamed_sentences_are_shown_once_checked_and_join_to_the_answer() {
        let answer = "The KV cache stores keys and values of earlier tokens [1]. It runs on a \
                      GPU cluster in Antarctica with quantum memory. Each new token only \
                      computes its own key and value [2]. It is.";
        let question = "What does the KV cache store?";
        let (shown, g) = stream(answer, question, &[PUMP, KV]);
        assert_eq!(shown.concat(), g.text);
        assert_eq!(g.text, ground_with(answer, question, &[PUMP, KV]).text);
        assert_eq!(
            shown,
            [
                "The KV cache stores keys and values of earlier tokens [2].",
                " Each new token only computes its own key and value [2].",
                " It is."
            ]
        );
        assert!(shown.iter().all(|s| !s.contains("Antarctica")));
        assert_eq!((g.kept, g.removed), (2, 1));
    }

    #[test]
    fn a_streamed_answer_with_nothing_supported_shows_only_the_quote() {
        let answer = "Bananas are a popular fruit. They grow in tropical countries.";
        let (shown, g) = stream(answer, "Which seal fits an XJ-9000 pump?", &[KV, PUMP]);
        assert!(g.extractive);
        assert_eq!(
            shown,
            ["\"The XJ-9000-B seal fits XJ-9000 pumps built after 2019.\" [2]"]
        );
    }

    #[test]
    fn saying_not_found_is_not_found_unless_a_sentence_is_supported() {
        let q = "What does the KV cache store?";
        let (shown, g) = stream("Not found in the knowledge base.", q, &[KV]);
        assert!(
            g.not_found && shown.is_empty() && g.text.is_empty(),
            "{g:?}"
        );
        let answer = "The KV cache stores keys and values. The rest is not in the knowledge base.";
        let (shown, g) = stream(answer, q, &[KV]);
        assert!(!g.not_found);
        assert_eq!(shown.concat(), "The KV cache stores keys and values [1].");
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
