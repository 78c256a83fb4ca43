//! Sentences for reading and quoting: UAX #29 sentence boundaries (so `。！？` end Chinese and
//! Japanese sentences too), with the false breaks it makes in ordinary prose joined back:
//!
//! - inside brackets: `born on 10 July [O.S. 28 June] 1856` is one sentence, however the
//!   bracket's own text is punctuated (up to [`MAX_JOINED_BYTES`], so a bracket that never
//!   closes cannot swallow a document);
//! - after a title or an initial (`Dr.`, `St.`, `J. R. R. Tolkien`), always;
//! - after another abbreviation (`e.g.`, `U.S.`, `approx.`, `Jan.`) when the next piece does not
//!   start with a capital letter, since these also end sentences.
//!
//! UAX #29 alone breaks in all three places: it only looks at the next letter's case.

use unicode_segmentation::UnicodeSegmentation;

/// A sentence is not grown past this by joining (bytes).
pub const MAX_JOINED_BYTES: usize = 1000;

/// Abbreviations that precede a name: never a sentence end.
const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "gen", "lt", "col", "sgt", "capt", "mt",
    "rev", "hon", "gov", "sen", "rep", "pres", "fr", "mme", "mlle",
];

/// Abbreviations that may also end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "etc", "vs", "no", "nos", "vol", "fig", "figs", "approx", "ca", "inc", "ltd", "co", "corp",
    "dept", "est", "al", "eq", "ch", "sec", "pp", "p", "op", "cit", "jan", "feb", "mar", "apr",
    "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "b", "d", "c",
];

/// The sentences of `text`, in order; concatenated they give `text` back (each keeps its
/// trailing spaces, as UAX #29's pieces do).
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut start = 0;
    let pieces: Vec<(usize, &str)> = text.split_sentence_bound_indices().collect();
    for (i, &(at, _)) in pieces.iter().enumerate().skip(1) {
        let current = &text[start..at];
        let next = pieces[i].1;
        if !joins(current, next) {
            out.push(current);
            start = at;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Whether the break between `current` (the sentence so far) and `next` is a false one.
fn joins(current: &str, next: &str) -> bool {
    if current.len() + next.len() > MAX_JOINED_BYTES {
        return false;
    }
    if open_brackets(current) > 0 {
        return true;
    }
    let body = current.trim_end();
    let Some(stem) = body.strip_suffix('.') else {
        return false;
    };
    let word = stem
        .rsplit(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '"' | '“' | '\''))
        .next()
        .unwrap_or("");
    let lower = word.to_lowercase();
    let initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
    if initial || TITLES.contains(&lower.as_str()) {
        return true;
    }
    let dotted = word.contains('.') && word.chars().any(char::is_alphabetic);
    let abbreviation = dotted || ABBREVIATIONS.contains(&lower.as_str());
    let capital_next = next
        .trim_start()
        .chars()
        .find(|c| c.is_alphanumeric())
        .is_some_and(char::is_uppercase);
    abbreviation && !capital_next
}

/// Brackets opened in `s` and not closed.
fn open_brackets(s: &str) -> i32 {
    s.chars().fold(0, |depth, c| match c {
        '(' | '[' | '{' | '（' | '【' | '「' => depth + 1,
        ')' | ']' | '}' | '）' | '】' | '」' => (depth - 1).max(0),
        _ => depth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        let s = sentences(text);
        assert_eq!(s.concat(), text, "the pieces give the text back");
        s.into_iter().map(str::trim).collect()
    }

    #[test]
    fn brackets_hold_their_sentence_together() {
        let tesla = "Tesla was born on 10 July [O.S. 28 June] 1856 into a Serb family in the \
                     village of Smiljan, Austrian Empire (modern-day Croatia). He died in 1943.";
        assert_eq!(
            split(tesla),
            [
                "Tesla was born on 10 July [O.S. 28 June] 1856 into a Serb family in the \
                 village of Smiljan, Austrian Empire (modern-day Croatia).",
                "He died in 1943."
            ]
        );
        // A bracket that never closes stops joining at the size limit.
        let open = format!("Start (never closed. {}", "Word. ".repeat(400));
        assert!(split(&open).len() > 1);
    }

    #[test]
    fn titles_initials_and_abbreviations() {
        assert_eq!(
            split("Dr. Smith met J. R. R. Tolkien at St. Mary's. They talked."),
            [
                "Dr. Smith met J. R. R. Tolkien at St. Mary's.",
                "They talked."
            ]
        );
        assert_eq!(
            split("Pumps, e.g. the XJ-9000, move water. Seals, etc. are spares."),
            [
                "Pumps, e.g. the XJ-9000, move water.",
                "Seals, etc. are spares."
            ]
        );
        // An abbreviation before a capital may end the sentence.
        assert_eq!(
            split("It was made in the U.S. The rest came later."),
            ["It was made in the U.S.", "The rest came later."]
        );
    }

    #[test]
    fn cjk_and_plain_sentences_split_as_before() {
        assert_eq!(split("猫は寝る。犬は走る！"), ["猫は寝る。", "犬は走る！"]);
        assert_eq!(split("One. Two? Three!"), ["One.", "Two?", "Three!"]);
        assert_eq!(split(""), Vec::<&str>::new());
    }
}
