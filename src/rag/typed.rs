//! Typed short answers: a question that asks for a number, a date, a name or a place is answered
//! by a span of that kind in the evidence sentence.
//!
//! "How many", "when", "what year", "who", "where" and their kin say what the answer looks like
//! ([`expected`]). Such spans are easy to find in a sentence without a model: runs of numbers
//! ("3.5 million", "$45", "twelve"), dates ("10 July 1856", "the 1990s", "18th century"), and runs
//! of capitalised words ("Nikola Tesla", "University of Chicago"). Among the runs of the expected
//! kind that repeat none of the question's terms, the one nearest the question's terms in the
//! sentence is the answer ([`typed_span`]): in "Tesla was born on 10 July 1856 in Smiljan", asked
//! "When was Tesla born?", the date stands next to "born". The small generator copies such spans
//! less reliably (BENCHMARKS.md, "Typed short answers"); it still answers every other question.

use std::collections::HashSet;
use std::ops::Range;

use index::config::Bm25Analyzer;

/// What kind of span a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A count or amount: "how many", "how much", "what percentage".
    Number,
    /// A point in time: "when", "what year", "what century".
    Date,
    /// A person or an organisation: "who", "whom", "whose".
    Name,
    /// A place: "where", "what city", "which country".
    Place,
}

const PLACE_NOUNS: &[&str] = &[
    "city",
    "country",
    "state",
    "town",
    "region",
    "continent",
    "island",
    "river",
    "county",
    "province",
    "nation",
];

const DATE_NOUNS: &[&str] = &["year", "century", "decade", "date", "day", "month"];

/// The kind of answer an English question asks for, if its wording says.
pub fn expected(question: &str) -> Option<Expected> {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        match *w {
            "how" if matches!(next, "many" | "much") => return Some(Expected::Number),
            "what" | "which" if matches!(next, "percentage" | "percent" | "number") => {
                return Some(Expected::Number)
            }
            "what" | "which" if DATE_NOUNS.contains(&next) => return Some(Expected::Date),
            "what" | "which" if PLACE_NOUNS.contains(&next) => return Some(Expected::Place),
            "when" => return Some(Expected::Date),
            "who" | "whom" | "whose" => return Some(Expected::Name),
            "where" => return Some(Expected::Place),
            _ => {}
        }
    }
    None
}

/// One word of a sentence: its byte range without surrounding punctuation.
#[derive(Debug, Clone)]
struct Word<'a> {
    text: &'a str,
    range: Range<usize>,
    /// Punctuation right after it ends a run ("Paris, France": two runs).
    stops: bool,
}

fn words(text: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                push_word(text, s..i, &mut out);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    out
}

fn push_word<'a>(text: &'a str, raw: Range<usize>, out: &mut Vec<Word<'a>>) {
    let piece = &text[raw.clone()];
    // Keep "$", "%" and the dots of "U.S." or "3.5"; drop quotes, brackets and sentence marks.
    let keep = |c: char| c.is_alphanumeric() || matches!(c, '$' | '£' | '€' | '%');
    let Some(lead) = piece.find(keep) else {
        return;
    };
    let end = piece
        .char_indices()
        .rev()
        .find(|&(_, c)| keep(c))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(piece.len());
    let trailing = &piece[end..];
    let abbreviation = trailing.starts_with('.') && piece[lead..end].contains('.');
    let end = if abbreviation { end + 1 } else { end };
    out.push(Word {
        text: &piece[lead..end],
        range: raw.start + lead..raw.start + end,
        stops: trailing.contains([',', ';', ':', '(', ')', '[', ']', '"', '!', '?'])
            || (trailing.starts_with('.') && !abbreviation),
    });
}

const NUMBER_WORDS: &[&str] = &[
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "thousand",
    "million",
    "billion",
    "trillion",
    "dozen",
    "half",
    "percent",
];

const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Capitalised words that begin sentences or clauses without naming anything.
const NOT_NAMES: &[&str] = &[
    "the", "a", "an", "in", "on", "at", "by", "for", "from", "of", "to", "with", "after", "before",
    "during", "since", "until", "he", "she", "it", "they", "we", "his", "her", "its", "their",
    "this", "that", "these", "those", "there", "as", "but", "and", "or", "when", "while",
    "although", "however", "today", "some", "many", "most", "all", "both", "each", "one", "other",
    "such", "if", "because", "also", "then", "thus",
];

/// Lower-case words that may stand inside a name ("University of Chicago", "da Vinci").
const NAME_JOINS: &[&str] = &[
    "of", "de", "da", "van", "von", "der", "del", "la", "le", "du",
];

/// Words a question may share with its typed answer: "what century", "how many million".
fn generic(w: &str) -> bool {
    let lower = w.to_lowercase();
    lower.starts_with("centur")
        || matches!(
            lower.as_str(),
            "year"
                | "years"
                | "decade"
                | "percent"
                | "hundred"
                | "thousand"
                | "million"
                | "billion"
        )
}

fn has_digit(w: &str) -> bool {
    w.chars().any(|c| c.is_ascii_digit())
}

/// CJK text has no spaces between words, so a whitespace-delimited "word" of it may be a whole
/// sentence: it is never a typed answer.
fn cjk(w: &str) -> bool {
    w.chars().any(index::sparse::is_cjk)
}

fn is_number(w: &str) -> bool {
    let lower = w.to_lowercase();
    !cjk(w) && (has_digit(w) || NUMBER_WORDS.contains(&lower.trim_end_matches('%')))
}

fn is_year(w: &str) -> bool {
    let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
    let rest = &w[digits.len()..];
    digits.len() == 4
        && matches!(digits.as_bytes()[0], b'1' | b'2')
        && matches!(rest, "" | "s" | "'s")
}

/// A month's name, capitalised as English writes it (so the verb "may" is not one).
fn is_month(w: &str) -> bool {
    is_capitalised(w) && MONTHS.contains(&w.to_lowercase().as_str())
}

fn is_date_word(w: &str) -> bool {
    if cjk(w) {
        return false;
    }
    let lower = w.to_lowercase();
    let day = lower
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse::<u32>()
        .is_ok_and(|d| (1..=31).contains(&d))
        && lower.len() <= 4;
    is_year(w)
        || day
        || is_month(w)
        || matches!(
            lower.as_str(),
            "century" | "centuries" | "bc" | "ad" | "bce" | "ce"
        )
}

fn is_capitalised(w: &str) -> bool {
    w.chars().next().is_some_and(char::is_uppercase) && !cjk(w)
}

/// Runs of consecutive words that `part` accepts, as word index ranges; a run must hold a word
/// `core` accepts, and ends at punctuation.
fn runs(
    ws: &[Word<'_>],
    part: impl Fn(usize) -> bool,
    core: impl Fn(usize) -> bool,
) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ws.len() {
        if !part(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < ws.len() && part(i) {
            i += 1;
            if ws[i - 1].stops {
                break;
            }
        }
        // A run neither starts nor ends with a joining word.
        let (mut s, mut e) = (start, i);
        while s < e && !core(s) && NAME_JOINS.contains(&ws[s].text.to_lowercase().as_str()) {
            s += 1;
        }
        while e > s && NAME_JOINS.contains(&ws[e - 1].text.to_lowercase().as_str()) {
            e -= 1;
        }
        if (s..e).any(&core) {
            out.push(s..e);
        }
    }
    out
}

/// The span of `text` (a sentence) of the `expected` kind nearest the question's terms, as a
/// byte range; `is_question_term` says whether the word at a byte range of `text` repeats the
/// question. `None` when the sentence holds no such span that adds to the question.
pub fn typed_span(
    text: &str,
    expected: Expected,
    is_question_term: impl Fn(Range<usize>) -> bool,
) -> Option<Range<usize>> {
    let ws = words(text);
    let asked: Vec<bool> = ws
        .iter()
        .map(|w| is_question_term(w.range.clone()))
        .collect();
    // A year of any length beside its era: "218 BC", "AD 79".
    let era = |i: usize| {
        ws.get(i).is_some_and(|w| {
            matches!(
                w.text.to_lowercase().trim_end_matches('.'),
                "bc" | "ad" | "bce" | "ce" | "b.c" | "a.d"
            )
        })
    };
    let era_year = |i: usize| {
        ws[i].text.chars().all(|c| c.is_ascii_digit()) && (era(i + 1) || (i > 0 && era(i - 1)))
    };
    let candidates = match expected {
        // A year is a date, not a count ("attracted 1.5 million visitors in 1946").
        Expected::Number => {
            let count = |i: usize| is_number(ws[i].text) && !is_year(ws[i].text);
            runs(&ws, count, count)
        }
        Expected::Date => runs(
            &ws,
            |i| is_date_word(ws[i].text) || ws[i].text.eq_ignore_ascii_case("of") || era_year(i),
            |i| is_year(ws[i].text) || era_year(i) || is_month(ws[i].text),
        )
        .into_iter()
        .chain(
            // "the 18th century", "the 1990s" without a month or a plain year.
            runs(
                &ws,
                |i| is_date_word(ws[i].text),
                |i| ws[i].text.to_lowercase().starts_with("centur"),
            ),
        )
        .collect(),
        Expected::Name | Expected::Place => {
            let name = |i: usize| {
                let w = ws[i].text;
                is_capitalised(w) && !NOT_NAMES.contains(&w.to_lowercase().as_str()) && !is_month(w)
            };
            runs(
                &ws,
                |i| name(i) || NAME_JOINS.contains(&ws[i].text.to_lowercase().as_str()),
                name,
            )
        }
    };
    let anchors: Vec<usize> = (0..ws.len()).filter(|&i| asked[i]).collect();
    let distance = |r: &Range<usize>| {
        anchors
            .iter()
            .map(|&a| {
                if a < r.start {
                    r.start - a
                } else {
                    a.saturating_sub(r.end - 1)
                }
            })
            .min()
            .unwrap_or(usize::MAX)
    };
    let place_hint = |r: &Range<usize>| {
        r.start > 0
            && matches!(
                ws[r.start - 1].text.to_lowercase().as_str(),
                "in" | "at" | "near" | "from" | "to"
            )
    };
    candidates
        .into_iter()
        // A run adds to the question: none of its words repeats it, but for the kind's own
        // nouns ("in what century" - "the 14th century").
        .filter(|r| r.clone().all(|i| !asked[i] || generic(ws[i].text)))
        .min_by_key(|r| {
            let hinted = expected == Expected::Place && place_hint(r);
            (!hinted, distance(r), r.start)
        })
        .map(|r| ws[r.start].range.start..ws[r.end - 1].range.end)
}

/// [`typed_span`] for a question whose terms are `question_terms` (the multilingual BM25
/// analyzer's, as the evidence ranks by): the sentence is analysed once, and a word repeats
/// the question when one of its terms is a question term.
pub fn typed_span_for(
    text: &str,
    expected: Expected,
    question_terms: &HashSet<String>,
) -> Option<Range<usize>> {
    let repeated: Vec<Range<usize>> =
        index::sparse::located_terms(Bm25Analyzer::Multilingual, text)
            .into_iter()
            .filter(|(t, _)| question_terms.contains(t))
            .map(|(_, r)| r)
            .collect();
    typed_span(text, expected, |word| {
        repeated
            .iter()
            .any(|r| r.start < word.end && word.start < r.end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(question: &str, sentence: &str) -> Option<String> {
        let q = index::sparse::terms(Bm25Analyzer::Multilingual, question)
            .into_iter()
            .collect();
        let kind = expected(question)?;
        typed_span_for(sentence, kind, &q).map(|r| sentence[r].to_string())
    }

    #[test]
    fn questions_say_what_they_ask_for() {
        assert_eq!(
            expected("How many moons does Mars have?"),
            Some(Expected::Number)
        );
        assert_eq!(expected("In what year did it open?"), Some(Expected::Date));
        assert_eq!(expected("When was Tesla born?"), Some(Expected::Date));
        assert_eq!(expected("Who designed the bridge?"), Some(Expected::Name));
        assert_eq!(expected("Which country hosted it?"), Some(Expected::Place));
        assert_eq!(expected("Where is Fresno?"), Some(Expected::Place));
        assert_eq!(expected("What does the KV cache store?"), None);
        assert_eq!(expected("Why is the sky blue?"), None);
    }

    #[test]
    fn typed_spans_are_found_beside_the_question_terms() {
        let tesla = "Tesla was born on 10 July [O.S. 28 June] 1856 into a Serb family in the village of Smiljan, Austrian Empire (modern-day Croatia).";
        assert_eq!(
            answer("When was Tesla born?", tesla).as_deref(),
            Some("10 July")
        );
        assert_eq!(
            answer(
                "How many people live in Warsaw?",
                "Warsaw had a population of 1.74 million in 2014."
            )
            .as_deref(),
            Some("1.74 million")
        );
        assert_eq!(
            answer(
                "Who founded the Ottoman Empire?",
                "The Ottoman Empire was founded by Osman I in 1299 in Anatolia."
            )
            .as_deref(),
            Some("Osman I")
        );
        assert_eq!(
            answer(
                "Where did Tesla study engineering?",
                "In 1875, Tesla studied engineering at the Austrian Polytechnic in Graz."
            )
            .as_deref(),
            Some("Graz")
        );
        assert_eq!(
            answer(
                "In what century was the castle built?",
                "The castle was built in the 14th century by the dukes."
            )
            .as_deref(),
            Some("14th century")
        );
        assert_eq!(
            answer(
                "Who owns the company?",
                "The company is owned by the University of Chicago, its founder said."
            )
            .as_deref(),
            Some("University of Chicago")
        );
    }

    #[test]
    fn months_years_and_names_are_told_apart() {
        let s =
            "The exhibition, opened by Queen Victoria in May 1946, attracted 1.5 million visitors.";
        assert_eq!(
            answer("How many visitors did the exhibition attract?", s).as_deref(),
            Some("1.5 million")
        );
        assert_eq!(
            answer("Who opened the exhibition?", s).as_deref(),
            Some("Queen Victoria")
        );
        assert_eq!(
            answer("When did the exhibition open?", s).as_deref(),
            Some("May 1946")
        );
        // "may" the verb is no month.
        assert_eq!(
            answer(
                "When did the extinction occur?",
                "The extinction may have been caused by an impact."
            ),
            None
        );
    }

    #[test]
    fn nothing_of_the_kind_means_no_typed_answer() {
        assert_eq!(
            answer("When was Tesla born?", "Tesla was born into a Serb family."),
            None
        );
        // The only name repeats the question.
        assert_eq!(
            answer("Who is Tesla?", "Tesla was an inventor and engineer."),
            None
        );
        assert_eq!(
            answer("What does the cache store?", "It stores keys."),
            None
        );
        // A CJK sentence holding a digit is no number.
        assert_eq!(
            answer("How many pumps were built?", "该泵于2019年生产了三百台。"),
            None
        );
    }
}
