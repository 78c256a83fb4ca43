//! Evidence: the source sentences that answer a question, found by meaning and by words.
//!
//! Every sentence of the sources offered to the model ([`ingest::sentences`]: bounds that
//! survive abbreviations, initials, numbers and brackets, and end at `。！？`) is scored
//! against the question two ways:
//! - **meaning**: the cosine similarity of its embedding and the question's, with the
//!   collection's own embedder (one batch per answer);
//! - **words**: the share of the question's content terms (the multilingual BM25 analyzer:
//!   stop words removed, English stemmed, CJK bigrams) that it contains.
//!
//! Its score is `meaning + WORDS_WEIGHT * words`, and [`Evidence`] keeps the sentences best
//! first. It then serves two purposes:
//! - **checking** a generated sentence ([`Evidence::check`]): the sentence is matched to its
//!   best evidence sentence by meaning and by words, and passes only when what it adds to the
//!   question (its content terms that the question does not have) stands in that sentence, and
//!   their meanings agree. "The KV cache stores the weights of all tokens" against "The KV
//!   cache stores the keys and values of earlier tokens" fails: "weights" is new and unsupported,
//!   though most of its words occur in the source;
//! - **the short answer** ([`Evidence::short_answer`]): the smallest run of the evidence
//!   sentence's terms that carries what the answer adds to the question, e.g. "time and
//!   storage" for "The two basic resources are time and storage [1].".

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use index::config::Bm25Analyzer;
use ingest::sentences::sentences;
use ingest::Embedder;

use super::typed::{expected, typed_span_for, Expected};
use crate::error::{Result, ServiceError};

/// Weight of the words score against the meaning score in an evidence sentence's rank.
/// Chosen on squad-qa train questions (BENCHMARKS.md, "Answer quality").
pub const WORDS_WEIGHT: f32 = 0.5;

/// Least share of a generated sentence's new terms (those not in the question) that its best
/// evidence sentence must contain.
pub const MIN_NEW_TERM_SUPPORT: f32 = 0.7;

/// Least cosine similarity between a generated sentence and its best evidence sentence.
pub const MIN_MEANING_AGREEMENT: f32 = 0.5;

/// At most this many source sentences are embedded per answer (best sources first).
const MAX_SENTENCES: usize = 64;

/// One sentence of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceSentence {
    /// The 1-based number of the source it comes from (the prompt's numbering).
    pub source: usize,
    /// Its byte range in the source's text (surrounding spaces excluded).
    pub range: Range<usize>,
    /// Its text.
    pub text: String,
    /// Cosine similarity to the question.
    pub meaning: f32,
    /// Share of the question's content terms it contains.
    pub words: f32,
    /// `meaning + WORDS_WEIGHT * words`.
    pub score: f32,
}

/// How a generated sentence fares against the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Index of its best evidence sentence in [`Evidence::sentences`].
    pub evidence: usize,
    /// Cosine similarity to that sentence.
    pub meaning: f32,
    /// Share of its new terms (not in the question) that the sentence contains; 0 without any.
    pub new_term_support: f32,
    /// Whether it may stay in the answer.
    pub passed: bool,
}

/// A span of one evidence sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Index of the sentence in [`Evidence::sentences`].
    pub sentence: usize,
    /// Byte range in its source's text.
    pub range: Range<usize>,
}

/// The sentences of an answer's sources, ranked against its question.
#[derive(Clone)]
pub struct Evidence {
    /// Best first.
    pub sentences: Vec<EvidenceSentence>,
    vectors: Vec<Vec<f32>>,
    question: HashSet<String>,
    expected: Option<Expected>,
    embedder: Arc<dyn Embedder>,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evidence")
            .field("sentences", &self.sentences)
            .finish_non_exhaustive()
    }
}

/// The content terms of `text` as a set.
pub(crate) fn terms(text: &str) -> HashSet<String> {
    index::sparse::terms(Bm25Analyzer::Multilingual, text)
        .into_iter()
        .collect()
}

fn embed(embedder: &dyn Embedder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    let out = embedder
        .embed(texts)
        .map_err(|e| ServiceError::Internal(format!("embedding the evidence: {e}")))?;
    if out.len() != texts.len() {
        return Err(ServiceError::Internal(format!(
            "the embedder returned {} vectors for {} sentences",
            out.len(),
            texts.len()
        )));
    }
    Ok(out.into_iter().map(|e| e.vector).collect())
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// `sentence` without a leading Markdown heading line ("# The KV cache"): a heading names a
/// topic and answers nothing, so it is neither evidence nor quoted.
fn without_heading(sentence: &str) -> &str {
    if !sentence.starts_with('#') {
        return sentence;
    }
    sentence
        .split_once('\n')
        .map_or("", |(_, rest)| rest.trim())
}

/// Share of `of` found in `within` (0 when `of` is empty).
fn share(of: &HashSet<String>, within: &HashSet<String>) -> f32 {
    if of.is_empty() {
        return 0.0;
    }
    of.iter().filter(|t| within.contains(*t)).count() as f32 / of.len() as f32
}

impl Evidence {
    /// Splits `sources` (prompt order) into sentences and ranks them against `question`.
    pub fn gather(embedder: Arc<dyn Embedder>, question: &str, sources: &[&str]) -> Result<Self> {
        let question_terms = terms(question);
        let mut found: Vec<(usize, Range<usize>, &str)> = Vec::new();
        'sources: for (i, source) in sources.iter().enumerate() {
            for s in sentences(source) {
                let trimmed = without_heading(s.trim());
                if terms(trimmed).is_empty() {
                    continue;
                }
                let start = trimmed.as_ptr() as usize - source.as_ptr() as usize;
                found.push((i + 1, start..start + trimmed.len(), trimmed));
                if found.len() == MAX_SENTENCES {
                    break 'sources;
                }
            }
        }
        let mut texts: Vec<&str> = vec![question];
        texts.extend(found.iter().map(|f| f.2));
        let mut vectors = embed(embedder.as_ref(), &texts)?;
        let q = vectors.remove(0);
        let mut ranked: Vec<(EvidenceSentence, Vec<f32>)> = found
            .into_iter()
            .zip(vectors)
            .map(|((source, range, text), v)| {
                let meaning = cosine(&q, &v);
                let words = share(&question_terms, &terms(text));
                let sentence = EvidenceSentence {
                    source,
                    range,
                    text: text.to_string(),
                    meaning,
                    words,
                    score: meaning + WORDS_WEIGHT * words,
                };
                (sentence, v)
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.0.score
                .total_cmp(&a.0.score)
                .then(a.0.source.cmp(&b.0.source))
        });
        let (sentences, vectors) = ranked.into_iter().unzip();
        Ok(Self {
            sentences,
            vectors,
            question: question_terms,
            expected: expected(question),
            embedder,
        })
    }

    /// Keeps the sentences of the first `n` sources only (the prompt may drop the
    /// lowest-ranked sources that did not fit the context).
    pub fn keep_sources(&mut self, n: usize) {
        let mut vectors = std::mem::take(&mut self.vectors).into_iter();
        let mut kept = Vec::with_capacity(self.sentences.len());
        self.sentences.retain(|s| {
            let v = vectors.next();
            let keep = s.source <= n;
            if keep {
                kept.extend(v);
            }
            keep
        });
        self.vectors = kept;
    }

    /// Ranks first the sentence of source `source` (1-based) that `range` (bytes of the
    /// source's text) begins in, and returns the span in it; `None` when no evidence sentence
    /// holds its start (a heading, or past the sentences kept).
    pub fn rank_first(&mut self, source: usize, range: Range<usize>) -> Option<Span> {
        let at = self
            .sentences
            .iter()
            .position(|s| s.source == source && s.range.contains(&range.start))?;
        let sentence = self.sentences.remove(at);
        let vector = self.vectors.remove(at);
        // The span stays inside its sentence: a reader's span may run past a sentence end.
        let range = range.start..range.end.min(sentence.range.end);
        self.sentences.insert(0, sentence);
        self.vectors.insert(0, vector);
        Some(Span { sentence: 0, range })
    }

    /// Checks generated sentences (citation markers already removed) against the evidence;
    /// `None` for one without content terms (nothing to check) or when there is no evidence.
    pub fn check(&self, generated: &[&str]) -> Result<Vec<Option<Check>>> {
        if self.sentences.is_empty() || generated.is_empty() {
            return Ok(vec![None; generated.len()]);
        }
        let vectors = embed(self.embedder.as_ref(), generated)?;
        let evidence_terms: Vec<HashSet<String>> =
            self.sentences.iter().map(|s| terms(&s.text)).collect();
        Ok(generated
            .iter()
            .zip(&vectors)
            .map(|(g, v)| {
                let own = terms(g);
                if own.is_empty() {
                    return None;
                }
                let new: HashSet<String> = own.difference(&self.question).cloned().collect();
                let best = (0..self.sentences.len())
                    .map(|i| {
                        let meaning = cosine(v, &self.vectors[i]);
                        let support = share(&new, &evidence_terms[i]);
                        (i, meaning, support)
                    })
                    .max_by(|a, b| (a.1 + a.2).total_cmp(&(b.1 + b.2)))?;
                let (evidence, meaning, new_term_support) = best;
                Some(Check {
                    evidence,
                    meaning,
                    new_term_support,
                    passed: new_term_support >= MIN_NEW_TERM_SUPPORT
                        && meaning >= MIN_MEANING_AGREEMENT,
                })
            })
            .collect())
    }

    /// The short answer in evidence sentence `sentence`: the longest run of its terms that
    /// `answer` has and the question has not (a run continues across stop words and spaces,
    /// not across other terms or punctuation). Without `answer` (an extractive answer), the
    /// terms the question lacks, nearest the question's own terms, at most
    /// [`MAX_SHORT_TERMS`] of them. `None` when nothing qualifies.
    pub fn short_answer(&self, sentence: usize, answer: Option<&str>) -> Option<Span> {
        let s = self.sentences.get(sentence)?;
        let located = index::sparse::located_terms(Bm25Analyzer::Multilingual, &s.text);
        let wanted: Box<dyn Fn(&str) -> bool> = match answer {
            Some(a) => {
                let own = terms(a);
                Box::new(move |t: &str| own.contains(t) && !self.question.contains(t))
            }
            None => Box::new(|t: &str| !self.question.contains(t)),
        };
        let mut runs: Vec<Range<usize>> = Vec::new();
        let mut current: Option<Range<usize>> = None;
        for (t, r) in &located {
            if !wanted(t) {
                runs.extend(current.take());
                continue;
            }
            current = match current {
                // CJK bigrams overlap their neighbours.
                Some(c) if r.start <= c.end || !breaks(&s.text[c.end..r.start]) => {
                    Some(c.start..r.end.max(c.end))
                }
                other => {
                    runs.extend(other);
                    Some(r.clone())
                }
            };
        }
        runs.extend(current);
        let count = |r: &Range<usize>| located.iter().filter(|(_, l)| r.contains(&l.start)).count();
        let best = match answer {
            Some(_) => runs
                .into_iter()
                .max_by_key(|r| (count(r), usize::MAX - r.start))?,
            None => {
                let anchors: Vec<usize> = located
                    .iter()
                    .filter(|(t, _)| self.question.contains(t))
                    .map(|(_, r)| r.start)
                    .collect();
                let distance = |r: &Range<usize>| {
                    anchors
                        .iter()
                        .map(|&a| a.abs_diff(r.start).min(a.abs_diff(r.end)))
                        .min()
                        .unwrap_or(0)
                };
                runs.into_iter()
                    .filter(|r| count(r) <= MAX_SHORT_TERMS)
                    .min_by_key(|r| (distance(r), usize::MAX - count(r)))?
            }
        };
        let start = s.range.start + best.start;
        Some(Span {
            sentence,
            range: start..s.range.start + best.end,
        })
    }

    /// The typed short answer in evidence sentence `sentence` ([`super::typed`]): when the
    /// question asks for a number, a date, a name or a place and the sentence holds one that
    /// adds to the question.
    pub fn typed_answer(&self, sentence: usize) -> Option<Span> {
        let kind = self.expected?;
        let s = self.sentences.get(sentence)?;
        let r = typed_span_for(&s.text, kind, &self.question)?;
        Some(Span {
            sentence,
            range: s.range.start + r.start..s.range.start + r.end,
        })
    }

    /// The stretches of evidence sentence `sentence` that a short answer may be: the text
    /// between the question's own terms, each holding a content term. SQuAD-style answers
    /// add to the question and rarely repeat its words, so the short-answer step copies from
    /// these only.
    pub fn answer_segments(&self, sentence: usize) -> Vec<String> {
        let Some(s) = self.sentences.get(sentence) else {
            return Vec::new();
        };
        let located = index::sparse::located_terms(Bm25Analyzer::Multilingual, &s.text);
        let mut cuts: Vec<Range<usize>> = located
            .iter()
            .filter(|(t, _)| self.question.contains(t))
            .map(|(_, r)| r.clone())
            .collect();
        cuts.push(s.text.len()..s.text.len());
        let mut out = Vec::new();
        let mut from = 0;
        for cut in cuts {
            if cut.start > from {
                let piece = s.text[from..cut.start].trim();
                if !terms(piece).is_empty() {
                    out.push(piece.to_string());
                }
            }
            from = from.max(cut.end);
        }
        out
    }
}

/// Most terms in a short answer chosen without a generated answer.
pub const MAX_SHORT_TERMS: usize = 6;

/// Whether the text between two terms ends a run: punctuation other than hyphens,
/// apostrophes and periods inside numbers, or a stretch of more than three stop words.
fn breaks(gap: &str) -> bool {
    gap.chars().any(|c| {
        matches!(
            c,
            ',' | ';'
                | ':'
                | '('
                | ')'
                | '['
                | ']'
                | '"'
                | '.'
                | '!'
                | '?'
                | '，'
                | '。'
                | '、'
                | '；'
        )
    }) || gap.split_whitespace().count() > 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest::testing::HashEmbedder;

    fn evidence(question: &str, sources: &[&str]) -> Evidence {
        Evidence::gather(Arc::new(HashEmbedder::new()), question, sources).unwrap()
    }

    /// The index of the evidence sentence containing `word`.
    fn sentence_with(e: &Evidence, word: &str) -> usize {
        e.sentences
            .iter()
            .position(|s| s.text.contains(word))
            .unwrap()
    }

    const KV: &str = "The KV cache stores the keys and values of earlier tokens. Each new token \
                      only computes its own key and value, so decoding is faster.";
    const COMPLEXITY: &str = "Complexity theory studies resources. The two basic resources \
                              are time and storage (memory), measured in steps and bits.";

    #[test]
    fn sentences_are_ranked_by_words_and_meaning_with_exact_ranges() {
        let e = evidence("What are the basic resources?", &[KV, COMPLEXITY]);
        let best = &e.sentences[0];
        assert_eq!(best.source, 2);
        assert!(best.text.starts_with("The two basic resources"), "{best:?}");
        assert_eq!(&COMPLEXITY[best.range.clone()], best.text);
        assert_eq!(e.sentences.len(), 4);
    }

    #[test]
    fn a_swapped_key_term_fails_the_check() {
        let e = evidence("What does the KV cache store?", &[KV]);
        let checks = e
            .check(&[
                "The KV cache stores the keys and values of earlier tokens.",
                "The KV cache stores the weights of all tokens computed at once.",
                "It is.",
            ])
            .unwrap();
        assert!(checks[0].as_ref().unwrap().passed, "{checks:?}");
        let swapped = checks[1].as_ref().unwrap();
        assert!(!swapped.passed && swapped.new_term_support < MIN_NEW_TERM_SUPPORT);
        assert_eq!(checks[2], None);
    }

    #[test]
    fn the_short_answer_is_what_the_answer_adds_to_the_question() {
        let e = evidence("What are the two basic resources?", &[COMPLEXITY]);
        let i = sentence_with(&e, "time");
        let span = e
            .short_answer(i, Some("The two basic resources are time and storage."))
            .unwrap();
        assert_eq!(&COMPLEXITY[span.range], "time and storage");
        // Without a generated answer: the new terms nearest the question's.
        let span = e.short_answer(i, None).unwrap();
        assert_eq!(&COMPLEXITY[span.range], "time and storage");
    }

    #[test]
    fn answer_segments_are_the_stretches_between_question_terms() {
        let e = evidence("What are the two basic resources?", &[COMPLEXITY]);
        let i = sentence_with(&e, "time");
        let segments = e.answer_segments(i);
        assert_eq!(
            segments,
            ["are time and storage (memory), measured in steps and bits."],
            "{segments:?}"
        );
        // Every segment is copied text of the sentence, so spans found in it stay exact.
        assert!(segments.iter().all(|s| e.sentences[i].text.contains(s)));
        assert!(e.answer_segments(99).is_empty());
    }

    #[test]
    fn markdown_headings_are_not_evidence() {
        assert_eq!(without_heading("# The KV cache"), "");
        assert_eq!(
            without_heading("## Seals\nThe B seal fits pumps built after 2019."),
            "The B seal fits pumps built after 2019."
        );
        assert_eq!(without_heading("C# is a language."), "C# is a language.");
    }
}
